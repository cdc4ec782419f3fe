"""Gemma (gemma, gemma2, gemma3 architectures without FIM tokens): Gemma turns, no FIM."""

from __future__ import annotations

import re

from cgstudio.families.base import ChatFormat, Family, RemoteVocab, ToolFormat, VariantHints, VocabRules

ARCHITECTURES = ("gemma", "gemma2", "gemma3")
BOS, EOS, PAD, UNK, MASK = "<bos>", "<eos>", "<pad>", "<unk>", "<mask>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
SPECIALS = (PAD, EOS, BOS, UNK, MASK, START_OF_TURN, END_OF_TURN)

# Gemma's SentencePiece vocabulary: <bos> id 2, <eos> id 1, BOS always, no space prefix.
RULES = VocabRules("Gemma", BOS, EOS, bos_id=2, eos_id=1, add_bos=True, add_space_prefix=False)

# Gemma and CodeGemma have no tool syntax, so cgstudio defines one (docs/server.md, "Tool calling"):
# the functions lead the first user turn, a call is a fenced ```tool_call block holding
# {"name": ..., "arguments": {...}}, and a result comes back as a user turn.
TOOL_CALL_FENCE, TOOL_RESULT_FENCE, FENCE_END = "```tool_call", "```tool_result", "```"
TOOLS = ToolFormat(
    "preamble",
    open=TOOL_CALL_FENCE,
    close=FENCE_END,
    preamble=(
        "You can call functions. Each is described by a JSON schema, one per line:\n{tools}\n\n"
        "To call a function, reply with one fenced block per call and nothing after it:\n"
        f'{TOOL_CALL_FENCE}\n{{{{"name": "<function name>", "arguments": {{{{<arguments as JSON>}}}}}}}}\n'
        f"{FENCE_END}\n"
        f"Each result comes back in a {TOOL_RESULT_FENCE} block. "
        "When no function is needed, answer normally."
    ),
    result=f"Result of {{name}}:\n{TOOL_RESULT_FENCE}\n{{content}}\n{FENCE_END}",
    forced="Call one of these functions now: {names}.",
)

TURNS = ChatFormat(
    "gemma-turns",
    stop_texts=(END_OF_TURN, EOS),
    turn_start=START_OF_TURN,
    turn_end=END_OF_TURN,
    ollama_template=(
        f"{START_OF_TURN}user\n{{{{ if .System }}}}{{{{ .System }}}}\n\n{{{{ end }}}}"
        f"{{{{ .Prompt }}}}{END_OF_TURN}\n"
        f"{START_OF_TURN}model\n"
    ),
    tools=TOOLS,
)

FAMILY = Family(
    name="gemma",
    architectures=ARCHITECTURES,
    chat=TURNS,
    required=(START_OF_TURN, END_OF_TURN),
    name_pattern=re.compile(r"gemma", re.IGNORECASE),
    variants=VariantHints(
        template_means_instruct=True,
        suggest_chat="codegemma-7b-it",
        suggest_fim="codegemma-2b or codegemma-7b",
    ),
    vocab=RemoteVocab("gemma", SPECIALS, BOS, EOS, END_OF_TURN, True, 256000),
    key_tokens=(PAD, EOS, BOS, UNK, START_OF_TURN, END_OF_TURN),
    label=f"Gemma ({START_OF_TURN})",
    rules=RULES,
)
