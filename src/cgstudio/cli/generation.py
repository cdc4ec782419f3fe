"""``complete``, ``generate`` and ``chat``: stream to the terminal, then a stats line."""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Iterator
from typing import Any

import click

from cgstudio.cli.options import (
    emit_json,
    json_option,
    load_options,
    model_option,
    require_utf8,
    sampling_options,
    settings_from,
    utf8_text,
)
from cgstudio.core.errors import InvalidInputError, UsageError
from cgstudio.core.prompt import ContextFile, Prompt
from cgstudio.core.settings import MAX_INPUT_BYTES
from cgstudio.generation.pipeline import Chunk, Result
from cgstudio.generation.request import GenerationRequest

CURSOR_MARK = "<CURSOR>"


def guard_options(f: Any) -> Any:
    f = click.option("--strict", is_flag=True, help="Variant mismatches are errors, not warnings.")(f)
    f = click.option("--no-repetition-guard", is_flag=True, help="Do not stop loops early.")(f)
    f = click.option(
        "--variant",
        type=click.Choice(["auto", "pretrained", "instruction-tuned"]),
        default=None,
        help="Override variant detection.",
    )(f)
    return f


def _open_model(model: str | None, opts: dict[str, Any]) -> Any:
    from cgstudio.engine.llamacpp import LlamaCppEngine
    from cgstudio.session.model import CodeModel
    from cgstudio.store.resolve import resolve

    settings = settings_from(opts)
    resolved = resolve(model, configured=settings.model)
    if resolved.notice:
        click.echo(f"note: {resolved.notice}", err=True)
    return CodeModel(LlamaCppEngine(resolved.path, settings.load), settings, resolved.alias)


def stats_line(r: Result) -> str:
    t = r.timings
    parts = []
    parts.append(
        f"thought for {t.time_to_first_token_s:.2f} s"
        if t.time_to_first_token_s is not None
        else "thought for — (no token)"
    )
    rate = t.generation_tokens_per_s
    parts.append(f"{rate:.1f} tok/s" if rate is not None else "— tok/s")
    parts.append(f"{r.usage.completion_tokens} tokens")
    parts.append(f"stop: {r.finish_reason}")
    return " · ".join(parts)


def _consume(chunks: Iterator[Chunk], as_json: bool, transform: Any = None) -> Result:
    out = sys.stderr if as_json else sys.stdout
    result: Result | None = None
    for chunk in chunks:
        if chunk.text and transform is None:
            out.write(chunk.text)
            out.flush()
        result = chunk.result or result
    assert result is not None
    if transform is not None:
        result.text = transform(result.text)
        out.write(result.text)
    if not result.text.endswith("\n"):
        out.write("\n")
    for w in result.warnings:
        click.echo(f"warning [{w.code}]: {w.message}", err=True)
    click.echo(stats_line(result), err=True)
    if as_json:
        emit_json(result.as_dict())
    return result


def _run(m: Any, req: GenerationRequest, dry_run: bool, as_json: bool, transform: Any = None) -> None:
    """Show ``req``'s exact prompt (--dry-run), or generate it to the terminal."""
    if dry_run:
        _dry_run(m, m.prompt(req)[0], as_json)
    else:
        _consume(m.stream(req), as_json, transform)


def _dry_run(m: Any, prompt: Prompt, as_json: bool) -> None:
    text = m.vocab.render(prompt.tokens)
    stops = sorted(prompt.stop_ids)
    if as_json:
        emit_json(
            {
                "prompt_text": text,
                "prompt_tokens": prompt.tokens,
                "mode": prompt.mode,
                "stop": {
                    "token_ids": stops,
                    "tokens": [m.vocab.render([s]) for s in stops],
                    "strings": prompt.stop_strings,
                },
                "warnings": [w.as_dict() for w in prompt.warnings],
            }
        )
        return
    click.echo(text)
    click.echo(f"--- {len(prompt.tokens)} tokens ({prompt.mode}): {prompt.tokens}", err=True)
    click.echo(f"--- stop ids: {stops}", err=True)


def _read_text(path: str, what: str, limit: int = MAX_INPUT_BYTES) -> str:
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


def _split_at_cursor(text: str, cursor: str | None) -> tuple[str, str]:
    if cursor:
        m = re.fullmatch(r"(\d+):(\d+)", cursor)
        if not m:
            raise UsageError("--cursor takes LINE:COL, 1-based (e.g. 12:5)")
        line, col = int(m.group(1)), int(m.group(2))
        lines = text.split("\n")
        if not 1 <= line <= len(lines) or not 1 <= col <= len(lines[line - 1]) + 1:
            raise UsageError(f"--cursor {cursor} is outside the file ({len(lines)} lines)")
        offset = sum(len(ln) + 1 for ln in lines[: line - 1]) + col - 1
        return text[:offset], text[offset:]
    if text.count(CURSOR_MARK) != 1:
        raise UsageError(f"--file needs --cursor LINE:COL or exactly one {CURSOR_MARK} marker in the file")
    before, _, after = text.partition(CURSOR_MARK)
    return before, after


