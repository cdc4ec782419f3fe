"""What a tool-aware chat template is given, and the checks that keep tool data plain text.

Message contents reach a GGUF's template behind sentinels (``prompts.chat.render_template``);
tool definitions and call arguments cannot (templates read their structure), so they go in as
data: ``tojson`` escapes special-token spellings inside JSON strings, and a template that prints
such a string some other way is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from cgstudio.core.errors import InvalidInputError
from cgstudio.core.prompt import ChatMessage
from cgstudio.prompts.vocab import Vocab


def template_message(m: ChatMessage, content: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"role": m.role, "content": content}
    if m.tool_calls:
        doc["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.role == "tool":
        doc["tool_call_id"] = m.tool_call_id or ""
        doc["name"] = m.name or ""
    return doc


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def escape_json_strings(vocab: Vocab, json_text: str) -> str:
    """JSON text whose strings spell no special token: the first character of each spelling is
    written as a JSON escape (``<`` -> ``\\u003c``), which decodes to the same value."""
    if not any(p in json_text for p in vocab.protected):
        return json_text

    def fix(match: re.Match[str]) -> str:
        s = match.group(0)
        for spelling in vocab.protected:
            if spelling in s:
                s = s.replace(spelling, f"\\u{ord(spelling[0]):04x}{spelling[1:]}")
        return s

    return _JSON_STRING.sub(fix, json_text)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def check_tool_text(
    vocab: Vocab, text: str, tools: Sequence[dict[str, Any]] | None, messages: Sequence[ChatMessage]
) -> None:
    """Tool definitions and call arguments reach the template as data, not behind sentinels: the
    tojson filter escapes special-token spellings in them, and a template that prints such a
    string some other way is refused rather than let it become a control token."""
    data: list[Any] = [list(tools or ()), [c.arguments for m in messages for c in m.tool_calls]]
    for s in _strings(data):
        spelled = next((p for p in vocab.protected if p in s), None)
        if spelled is not None and s in text:
            raise InvalidInputError(
                f"a tool definition or call argument contains the model's control text {spelled!r}, and "
                "the model's chat template prints it unescaped; remove that text from the tools or arguments"
            )
