"""n choices through the pipeline, on a scripted engine: per-choice stops, indices, one evaluation."""

from __future__ import annotations

from cgstudio.core.prompt import Prompt
from cgstudio.core.settings import GuardSettings, SamplingParams
from cgstudio.engine.fake import BOS, FakeEngine
from cgstudio.generation.pipeline import Chunk, RunContext, distinct, run

PROMPT = [BOS, 1000 + ord("x"), 1000 + ord("=")]


def _run(engine: FakeEngine, n: int, **sampling: object) -> list[Chunk]:
    prompt = Prompt(tokens=list(PROMPT), mode="completion", stop_ids=frozenset({1}))
    params = SamplingParams.model_validate({"n": n, "max_tokens": 64, **sampling})
    return list(run(engine, prompt, params, GuardSettings(), RunContext("gemma")))


def test_each_choice_streams_under_its_index_with_its_own_stop_and_one_evaluation() -> None:
    engine = FakeEngine([b" 1", b"\n"], choices=[[b" 2", b"END", b"tail"], [b" 1", b"\n"]])
    chunks = _run(engine, 3, stop=["END"])
    last = chunks[-1]
    texts = {i: "".join(c.text for c in chunks if c.index == i) for i in range(3)}
    assert texts == {0: " 1\n", 1: " 2", 2: " 1\n"}
    assert [r.text for r in last.choices] == [" 1\n", " 2", " 1\n"]
    assert [r.finish_reason for r in last.choices] == ["eos", "stop", "eos"]
    assert last.result is last.choices[0]
    assert engine.counters.evaluated_tokens == len(PROMPT)  # one prompt evaluation for three choices
    kept = distinct(last.choices)
    assert [r.text for r in kept] == [" 1\n", " 2"]
    assert [w.code for w in kept[0].warnings] == ["duplicates_dropped"]


def test_more_choices_than_the_engine_decodes_are_reduced_with_a_warning() -> None:
    engine = FakeEngine([b"a"], choices=[[b"b"], [b"c"]], max_choices=2)
    last = _run(engine, 3)[-1]
    assert [r.text for r in last.choices] == ["a", "b"]
    assert "n_reduced" in [w.code for w in last.choices[0].warnings]


def test_one_choice_keeps_the_single_stream_path() -> None:
    engine = FakeEngine([b"a"], choices=[[b"b"]])
    last = _run(engine, 1)[-1]
    assert last.results == [] and last.choices == [last.result]
    assert last.result is not None and last.result.text == "a"
