"""CodeGemma (arXiv 2406.11409): a gemma architecture whose vocabulary has the FIM tokens.

FIM, PSM order, with context files (Figures 2 and 4):
    <bos>a.py\\n{a}<|file_separator|>b.py\\n<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>
Trained on PSM and SPM ("Preprocessing for Fill-in-the-Middle": "trained to work with both PSM
(Prefix-Suffix-Middle) and SPM (Suffix-Prefix-Middle) modes"), but the report gives only the PSM
layout (Figure 2), not SPM's, so prompts stay PSM.
Chat: Gemma turns (``gemma.TURNS``).
"""

from __future__ import annotations

import re

from cgstudio.families import gemma
from cgstudio.families.base import Family, FimTokens, RemoteVocab, VariantHints

FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE = "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"
FILE_SEPARATOR = "<|file_separator|>"

FIM = FimTokens(
    prefix=FIM_PREFIX,
    suffix=FIM_SUFFIX,
    middle=FIM_MIDDLE,
    file_sep=FILE_SEPARATOR,
    stop_texts=(FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, FILE_SEPARATOR, gemma.END_OF_TURN),
    add_bos=True,
    repo_style=False,
    trained_orders=("PSM", "SPM"),
)
SPECIALS = (*gemma.SPECIALS, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR)

FAMILY = Family(
    name="codegemma",
    architectures=gemma.ARCHITECTURES,
    chat=gemma.TURNS,
    fim=FIM,
    required=(*FIM.tokens, gemma.START_OF_TURN, gemma.END_OF_TURN),
    detect_tokens=FIM.tokens,
    name_pattern=re.compile(r"codegemma", re.IGNORECASE),
    variants=VariantHints(
        template_means_instruct=True,
        suggest_chat="codegemma-7b-it",
        suggest_fim="codegemma-7b",
        suggest_fim_by_size=((4e9, "codegemma-2b"),),
        instruct_not_for_fim=True,
    ),
    vocab=RemoteVocab("gemma", SPECIALS, gemma.BOS, gemma.EOS, gemma.END_OF_TURN, True, 256000),
    key_tokens=(
        gemma.PAD,
        gemma.EOS,
        gemma.BOS,
        gemma.UNK,
        FIM_PREFIX,
        FIM_MIDDLE,
        FIM_SUFFIX,
        FILE_SEPARATOR,
        gemma.START_OF_TURN,
        gemma.END_OF_TURN,
    ),
    label=gemma.FAMILY.label,
    rules=gemma.RULES,
)
