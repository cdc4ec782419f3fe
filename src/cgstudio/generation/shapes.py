"""Line shapes for the repetition guard: a line with its numbers and ids turned into ``#``, so that
a counting ladder repeats exactly; and the tests on a line that set its thresholds (a comment full
of ids is low-information; a line with no word outside its strings is a data row)."""

from __future__ import annotations

import re

# Order matters: the longest id forms first, so a uuid becomes one '#', not five.
_ID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"  # uuid
    r"|0[xX][0-9a-fA-F]+"  # hex literal
    # A bare hex id (git sha, address): 4+ hex chars mixing digits and letters, as a whole word.
    r"|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{4,}\b"
    r"|\d+"  # any digit run, also inside identifiers (X_1 -> X_#)
)
_INNER_SPACE_RE = re.compile(r"[ \t]+")
_INDENT_RE = re.compile(r"[ \t]*")
# A comment line: SQL/Lua "--", shell/Python "#", C "//", "/*", " * ", Lisp/asm ";", TeX "%". The
# marker must be followed by a blank (or end the line) so that code such as "#define X 0x1F",
# "*p++ = 0x1F;" or "--i;" is not mistaken for a comment. The payload is what follows the marker.
_COMMENT_RE = re.compile(r"[ \t]*(?:--+|#+|//+|/\*+|\*+|;+|%+)(?=\s|$)(.*)")
_LETTER_RE = re.compile(r"[A-Za-z]")
_WORD_RE = re.compile(r"[A-Za-z_]")
# One-line string literals (with an optional prefix such as b"" or f''): their content is data.
_STRING_RE = re.compile(r"""[rRbBuUfF]{0,2}(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")


def line_shape(line: str) -> str:
    """The *shape* of one line: ids and numbers become ``#``, inner blanks one space.

    Indentation is kept (it is structure); trailing blanks are dropped. Examples:
    ``"    elif n == 12:"`` -> ``"    elif n == #:"``; ``"-- 0x7f3a 9b2c1d"`` -> ``"-- # #"``.
    """
    body = line.rstrip()
    indent = _INDENT_RE.match(body)
    cut = indent.end() if indent else 0
    return body[:cut] + _INNER_SPACE_RE.sub(" ", _ID_RE.sub("#", body[cut:]))


def is_low_information(line: str) -> bool:
    """A comment line whose payload is mostly numbers / hex ids (``-- id: 3f2a9c1e-...``).

    Low information: id characters >= 4 and at least twice the letters outside ids. A comment
    with words (``# Example 2: sum``) is informative; code lines are never low-information here
    (tables of hex constants are legitimate code).
    """
    m = _COMMENT_RE.match(line)
    if m is None:
        return False
    payload = m.group(1)
    id_chars = sum(len(t) for t in _ID_RE.findall(payload))
    if id_chars < 4:
        return False
    letters = len(_LETTER_RE.findall(_ID_RE.sub("", payload)))
    return letters * 2 <= id_chars


def has_word(shape: str) -> bool:
    """True when the shape has a letter or ``_`` outside string literals: code, not a data row."""
    return _WORD_RE.search(_STRING_RE.sub("", shape)) is not None
