"""``cgstudio pull NAME[:QUANT]``: download a CodeGemma GGUF from the Hugging Face Hub into the store."""

from __future__ import annotations

from typing import Any

import click

from cgstudio.cli.options import emit_json, json_option


def _print_catalog() -> None:
    from cgstudio.store.catalog import CATALOG, DEFAULT_QUANT

    for e in CATALOG.values():
        click.echo(f"{e.name:<22} {e.variant:<18} {e.description}")
        for s in e.sources:
            quants = ", ".join(s.quants[-6:]) if s.quants else "see the repository"
            flag = "" if s.verified else "  [file names unverified]"
            click.echo(f"    {s.kind:<10} {s.repo}  ({quants}){flag}")
    click.echo(f"default quantization: {DEFAULT_QUANT}; any repository works too: pull owner/name-GGUF:QUANT")


@click.command()
@click.argument("name", required=False)
@click.option("--alias", "-a", default=None, help="Store alias [NAME:quant, e.g. codegemma-2b:q4_k_m].")
@click.option(
    "--repo", default=None, help="Download from this Hub repository instead of the catalog's choice."
)
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit.")
@click.option("--force", is_flag=True, help="Download again even if the verified file is in the store.")
@click.option("--list", "list_catalog", is_flag=True, help="Show the known repositories and exit.")
@json_option
def pull(
    name: str | None,
    alias: str | None,
    repo: str | None,
    revision: str,
    force: bool,
    list_catalog: bool,
    as_json: bool,
) -> None:
    """Download NAME[:QUANT] (e.g. codegemma-2b, codegemma-7b-it:Q8_0) from the Hugging Face Hub.

    Resumes an interrupted download, verifies the sha256 the Hub publishes, and registers the file
    under an alias for --model. Gated Google repositories need HF_TOKEN and the accepted Gemma
    license. HF_ENDPOINT points at a mirror.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from cgstudio.store.hub import RemoteFile
    from cgstudio.store.pull import pull as do_pull

    if list_catalog or not name:
        if not name and not list_catalog:
            raise click.UsageError("give a model NAME[:QUANT], or --list to see the catalog")
        _print_catalog()
        return
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    state: dict[str, Any] = {}

    def on_start(remote: RemoteFile) -> None:
        console.print(f"{remote.repo} @ {remote.commit[:12]}: {remote.filename}")

    def on_progress(done: int, total: int) -> None:
        if "task" not in state:
            progress.start()
            state["task"] = progress.add_task("download", total=total or None, completed=done)
        progress.update(state["task"], completed=done, total=total or None)

    try:
        result = do_pull(
            name,
            repo=repo,
            alias=alias,
            revision=revision,
            force=force,
            progress=on_progress,
            on_start=on_start,
        )
    finally:
        if "task" in state:
            progress.stop()
    m = result.model
    if as_json:
        emit_json(
            {
                **m.public(),
                "repo": result.repo,
                "filename": result.filename,
                "commit": result.commit,
                "downloaded": result.downloaded,
            }
        )
        return
    verb = "downloaded" if result.downloaded else "already in the store,"
    click.echo(f"{verb} sha256 verified: {m.alias} -> {m.path}")
    click.echo(
        f"use it: cgstudio complete --model {m.alias} ...   (check it: cgstudio doctor --model {m.alias})"
    )
