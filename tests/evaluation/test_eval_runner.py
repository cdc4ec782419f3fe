"""The eval runner with scripted backends: protocol, counting, pass@k, caching and resume."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cgstudio.core.errors import ContextOverflowError, UsageError
from cgstudio.evaluation.backends import Backend
from cgstudio.evaluation.cache import CompletionCache
from cgstudio.evaluation.datasets import Task, get_tasks, load_humaneval
from cgstudio.evaluation.protocol import (
    CHAT_INSTRUCTION,
    HUMANEVAL_STOPS,
    Generated,
    GenRequest,
    choose_style,
    key_settings,
    sampling_for,
    select_tasks,
    to_completion,
)
from cgstudio.evaluation.runner import run_eval
from cgstudio.evaluation.sandbox import run_program
from cgstudio.evaluation.scoring import build_program


class ScriptedBackend:
    """Answers from a function of the request; records what it was asked."""

    name = "scripted"
    fingerprint = "f" * 64
    variant = "pretrained"
    fim_capable = True

    def __init__(self, answer: Any, delay_s: float = 0.0) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.requests: list[GenRequest] = []
        self.threads: set[str] = set()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def cache_settings(self) -> dict[str, Any]:
        return {"n_ctx": 8192}

    def generate(self, request: GenRequest) -> Generated:
        self.requests.append(request)
        self.threads.add(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        return Generated(self.answer(request), "eos", 7)

    def close(self) -> None:
        pass


def _by_prompt(tasks: list[Task], good: set[str]) -> Any:
    """Canonical solutions for tasks in ``good``, a wrong answer for the rest."""
    table = {t.prompt: t for t in tasks}

    def answer(request: GenRequest) -> str:
        task = table[request.prompt]
        return task.canonical_solution if task.task_id in good else "    return None\n"

    return answer


def test_select_tasks_sample_is_seeded_ordered_and_limited() -> None:
    a = select_tasks("infill-multi", sample=300, sample_seed=7)
    b = select_tasks("infill-multi", sample=300, sample_seed=7)
    c = select_tasks("infill-multi", sample=300, sample_seed=8)
    assert [t.task_id for t in a] == [t.task_id for t in b] != [t.task_id for t in c]
    assert len(a) == 300 and len({t.task_id for t in a}) == 300
    order = {t.task_id: i for i, t in enumerate(get_tasks("infill-multi"))}
    assert [order[t.task_id] for t in a] == sorted(order[t.task_id] for t in a)
    assert select_tasks("infill-multi", limit=5, sample=300, sample_seed=7) == a[:5]
    assert len(select_tasks("humaneval", sample=1000)) == 164
    for bad in ({"limit": 0}, {"sample": 0}):
        with pytest.raises(UsageError):
            select_tasks("humaneval", **bad)


def test_style_follows_task_and_variant() -> None:
    assert choose_style("infill-single", "instruction-tuned", True) == "fim"
    assert choose_style("infill-multi", "pretrained", True) == "fim"
    assert choose_style("humaneval", "instruction-tuned", True) == "chat"
    assert choose_style("humaneval", "pretrained", True) == "plain"
    assert choose_style("humaneval", "unknown", True, "fim-completion") == "fim-completion"
    assert choose_style("humaneval", "pretrained", False, "fim-completion") == "plain"
    with pytest.raises(UsageError, match="FIM"):
        choose_style("infill-single", "pretrained", False)


def test_sampling_protocol() -> None:
    greedy = sampling_for("plain", 0.0, 123, 3)
    assert greedy["temperature"] == 0.0 and greedy["seed"] is None and greedy["max_tokens"] == 512
    assert greedy["stop"] == HUMANEVAL_STOPS
    fim = sampling_for("fim", 0.0, None, 0)
    assert fim["max_tokens"] == 128 and fim["stop"] == []
    hot = sampling_for("chat", 0.8, 10, 4)
    assert (hot["top_p"], hot["top_k"], hot["min_p"], hot["seed"], hot["stop"]) == (0.95, 0, 0.0, 14, [])
    # Greedy ignores the seed, so it must not split the cache; sampling does not.
    assert key_settings("humaneval", "plain", 0.0, 1, {}) == key_settings("humaneval", "plain", 0.0, 2, {})
    assert key_settings("humaneval", "chat", 0.8, 1, {}) != key_settings("humaneval", "chat", 0.8, 2, {})


def test_plain_completion_is_cut_at_humaneval_stops() -> None:
    task = load_humaneval()[0]
    text = task.canonical_solution + "\n\ndef other():\n    pass\n"
    assert to_completion(task, "plain", text) == task.canonical_solution + "\n"
    assert to_completion(task, "fim", "x\ndef y") == "x\ndef y"  # infilling keeps everything


@pytest.mark.parametrize("task_index", [0, 10, 38])  # 10 and 38 have helper functions in the prompt
def test_chat_reply_with_the_whole_function_passes(task_index: int) -> None:
    task = load_humaneval()[task_index]
    # The reply restates only the entry point, without the prompt's imports or helpers.
    stub = task.prompt[task.prompt.index(f"def {task.entry_point}(") :]
    reply = f"Here you go:\n```python\n{stub}{task.canonical_solution}```\nIt works because..."
    completion = to_completion(task, "chat", reply)
    assert completion.startswith("\ndef ")
    assert run_program(build_program(task, completion)).passed


def test_chat_reply_with_only_a_body_follows_the_prompt() -> None:
    task = load_humaneval()[2]
    completion = to_completion(task, "chat", f"```python\n{task.canonical_solution}```")
    assert completion == task.canonical_solution
    assert run_program(build_program(task, completion)).passed


def test_chat_request_uses_the_instruction() -> None:
    tasks = load_humaneval()[:1]
    backend = ScriptedBackend(lambda r: "```python\n" + tasks[0].prompt + tasks[0].canonical_solution + "```")
    backend.variant = "instruction-tuned"
    result = run_eval("humaneval", tasks, backend, style="chat")
    assert backend.requests[0].prompt == CHAT_INSTRUCTION.format(prompt=tasks[0].prompt)
    assert backend.requests[0].prompt.endswith(tasks[0].prompt + "```")
    assert result.records[0].status == "passed" and result.records[0].raw is not None


def test_counts_and_cache_resume(tmp_path: Path) -> None:
    tasks = get_tasks("infill-single")[:6]
    good = {tasks[0].task_id, tasks[2].task_id, tasks[5].task_id}
    first = ScriptedBackend(_by_prompt(tasks, good))
    cache = CompletionCache(tmp_path, first.fingerprint, "k" * 64, "infill-single")
    result = run_eval("infill-single", tasks, first, style="fim", cache=cache)
    assert [r.status == "passed" for r in result.records] == [t.task_id in good for t in tasks]
    assert result.pass_at() == {"pass@1": 0.5}
    assert not any(r.cached for r in result.records) and len(first.requests) == 6
    assert first.requests[0].suffix == tasks[0].suffix and first.requests[0].sampling["max_tokens"] == 128

    def refuse(request: GenRequest) -> str:
        raise AssertionError("a cached completion was generated again")

    again = run_eval(
        "infill-single",
        tasks,
        ScriptedBackend(refuse),
        style="fim",
        cache=CompletionCache(tmp_path, first.fingerprint, "k" * 64, "infill-single"),
    )
    assert all(r.cached for r in again.records)
    assert [r.status for r in again.records] == [r.status for r in result.records]


def test_interrupted_run_resumes_from_the_cache(tmp_path: Path) -> None:
    tasks = get_tasks("infill-single")[:4]
    calls = 0

    def flaky(request: GenRequest) -> str:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return "x\n"

    backend = ScriptedBackend(flaky)
    with pytest.raises(KeyboardInterrupt):
        run_eval(
            "infill-single",
            tasks,
            backend,
            style="fim",
            cache=CompletionCache(tmp_path, backend.fingerprint, "k" * 64, "infill-single"),
        )
    resumed = run_eval(
        "infill-single",
        tasks,
        backend,
        style="fim",
        cache=CompletionCache(tmp_path, backend.fingerprint, "k" * 64, "infill-single"),
    )
    assert [r.cached for r in resumed.records] == [True, True, False, False]
    assert calls == 5


def test_cached_only_skips_what_is_not_cached(tmp_path: Path) -> None:
    tasks = get_tasks("infill-single")[:5]
    backend = ScriptedBackend(lambda r: "x\n")
    key = ("k" * 64, "infill-single")
    run_eval(
        "infill-single",
        tasks[:2],
        backend,
        style="fim",
        cache=CompletionCache(tmp_path, backend.fingerprint, *key),
    )
    result = run_eval(
        "infill-single",
        tasks,
        backend,
        style="fim",
        cached_only=True,
        cache=CompletionCache(tmp_path, backend.fingerprint, *key),
    )
    assert (result.n_tasks, result.skipped_uncached, len(backend.requests)) == (2, 3, 2)


def test_changed_task_text_is_generated_again(tmp_path: Path) -> None:
    task = get_tasks("infill-single")[0]
    backend = ScriptedBackend(lambda r: "x\n")
    key = ("k" * 64, "infill-single")
    run_eval("infill-single", [task], backend, style="fim", cache=CompletionCache(tmp_path, "f" * 64, *key))
    changed = dataclasses.replace(task, suffix=task.suffix + "\n")
    result = run_eval(
        "infill-single", [changed], backend, style="fim", cache=CompletionCache(tmp_path, "f" * 64, *key)
    )
    assert not result.records[0].cached and len(backend.requests) == 2


def test_samples_give_unbiased_pass_at_k() -> None:
    tasks = load_humaneval()[:2]

    # Task 0: samples 0 and 2 pass (2 of 3); task 1: none passes.
    def answer(request: GenRequest) -> str:
        if request.prompt == tasks[0].prompt and request.sampling["seed"] in (5, 7):
            return tasks[0].canonical_solution
        return "    return None\n"

    backend = ScriptedBackend(answer)
    result = run_eval("humaneval", tasks, backend, style="plain", temperature=0.8, samples=3, seed=5)
    assert sorted({r.sampling["seed"] for r in backend.requests}) == [5, 6, 7]
    pass_at = result.pass_at()
    assert set(pass_at) == {"pass@1"}
    assert pass_at["pass@1"] == pytest.approx((2 / 3 + 0) / 2)
    with pytest.raises(UsageError, match="temperature"):
        run_eval("humaneval", tasks, backend, samples=3)


def test_parallel_generation_keeps_task_order() -> None:
    tasks = get_tasks("infill-single")[:8]
    backend = ScriptedBackend(_by_prompt(tasks, {t.task_id for t in tasks[::2]}), delay_s=0.05)
    result = run_eval("infill-single", tasks, backend, style="fim", parallel=4)
    assert [r.task_id for r in result.records] == [t.task_id for t in tasks]
    assert [r.status for r in result.records] == ["passed", "failed"] * 4
    assert len(backend.threads) > 1


def test_generation_errors_are_failed_samples(tmp_path: Path) -> None:
    tasks = get_tasks("infill-single")[:2]

    class Overflowing(ScriptedBackend):
        def generate(self, request: GenRequest) -> Generated:
            if request.prompt == tasks[0].prompt:
                raise ContextOverflowError(9000, 8192)
            return super().generate(request)

    backend = Overflowing(lambda r: tasks[1].canonical_solution)
    result = run_eval("infill-single", tasks, backend, style="fim")
    assert [r.finish_reason for r in result.records] == ["error", "eos"]
    assert [r.status for r in result.records] == ["failed", "passed"]
    assert result.warnings() == {"generation_error": 1}
    assert result.records[0].as_dict()["warnings"] == ["generation_error"]


def test_canonical_needs_no_backend() -> None:
    result = run_eval("infill-multi", get_tasks("infill-multi")[:5], None)
    assert result.style == "canonical" and result.pass_at() == {"pass@1": 1.0}


def test_scripted_backend_satisfies_the_protocol() -> None:
    backend: Backend = ScriptedBackend(lambda r: "")
    assert backend.cache_settings() == {"n_ctx": 8192}
