"""The studio page end to end: headless Chromium against ``cgstudio serve`` with two real models.

Screenshots are saved under test-artifacts/playground/ (git-ignored); one per view (chat,
completion, parameters) is also copied to docs/img/ for the README when CGSTUDIO_UPDATE_DOCS=1.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.slow
PageFactory = Callable[..., Any]  # the open_studio fixture (conftest.py)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "playground"
DOCS_IMG = REPO / "docs" / "img"
# Read at import: the autouse isolation fixture (tests/conftest.py) removes CGSTUDIO_* variables.
UPDATE_DOCS = os.environ.get("CGSTUDIO_UPDATE_DOCS") == "1"
CURSOR_MARK = '(0.0 for an empty sequence)."""\n    '  # inside mean(): the body's first line
LOAD_LABELS = [
    "Context length",
    "GPU offload (layers)",
    "CPU threads",
    "Evaluation batch size",
    "RoPE base",
    "RoPE scale",
    "Offload KV cache to GPU",
    "Keep model in memory",
    "Try mmap()",
    "Seed",
    "Flash attention",
    "K cache type",
    "V cache type",
]


def shot(page: Any, name: str, docs: str | None = None) -> Path:
    """Save a screenshot as a test artifact; with CGSTUDIO_UPDATE_DOCS=1, ``docs`` also copies it to
    docs/img/<docs>.png (so a plain test run leaves the working tree clean)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if docs and UPDATE_DOCS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / f"{docs}.png")
    return path


def wait_first_piece(page: Any) -> None:
    """Wait until the newest reply has received streamed text."""
    page.wait_for_function(
        "() => Number([...document.querySelectorAll('.msg.assistant')].pop()?.dataset.pieces || 0) > 0"
    )


def send(page: Any, text: str) -> Any:
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")
    return page.locator(".msg.assistant").last


def test_chat_asks_for_the_key_streams_markdown_and_shows_stats(
    open_studio: PageFactory, studio: Any
) -> None:
    page = open_studio(key=False)
    # The first API call answers 401: the page asks for the key and keeps it.
    expect(page.locator("#key-dialog")).to_be_visible()
    page.fill("#key-input", studio.api_key)
    page.click("#key-save")
    expect(page.locator("#model-list li")).to_have_count(2)
    assert page.evaluate("localStorage.getItem('cgstudio.apiKey')") == studio.api_key

    # The picker shows family and variant; chat defaults to the instruction-tuned model.
    options = page.locator("#model-select option").all_inner_texts()
    assert f"{studio.qwen} — qwen2.5-coder · instruction-tuned · FIM" in options
    assert f"{studio.gemma3} — gemma · pretrained" in options
    expect(page.locator("#model-select")).to_have_value(studio.qwen)
    expect(page.locator("#chat-variant-warning")).to_be_hidden()

    reply = send(page, "Write a one-line Python function that reverses a string. Reply with only the code.")
    # Streamed: text is on screen while the reply is still running (Stop is up).
    page.wait_for_function(
        """() => {
            const m = [...document.querySelectorAll('.msg.assistant')].pop();
            return m && m.querySelector('.msg-body').textContent.trim().length > 0
                && !document.querySelector('#btn-stop').hidden;
        }"""
    )
    expect(reply.locator(".s-gtps")).to_be_visible()
    assert int(reply.get_attribute("data-pieces")) >= 2
    assert re.fullmatch(r"\d+\.\d tok/s", reply.locator(".s-gtps b").inner_text())
    assert re.fullmatch(r"\d+\.\d\d s", reply.locator(".s-ttft b").inner_text())
    assert re.fullmatch(r"\d+ → \d+( \(\d+ cached\))?", reply.locator(".s-tokens b").inner_text())
    assert reply.locator(".s-stop b").inner_text() in ("length", "stop", "eos")
    assert re.fullmatch(r"\d+\.\d tok/s", page.locator("#tps-value").inner_text())
    body = reply.locator(".msg-body")
    assert body.inner_text().strip()
    if body.locator(".codeblock").count():  # markdown: fenced code gets a header with a copy button
        expect(body.locator(".codeblock .copy-code").first).to_be_visible()
    shot(page, "chat", docs="chat")

    # Regenerate replaces the reply; Stop cuts it short and says so.
    page.click("#btn-regen")
    expect(page.locator(".msg.assistant")).to_have_count(1)
    wait_first_piece(page)
    page.click("#btn-stop")
    stopped = page.locator(".msg.assistant").last
    expect(stopped.locator(".s-stop b")).to_have_text("stopped")
    expect(page.locator("#btn-send")).to_be_visible()

    page.click("#btn-clear")
    expect(page.locator(".msg")).to_have_count(0)
    expect(page.locator("#chat-empty")).to_be_visible()


def test_completion_ghost_text_tab_accepts_and_prompt_shows_fim_ids(
    open_studio: PageFactory, studio: Any
) -> None:
    page = open_studio()
    page.click("#nav-completion")
    expect(page.locator("#model-select")).to_have_value(studio.qwen)  # the only FIM model
    page.check("#show-prompt")
    code = page.locator("#code")
    original = code.input_value()
    pos = original.index(CURSOR_MARK) + len(CURSOR_MARK)
    code.click()
    code.evaluate("(el, pos) => el.setSelectionRange(pos, pos)", pos)

    with page.expect_request(lambda r: r.url.endswith("/infill")) as infill:
        page.keyboard.press("Control+Space")
    sent = infill.value.post_data_json
    assert sent["input_prefix"] == original[:pos]
    assert sent["input_suffix"] == original[pos:]
    assert sent["n_predict"] == studio.max_tokens
    ghost = page.locator("#ghost-text")
    expect(ghost).to_be_visible()
    expect(page.locator("#completion-stats .s-gtps")).to_be_visible()  # the request has finished
    suggestion = ghost.text_content()
    assert suggestion and suggestion.strip()
    assert code.input_value() == original  # ghost text is not in the document yet

    # "Show prompt": the exact rendered prompt and its token ids, as the server builds them.
    expect(page.locator("#prompt-panel")).to_be_visible()
    expect(page.locator("#prompt-ids")).not_to_be_empty()
    shown_ids = [int(t) for t in page.locator("#prompt-ids").inner_text().split(",")]
    with studio.client() as client:
        fim = {
            name: client.post("/tokenize", json={"model": studio.qwen, "content": name}).json()["tokens"]
            for name in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
        }
        preview = client.post(
            "/cgstudio/prompt",
            json={
                "model": studio.qwen,
                "input_prefix": original[:pos],
                "input_suffix": original[pos:],
                "filepath": sent.get("filepath"),
                "max_tokens": studio.max_tokens,
            },
        ).json()
    assert all(len(ids) == 1 for ids in fim.values()), fim
    pre, suf, mid = (fim[n][0] for n in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"))
    assert shown_ids.index(pre) < shown_ids.index(suf) < shown_ids.index(mid)
    assert shown_ids == preview["prompt_tokens"]
    prompt_text = page.locator("#prompt-text").inner_text()
    for token in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"):
        assert token in prompt_text
    expect(page.locator("#prompt-text .special").first).to_be_visible()
    shot(page, "completion", docs="completion")

    # Tab accepts the suggestion at the cursor.
    page.keyboard.press("Tab")
    expect(ghost).to_have_count(0)
    assert code.input_value() == original[:pos] + suggestion + original[pos:]
    assert code.evaluate("el => el.selectionStart") == pos + len(suggestion)

    shot(page, "completion-accepted")

    # Esc dismisses a suggestion and leaves the document alone. Asked again at the first cursor
    # of the first document: after an accepted suggestion the editor endings may rightly offer
    # nothing more (the block is done), so no ghost would show there.
    code.fill(original)
    code.evaluate(f"el => el.setSelectionRange({pos}, {pos})")
    page.keyboard.press("Control+Enter")
    expect(ghost).to_be_visible()
    page.keyboard.press("Escape")
    expect(ghost).to_have_count(0)
    assert code.input_value() == original


def test_changed_temperature_and_guards_ride_on_the_next_requests(
    open_studio: PageFactory, studio: Any
) -> None:
    page = open_studio()
    page.click("#tab-sampling")
    page.fill("#p-sampling-temperature", "0.7")
    expect(page.locator("#panel-sampling input[type=range][aria-label=Temperature]")).to_have_value("0.7")
    page.click("#tab-guards")
    page.uncheck("#guards-on")
    expect(page.locator("#p-guards-repetition_min_lines")).to_be_disabled()

    bodies: list[dict[str, Any]] = []

    def record(request: Any) -> None:
        if request.method == "POST" and request.url.endswith(("/v1/chat/completions", "/infill")):
            bodies.append(request.post_data_json)

    page.on("request", record)
    reply = send(page, "Say hello.")
    wait_first_piece(page)
    page.click("#btn-stop")
    expect(reply.locator(".s-stop b")).to_have_text("stopped")
    chat = bodies[-1]
    assert chat["temperature"] == 0.7
    assert chat["max_tokens"] == studio.max_tokens
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["messages"][-1] == {"role": "user", "content": "Say hello."}
    assert chat["guards"]["repetition"] is False and chat["guards"]["fim_stop_at_suffix"] is False

    # The values persist across a reload of the page, and the completion view sends them too.
    page.reload()
    expect(page.locator("#model-select option")).to_have_count(2)
    page.click("#tab-sampling")
    expect(page.locator("#p-sampling-temperature")).to_have_value("0.7")
    page.click("#nav-completion")
    page.locator("#code").click()
    with page.expect_request(lambda r: r.url.endswith("/infill")) as infill:
        page.keyboard.press("Control+Space")
    page.keyboard.press("Escape")
    assert infill.value.post_data_json["temperature"] == 0.7
    assert infill.value.post_data_json["guards"]["repetition"] is False


def test_pretrained_model_for_chat_warns_before_and_after(open_studio: PageFactory, studio: Any) -> None:
    page = open_studio()
    expect(page.locator("#model-select option")).to_have_count(2)
    banner = page.locator("#chat-variant-warning")
    expect(banner).to_be_hidden()
    page.select_option("#model-select", studio.gemma3)
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("pretrained")
    expect(page.locator("#model-list button[aria-pressed=true]")).to_contain_text(studio.gemma3)

    reply = send(page, "Hello! Who are you?")
    warning = reply.locator('.warning[data-code="variant_mismatch"]')
    expect(warning).to_be_visible()
    expect(warning.locator(".badge")).to_have_text("Variant mismatch")
    expect(warning.locator(".fix")).to_contain_text("instruction-tuned")
    expect(reply.locator(".s-gtps")).to_be_visible()
    shot(page, "chat-variant-mismatch")


def test_load_profile_apply_reloads_the_model(open_studio: PageFactory, studio: Any) -> None:
    page = open_studio()
    page.locator("#tab-sampling").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-load")).to_have_attribute("aria-selected", "true")
    page.select_option("#load-model", studio.gemma3)
    fields = page.locator("#load-fields .field")
    expect(fields).to_have_count(13)
    assert [t.strip() for t in fields.locator(".field-row > label").all_inner_texts()] == LOAD_LABELS
    for help_text in fields.locator(".help").all_inner_texts():
        assert len(help_text) > 20
    expect(page.locator("#p-load-n_ctx")).to_have_value("2048")

    # A quantized V cache without flash attention is refused with the server's message.
    page.select_option("#p-load-cache_type_v", "q8_0")
    page.click("#btn-apply")
    expect(page.locator("#load-status")).to_contain_text("flash attention")
    page.click("#btn-load-reset")
    expect(page.locator("#p-load-cache_type_v")).to_have_value("f16")

    page.fill("#p-load-n_ctx", "1024")
    expect(page.locator('#load-fields .field[data-key="n_ctx"]')).to_have_class(re.compile(r"\bdirty\b"))
    page.click("#btn-apply")
    expect(page.locator("#load-status")).to_contain_text(f"Loaded {studio.gemma3}")
    expect(page.locator("#load-status")).to_contain_text("context 1024 tokens")
    expect(page.locator("#load-progress")).to_be_hidden()
    with studio.client() as client:
        served = {m["name"]: m for m in client.get("/admin/models").json()["models"]}
    assert served[studio.gemma3]["load"]["n_ctx"] == 1024
    assert served[studio.gemma3]["n_ctx"] == 1024
    assert served[studio.qwen]["load"]["n_ctx"] == 2048
    shot(page, "parameters", docs="parameters")


def test_narrow_window_keeps_every_control_reachable(open_studio: PageFactory) -> None:
    page = open_studio(width=420, height=860)
    expect(page.locator("#model-select option")).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    expect(page.locator("#chat-input")).to_be_visible()
    expect(page.locator("#btn-send")).to_be_visible()
    params = page.locator("#params")
    expect(params).to_be_hidden()
    page.click("#btn-params")
    expect(params).to_be_visible()
    expect(page.locator("#btn-params")).to_have_attribute("aria-expanded", "true")
    page.wait_for_function("getComputedStyle(document.querySelector('#params')).transform === 'none'")
    shot(page, "narrow-parameters")
    page.keyboard.press("Escape")
    expect(params).to_be_hidden()
    page.click("#nav-completion")
    expect(page.locator("#code")).to_be_visible()
    shot(page, "narrow-completion")
