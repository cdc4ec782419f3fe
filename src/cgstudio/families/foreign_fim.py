"""Client-rendered ("foreign") FIM prompts: recognise one complete FIM template in plain prompt text.

Editor clients often render a FIM template themselves and send the result as a plain prompt, often
in another family's markup (Continue sends StarCoder's ``<fim_prefix>`` form to any model whose name
says "qwen"). ``parse_foreign_fim(text)`` finds such a template and takes its parts out, so that a
caller can re-render the request in the served model's own format. It is pure: no I/O, no tokenizer.

The templates (``TEMPLATES``), as the clients render them (P = prefix, S = suffix):

    fim-pipes   <|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>       CodeGemma, Qwen2.5-Coder, Granite 4
    starcoder   <fim_prefix>P<fim_suffix>S<fim_middle>             StarCoder(2), SantaCoder, stable-code
    codellama   <PRE> P <SUF>S <MID>                               CodeLlama (the spaces: see below)
    deepseek    <｜fim▁begin｜>P<｜fim▁hole｜>S<｜fim▁end｜>          DeepSeek-Coder (U+FF5C, U+2581)
    seed-coder  <[fim-prefix]>P<[fim-suffix]>S<[fim-middle]>       Seed-Coder
    codestral   [SUFFIX]S[PREFIX]P                                 Codestral/Mistral: no middle marker

Each three-marker template is accepted in PSM order (as above) and in SPM order (suffix marker,
suffix, prefix marker, prefix, middle marker: llama.cpp's ``spm_infill`` layout). Codestral is SPM
only, and the end of the text is its middle.

Rules (so that user text is never mistaken for markup):
- exactly one template has all of its markers in the text; two families' complete templates -> None;
- each of that template's markers occurs exactly once, in PSM or SPM order; else None;
- Codestral has no closing marker, so its ``[SUFFIX]`` must open the text or a line;
- a marker of another family that is merely mentioned (not a complete template) stays text.

Text after the middle marker is returned as ``middle``: the client has already written the start of
the completion there (usually it is empty). The caller appends it after its own middle marker.

CodeLlama's spaces: its vocabulary spells the markers ``▁<PRE>``, ``▁<SUF>``, ``▁<MID>`` (llama.cpp's
llama-vocab.cpp accepts ``▁<PRE>`` for CodeLlama) and SentencePiece puts a space before the prefix,
so clients render ``<PRE> {prefix} <SUF>{suffix} <MID>``. One space after ``<PRE>`` and one before
each closing marker belong to the markup and are dropped; the suffix keeps its leading text as is
(Twinny renders ``<SUF> {suffix}``: that space stays in the suffix, where it is harmless).

Headers before the template (``preamble`` holds the text before the first header marker; text that
mixes header styles is left whole in ``preamble``):
- a repository name: ``<|repo_name|>name\\n`` (Qwen), ``<repo_name>name\\n`` (StarCoder2),
  ``<reponame>name`` (StarCoder);
- context files, a separator BEFORE each ``path\\ncontent``: ``<|file_sep|>`` (Qwen), ``<file_sep>``
  (StarCoder2), ``<filename>`` (StarCoder); one newline that ends a file's content is the separator's;
- context files, a separator AFTER each ``path\\ncontent`` (CodeGemma): ``a.py\\n{a}<|file_separator|>``;
- the last segment, the one that runs into the template, names the current file when it is one line
  (``<|file_sep|>b.py\\n<|fim_prefix|>``); when it holds more it is one more context file.
A file's path is its first line, stripped; a file whose first line is empty has path ``""``.
Codestral's context files are inside its prefix, as Continue renders them: ``+++++ path \\n{content}``
blocks joined by a blank line, then ``+++++ {current path}\\n{prefix}``; they are taken out when the
prefix opens with ``+++++ ``.

Sources checked, for the exact strings each client sends:
- Continue, core/autocomplete/templating/AutocompleteTemplate.ts @ d0a3c0b626b5bebc3bef4742eec05a0242be0bab
  (stable-code/starcoder, qwenMultifile with <|repo_name|>/<|file_sep|>, codestralMultifile with
  "+++++ ", codegemma, codellama, deepseek, seed-coder, mercury);
- Twinny, src/extension/fim-templates.ts @ 193d14c0db4645d6483a38926fc997f9d07fe9ff
  (``<PRE>{ctx} \\n{heading}{prefix} <SUF> {suffix} <MID>``, ``{ctx}\\n\\n[SUFFIX]...``, Qwen with
  ``<|file_sep|>``; its repository-level mode sends no FIM markers at all, so it is no FIM template);
- llama.vscode, src/configuration.ts and src/llama-server.ts @ 3938fb3568b98e3ddfcf2ce3dd52d9570552b579
  (OpenAI mode: ``"Context:\\n\\n..." + <|fim_prefix|>{inputPrefix}{prompt}<|fim_suffix|>...``);
- Tabby, crates/tabby/src/services/completion/completion_prompt.rs and MODEL_SPEC.md @
  21b29048d7bcf6b94f9f482f2d0fd05efadfd19f (``<PRE> {prefix} <SUF>{suffix} <MID>``; suffix "\\n" when empty);
- llm-ls, crates/llm-ls/src/main.rs @ 1c52b94f30fa8293741d8b68c7fa48074b7f6589 and llm.nvim README.md @
  ce69731ba3f8d3ea8bc4c8f58c74c2f9ea0b33de (``{fim.prefix}{before}{fim.suffix}{after}{fim.middle}``
  with ``"<PRE> "``, ``" <SUF>"``, ``" <MID>"`` for CodeLlama).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from cgstudio.families import codegemma, qwen25_coder
from cgstudio.families.base import FimTokens

Order = Literal["PSM", "SPM"]


@dataclass(frozen=True)
class FimTemplate:
    """One family's FIM markup as clients render it in text."""

    name: str
    prefix: str
    suffix: str
    middle: str | None  # None: no middle marker, the end of the text is the middle (Codestral)
    orders: tuple[Order, ...] = ("PSM", "SPM")
    spaced: bool = False  # one space after the prefix marker and before each closing marker is markup
    file_header: str | None = None  # a line opener for context files inside the prefix (Codestral)

    @property
    def markers(self) -> tuple[str, ...]:
        return (self.prefix, self.suffix) if self.middle is None else (self.prefix, self.suffix, self.middle)


