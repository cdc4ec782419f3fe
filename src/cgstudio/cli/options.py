"""Shared CLI options. Flag names follow llama.cpp's; values are validated by ``Settings``."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cgstudio.core.errors import InvalidInputError, UsageError
from cgstudio.core.settings import MAX_INPUT_BYTES, Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


def require_utf8(what: str, value: str) -> str:
    """Refuse text that is not valid UTF-8 with a usage error naming ``what``.

    Python hands argv bytes that are not UTF-8 over as lone surrogates (surrogateescape); they
    would fail later, when the text is encoded for the tokenizer.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        byte = f"byte 0x{ord(bad) - 0xDC00:02x}" if "\udc80" <= bad <= "\udcff" else "a lone surrogate"
        raise UsageError(
            f"{what} is not valid UTF-8 ({byte} at character {exc.start + 1}); "
            "pass UTF-8 text (check the terminal's or the file's encoding)"
        ) from None
    return value


def utf8_text(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Click callback for text options and arguments: see ``require_utf8``."""
    if value is None:
        return None
    name = param.opts[0] if param.param_type_name == "option" else (param.name or "argument").upper()
    for v in value if isinstance(value, tuple | list) else (value,):
        require_utf8(name, v)
    return value


# flag -> (settings section, field). None values mean "not given on the command line".
LOAD_FLAGS: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
    (("--ctx-size", "-c"), "n_ctx", {"type": int, "help": "Context length in tokens [8192]."}),
    (("--n-gpu-layers", "-ngl"), "n_gpu_layers", {"type": str, "help": "GPU layers: 0..N or 'all' [0]."}),
    (("--threads", "-t"), "n_threads", {"type": int, "help": "CPU threads [physical cores]."}),
    (("--batch-size", "-b"), "n_batch", {"type": int, "help": "Evaluation batch size [512]."}),
    (("--rope-freq-base",), "rope_freq_base", {"type": str, "help": "RoPE base or 'auto' [auto]."}),
    (("--rope-freq-scale",), "rope_freq_scale", {"type": str, "help": "RoPE scale or 'auto' [auto]."}),
    (
        ("--no-kv-offload",),
        "offload_kqv",
        {"is_flag": True, "flag_value": False, "default": None, "help": "Keep the KV cache off the GPU."},
    ),
    (
        ("--mlock",),
        "use_mlock",
        {"is_flag": True, "flag_value": True, "default": None, "help": "Keep the model in memory."},
    ),
    (
        ("--no-mmap",),
        "use_mmap",
        {"is_flag": True, "flag_value": False, "default": None, "help": "Do not mmap the weights."},
    ),
    (
        ("--flash-attn", "-fa"),
        "flash_attn",
        {"is_flag": True, "flag_value": True, "default": None, "help": "Use flash attention."},
    ),
    (
        ("--kv-shift-reuse",),
        "kv_shift_reuse",
        {
            "is_flag": True,
            "flag_value": True,
            "default": None,
            "help": "Reuse a FIM suffix's cached KV shifted after an edit: faster keystrokes, but answers "
            "can differ from a cold run [off: exact prefix reuse only].",
        },
    ),
    (("--cache-type-k", "-ctk"), "cache_type_k", {"type": str, "help": "K cache type [f16]."}),
    (
        ("--cache-type-v", "-ctv"),
        "cache_type_v",
        {"type": str, "help": "V cache type [f16]; quantized needs -fa."},
    ),
]
SAMPLING_FLAGS: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
    (
        ("--max-tokens", "-n", "--n-predict"),
        "max_tokens",
        {"type": int, "help": "Most tokens to generate [256]."},
    ),
    (("--temperature", "--temp"), "temperature", {"type": float, "help": "0 = greedy [0.2]."}),
    (("--top-k",), "top_k", {"type": int, "help": "[40]; 0 = off."}),
    (("--top-p",), "top_p", {"type": float, "help": "[0.95]."}),
    (("--min-p",), "min_p", {"type": float, "help": "[0.05]."}),
    (("--repeat-penalty",), "repeat_penalty", {"type": float, "help": "[1.0] = off."}),
    (("--stop",), "stop", {"multiple": True, "callback": utf8_text, "help": "Stop string (repeatable)."}),
]


def load_options(f: F) -> F:
    for flags, field, spec in reversed(LOAD_FLAGS):
        kw = {k: v for k, v in spec.items() if k != "default"}
        f = click.option(*flags, f"{field}__opt", default=None, **kw)(f)
    f = click.option(
        "--seed", "seed__opt", type=int, default=None, help="Seed for reproducible output [random]."
    )(f)
    return f


def sampling_options(f: F) -> F:
    for flags, field, kw in reversed(SAMPLING_FLAGS):
        f = click.option(*flags, f"{field}__opt", default=None, **kw)(f)
    return f


def model_option(f: F) -> F:
    return click.option(
        "-m",
        "--model",
        envvar="CGSTUDIO_MODEL",
        default=None,
        help="GGUF path or alias [CGSTUDIO_MODEL, profile, or a demo model].",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(f)


def settings_from(opts: dict[str, Any]) -> Settings:
    load: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    for _, field, _ in LOAD_FLAGS:
        load[field] = opts.pop(f"{field}__opt", None)
    for _, field, _ in SAMPLING_FLAGS:
        value = opts.pop(f"{field}__opt", None)
        sampling[field] = list(value) if field == "stop" and value else (None if field == "stop" else value)
    seed = opts.pop("seed__opt", None)
    load["seed"] = seed
    sampling["seed"] = seed
    guards = {
        "strict": opts.pop("strict", None) or None,
        "repetition": False if opts.pop("no_repetition_guard", False) else None,
        "variant": opts.pop("variant", None),
        "context_tokens": opts.pop("context_tokens", None),
    }
    return load_settings({"load": load, "sampling": sampling, "guards": guards})


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def read_text_file(path: str, what: str, limit: int = MAX_INPUT_BYTES) -> str:
    """Read a regular UTF-8 file of at most ``limit`` bytes (the server's request limit).

    The open does not block and the read is bounded: a FIFO, a device (``/dev/zero``) or a huge
    file is refused with a message, not read until memory runs out.
    """
    require_utf8(f"{what} name", path)  # the path also goes into the prompt
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a pipe or a device?)"
            raise InvalidInputError(f"{what} {path} is {kind}; pass a text file")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise InvalidInputError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise InvalidInputError(
            f"{what} {path} takes the input past its limit of {MAX_INPUT_BYTES // 2**20} MiB "
            "(the server's request limit); pass a smaller file or the code near the cursor"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{what} {path} is not valid UTF-8 (byte {exc.start}); convert it to UTF-8 first"
        ) from exc


def workspace_options(f: Any) -> Any:
    """``--workspace DIR`` (repeatable) and ``--context-tokens N``: repository context (cgstudio.repo)."""
    f = click.option(
        "--context-tokens",
        type=click.IntRange(0, 1_048_576),
        default=None,
        help="Token budget for context files in FIM prompts [half the context less --max-tokens].",
    )(f)
    f = click.option(
        "--workspace",
        "workspaces",
        multiple=True,
        type=click.Path(exists=True, file_okay=False),
        help="A project folder (repeatable): a file inside one gets repository context (its imports, "
        "its test, BM25-retrieved chunks, recent edits). Nothing else on disk is read.",
    )(f)
    return f
