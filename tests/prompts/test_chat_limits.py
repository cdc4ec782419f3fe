"""Chat building bounds: trimming cost (renders, tokenizer calls), the message-count bound,
cancellation while trimming, and hostile GGUF chat templates (issue 12)."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence

import pytest

from cgstudio.core.errors import InvalidInputError, UnsupportedModeError
from cgstudio.core.prompt import ChatMessage
from cgstudio.core.settings import load_settings
from cgstudio.engine.fake import FakeEngine
from cgstudio.generation.request import GenerationRequest
from cgstudio.prompts.chat import (
    MAX_CHAT_MESSAGES,
    ChatBuildCancelled,
    ChatRenderer,
    build_chat,
    fix_bos,
    render_template,
)
from cgstudio.prompts.vocab import Vocab
from cgstudio.session.model import CodeModel

SIMPLE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}</>{% endfor %}<assistant>"


class CountingEngine(FakeEngine):
    """FakeEngine (one token per byte) with a chat template, counting tokenizer calls."""

    def __init__(self, template: str = SIMPLE, n_ctx: int = 4096) -> None:
        super().__init__([], n_ctx=n_ctx)
        self.info = dataclasses.replace(self.info, chat_template=template)
        self.tokenize_calls = 0

    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        self.tokenize_calls += 1
        return super().tokenize(text, parse_special=parse_special)


def chat(n_exchanges: int, size: int = 20) -> list[ChatMessage]:
    msgs = [ChatMessage("system", "be brief"), ChatMessage("user", "first instruction")]
    for i in range(n_exchanges):
        msgs += [
            ChatMessage("assistant", f"reply {i} " + "r" * size),
            ChatMessage("user", f"ask {i} " + "u" * size),
        ]
    return msgs


def counting_renderer(calls: list[int]) -> ChatRenderer:
    def renderer(vocab: Vocab, messages: Sequence[ChatMessage]) -> list[int]:
        calls.append(len(messages))
        return render_template(vocab, messages)

    return renderer


def reference_trim(vocab: Vocab, msgs: list[ChatMessage], n_ctx: int, max_tokens: int) -> list[int]:
    """The old algorithm: drop one exchange at a time, re-rendering after each."""
    msgs = list(msgs)
    room = min(max_tokens, max(n_ctx // 4, 1))
    tokens = fix_bos(vocab, render_template(vocab, msgs))
    while len(tokens) + room > n_ctx:
        later = [i for i, m in enumerate(msgs) if i > 1 and m.role != "system"]
        if len(later) < 3:
            raise IndexError("does not fit")
        del msgs[later[0]], msgs[later[1] - 1]
        tokens = fix_bos(vocab, render_template(vocab, msgs))
    return tokens


def test_trimming_2000_messages_takes_log_n_renders_and_linear_tokenizing() -> None:
    engine = CountingEngine(n_ctx=4096)
    msgs = chat(1000)  # 2002 messages, about 60k tokens: most exchanges must go
    calls: list[int] = []
    t0 = time.perf_counter()
    prompt = build_chat(
        Vocab(engine), counting_renderer(calls), msgs, stop_ids=frozenset(), n_ctx=4096, max_tokens=256
    )
    elapsed = time.perf_counter() - t0
    # The old loop rendered once per dropped exchange (~950 renders, ~1.9M tokenizer calls).
    assert len(calls) <= math.ceil(math.log2(1000)) + 2
    assert engine.tokenize_calls <= 2 * len(msgs) + 10
    assert len(prompt.tokens) + 256 <= 4096
    assert prompt.warnings[0].code == "prompt_truncated"
    print(f"trimmed 2002 messages in {elapsed:.3f} s with {len(calls)} renders")


@pytest.mark.parametrize("n_exchanges", [0, 1, 3, 7, 20, 41])
@pytest.mark.parametrize("n_ctx", [200, 512, 1024])
def test_trimming_keeps_the_same_messages_as_the_one_by_one_loop(n_exchanges: int, n_ctx: int) -> None:
    engine = CountingEngine(n_ctx=n_ctx)
    vocab = Vocab(engine)
    msgs = chat(n_exchanges, size=17)
    try:
        expected = reference_trim(vocab, msgs, n_ctx, 64)
    except IndexError:  # the old loop's overflow case
        with pytest.raises(Exception, match="does not fit"):
            build_chat(vocab, render_template, msgs, stop_ids=frozenset(), n_ctx=n_ctx, max_tokens=64)
        return
    prompt = build_chat(vocab, render_template, msgs, stop_ids=frozenset(), n_ctx=n_ctx, max_tokens=64)
    assert prompt.tokens == expected


def test_message_count_bound_is_a_clear_error() -> None:
    engine = CountingEngine()
    msgs = [ChatMessage("user", "hi"), *chat(MAX_CHAT_MESSAGES // 2)[2:]]
    assert len(msgs) > MAX_CHAT_MESSAGES
    with pytest.raises(InvalidInputError, match=f"limit is {MAX_CHAT_MESSAGES:,}"):
        build_chat(Vocab(engine), render_template, msgs, stop_ids=frozenset(), n_ctx=4096, max_tokens=64)
    assert engine.tokenize_calls == 0


def test_cancel_stops_trimming_early() -> None:
    cancel = threading.Event()

    class CancellingEngine(CountingEngine):
        def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
            if self.tokenize_calls == 100:
                cancel.set()  # the client went away mid-build
            return super().tokenize(text, parse_special=parse_special)

    engine = CancellingEngine()
    with pytest.raises(ChatBuildCancelled):
        build_chat(
            Vocab(engine),
            render_template,
            chat(1000),
            stop_ids=frozenset(),
            n_ctx=4096,
            max_tokens=64,
            cancel=cancel,
        )
    assert engine.tokenize_calls <= 101


def test_code_model_stream_chat_cancelled_while_building_ends_cancelled() -> None:
    cancel = threading.Event()
    cancel.set()
    model = CodeModel(CountingEngine(), load_settings({}))
    chunks = list(
        model.stream(GenerationRequest("chat", messages=[{"role": "user", "content": "hi"}]), cancel=cancel)
    )
    assert len(chunks) == 1
    result = chunks[0].result
    assert result is not None
    assert result.finish_reason == "cancelled"
    assert result.usage.completion_tokens == 0


HOSTILE = {
    "nested loops": "{% for a in range(3000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}",
    "nested loops over a list": (
        "{% set r = range(100000)|list %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}"
    ),
    "endless recursion": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "exponential recursion": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(20) }}"
    ),
    "string repeat": "{{ 'a' * 2000000 }}",
    "huge power": "{{ 2 ** 100000 }}",
    "doubling in a namespace": (
        "{% set ns = namespace(s='ab') %}{% for i in range(25) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        "{{ ns.s|length }}"
    ),
    "format width": "{{ '%9999999s'|format('a') }}",
    "str.format width": "{{ '{:>9999999}'.format('a') }}",
    "center": "{{ 'a'.center(10 ** 7) }}",
    "replace between every character": "{{ ('a' * 1000)|replace('', 'b' * 10000) }}",
    "output size": "{% for i in range(2000) %}{{ 'x' * 999 }}{% endfor %}",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_chat_templates_end_quickly_with_a_clear_error(name: str) -> None:
    template = "{% for m in messages %}{{ m.content }}{% endfor %}" + HOSTILE[name]
    engine = CountingEngine(template)
    t0 = time.perf_counter()
    with pytest.raises(UnsupportedModeError, match="chat template"):
        render_template(Vocab(engine), [ChatMessage("user", "hi")])
    assert time.perf_counter() - t0 < 10  # the bounds stop each within ~3 s even on a busy machine


def test_sound_templates_still_render_the_same() -> None:
    template = (
        "{{ bos_token }}{% for m in messages %}"
        "{% if loop.first and m.role != 'system' %}<sys>default</>{% endif %}"
        "<{{ m.role }}>{{ m.content | trim }}</>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    engine = CountingEngine(template)
    ids = render_template(Vocab(engine), [ChatMessage("user", "hi"), ChatMessage("assistant", "yo")])
    assert b"".join(engine.piece(t, special=True) for t in ids) == (
        b"<bos><sys>default</><user>hi</><assistant>yo</><assistant>"
    )
