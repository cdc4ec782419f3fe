"""Issue 14 §3-§5: placeholder model names per dialect, n_predict on the OpenAI routes,
/v1/fim/completions (Mistral's FIM API) and max_tokens on /completion.

Synthetic CodeGemma models: cg-pt (pretrained, FIM), cg-it (instruction-tuned, FIM) and
gemma-nofim (pretrained, no FIM tokens).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from server_testing import API_KEY, Live, LiveFactory

AUTH = {"Authorization": f"Bearer {API_KEY}"}
PROMPT, SUFFIX = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"
FIM = {"prompt": PROMPT, "suffix": SUFFIX}


@pytest.fixture
def oai(live: Live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=API_KEY, max_retries=0)


def codes(doc: Any) -> list[str]:
    warnings = doc["warnings"] if isinstance(doc, dict) else (doc.model_extra or {})["warnings"]
    return [w["code"] for w in warnings]


def substituted_message(doc: Any) -> str:
    warnings = doc["warnings"] if isinstance(doc, dict) else (doc.model_extra or {})["warnings"]
    return next(w["message"] for w in warnings if w["code"] == "model_substituted")


# -- placeholder model names --------------------------------------------------------------------------
def test_openai_placeholder_name_is_answered_by_a_fitting_model(oai: openai.OpenAI) -> None:
    # minuet-ai.nvim's llama.cpp recipe: model "PLACEHOLDER" on /v1/completions with a suffix.
    fim = oai.completions.create(
        model="PLACEHOLDER", max_tokens=3, temperature=0, prompt=PROMPT, suffix=SUFFIX
    )
    assert fim.model == "cg-pt"  # a FIM request goes to the pretrained FIM model
    assert "model_substituted" in codes(fim)
    message = substituted_message(fim)
    assert "'PLACEHOLDER'" in message and "cg-pt answered" in message and "--strict-model-names" in message
    chat = oai.chat.completions.create(
        model="my-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert chat.model == "cg-it" and "model_substituted" in codes(chat)
    served = oai.completions.create(model="cg-it", max_tokens=2, prompt=PROMPT, suffix=SUFFIX)
    assert served.model == "cg-it" and "model_substituted" not in codes(served)  # a served name is kept
    default = oai.completions.create(model="default", max_tokens=2, prompt=PROMPT, suffix=SUFFIX)
    assert "model_substituted" not in codes(default)


def test_openai_placeholder_warning_reaches_the_stream(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.completions.create(model="PLACEHOLDER", max_tokens=3, stream=True, prompt=PROMPT, suffix=SUFFIX)
    )
    last = [c for c in chunks if (c.model_extra or {}).get("warnings") is not None]
    assert last and "model_substituted" in codes(last[-1])


def test_llamacpp_routes_ignore_an_unknown_name(client: httpx.Client) -> None:
    infill = client.post(
        "/infill", json={"model": "qwen2.5-coder:1.5b", "input_prefix": "x = ", "n_predict": 2}
    )
    assert infill.status_code == 200, infill.text
    assert infill.json()["model"] == "cg-pt" and "model_substituted" in codes(infill.json())
    # Continue's llama.cpp provider sends the name the user typed to /completion.
    completion = client.post("/completion", json={"model": "anything", "prompt": "x = ", "n_predict": 2})
    assert completion.status_code == 200 and "model_substituted" in codes(completion.json())
    tokens = client.post("/tokenize", json={"model": "anything", "content": "hello"})
    assert tokens.status_code == 200 and tokens.json()["tokens"]


def test_ollama_keeps_its_404(live: Live, client: httpx.Client) -> None:
    with pytest.raises(ollama.ResponseError) as exc:
        ollama.Client(host=live.url, headers=AUTH).generate(model="qwen2.5-coder:1.5b", prompt="x")
    assert exc.value.status_code == 404  # Ollama clients pull on a 404
    assert "qwen2.5-coder:1.5b" in exc.value.error  # a message, as ollama-python expects
    r = client.post("/api/chat", json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and r.json()["code"] == "model_not_found"
    assert isinstance(r.json()["error"], str)  # Ollama's error shape


def test_strict_model_names_restore_the_404(live_server: LiveFactory, synthetic: dict[str, Path]) -> None:
    with live_server(synthetic, api_key=API_KEY, strict_model_names=True) as live:
        oai = openai.OpenAI(base_url=live.url + "/v1", api_key=API_KEY, max_retries=0)
        with pytest.raises(openai.NotFoundError) as exc:
            oai.completions.create(model="PLACEHOLDER", max_tokens=2, prompt=PROMPT, suffix=SUFFIX)
        assert "cg-pt" in str(exc.value)  # says what is served
        with httpx.Client(base_url=live.url, headers=AUTH, timeout=60) as c:
            for path, body in (
                ("/infill", {"model": "x", "input_prefix": "a"}),
                ("/completion", {"model": "x", "prompt": "a"}),
                ("/v1/fim/completions", {"model": "x", **FIM}),
                ("/v1/chat/completions", {"model": "x", "messages": [{"role": "user", "content": "a"}]}),
            ):
                r = c.post(path, json=body)
                assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", path
            assert c.post("/infill", json={"model": "cg-pt", "input_prefix": "a", "n_predict": 1}).is_success


def test_openai_unknown_name_without_a_fitting_model_is_404(
    live_server: LiveFactory, synthetic: dict[str, Path]
) -> None:
    only_base = {"gemma-nofim": synthetic["gemma-nofim"]}  # pretrained, no FIM tokens
    with (
        live_server(only_base, api_key=API_KEY) as live,
        httpx.Client(base_url=live.url, headers=AUTH, timeout=60) as c,
    ):
        chat = c.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        )
        assert chat.status_code == 404
        assert "no served model fits a chat request" in chat.json()["error"]["message"]
        raw = c.post("/v1/completions", json={"model": "gpt-4o", "prompt": "x = ", "max_tokens": 2})
        assert raw.status_code == 200 and "model_substituted" in codes(raw.json())  # every model continues
        # llama.cpp ignores the name whatever fits: the default model answers (variant warning).
        infill = c.post("/completion", json={"model": "gpt-4o", "prompt": "x", "n_predict": 1})
        assert infill.status_code == 200 and infill.json()["model"] == "gemma-nofim"


# -- n_predict on the OpenAI routes --------------------------------------------------------------------
def test_chat_n_predict_zero_prewarms_and_generates_nothing(oai: openai.OpenAI, live: Live) -> None:
    # llama.vim's instruct warm-up: n_predict 0 on /v1/chat/completions.
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Explain this function:\ndef f(x):\n    return x * 2\n"}
    ]
    oai.chat.completions.create(model="cg-it", messages=[{"role": "user", "content": "hi"}], max_tokens=1)
    engine = live.engine("cg-it")
    live.settled()
    before = (engine.counters.evaluated_tokens, engine.counters.generated_tokens)
    warm = oai.chat.completions.create(
        model="cg-it", messages=messages, max_tokens=64, extra_body={"n_predict": 0}
    )
    live.settled()
    assert warm.choices[0].message.content == ""
    assert warm.usage is not None and warm.usage.completion_tokens == 0 and warm.usage.prompt_tokens > 10
    assert engine.counters.evaluated_tokens - before[0] >= 10  # the prompt went into the cache
    assert engine.counters.generated_tokens - before[1] <= 1  # one sample ends the evaluation, unshown
    # The next request with the same messages reuses what the warm-up evaluated.
    reused = engine.counters.reused_tokens
    oai.chat.completions.create(model="cg-it", messages=messages, max_tokens=1)
    assert engine.counters.reused_tokens - reused >= warm.usage.prompt_tokens - 1


def test_n_predict_wins_over_max_tokens(oai: openai.OpenAI) -> None:
    body: dict[str, Any] = {"model": "cg-pt", "prompt": "def f():\n", "temperature": 1.0, "seed": 1}
    body["max_tokens"] = 40
    no_guard = {"guards": {"repetition": False}}
    free = oai.completions.create(**body, extra_body=no_guard)
    assert free.usage is not None and free.usage.completion_tokens > 2  # the precondition
    capped = oai.completions.create(**body, extra_body={**no_guard, "n_predict": 2})
    assert capped.usage is not None and capped.usage.completion_tokens == 2
    chunks = list(
        oai.completions.create(
            **body, stream=True, stream_options={"include_usage": True}, extra_body={"n_predict": 0}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == ""
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 0


# -- /v1/fim/completions -------------------------------------------------------------------------------
def test_fim_completions_is_the_completions_fim_path(client: httpx.Client) -> None:
    body = {"model": "cg-pt", "max_tokens": 6, "temperature": 1.0, **FIM}
    reference = client.post("/v1/completions", json={**body, "seed": 7}).json()
    assert reference["choices"][0]["text"]  # the precondition: a comparison of something
    body["random_seed"] = 7  # Mistral's name for the seed
    doc = client.post("/v1/fim/completions", json=body).json()
    assert doc["object"] == "chat.completion"
    assert doc["choices"][0]["message"] == {"role": "assistant", "content": reference["choices"][0]["text"]}
    assert doc["usage"] == reference["usage"]  # the same prompt, token for token
    with client.stream("POST", "/v1/fim/completions", json={**body, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [x.removeprefix("data: ") for x in r.iter_lines() if x.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == reference["choices"][0]["text"]


def test_fim_completions_fields(client: httpx.Client) -> None:
    r = client.post(
        "/v1/fim/completions",
        json={
            "model": "codestral-latest",
            "prompt": "x = ",
            "random_seed": 3,
            "min_tokens": 1,
            "max_tokens": 2,
        },
    )
    assert r.status_code == 200 and r.json()["model"] == "cg-pt"  # routed to the FIM model
    assert "model_substituted" in codes(r.json())
    bad = client.post("/v1/fim/completions", json={"prompt": "x", "max_tokens": 0})
    assert bad.status_code == 400 and "max_tokens" in bad.json()["error"]["message"]
    missing = client.post("/v1/fim/completions", json={"suffix": "x"})
    assert missing.status_code == 400 and "prompt" in missing.json()["error"]["message"]


# -- max_tokens on /completion -------------------------------------------------------------------------
def test_completion_accepts_max_tokens_as_n_predict(client: httpx.Client) -> None:
    # Twinny's llama.cpp provider sends max_tokens to /completion.
    body = {"model": "cg-pt", "prompt": "def f():\n", "temperature": 1.0, "seed": 1}
    body["guards"] = {"repetition": False}
    default = client.post("/completion", json=body).json()
    assert default["tokens_predicted"] > 3  # the precondition: this prompt goes on past 3 tokens
    capped = client.post("/completion", json={**body, "max_tokens": 3}).json()
    assert capped["tokens_predicted"] == 3 and capped["generation_settings"]["n_predict"] == 3
    both = client.post("/completion", json={**body, "max_tokens": 3, "n_predict": 2}).json()
    assert both["tokens_predicted"] == 2  # n_predict wins, as in llama-server
    warm = client.post("/completion", json={**body, "max_tokens": 0}).json()
    assert warm["content"] == "" and warm["tokens_predicted"] == 0
