"""Chat prompts as token ids.

Gemma / CodeGemma (built token by token; used for gemma* GGUFs, with or without a template):
    <bos><start_of_turn>user\\n{msg}<end_of_turn>\\n<start_of_turn>model\\n
Roles alternate user/model; a system message is folded into the first user turn.

Other families use the GGUF's own Jinja chat template. Message contents are swapped for
sentinels before rendering, so the template's own markup is parsed as special tokens while
the users' text goes through ``Vocab.plain`` and can never become one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import pairwise

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cgstudio.errors import ContextOverflowError, InvalidInputError, UnsupportedModeError
from cgstudio.prompts.base import ChatMessage, GuardWarning, Prompt
from cgstudio.prompts.vocab import Vocab

ChatRenderer = Callable[[Vocab, Sequence[ChatMessage]], list[int]]


def normalise(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Fold system messages into the first user turn and check that roles alternate."""
    if not messages:
        raise InvalidInputError("chat needs at least one message")
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns = [m for m in messages if m.role != "system"]
    if not turns or turns[0].role != "user":
        raise InvalidInputError("the first non-system message must come from the user")
    for prev, cur in pairwise(turns):
        if prev.role == cur.role:
            raise InvalidInputError(
                f"chat roles must alternate user/assistant; two {cur.role} messages follow each other"
            )
    if turns[-1].role != "user":
        raise InvalidInputError("the last message must come from the user")
    if system:
        turns[0] = ChatMessage("user", f"{system}\n\n{turns[0].content}")
    return turns


def render_gemma(vocab: Vocab, messages: Sequence[ChatMessage]) -> list[int]:
    start, end = vocab.id("<start_of_turn>"), vocab.id("<end_of_turn>")
    out = [vocab.bos_id] if vocab.bos_id is not None else []
    for m in normalise(messages):
        role = "model" if m.role == "assistant" else "user"
        out += [start, *vocab.plain(f"{role}\n{m.content}"), end, *vocab.plain("\n")]
    out += [start, *vocab.plain("model\n")]
    return out


def _jinja_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg: str) -> None:
        raise TemplateError(msg)

    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def render_template(vocab: Vocab, messages: Sequence[ChatMessage]) -> list[int]:
    info = vocab.engine.info
    if not info.chat_template:
        raise UnsupportedModeError(
            "this model has no chat template and its family is unknown; use an instruction-tuned "
            "model whose GGUF carries a template (for CodeGemma: codegemma-7b-it)"
        )
    tag = uuid.uuid4().hex[:12]
    sentinels = [f"\x00{tag}{i}\x00" for i in range(len(messages))]
    fake = [{"role": m.role, "content": s} for m, s in zip(messages, sentinels, strict=True)]
    bos = vocab.engine.piece(info.bos_id, special=True).decode() if info.bos_id is not None else ""
    eos = vocab.engine.piece(info.eos_id, special=True).decode() if info.eos_id is not None else ""
    try:
        text = (
            _jinja_env()
            .from_string(info.chat_template)
            .render(messages=fake, add_generation_prompt=True, bos_token=bos, eos_token=eos)
        )
    except TemplateError as exc:
        raise UnsupportedModeError(f"the model's chat template failed: {exc}") from exc
    out: list[int] = []
    rest = text
    for m, s in zip(messages, sentinels, strict=True):
        before, found, rest = rest.partition(s)
        if not found:
            raise UnsupportedModeError("the model's chat template dropped a message; cannot render chat")
        out += vocab.raw(before) + vocab.plain(m.content)
    out += vocab.raw(rest)
    return out


def fix_bos(vocab: Vocab, tokens: list[int]) -> list[int]:
    """Exactly one BOS when the model wants one, none otherwise (templates often add their own)."""
    info = vocab.engine.info
    bos = info.bos_id
    if bos is None:
        return tokens
    i = 0
    while i < len(tokens) and tokens[i] == bos:
        i += 1
    return ([bos] if info.add_bos else []) + tokens[i:]


def build_chat(
    vocab: Vocab,
    renderer: ChatRenderer,
    messages: Sequence[ChatMessage],
    *,
    stop_ids: frozenset[int],
    n_ctx: int,
    max_tokens: int,
) -> Prompt:
    """Render chat; when it does not fit, drop the oldest turns after the first instruction."""
    msgs = list(messages)
    warnings: list[GuardWarning] = []
    min_room = min(max_tokens, max(n_ctx // 4, 1))
    tokens = fix_bos(vocab, renderer(vocab, msgs))
    dropped = 0
    while len(tokens) + min_room > n_ctx:
        # Keep system messages and the first user message; drop the oldest exchange after it.
        first_user = next(i for i, m in enumerate(msgs) if m.role == "user")
        later = [i for i, m in enumerate(msgs) if i > first_user and m.role != "system"]
        if len(later) < 3:  # only the final user turn (and maybe one reply) is left
            raise ContextOverflowError(
                len(tokens) + min_room,
                n_ctx,
                f"the chat ({len(tokens)} prompt tokens + {min_room} for the reply) does not fit",
            )
        del msgs[later[0] : later[1] + 1]
        dropped += 2
        tokens = fix_bos(vocab, renderer(vocab, msgs))
    if dropped:
        warnings.append(
            GuardWarning(
                "prompt_truncated",
                f"dropped the {dropped} oldest chat messages to fit the {n_ctx}-token context",
            )
        )
    reply_room = n_ctx - len(tokens)
    return Prompt(
        tokens=tokens,
        mode="chat",
        stop_ids=stop_ids,
        warnings=warnings,
        max_tokens=min(max_tokens, reply_room),
    )
