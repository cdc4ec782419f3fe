"""Client-rendered FIM templates in raw and plain prompts (issue 14 §2): the FIM request they state,
rendered in the served model's own format, token for token what prefix and suffix sent as fields
give; and every text that is no complete template stays what it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import cgstudio
from cgstudio.core.prompt import ChatMessage, ContextFile
from cgstudio.generation.request import GenerationRequest
from cgstudio.session.model import CodeModel

BOS, FIM_PRE, FIM_MID, FIM_SUF, FILE_SEP, SOT = 2, 67, 68, 69, 70, 106
P, S = "def area(r):\n    return ", "\n\nprint(area(2))\n"
TEMPLATES = {
    "starcoder": f"<fim_prefix>{P}<fim_suffix>{S}<fim_middle>",
    "codellama": f"<PRE> {P} <SUF>{S} <MID>",
    "fim-pipes": f"<|fim_prefix|>{P}<|fim_suffix|>{S}<|fim_middle|>",
    "deepseek": f"<｜fim▁begin｜>{P}<｜fim▁hole｜>{S}<｜fim▁end｜>",
    "seed-coder": f"<[fim-prefix]>{P}<[fim-suffix]>{S}<[fim-middle]>",
    "codestral": f"[SUFFIX]{S}[PREFIX]{P}",
    "starcoder SPM": f"<fim_suffix>{S}<fim_prefix>{P}<fim_middle>",
}


@pytest.fixture(scope="module")
def model(codegemma_paths: dict[str, Path]) -> Iterator[CodeModel]:
    m = cgstudio.load(str(codegemma_paths["control"]), n_ctx=1024)
    # Token-exact prompts as sent: token healing (on by default on FIM paths, tests/generation/
    # test_endings.py) would take the prefix's trailing " " off both sides of each comparison.
    m.settings.guards.fim_token_healing = False
    # And the PSM layout as the templates write it: the editor layout would move P's last line
    # after the middle token on both sides (test_codegemma_prompts.py checks that layout).
    m.settings.guards.fim_cursor_line_in_middle = False
    yield m
    m.close()


def ids(model: CodeModel, req: GenerationRequest) -> list[int]:
    return model.prompt(req)[0].tokens


@pytest.mark.parametrize("mode", ["raw", "plain"])
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_each_template_gives_the_native_fim_prompt(model: CodeModel, name: str, mode: str) -> None:
    native = model.prompt(GenerationRequest("fim", P, S))[0]
    prompt, _ = model.prompt(GenerationRequest(mode, TEMPLATES[name]))  # type: ignore[arg-type]
    assert prompt.tokens == native.tokens
    assert prompt.tokens == [BOS, FIM_PRE, *model.vocab.plain(P), FIM_SUF, *model.vocab.plain(S), FIM_MID]
    assert prompt.mode == "fim" and prompt.suffix == S  # the FIM guards (stop at the suffix) apply
    warning = prompt.warnings[0]
    assert warning.code == "fim_template_translated"
    assert f"{name.split()[0]} → codegemma" in warning.message
    assert ("SPM" in warning.message) == (name.endswith("SPM") or name == "codestral")


def test_headers_become_context_files_and_the_path(model: CodeModel) -> None:
    qwen_multifile = (
        "<|repo_name|>shop\n<|file_sep|>util.py\ndef tax(x):\n    return x * 0.2\n"
        f"<|file_sep|>app.py\n<|fim_prefix|>{P}<|fim_suffix|>{S}<|fim_middle|>"
    )
    native = GenerationRequest(
        "fim", P, S, files=(ContextFile("util.py", "def tax(x):\n    return x * 0.2"),), path="app.py"
    )
    tokens = ids(model, GenerationRequest("raw", qwen_multifile))
    assert tokens == ids(model, native)
    assert tokens.count(FILE_SEP) == 1  # CodeGemma's separator after the one context file


def test_text_after_the_middle_marker_continues_the_middle(model: CodeModel) -> None:
    prompt, _ = model.prompt(GenerationRequest("raw", TEMPLATES["starcoder"] + "3.14 *"))
    assert prompt.tokens == ids(model, GenerationRequest("infill", P, S, middle="3.14 *"))
    assert prompt.tokens[-len(model.vocab.plain("3.14 *")) - 1] == FIM_MID


def test_text_before_the_template_stays_before_the_prefix(model: CodeModel) -> None:
    tokens = ids(model, GenerationRequest("plain", "# notes\n" + TEMPLATES["starcoder"]))
    assert tokens == ids(model, GenerationRequest("fim", "# notes\n" + P, S))


def test_sampling_and_guards_travel_with_the_translation(model: CodeModel) -> None:
    req = GenerationRequest(
        "raw", TEMPLATES["codellama"], sampling={"max_tokens": 7}, guards={"strict": True}
    )
    fim = req.as_fim(req.fim_template)  # type: ignore[arg-type]  # a template: asserted next
    assert fim.mode == "fim" and fim.sampling == {"max_tokens": 7} and fim.guards == {"strict": True}
    assert model.prompt(req)[0].max_tokens == 7


@pytest.mark.parametrize(
    "text",
    [
        "x = '<fim_prefix>'\n",  # one marker mentioned
        "a <fim_prefix> b <fim_suffix> c\n",  # two of three
        "<fim_middle>a<fim_suffix>b<fim_prefix>c",  # all three, in neither order
        "<fim_prefix>a<fim_suffix>b<fim_middle>c<fim_middle>",  # a marker twice
        "<fim_prefix>a<fim_suffix>b<fim_middle> and <PRE> c <SUF>d <MID>",  # two families' templates
        "see [SUFFIX] and [PREFIX] in the docs",  # Codestral's markers, not at a line start
    ],
)
def test_text_that_is_no_complete_template_is_not_translated(model: CodeModel, text: str) -> None:
    for mode in ("raw", "plain"):
        req = GenerationRequest(mode, text)  # type: ignore[arg-type]
        prompt, _ = model.prompt(req)
        assert req.fim_template is None and req.capability == "completion"
        assert "fim_template_translated" not in [w.code for w in prompt.warnings]
    plain, _ = model.prompt(GenerationRequest("plain", text))
    assert plain.tokens.count(FIM_PRE) == plain.tokens.count(FIM_SUF) == 1  # only cgstudio's own


def test_only_raw_and_plain_prompts_are_read_as_templates(model: CodeModel) -> None:
    """A template inside a FIM prefix, a chat message or a generate request is the user's text."""
    text = TEMPLATES["fim-pipes"]
    fim, _ = model.prompt(GenerationRequest("fim", text, "\n"))
    assert fim.tokens.count(FIM_PRE) == 1 and model.vocab.render(fim.tokens).count("<|fim_prefix|>") == 2
    assert not fim.warnings
    infill = ids(model, GenerationRequest("infill", "x = 1\n", "\n", middle=text))
    assert infill.count(FIM_SUF) == 1 and infill.count(FIM_MID) == 1
    chat, _ = model.prompt(GenerationRequest("chat", messages=[ChatMessage("user", text)]))
    assert chat.tokens.count(FIM_PRE) == 0 and chat.tokens.count(SOT) == 2
    for mode in ("fim", "infill", "chat", "generate"):
        req = GenerationRequest(mode, text, messages=[ChatMessage("user", text)])  # type: ignore[arg-type]
        assert req.fim_template is None


def test_routing_asks_for_a_fim_model() -> None:
    assert GenerationRequest("raw", TEMPLATES["starcoder"]).capability == "fim"
    assert GenerationRequest("plain", TEMPLATES["codellama"]).capability == "fim"
    assert GenerationRequest("raw", "def f(").capability == "completion"


def test_a_model_without_fim_tokens_gets_the_text_as_before(codegemma_paths: dict[str, Path]) -> None:
    m = cgstudio.load(str(codegemma_paths["nofim"]), n_ctx=512)
    try:
        text = TEMPLATES["starcoder"]
        for mode in ("raw", "plain"):
            prompt, _ = m.prompt(GenerationRequest(mode, text))  # type: ignore[arg-type]
            assert prompt.mode == "completion" and not prompt.warnings
            assert prompt.tokens == [BOS, *m.vocab.plain(text)]  # no StarCoder tokens in this vocabulary
    finally:
        m.close()
