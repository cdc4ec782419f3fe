"""The editor paths' prompt: FIM at a cursor (fim and infill requests), with token healing.

``with_middle`` puts /infill's cursor line after the FIM middle token.
``healed`` takes the last token before the cursor off the request (``prompts.healing``);
``mark_editor`` tells the pipeline that the editor endings apply (``Prompt.editor``) and what the
reply must start with (``Prompt.heal``).
"""

from __future__ import annotations

from dataclasses import replace

from cgstudio.core.prompt import Prompt
from cgstudio.generation.request import GenerationRequest
from cgstudio.prompts.healing import split_last_token
from cgstudio.prompts.vocab import Vocab


def healed(req: GenerationRequest, vocab: Vocab, enabled: bool) -> tuple[GenerationRequest, str]:
    """Token healing on editor paths: the text before the cursor (infill's ``middle`` when there is
    one) loses its last token, which the reply must start with; the request as sent, and "", when
    healing is off, the engine cannot constrain the first token, or there is nothing to heal."""
    if not enabled or req.mode not in ("fim", "infill") or not vocab.engine.forces_start:
        return req, ""
    if req.mode == "infill" and req.middle:
        kept, heal = split_last_token(vocab, req.middle)
        return (replace(req, middle=kept), heal) if heal else (req, "")
    kept, heal = split_last_token(vocab, req.prompt)
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
