"""Chat prompts as token ids.

Families whose chat format is "gemma-turns" (Gemma / CodeGemma; built token by token, with or
without a template in the GGUF), with the turn spellings from the family's ``ChatFormat``:
    <bos>{turn_start}user\\n{msg}{turn_end}\\n{turn_start}model\\n
Roles alternate user/model; a system message is folded into the first user turn.

Other families use the GGUF's own Jinja chat template. Message contents are swapped for
sentinels before rendering, so the template's own markup is parsed as special tokens while
the users' text goes through ``Vocab.plain`` and can never become one. A GGUF's template is
untrusted code: it renders in a sandbox that also bounds its work (loop iterations and calls,
seconds) and the size of every string or list it builds, so a hostile one fails fast with
UnsupportedModeError instead of holding the only slot.

Trimming a chat that does not fit binary-searches the number of dropped exchanges (O(log n)
renders) over tokenizations remembered for the whole build (O(n) tokenizer calls), and stops
at ``cancel``.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any

from jinja2 import TemplateError, nodes
from jinja2.filters import do_replace
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from cgstudio.core.errors import ContextOverflowError, InvalidInputError, UnsupportedModeError
from cgstudio.core.prompt import ChatMessage, GuardWarning, Prompt
from cgstudio.families import gemma
from cgstudio.families.base import ChatFormat
from cgstudio.prompts.template_tools import check_tool_text, escape_json_strings, template_message
from cgstudio.prompts.vocab import Vocab

ChatRenderer = Callable[[Vocab, Sequence[ChatMessage]], list[int]]

MAX_CHAT_MESSAGES = 4096  # far beyond any context; a clear 400 before any tokenizing
# Loop iterations, calls and filters in one render; a real template takes about 10 a message.
MAX_TEMPLATE_STEPS = 250_000
MAX_TEMPLATE_SECONDS = 3.0
MAX_TEMPLATE_CHARS = 1_000_000  # any string or list a template builds, and its output
MAX_TEMPLATE_INT_BITS = 4096


class ChatBuildCancelled(Exception):  # a signal for CodeModel, never shown to users
    """``cancel`` was set while a chat prompt was being built."""


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


def render_gemma(vocab: Vocab, messages: Sequence[ChatMessage], chat: ChatFormat = gemma.TURNS) -> list[int]:
    """Gemma turns, with the turn spellings of ``chat`` (a family's "gemma-turns" format)."""
    assert chat.turn_start is not None and chat.turn_end is not None, "a gemma-turns format names its turns"
    start, end = vocab.id(chat.turn_start), vocab.id(chat.turn_end)
    out = [vocab.bos_id] if vocab.bos_id is not None else []
    for m in normalise(messages):
        role = "model" if m.role == "assistant" else "user"
        out += [start, *vocab.plain(f"{role}\n{m.content}"), end, *vocab.plain("\n")]
    out += [start, *vocab.plain("model\n")]
    return out


class TemplateBoundError(SecurityError):
    """A chat template went past a bound on its work or on what it builds."""


_TICK = "cgstudio_tick"  # called at the top of every loop body (see _BoundedEnvironment.compile_bounded)
_WIDTH = re.compile(r"\d{7,}")  # a 7+ digit width or precision in a format string


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus a per-render budget of steps and seconds and size caps.

    Steps are counted where a template can repeat work: each loop iteration (a call injected
    at the top of every loop body), each call (macros, recursion, methods) and each filter.
    Operators that can blow up in one step (``*``, ``**``, ``+``, ``%``) are checked before
    they run; values read, passed or returned are checked after.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(trim_blocks=True, lstrip_blocks=True)
        self.steps = 0
        self.deadline = time.perf_counter() + MAX_TEMPLATE_SECONDS

        def raise_exception(msg: str) -> None:
            raise TemplateError(msg)

        self.globals["raise_exception"] = raise_exception
        self.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.globals[_TICK] = lambda: None
        self.filters = {name: self._bounded_filter(f) for name, f in self.filters.items()}

    # -- budget -----------------------------------------------------------------------------------
    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_TEMPLATE_STEPS:
            raise TemplateBoundError(f"it took more than {MAX_TEMPLATE_STEPS:,} steps (an endless loop?)")
        if not self.steps & 0x3FF and time.perf_counter() > self.deadline:
            raise TemplateBoundError(f"it ran for more than {MAX_TEMPLATE_SECONDS:g} s")

    def checked(self, value: Any) -> Any:
        if _size(value) > MAX_TEMPLATE_CHARS:
            raise TemplateBoundError(f"it built a value of more than {MAX_TEMPLATE_CHARS:,} items")
        if isinstance(value, int) and value.bit_length() > MAX_TEMPLATE_INT_BITS:
            raise TemplateBoundError(f"it built an integer of more than {MAX_TEMPLATE_INT_BITS} bits")
        return value

    def _check_args(self, args: Sequence[Any]) -> None:
        for a in args:
            self.checked(a)
            if isinstance(a, int) and abs(a) > MAX_TEMPLATE_CHARS:  # a width, count or repeat
                raise TemplateBoundError(f"it passed {a:,} where at most {MAX_TEMPLATE_CHARS:,} is allowed")
            if isinstance(a, str) and ("%" in a or "{" in a) and _WIDTH.search(a):
                raise TemplateBoundError("it formats with a width or precision of 7+ digits")

    def _bounded_filter(self, f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)  # keeps jinja's pass_context/pass_environment marks
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self.tick()
            self._check_args([*args, *kwargs.values()])
            if f is do_replace:
                _check_replace(args)
            return self.checked(f(*args, **kwargs))

        return bounded

    # -- sandbox hooks ----------------------------------------------------------------------------
    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.tick()
        owner = getattr(__obj, "__self__", None)  # a bound method's object: 'x'.center(10**9)
        __self._check_args([owner, *args, *(v for k, v in kwargs.items() if not k.startswith("_"))])
        if isinstance(owner, str) and getattr(__obj, "__name__", "") == "replace":
            _check_replace((owner, *args))
        return __self.checked(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, str) and attribute in ("format", "format_map"):
            self._check_args([obj])  # its widths: '{:>9999999}'.format(x)
        return self.checked(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self.checked(super().getitem(obj, argument))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        self.tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if _size(seq) and isinstance(n, int) and _size(seq) * n > MAX_TEMPLATE_CHARS:
                    raise TemplateBoundError(f"it repeats a value {n:,} times")
            if isinstance(left, int) and isinstance(right, int):
                self.checked(1 << min(left.bit_length() + right.bit_length(), MAX_TEMPLATE_INT_BITS + 1))
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            if right * left.bit_length() > MAX_TEMPLATE_INT_BITS:
                raise TemplateBoundError(f"it raises to the power {right:,}")
        elif operator == "+" and _size(left) + _size(right) > MAX_TEMPLATE_CHARS:
            raise TemplateBoundError(f"it built a value of more than {MAX_TEMPLATE_CHARS:,} items")
        elif operator == "%" and isinstance(left, str):
            self._check_args([left, *(right if isinstance(right, tuple) else (right,))])
        return self.checked(super().call_binop(context, operator, left, right))

    def compile_bounded(self, source: str) -> Any:
        """The template, with a step counted at the top of every loop body."""
        tree = self.parse(source)
        for loop in tree.find_all(nodes.For):
            tick = nodes.Call(nodes.Name(_TICK, "load"), [], [], None, None, lineno=loop.lineno)
            loop.body.insert(0, nodes.ExprStmt(tick, lineno=loop.lineno))
        tree.set_environment(self)
        return self.template_class.from_code(self, self.compile(tree), self.make_globals(None), None)


def _check_replace(args: Sequence[Any]) -> None:
    # replace(s, old, new): an empty `old` puts `new` between every character.
    strs = [a for a in args if isinstance(a, str)][-3:]
    if len(strs) == 3:
        s, old, new = strs
        n = len(s) + 1 if not old else len(s) // len(old)
        if len(s) + n * len(new) > MAX_TEMPLATE_CHARS:
            raise TemplateBoundError(f"it built a value of more than {MAX_TEMPLATE_CHARS:,} items")


def render_template(
    vocab: Vocab, messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]] | None = None
) -> list[int]:
    """The GGUF's own template. ``tools`` (OpenAI ``tools`` entries) and the messages' tool calls
    and ``tool`` turns are passed to it as a tool-aware template expects (arguments as objects)."""
    info = vocab.engine.info
    if not info.chat_template:
        raise UnsupportedModeError(
            "this model has no chat template and its family is unknown; use an instruction-tuned "
            "model whose GGUF carries a template (for CodeGemma: codegemma-7b-it)"
        )
    tag = uuid.uuid4().hex[:12]
    # Empty contents stay empty: templates test them ("{% if message.content %}").
    sentinels = [f"\x00{tag}{i}\x00" if m.content else "" for i, m in enumerate(messages)]
    fake = [template_message(m, s) for m, s in zip(messages, sentinels, strict=True)]
    bos = vocab.engine.piece(info.bos_id, special=True).decode() if info.bos_id is not None else ""
    eos = vocab.engine.piece(info.eos_id, special=True).decode() if info.eos_id is not None else ""
    extra: dict[str, Any] = {"tools": list(tools)} if tools else {}
    text = _render_bounded(
        info.chat_template,
        escape=functools.partial(escape_json_strings, vocab),
        messages=fake,
        add_generation_prompt=True,
        bos_token=bos,
        eos_token=eos,
        **extra,
    )
    check_tool_text(vocab, text, tools, messages)
    out: list[int] = []
    rest = text
    for m, s in zip(messages, sentinels, strict=True):
        if not s:
            continue
        before, found, rest = rest.partition(s)
        if not found:
            raise UnsupportedModeError("the model's chat template dropped a message; cannot render chat")
        out += vocab.raw(before) + vocab.plain(m.content)
    out += vocab.raw(rest)
    return out


