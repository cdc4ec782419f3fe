"""FIM keystrokes with and without a streaming chat beside them (issue 17 §2).

The engine serves an editor's keystroke before chat at every decode step (engine/llamacpp/
batching.py): the keystroke's prompt takes the whole batch, chat prompts wait while it runs, and
a chat that is generating advances one step in four while the keystroke runs. Each trial
retypes the same line twice, interleaved: alone, then while chats stream in the other slot, one
after another (each with a fresh prompt, so later chats' prompt evaluations fall among the
keystrokes); the typing starts once the first chat streams, and the chat must stream on while
the keystrokes run. A trial whose chat streamed nothing during the keystrokes (a fast model can
type the whole line while a new chat's prompt is evaluated) is typed again, up to
``ATTEMPTS`` times, and its ``attempts`` are reported. A keystroke's latency is its
request to its whole answer (editors show the ghost text at once). The figure is the p95 with
chat over the p95 without, per trial: ``fim_p95_with_chat_over_without``, lower is better.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from cgstudio.bench import workloads as wl
from cgstudio.bench.context import GREEDY, BenchContext, open_model
from cgstudio.bench.stats import percentile, summarize
from cgstudio.generation.request import GenerationRequest
from cgstudio.session.model import CodeModel

FIM_TOKENS = 16  # a keystroke's answer: a short ghost text
ATTEMPTS = 3  # typings beside the chats per trial, until the chat streams during one


def retyped_line(model: CodeModel, n_tokens: int, keystrokes: int) -> list[tuple[str, str]]:
    """(prefix, suffix) per keystroke: a line about 60% down a real ~n_tokens file, typed again one
    character at a time after its indentation (the rest of the file is the suffix)."""
    text = wl.code_of_tokens(model.vocab, n_tokens, "argparse")
    lines = text.splitlines(keepends=True)
    i = next(
        j
        for j in range(int(len(lines) * 0.6), len(lines))
        if len(lines[j].strip()) >= keystrokes and lines[j].startswith(" ")
    )
    body = lines[i].lstrip(" ")
    before = "".join(lines[:i]) + lines[i][: len(lines[i]) - len(body)]
    after = "\n" + "".join(lines[i + 1 :])
    return [(before + body[: k + 1], after) for k in range(keystrokes)]


class ChatStream:
    """Chats that stream one after another in a background thread until ``stop``."""

    def __init__(self, model: CodeModel, context: str, max_tokens: int) -> None:
        self.model, self.context, self.max_tokens = model, context, max_tokens
        self.pieces = 0  # chat text pieces streamed so far (about one per token)
        self.error: BaseException | None = None  # why the chats stopped early, if they did
        self._cancel = threading.Event()
        self._streaming = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-chat", daemon=True)

    def __enter__(self) -> ChatStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cancel.set()
        self._thread.join(timeout=600)

    def _run(self) -> None:
        try:
            self._chats()
        except Exception as exc:  # reported by check(): the ratio would mean nothing
            self.error = exc
        finally:
            self._streaming.set()  # nobody waits for a chat that has ended

    def wait_streaming(self, timeout: float = 600.0) -> None:
        """Wait until the first chat streams text (its prompt is evaluated), or has failed."""
        if not self._streaming.wait(timeout):
            raise RuntimeError(f"the chat beside the keystrokes streamed nothing in {timeout:.0f} s")
        self.check(self.pieces)

    def check(self, pieces_during: int, attempts: int = 1) -> None:
        """Raise if the chats failed or none streamed while the keystrokes ran
        (``pieces_during``, in each of ``attempts``): a figure "with chat" taken without one would
        look like a priority win."""
        if self.error is not None:
            raise RuntimeError(f"the chat beside the keystrokes failed: {self.error}") from self.error
        if pieces_during == 0:
            raise RuntimeError(
                f"no chat text streamed while the keystrokes ran ({attempts} attempt(s)); "
                "the ratio would mean nothing"
            )

    def _chats(self) -> None:
        while not self._cancel.is_set():
            content = (
                f"{wl.cold_marker()}Review this code, then rewrite it with type hints.\n\n{self.context}"
            )
            req = GenerationRequest(
                "chat",
                messages=[{"role": "user", "content": content}],
                sampling={**GREEDY, "max_tokens": self.max_tokens},
                guards={"repetition": False},
            )
            for chunk in self.model.stream(req, cancel=self._cancel):
                self.pieces += bool(chunk.text)
                if chunk.text:
                    self._streaming.set()


def _type(model: CodeModel, steps: list[tuple[str, str]]) -> tuple[list[float], int]:
    """Type ``steps[1:]`` after an untimed ``steps[0]`` (so both phases start from the same cache):
    each keystroke's latency in seconds, and the prompt tokens they evaluated."""
    fim = {**GREEDY, "max_tokens": FIM_TOKENS}
    model.complete(*steps[0], sampling=fim)
    times: list[float] = []
    evaluated = 0
    for prefix, suffix in steps[1:]:
        t0 = time.perf_counter()
        r = model.complete(prefix, suffix, sampling=fim)
        times.append(time.perf_counter() - t0)
        evaluated += r.timings.prompt_tokens_evaluated or 0
    return times, evaluated


