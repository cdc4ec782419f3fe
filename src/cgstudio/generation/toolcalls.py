"""Tool calls parsed out of a streamed reply.

A reply that may call tools (``Prompt.tools``) is text with calls in it, each call's JSON between
the format's open and close markup (Qwen: ``<tool_call>`` ... ``</tool_call>``; cgstudio's Gemma
format: a fenced ```` ```tool_call ```` block). The parser splits it as it streams:

* text before, between and after calls is content, streamed as it comes, except a tail that may
  still begin the open markup and blank space after a call (dropped when the reply ends);
* a call's markup and JSON never reach the content. A call is complete at the first close markup
  after which its body parses (so JSON strings may hold the close text); a body may be wrapped in a
  code fence and may hold several calls (objects one after another, or a list);
* a body is ``{"name": ..., "arguments": {...}}`` (``parameters`` is accepted for ``arguments``,
  and arguments given as a JSON string are decoded); a call to a function that was not offered, or
  a body that never parses, is not a call: it is reported in a ``tool_call_invalid`` warning;
* a fenced ```` ```json ```` block whose body is a call to an offered function is a call too (small
  models write calls that way; llama.cpp's Hermes parser accepts it as well). Another ```` ```json ````
  block is content, shown when its fence closes. So is a reply that starts with a bare JSON call
  (held until that JSON is complete; llama.cpp's and Ollama's parsers accept it too).

``with_tool_calls`` applies the parser to the pipeline's chunks: chunks carry the calls completed
in them, and the final ``Result`` carries the content, every call and ``finish_reason`` "tool_calls".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from cgstudio.core.prompt import GuardWarning
from cgstudio.core.tools import ToolCall, ToolReply
from cgstudio.generation.pipeline import Chunk

_SHOWN = 300  # characters of an invalid call quoted in its warning
JSON_FENCE, FENCE_END = "```json", "```"


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _unfence(body: str) -> str:
    text = body.strip()
    if text.startswith("```"):
        first_nl = text.find("\n")
        text = text[first_nl + 1 :] if first_nl >= 0 else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def _objects(text: str) -> list[Any] | None:
    """The JSON values in ``text``, one after another (whitespace or commas between), or None."""
    decoder = json.JSONDecoder()
    out: list[Any] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            return out or None
        try:
            value, i = decoder.raw_decode(text, i)
        except ValueError:
            return None
        out.append(value)


def parse_calls(body: str, names: tuple[str, ...]) -> list[ToolCall] | None:
    """The calls in one call body, or None when it is not (yet) a valid body."""
    values = _objects(_unfence(body))
    if values is None:
        return None
    items = [v for value in values for v in (value if isinstance(value, list) else [value])]
    calls: list[ToolCall] = []
    for item in items:
        if not isinstance(item, dict):
            return None
        fn: dict[str, Any] = item["function"] if isinstance(item.get("function"), dict) else item
        name = fn.get("name")
        args = fn.get("arguments", fn.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                return None
        if not isinstance(name, str) or (names and name not in names) or not isinstance(args, dict):
            return None
        calls.append(ToolCall(new_call_id(), name, args))
    return calls or None


class ToolCallParser:
    """Feed reply text; get back the content safe to show and the calls completed so far."""

    def __init__(self, reply: ToolReply) -> None:
        self.reply = reply
        self._buf = ""  # text not yet decided
        self._inside = False
        self._scan = 0  # inside: where to look for the next close markup in _buf
        self._bare: bool | None = None  # the reply starts with "{": held until its JSON decides
        # (open, close, strict): the format's own markup, then a ```json fence that may hold a call.
        self._pairs = [(reply.open, reply.close, True)]
        if reply.open != JSON_FENCE:
            self._pairs.append((JSON_FENCE, FENCE_END, False))
        self._open, self._close_text, self._strict = self._pairs[0]
        self.content: list[str] = []
        self.calls: list[ToolCall] = []
        self.warnings: list[GuardWarning] = []

    def feed(self, text: str) -> tuple[str, list[ToolCall]]:
        self._buf += text
        shown: list[str] = []
        calls: list[ToolCall] = []
        if self._bare is None:
            if not self._buf.strip():
                return "", []  # leading blank space: held until the reply's first character decides
            self._bare = self._buf.lstrip().startswith("{")
        while True:
            if self._bare or (self._bare is False and not self._inside and self._after_call_json()):
                done = self._bare_call()
                if done is None:
                    break
                if isinstance(done, str):
                    shown.append(done)
                else:
                    calls += done
                    self.calls += done
                continue
            if self._inside:
                done = self._close()
                if done is None:
                    break
                if isinstance(done, str):  # a ```json block that is not a call: content
                    shown.append(done)
                    continue
                calls += done
                self.calls += done
                continue
            found = [(at, o, c, st) for o, c, st in self._pairs if (at := self._buf.find(o)) >= 0]
            if not found:
                keep = self._held_tail()
                shown.append(self._buf[: len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep :]
                break
            open_at, self._open, self._close_text, self._strict = min(found)
            shown.append(self._buf[:open_at].rstrip() if self.calls else self._buf[:open_at])
            self._buf = self._buf[open_at + len(self._open) :]
            self._inside, self._scan = True, 0
        return self._show("".join(shown)), calls

    def finish(self) -> tuple[str, list[ToolCall]]:
        """At the end of the reply: an unclosed call that parses counts; other leftovers are
        reported (or, from a ```json block, shown). Returns the last content and calls."""
        calls: list[ToolCall] = []
        text = ""
        if self._inside:
            found = parse_calls(self._buf, self.reply.names)
            if found is not None:
                calls = found
            elif not self._strict:
                text = self._show(self._open + self._buf)
            elif self._buf.strip():
                self._invalid(self._buf)
        elif self._bare or not self.calls or self._buf.strip():
            text = self._show(self._buf)
        self._buf, self._inside = "", False
        self.calls += calls
        return text, calls

    def _close(self) -> list[ToolCall] | str | None:
        """The calls of a body that closed; None while it is open; the block's text for a
        ```json block that is not a call."""
        close = self._close_text
        while True:
            at = self._buf.find(close, self._scan)
            if at < 0:
                self._scan = max(0, len(self._buf) - len(close) + 1)
                return None
            found = parse_calls(self._buf[:at], self.reply.names)
            if found is not None or not self._strict:
                block = self._open + self._buf[: at + len(close)]
                self._buf = self._buf[at + len(close) :]
                self._inside = False
                return found if found is not None else block
            self._scan = at + 1

    def _after_call_json(self) -> bool:
        """After a call, only blank space and then "{": another bare call may follow."""
        if not self.calls or not self._buf.strip():
            return False
        if self._buf.lstrip().startswith("{"):
            self._bare = True
        return bool(self._bare)

    def _bare_call(self) -> list[ToolCall] | str | None:
        """A reply that starts with "{": once its first JSON value is complete, the calls it makes
        (and the rest goes on as usual), or its text when it is not a call; None while incomplete."""
        start = len(self._buf) - len(self._buf.lstrip())
        try:
            _, end = json.JSONDecoder().raw_decode(self._buf, start)
        except ValueError:
            return None
        self._bare = False
        found = parse_calls(self._buf[:end], self.reply.names)
        head, self._buf = self._buf[:end], self._buf[end:]
        if found is None and self.calls:
            head = head.lstrip()
        return found if found is not None else head

    def _held_tail(self) -> int:
        """How much of the buffer's end to hold: a start of an open markup, and after a call,
        trailing blank space (it may separate two calls)."""
        buf = self._buf
        keep = max(
            next((k for k in range(min(len(o) - 1, len(buf)), 0, -1) if o.startswith(buf[-k:])), 0)
            for o, _, _ in self._pairs
        )
        if self.calls:
            stripped = buf[: len(buf) - keep].rstrip()
            keep = len(buf) - len(stripped)
        return keep

    def _show(self, text: str) -> str:
        if text:
            self.content.append(text)
        return text

    def _invalid(self, body: str) -> None:
        shown = body.strip()
        if len(shown) > _SHOWN:
            shown = shown[:_SHOWN] + "..."
        self.warnings.append(
            GuardWarning(
                "tool_call_invalid",
                f"the model wrote a tool call that does not parse or names no offered function: {shown!r}. "
                "Use tool_choice 'required' or a named function to constrain calls, or a larger model.",
            )
        )


def with_tool_calls(chunks: Iterator[Chunk], reply: ToolReply) -> Iterator[Chunk]:
    """The pipeline's chunks with tool calls taken out of the text (see the module docstring)."""
    parser = ToolCallParser(reply)
    for chunk in chunks:
        text, calls = parser.feed(chunk.text)
        if chunk.result is None:
            if text or calls:
                yield Chunk(text, tool_calls=calls, stats=chunk.stats)
            continue
        tail, last = parser.finish()
        if text or tail or calls or last:
            yield Chunk(text + tail, tool_calls=calls + last)
        result = chunk.result
        result.text = "".join(parser.content)
        result.tool_calls = list(parser.calls)
        result.warnings.extend(parser.warnings)
        if parser.calls and result.finish_reason in ("eos", "stop"):
            result.finish_reason = "tool_calls"
        yield Chunk("", result=result, stats=chunk.stats)