def _render_bounded(source: str, escape: Callable[[str], str] | None = None, **variables: Any) -> str:
    """Render an untrusted template within the step, time and size bounds, or UnsupportedModeError.

    ``tojson`` writes JSON as chat templates are written for (no HTML escaping, non-ASCII kept),
    passed through ``escape``."""
    env = _BoundedEnvironment()
    env.filters["tojson"] = env._bounded_filter(functools.partial(_tojson, escape or (lambda t: t)))
    parts: list[str] = []
    size = 0
    try:
        for part in env.compile_bounded(source).generate(**variables):
            size += len(part)
            if size > MAX_TEMPLATE_CHARS:
                raise TemplateBoundError(f"its output passed {MAX_TEMPLATE_CHARS:,} characters")
            parts.append(part)
    except TemplateBoundError as exc:
        raise UnsupportedModeError(
            f"the model's chat template was stopped: {exc}; use a GGUF with a sound chat template "
            "or send a client-rendered prompt (raw mode)"
        ) from exc
    except (TemplateError, RecursionError, MemoryError, ArithmeticError, TypeError, ValueError) as exc:
        raise UnsupportedModeError(f"the model's chat template failed: {exc}") from exc
    return "".join(parts)


def _tojson(escape: Callable[[str], str], value: Any, indent: int | None = None, **_: Any) -> str:
    try:
        return escape(json.dumps(value, ensure_ascii=False, indent=indent))
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"tojson: {exc}") from exc


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


