"""Settings: one pydantic model validates CLI flags, environment variables and the TOML profile.

Precedence (highest first): CLI flag / API keyword, ``CGSTUDIO_*`` environment variable,
the TOML profile file (``$CGSTUDIO_PROFILE`` or ``$XDG_CONFIG_HOME/cgstudio/profile.toml``),
then the defaults below. Nested env vars use ``__``: ``CGSTUDIO_LOAD__N_CTX=4096``.

``LoadProfile`` holds the 13 load parameters LM Studio shows, with the same meanings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cgstudio.core.errors import SettingsError

CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
UNQUANTIZED_CACHE: frozenset[str] = frozenset({"f32", "f16", "bf16"})
CODEGEMMA_TRAINED_CTX = 8192
#: The most bytes of text one request or input file may carry: the server's default request body
#: limit (``max_body_bytes``), so the CLI and the server accept the same inputs.
MAX_INPUT_BYTES = 8 << 20
#: ggml's thread pool holds at most this many threads (GGML_MAX_N_THREADS in ggml.h).
GGML_MAX_N_THREADS = 512


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoadProfile(_Strict):
    """The 13 LM Studio load parameters. Flag names follow llama.cpp's."""

    n_ctx: int = Field(
        CODEGEMMA_TRAINED_CTX,
        ge=16,
        le=1_048_576,
        description="Context length in tokens (--ctx-size). CodeGemma was trained on 8192.",
    )
    n_gpu_layers: int = Field(
        0,
        ge=-1,
        le=100_000,
        description="Layers offloaded to the GPU (--n-gpu-layers); 0 = CPU only, -1 = all.",
    )
    n_threads: int | None = Field(
        None,
        ge=1,
        le=GGML_MAX_N_THREADS,
        description="CPU thread pool size (--threads); unset = physical cores.",
    )
    n_batch: int = Field(
        512,
        ge=1,
        le=65536,
        description="Evaluation batch size (--batch-size); raised to n_parallel when below it.",
    )
    rope_freq_base: float | None = Field(
        None,
        gt=0,
        le=1e12,
        allow_inf_nan=False,
        description="RoPE frequency base (--rope-freq-base); unset/'auto' = from the GGUF.",
    )
    rope_freq_scale: float | None = Field(
        None,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="RoPE frequency scale (--rope-freq-scale); unset/'auto' = from the GGUF.",
    )
    offload_kqv: bool = Field(True, description="Keep the KV cache on the GPU (--no-kv-offload turns off).")
    use_mlock: bool = Field(False, description="Keep the model in memory, mlock (--mlock).")
    use_mmap: bool = Field(True, description="Try mmap to load the weights (--no-mmap turns off).")
    seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="Seed; unset = random, an integer = reproducible output."
    )
    flash_attn: bool = Field(False, description="Flash attention (--flash-attn).")
    cache_type_k: CacheType = Field("f16", description="K cache type (--cache-type-k).")
    cache_type_v: CacheType = Field(
        "f16", description="V cache type (--cache-type-v); a quantized V cache needs flash attention."
    )

    # Beyond LM Studio's 13: how the engine shares the context (llama.cpp server flag names).
    n_parallel: int = Field(
        1, ge=1, le=64, description="Sequences decoded together in one batch (--parallel); each gets n_ctx."
    )
    cache_reuse: int = Field(
        32,
        ge=0,
        le=65536,
        description="Min. chunk (tokens) of a cached prompt reused by KV shifting (--cache-reuse) when "
        "kv_shift_reuse is on; 0 = prefix only.",
    )
    kv_shift_reuse: bool = Field(
        False,
        description="Approximate KV reuse for FIM keystrokes (--kv-shift-reuse): reuse the cached suffix "
        "shifted to its new positions instead of evaluating it again. Faster, but the suffix keeps what "
        "was computed under the old prefix, so answers can differ from a cold run. Off: only the exact "
        "common prefix is reused.",
    )
    speculative: Literal["auto", "off", "on"] = Field(
        "auto",
        description="Prompt-lookup speculative decoding: auto = for sampled requests only, and only while "
        "drafts are accepted (greedy output stays plain decoding's, token for token); on = always, also "
        "under greedy, where llama.cpp's batched verification can flip a near-tie.",
    )

    @field_validator("rope_freq_base", "rope_freq_scale", mode="before")
    @classmethod
    def _auto_is_none(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("auto", ""):
            return None
        return v

    @field_validator("n_gpu_layers", mode="before")
    @classmethod
    def _all_layers(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("all", "max"):
            return -1
        return v

    @model_validator(mode="after")
    def _v_cache_needs_flash(self) -> LoadProfile:
        if self.cache_type_v not in UNQUANTIZED_CACHE and not self.flash_attn:
            raise ValueError(
                f"cache_type_v={self.cache_type_v} (a quantized V cache) needs flash attention: "
                "add --flash-attn or use --cache-type-v f16"
            )
        return self


class SamplingParams(_Strict):
    """Sampling options. Defaults suit code: low temperature, no repeat penalty."""

    temperature: float = Field(0.2, ge=0.0, le=5.0, description="0 = greedy.")
    top_k: int = Field(40, ge=0, description="0 = off.")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    min_p: float = Field(0.05, ge=0.0, le=1.0)
    repeat_penalty: float = Field(1.0, gt=0.0, le=10.0, description="1.0 = off; >1 harms code.")
    repeat_last_n: int = Field(64, ge=0, le=4096)
    max_tokens: int = Field(256, ge=1, le=1_048_576, description="Most tokens to generate.")
    stop: list[str] = Field(default_factory=list, description="Extra stop strings.")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="Per-request seed; unset = profile seed.")
    # Decode options that ride with a request (llama.cpp server names).
    speculative: bool | None = Field(
        None, description="Prompt-lookup speculation for this request; unset = the load profile's choice."
    )
    cache_prompt: bool = Field(True, description="Reuse the KV cache of earlier prompts (false = cold).")
    t_max_prompt_ms: int | None = Field(
        None,
        ge=0,
        le=86_400_000,
        description="The prompt phase's budget in ms (llama.cpp's t_max_prompt_ms): past it the request "
        "ends before generating; what was evaluated stays cached. Unset or 0 = no limit.",
    )
    n: int = Field(
        1,
        ge=1,
        le=64,
        description="Choices from one prompt evaluation (OpenAI n, llama.cpp n_cmpl); at most the "
        "engine's sequences (--parallel), fewer with an n_reduced warning.",
    )

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, v: list[str]) -> list[str]:
        if any(s == "" for s in v):
            raise ValueError("stop strings must be non-empty")
        return v


