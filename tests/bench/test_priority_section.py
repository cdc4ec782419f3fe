"""The bench's FIM-beside-chat section on the tiny synthetic CodeGemma: it reports the p95 ratio,
a chat really streamed during the keystrokes, and priority does not change what a keystroke
evaluates (counters, not timing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio.bench.context import BenchContext, Plan
from cgstudio.bench.sections import priority
from cgstudio.core.settings import LoadProfile
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf


def test_fim_beside_chat_section_on_the_synthetic_model(tmp_path: Path) -> None:
    path = write_codegemma_gguf(tmp_path / "codegemma-2b.gguf", weight_scale=0.5)
    plan = Plan.make(quick=True)
    bc = BenchContext(path, LoadProfile.model_validate({"n_ctx": 2048}), plan, progress=lambda _: None)
    priority.run(bc)
    ratio = bc.ratios["fim_p95_with_chat_over_without"]
    assert ratio.value.n == plan.trials and ratio.target == 1.5
    trials = bc.results["fim_priority"]["trials"]
    for t in trials:
        assert t["chat_pieces_during_keystrokes"] > 0  # the chat streamed while the keystrokes ran
        assert t["fim_tokens_evaluated_with_chat"] == t["fim_tokens_evaluated_alone"] > 0


def test_a_failed_chat_stream_fails_the_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_codegemma_gguf(tmp_path / "codegemma-2b.gguf", weight_scale=0.5)

    def broken(self: priority.ChatStream) -> None:
        raise OSError("chat template exploded")

    monkeypatch.setattr(priority.ChatStream, "_chats", broken)
    bc = BenchContext(
        path, LoadProfile.model_validate({"n_ctx": 2048}), Plan.make(quick=True), progress=lambda _: None
    )
    with pytest.raises(RuntimeError, match="chat beside the keystrokes failed: chat template exploded"):
        priority.run(bc)
    assert "fim_p95_with_chat_over_without" not in bc.ratios
