"""Runs the chosen bench sections in order and assembles the bench's JSON document.

The sections live in ``cgstudio.bench.sections`` (one module each); what they share is in
``cgstudio.bench.context``; ``report`` turns the document into markdown and plots.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cgstudio.bench.context import BenchContext, peak_rss_mib
from cgstudio.bench.sections import select


def _nothing(name: str) -> None:
    pass


def run_sections(
    bc: BenchContext,
    names: Sequence[str],
    *,
    on_start: Callable[[str], None] = _nothing,
    on_done: Callable[[str], None] = _nothing,
) -> None:
    """Run the sections called ``names`` in order; unknown names fail before any section runs."""
    for name, section in select(names):
        on_start(name)
        section(bc)
        on_done(name)


def document(
    bc: BenchContext, *, model: str, quick: bool, machine: dict[str, Any], wall_s: float
) -> dict[str, Any]:
    """The bench's JSON document: what ran, on what, and every section's results and ratios."""
    return {
        "model": model,
        "profile": bc.profile.model_dump(exclude_defaults=True) or "defaults",
        "quick": quick,
        "machine": machine,
        "wall_s": wall_s,
        "peak_rss_mib": peak_rss_mib(),
        "ratios": {k: r.as_dict() for k, r in bc.ratios.items()},
        "results": {k: v for k, v in bc.results.items() if k != "raw_tg_samples"},
    }
