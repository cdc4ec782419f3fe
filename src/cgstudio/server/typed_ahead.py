"""Typed-ahead: answer a keystroke from the ghost text the client is already showing. Pure.

An editor shows the last completion as ghost text. When the user types exactly the characters
that ghost text begins with, the next request's text before the cursor is the old one plus those
characters, and the rest of the ghost text is still the answer: it is served at once, without
the engine (``timings.source: "typed_ahead"``).

It applies only when everything but the text before the cursor is the same: the client key, the
served model, the mode (``fim`` or ``infill``), the suffix, the file path, the context files, the
sampling and guard overrides and the endpoint. It never applies to ``n`` > 1, to a prewarm, or to
a ghost text that did not end on its own (``eos``, or ``stop``: a stop string or a FIM rule
such as the block's end): a ``length`` end was cut short, so a fresh request would write further;
``cancelled``, ``repetition`` and ``tool_calls`` ends are not answers to continue. Sampled
requests (temperature > 0) are reused too: the rest of a sample, given the characters typed, is a
sample of the same distribution. The answer is the rest of the text the model gave, not a new
evaluation: where the new prompt tokenizes differently, a cold run may differ, as a cached answer
may.

Each client may also hold one speculated answer (``server/speculate.py``): the answer to the
request that accepts its ghost text, computed in the background. A request for exactly that text
before the cursor is answered from it whole (``timings.source: "speculative"``, even when it is
empty); typing the start of it is served as typed-ahead serves a ghost. A new ghost for the client
drops its speculated answer.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cgstudio.generation.pipeline import Result
from cgstudio.generation.timings import Timings, Usage
from cgstudio.server.service import GenSpec

REUSABLE_FINISH = frozenset({"eos", "stop"})
MODES = frozenset({"fim", "infill"})
MAX_CLIENTS = 256  # ghosts kept, least recently used dropped first


@dataclass(frozen=True)
class Ghost:
    """The completion a client was last shown, and what it answered."""

    key: str  # everything but the text before the cursor (see ``request_key``)
    head: str  # the text before the cursor it answered
    text: str
    finish_reason: str
    speculative: bool = False  # computed ahead for a text before the cursor not yet sent


@dataclass(frozen=True)
class Hit:
    text: str  # the rest of the ghost text: the answer
    typed: str  # the characters the user typed from it
    ghost: Ghost


def request_key(model: str, fields: dict[str, Any]) -> str | None:
    """The identity two requests must share, or None when the request never takes part.

    ``fields`` holds the request's fields without the text before the cursor (the caller drops
    ``prompt`` and ``middle``); ``mode``, ``sampling`` and ``prewarm`` are read here.
    """
    if fields.get("mode") not in MODES or fields.get("prewarm"):
        return None
    sampling = fields.get("sampling") or {}
    if int(sampling.get("n") or 1) != 1:
        return None
    return json.dumps({**fields, "served_by": model}, sort_keys=True, default=repr)


class TypedAhead:
    """The last ghost text per client (bounded, least recently used dropped)."""

    def __init__(self, max_clients: int = MAX_CLIENTS) -> None:
        self.max_clients = max_clients
        self._ghosts: OrderedDict[str, Ghost] = OrderedDict()
        self._speculated: OrderedDict[str, Ghost] = OrderedDict()
        self.hits = 0

    def remember(self, client: str, ghost: Ghost) -> None:
        """Keep ``ghost`` as ``client``'s last completion, or forget the old one when it cannot serve.

        Either way the client's speculated answer goes: it answered the old ghost's acceptance."""
        self._ghosts.pop(client, None)
        self._speculated.pop(client, None)
        if ghost.finish_reason not in REUSABLE_FINISH or not ghost.text:
            return
        self._keep(self._ghosts, client, ghost)

    def remember_speculated(self, client: str, ghost: Ghost) -> None:
        """Keep ``ghost`` (``speculative``) as the answer to the exact text before the cursor
        ``ghost.head``; an empty text is kept too (there is nothing more to offer there)."""
        self._speculated.pop(client, None)
        if ghost.finish_reason in REUSABLE_FINISH:
            self._keep(self._speculated, client, ghost)

    def _keep(self, store: OrderedDict[str, Ghost], client: str, ghost: Ghost) -> None:
        store[client] = ghost
        while len(store) > self.max_clients:
            store.popitem(last=False)

    def lookup(self, client: str, key: str, head: str) -> Hit | None:
        """The rest of ``client``'s ghost text when ``head`` extends its head by the text's start;
        else the client's speculated answer when ``head`` is its head, or extends it so.

        A hit becomes the client's ghost (its head and rest), so each further typed character of
        the same ghost text hits again. Typing the whole ghost text leaves nothing to serve: a miss.
        """
        hit = self._continue(client, self._ghosts.get(client), key, head)
        if hit is None:
            hit = self._continue(client, self._speculated.get(client), key, head)
        return hit

    def _continue(self, client: str, ghost: Ghost | None, key: str, head: str) -> Hit | None:
        if ghost is None or ghost.key != key or not head.startswith(ghost.head):
            return None
        typed = head[len(ghost.head) :]
        whole = ghost.speculative and not typed  # the speculated request itself
        if not whole and (not typed or not ghost.text.startswith(typed) or len(typed) >= len(ghost.text)):
            return None
        rest = Ghost(key, head, ghost.text[len(typed) :], ghost.finish_reason)
        self._ghosts.pop(client, None)
        if ghost.speculative:  # now shown; a partly typed ghost keeps the speculation for its end
            self._speculated.pop(client, None)
        if rest.text:
            self._keep(self._ghosts, client, rest)
        self.hits += 1
        return Hit(rest.text, typed, ghost)


# GenSpec fields that are not the request's identity: the text before the cursor, and transport.
_NOT_KEY = frozenset({"prompt", "middle", "client", "keep_alive"})


def spec_key(spec: GenSpec, model: str) -> str | None:
    """``request_key`` for a server request served by ``model`` (the resolved alias)."""
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in _NOT_KEY}
    return request_key(model, fields)


def ghost_of(spec: GenSpec, model: str, result: Result) -> Ghost | None:
    """What a finished request leaves the client looking at; None when it cannot be typed ahead."""
    key = spec_key(spec, model)
    if key is None:
        return None
    return Ghost(key, spec.document_head, result.text, result.finish_reason)


def answer(hit: Hit, spec: GenSpec, t_start: float) -> Result:
    """The result a hit serves: the rest of the ghost text, no tokens evaluated or generated."""
    elapsed = time.perf_counter() - t_start
    source = "speculative" if hit.ghost.speculative else "typed_ahead"
    return Result(
        text=hit.text,
        finish_reason=hit.ghost.finish_reason,
        warnings=[],
        usage=Usage(0, 0),
        timings=Timings(elapsed, None, None, elapsed, source=source),
        mode=spec.mode,
    )
