"""Scores of ``cgstudio eval repo``, as CrossCodeEval (Ding et al. 2023) computes them for a line.

* ``exact``: the completion's first line equals the masked line, whitespace-normalised (runs of
  whitespace become one space, ends stripped).
* ``identifiers``: the identifiers of each side (Python keywords left out), in order;
  ``identifier_em`` is 1 when the two lists are equal, ``identifier_f1`` the F1 of their multisets.
* ``edit_similarity``: 1 - normalised edit distance, here difflib's ratio of the normalised lines.
* ``target_hit``: the cross-file identifier the task is about appears in the first line.
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections import Counter
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def normalise(text: str) -> str:
    return " ".join(text.split())


def identifiers(text: str) -> list[str]:
    """The identifiers of ``text``, in order, keywords left out (string contents count too)."""
    return [t for t in _IDENT.findall(text) if t not in _KEYWORDS]


def identifier_f1(pred: list[str], gold: list[str]) -> float:
    if not pred and not gold:
        return 1.0
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class LineScore:
    exact: bool
    identifier_em: bool
    identifier_f1: float
    edit_similarity: float
    target_hit: bool


def score_line(completion: str, answer: str, target: str) -> LineScore:
    """Score the first line of ``completion`` against the masked ``answer`` (one line)."""
    pred, gold = normalise(first_line(completion)), normalise(answer)
    ids_pred, ids_gold = identifiers(pred), identifiers(gold)
    return LineScore(
        exact=pred == gold,
        identifier_em=ids_pred == ids_gold,
        identifier_f1=identifier_f1(ids_pred, ids_gold),
        edit_similarity=difflib.SequenceMatcher(None, pred, gold, autojunk=False).ratio(),
        target_hit=target in ids_pred,
    )
