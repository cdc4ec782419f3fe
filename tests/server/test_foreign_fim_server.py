"""Client-rendered FIM templates over HTTP (issue 14 §2, §5): the real openai and ollama clients send
StarCoder, CodeLlama and Qwen templates as plain prompts; the engine must see the same token ids as
for a native FIM request (prompt + suffix). Also Ollama's ``template`` override and /v1/prompt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from server_testing import Live, LiveFactory

P, S = "def area(r):\n    return ", "\n\nprint(area(2))\n"
TEMPLATES = {
    "starcoder": f"<fim_prefix>{P}<fim_suffix>{S}<fim_middle>",
    "codellama": f"<PRE> {P} <SUF>{S} <MID>",
    "fim-pipes": f"<|fim_prefix|>{P}<|fim_suffix|>{S}<|fim_middle|>",  # Qwen's (and CodeGemma's) markup
}
SOT = 106  # CodeGemma's <start_of_turn>: a chat prompt has it, a FIM prompt never
ONE = {"num_predict": 1}


@pytest.fixture(scope="module")
def live(live_server: LiveFactory, synthetic: dict[str, Path]) -> Iterator[Live]:
    with live_server({"cg-pt": synthetic["cg-pt"], "cg-it": synthetic["cg-it"]}) as server:
        yield server


@pytest.fixture(scope="module")
def oai(live: Live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def ol(live: Live) -> ollama.Client:
    return ollama.Client(host=live.url, timeout=60)


def decoded(live: Live, alias: str) -> list[int]:
    """The token ids of the last prompt the engine decoded for ``alias``."""
    return live.engine(alias).requests[-1]


def native_ids(live: Live, oai: openai.OpenAI, alias: str) -> list[int]:
    oai.completions.create(model=alias, prompt=P, suffix=S, max_tokens=1)
    return decoded(live, alias)


def codes(doc: dict[str, Any]) -> list[str]:
    return [w["code"] for w in doc.get("warnings") or []]


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_templates_as_plain_prompts_decode_the_native_fim_ids(
    live: Live, oai: openai.OpenAI, ol: ollama.Client, name: str
) -> None:
    text = TEMPLATES[name]
    native = native_ids(live, oai, "cg-pt")
    assert native.count(SOT) == 0 and len(native) > 10

    r = oai.completions.create(model="cg-pt", prompt=text, max_tokens=1)
    assert decoded(live, "cg-pt") == native, "/v1/completions without suffix"
    assert "fim_template_translated" in codes(r.model_extra or {})

    ol.generate(model="cg-pt", prompt=text, raw=True, options=ONE)
    assert decoded(live, "cg-pt") == native, "/api/generate raw"
    ol.generate(model="cg-pt", prompt=text, options=ONE)
    assert decoded(live, "cg-pt") == native, "/api/generate non-raw"
    httpx.post(
        live.url + "/completion", json={"model": "cg-pt", "prompt": text, "n_predict": 1}
    ).raise_for_status()
    assert decoded(live, "cg-pt") == native, "llama.cpp /completion"


def test_non_raw_generate_on_an_instruction_tuned_model_is_fim_not_chat(
    live: Live, oai: openai.OpenAI, ol: ollama.Client
) -> None:
    """Twinny, Tabby and llm-ls send a rendered template without raw: true (the "Here's the output
    of the code:" answer came from treating it as a chat message)."""
    native = native_ids(live, oai, "cg-it")
    ol.generate(model="cg-it", prompt=TEMPLATES["fim-pipes"], options=ONE)
    assert decoded(live, "cg-it") == native
    ol.generate(model="cg-it", prompt="Reverse a list in Python.", options=ONE)
    assert decoded(live, "cg-it").count(SOT) == 2  # no template: a chat message, as before


def test_the_warning_names_both_formats_on_every_dialect(live: Live) -> None:
    body = {"model": "cg-pt", "prompt": TEMPLATES["starcoder"]}
    docs = [
        httpx.post(live.url + "/v1/completions", json={**body, "max_tokens": 1}).json(),
        httpx.post(live.url + "/api/generate", json={**body, "stream": False, "options": ONE}).json(),
        httpx.post(live.url + "/completion", json={**body, "n_predict": 1}).json(),
    ]
    for doc in docs[:2]:
        (warning,) = [w for w in doc["warnings"] if w["code"] == "fim_template_translated"]
        assert "starcoder → codegemma" in warning["message"]
    assert "fim_template_translated" in str(docs[2])


def test_prompt_preview_shows_the_translated_prompt(live: Live, oai: openai.OpenAI) -> None:
    native = native_ids(live, oai, "cg-pt")
    doc = httpx.post(
        live.url + "/v1/prompt", json={"model": "cg-pt", "prompt": TEMPLATES["codellama"]}
    ).json()
    assert doc["prompt_tokens"] == native and doc["mode"] == "fim"
    assert doc["prompt_text"] == f"<bos><|fim_prefix|>{P}<|fim_suffix|>{S}<|fim_middle|>"
    assert codes(doc)[0] == "fim_template_translated"
    plain = httpx.post(
        live.url + "/v1/prompt", json={"model": "cg-pt", "prompt": TEMPLATES["codellama"], "raw": False}
    ).json()
    assert plain["prompt_tokens"] == native


@pytest.mark.parametrize("template", ["{{ .Prompt }}", "{{.Prompt}}", " {{- .Prompt -}}\n"])
def test_ollama_prompt_only_template_sends_the_prompt_as_given(
    live: Live, oai: openai.OpenAI, ol: ollama.Client, template: str
) -> None:
    """Tabby's Ollama backend: template "{{ .Prompt }}" means raw, with FIM markup understood."""
    native = native_ids(live, oai, "cg-it")
    ol.generate(model="cg-it", prompt=TEMPLATES["starcoder"], template=template, options=ONE)
    assert decoded(live, "cg-it") == native
    ol.generate(model="cg-it", prompt="<start_of_turn>user\nhi", template=template, options=ONE)
    assert decoded(live, "cg-it") == [2, SOT, *live.engine("cg-it").tokenize("user\nhi")]  # raw: control text


@pytest.mark.parametrize(
    "template", ["{{ .System }} {{ .Prompt }}", "<|fim_prefix|>{{ .Prompt }}", "{{ .Prompt }}{{ .Suffix }}"]
)
def test_ollama_other_templates_are_a_clear_400(live: Live, ol: ollama.Client, template: str) -> None:
    decodes = len(live.engine("cg-pt").requests) if live.app.state.registry.entries["cg-pt"].loaded else 0
    with pytest.raises(ollama.ResponseError) as exc:
        ol.generate(model="cg-pt", prompt="def f(", template=template, options=ONE)
    assert exc.value.status_code == 400
    message = str(exc.value.error)
    assert "{{ .Prompt }}" in message and "raw: true" in message
    if live.app.state.registry.entries["cg-pt"].loaded:
        assert len(live.engine("cg-pt").requests) == decodes  # refused before any decoding
