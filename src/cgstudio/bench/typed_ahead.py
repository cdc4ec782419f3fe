"""Typed-ahead over HTTP: how fast the server answers a keystroke that types its own ghost text.

At each cursor, a FIM request (``/v1/completions`` with a suffix, greedy) gets a ghost text that
ends on its own (the model's end of text, or a stop string found inside a first answer), and then
the user types that ghost text's first characters, one request each. The server should answer
these from the ghost text at once (``timings.source: "typed_ahead"``, see
``cgstudio.server.typed_ahead``). Each request is timed by the client, from sending it to reading
the whole response; only answers whose source is ``typed_ahead`` count as hits, and the engine's
answers to typed requests (misses) are reported apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

CLIENT = {"X-Client-Id": "cgstudio-bench-typed-ahead"}
MAX_TOKENS = 16
MAX_TYPED = 6  # characters typed from each ghost text


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str  # OpenAI's: "stop" (the end of text or a stop string) or "length"
    source: str  # timings.source: "engine" or "typed_ahead"
    ms: float  # client side: from sending the request to reading the response


Post = Callable[[str, str, list[str]], Answer]  # (text before the cursor, after it, stop strings)


@dataclass
class TypedAheadRun:
    hit_ms: list[float] = field(default_factory=list)  # typed requests answered typed-ahead
    miss_ms: list[float] = field(default_factory=list)  # typed requests the engine answered
    ghost_ms: list[float] = field(default_factory=list)  # the engine's answers that made each ghost
    ghosts: int = 0
    cursors_skipped: int = 0  # no ghost text that ends on its own could be made there


def measure(post: Post, cursors: list[tuple[str, str]], max_typed: int = MAX_TYPED) -> TypedAheadRun:
    """At each (prefix, suffix) cursor: make a ghost text, then type up to ``max_typed`` of its
    first characters (never all of it: nothing would be left to answer)."""
    out = TypedAheadRun()
    for prefix, suffix in cursors:
        made = _ghost(post, prefix, suffix)
        if made is None:
            out.cursors_skipped += 1
            continue
        ghost, stop, ms = made
        out.ghosts += 1
        out.ghost_ms.append(ms)
        for i in range(1, min(len(ghost) - 1, max_typed) + 1):
            a = post(prefix + ghost[:i], suffix, stop)
            (out.hit_ms if a.source == "typed_ahead" else out.miss_ms).append(a.ms)
    return out


def _ghost(post: Post, prefix: str, suffix: str) -> tuple[str, list[str], float] | None:
    """A ghost text of two or more characters that ended on its own, the stop strings that ended
    it (the typed requests must send the same), and the time its request took."""
    first = post(prefix, suffix, [])
    if first.finish_reason == "stop" and len(first.text) >= 2:
        return first.text, [], first.ms
    stop = stop_inside(first.text)
    if stop is None:
        return None
    again = post(prefix, suffix, [stop])
    if again.finish_reason != "stop" or len(again.text) < 2:
        return None
    return again.text, [stop], again.ms


def stop_inside(text: str) -> str | None:
    """A stop string that cuts ``text`` after two or more characters: its first line break, or
    else three characters that occur there first."""
    if text.find("\n") >= 2:
        return "\n"
    k = next((k for k in range(2, len(text) - 2) if text.find(text[k : k + 3]) == k), None)
    return None if k is None else text[k : k + 3]


def http_post(client: httpx.Client, model: str = "default") -> Post:
    """``Post`` through ``client`` (its base URL is the server's root): greedy ``/v1/completions``
    with a suffix, as one editor client (``X-Client-Id``)."""

    def post(prefix: str, suffix: str, stop: list[str]) -> Answer:
        body = {
            "model": model,
            "prompt": prefix,
            "suffix": suffix,
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            "stop": stop,
        }
        t0 = time.perf_counter()
        r = client.post("/v1/completions", json=body, headers=CLIENT)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"/v1/completions answered {r.status_code}: {r.text[:300]}")
        doc = r.json()
        choice = doc["choices"][0]
        source = (doc.get("timings") or {}).get("source", "engine")
        return Answer(choice["text"], choice["finish_reason"], source, ms)

    return post
