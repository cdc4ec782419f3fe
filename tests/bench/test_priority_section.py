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
        assert 1 <= t["attempts"] <= priority.ATTEMPTS


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


def silent_chats(self: priority.ChatStream) -> None:
    """A chat that has started (its first piece arrived) but streams nothing more until cancelled:
    what the keystrokes see when they fall inside a new chat's prompt evaluation."""
    self.pieces += 1
    self._streaming.set()
    self._cancel.wait()


def test_a_typing_with_no_chat_text_beside_it_is_typed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_codegemma_gguf(tmp_path / "codegemma-2b.gguf", weight_scale=0.5)
    real = priority.ChatStream._chats
    started: list[int] = []

    def first_silent(self: priority.ChatStream) -> None:
        started.append(1)
        (silent_chats if len(started) % 2 else real)(self)  # each trial's first chat is silent

    monkeypatch.setattr(priority.ChatStream, "_chats", first_silent)
    plan = Plan.make(quick=True)
    bc = BenchContext(path, LoadProfile.model_validate({"n_ctx": 2048}), plan, progress=lambda _: None)
    priority.run(bc)
    trials = bc.results["fim_priority"]["trials"]
    assert [t["attempts"] for t in trials] == [2] * plan.trials
    assert all(t["chat_pieces_during_keystrokes"] > 0 for t in trials)
    assert len(started) == 2 * plan.trials


def test_a_chat_that_never_streams_during_the_keystrokes_fails_the_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_codegemma_gguf(tmp_path / "codegemma-2b.gguf", weight_scale=0.5)
    monkeypatch.setattr(priority.ChatStream, "_chats", silent_chats)
    bc = BenchContext(
        path, LoadProfile.model_validate({"n_ctx": 2048}), Plan.make(quick=True), progress=lambda _: None
    )
    with pytest.raises(RuntimeError, match=rf"no chat text streamed .*\({priority.ATTEMPTS} attempt"):
        priority.run(bc)
    assert "fim_p95_with_chat_over_without" not in bc.ratios
