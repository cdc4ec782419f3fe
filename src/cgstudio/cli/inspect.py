"""``cgstudio inspect MODEL``: what the GGUF is and how cgstudio will prompt it."""

from __future__ import annotations

from typing import Any

import click

from cgstudio.cli.options import emit_json, json_option


def key_tokens() -> tuple[str, ...]:
    """The special tokens ``inspect`` lists when present: every registered family's, in registration order."""
    from cgstudio.families import FAMILIES

    return tuple(dict.fromkeys(t for family in FAMILIES.values() for t in family.key_tokens))


def describe(path: str, variant_override: str = "auto") -> dict[str, Any]:
    from cgstudio.engine.llamacpp import inspect_model
    from cgstudio.families import profile

    info = inspect_model(path)
    prof = profile(info, variant_override)
    family, variant = prof.family.name, prof.variant
    special = {t: info.special_tokens[t] for t in key_tokens() if t in info.special_tokens}
    for tid in (info.bos_id, info.eos_id, info.eot_id):
        if tid is not None:
            name = next((t for t, i in info.special_tokens.items() if i == tid), None)
            if name:
                special.setdefault(name, tid)
    ctx = info.metadata.get(f"{info.architecture}.context_length")
    return {
        "path": info.path,
        "name": info.name,
        "architecture": info.architecture,
        "family": family,
        "variant": variant.variant,
        "variant_confidence": variant.confidence,
        "variant_reason": variant.reason,
        "fim": prof.fim,
        "special_tokens": special,
        "bos_id": info.bos_id,
        "add_bos": info.add_bos,
        "add_space_prefix": info.add_space_prefix,
        "eos_id": info.eos_id,
        "eot_id": info.eot_id,
        "chat_template": bool(info.chat_template),
        "context_length": int(ctx) if ctx and ctx.isdigit() else info.n_ctx_train,
        "quantization": info.quantization,
        "size_bytes": info.size_bytes,
        "n_layers": info.n_layers,
        "n_head": info.n_head,
        "n_head_kv": info.n_head_kv,
        "kv_bytes_per_token": info.kv_bytes_per_token(),
        "n_vocab": info.n_vocab,
    }


@click.command()
@click.argument("model", required=False)
@click.option(
    "--variant",
    type=click.Choice(["auto", "pretrained", "instruction-tuned"]),
    default="auto",
    show_default=True,
    help="Report the model as this variant (pretrained: FIM and plain completion; instruction-tuned: "
    "chat) instead of the one detected from its name and chat template, as the same flag of "
    "complete, generate and chat would treat it.",
)
@json_option
def inspect(model: str | None, variant: str, as_json: bool) -> None:
    """Show architecture, family, variant, FIM support, special tokens, context and KV size."""
    from cgstudio.store.resolve import resolve

    resolved = resolve(model)
    if resolved.notice:
        click.echo(f"note: {resolved.notice}", err=True)
    d = describe(str(resolved.path), variant)
    if as_json:
        emit_json(d)
        return
    rows = [
        ("file", d["path"]),
        ("name", d["name"]),
        ("architecture", d["architecture"]),
        ("family", d["family"]),
        ("variant", f"{d['variant']} ({d['variant_confidence']}: {d['variant_reason']})"),
        ("FIM", "yes" if d["fim"] else "no"),
        ("special tokens", ", ".join(f"{k}={v}" for k, v in d["special_tokens"].items())),
        ("BOS", f"id {d['bos_id']}, added: {d['add_bos']}"),
        ("add_space_prefix", str(d["add_space_prefix"])),
        ("chat template", "yes" if d["chat_template"] else "no"),
        ("trained context", f"{d['context_length']} tokens"),
        ("quantization", d["quantization"]),
        ("size", f"{d['size_bytes'] / 2**20:.1f} MiB"),
        ("layers", str(d["n_layers"])),
        (
            "KV cache (F16)",
            f"{d['kv_bytes_per_token'] / 1024:.1f} KiB/token, "
            f"{d['kv_bytes_per_token'] * 8192 / 2**30:.2f} GiB at 8192 tokens",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")
