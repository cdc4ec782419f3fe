"""Tool prompts without a model: the JSON-schema grammar and cgstudio's Gemma tool format."""

from __future__ import annotations

import json

import pytest

from cgstudio.core.errors import InvalidInputError, UnsupportedModeError, VariantMismatchError
from cgstudio.core.prompt import ChatMessage
from cgstudio.core.tools import ToolCall, ToolChoice, ToolSpec, check_tools
from cgstudio.engine.fake import FakeEngine
from cgstudio.families import gemma
from cgstudio.prompts.grammar import literal, schema_grammar, tool_call_grammar
from cgstudio.prompts.tools import preamble_messages

WEATHER = ToolSpec(
    "get_weather",
    "Weather for a city",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)


def rules(grammar: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in grammar.strip().splitlines())


def test_literal_escapes() -> None:
    assert literal('a"b\\c\n') == '"a\\"b\\\\c\\x0a"'


def test_tool_call_grammar_shape() -> None:
    g = rules(tool_call_grammar([WEATHER], "<tool_call>", "</tool_call>"))
    assert g["root"].startswith('"<tool_call>\\x0a" ') and g["root"].endswith(' "\\x0a</tool_call>"')
    body = " ".join(g.values())
    assert '"\\"get_weather\\""' in body and '"\\"city\\""' in body and '"\\"c\\"" | "\\"f\\""' in body
    # Every referenced rule is defined (llama.cpp refuses undefined ones).
    import re

    names = set(g)
    for rhs in g.values():
        for ref in re.findall(
            r'(?<![\\"\w-])([a-z][a-z0-9-]*)(?=\s|$|\))', re.sub(r'"(?:[^"\\]|\\.)*"|\[[^\]]*\]', " ", rhs)
        ):
            assert ref in names, ref


def test_required_keys_come_first_optional_in_order() -> None:
    g = rules(schema_grammar(WEATHER.parameters))
    obj = next(v for v in g.values() if v.startswith('"{" ws'))
    assert "?" in obj and obj.index("r1") < obj.index("r3")


@pytest.mark.parametrize("schema", [{"$ref": "#/x"}, {"type": "object"}, {}, "nonsense", {"allOf": []}])
def test_unknown_schemas_fall_back_to_json_values(schema) -> None:
    g = rules(schema_grammar(schema))
    assert g["root"] in ("value", "object")


def test_check_tools_rejects_bad_names_and_unknown_choice() -> None:
    with pytest.raises(InvalidInputError, match="not valid"):
        check_tools((ToolSpec("<|im_end|>"),), ToolChoice())
    with pytest.raises(InvalidInputError, match="not in tools"):
        check_tools((WEATHER,), ToolChoice("function", "add"))
    with pytest.raises(InvalidInputError, match="needs tools"):
        check_tools((), ToolChoice("required"))


def test_gemma_preamble_round_trip_messages() -> None:
    history = [
        ChatMessage("user", "Weather in Paris?"),
        ChatMessage("assistant", "", (ToolCall("call_1", "get_weather", {"city": "Paris"}),)),
        ChatMessage("tool", '{"temp": 21}', tool_call_id="call_1"),
    ]
    msgs = preamble_messages(gemma.TOOLS, history, [WEATHER], ToolChoice("required"))
    assert [m.role for m in msgs] == ["system", "user", "assistant", "user"]
    assert json.dumps(WEATHER.as_openai()["function"]) in msgs[0].content
    assert "Call one of these functions now: get_weather." in msgs[0].content
    assert msgs[2].content == '```tool_call\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```'
    assert msgs[3].content == 'Result of get_weather:\n```tool_result\n{"temp": 21}\n```'


def test_pretrained_model_gets_a_clear_400() -> None:
    import cgstudio.core.settings as settings
    from cgstudio.generation.request import GenerationRequest
    from cgstudio.session.model import CodeModel

    engine = FakeEngine([b"x"])
    model = CodeModel(engine, settings.load_settings({"guards": {"variant": "pretrained"}}), alias="gemma-2b")
    req = GenerationRequest("chat", messages=[ChatMessage("user", "hi")], tools=(WEATHER,))
    with pytest.raises(VariantMismatchError, match=r"gemma-2b is a pretrained .* cannot call tools"):
        model.prompt(req)
    # An instruction-tuned model whose (fake) GGUF has no tool template: a 400 that says so.
    model = CodeModel(engine, settings.load_settings({"guards": {"variant": "instruction-tuned"}}), alias="m")
    with pytest.raises(UnsupportedModeError, match="chat template has no tool syntax"):
        model.prompt(req)
