"""Bracket and quote balance from the cursor on, for the FIM endings (``postprocess.FimRules``).

A ``Scanner`` reads code one character at a time and reports the *enclosing closer*: a closing
bracket with no opener after the cursor, or the quote that ends the string the cursor is in. It
skips strings (single, double, backtick and Python's triple quotes, with backslash escapes) and
line comments, so a ``)`` inside ``")"`` or after ``#`` does not count. It is a lexer's
approximation, not a parser: block comments and raw strings are read as code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = frozenset(OPENERS.values())
QUOTES = frozenset("\"'`")
BlockStyle = Literal["indent", "brace"]

# Languages whose blocks are delimited by indentation; every other known extension uses braces.
_INDENT_EXTS = frozenset({".py", ".pyi", ".pyw", ".yaml", ".yml", ".nim", ".coffee", ".fs", ".hs", ".sass"})
_BRACE_EXTS = frozenset(
    {".c", ".h", ".cc", ".cpp", ".hpp", ".cxx", ".cs", ".java", ".js", ".jsx", ".mjs", ".cjs", ".ts",
     ".tsx", ".go", ".rs", ".kt", ".kts", ".swift", ".php", ".scala", ".dart", ".css", ".scss", ".zig",
     ".sh", ".bash", ".json", ".jsonc", ".glsl", ".proto", ".m", ".mm", ".groovy", ".sol"}
)  # fmt: skip
_HASH_COMMENTS = frozenset({".py", ".pyi", ".pyw", ".sh", ".bash", ".yaml", ".yml", ".nim", ".rb", ".r"})


@dataclass(frozen=True)
class Closer:
    """An enclosing closer: its character and its offset in the text scanned."""

    char: str
    offset: int


def block_style(path: str | None, prefix: str) -> BlockStyle:
    """How blocks end in the current file: from the file's extension, else from the prefix (lines
    that end with ``{`` outnumber lines that end with ``:``: braces; otherwise indentation)."""
    ext = PurePosixPath(path).suffix.lower() if path else ""
    if ext in _INDENT_EXTS:
        return "indent"
    if ext in _BRACE_EXTS:
        return "brace"
    lines = [ln.rstrip() for ln in prefix[-4000:].split("\n")]
    braces = sum(ln.endswith("{") for ln in lines)
    colons = sum(ln.endswith(":") for ln in lines)
    return "brace" if braces > colons else "indent"


def comment_start(path: str | None, style: BlockStyle) -> str:
    """The line-comment marker the scanner skips: ``#`` for Python-like files, else ``//``."""
    ext = PurePosixPath(path).suffix.lower() if path else ""
    return "#" if ext in _HASH_COMMENTS or (not ext and style == "indent") else "//"


class Scanner:
    """Incremental bracket/string state; ``feed`` returns the first enclosing closer it meets."""

    def __init__(self, comment: str = "#", in_string: str | None = None) -> None:
        self.comment = comment
        self.depth: list[str] = []  # closers expected, innermost last
        self.quote: str | None = in_string  # the open string's quote ('"""' for a triple quote)
        self.enclosing_quote = in_string is not None  # the cursor is inside this string
        self.offset = 0
        self._escaped = False
        self._in_comment = False
        self._quote_run = 0  # consecutive quote characters inside a triple-quoted string
        self._opened_at = -2  # offset of the last one-character opening quote
        self._empty_end = -2  # offset just after an empty string "": a quote there makes it triple
        self._prev = ""

    def feed(self, text: str) -> Closer | None:
        for ch in text:
            hit = self._char(ch)
            self.offset += 1
            if hit is not None:
                return Closer(hit, self.offset - 1)
        return None

    def _char(self, ch: str) -> str | None:
        prev, self._prev = self._prev, ch
        if self._in_comment:
            self._in_comment = ch != "\n"
            return None
        if self.quote is not None:
            return self._in_string(ch)
        if ch in QUOTES:
            if self._empty_end == self.offset and prev == ch:
                self.quote, self._quote_run = ch * 3, 0  # "" then " opens a triple-quoted string
            else:
                self.quote, self._opened_at = ch, self.offset
            return None
        if (self.comment == "#" and ch == "#") or (self.comment == "//" and ch == "/" and prev == "/"):
            self._in_comment = True
            return None
        if ch in OPENERS:
            self.depth.append(OPENERS[ch])
        elif ch in CLOSERS:
            if not self.depth:
                return ch
            self.depth.pop()
        return None

    def _in_string(self, ch: str) -> str | None:
        quote = self.quote
        assert quote is not None
        if self._escaped:
            self._escaped = False
            return None
        if ch == "\\":
            self._escaped = True
            return None
        if len(quote) == 3:
            self._quote_run = self._quote_run + 1 if ch == quote[0] else 0
            if self._quote_run < 3:
                return None
        elif ch == "\n" and quote != "`":
            self.quote = None  # an unterminated one-line string ends with its line
            self.enclosing_quote = False
            return None
        elif ch != quote:
            return None
        self.quote = None
        if self.enclosing_quote:
            self.enclosing_quote = False
            return quote[0]
        if len(quote) == 1 and self._opened_at == self.offset - 1:
            self._empty_end = self.offset + 1
        return None


def open_string(cursor_line: str, comment: str) -> str | None:
    """The quote of the string the cursor is in, judged from the cursor line before it."""
    scanner = Scanner(comment)
    scanner.feed(cursor_line)
    quote = scanner.quote
    return quote if quote is not None and len(quote) == 1 else None


def suffix_closer(suffix: str, comment: str, in_string: str | None, limit: int = 4000) -> Closer | None:
    """The first enclosing closer in the suffix: the bracket or quote the text after the cursor
    already closes (so a completion that closes it too would duplicate it)."""
    return Scanner(comment, in_string).feed(suffix[:limit])