@click.command()
@click.option("--prefix", default=None, callback=utf8_text, help="Code before the cursor.")
@click.option("--suffix", default=None, callback=utf8_text, help="Code after the cursor.")
@click.option(
    "--file", "file_", default=None, help="File to complete in (with --cursor or a <CURSOR> marker)."
)
@click.option("--cursor", default=None, help="LINE:COL of the cursor in --file (1-based).")
@click.option(
    "--path",
    "path",
    default=None,
    callback=utf8_text,
    help="File path for the prompt's path line [--file's path].",
)
@click.option("--context-file", multiple=True, help="Other files for multi-file context (repeatable).")
@click.option("--single-line", is_flag=True, help="Return at most one line.")
@click.option("--block", is_flag=True, help="Stop at the end of the cursor's block (indentation).")
@click.option(
    "--raw",
    is_flag=True,
    help="Send --prefix as an already rendered prompt: special-token text becomes special tokens.",
)
@click.option("--dry-run", is_flag=True, help="Print the rendered prompt and its token ids; do not generate.")
@model_option
@load_options
@sampling_options
@guard_options
@json_option
def complete(
    model: str | None,
    prefix: str | None,
    suffix: str | None,
    file_: str | None,
    cursor: str | None,
    path: str | None,
    context_file: tuple[str, ...],
    single_line: bool,
    block: bool,
    raw: bool,
    dry_run: bool,
    as_json: bool,
    **opts: Any,
) -> None:
    """Fill in the middle at a cursor, or continue code when there is no suffix."""
    if raw and (suffix or file_ or context_file):
        raise UsageError("--raw takes only --prefix: the whole prompt, already rendered")
    if file_ is not None:
        if prefix is not None or suffix is not None:
            raise UsageError("use either --file or --prefix/--suffix, not both")
        prefix, suffix = _split_at_cursor(_read_text(file_, "file"), cursor)
        path = path or file_
    elif cursor:
        raise UsageError("--cursor needs --file")
    prefix, suffix = prefix or "", suffix or ""
    budget = MAX_INPUT_BYTES - len(prefix.encode()) - len(suffix.encode())
    files: list[ContextFile] = []
    for p in context_file:
        text = _read_text(p, "context file", max(0, budget))
        budget -= len(text.encode())
        files.append(ContextFile(p, text))
    m = _open_model(model, opts)
    guards = {"fim_single_line": single_line or None, "fim_block_end": block or None}
    guards = {k: v for k, v in guards.items() if v is not None}
    if raw:
        req = GenerationRequest("raw", prefix, guards=guards)
    else:
        req = GenerationRequest("fim", prefix, suffix, files=tuple(files), path=path, guards=guards)
    _run(m, req, dry_run, as_json)


@click.command()
@click.argument("request", callback=utf8_text)
@click.option(
    "--language", "-l", default="python", show_default=True, callback=utf8_text, help="Target language."
)
@click.option("--explain", is_flag=True, help="Keep the model's prose (instruction-tuned models).")
@click.option("--dry-run", is_flag=True, help="Print the rendered prompt and its token ids; do not generate.")
@model_option
@load_options
@sampling_options
@guard_options
@json_option
def generate(
    request: str, language: str, explain: bool, dry_run: bool, model: str | None, as_json: bool, **opts: Any
) -> None:
    """Generate code for REQUEST: code, not advice."""
    m = _open_model(model, opts)
    from cgstudio.generation.codeblocks import extract_code

    transform = extract_code if m.variant.variant == "instruction-tuned" and not explain else None
    req = GenerationRequest("generate", request, language=language, explain=explain)
    _run(m, req, dry_run, as_json, transform)


@click.command()
@click.argument("message", required=False, callback=utf8_text)
@click.option(
    "--system",
    default=None,
    callback=utf8_text,
    help="System message (folded into the first user turn for Gemma).",
)
@click.option("--dry-run", is_flag=True, help="Print the rendered prompt and its token ids; do not generate.")
@model_option
@load_options
@sampling_options
@guard_options
@json_option
def chat(
    message: str | None, system: str | None, dry_run: bool, model: str | None, as_json: bool, **opts: Any
) -> None:
    """Chat: one-shot with MESSAGE, an interactive REPL without."""
    m = _open_model(model, opts)
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    if message is not None:
        msgs = [*history, {"role": "user", "content": message}]
        _run(m, GenerationRequest("chat", messages=msgs), dry_run, as_json)
        return
    if as_json or dry_run:
        raise UsageError("--json and --dry-run need a MESSAGE argument")
    click.echo(
        f"chatting with {m.alias} ({m.family}, {m.variant.variant}); empty line or Ctrl-D quits", err=True
    )
    while True:
        try:
            line = require_utf8("that line", input("> "))
        except EOFError:
            break
        except (UnicodeDecodeError, UsageError):
            click.echo("error: that line is not valid UTF-8; type it again", err=True)
            continue
        if not line.strip():
            break
        history.append({"role": "user", "content": line})
        result = _consume(m.stream(GenerationRequest("chat", messages=history)), False)
        history.append({"role": "assistant", "content": result.text})