def _beside_chats(
    model: CodeModel, steps: list[tuple[str, str]], context: str, chat_tokens: int
) -> tuple[list[float], int, int, int]:
    """``_type`` while chats stream beside it, typed again (up to ``ATTEMPTS``) while no chat text
    streamed during the keystrokes: the latencies, the tokens evaluated, the chat pieces streamed
    during the keystrokes and the attempts it took. Raises when a chat failed or never streamed."""
    attempt = 0
    while True:
        attempt += 1
        with ChatStream(model, context, chat_tokens) as chat:
            chat.wait_streaming()
            before = chat.pieces
            times, evaluated = _type(model, steps)
            pieces = chat.pieces - before
            if chat.error is None and pieces == 0 and attempt < ATTEMPTS:
                continue
            chat.check(pieces, attempt)
        return times, evaluated, pieces, attempt


def run(bc: BenchContext) -> None:
    plan = bc.plan
    n_tokens, keystrokes, chat_context = (600, 8, 300) if plan.quick else (2000, 20, 1000)
    m = open_model(bc.path, bc.profile, n_parallel=2)  # one slot for the editor, one for chat
    try:
        steps = retyped_line(m, n_tokens, keystrokes + 1)
        context = wl.code_of_tokens(m.vocab, chat_context, "json")
        alone: list[float] = []
        beside: list[float] = []
        detail: list[dict[str, Any]] = []
        for trial in range(plan.trials):
            bc.progress(f"FIM keystrokes with and without a streaming chat (trial {trial + 1}/{plan.trials})")
            t_alone, ev_alone = _type(m, steps)
            t_beside, ev_beside, chat_pieces, attempts = _beside_chats(m, steps, context, plan.tg_tokens)
            alone.append(percentile(t_alone, 95))
            beside.append(percentile(t_beside, 95))
            detail.append(
                {
                    "p95_alone_s": alone[-1],
                    "p95_with_chat_s": beside[-1],
                    "fim_tokens_evaluated_alone": ev_alone,
                    "fim_tokens_evaluated_with_chat": ev_beside,
                    "chat_pieces_during_keystrokes": chat_pieces,
                    "attempts": attempts,
                }
            )
        bc.results["fim_priority"] = {
            "what": f"{keystrokes} keystrokes retyping a line of a ~{n_tokens}-token file, {FIM_TOKENS} "
            f"tokens each, alone and beside chats (~{chat_context}-token prompts) streaming in the "
            "other slot; latency = request to whole answer",
            "p95_alone_s": summarize(alone).as_dict(),
            "p95_with_chat_s": summarize(beside).as_dict(),
            "trials": detail,
        }
        bc.record_ratio("fim_p95_with_chat_over_without", beside, alone)
    finally:
        m.close()
