"""Qwen2.5-Coder: a qwen2 architecture whose vocabulary has the FIM tokens.

FIM, PSM order, repo-level (model card); the report (arXiv 2409.12186, "Training Policy") gives
PSM layouts only, file-level and repo-level, and no SPM:
    <|repo_name|>{repo}\\n<|file_sep|>a.py\\n{a}\\n<|file_sep|>b.py\\n<|fim_prefix|>...<|fim_middle|>
Chat: the GGUF's own ChatML template.
"""

from __future__ import annotations

import re

from cgstudio.families.base import ChatFormat, Family, FimTokens, RemoteVocab, ToolFormat, VariantHints

FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, FIM_PAD = (
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|fim_pad|>",
)
FILE_SEP, REPO_NAME = "<|file_sep|>", "<|repo_name|>"
IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
# Hermes-style tool calls, as Qwen2.5's own template asks for them:
#   <tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>
TOOLS = ToolFormat("template", open=TOOL_CALL_OPEN, close=TOOL_CALL_CLOSE)

SPECIALS = (
    ENDOFTEXT,
    IM_START,
    IM_END,
    FIM_PREFIX,
    FIM_MIDDLE,
    FIM_SUFFIX,
    FIM_PAD,
    REPO_NAME,
    FILE_SEP,
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    TOOL_CALL_OPEN,
    TOOL_CALL_CLOSE,
)
# Qwen2.5's template, reduced to what prompts.chat.render_template needs (the GGUF carries the full one).
CHATML_TEMPLATE = (
    "{% for m in messages %}{% if loop.first and m.role != 'system' %}"
    "{{ '" + IM_START + "system\\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant." + IM_END + "\\n' }}"
    "{% endif %}{{ '" + IM_START + "' + m.role + '\\n' + m.content + '" + IM_END + "\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '" + IM_START + "assistant\\n' }}{% endif %}"
)

FIM = FimTokens(
    prefix=FIM_PREFIX,
    suffix=FIM_SUFFIX,
    middle=FIM_MIDDLE,
    file_sep=FILE_SEP,
    stop_texts=(FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, FIM_PAD, FILE_SEP, REPO_NAME, IM_END, ENDOFTEXT),
    add_bos=False,
    repo_style=True,
    repo_name=REPO_NAME,
)

FAMILY = Family(
    name="qwen2.5-coder",
    architectures=("qwen2",),
    chat=ChatFormat(
        "template",
        stop_texts=(IM_END, ENDOFTEXT),
        fallback_template=CHATML_TEMPLATE,
        ollama_template=(
            f"{{{{ if .System }}}}{IM_START}system\n{{{{ .System }}}}{IM_END}\n{{{{ end }}}}"
            f"{IM_START}user\n{{{{ .Prompt }}}}{IM_END}\n{IM_START}assistant\n"
        ),
        tools=TOOLS,
    ),
    fim=FIM,
    required=FIM.tokens,
    detect_tokens=FIM.tokens,
    name_pattern=re.compile(r"qwen[-_ ]?2[._]?5[-_ ]?coder", re.IGNORECASE),
    variants=VariantHints(
        suggest_chat="a Qwen2.5-Coder -Instruct model", suggest_fim="a Qwen2.5-Coder base model"
    ),
    vocab=RemoteVocab("qwen2", SPECIALS, None, ENDOFTEXT, IM_END, False, 151936),
    key_tokens=(
        FIM_PREFIX,
        FIM_MIDDLE,
        FIM_SUFFIX,
        FIM_PAD,
        FILE_SEP,
        REPO_NAME,
        IM_START,
        IM_END,
        ENDOFTEXT,
    ),
    label=f"ChatML ({IM_START})",
)
