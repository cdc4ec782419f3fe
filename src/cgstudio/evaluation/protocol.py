"""The eval protocol: which tasks, which prompt style, which sampling, and how a reply becomes
the completion that is tested.

The protocol (``PROTOCOL_VERSION`` in ``cache``; EVALUATION.md explains each choice):

* Greedy decoding by default. ``temperature > 0`` with ``samples = n`` draws n samples per task
  (top-p 0.95, top-k and min-p off, sample i seeded with ``seed + i``) for the unbiased pass@k.
* HumanEval, pretrained (or unknown) models: the prompt is continued as plain text (style
  ``plain``; ``fim-completion`` puts it in the FIM format with an empty suffix instead), at most 512
  tokens, cut at the standard stops ``HUMANEVAL_STOPS``; the program is prompt + completion + test.
* HumanEval, instruction-tuned models (style ``chat``): ``CHAT_INSTRUCTION`` through the chat
  template, 512 tokens; the code is extracted from the reply. If it defines the entry point it is
  a whole program: it follows the prompt (whose docstring-only stub it redefines, while the
  prompt's imports and helpers stay available), else it is taken as the body after the prompt.
* Infilling (style ``fim``, every variant, as the paper does): the PSM FIM prompt, at most 128
  tokens, ended by the FIM sentinels (stop tokens); the program is prompt + completion + suffix +
  test. The suffix-repetition guard is off (it would change completions); the repetition guard
  stays on and its stops are counted in ``finish_reasons``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cgstudio.core.errors import UsageError
from cgstudio.evaluation.datasets import Task, get_tasks
from cgstudio.generation.codeblocks import extract_code

Style = Literal["plain", "fim-completion", "chat", "fim", "canonical"]

HUMANEVAL_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]
HUMANEVAL_MAX_TOKENS = 512
INFILL_MAX_TOKENS = 128
SAMPLING_TOP_P = 0.95
CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function in a python code block.\n"
    "```python\n{prompt}```"
)
# strict off: a variant mismatch (FIM on an -it model, as the paper runs it) is a warning, not an error.
EVAL_GUARDS = {
    "fim_stop_at_suffix": False,
    "fim_single_line": False,
    "fim_block_end": False,
    "fim_line_end": False,
    "fim_bracket_overlap": False,
    "fim_token_healing": False,
    "fim_cursor_line_in_middle": False,
    "fim_suffix_tokens": 0,
    "fim_prefix_tokens": 0,
    "repetition": True,
    "strict": False,
}
# Before issue 16's endings, an editor got this: the completion ends where it starts to repeat the
# text after the cursor (``--guards suffix``).
SUFFIX_GUARDS = {**EVAL_GUARDS, "fim_stop_at_suffix": True}
# What an editor gets: every editor ending on (``--guards editor``; GuardSettings' defaults).
EDITOR_GUARDS = {
    **SUFFIX_GUARDS,
    "fim_block_end": True,
    "fim_line_end": True,
    "fim_bracket_overlap": True,
    "fim_token_healing": True,
    "fim_cursor_line_in_middle": True,
    "fim_suffix_tokens": 128,
    "fim_prefix_tokens": 384,
}
GUARD_SETS = {"paper": EVAL_GUARDS, "suffix": SUFFIX_GUARDS, "editor": EDITOR_GUARDS}
PASS_AT_K = (1, 10, 100)


@dataclass(frozen=True)
class GenRequest:
    style: Style
    prompt: str  # the text to continue, the FIM prefix, or the chat message
    suffix: str
    sampling: dict[str, Any]


@dataclass(frozen=True)
class Generated:
    text: str
    finish_reason: str
    completion_tokens: int | None
    warnings: tuple[str, ...] = ()


def select_tasks(
    task_set: str, limit: int | None = None, sample: int | None = None, sample_seed: int = 0
) -> list[Task]:
    """The tasks to run: a seeded sample of ``sample`` tasks (kept in set order), then the first
    ``limit`` of those. The same seed always gives the same sample."""
    tasks = get_tasks(task_set)
    if sample is not None:
        if sample < 1:
            raise UsageError("--sample must be at least 1")
        if sample < len(tasks):
            chosen = sorted(random.Random(sample_seed).sample(range(len(tasks)), sample))
            tasks = [tasks[i] for i in chosen]
    if limit is not None:
        if limit < 1:
            raise UsageError("--limit must be at least 1")
        tasks = tasks[:limit]
    return tasks


def choose_style(task_set: str, variant: str, fim_capable: bool, completion_style: str = "plain") -> Style:
    if task_set.startswith("infill"):
        if not fim_capable:
            raise UsageError(
                f"{task_set} needs a model with FIM tokens; use codegemma-2b or codegemma-7b (or -it)"
            )
        return "fim"
    if variant == "instruction-tuned":
        return "chat"
    if completion_style == "fim-completion" and fim_capable:
        return "fim-completion"
    return "plain"


def sampling_for(style: Style, temperature: float, seed: int | None, sample: int) -> dict[str, Any]:
    """Sampling for one request: greedy unless ``temperature > 0`` (then top-p 0.95, seed + sample)."""
    params: dict[str, Any] = {
        "temperature": temperature,
        "top_k": 0,
        "top_p": SAMPLING_TOP_P if temperature > 0 else 1.0,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
        "max_tokens": INFILL_MAX_TOKENS if style == "fim" else HUMANEVAL_MAX_TOKENS,
        "stop": list(HUMANEVAL_STOPS) if style in ("plain", "fim-completion") else [],
        "seed": (seed or 0) + sample if temperature > 0 else None,
    }
    return params


def key_settings(
    task_set: str, style: Style, temperature: float, seed: int | None, backend_settings: dict[str, Any]
) -> dict[str, Any]:
    """What the cache key covers (see ``cache``): everything that changes the generated text."""
    sampling = sampling_for(style, temperature, seed, 0)
    return {
        "task_set": task_set,
        "style": style,
        "sampling": sampling,
        "guards": EVAL_GUARDS,
        "instruction": CHAT_INSTRUCTION if style == "chat" else None,
        **backend_settings,
    }


def request_for(task: Task, style: Style, sampling: dict[str, Any]) -> GenRequest:
    if style == "chat":
        return GenRequest(style, CHAT_INSTRUCTION.format(prompt=task.prompt), "", sampling)
    return GenRequest(style, task.prompt, task.suffix if style == "fim" else "", sampling)


def truncate_at_stops(text: str, stops: Sequence[str]) -> str:
    cut = min((i for s in stops if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def to_completion(task: Task, style: Style, text: str) -> str:
    """The text that ``scoring.build_program`` puts between the prompt and the suffix."""
    if style in ("plain", "fim-completion"):
        return truncate_at_stops(text, HUMANEVAL_STOPS)
    if style == "chat":
        code = extract_code(text)
        if re.search(rf"^(?:async\s+)?def\s+{re.escape(task.entry_point)}\s*\(", code, re.MULTILINE):
            return "\n" + code  # a whole program: redefines the prompt's stub
        return code
    return text
