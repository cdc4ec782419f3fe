"""The editor endings (issue 16 §1) on Qwen2.5-Coder-0.5B's real outputs, through CodeModel."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cgstudio.core.settings import load_settings
from cgstudio.engine.llamacpp import LlamaCppEngine
from cgstudio.evaluation.protocol import EVAL_GUARDS
from cgstudio.generation.pipeline import Result
from cgstudio.generation.request import GenerationRequest
from cgstudio.session.model import CodeModel

pytestmark = pytest.mark.slow
GREEDY = {"temperature": 0.0, "max_tokens": 48}


@pytest.fixture(scope="module")
def qwen(qwen_path: Path) -> Iterator[CodeModel]:
    settings = load_settings({"load": {"n_ctx": 2048}})
    m = CodeModel(LlamaCppEngine(qwen_path, settings.load), settings, "qwen")
    yield m
    m.close()


def _final(m: CodeModel, req: GenerationRequest) -> Result:
    result = None
    for chunk in m.stream(req):
        result = chunk.result or result
    assert result is not None
    return result


def test_healing_backs_up_the_trailing_space_after_return(qwen: CodeModel) -> None:
    # llama.vim's /infill shape: the cursor line left of the cursor is ``middle``.
    req = GenerationRequest(
        "infill", "def add(a, b):\n", "\n\nprint(add(1, 2))\n", middle="    return ", sampling=GREEDY
    )
    healed, _ = qwen.prompt(req)
    plain, _ = qwen.prompt(replace(req, guards={"fim_token_healing": False}))
    assert healed.heal == " " and plain.heal == ""
    assert healed.tokens == plain.tokens[:-1]  # backed up to the last token boundary
    result = _final(qwen, req)
    assert result.text.strip() and not result.text.startswith(" ")  # no doubled space


def test_healing_completes_a_half_typed_identifier(qwen: CodeModel) -> None:
    req = GenerationRequest("fim", "import os\nnames = os.listd", "\n", sampling=GREEDY)
    prompt, _ = qwen.prompt(req)
    assert prompt.heal and "os.listd".endswith(prompt.heal)
    assert _final(qwen, req).text.startswith("ir(")  # listdir: the rest of the word, never "listd" again


def test_block_end_stops_inside_mean(qwen: CodeModel) -> None:
    prefix = "def mean(xs):\n    "
    suffix = "\n\nprint(mean([1, 2, 3]))\n"
    req = GenerationRequest("fim", prefix, suffix, sampling={**GREEDY, "max_tokens": 128})
    result = _final(qwen, req)
    assert "\ndef " not in result.text and "\nprint(" not in result.text
    assert result.finish_reason in ("stop", "eos")
    if result.finish_reason == "stop":
        assert result.stop_rule in ("block_end", "suffix_overlap")


def test_mid_line_string_ends_before_the_suffix_closers(qwen: CodeModel) -> None:
    req = GenerationRequest("fim", 'def greet():\n    print("Hello, ', '")\n\ngreet()\n', sampling=GREEDY)
    result = _final(qwen, req)
    assert "\n" not in result.text and not result.text.endswith('"')
    assert result.finish_reason == "stop" and result.stop_rule in ("bracket_overlap", "line_end")


def test_paper_protocol_guards_leave_the_prompt_and_text_alone(qwen: CodeModel) -> None:
    req = GenerationRequest(
        "fim", "def add(a, b):\n    return ", "\n", sampling=GREEDY, guards=dict(EVAL_GUARDS)
    )
    prompt, _ = qwen.prompt(req)
    assert prompt.heal == ""  # the paper protocol never heals
    off = {k: False for k in ("fim_block_end", "fim_line_end", "fim_bracket_overlap", "fim_token_healing")}
    assert _final(qwen, req).text == _final(qwen, replace(req, guards={**EVAL_GUARDS, **off})).text


def test_an_indented_cursor_gets_no_extra_space_in_the_editor_layout(qwen: CodeModel) -> None:
    """The cursor after a line's indentation. Sent after the middle token, a whole 8-space token is
    not how the model writes an indented line, and it answered " self.add_keywords(...)", a space
    too many (seen in `eval repo` on sqlparse). Indentation alone never follows the middle token:
    the lines of code above it go there too, and token healing takes the indentation off (the
    reply starts with it); once the cursor line has text, it is sent there, healed."""
    prefix = (
        "class Lexer:\n    def __init__(self):\n        self._keywords = []\n\n"
        "    def default_initialization(self):\n        self.clear()\n        self.set_SQL_REGEX(SQL_REGEX)\n"
        "        self.add_keywords(KEYWORDS_COMMON)\n        self.add_keywords(KEYWORDS_ORACLE)\n        "
    )
    suffix = "\n        self.add_keywords(KEYWORDS)\n"
    req = GenerationRequest("fim", prefix, suffix, sampling=GREEDY, guards={"fim_single_line": True})
    prompt, _ = qwen.prompt(req)
    middle = qwen.vocab.id("<|fim_middle|>")
    after = prompt.tokens[prompt.tokens.index(middle) + 1 :]
    moved = qwen.vocab.engine.detokenize(after)  # the lines above the cursor, healed indentation
    assert moved.endswith("        self.add_keywords(KEYWORDS_ORACLE)\n") and prefix.startswith("class")
    assert prefix.endswith(moved + prompt.heal) and moved.count("\n") >= 2
    assert prompt.heal.strip() == "" and prompt.heal  # the indentation: the reply starts with it
    text = _final(qwen, req).text
    assert text.strip() and not text[0].isspace(), repr(text)
    typed = _final(qwen, replace(req, prompt=prefix + "self.add_")).text  # the layout, healed
    assert typed.strip() and not typed[0].isspace(), repr(typed)
