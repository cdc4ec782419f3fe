"""``complete``, ``generate`` and ``chat``: stream to the terminal, then a stats line."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import click

from cgstudio.cli.options import (
    emit_json,
    json_option,
    load_options,
    model_option,
    read_text_file,
    sampling_options,
    utf8_text,
    workspace_options,
)
from cgstudio.cli.repl import ChatRepl
from cgstudio.cli.reply import open_model, stream_reply
from cgstudio.core.errors import InvalidInputError, UsageError
from cgstudio.core.prompt import ContextFile, Prompt
from cgstudio.core.settings import MAX_INPUT_BYTES
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


def _generation_options(f: Any) -> Any:
    """What complete, generate and chat take after their own options, in this order."""
    shared = (
        click.option(
            "--dry-run", is_flag=True, help="Print the rendered prompt and its token ids; do not generate."
        ),
        model_option,
        load_options,
        sampling_options,
        guard_options,
        json_option,
    )
    for option in reversed(shared):  # as if stacked as decorators: the first listed comes first
        f = option(f)
    return f


def _run(m: Any, req: GenerationRequest, dry_run: bool, as_json: bool, transform: Any = None) -> None:
    """Show ``req``'s exact prompt (--dry-run), or generate it to the terminal."""
    if dry_run:
        _dry_run(m, m.prompt(req)[0], as_json)
    else:
        stream_reply(m, req, as_json, transform)


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
                "context": [c.as_dict() for c in prompt.context],
            }
        )
        return
    click.echo(text)
    click.echo(f"--- {len(prompt.tokens)} tokens ({prompt.mode}): {prompt.tokens}", err=True)
    click.echo(f"--- stop ids: {stops}", err=True)
    if prompt.context:
        listed = ", ".join(f"{c.path} ({c.tokens} tokens, {c.reason})" for c in prompt.context)
        click.echo(f"--- context: {listed}", err=True)


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
@click.option(
    "--block/--no-block",
    default=None,
    help="Stop at the end of the cursor's block (an editor ending) [on; profile: guards.fim_block_end].",
)
@click.option(
    "--endings/--no-endings",
    default=None,
    help="Every editor ending: block end, mid-line line end, bracket overlap, token healing [on].",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Send --prefix as an already rendered prompt: special-token text becomes special tokens.",
)
@workspace_options
@_generation_options
def complete(
    model: str | None,
    prefix: str | None,
    suffix: str | None,
    file_: str | None,
    cursor: str | None,
    path: str | None,
    context_file: tuple[str, ...],
    single_line: bool,
    block: bool | None,
    endings: bool | None,
    raw: bool,
    workspaces: tuple[str, ...],
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
        prefix, suffix = _split_at_cursor(read_text_file(file_, "file"), cursor)
        path = path or file_
    elif cursor:
        raise UsageError("--cursor needs --file")
    prefix, suffix = prefix or "", suffix or ""
    budget = MAX_INPUT_BYTES - len(prefix.encode()) - len(suffix.encode())
    files: list[ContextFile] = []
    for p in context_file:
        text = read_text_file(p, "context file", max(0, budget))
        budget -= len(text.encode())
        files.append(ContextFile(p, text))
    m = open_model(model, opts)
    if workspaces:
        from cgstudio.repo import RepoContext  # here: only complete with --workspace pays for bm25s

        m.repo = RepoContext(workspaces)
        if file_ is not None and path == file_:  # --file is relative to here, not to a workspace
            path = os.path.abspath(file_)
    ending_names = ("fim_block_end", "fim_line_end", "fim_bracket_overlap", "fim_token_healing")
    guards: dict[str, bool | None] = dict.fromkeys(ending_names, endings)
    guards["fim_single_line"] = single_line or None
    if block is not None:
        guards["fim_block_end"] = block
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
@_generation_options
def generate(
    request: str, language: str, explain: bool, dry_run: bool, model: str | None, as_json: bool, **opts: Any
) -> None:
    """Generate code for REQUEST: code, not advice."""
    m = open_model(model, opts)
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
@_generation_options
def chat(
    message: str | None, system: str | None, dry_run: bool, model: str | None, as_json: bool, **opts: Any
) -> None:
    """Chat: one-shot with MESSAGE (or text piped on stdin), an interactive REPL without.

    In the REPL, Enter sends and Alt-Enter starts a new line; a paste is one message; Ctrl-C
    stops a reply; /help lists the commands (/clear, /model, /system, /save, /load).
    """
    if message is None and not sys.stdin.isatty():
        message = _read_stdin()
    if message is None and (as_json or dry_run):
        raise UsageError("--json and --dry-run need a MESSAGE argument (or the message on stdin)")
    flags = dict(opts)  # open_model consumes the flags it reads; /model reopens with the same ones
    m = open_model(model, opts)
    if message is not None:
        msgs = [{"role": "system", "content": system}] if system else []
        msgs.append({"role": "user", "content": message})
        _run(m, GenerationRequest("chat", messages=msgs), dry_run, as_json)
        return
    ChatRepl(m, lambda name: open_model(name, dict(flags)), system).run()


def _read_stdin() -> str:
    """All of stdin as one message (at most the input limit; UTF-8)."""
    data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidInputError(
            f"stdin is larger than the input limit of {MAX_INPUT_BYTES // 2**20} MiB; send less"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"stdin is not valid UTF-8 (byte {exc.start}); send UTF-8 text") from exc
    if not text.strip():
        raise UsageError("no message on stdin: pass MESSAGE, pipe the message, or run in a terminal")
    return text
