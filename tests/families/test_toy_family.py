"""A family registered in one place gets FIM, chat, inspect and routing from its record alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import cgstudio
from cgstudio import families
from cgstudio.cli.inspect import describe
from cgstudio.core.prompt import ChatMessage
from cgstudio.families import ChatFormat, Family, FimTokens
from cgstudio.generation.request import GenerationRequest
from cgstudio.server.config import ModelSpec, ServerSettings
from cgstudio.server.prometheus import Metrics
from cgstudio.server.registry import Registry
from cgstudio.testing.synthetic_gguf import BOS_ID, write_codegemma_gguf

PRE, SUF, MID, SEP, TURN, END = (
    "<|toy_pre|>",
    "<|toy_suf|>",
    "<|toy_mid|>",
    "<|toy_sep|>",
    "<|toy_turn|>",
    "<|toy_end|>",
)
TOY_IDS = {71: PRE, 72: SUF, 73: MID, 74: SEP, 75: TURN, 76: END}
ID = {text: tid for tid, text in TOY_IDS.items()}

TOY = Family(
    name="toy",
    architectures=("gemma",),
    chat=ChatFormat("gemma-turns", stop_texts=(END,), turn_start=TURN, turn_end=END),
    fim=FimTokens(
        prefix=PRE,
        suffix=SUF,
        middle=MID,
        file_sep=SEP,
        stop_texts=(PRE, SUF, MID, SEP),
        add_bos=True,
        repo_style=False,
    ),
    required=(PRE, SUF, MID, SEP, TURN, END),
    detect_tokens=(PRE, SUF, MID, SEP),
    name_pattern=re.compile(r"\btoy\b", re.IGNORECASE),
    key_tokens=(PRE, SUF, MID, SEP, TURN, END),
)


@pytest.fixture
def toy() -> Iterator[Family]:
    families.register(TOY)
    try:
        yield TOY
    finally:
        families.unregister(TOY.name)


@pytest.fixture(scope="module")
def toy_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("toy")
    return write_codegemma_gguf(
        d / "toy-1b.gguf", name="toy-1b", include_fim=False, extra_special_tokens=TOY_IDS
    )


@pytest.fixture(scope="module")
def plain_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("plain")
    return write_codegemma_gguf(d / "gemma-2b.gguf", name="gemma-2b", include_fim=False)


def test_registered_in_one_place(toy: Family) -> None:
    assert families.FAMILIES["toy"] is toy
    assert list(families.FAMILIES)[-1] == "unknown"  # the catch-all stays last
    assert families.family_from_name("acme/toy-1b") == "toy"


def test_unregistered_after(toy_gguf: Path) -> None:
    assert "toy" not in families.FAMILIES
    assert describe(str(toy_gguf))["family"] == "gemma"  # without the record, only the architecture is known


def test_fim_prompt_is_token_exact(toy: Family, toy_gguf: Path) -> None:
    model = cgstudio.load(str(toy_gguf), n_ctx=1024)
    try:
        assert model.family == "toy" and model.fim_capable
        prefix, suffix = "def f(a):\n    ", f"\n    return a {PRE}\n"
        prompt, _ = model.prompt(GenerationRequest("fim", prefix, suffix))
        v = model.vocab
        assert prompt.tokens == [BOS_ID, ID[PRE], *v.plain(prefix), ID[SUF], *v.plain(suffix), ID[MID]]
        assert {ID[PRE], ID[SUF], ID[MID], ID[SEP]} <= prompt.stop_ids
    finally:
        model.close()


def test_chat_uses_the_family_turns(toy: Family, toy_gguf: Path) -> None:
    model = cgstudio.load(str(toy_gguf), n_ctx=1024)
    try:
        prompt, _ = model.prompt(GenerationRequest("chat", messages=[ChatMessage("user", "hi")]))
        v = model.vocab
        turn, end = ID[TURN], ID[END]
        assert prompt.tokens == [
            BOS_ID,
            turn,
            *v.plain("user\nhi"),
            end,
            *v.plain("\n"),
            turn,
            *v.plain("model\n"),
        ]
        assert end in prompt.stop_ids
    finally:
        model.close()


def test_inspect_shows_the_family(toy: Family, toy_gguf: Path) -> None:
    doc = describe(str(toy_gguf))
    assert doc["family"] == "toy" and doc["fim"] is True
    assert {PRE: 71, SUF: 72, MID: 73, SEP: 74, TURN: 75, END: 76}.items() <= doc["special_tokens"].items()


def test_server_routes_fim_to_it(toy: Family, toy_gguf: Path, plain_gguf: Path) -> None:
    config = ServerSettings(
        models=[ModelSpec(alias="plain", path=plain_gguf), ModelSpec(alias="toy", path=toy_gguf)]
    )
    registry = Registry(config, Metrics())
    assert registry.route(None, "fim").alias == "toy"
    assert registry.entries["toy"].meta.family == "toy"
    assert registry.route(None, "completion").alias == "plain"