class GuardSettings(_Strict):
    """Guards against the failures users hit (issue 3). Each can be switched off."""

    repetition: bool = Field(True, description="Stop loops and garbage with finish_reason 'repetition'.")
    repetition_min_lines: int = Field(
        8, ge=2, le=10_000, description="Identical code lines in a row that count as a loop."
    )
    repetition_block_repeats: int = Field(
        12,
        ge=2,
        le=10_000,
        description="Copies of a multi-line block shape (digits normalised) that count as a loop.",
    )
    repetition_shape_lines: int = Field(
        40,
        ge=2,
        le=10_000,
        description="Lines of one shape (digits normalised) in a row that count as a loop.",
    )
    strict: bool = Field(False, description="Turn variant_mismatch warnings into errors.")
    fim_stop_at_suffix: bool = Field(True, description="Stop when a FIM completion repeats the suffix.")
    fim_single_line: bool = Field(False, description="FIM returns at most one line.")
    # The editor endings (issue 16): on by default, applied on editor paths only (FIM with a suffix,
    # /infill, cgstudio complete); plain continuations and the eval's paper protocol never get them.
    fim_block_end: bool = Field(
        True,
        description="Editor paths: stop at the end of the cursor's block (a dedent below it in "
        "indentation languages; the '}' that closes it in brace languages).",
    )
    fim_line_end: bool = Field(
        True, description="Editor paths: a cursor with text on both sides completes its line only."
    )
    fim_bracket_overlap: bool = Field(
        True,
        description="Editor paths: end before a closing bracket or quote that the suffix already has.",
    )
    fim_token_healing: bool = Field(
        True,
        description="Editor paths: back the prompt up to the last token boundary and make the first "
        "token start with the text removed (no doubled space after 'return ').",
    )
    fim_cursor_line_in_middle: bool = Field(
        True,
        description="Editor paths: the cursor line's text before the cursor goes after the FIM middle "
        "token (llama.vim's /infill layout), so typing on a line only appends to the prompt and the "
        "cached suffix stays valid: a keystroke evaluates the new characters, not the suffix again.",
    )
    fim_suffix_tokens: int = Field(
        128,
        ge=0,
        le=1_048_576,
        description="Editor paths: send at most this many tokens of the code after the cursor (0: all "
        "of it). The prompt is prefix, suffix, middle, so every keystroke evaluates the suffix again: "
        "a bounded suffix bounds a keystroke's cost. 128 is what llama-server's /infill keeps at batch 512 "
        "(n_batch/4); the suffixes of 295 of the 300 seeded HumanEval infilling tasks fit in it.",
    )
    fim_prefix_tokens: int = Field(
        384,
        ge=0,
        le=1_048_576,
        description="Editor paths: send the code before the cursor from a line start about this many "
        "tokens back (0: all of it), so that a first request in a file costs a bounded prompt however "
        "long the file. 384 is what llama-server's /infill keeps at batch 512 (3 n_batch/4). The start "
        "is kept while the window grows to twice that, so typing only appends to the cached prompt.",
    )
    fim_prefix_share: float = Field(
        0.75, gt=0.0, lt=1.0, description="Share of the FIM token budget kept for the prefix when trimming."
    )
    context_tokens: int | None = Field(
        None,
        ge=0,
        le=1_048_576,
        description="Token budget for context files (repository context and input_extra) in FIM "
        "prompts (--context-tokens); unset = half the context less max_tokens.",
    )
    variant: Literal["auto", "pretrained", "instruction-tuned"] = Field(
        "auto", description="Override variant detection."
    )


