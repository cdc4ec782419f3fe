"""Any other model: chat from the GGUF's own template, no FIM. The catch-all, always last."""

from __future__ import annotations

from cgstudio.families import codegemma, foreign_fim, gemma, qwen25_coder
from cgstudio.families.base import ChatFormat, Family, RemoteVocab

FAMILY = Family(
    name="unknown",
    architectures=(),
    chat=ChatFormat("template", tools=qwen25_coder.TOOLS),  # when the GGUF's template has Hermes-style tools
    vocab=RemoteVocab(
        "unknown",
        tuple(dict.fromkeys(codegemma.SPECIALS + qwen25_coder.SPECIALS)),
        None,
        gemma.EOS,
        None,
        False,
        0,
    ),
)

# Other tools' FIM markers, as users paste them into a raw prompt: where a suffix would start.
FOREIGN_FIM_MARKERS = foreign_fim.SUFFIX_MARKERS
