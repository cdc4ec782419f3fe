"""Pull code out of an instruction-tuned model's markdown reply."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.DOTALL | re.MULTILINE)
_OPEN = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*)\Z", re.DOTALL | re.MULTILINE)


def extract_code(reply: str) -> str:
    """Join the fenced code blocks of ``reply``; an unclosed final fence counts; no fence -> reply."""
    blocks = [m.group(2) for m in _FENCE.finditer(reply)]
    if not blocks:
        m = _OPEN.search(reply)
        if m:
            return m.group(2).rstrip() + "\n"
        return reply
    return "\n".join(b.rstrip("\n") + "\n" for b in blocks)
