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
    # Editor paths (FIM with a suffix, /infill, cgstudio complete): the editor endings apply, and
    # ``path`` (the current file's) tells the block style.
    editor: bool = False
    path: str | None = None
    # Token healing: the text of the prompt's last token, taken off; the reply must start with it
    # (DecodeRequest.starts_with) and the pipeline emits only what follows it.
    heal: str = ""
    context: list[ContextEntry] = field(default_factory=list)  # the context files kept, in prompt order
    context_span: tuple[int, int] = (0, 0)  # where their tokens lie in ``tokens`` (start, end)

    def context_reused(self, n_reused: int) -> int:
        """How many context tokens were among the first ``n_reused`` tokens (the reused KV prefix)."""
        start, end = self.context_span
        return max(0, min(n_reused, end) - start)


ContextReason = Literal["import", "test", "retrieved", "recent", "client"]


@dataclass(frozen=True)
class ContextFile:
    """A file (or a chunk of one) shown to the model before the current file, behind its path.

    ``reason`` says where it came from (cgstudio.repo's sources, or ``client``: sent with the
    request). ``rank`` orders the files by value when the token budget cannot hold them all:
    the highest rank is dropped first, and among equal ranks the earliest in the list.
    ``lines`` marks a chunk of a file (0-based start, end excluded): adjacent chunks of the same
    path and reason share one path line, in the order given, and the budget keeps or drops each
    chunk on its own."""

    path: str
    text: str
    reason: ContextReason = "client"
    rank: int = 0
    lines: tuple[int, int] | None = None


def context_label(path: str, reason: str, lines: tuple[int, int] | None = None) -> str:
    """How warnings name a context file, ``path (reason)``, or a chunk of one,
    ``path lines a-b (reason)`` with 1-based line numbers."""
    return f"{path} lines {lines[0] + 1}-{lines[1]} ({reason})" if lines else f"{path} ({reason})"


@dataclass(frozen=True)
class ContextEntry:
    """One context file as it went into a prompt: its path, its tokens there (path line,
    separator and text) and where it came from."""

    path: str
    tokens: int
    reason: ContextReason

    def as_dict(self) -> dict[str, str | int]:
        return {"path": self.path, "tokens": self.tokens, "reason": self.reason}
