"""The llama.cpp engine honours DecodeRequest.grammar, and refuses one that does not parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio.core.engine import DecodeRequest, SamplerConfig
from cgstudio.core.errors import InvalidInputError
from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp import LlamaCppEngine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(qwen_path: Path):
    e = LlamaCppEngine(qwen_path, LoadProfile(n_ctx=512))
    yield e
    e.close()


def test_grammar_constrains_the_reply(engine: LlamaCppEngine) -> None:
    prompt = engine.tokenize("The colour of the sky is")
    grammar = 'root ::= " " ("purple" | "green") "!"\n'
    for temperature in (0.0, 1.5):
        req = DecodeRequest(prompt, 12, SamplerConfig(temperature=temperature, seed=1), grammar=grammar)
        text = engine.detokenize(list(engine.stream(req)))
        assert text in (" purple!", " green!")


def test_a_grammar_that_does_not_parse_is_an_input_error(engine: LlamaCppEngine) -> None:
    req = DecodeRequest(engine.tokenize("x"), 4, grammar="root ::= undefined-rule\n")
    with pytest.raises(InvalidInputError, match="grammar does not parse"):
        list(engine.stream(req))
    # The engine still works afterwards.
    assert list(engine.stream(DecodeRequest(engine.tokenize("x"), 2)))
