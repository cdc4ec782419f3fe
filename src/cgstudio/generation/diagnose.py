"""Why did generation produce nothing? Checked causes, not guesses."""

from __future__ import annotations

import re

from cgstudio.core.engine import DecodeStats, ModelInfo
from cgstudio.core.prompt import GuardWarning, Prompt
from cgstudio.families import codegemma, gemma, qwen25_coder


def _either(*texts: str) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(t) for t in texts))


# Chat markup of other families, as users paste it from tutorials.
FOREIGN_MARKUP: dict[str, re.Pattern[str]] = {
    "llama-2 ([INST])": re.compile(r"\[INST\]|\[/INST\]|<<SYS>>"),
    qwen25_coder.FAMILY.label: _either(qwen25_coder.IM_START, qwen25_coder.IM_END),
    "Llama 3 (<|start_header_id|>)": re.compile(r"<\|start_header_id\|>|<\|eot_id\|>|<\|begin_of_text\|>"),
    gemma.FAMILY.label: _either(gemma.START_OF_TURN, gemma.END_OF_TURN),
    "Alpaca (### Instruction)": re.compile(r"^### (Instruction|Response):", re.MULTILINE),
    "Vicuna / Mistral (<s>)": re.compile(r"^<s>|</s>"),
}
OWN_MARKUP = {f.name: f.label for f in (gemma.FAMILY, codegemma.FAMILY, qwen25_coder.FAMILY)}


def empty_output_warning(
    *,
    prompt: Prompt,
    prompt_text: str,
    info: ModelInfo,
    family: str,
    stats: DecodeStats,
    finish_reason: str,
    stop_at_start: str | None,
    variant_problem: str | None,
) -> GuardWarning:
    causes: list[str] = []
    if stats.n_generated == 0 and stats.finish == "stop_token":
        causes.append(f"the first sampled token was an end token (id {stats.stop_token})")
    if stop_at_start is not None:
        causes.append(f"the stop string {stop_at_start!r} matched at position 0")
    if variant_problem:
        causes.append(variant_problem)
    bos = info.bos_id
    if bos is not None and info.add_bos:
        n_bos = 0
        while n_bos < len(prompt.tokens) and prompt.tokens[n_bos] == bos:
            n_bos += 1
        if n_bos == 0:
            causes.append("the prompt lacks the BOS token the model expects")
        elif n_bos > 1:
            causes.append(f"the prompt starts with {n_bos} BOS tokens; the model expects exactly one")
    for name, pattern in FOREIGN_MARKUP.items():
        if OWN_MARKUP.get(family) != name and pattern.search(prompt_text):
            causes.append(f"the prompt uses another family's chat markup: {name}")
    if finish_reason == "length" and stats.n_generated > 0:
        causes.append("max_tokens was reached with only whitespace generated")
    if not causes:
        causes.append("the model produced only whitespace")
    fix = (
        "Use the mode that fits the variant (chat: an instruction-tuned model such as codegemma-7b-it; "
        "completion/FIM: codegemma-2b or codegemma-7b) and let cgstudio format the prompt."
    )
    return GuardWarning("empty_output", f"no output ({finish_reason}): {'; '.join(causes)}. {fix}")
