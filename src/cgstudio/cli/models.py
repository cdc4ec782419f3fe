"""``cgstudio models list|add|rm``: the local model store (see cgstudio.store.store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cgstudio.cli.options import emit_json, json_option


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


@click.group("models")
def models_group() -> None:
    """List, add and remove models in the local store.

    The store lives in $CGSTUDIO_HOME/models (default $XDG_DATA_HOME/cgstudio/models). Every
    --model option takes a store alias.
    """


@models_group.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """Alias, family, variant, quantization, size and path of each stored model, then the demo models.

    The demo models (small stand-ins, not CodeGemma) are what commands use when no model is
    given; they are marked "demo", and with --json carry "demo": true.
    """
    from cgstudio.store.store import ModelStore, store_dir

    models = [{**m.public(), "demo": False} for m in ModelStore().list()]
    demos = _demo_entries()
    if as_json:
        emit_json(models + demos)
        return
    rows = [("ALIAS", "FAMILY", "VARIANT", "QUANT", "SIZE", "PATH")]
    for m in models:
        path = m["path"] if m["exists"] else f"{m['path']} (missing)"
        rows.append((m["alias"], m["family"], m["variant"], m["quantization"], _size(m["size_bytes"]), path))
    for d in demos:
        if d["exists"]:
            where = f"demo: {d['path']}"
            row = (d["alias"], d["family"], d["variant"], d["quantization"], _size(d["size_bytes"]))
        else:
            where = "demo: assembled on first use" if d["installed"] else "demo: not installed (make setup)"
            row = (d["alias"], "-", "-", "-", "-")
        rows.append((*row, where))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    if not models:
        click.echo(
            f"\nno models of your own in {store_dir()}: the demo models are small stand-ins, not "
            "CodeGemma; `cgstudio pull codegemma-2b` or `cgstudio models add PATH.gguf`"
        )


def _demo_entries() -> list[dict[str, Any]]:
    """The demo models: inspected when assembled, else what is known without assembling them."""
    from cgstudio.store import demo
    from cgstudio.store.store import describe_file

    entries = []
    for key, d in demo.DEMO_MODELS.items():
        path = demo.assembled(key)
        entry: dict[str, Any]
        if path is not None:
            entry = describe_file(path, alias=key, managed=False, source="demo", sha256=d.sha256).public()
            del entry["added_at"]  # nobody added it: it comes with cgstudio
        else:
            entry = {"alias": key, "path": str(demo.cache_dir() / d.filename), "exists": False}
        entries.append(
            {**entry, "demo": True, "installed": demo.installed(key), "description": d.description}
        )
    return entries


@models_group.command("add")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--alias", "-a", default=None, help="Name to use with --model [the file name, lower-cased].")
@click.option("--copy", is_flag=True, help="Copy the file into the store instead of registering it in place.")
@json_option
def add_cmd(path: Path, alias: str | None, copy: bool, as_json: bool) -> None:
    """Register an existing GGUF (in place unless --copy)."""
    from cgstudio.store.store import ModelStore

    entry = ModelStore().add(path, alias=alias, copy=copy)
    if as_json:
        emit_json(entry.public())
        return
    how = "copied to" if copy else "registered in place:"
    click.echo(
        f"{entry.alias}: {entry.family} {entry.variant}, {entry.quantization}, {_size(entry.size_bytes)}; "
        f"{how} {entry.path}"
    )


@models_group.command("rm")
@click.argument("alias")
@click.option(
    "--delete-file/--keep-file",
    default=None,
    help="Delete the GGUF too [yes for pulled or copied files, no for files added in place]; "
    "only files inside the store are ever deleted.",
)
def rm_cmd(alias: str, delete_file: bool | None) -> None:
    """Remove ALIAS from the store."""
    from cgstudio.store.store import ModelStore

    entry, deleted = ModelStore().remove(alias, delete_file=delete_file)
    click.echo(f"removed {entry.alias}" + (f"; deleted {entry.path}" if deleted else f"; kept {entry.path}"))
