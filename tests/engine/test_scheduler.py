"""Continuous batching, KV reuse, cancellation and speculation on a real model (Qwen2.5-Coder-0.5B)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import cgstudio
from cgstudio.core.engine import DecodeRequest, SamplerConfig
from cgstudio.session.model import CodeModel

pytestmark = pytest.mark.slow
GREEDY = SamplerConfig(temperature=0.0)
PROMPTS = [
    "def fibonacci(n):\n",
    "class Stack:\n    def __init__(self):\n",
    "import json\n\ndef load_config(path):\n",
    "def quicksort(items):\n",
]


@pytest.fixture(scope="module")
def qwen4(qwen_path: Path) -> CodeModel:
    m = cgstudio.load(str(qwen_path), n_ctx=2048, n_parallel=4)
    yield m
    m.close()


def _decode(m: CodeModel, text: str, n: int = 24, **kw: object) -> tuple[list[int], object]:
    stream = m.engine.stream(DecodeRequest(tokens=m.vocab.plain(text), max_tokens=n, sampler=GREEDY, **kw))
    return list(stream), stream.stats


def _teacher_forced(model_path: Path, prompt: list[int], out: list[int]) -> tuple[list[float], list[float]]:
    """Per generated token, from one teacher-forced pass: (its logit's gap below the best logit,
    the margin between the best two logits)."""
    import numpy as np
    from llama_cpp import Llama

    ref = Llama(str(model_path), n_ctx=512, logits_all=True, verbose=False)
    try:
        ref.eval(prompt + out)
        scores = np.asarray(ref.scores[len(prompt) - 1 : len(prompt) - 1 + len(out)])
        gaps = [float(row.max() - row[t]) for row, t in zip(scores, out, strict=True)]
        top2 = np.sort(scores, axis=1)[:, -2:]
        return gaps, [float(hi - lo) for lo, hi in top2]
    finally:
        ref.close()


NEAR_TIE = 0.1  # logits this close may swap between a 1-row and a 4-row decode step


def test_batched_streams_equal_serial_decoding(qwen4: CodeModel, qwen_path: Path) -> None:
    serial = [_decode(qwen4, p, speculative=False)[0] for p in PROMPTS]
    results: dict[int, list[int]] = {}
    calls_before = qwen4.engine.counters.decode_calls

    def worker(i: int) -> None:
        results[i] = _decode(qwen4, PROMPTS[i], speculative=False)[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    calls = qwen4.engine.counters.decode_calls - calls_before
    # llama.cpp's kernels are not batch-invariant: a 4-row step rounds differently from a 1-row
    # one, so greedy runs may part ways at a near-tie (seen: a 0.025 logit margin). So: identical
    # tokens up to the serial run's first near-tie, and after it every batched token is its own
    # sequence's argmax. Mixed-up sequences would break both (their gaps are several logits).
    for i, prompt in enumerate(PROMPTS):
        tokens = qwen4.vocab.plain(prompt)
        _, margins = _teacher_forced(qwen_path, tokens, serial[i])
        first_tie = next((j for j, m in enumerate(margins) if m < NEAR_TIE), len(margins))
        assert results[i][:first_tie] == serial[i][:first_tie], (prompt, first_tie)
        assert len(results[i]) == 24
        gaps, _ = _teacher_forced(qwen_path, tokens, results[i])
        assert max(gaps) < 2 * NEAR_TIE, (prompt, gaps)
    # 4 x (prefill + 24 steps) = 100 calls when run one after another; batching needs far fewer.
    assert calls < 70


def test_fim_keystroke_reuses_the_exact_prefix_and_evaluates_the_suffix_again(qwen4: CodeModel) -> None:
    """The PSM layout (``fim_cursor_line_in_middle`` off): a keystroke keeps the prefix up to the
    cursor and evaluates the suffix window again."""
    body = "".join(f"def helper_{i}(x):\n    return x * {i} + {i * 7}\n\n" for i in range(40))
    suffix = "\n\n" + "".join(f"assert helper_{i}(1) == {i + i * 7}\n" for i in range(30))
    prefix = body + "def main():\n    total = helper_3(2) + helper_"
    params = {"temperature": 0, "max_tokens": 8}
    psm = {"fim_cursor_line_in_middle": False}
    # Editor paths send a window of the suffix (fim_suffix_tokens), which this suffix exceeds.
    window = qwen4.settings.guards.fim_suffix_tokens
    n_suffix = min(len(qwen4.vocab.plain(suffix)), window)
    assert 0 < window < len(qwen4.vocab.plain(suffix))
    # ... and of the prefix (fim_prefix_tokens), which this prefix exceeds as well.
    prefix_window = qwen4.settings.guards.fim_prefix_tokens
    assert 0 < prefix_window < len(qwen4.vocab.plain(prefix))
    first = qwen4.complete(prefix, suffix, sampling=params, guards=psm)
    evaluated = first.timings.prompt_tokens_evaluated
    assert n_suffix + prefix_window // 2 < evaluated <= n_suffix + prefix_window + 8
    typed = qwen4.complete(prefix + "1", suffix, sampling=params, guards=psm)  # one keystroke
    # The prefix up to the cursor comes from the cache; the suffix, whose cached cells were
    # computed under the old prefix, is evaluated again (shifted reuse is opt-in: kv_shift_reuse).
    assert typed.timings.prompt_tokens_reused >= first.timings.prompt_tokens_evaluated - n_suffix - 8
    assert n_suffix <= typed.timings.prompt_tokens_evaluated <= n_suffix + 8
    evaluated_before = qwen4.engine.counters.evaluated_tokens
    again = qwen4.complete(prefix + "12", suffix, sampling=params, guards=psm)
    # Only the prompt tokens after the common prefix and the generated ones went through the model.
    extra = again.usage.completion_tokens + again.timings.draft_tokens  # generation rows, drafts included
    assert again.timings.prompt_tokens_evaluated <= n_suffix + 8
    assert (
        qwen4.engine.counters.evaluated_tokens - evaluated_before
        <= again.timings.prompt_tokens_evaluated + extra
    )
    # The default layout puts the cursor line after the middle token: typing on it only appends,
    # so a keystroke evaluates the new characters and not the suffix.
    qwen4.complete(prefix, suffix, sampling=params)
    for typed_text in ("1", "12", "12)"):
        r = qwen4.complete(prefix + typed_text, suffix, sampling=params)
        assert 1 <= r.timings.prompt_tokens_evaluated <= 4, typed_text


def test_cancellation_frees_the_slot(qwen_path: Path) -> None:
    m = cgstudio.load(str(qwen_path), n_ctx=1024, n_parallel=1)
    try:
        cancel = threading.Event()
        stream = m.engine.stream(
            DecodeRequest(tokens=m.vocab.plain("def f():\n"), max_tokens=500, sampler=GREEDY, cancel=cancel)
        )
        got = [next(stream), next(stream)]
        cancel.set()
        rest = list(stream)
        assert stream.stats.finish == "cancelled"
        assert len(got) + len(rest) < 10
        assert m.engine.counters.active_sequences == 0
        # The only slot is free again: a new request runs to completion.
        tokens, stats = _decode(m, "def g():\n", 5)
        assert len(tokens) == 5 and stats.finish == "max_tokens"  # type: ignore[attr-defined]
    finally:
        m.close()


def test_closing_a_stream_stops_decoding(qwen4: CodeModel) -> None:
    before = qwen4.engine.counters.generated_tokens
    stream = qwen4.engine.stream(
        DecodeRequest(tokens=qwen4.vocab.plain("x = ["), max_tokens=400, sampler=GREEDY)
    )
    next(stream)
    stream.close()
    _decode(qwen4, "y = 1\n", 2)  # the scheduler has run steps since the close
    assert qwen4.engine.counters.generated_tokens - before < 20


def test_speculation_keeps_greedy_output_and_accepts_drafts(qwen4: CodeModel) -> None:
    code = "".join(f"def area_{i}(w, h):\n    return w * h * {i}\n\n" for i in range(12))
    prompt = f"<|im_start|>user\nRepeat this code exactly:\n{code}<|im_end|>\n<|im_start|>assistant\n"
    tokens = qwen4.vocab.raw(prompt)
    plain = list(
        qwen4.engine.stream(DecodeRequest(tokens=tokens, max_tokens=96, sampler=GREEDY, speculative=False))
    )
    spec_stream = qwen4.engine.stream(
        DecodeRequest(tokens=tokens, max_tokens=96, sampler=GREEDY, speculative=True)
    )
    spec = list(spec_stream)
    assert spec == plain
    assert spec_stream.stats.n_accepted > 30
