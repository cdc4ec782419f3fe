"""Server settings: one pydantic model for what ``cgstudio serve`` flags configure.

Defaults: 127.0.0.1:11435, keep_alive 5 minutes (as Ollama), one generation at a time,
32 requests waiting at most, 8 MiB request bodies, 15 s to send a request's headers and again its
body, 512 open connections. Binding to anything but loopback needs an API key.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cgstudio.core.errors import SettingsError
from cgstudio.core.settings import MAX_INPUT_BYTES, Settings, format_validation_error, load_settings
from cgstudio.engine.remote.config import UpstreamSettings
from cgstudio.store.resolve import resolve

DEFAULT_PORT = 11435
DEFAULT_KEEP_ALIVE_S = 300.0
DEFAULT_READ_TIMEOUT_S = 15.0
DEFAULT_MAX_CONNECTIONS = 512
RESERVED_ALIASES = frozenset({"default"})
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


class ModelSpec(BaseModel):
    """One served model: its alias (what clients send as ``model``) and its GGUF path."""

    model_config = ConfigDict(frozen=True)

    alias: str = Field(description="Name clients use; derived from the file name unless given.")
    path: Path = Field(description="The GGUF file.")
    notice: str | None = Field(None, description="Said once at startup, e.g. 'this is a demo model'.")

    @field_validator("alias")
    @classmethod
    def _valid_alias(cls, v: str) -> str:
        if v in RESERVED_ALIASES:
            raise ValueError(f"alias {v!r} is reserved: it means 'route by capability'; pick another name")
        if not _ALIAS.match(v):
            raise ValueError(f"alias {v!r} must be letters, digits and . _ : + - (at most 128)")
        return v


class ServerSettings(BaseModel):
    """Everything ``cgstudio serve`` configures. ``settings`` is the base load/sampling/guard profile."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    host: str = Field(default="127.0.0.1", description="Bind address; anything but loopback needs --api-key.")
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535, description="TCP port (0 = any free port).")
    models: list[ModelSpec] = Field(
        default_factory=list, description="Served models; the first is the default."
    )
    settings: Settings = Field(default_factory=load_settings, description="Load profile, sampling, guards.")
    api_key: str | None = Field(default=None, description="Bearer / X-API-Key required on every API route.")
    admin_key: str | None = Field(
        default=None, description="If set, /admin/* needs this key instead of api_key."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins (https://site:port) whose pages may call the server; '*' = any. Empty: "
        "CORS off and browser requests only from the server's own pages.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the server answers besides localhost, IP addresses and --host "
        "(DNS-rebinding protection); '*.example.com' for subdomains, '*' for any.",
    )
    read_timeout_s: float = Field(
        default=DEFAULT_READ_TIMEOUT_S,
        gt=0,
        le=3600,
        description="Seconds a client has to send a request's headers, and again its body; slower "
        "connections are closed.",
    )
    max_connections: int = Field(
        default=DEFAULT_MAX_CONNECTIONS,
        ge=1,
        le=100_000,
        description="Open connections at most; requests beyond it get 503.",
    )
    shutdown_grace_s: int = Field(
        default=5,
        ge=0,
        le=3600,
        description="On SIGTERM/Ctrl-C: seconds open responses get to end (streams end at once with "
        "an error event) before they are cut.",
    )
    keep_alive_s: float | None = Field(
        default=DEFAULT_KEEP_ALIVE_S,
        description="Seconds an idle model stays loaded; None = forever, 0 = unload now.",
    )
    parallel: int = Field(
        default=1, ge=1, le=64, description="Generations running at once (the engine decides batching)."
    )
    max_queue: int = Field(
        default=32, ge=0, le=100_000, description="Requests waiting for a slot; more get 503."
    )
    max_body_bytes: int = Field(
        default=MAX_INPUT_BYTES, ge=1024, le=1 << 30, description="Larger request bodies get 413."
    )
    retry_after_s: int = Field(default=2, ge=1, le=3600, description="Retry-After on 503 overloaded.")
    strict_model_names: bool = Field(
        default=False,
        description="A model name no served model has is a 404 on every dialect. Off: the llama.cpp "
        "routes ignore it and the OpenAI routes substitute a fitting model (model_substituted warning).",
    )
    static_dir: Path = Field(
        default=Path(__file__).parent / "static", description="The playground; index.html is served at /."
    )
    upstream: UpstreamSettings | None = Field(
        default=None,
        description="--backend openai: the OpenAI-compatible server (vLLM, llama_cpp.server) that generates.",
    )
    embedding_model: ModelSpec | None = Field(
        default=None,
        description="--embedding-model: the embedding GGUF (BERT, nomic-bert) behind /v1/embeddings and "
        "/api/embed; None = those endpoints answer 400.",
    )
    speculate_next: bool = Field(
        default=True,
        description="After a greedy (or seeded) FIM answer, compute the answer to the request that accepts "
        "it while the server is idle, at the lowest priority; any real request cancels it "
        "(--no-speculate-next turns it off).",
    )
    workspaces: list[Path] = Field(
        default_factory=list,
        description="--workspace: project folders; a FIM request whose filepath lies inside one gets "
        "repository context (cgstudio.repo). Empty: nothing from disk is read.",
    )

    @field_validator("api_key", "admin_key")
    @classmethod
    def _non_empty_key(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("an API key must not be empty")
        return v

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, v: list[str]) -> list[str]:
        names = [h.strip().lower().rstrip(".") for h in v]
        for name in names:
            wild = name.startswith("*") and name != "*" and not (name.startswith("*.") and len(name) > 2)
            if wild or not name or "/" in name or (":" in name and not is_ip_address(name.strip("[]"))):
                raise ValueError(
                    f"--allowed-host {name!r} must be a host name without scheme or port, "
                    "e.g. studio.lan, *.example.com or *"
                )
        return names

    @model_validator(mode="after")
    def _loopback_or_key(self) -> ServerSettings:
        if not is_loopback(self.host) and not self.api_key:
            raise ValueError(
                f"refusing to bind {self.host} without an API key: anyone on the network could use the "
                "models. Add --api-key KEY (or CGSTUDIO_API_KEY), or bind 127.0.0.1"
            )
        aliases = [m.alias for m in self.models]
        dupes = sorted({a for a in aliases if aliases.count(a) > 1})
        if dupes:
            raise ValueError(
                f"two models share the alias {', '.join(dupes)}; name them with --model ALIAS=PATH"
            )
        if self.embedding_model is not None and self.embedding_model.alias in aliases:
            raise ValueError(
                f"the embedding model and a --model share the alias {self.embedding_model.alias}; "
                "name it with --embedding-model ALIAS=PATH"
            )
        return self

    @property
    def default_alias(self) -> str | None:
        return self.models[0].alias if self.models else None


def server_settings(**values: Any) -> ServerSettings:
    """Validate server settings, turning pydantic errors into one clear SettingsError."""
    try:
        return ServerSettings(**values)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from exc


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_duration(value: str | float | int | None, *, default: Any = DEFAULT_KEEP_ALIVE_S) -> Any:
    """Ollama-style durations: 300, "300", "30s", "5m", "1h", "250ms". Negative = forever (None)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise SettingsError(f"keep_alive must be a duration like 5m, 30s or -1, not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(value)
        if not m:
            raise SettingsError(f"keep_alive {value!r} is not a duration; use e.g. 300, 30s, 5m, 1h or -1")
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[m.group(2)]
        seconds = float(m.group(1)) * scale
    return None if seconds < 0 else seconds


def split_model_arg(arg: str) -> tuple[str | None, str]:
    """``alias=path`` -> (alias, path); a bare path or demo name -> (None, arg).

    Only a left side that is a valid alias (no path separator) counts, so paths with '=' still work.
    """
    left, sep, right = arg.partition("=")
    if sep and right and "/" not in left and "\\" not in left and _ALIAS.match(left):
        return left, right
    return None, arg


def resolve_models(args: list[str] | tuple[str, ...], configured: str | None = None) -> list[ModelSpec]:
    """Turn --model values into ModelSpecs; no value means the configured or demo default model."""
    specs: list[ModelSpec] = []
    for arg in args or [None]:  # type: ignore[list-item]
        alias, spec = split_model_arg(arg) if arg else (None, None)
        resolved = resolve(spec, configured=configured)
        try:
            specs.append(
                ModelSpec(
                    alias=alias or _alias_from(resolved.alias), path=resolved.path, notice=resolved.notice
                )
            )
        except ValidationError as exc:
            raise SettingsError(format_validation_error(exc)) from exc
    return specs


def resolve_remote_model(
    args: list[str] | tuple[str, ...], upstream: UpstreamSettings, discovered: str | None = None
) -> tuple[ModelSpec, UpstreamSettings]:
    """--backend openai: at most one --model, [ALIAS=]PATH.gguf (the local tokenizer) or an upstream id.

    The alias is the one given, else the upstream id's last part (``discovered`` when the upstream
    answered at startup), else the GGUF's name, else "remote". The spec's path is the upstream id
    when known, so requests that name the upstream's model also find it.
    """
    if len(args) > 1:
        raise SettingsError("--backend openai serves one upstream model; pass --model at most once")
    alias, value = split_model_arg(args[0]) if args else (None, None)
    tokenizer, model_id = upstream.tokenizer, upstream.model
    if value:
        path = Path(value).expanduser()
        if path.suffix == ".gguf" or path.exists():
            tokenizer = tokenizer or path
        else:
            model_id = value
    if tokenizer is not None and not tokenizer.exists():
        raise SettingsError(f"tokenizer file not found: {tokenizer}; pass the model's GGUF or tokenizer.json")
    name = model_id or discovered
    default = Path(name.rstrip("/")).name.removesuffix(".gguf") if name else None
    if default is None and tokenizer is not None:
        default = tokenizer.stem
    try:
        spec = ModelSpec(alias=alias or _alias_from(default or "remote"), path=Path(name or "remote"))
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from exc
    return spec, upstream.model_copy(update={"tokenizer": tokenizer, "model": model_id})


def resolve_embedding_model(arg: str) -> ModelSpec:
    """--embedding-model [ALIAS=]PATH.gguf -> ModelSpec; the alias defaults to the file name's stem."""
    alias, value = split_model_arg(arg)
    path = Path(value).expanduser()
    try:
        return ModelSpec(alias=alias or _alias_from(path.name.removesuffix(".gguf")), path=path)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from exc


def _alias_from(name: str) -> str:
    alias = re.sub(r"[^A-Za-z0-9._:+-]", "-", name).strip("-.") or "model"
    return f"{alias}-model" if alias in RESERVED_ALIASES else alias
