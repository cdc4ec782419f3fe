"""The default ("auto") speculation: greedy output is plain decoding's, and drafting stays cheap.

llama.cpp's batched kernels are not bitwise equal to single-token decoding, so verified drafts can
flip a greedy near-tie (measured on Qwen2.5-Coder-0.5B: the text left plain decoding's after ~33
tokens). "auto" therefore drafts only for sampled requests; these tests pin that on token ids and
on the engine's drafted/accepted counters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio.core.engine import DecodeRequest, DecodeStats, SamplerConfig
from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp import LlamaCppEngine
from cgstudio.engine.llamacpp.speculative import MAX_DRAFT, SPEC_MIN_ACCEPT, SPEC_PROBE
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

# Code that repeats itself: prompt lookup finds drafts at once.
COPYING = "".join(f"def check_{i}(values):\n    return sum(values) / len(values)\n\n" for i in range(8))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> LlamaCppEngine:
    path = write_codegemma_gguf(tmp_path_factory.mktemp("spec") / "codegemma-2b.gguf", weight_scale=0.5)
    e = LlamaCppEngine(path, LoadProfile.model_validate({"n_ctx": 1024}))  # speculative: auto
    yield e  # type: ignore[misc]
    e.close()


def _run(
    engine: LlamaCppEngine, text: str, sampler: SamplerConfig, speculative: bool | None, n: int = 48
) -> tuple[list[int], DecodeStats]:
    stream = engine.stream(
        DecodeRequest(
            tokens=engine.tokenize(text), max_tokens=n, sampler=sampler, cache=False, speculative=speculative
        )
    )
    return [t for t in stream if isinstance(t, int)], stream.stats


def test_auto_does_not_draft_under_greedy(engine: LlamaCppEngine) -> None:
    greedy = SamplerConfig(temperature=0.0)
    plain, _ = _run(engine, COPYING, greedy, speculative=False)
    default, stats = _run(engine, COPYING, greedy, speculative=None)
    assert stats.n_drafted == 0  # before the fix: drafts on this copying prompt
    assert default == plain
    # The request can still ask for drafts; then they are verified and counted.
    _, forced = _run(engine, COPYING, greedy, speculative=True)
    assert forced.n_drafted > 0


def test_auto_drafting_for_sampled_requests_stays_bounded(engine: LlamaCppEngine) -> None:
    """Past the probe, drafting goes on only while drafts are accepted often enough to pay."""
    drafted = 0
    for temperature in (0.2, 1.0):
        for seed in range(4):
            sampler = SamplerConfig(temperature=temperature, seed=seed)
            _, stats = _run(engine, COPYING, sampler, speculative=None, n=96)
            drafted += stats.n_drafted
            assert stats.n_accepted <= stats.n_drafted
            assert stats.n_drafted < SPEC_PROBE + MAX_DRAFT or stats.n_accepted >= SPEC_MIN_ACCEPT * (
                stats.n_drafted - MAX_DRAFT
            )
    assert drafted > 0  # sampled requests do draft under "auto"


@pytest.mark.slow
def test_greedy_default_equals_plain_decoding_on_qwen(qwen_path: Path) -> None:
    """On the real model: prose (does not copy) and an edit (copies), token for token."""
    e = LlamaCppEngine(qwen_path, LoadProfile.model_validate({"n_ctx": 2048}))
    prompts = [
        "<|im_start|>user\nWrite a short story about a robot who learns to paint.<|im_end|>\n"
        "<|im_start|>assistant\n",
        "<|im_start|>user\nRename x to count and return the whole code:\n\ndef f(x):\n    total = 0\n"
        "    for i in range(x):\n        total += i * x\n    return total + x\n<|im_end|>\n"
        "<|im_start|>assistant\n",
    ]
    try:
        for text in prompts:
            toks = e.tokenize(text, parse_special=True)
            runs = []
            for speculative in (False, None):
                stream = e.stream(
                    DecodeRequest(
                        tokens=toks,
                        max_tokens=48,  # the old default diverged at token 33 on the prose prompt
                        sampler=SamplerConfig(temperature=0.0),
                        cache=False,
                        speculative=speculative,
                    )
                )
                runs.append(([t for t in stream if isinstance(t, int)], stream.stats))
            (plain, _), (default, stats) = runs
            assert stats.n_drafted == 0
            assert default == plain
    finally:
        e.close()
