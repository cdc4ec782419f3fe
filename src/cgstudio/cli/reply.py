"""Printing one generation: the streamed text, warnings, a stats line and, with --json, the document.

The text printed is the chunks' text, which the pipeline only streams once its rules have
settled it, so what the terminal shows is the final ``text`` of ``--json`` and of the server.
A spinner on stderr covers the silent part: loading (``open_model``), then the prompt's evaluation.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import click

from cgstudio.cli.options import emit_json, settings_from
from cgstudio.cli.spinner import Spinner
from cgstudio.core.prompt import Prompt
from cgstudio.generation.pipeline import Chunk, Result
from cgstudio.generation.request import GenerationRequest


def open_model(model: str | None, opts: dict[str, Any], spinner: Spinner | None = None) -> Any:
    """Resolve ``model`` and load it with the command's flags, a "Loading NAME…" spinner meanwhile."""
    # Imported here: llama_cpp costs start-up time that `--help` must not pay.
    from cgstudio.engine.llamacpp import LlamaCppEngine
    from cgstudio.session.model import CodeModel
    from cgstudio.store.resolve import resolve

    settings = settings_from(opts)
    resolved = resolve(model, configured=settings.model)
    if resolved.notice:
        click.echo(f"note: {resolved.notice}", err=True)
    with spinner or Spinner() as shown:
        shown.show(f"Loading {resolved.alias}…")
        engine = LlamaCppEngine(resolved.path, settings.load)
    return CodeModel(engine, settings, resolved.alias)


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


def prompt_spinner(spinner: Spinner) -> Callable[[Prompt], None]:
    """An ``on_prompt`` hook: "evaluating prompt (N tokens)…" until the first chunk."""
    return lambda prompt: spinner.show(f"evaluating prompt ({len(prompt.tokens):,} tokens)…")


def consume(
    chunks: Iterator[Chunk],
    as_json: bool,
    transform: Any = None,
    *,
    spinner: Spinner | None = None,
    printed: list[str] | None = None,
) -> Result:
    """Print ``chunks`` (to stderr with --json: stdout then holds only the document).

    ``printed`` collects the text as it is printed, for a caller that may interrupt the stream.
    """
    out = sys.stderr if as_json else sys.stdout
    result: Result | None = None
    try:
        for chunk in chunks:
            if spinner is not None:
                spinner.stop()
            if chunk.text and transform is None:
                out.write(chunk.text)
                out.flush()
                if printed is not None:
                    printed.append(chunk.text)
            result = chunk.result or result
    finally:
        if spinner is not None:
            spinner.stop()
    assert result is not None
    if transform is not None:
        result.text = transform(result.text)
        out.write(result.text)
    if not result.text.endswith("\n"):
        out.write("\n")
    out.flush()
    for w in result.warnings:
        click.echo(f"warning [{w.code}]: {w.message}", err=True)
    click.echo(stats_line(result), err=True)
    if as_json:
        emit_json(result.as_dict())
    return result


def stream_reply(
    m: Any,
    req: GenerationRequest,
    as_json: bool,
    transform: Any = None,
    *,
    cancel: threading.Event | None = None,
    printed: list[str] | None = None,
) -> Result:
    """Generate ``req`` on ``m`` (a CodeModel) to the terminal, with the prompt-evaluation spinner."""
    spinner = Spinner()
    chunks = m.stream(req, cancel=cancel, on_prompt=prompt_spinner(spinner))
    try:
        return consume(chunks, as_json, transform, spinner=spinner, printed=printed)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # an interrupted stream frees its sequence now, not at garbage collection
