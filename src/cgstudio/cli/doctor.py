"""``cgstudio doctor [--model M] [--json]``: check the machine, the llama.cpp build and a GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cgstudio.cli.options import emit_json, json_option, load_options, model_option, settings_from

MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


@click.command()
@model_option
@load_options
@json_option
def doctor(model: str | None, as_json: bool, **opts: Any) -> None:
    """Checks, each ok, warn or fail with a fix; exits 1 when one fails.

    Load flags (--ctx-size, --cache-type-k, --threads, ...) are the profile the memory and thread
    checks judge. Without --model (or CGSTUDIO_MODEL, or a model in the profile) only the machine
    is checked.
    """
    from rich.console import Console
    from rich.markup import escape

    from cgstudio.core.errors import DoctorFailedError
    from cgstudio.diagnostics import doctor as doc_mod
    from cgstudio.diagnostics.hardware import detect
    from cgstudio.store.resolve import resolve

    settings = settings_from(opts)
    spec = model or settings.model
    path: Path | None = None
    if spec:
        resolved = resolve(spec)
        if resolved.notice and not as_json:
            click.echo(f"note: {resolved.notice}", err=True)
        path = resolved.path
    report = doc_mod.run(detect(), settings.load, path)
    if as_json:
        emit_json(report)
    else:
        console = Console(highlight=False, soft_wrap=True)
        if report["model"]:
            m = report["model"]
            console.print(
                f"[bold]{escape(m['path'])}[/]: {m['family']}, variant {m['variant']} "
                f"({m['variant_confidence']}), fim: {str(m['fim']).lower()}"
            )
        elif not spec:
            console.print("no model given: checking the machine only (--model M checks a GGUF too)")
        for c in report["checks"]:
            console.print(f"{MARK[c['status']]}  [bold]{c['name']}[/]: {escape(c['detail'])}")
            if c["fix"] and c["status"] != "ok":
                console.print(f"        fix: {escape(c['fix'])}")
    failed = doc_mod.failed(report)
    if failed:
        raise DoctorFailedError(f"{len(failed)} check(s) failed: {', '.join(failed)}; see the fixes above")
