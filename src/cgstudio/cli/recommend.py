"""``cgstudio recommend [--model M] [--task completion|chat] [--json] [--write]``."""

from __future__ import annotations

import click

from cgstudio.cli.options import emit_json, json_option, model_option


@click.command()
@model_option
@click.option(
    "--task",
    type=click.Choice(["completion", "chat"]),
    default="completion",
    show_default=True,
    help="What the model is for: FIM completion or chat.",
)
@click.option("--write", is_flag=True, help="Write the profile to the [load] table of the TOML profile file.")
@json_option
def recommend(model: str | None, task: str, write: bool, as_json: bool) -> None:
    """Propose the 13 load parameters for this machine, each with its reason, and the variant to use."""
    from cgstudio.core.settings import default_profile_path, load_settings
    from cgstudio.diagnostics.hardware import detect
    from cgstudio.diagnostics.recommend import recommend as do_recommend
    from cgstudio.diagnostics.recommend import write_profile
    from cgstudio.engine.llamacpp import inspect_model
    from cgstudio.store.resolve import resolve

    resolved = resolve(model, configured=load_settings().model)
    if resolved.notice:
        click.echo(f"note: {resolved.notice}", err=True)
    info = inspect_model(resolved.path)
    rec = do_recommend(info, detect(), task, resolved.alias)  # type: ignore[arg-type]
    written = write_profile(rec.profile, default_profile_path()) if write else None
    if as_json:
        emit_json({**rec.to_json(), "written": str(written) if written else None})
        return
    click.echo(f"{resolved.alias} for {task}:")
    width = max(len(k) for k in rec.profile)
    for key, value in rec.profile.items():
        shown = "auto" if value is None and key.startswith("rope") else ("unset" if value is None else value)
        if isinstance(shown, bool):
            shown = str(shown).lower()
        click.echo(f"  {key:<{width}}  {shown!s:<8}  {rec.reasons[key]}")
    v = rec.variant
    click.echo(f"variant: {v['variant']} ({v['family']}, fim: {str(v['fim']).lower()}): {v['reason']}")
    if v["suggested"]:
        click.echo(f"  use {v['suggested']} instead: {v['suggested_pull']}")
    for note in rec.notes:
        click.echo(f"note: {note}", err=True)
    if written:
        click.echo(f"wrote [load] to {written}")