class _BuildVocab(Vocab):
    """The model's Vocab for one chat build: tokenizations are remembered (trimming renders the
    same messages again) and ``cancel`` is checked before each new one."""

    def __init__(self, inner: Vocab, cancel: threading.Event | None) -> None:
        self.__dict__.update(inner.__dict__)  # the inner tables as they are; no second __post_init__
        self._memo: dict[tuple[bool, str], list[int]] = {}
        self._cancel = cancel

    def check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise ChatBuildCancelled

    def raw(self, text: str) -> list[int]:
        return self._remember(True, text)

    def plain(self, text: str) -> list[int]:
        return self._remember(False, text)

    def _remember(self, special: bool, text: str) -> list[int]:
        ids = self._memo.get((special, text))
        if ids is None:
            self.check_cancel()
            ids = super().raw(text) if special else super().plain(text)
            self._memo[(special, text)] = ids
        return list(ids)


def build_chat(
    vocab: Vocab,
    renderer: ChatRenderer,
    messages: Sequence[ChatMessage],
    *,
    stop_ids: frozenset[int],
    n_ctx: int,
    max_tokens: int,
    cancel: threading.Event | None = None,
) -> Prompt:
    """Render chat; when it does not fit, drop the fewest oldest exchanges after the first instruction.

    System messages and the first user message are kept; exchanges (a reply and the next user
    message) are dropped oldest first. At most MAX_CHAT_MESSAGES messages (InvalidInputError).
    Raises ChatBuildCancelled once ``cancel`` is set.
    """
    if len(messages) > MAX_CHAT_MESSAGES:
        raise InvalidInputError(
            f"the chat has {len(messages):,} messages; the limit is {MAX_CHAT_MESSAGES:,}. "
            "Send the recent part of the conversation."
        )
    msgs = list(messages)
    memo = _BuildVocab(vocab, cancel)
    min_room = min(max_tokens, max(n_ctx // 4, 1))
    first_user = next((i for i, m in enumerate(msgs) if m.role == "user"), len(msgs))
    later = [i for i, m in enumerate(msgs) if i > first_user and m.role != "system"]
    most = max(0, (len(later) - 1) // 2)  # the last user message and the reply before it stay

    def render(pairs: int) -> list[int]:
        memo.check_cancel()
        dropped = set(later[: 2 * pairs])
        return fix_bos(memo, renderer(memo, [m for i, m in enumerate(msgs) if i not in dropped]))

    def fits(tokens: list[int]) -> bool:
        return len(tokens) + min_room <= n_ctx

    tokens = render(0)
    pairs = 0
    if not fits(tokens):
        shortest = render(most) if most else tokens
        if not fits(shortest):
            raise ContextOverflowError(
                len(shortest) + min_room,
                n_ctx,
                f"the chat ({len(shortest)} prompt tokens + {min_room} for the reply) does not fit",
            )
        # Fewer tokens as more is dropped: find the fewest dropped pairs that fit.
        lo, hi, tokens = 0, most, shortest
        while hi - lo > 1:
            mid = (lo + hi) // 2
            candidate = render(mid)
            if fits(candidate):
                hi, tokens = mid, candidate
            else:
                lo = mid
        pairs = hi
    warnings: list[GuardWarning] = []
    if pairs:
        warnings.append(
            GuardWarning(
                "prompt_truncated",
                f"dropped the {2 * pairs} oldest chat messages to fit the {n_ctx}-token context",
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
