"""Several suggestions from one prompt evaluation: OpenAI ``n`` (the real openai client) and
llama.vscode's ``n_cmpl`` on /infill, against a tiny synthetic CodeGemma decoding 3 sequences."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from server_testing import Live, LiveFactory

PREFIX = "def mean(values):\n    if not values:\n        return 0.0\n" + "    # average of the values\n" * 8
SUFFIX = "\n    return total / len(values)\n"
VARIED = {"temperature": 1.0, "top_p": 1.0, "seed": 11}
OFF = {"guards": {"repetition": False}}  # random weights loop; every choice runs to max_tokens


@pytest.fixture(scope="module")
def live(live_server: LiveFactory, codegemma_paths: dict[str, Path]) -> Iterator[Live]:
    with live_server({"cg": codegemma_paths["control"]}, n_ctx=512, n_parallel=3, parallel=3) as lv:
        yield lv


@pytest.fixture(scope="module")
def oai(live: Live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _evaluated(live: Live) -> int:
    live.settled()
    return int(live.engine("cg").counters.evaluated_tokens)


def test_openai_n3_is_one_prompt_evaluation(live: Live, oai: openai.OpenAI) -> None:
    oai.completions.create(model="cg", prompt="x = 1\n", suffix="\n", max_tokens=1)  # load the model
    before = _evaluated(live)
    r = oai.completions.create(
        model="cg", prompt=PREFIX, suffix=SUFFIX, max_tokens=8, n=3, extra_body={**VARIED, **OFF}
    )
    evaluated = _evaluated(live) - before
    assert r.usage is not None
    n_prompt = r.usage.prompt_tokens
    # One evaluation of the prompt plus the generated tokens fed back; three requests would be 3x.
    assert n_prompt > 3 * 8 and n_prompt <= evaluated < 2 * n_prompt
    assert [c.index for c in r.choices] == list(range(len(r.choices)))
    assert 1 < len(r.choices) <= 3 and len({c.text for c in r.choices}) == len(r.choices)
    assert r.usage.completion_tokens > 8  # every choice counted


def test_openai_greedy_n3_collapses_to_one_choice_with_a_warning(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="cg",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=6,
        n=3,
        temperature=0,
        extra_body=OFF,
    )
    assert len(r.choices) == 1
    codes = [w["code"] for w in (r.model_extra or {})["warnings"]]
    assert "duplicates_dropped" in codes


def test_openai_streamed_n3_chunks_carry_their_index(oai: openai.OpenAI) -> None:
    stream = oai.completions.create(
        model="cg", prompt=PREFIX, suffix=SUFFIX, max_tokens=6, n=3, stream=True, extra_body={**VARIED, **OFF}
    )
    texts: dict[int, str] = {}
    finished: set[int] = set()
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
            if c.finish_reason is not None:
                finished.add(c.index)
    assert finished == {0, 1, 2} and set(texts) == {0, 1, 2}


def test_more_choices_than_sequences_come_back_reduced(oai: openai.OpenAI) -> None:
    r = oai.completions.create(
        model="cg", prompt=PREFIX, suffix=SUFFIX, max_tokens=4, n=5, extra_body={**VARIED, **OFF}
    )
    assert 1 <= len(r.choices) <= 3
    assert "n_reduced" in [w["code"] for w in (r.model_extra or {})["warnings"]]


def test_infill_n_cmpl_answers_a_list_like_llama_server(live: Live) -> None:
    body = {
        "input_prefix": PREFIX,
        "input_suffix": SUFFIX,
        "prompt": "    total = ",
        "n_predict": 6,
        "n_cmpl": 3,
        **VARIED,
        **OFF,
    }
    r = httpx.post(live.url + "/infill", json=body, timeout=120)
    assert r.status_code == 200, r.text
    docs = r.json()
    assert isinstance(docs, list) and 1 < len(docs) <= 3
    assert [d["index"] for d in docs] == list(range(len(docs)))
    assert len({d["content"] for d in docs}) == len(docs) and all(d["stop"] for d in docs)
    one = httpx.post(live.url + "/infill", json={**body, "n_cmpl": 1}, timeout=120).json()
    assert isinstance(one, dict) and "content" in one
