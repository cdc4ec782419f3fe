"""What every prompt format produces: token ids plus how to stop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cgstudio.core.tools import ToolCall, ToolReply

Mode = Literal["fim", "completion", "chat", "generate"]


@dataclass(frozen=True)
class GuardWarning:
    """A warning carried on the result: a stable ``code`` and a message that says what to do."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class ChatMessage:
    """One chat message. An assistant message may carry the ``tool_calls`` it made; a ``tool``
    message is a call's result (``tool_call_id``, and the function's ``name`` when known)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass
class Prompt:
    tokens: list[int]
    mode: Mode
    stop_ids: frozenset[int]
    stop_strings: list[str] = field(default_factory=list)
    warnings: list[GuardWarning] = field(default_factory=list)
    # For FIM post-processing: the text after the cursor and the cursor line's indentation.
    suffix: str = ""
    prefix_tail: str = ""
    max_tokens: int | None = None  # clamped when the context is short
    tools: ToolReply | None = None  # set when the reply may carry tool calls
    grammar: str | None = None  # GBNF (root rule "root") that constrains the reply


@dataclass(frozen=True)
class ContextFile:
    path: str
    text: str
