"""The tool-call parser: pure, no model. Markup never reaches content; calls parse as they stream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cgstudio.core.tools import ToolReply
from cgstudio.generation.pipeline import Chunk, Result
from cgstudio.generation.timings import Timings, Usage
from cgstudio.generation.toolcalls import ToolCallParser, parse_calls, with_tool_calls

QWEN = ToolReply("<tool_call>", "</tool_call>", ("get_weather", "add"))
FENCED = ToolReply("```tool_call", "```", ("get_weather", "add"))


def feed_all(reply: ToolReply, pieces: list[str]) -> tuple[str, list[tuple[str, dict]]]:
    p = ToolCallParser(reply)
    shown = []
    for piece in pieces:
        text, _ = p.feed(piece)
        shown.append(text)
    text, _ = p.finish()
    shown.append(text)
    assert "".join(shown) == "".join(p.content)
    return "".join(shown), [(c.name, c.arguments) for c in p.calls]


def chars(text: str) -> list[str]:
    return list(text)  # the worst split: one character at a time


@pytest.mark.parametrize("split", [chars, lambda t: [t]])
def test_qwen_call_after_text(split) -> None:
    reply = (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    )
    content, calls = feed_all(QWEN, split(reply))
    assert content == "Let me check.\n"
    assert calls == [("get_weather", {"city": "Paris"})]


def test_markup_prefix_is_held_back_until_decided() -> None:
    p = ToolCallParser(QWEN)
    assert p.feed("a <tool") == ("a ", [])  # "<tool" may begin the markup
    assert p.feed("box> b") == ("<toolbox> b", [])  # it did not


def test_several_calls_and_whitespace_between() -> None:
    reply = (
        '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>\n'
        '<tool_call>\n{"name": "add", "arguments": {"a": 3, "b": 4}}\n</tool_call>\n'
    )
    content, calls = feed_all(QWEN, chars(reply))
    assert content == ""
    assert calls == [("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})]


def test_fenced_body_list_body_and_string_arguments() -> None:
    body = (
        '```json\n[{"name": "add", "arguments": "{\\"a\\": 1}"}, '
        '{"function": {"name": "get_weather", "parameters": {}}}]\n```'
    )
    assert [(c.name, c.arguments) for c in parse_calls(body, QWEN.names) or []] == [
        ("add", {"a": 1}),
        ("get_weather", {}),
    ]


def test_close_text_inside_a_json_string_does_not_end_the_call() -> None:
    reply = '```tool_call\n{"name": "add", "arguments": {"a": "x```y"}}\n```\nDone.'
    content, calls = feed_all(FENCED, chars(reply))
    assert calls == [("add", {"a": "x```y"})]
    assert content == "\nDone." or content.strip() == "Done."
    assert "```" not in content


def test_unknown_function_and_broken_json_are_warnings_not_content() -> None:
    p = ToolCallParser(QWEN)
    text, calls = p.feed('<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>')
    tail, last = p.finish()
    assert text + tail == "" and calls == last == [] and p.calls == []
    assert [w.code for w in p.warnings] == ["tool_call_invalid"]
    assert "rm_rf" in p.warnings[0].message


def test_unclosed_call_that_parses_counts_at_the_end() -> None:
    content, calls = feed_all(QWEN, ['<tool_call>\n{"name": "add", "arguments": {"a": 1}}'])
    assert content == "" and calls == [("add", {"a": 1})]


def test_plain_answer_is_untouched() -> None:
    content, calls = feed_all(QWEN, chars("x < y and a<b>c\n"))
    assert content == "x < y and a<b>c\n" and calls == []


def _chunks(pieces: list[str]) -> Iterator[Chunk]:
    for p in pieces:
        yield Chunk(p)
    result = Result("".join(pieces), "eos", [], Usage(1, len(pieces)), Timings(None, None, None, 0.0), "chat")
    yield Chunk("", result=result)


def test_with_tool_calls_sets_result_and_finish_reason() -> None:
    out = list(
        with_tool_calls(
            _chunks(["Hi ", "<tool_call>", '{"name": "add", "arguments": {}}', "</tool_call>"]), QWEN
        )
    )
    result = out[-1].result
    assert result is not None
    assert result.finish_reason == "tool_calls"
    assert result.text == "Hi "
    assert [c.name for c in result.tool_calls] == ["add"]
    assert [c.name for ch in out for c in ch.tool_calls] == ["add"]  # streamed once, with its chunk
    assert "".join(ch.text for ch in out) == "Hi "


def test_json_fence_holding_a_call_is_a_call() -> None:
    # What Qwen2.5-Coder-0.5B writes with tool_choice auto.
    reply = '```json\n{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris"\n  }\n}\n```'
    content, calls = feed_all(QWEN, chars(reply))
    assert content == "" and calls == [("get_weather", {"city": "Paris"})]


def test_other_json_fences_stay_content() -> None:
    reply = 'Here:\n```json\n{"a": 1}\n```\nand ```json\n[1, 2'
    content, calls = feed_all(QWEN, chars(reply))
    assert content == reply and calls == []


def test_reply_that_is_a_bare_json_call_is_a_call() -> None:
    # What Qwen2.5-Coder-0.5B writes for some schemas with tool_choice auto.
    reply = ' {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}'
    content, calls = feed_all(QWEN, chars(reply))
    assert content == "" and calls == [("get_weather", {"city": "Paris", "unit": "c"})]


def test_reply_that_starts_with_other_json_is_content() -> None:
    for reply in ['{"city": "Paris"} is the answer', '{"unfinished": [1, 2']:
        content, calls = feed_all(QWEN, chars(reply))
        assert content == reply and calls == []


def test_bare_json_calls_one_after_another() -> None:
    reply = '{"name": "add", "arguments": {"a": 1}}\n{"name": "add", "arguments": {"a": 2}}\n'
    content, calls = feed_all(QWEN, chars(reply))
    assert content == "" and calls == [("add", {"a": 1}), ("add", {"a": 2})]
