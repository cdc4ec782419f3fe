"""Chat prompts that offer tools, and what the reply's parser and grammar need.

Two formats, chosen by the family's ``ToolFormat`` (``families``):

* ``template`` (Qwen2.5 and GGUFs with Hermes-style tool templates): the GGUF's own chat template
  renders ``tools`` (into the system turn), assistant ``tool_calls`` and ``tool`` results. A
  template that mentions neither ``tools`` nor the call markup cannot, and is refused.
* ``preamble`` (Gemma, CodeGemma: no tool syntax in their templates): cgstudio's format. The
  functions lead the system text, one JSON schema a line; past calls are written back as the
  fenced blocks the model was asked for, results as user turns. Everything is plain text in
  Gemma turns, so nothing a client sends can become a control token.

``tool_choice``: ``none`` offers no functions (past calls and results still render); ``auto``
lets the model decide; ``required`` and a named function also constrain the reply with a grammar
(``prompts.grammar``): exactly one call, to an offered function (or the named one), whose
arguments match its parameters schema.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass

from cgstudio.core.errors import UnsupportedModeError, VariantMismatchError
from cgstudio.core.prompt import ChatMessage
from cgstudio.core.tools import ToolChoice, ToolReply, ToolSpec
from cgstudio.families import ModelProfile
from cgstudio.families.base import ToolFormat
from cgstudio.prompts.chat import ChatRenderer, render_template
from cgstudio.prompts.grammar import tool_call_grammar
from cgstudio.prompts.vocab import Vocab


@dataclass(frozen=True)
class ToolPlan:
    """How to render a chat with tools, how its reply carries calls, and the reply's grammar."""

    renderer: ChatRenderer
    reply: ToolReply | None  # None: no functions offered, nothing to parse
    grammar: str | None


def uses_tools(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> bool:
    """Whether a chat needs the tool format: functions offered, or calls and results in its history."""
    return bool(tools) or any(m.role == "tool" or m.tool_calls for m in messages)


def plan_tools(
    vocab: Vocab,
    profile: ModelProfile,
    base: ChatRenderer,
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec],
    choice: ToolChoice,
    *,
    model: str,
) -> ToolPlan | None:
    """The plan for a chat with tools on the model ``profile`` describes (``base`` renders its
    chat); None when the chat neither offers functions nor holds calls (``uses_tools``).

    Raises VariantMismatchError for a pretrained model (it was never taught to call tools) and
    UnsupportedModeError when the format or the GGUF's template has no tool syntax."""
    if not uses_tools(messages, tools):
        return None
    variant = profile.variant
    if variant.variant == "pretrained":
        raise VariantMismatchError(
            f"{model} is a pretrained {profile.family.name} model ({variant.reason}); pretrained models "
            f"cannot call tools. Use an instruction-tuned model for tools: "
            f"{profile.suggested_variant_name('chat')}"
        )
    fmt = profile.family.chat.tools
    if fmt is None:
        raise UnsupportedModeError(
            f"{model}'s chat format has no tool syntax, so it cannot call tools; "
            "use an instruction-tuned Qwen2.5-Coder or CodeGemma model"
        )
    offered = tuple(tools) if choice.mode != "none" else ()
    if fmt.kind == "template":
        template = vocab.engine.info.chat_template or ""
        if "tools" not in template or fmt.open not in template:
            raise UnsupportedModeError(
                f"{model}'s chat template has no tool syntax ({fmt.open}), so it cannot call tools; "
                "use a GGUF whose chat template renders tools (e.g. Qwen2.5-Coder-Instruct)"
            )
        renderer: ChatRenderer = functools.partial(
            render_template, tools=[t.as_openai() for t in offered] or None
        )
    else:
        renderer = functools.partial(_render_preamble, fmt=fmt, base=base, tools=offered, choice=choice)
    if not offered:
        return ToolPlan(renderer, None, None)
    specials = vocab.engine.info.special_tokens
    markup = frozenset(specials[t] for t in (fmt.open, fmt.close) if t in specials)
    reply = ToolReply(fmt.open, fmt.close, tuple(t.name for t in offered), markup)
    grammar = None
    if choice.forces_call:
        callable_ = [t for t in offered if choice.mode == "required" or t.name == choice.name]
        grammar = tool_call_grammar(callable_, fmt.open, fmt.close)
    return ToolPlan(renderer, reply, grammar)


def preamble_messages(
    fmt: ToolFormat, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], choice: ToolChoice
) -> list[ChatMessage]:
    """A chat with tools as plain system/user/assistant messages in the ``preamble`` format."""
    out: list[ChatMessage] = []
    if tools:
        schemas = "\n".join(json.dumps(t.as_openai()["function"], ensure_ascii=False) for t in tools)
        text = fmt.preamble.format(tools=schemas)
        if choice.forces_call:
            names = [t.name for t in tools if choice.mode == "required" or t.name == choice.name]
            text += "\n" + fmt.forced.format(names=", ".join(names))
        out.append(ChatMessage("system", text))
    names_by_id = {c.id: c.name for m in messages for c in m.tool_calls}
    for m in messages:
        if m.role == "tool":
            name = m.name or names_by_id.get(m.tool_call_id or "", "the function")
            msg = ChatMessage("user", fmt.result.format(name=name, content=m.content))
        elif m.tool_calls:
            calls = "\n".join(
                f"{fmt.open}\n"
                + json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False)
                + f"\n{fmt.close}"
                for c in m.tool_calls
            )
            msg = ChatMessage("assistant", f"{m.content}\n{calls}" if m.content else calls)
        else:
            msg = ChatMessage(m.role, m.content)
        if out and msg.role != "system" and out[-1].role == msg.role:
            out[-1] = ChatMessage(msg.role, f"{out[-1].content}\n\n{msg.content}")
        else:
            out.append(msg)
    return out


def _render_preamble(
    vocab: Vocab,
    messages: Sequence[ChatMessage],
    *,
    fmt: ToolFormat,
    base: ChatRenderer,
    tools: Sequence[ToolSpec],
    choice: ToolChoice,
) -> list[int]:
    return base(vocab, preamble_messages(fmt, messages, tools, choice))
