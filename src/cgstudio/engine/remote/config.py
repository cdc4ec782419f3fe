"""Settings of the remote engine: where the upstream is and how patiently to talk to it.

Defaults: connect timeout 5 s, 300 s for the first token and between tokens, 2 retries before
the first token (connection refused or reset, HTTP 502/503/504), backoff 0.25 s then 0.5 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cgstudio.core.errors import SettingsError
from cgstudio.core.settings import format_validation_error
from cgstudio.families import FAMILIES

Dialect = Literal["auto", "vllm", "llama_cpp", "openai"]
TokenizerChoice = Literal["auto", "upstream", "estimate"]


class UpstreamSettings(BaseModel):
    """The OpenAI-compatible server behind cgstudio (``--backend openai``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="The upstream's URL, with or without /v1 (http://host:8000).")
    api_key: str | None = Field(None, description="Bearer token sent upstream (--api-key-upstream).")
    model: str | None = Field(None, description="The upstream's model id; unset = the first it lists.")
    family: str | None = Field(
        None, description="Prompt family when no GGUF tokenizer says it: codegemma, gemma, qwen2.5-coder."
    )
    tokenizer: Path | None = Field(
        None, description="Local tokenizer: a GGUF (vocabulary only is loaded) or HF tokenizer.json."
    )
    tokenizer_mode: TokenizerChoice = Field(
        "auto", description="auto: the local file, else the upstream's tokenize endpoint, else an estimate."
    )
    dialect: Dialect = Field("auto", description="Request shaping; auto detects vLLM and llama_cpp.server.")
    connect_timeout_s: float = Field(5.0, gt=0, le=600, description="TCP connect timeout.")
    read_timeout_s: float = Field(
        300.0, gt=0, le=3600, description="Longest wait for the first token and between two tokens."
    )
    retries: int = Field(2, ge=0, le=10, description="Retries before the first token (connect errors, 5xx).")
    max_connections: int = Field(64, ge=1, le=4096, description="Open connections to the upstream at most.")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"--base-url {v!r} is not an http(s) URL; e.g. http://127.0.0.1:8000")
        return v

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str | None) -> str | None:
        if v is not None and v not in FAMILIES:  # every registered family (cgstudio.families)
            raise ValueError(f"unknown family {v!r}; use one of {', '.join(FAMILIES)}")
        return v

    @property
    def root(self) -> str:
        """The server root (vLLM's /tokenize and /health, llama_cpp.server's /extras live here)."""
        return self.base_url.removesuffix("/v1")

    @property
    def api(self) -> str:
        return self.root + "/v1"


def upstream_settings(**values: object) -> UpstreamSettings:
    """Validate upstream settings, turning pydantic errors into one clear SettingsError."""
    try:
        return UpstreamSettings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from exc
