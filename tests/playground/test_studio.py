"""The studio as people use it (issue 15): conversations that last, a UI that never shows a state
that is not true, the Load tab that follows the picker, the light theme and the demo banner.

Headless Chromium against real ``cgstudio serve`` processes with the two demo models. Screenshots
go to test-artifacts/playground/ (and docs/img/ with CGSTUDIO_UPDATE_DOCS=1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from test_playground import send, shot, wait_first_piece

pytestmark = pytest.mark.slow
PageFactory = Callable[..., Any]

ADD = "Write a Python function that adds two numbers."
LISTS = "What is a Python list comprehension? One sentence."
SHORT = 8  # tokens per reply: the CPU is shared, and these tests look at the UI, not the text
EVALUATING = re.compile(r"Evaluating prompt \(([0-9][0-9,]*) tokens\)…")
CONTINUE_PROMPT = "Continue exactly where your last reply stopped. Do not repeat what you already wrote."


def reply_done(page: Any) -> Any:
    """The newest reply, once it has ended (its stats line is up)."""
    reply = page.locator(".msg.assistant").last
    expect(reply.locator(".s-stop")).to_be_visible()
    return reply


def test_conversations_survive_reload_and_a_second_chat(open_studio: PageFactory, studio: Any) -> None:
    page = open_studio(max_tokens=SHORT)
    expect(page.locator("#model-select option")).to_have_count(2)
    expect(page.locator("#btn-regen")).to_be_disabled()  # nothing to regenerate in an empty chat
    send(page, ADD)
    reply = reply_done(page)
    expect(reply.locator(".msg-head .who")).to_have_text(studio.qwen)
    expect(reply.locator(".msg-params")).to_contain_text(f"max tokens {SHORT}")
    expect(reply.locator(".msg-params")).to_contain_text("seed 7")
    expect(page.locator("#btn-regen")).to_be_enabled()
    first_reply = reply.locator(".msg-body").inner_text()
    expect(page.locator("#conv-list li")).to_have_count(1)
    expect(page.locator("#conv-list .conv-title")).to_have_text(ADD)

    # A reload finds the conversation, the reply, its parameters and its stats.
    page.reload()
    expect(page.locator(".msg")).to_have_count(2)
    expect(page.locator(".msg.user .msg-body")).to_have_text(ADD)
    assert page.locator(".msg.assistant .msg-body").inner_text() == first_reply
    expect(page.locator(".msg.assistant .s-gtps")).to_be_visible()
    expect(page.locator(".msg.assistant .msg-params")).to_contain_text("temperature")

    # Rename it; a second conversation starts empty; the first is found again in the list.
    page.fill("#conv-title", "Adding numbers")
    page.press("#conv-title", "Enter")
    expect(page.locator("#conv-list .conv-title").first).to_have_text("Adding numbers")
    page.click("#conv-new")
    expect(page.locator(".msg")).to_have_count(0)
    expect(page.locator("#chat-empty")).to_be_visible()
    expect(page.locator("#btn-regen")).to_be_disabled()
    send(page, LISTS)
    reply_done(page)
    expect(page.locator("#conv-list li")).to_have_count(2)
    shot(page, "conversations", docs="conversations")
    page.reload()
    expect(page.locator("#conv-list li")).to_have_count(2)
    page.locator("#conv-list .conv-item", has_text="Adding numbers").click()
    expect(page.locator(".msg.user .msg-body")).to_have_text(ADD)
    assert page.locator(".msg.assistant .msg-body").inner_text() == first_reply
    expect(page.locator("#conv-title")).to_have_value("Adding numbers")

    # Export: JSON keeps each reply's model, parameters and stats; Markdown reads as the chat.
    with page.expect_download() as dl:
        page.click("#conv-export-json")
    doc = json.loads(Path(dl.value.path()).read_text())
    assert doc["format"] == "cgstudio.conversation.v1" and doc["title"] == "Adding numbers"
    user, assistant = doc["messages"]
    assert user == {
        "id": user["id"],
        "role": "user",
        "content": ADD,
    }
    assert assistant["model"] == studio.qwen and assistant["params"]["max_tokens"] == SHORT
    assert assistant["stats"]["genTokens"] >= 1 and assistant["finish"] in ("stop", "length")
    with page.expect_download() as dl:
        page.click("#conv-export-md")
    md = Path(dl.value.path()).read_text()
    assert dl.value.suggested_filename == "adding-numbers.md"
    assert md.startswith("# Adding numbers\n") and "## You\n" in md and f"## {studio.qwen}\n" in md

    # Delete asks first, then the other conversation is shown.
    page.once("dialog", lambda d: d.accept())
    page.click("#conv-delete")
    expect(page.locator("#conv-list li")).to_have_count(1)
    expect(page.locator(".msg.user .msg-body")).to_have_text(LISTS)


def test_narrow_window_opens_the_chat_list_as_a_drawer(open_studio: PageFactory, studio: Any) -> None:
    # A phone-sized window: the sidebar is a top bar, and its Chats button opens the list.
    page = open_studio(width=390, height=844, max_tokens=SHORT)
    first = {"id": "chat-1", "title": "Adding numbers", "created": 1, "updated": 1, "titled": True}
    first["messages"] = [
        {"id": "m-1", "role": "user", "content": ADD},
        {
            "id": "m-2",
            "role": "assistant",
            "content": "def add(a, b):\n    return a + b",
            "model": studio.qwen,
        },
    ]
    page.evaluate(
        """(c) => { localStorage.setItem('cgstudio.conversations.v1', JSON.stringify([c]));
                    localStorage.setItem('cgstudio.activeConversation', c.id); }""",
        first,
    )
    page.reload()
    expect(page.locator(".msg.user .msg-body")).to_have_text(ADD)
    chats, toggle, items = (
        page.locator("#chats"),
        page.locator("#btn-chats"),
        page.locator("#conv-list .conv-item"),
    )
    expect(chats).to_be_hidden()
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "narrow-chat")

    # The drawer opens with focus on the shown chat; "New chat" closes it on an empty chat.
    toggle.click()
    expect(chats).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(items).to_have_count(1)
    expect(items.first).to_be_focused()
    box = chats.bounding_box()
    assert box is not None and box["x"] == 0 and box["width"] <= 390, box
    shot(page, "narrow-chats")
    page.click("#conv-new")
    expect(chats).to_be_hidden()
    expect(page.locator("#chat-empty")).to_be_visible()
    expect(page.locator("#chat-input")).to_be_focused()
    send(page, LISTS)
    reply_done(page)

    # By keyboard: Enter on the button opens the list, Escape closes it and gives focus back.
    toggle.focus()
    page.keyboard.press("Enter")
    expect(chats).to_be_visible()
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text(LISTS)  # the newest chat first, and focused
    expect(items.first).to_be_focused()
    page.keyboard.press("Escape")
    expect(chats).to_be_hidden()
    expect(toggle).to_be_focused()

    # The first chat is found again: Tab to it in the list, Enter opens it and closes the drawer.
    page.keyboard.press("Enter")
    expect(items.first).to_be_focused()
    page.keyboard.press("Tab")
    expect(items.nth(1)).to_be_focused()
    expect(items.nth(1)).to_contain_text("Adding numbers")
    page.keyboard.press("Enter")
    expect(chats).to_be_hidden()
    expect(page.locator(".msg.user .msg-body")).to_have_text(ADD)
    expect(page.locator("#conv-title")).to_have_value("Adding numbers")
    expect(page.locator("#chat-input")).to_be_focused()


def test_edit_resend_continue_and_a_model_switch(open_studio: PageFactory, studio: Any) -> None:
    page = open_studio(max_tokens=6)  # every reply stops at length
    bodies: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: bodies.append(r.post_data_json) if r.url.endswith("/v1/chat/completions") else None,
    )
    send(page, "Explain recursion.")
    reply = reply_done(page)
    expect(reply.locator(".s-stop b")).to_have_text("length")
    cut = reply.locator(".msg-body").inner_text()
    stored = page.evaluate("JSON.parse(localStorage.getItem('cgstudio.conversations.v1'))[0].messages[1]")[
        "content"
    ]

    # Continue: the cut reply goes back with one more user turn; the new text extends the same reply.
    reply.locator(".act-continue").click()
    expect(reply.locator(".s-stop b")).to_have_text("length")
    expect(page.locator(".msg.assistant")).to_have_count(1)
    sent = bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1] == {"role": "assistant", "content": stored} and stored
    assert sent[2]["content"] == CONTINUE_PROMPT
    assert len(reply.locator(".msg-body").inner_text()) > len(cut)

    # Edit and resend: the message is replaced and the old reply dropped.
    page.locator(".msg.user .act-edit").click()
    page.fill(".msg.user .edit-input", "Explain iteration.")
    page.click(".msg.user .act-save")
    reply_done(page)
    expect(page.locator(".msg")).to_have_count(2)
    expect(page.locator(".msg.user .msg-body")).to_have_text("Explain iteration.")
    assert bodies[-1]["messages"] == [{"role": "user", "content": "Explain iteration."}]

    # Switching models: the new model gets the user's turns only, joined, and the reply says so.
    page.select_option("#model-select", studio.gemma3)
    send(page, "And a loop?")
    reply = reply_done(page)
    assert bodies[-1]["model"] == studio.gemma3
    assert bodies[-1]["messages"] == [{"role": "user", "content": "Explain iteration.\n\nAnd a loop?"}]
    expect(reply.locator(".msg-note")).to_contain_text(f"without the replies of {studio.qwen}")


def hold_models() -> tuple[list[Any], Callable[[Any], None], Callable[[Any], None]]:
    """Routes that hold /v1/models back: (held, install(page), release(page))."""
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append(route)

    def release(page: Any) -> None:
        assert held, "the page never asked for /v1/models"
        for route in held:
            route.continue_()
        page.unroute("**/v1/models")  # any later request goes straight through

    return held, lambda page: page.route("**/v1/models", hold), release


def test_a_message_sent_before_the_model_list_arrives_waits_for_it(
    open_studio: PageFactory, studio: Any
) -> None:
    # Enter pressed while the page still asks the server for its models used to do nothing at all:
    # the message sat in the box. The list is held back until after Enter to make that moment certain.
    _, install, release = hold_models()
    page = open_studio(max_tokens=SHORT, before_load=install)
    send(page, "Say hello.")
    expect(page.locator("#btn-send")).to_have_text("Waiting for models…")
    assert page.input_value("#chat-input") == "Say hello."
    expect(page.locator(".msg")).to_have_count(0)
    release(page)
    reply = reply_done(page)
    expect(page.locator(".msg.user .msg-body")).to_have_text("Say hello.")
    assert page.input_value("#chat-input") == ""
    expect(page.locator("#btn-send")).to_have_text("Send")
    expect(reply.locator(".s-stop b")).to_have_text("length")


def test_a_completion_asked_before_the_model_list_arrives_runs_once_it_does(
    open_studio: PageFactory, studio: Any
) -> None:
    _, install, release = hold_models()
    page = open_studio(max_tokens=SHORT, before_load=install)
    page.click("#nav-completion")
    page.locator("#code").click()
    page.keyboard.press("Control+Space")
    expect(page.locator("#completion-state")).to_have_text("Waiting for the server's models…")
    with page.expect_request(lambda r: r.url.endswith("/infill")):
        release(page)
    expect(page.locator("#completion-stats .s-gtps")).to_be_visible()  # the request has finished
    expect(page.locator("#completion-state")).not_to_have_text("Waiting for the server's models…")


def test_lost_server_is_shown_within_5_s_and_the_studio_recovers(
    open_studio: PageFactory, own_server: Any
) -> None:
    page = open_studio(url=own_server.url)
    expect(page.locator("#model-list li")).to_have_count(2)
    expect(page.locator("#server-status")).to_have_text("Connected · 2 models")
    banner = page.locator("#server-banner")
    expect(banner).to_be_hidden()

    own_server.stop()
    expect(banner).to_be_visible(timeout=5_000)
    expect(banner).to_contain_text(f"cgstudio serve is not reachable at {own_server.url}; is it running?")
    expect(banner).to_contain_text("Retrying in")
    expect(page.locator("#server-status")).to_have_text("Not connected")
    expect(page.locator("#server-dot")).not_to_have_class(re.compile(r"\bon\b"))
    expect(page.locator("#model-list .dot.on")).to_have_count(0)  # no green "in memory" dots
    shot(page, "server-lost", docs="server-lost")

    # A request meanwhile fails with the same sentence, and shows no stats line.
    send(page, "Hello?")
    reply = page.locator(".msg.assistant").last
    expect(reply.locator(".msg-error")).to_contain_text("is not reachable at")
    expect(reply.locator(".stats")).to_be_empty()
    expect(page.locator("#tps-value")).to_have_text("— tok/s")

    own_server.start()
    expect(banner).to_be_hidden(timeout=30_000)
    expect(page.locator("#server-status")).to_have_text("Connected · 2 models")
    expect(page.locator("#server-dot")).to_have_class(re.compile(r"\bon\b"))


def test_first_request_shows_loading_then_evaluating_then_the_reply(
    open_studio: PageFactory, slow_prefill_server: Any
) -> None:
    # The server holds each first token back (slow_prefill_serve.py): the prompt's evaluation
    # lasts long enough for the studio's 250 ms progress poll to see it.
    page = open_studio(url=slow_prefill_server.url, max_tokens=SHORT)
    expect(page.locator("#model-list li")).to_have_count(2)
    dot = page.locator('#model-list li[data-model="qwen2.5-coder-0.5b"] .dot')
    expect(dot).to_have_attribute("title", "not loaded")
    page.evaluate(
        """() => {
            window.__dots = []; window.__lines = [];
            const dot = document.querySelector('#model-list li[data-model="qwen2.5-coder-0.5b"] .dot');
            new MutationObserver(() => window.__dots.push(dot.className)).observe(dot, { attributes: true });
            const messages = document.querySelector('#messages');
            new MutationObserver(() => {
                const line = [...messages.querySelectorAll('.msg.assistant .msg-progress')].pop();
                const text = line && !line.hidden ? line.textContent.replace(/ [0-9.]+ s$/, '') : '';
                if (text && window.__lines[window.__lines.length - 1] !== text) window.__lines.push(text);
            }).observe(messages, { childList: true, subtree: true, characterData: true, attributes: true });
        }"""
    )
    reply = send(page, "Say hi.")
    progress = reply.locator(".msg-progress")
    expect(progress).to_contain_text("Loading qwen2.5-coder-0.5b…")
    shot(page, "loading", docs="loading")
    expect(progress).to_contain_text(EVALUATING, timeout=60_000)
    shot(page, "evaluating")
    wait_first_piece(page)
    expect(progress).to_be_hidden()
    reply_done(page)

    # Loading, then "Evaluating prompt (N tokens)…" with the prompt's real size, then the reply.
    lines = page.evaluate("window.__lines")
    kinds = ["evaluating" if line.startswith("Evaluating prompt") else line for line in lines]
    assert [k for k, _ in groupby(kinds)] == ["Loading qwen2.5-coder-0.5b…", "evaluating"], lines
    counts = {int(m.group(1).replace(",", "")) for line in lines if (m := EVALUATING.fullmatch(line))}
    stored = "JSON.parse(localStorage.getItem('cgstudio.conversations.v1'))[0].messages[1].stats"
    assert counts == {page.evaluate(stored)["promptTokens"]}, lines
    assert reply.get_attribute("data-phases").startswith("loading evaluating")
    dots = page.evaluate("window.__dots")
    assert "dot loading" in dots and dots[-1] == "dot on", dots  # loading at once, then in memory
    expect(dot).to_have_attribute("title", "in memory")


def test_load_tab_always_describes_the_picked_model(open_studio: PageFactory, studio: Any) -> None:
    page = open_studio()
    expect(page.locator("#model-select option")).to_have_count(2)
    page.click("#tab-load")
    expect(page.locator("#panel-load")).to_have_attribute("data-model", studio.qwen)
    expect(page.locator("#load-note")).to_contain_text(studio.qwen)
    page.fill("#p-load-n_batch", "123")  # an edit for qwen, not applied
    page.select_option("#model-select", studio.gemma3)
    expect(page.locator("#load-model")).to_have_value(studio.gemma3)
    expect(page.locator("#panel-load")).to_have_attribute("data-model", studio.gemma3)
    expect(page.locator("#load-note")).to_contain_text(studio.gemma3)
    expect(page.locator("#p-load-n_batch")).not_to_have_value("123")
    # The Load tab's own picker moves the top one too.
    page.select_option("#load-model", studio.qwen)
    expect(page.locator("#model-select")).to_have_value(studio.qwen)
    expect(page.locator("#p-load-n_batch")).to_have_value("123")
    expect(page.locator("#load-note")).to_contain_text(studio.qwen)


def test_light_theme_follows_the_system(open_studio: PageFactory) -> None:
    dark = open_studio()
    expect(dark.locator("#model-list li")).to_have_count(2)
    assert dark.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(13, 16, 21)"
    light = open_studio(scheme="light")
    expect(light.locator("#model-list li")).to_have_count(2)
    assert light.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 247, 249)"
    assert light.evaluate("getComputedStyle(document.querySelector('.sidebar')).backgroundColor") == (
        "rgb(255, 255, 255)"
    )
    expect(light.locator("#tps-label")).to_have_text("Speed")  # the sparkline is labelled
    shot(light, "light", docs="light")


def test_demo_banner_and_size_chips(open_studio: PageFactory, studio: Any) -> None:
    page = open_studio()
    banner = page.locator("#demo-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Only demo models are served")
    expect(page.locator("#demo-command")).to_have_text(re.compile(r"^cgstudio serve --model codegemma-"))
    qwen = page.locator(f'#model-list li[data-model="{studio.qwen}"]')
    expect(qwen.locator(".chip.demo")).to_have_text("demo")
    expect(qwen.locator(".params-chip")).to_have_text("0.5B · Q4_K_M")  # not the 630M weights in the file
    expect(qwen.locator(".file-chip")).to_have_text("469 MiB")
    gemma = page.locator(f'#model-list li[data-model="{studio.gemma3}"]')
    expect(gemma.locator(".params-chip")).to_contain_text("270M")
    shot(page, "demo-banner", docs="demo-banner")
    page.click("#demo-dismiss")
    expect(banner).to_be_hidden()
    page.reload()
    expect(page.locator("#model-list li")).to_have_count(2)
    expect(banner).to_be_hidden()
