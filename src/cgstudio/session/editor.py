"""The editor paths' prompt: FIM at a cursor (fim and infill requests), with token healing.

``editor_prompt`` builds it: plain FIM, or /infill's layout, where the cursor line's text before the
cursor goes after the FIM middle token (``with_middle``). A fim request, and an /infill request
that sends no cursor line of its own, get that layout too when ``fim_cursor_line_in_middle`` is on,
as llama.vim sends it, split where ``session.anchors`` says: the prompt is then the prefix up to a
line start, the suffix, the middle marker, and the rest of the text before the cursor, so typing
only appends to it and the cached suffix stays valid (in PSM order anything typed before the
suffix makes its cache stale).
``healed`` takes the last token before the cursor off the request (``prompts.healing``);
``mark_editor`` tells the pipeline that the editor endings apply (``Prompt.editor``) and what the
reply must start with (``Prompt.heal``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from cgstudio.core.errors import InvalidInputError
from cgstudio.core.prompt import Prompt
from cgstudio.core.settings import GuardSettings
from cgstudio.generation.request import GenerationRequest
from cgstudio.prompts.healing import split_last_token
from cgstudio.prompts.vocab import Vocab
from cgstudio.session.anchors import Anchors
from cgstudio.session.inputs import check_text
from cgstudio.session.window import PrefixWindows

FimBuilder = Callable[..., tuple[Prompt, str | None]]  # CodeModel._fim_prompt


def editor_prompt(
    build: FimBuilder,
    vocab: Vocab,
    n_ctx: int,
    req: GenerationRequest,
    max_tokens: int,
    guards: GuardSettings,
    anchors: Anchors | None,
    heal: str = "",
    windows: PrefixWindows | None = None,
) -> tuple[Prompt, str | None]:
    """The prompt of a fim, infill or plain request (plain: no suffix, no window). Editor paths
    (fim, infill) send a bounded window of the suffix (``fim_suffix_tokens``) and, with
    ``windows``, of the prefix (``fim_prefix_tokens``, cut where ``PrefixWindows.cut`` says); with
    ``anchors`` (the editor layout on), the text before the cursor is split where ``Anchors.split``
    says, and the prefix window is cut from the part before the middle token."""
    editor = req.mode in ("fim", "infill")
    window = guards.fim_suffix_tokens if editor else 0

    def cut(text: str, beside: str = "") -> str:
        """The prefix window of ``text``; ``beside``: the text after the middle token, which a new
        window leaves room for (``PrefixWindows.cut``), so a first visit to a file costs about what
        llama-server's /infill evaluates."""
        if not editor or windows is None:
            return text
        count = lambda t: len(vocab.plain(t))  # noqa: E731
        return windows.cut(text, guards.fim_prefix_tokens, count, req.client, beside=beside)

    if (
        editor
        and not req.middle
        and anchors is not None
        and (split := anchors.split(req.prompt, req.suffix, heal))
    ):
        moved = replace(req, mode="infill", prompt=cut(split[0], split[1]), middle=split[1])
        prompt, problem = infill_prompt(build, vocab, n_ctx, moved, max_tokens, window)
        room = n_ctx - len(prompt.tokens) - 1  # what the reply may use after the moved text
        trimmed = any(w.code == "prompt_truncated" for w in prompt.warnings)
        if not trimmed and room >= min(max_tokens, max(n_ctx // 2, 1)):
            return prompt, problem
        # The file does not fit, or the moved text would eat the reply's room: the PSM prompt
        # trims the prefix instead (and a trimmed window moves with every keystroke anyway).
    req = replace(req, prompt=cut(req.prompt))
    if req.mode == "infill":
        return infill_prompt(build, vocab, n_ctx, req, max_tokens, window)
    suffix = req.suffix if req.mode == "fim" else ""
    return build(req.prompt, suffix, req.files, path=req.path, max_tokens=max_tokens, suffix_tokens=window)


def infill_prompt(
    build: FimBuilder, vocab: Vocab, n_ctx: int, req: GenerationRequest, max_tokens: int, window: int
) -> tuple[Prompt, str | None]:
    """llama.cpp's /infill: the FIM prompt, then ``req.middle`` (the cursor line) after the middle
    token, so the model continues the cursor line."""
    prefix, middle = req.prompt, check_text("prompt", req.middle)
    if not prefix and not req.suffix and not req.files and middle:
        prefix, middle = middle, ""  # only the cursor line: it is the whole prefix
    if not prefix and not req.suffix and not req.files:
        raise InvalidInputError("input_prefix, input_suffix, prompt and input_extra are all empty")
    prompt, problem = build(
        prefix, req.suffix, req.files, path=req.path, max_tokens=max_tokens, suffix_tokens=window
    )
    if middle:
        with_middle(prompt, vocab, prefix, middle, n_ctx)
    return prompt, problem


def healed(
    req: GenerationRequest, vocab: Vocab, enabled: bool, *, in_middle: bool = False
) -> tuple[GenerationRequest, str]:
    """Token healing on editor paths: the text before the cursor (infill's ``middle`` when there is
    one) loses its last token, which the reply must start with; the request as sent, and "", when
    healing is off, the engine cannot constrain the first token, or there is nothing to heal.
    Text after the middle token (infill's ``middle``, or the cursor line when ``in_middle``: the
    editor layout) has its indentation healed too (``split_last_token``)."""
    if not enabled or req.mode not in ("fim", "infill") or not vocab.engine.forces_start:
        return req, ""
    if req.mode == "infill" and req.middle:
        kept, heal = split_last_token(vocab, req.middle, indentation=True)
        return (replace(req, middle=kept), heal) if heal else (req, "")
    kept, heal = split_last_token(vocab, req.prompt, indentation=in_middle)
    return (replace(req, prompt=kept), heal) if heal else (req, "")


def mark_editor(prompt: Prompt, req: GenerationRequest, heal: str) -> None:
    """On an editor path (``req`` fim or infill, as ``healed`` left it), the editor endings apply;
    the rules see the text before the cursor as typed, healed text included."""
    if req.mode in ("fim", "infill") and prompt.mode == "fim":
        prompt.editor, prompt.path, prompt.heal = True, req.path, heal
        prompt.prefix_tail = (req.prompt + req.middle + heal)[-2000:]


def with_middle(prompt: Prompt, vocab: Vocab, prefix: str, middle: str, n_ctx: int) -> None:
    """llama.cpp's /infill: ``middle`` (the cursor line left of the cursor) goes after the FIM
    middle token, so the model continues that line; max_tokens shrinks to the room left."""
    prompt.tokens.extend(vocab.plain(middle))
    prompt.prefix_tail = (prefix + middle)[-2000:]
    if prompt.max_tokens is not None:
        room = n_ctx - len(prompt.tokens) - 1
        prompt.max_tokens = max(1, min(prompt.max_tokens, room))
