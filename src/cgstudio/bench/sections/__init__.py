"""The bench sections, one module each, and the registry that names them.

A section is a callable that takes the ``BenchContext``, runs its trials and writes its results
and ratios into it. ``SECTIONS`` lists them in the order a full run takes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cgstudio.bench.context import BenchContext
from cgstudio.bench.sections import (
    concurrency,
    decode,
    http,
    keystroke,
    peer,
    priority,
    remote,
    speculation,
    ttft,
)

Section = Callable[[BenchContext], None]

SECTIONS: dict[str, Section] = {
    "decode": decode.run,
    "ttft": ttft.run,
    "keystroke": keystroke.run,
    "concurrency": concurrency.run,
    "speculation": speculation.run,
    "http": http.run,
    "priority": priority.run,  # FIM keystrokes beside a streaming chat
    "remote": remote.run,  # needs BenchContext.upstream (--base-url)
    "peer": peer.run,  # needs BenchContext.peer (--peer llama-server=PATH)
}


class UnknownSectionError(ValueError):
    """A section name that is not in ``SECTIONS``."""


def select(names: Iterable[str]) -> list[tuple[str, Section]]:
    """The sections called ``names``, in that order; every unknown name is reported at once."""
    names = list(names)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise UnknownSectionError(f"unknown bench sections {unknown}; known: {', '.join(SECTIONS)}")
    return [(n, SECTIONS[n]) for n in names]