def default_profile_path() -> Path:
    if p := os.environ.get("CGSTUDIO_PROFILE"):
        return Path(p)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cgstudio" / "profile.toml"


class Settings(BaseSettings):
    """Everything configurable, from one source of truth."""

    model_config = SettingsConfigDict(
        env_prefix="CGSTUDIO_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    model: str | None = Field(None, description="Default model: a GGUF path or a store alias.")
    load: LoadProfile = Field(default_factory=LoadProfile)
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    guards: GuardSettings = Field(default_factory=GuardSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=default_profile_path())
        return (init_settings, env_settings, toml)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "settings"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Build validated settings; ``overrides`` are CLI/API values (nested dicts, None = unset)."""
    clean = _drop_none(overrides or {})
    try:
        return _with_nested_defaults(clean)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from exc
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML profile
        raise SettingsError(f"cannot read profile {default_profile_path()}: {exc}") from exc


def _with_nested_defaults(overrides: dict[str, Any]) -> Settings:
    # pydantic-settings replaces a nested model wholesale when init kwargs give part of it;
    # merge the env/TOML values in first so a CLI flag overrides one field, not the section.
    base = Settings()
    merged = _deep_merge(base.model_dump(exclude_unset=False), overrides)
    return Settings.model_validate(merged)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            sub = _drop_none(v)
            if sub:
                out[k] = sub
        elif v is not None:
            out[k] = v
    return out