TEMPLATES: tuple[FimTemplate, ...] = (
    FimTemplate("fim-pipes", codegemma.FIM_PREFIX, codegemma.FIM_SUFFIX, codegemma.FIM_MIDDLE),
    FimTemplate("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    FimTemplate("codellama", "<PRE>", "<SUF>", "<MID>", spaced=True),
    FimTemplate("deepseek", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    FimTemplate("seed-coder", "<[fim-prefix]>", "<[fim-suffix]>", "<[fim-middle]>"),
    FimTemplate("codestral", "[PREFIX]", "[SUFFIX]", None, orders=("SPM",), file_header="+++++ "),
)

# Where the prefix of a PSM template ends: the text before it is the text before the cursor.
SUFFIX_MARKERS: tuple[str, ...] = tuple(t.suffix for t in TEMPLATES if "PSM" in t.orders)

REPO_MARKERS = (qwen25_coder.REPO_NAME, "<repo_name>", "<reponame>")
FILE_MARKERS_BEFORE = (qwen25_coder.FILE_SEP, "<file_sep>", "<filename>")  # separator, then path\ncontent
FILE_MARKERS_AFTER = (codegemma.FILE_SEPARATOR,)  # path\ncontent, then separator
_HEADER_MARKERS = (*REPO_MARKERS, *FILE_MARKERS_BEFORE, *FILE_MARKERS_AFTER)


@dataclass(frozen=True)
class ForeignFim:
    """The parts of one client-rendered FIM template.

    ``template``: a ``TEMPLATES`` name; ``order``: "PSM" or "SPM" as the client rendered it;
    ``prefix``/``suffix``: the text around the cursor, markup removed (either may be empty);
    ``middle``: text the client put after the middle marker (the completion's start; usually "");
    ``files``: context files as (path, content), in the client's order; ``path``: the current
    file's path when a header names it; ``repo``: the repository name when a header gives one;
    ``preamble``: text before the template and its headers that is none of these (kept verbatim).
    """

    template: str
    order: Order
    prefix: str
    suffix: str
    middle: str = ""
    files: tuple[tuple[str, str], ...] = ()
    path: str | None = None
    repo: str | None = None
    preamble: str = ""


def parse_foreign_fim(text: str) -> ForeignFim | None:
    """One complete FIM template in ``text`` taken apart, or None (see the module docstring)."""
    present = [t for t in TEMPLATES if all(m in text for m in t.markers)]
    if len(present) != 1:
        return None
    tpl = present[0]
    if any(text.count(m) != 1 for m in tpl.markers):
        return None
    p, s = text.index(tpl.prefix), text.index(tpl.suffix)
    m = len(text) if tpl.middle is None else text.index(tpl.middle)
    if p < s < m and "PSM" in tpl.orders:
        order: Order = "PSM"
        head, prefix, suffix = text[:p], text[p + len(tpl.prefix) : s], text[s + len(tpl.suffix) : m]
    elif s < p < m and "SPM" in tpl.orders:
        order = "SPM"
        head, suffix, prefix = text[:s], text[s + len(tpl.suffix) : p], text[p + len(tpl.prefix) : m]
    else:
        return None
    if tpl.middle is None and head and not head.endswith("\n"):
        return None
    middle = "" if tpl.middle is None else text[m + len(tpl.middle) :]
    if tpl.spaced:
        prefix, suffix = prefix.removeprefix(" ").removesuffix(" "), suffix.removesuffix(" ")
    preamble, repo, files, path = _parse_headers(head)
    if tpl.file_header is not None and prefix.startswith(tpl.file_header):
        more, current, prefix = _split_file_headers(prefix, tpl.file_header)
        files, path = (*files, *more), current if current is not None else path
    return ForeignFim(tpl.name, order, prefix, suffix, middle, files, path, repo, preamble)


def template_name(fim: FimTokens | None) -> str | None:
    """The ``TEMPLATES`` name of a family's own FIM markup (``family.fim``), or None if it has none."""
    if fim is None:
        return None
    for t in TEMPLATES:
        if (t.prefix, t.suffix, t.middle) == (fim.prefix, fim.suffix, fim.middle):
            return t.name
    return None


def _find_all(text: str, marker: str) -> list[int]:
    return [mt.start() for mt in re.finditer(re.escape(marker), text)]


Headers = tuple[str, str | None, tuple[tuple[str, str], ...], str | None]


def _parse_headers(head: str) -> Headers:
    """(preamble, repo, files, current path) from the text before the template."""
    hits = sorted((i, mk) for mk in _HEADER_MARKERS for i in _find_all(head, mk))
    unparsed: Headers = (head, None, (), None)
    if not hits:
        return unparsed
    repos = [mk for _, mk in hits if mk in REPO_MARKERS]
    seps = {mk for _, mk in hits if mk not in REPO_MARKERS}
    if len(repos) > 1 or len(seps) > 1 or (repos and hits[0][1] not in REPO_MARKERS):
        return unparsed
    preamble, body = head[: hits[0][0]], head[hits[0][0] :]
    sep = seps.pop() if seps else None
    repo = None
    if repos:
        # The name runs to the end of its line, or to the next marker (StarCoder: <reponame>r<filename>).
        body = body[len(repos[0]) :]
        ends = [i for i in (body.find("\n"), body.find(sep) if sep else -1) if i >= 0]
        cut = min(ends, default=len(body))
        repo, body = body[:cut].strip(), body[cut:].removeprefix("\n")
    if sep is None:
        return (preamble, repo, (), None) if not body.strip() else unparsed
    if sep in FILE_MARKERS_AFTER:
        # CodeGemma: the first file's path line has no marker before it, so it is no preamble.
        segments = (body if repos else preamble + body).split(sep)
        preamble = preamble if repos else ""
        files = [_file(seg) for seg in segments[:-1]]
    else:
        segments = body.split(sep)
        if segments[0].strip():
            return unparsed
        segments = segments[1:]
        files = [_file(seg, trailing_newline=True) for seg in segments[:-1]]
    last = segments[-1]
    if "\n" in last.removesuffix("\n"):
        return preamble, repo, (*files, _file(last)), None
    return preamble, repo, tuple(files), last.strip() or None


def _file(segment: str, *, trailing_newline: bool = False) -> tuple[str, str]:
    path, _, content = segment.partition("\n")
    return path.strip(), content.removesuffix("\n") if trailing_newline else content


def _split_file_headers(prefix: str, mark: str) -> tuple[tuple[tuple[str, str], ...], str | None, str]:
    """Continue's Codestral prefix ``+++++ a.py \\n{a}\\n\\n+++++ b.py\\n{prefix}``: files, path, prefix."""
    starts = [0, *(i + 1 for i in _find_all(prefix, "\n" + mark))]
    last = starts[-1]
    eol = prefix.find("\n", last)
    if eol < 0:
        return (), None, prefix
    files = []
    for a, b in pairwise(starts):
        path, _, content = prefix[a + len(mark) : b].partition("\n")
        files.append((path.strip(), content.removesuffix("\n\n")))
    return tuple(files), prefix[last + len(mark) : eol].strip() or None, prefix[eol + 1 :]
