"""Tool calling (function calling): the functions a request offers, the calls a reply makes, and
the caller's choice. Dialects translate their shapes into these; prompt formats render them and
the pipeline's tool-call parser produces ``ToolCall``s from the model's reply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from cgstudio.core.errors import InvalidInputError

# OpenAI's rule for function names; it also keeps names free of any markup.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_TOOLS = 128
MAX_TOOL_JSON_CHARS = 200_000  # all tool definitions together, as JSON


@dataclass(frozen=True)
class ToolSpec:
    """One function the model may call: its name, description and JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)

    def as_openai(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry, the shape chat templates expect."""
        fn: dict[str, Any] = {"name": self.name}
        if self.description:
            fn["description"] = self.description
        fn["parameters"] = self.parameters or {"type": "object", "properties": {}}
        return {"type": "function", "function": fn}


@dataclass(frozen=True)
class ToolCall:
    """A call the model made (or made earlier, in a chat's history). ``arguments`` is the parsed
    JSON object; ``arguments_json`` the text OpenAI clients receive."""

    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


ToolMode = Literal["auto", "none", "required", "function"]


@dataclass(frozen=True)
class ToolChoice:
    """``auto`` (the model decides), ``none`` (no call), ``required`` (at least one call), or
    ``function`` (a call to ``name``)."""

    mode: ToolMode = "auto"
    name: str | None = None

    @property
    def forces_call(self) -> bool:
        return self.mode in ("required", "function")


AUTO = ToolChoice()


def check_tools(tools: tuple[ToolSpec, ...], choice: ToolChoice) -> None:
    """Names are OpenAI-style and unique, a named choice names one of them, sizes are bounded."""
    if len(tools) > MAX_TOOLS:
        raise InvalidInputError(f"got {len(tools)} tools; the limit is {MAX_TOOLS}")
    seen: set[str] = set()
    for t in tools:
        if not TOOL_NAME.match(t.name):
            raise InvalidInputError(
                f"tool name {t.name[:80]!r} is not valid: use 1-64 letters, digits, '_', '.' or '-'"
            )
        if t.name in seen:
            raise InvalidInputError(f"two tools are named {t.name!r}; tool names must be unique")
        seen.add(t.name)
        if not isinstance(t.parameters, dict):
            raise InvalidInputError(f"tool {t.name!r}: parameters must be a JSON schema object")
    size = len(json.dumps([t.as_openai() for t in tools], ensure_ascii=False))
    if size > MAX_TOOL_JSON_CHARS:
        raise InvalidInputError(
            f"the tool definitions are {size:,} characters of JSON; the limit is {MAX_TOOL_JSON_CHARS:,}"
        )
    if choice.forces_call and not tools:
        raise InvalidInputError(f"tool_choice {choice.mode!r} needs tools; send the functions in 'tools'")
    if choice.mode == "function" and choice.name not in seen:
        raise InvalidInputError(
            f"tool_choice names the function {choice.name!r}, which is not in tools "
            f"({', '.join(sorted(seen)) or 'none'})"
        )


def parse_arguments(text: str | dict[str, Any] | None, where: str) -> dict[str, Any]:
    """A call's arguments from a client: a JSON object, or a string holding one (OpenAI)."""
    if text is None or text == "":
        return {}
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: arguments are not valid JSON ({exc}); send a JSON object") from exc
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where}: arguments must be a JSON object")
    return value


@dataclass(frozen=True)
class ToolReply:
    """How a built prompt's reply carries tool calls, for the pipeline's parser: each call's JSON
    sits between ``open`` and ``close``. ``markup_ids`` are special tokens of that markup, which
    the pipeline passes to the parser as text (other special tokens never reach any text)."""

    open: str
    close: str
    names: tuple[str, ...]  # the functions offered: a call to another name is not a call
    markup_ids: frozenset[int] = frozenset()
