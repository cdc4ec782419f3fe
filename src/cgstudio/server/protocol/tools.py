"""Tool calling in the OpenAI and Ollama dialects: request shapes in, tool calls out.

Both dialects describe functions the same way (``{"type": "function", "function": {"name",
"description", "parameters"}}``). They differ in calls: OpenAI's carry an ``id`` and their
``arguments`` as a JSON string, in streams as ``delta.tool_calls`` entries keyed by ``index`` (the
first with id, type and name, then the arguments in pieces, as openai-python's accumulator joins
them); Ollama's carry ``function.name`` and ``function.arguments`` as an object, and results come
back as ``role: "tool"`` messages with ``tool_name``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cgstudio.core.errors import InvalidInputError
from cgstudio.core.tools import TOOL_NAME, ToolCall, ToolChoice, ToolSpec, check_tools, parse_arguments
from cgstudio.generation.toolcalls import new_call_id
from cgstudio.server.protocol.common import OpenModel

ARGUMENT_PIECE = 48  # characters of arguments per streamed delta


class FunctionDef(OpenModel):
    name: str = Field(..., description="1-64 letters, digits, '_', '.' or '-'.")
    description: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="JSON schema of the arguments object.")


class ToolDef(OpenModel):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(OpenModel):
    name: str


class NamedToolChoice(OpenModel):
    type: Literal["function"] = "function"
    function: NamedFunction


ToolChoiceIn = Literal["auto", "none", "required"] | NamedToolChoice


class CallFunction(OpenModel):
    name: str
    arguments: str | dict[str, Any] | None = Field(
        None, description="OpenAI: a JSON string; Ollama: an object."
    )


class ToolCallIn(OpenModel):
    id: str | None = None
    type: str = "function"
    function: CallFunction


def tool_specs(
    tools: list[ToolDef] | None, choice: ToolChoiceIn | None
) -> tuple[tuple[ToolSpec, ...], ToolChoice]:
    """The request's functions and tool choice, checked (names, sizes, the named function)."""
    specs = tuple(
        ToolSpec(t.function.name, t.function.description or "", t.function.parameters or {})
        for t in tools or ()
    )
    if isinstance(choice, NamedToolChoice):
        parsed = ToolChoice("function", choice.function.name)
    else:
        parsed = ToolChoice(choice or "auto")
    check_tools(specs, parsed)
    return specs, parsed


def history_calls(calls: list[ToolCallIn] | None, where: str) -> tuple[ToolCall, ...]:
    """An assistant message's earlier calls; ids are made up where a client sent none."""
    out = []
    for i, c in enumerate(calls or ()):
        if not TOOL_NAME.match(c.function.name):
            raise InvalidInputError(
                f"{where}: tool call {i} names {c.function.name[:80]!r}, not a function name"
            )
        out.append(
            ToolCall(c.id or new_call_id(), c.function.name, parse_arguments(c.function.arguments, where))
        )
    return tuple(out)


def openai_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
        for c in calls
    ]


def openai_call_deltas(calls: list[ToolCall], first_index: int) -> list[list[dict[str, Any]]]:
    """Stream deltas for ``calls`` (numbered from ``first_index``): one delta with the id, type,
    name and empty arguments, then the arguments in pieces."""
    deltas: list[list[dict[str, Any]]] = []
    for i, c in enumerate(calls, start=first_index):
        deltas.append(
            [{"index": i, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": ""}}]
        )
        text = c.arguments_json
        for at in range(0, len(text), ARGUMENT_PIECE):
            deltas.append([{"index": i, "function": {"arguments": text[at : at + ARGUMENT_PIECE]}}])
    return deltas


def ollama_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"function": {"index": i, "name": c.name, "arguments": c.arguments}} for i, c in enumerate(calls)]
