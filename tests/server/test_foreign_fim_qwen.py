"""Client-rendered FIM templates on the real Qwen2.5-Coder-0.5B-Instruct (issue 14 §2), through the
openai and ollama clients: Continue's StarCoder template (the ghost text was "55"), CodeLlama's
(Tabby, llm-ls) and Qwen's own, raw and non-raw. Each must decode the ids of a native FIM request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from server_testing import Live, LiveFactory

pytestmark = pytest.mark.slow

P, S = "def add(a, b):\n    ", "\n\n\nprint(add(1, 2))\n"
TEMPLATES = {
    "starcoder": f"<fim_prefix>{P}<fim_suffix>{S}<fim_middle>",
    "codellama": f"<PRE> {P} <SUF>{S} <MID>",
    "fim-pipes": f"<|fim_prefix|>{P}<|fim_suffix|>{S}<|fim_middle|>",
}
GREEDY = {"temperature": 0, "num_predict": 12}


@pytest.fixture(scope="module")
def qwen(live_server: LiveFactory, qwen_path: Path) -> Iterator[Live]:
    with live_server({"qwen": qwen_path}, n_ctx=2048) as live:
        yield live


def decoded(live: Live) -> list[int]:
    return live.engine("qwen").requests[-1]


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_templates_decode_the_native_fim_ids_and_fill_the_middle(qwen: Live, name: str) -> None:
    oai = openai.OpenAI(base_url=qwen.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    ol = ollama.Client(host=qwen.url, timeout=300)
    oai.completions.create(model="qwen", prompt=P, suffix=S, max_tokens=1)
    native = decoded(qwen)

    r = oai.completions.create(model="qwen", prompt=TEMPLATES[name], max_tokens=12, temperature=0)
    assert decoded(qwen) == native
    assert "return a + b" in r.choices[0].text
    warnings = (r.model_extra or {})["warnings"]
    assert warnings[0]["code"] == "fim_template_translated"
    assert f"{name} → qwen2.5-coder" in warnings[0]["message"]

    raw = ol.generate(model="qwen", prompt=TEMPLATES[name], raw=True, options=GREEDY)
    assert decoded(qwen) == native and "return a + b" in raw.response
    templated = ol.generate(model="qwen", prompt=TEMPLATES[name], options=GREEDY)  # Twinny, llm-ls
    assert decoded(qwen) == native and "return a + b" in templated.response
    tabby = ol.generate(model="qwen", prompt=TEMPLATES[name], template="{{ .Prompt }}", options=GREEDY)
    assert decoded(qwen) == native and "return a + b" in tabby.response


def test_continue_qwen_multifile_template_keeps_its_context_file(qwen: Live) -> None:
    """Continue's qwenMultifile rendering: repo name, one context file, the current file's path."""
    util = "def sub(a, b):\n    return a - b"
    text = (
        f"<|repo_name|>calc\n<|file_sep|>util.py\n{util}\n<|file_sep|>main.py\n"
        f"<|fim_prefix|>{P}<|fim_suffix|>{S}<|fim_middle|>"
    )
    native = httpx.post(
        qwen.url + "/v1/prompt",
        json={
            "model": "qwen",
            "input_prefix": P,
            "input_suffix": S,
            "filepath": "main.py",
            "input_extra": [{"filename": "util.py", "text": util}],
        },
    ).json()
    translated = httpx.post(qwen.url + "/v1/prompt", json={"model": "qwen", "prompt": text}).json()
    assert translated["prompt_tokens"] == native["prompt_tokens"]
    assert "<|file_sep|>util.py\n" + util in translated["prompt_text"]
