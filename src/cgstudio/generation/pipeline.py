"""The one generation pipeline. The CLI, the server, eval and bench all consume ``run``.

engine tokens -> UTF-8-safe text -> token healing (the healed text is dropped) -> stop strings
(held back) -> FIM rules -> repetition guard -> ``Chunk``s, and a final ``Result`` with finish
reason (and ``stop_rule``: which FIM ending stopped it), warnings, usage and timings.
Text a FIM rule may still cut is held back too (``FimRules.settled``), so the chunks' texts add
up to the final ``Result.text`` (unless the repetition guard cuts a loop already streamed).

Choices (``SamplingParams.n`` > 1): the engine decodes n sequences from one prompt evaluation
(``Engine.stream_choices``); each goes through its own stop strings, FIM rules and guards, its
chunks carry its ``index``, and the last chunk holds every choice's ``Result`` in ``results``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from cgstudio.core.engine import DecodeRequest, Engine, Priority, SamplerConfig, TokenStream
from cgstudio.core.prompt import GuardWarning, Prompt
from cgstudio.core.settings import GuardSettings, SamplingParams
from cgstudio.core.tools import ToolCall
from cgstudio.generation.brackets import block_style, comment_start
from cgstudio.generation.diagnose import empty_output_warning
from cgstudio.generation.postprocess import FimRules
from cgstudio.generation.repetition import RepetitionConfig, RepetitionGuard
from cgstudio.generation.stops import StopMatcher, Utf8Stream, check_stop_strings
from cgstudio.generation.timings import Timings, Usage, generation_rate, prompt_rate

ENGINE_FINISH = {
    "stop_token": "eos",
    "max_tokens": "length",
    "context": "length",
    "cancelled": "cancelled",
    "time_limit": "length",  # the prompt outlasted t_max_prompt_ms (llama.cpp's stop_type "limit")
}


@dataclass
class Result:
    text: str
    finish_reason: str  # eos | stop | length | repetition | cancelled | tool_calls
    warnings: list[GuardWarning]
    usage: Usage
    timings: Timings
    mode: str
    tool_calls: list[ToolCall] = field(default_factory=list)  # set by generation.toolcalls
    # The FIM rule that ended the text (finish_reason "stop"): suffix_overlap, single_line,
    # block_end, line_end or bracket_overlap (postprocess.FimRules); None for any other end.
    stop_rule: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "stop_rule": self.stop_rule,
            "warnings": [w.as_dict() for w in self.warnings],
            "usage": self.usage.as_dict(),
            "timings": self.timings.as_dict(),
            "mode": self.mode,
        }


@dataclass
class Chunk:
    """A piece of streamed text; the last chunk has ``result`` set (and maybe empty text).

    With n choices, ``index`` says whose text it is; the last chunk's ``result`` is choice 0's and
    ``results`` holds each choice's, by index (for one choice it is empty: ``choices`` covers both)."""

    text: str
    result: Result | None = None
    index: int = 0
    results: list[Result] = field(default_factory=list)
    stats: dict[str, float | int | None] = field(default_factory=dict)
    tool_calls: list[ToolCall] = field(default_factory=list)  # calls completed in this chunk

    @property
    def choices(self) -> list[Result]:
        """Every choice's result (the last chunk), else []."""
        return self.results or ([self.result] if self.result is not None else [])


@dataclass
class RunContext:
    """What the pipeline needs to know beyond the prompt, for diagnosis."""

    family: str
    variant_problem: str | None = None  # set when the variant does not fit the mode
    # Special tokens whose text must never reach the output (Vocab.protected_ids). Not every
    # USER_DEFINED token: Gemma types its newline and whitespace-run tokens that way.
    protected_ids: frozenset[int] = frozenset()


def sampler_config(params: SamplingParams, profile_seed: int | None) -> SamplerConfig:
    return SamplerConfig(
        temperature=params.temperature,
        top_k=params.top_k,
        top_p=params.top_p,
        min_p=params.min_p,
        repeat_penalty=params.repeat_penalty,
        repeat_last_n=params.repeat_last_n,
        seed=params.seed if params.seed is not None else profile_seed,
    )


def run(
    engine: Engine,
    prompt: Prompt,
    sampling: SamplingParams,
    guards: GuardSettings,
    ctx: RunContext,
    *,
    profile_seed: int | None = None,
    cancel: threading.Event | None = None,
    priority: Priority | None = None,
) -> Iterator[Chunk]:
    """The chunks of one generation (see the module docstring). ``priority`` is the engine's
    scheduling class; None: EDITOR for a FIM prompt, NORMAL otherwise."""
    t_start = time.perf_counter()
    max_tokens = min(sampling.max_tokens, prompt.max_tokens or sampling.max_tokens)
    n = min(sampling.n, engine.max_choices)
    if priority is None:  # a FIM keystroke is served before chat at every decode step
        priority = Priority.EDITOR if prompt.mode == "fim" else Priority.NORMAL
    request = DecodeRequest(
        tokens=prompt.tokens,
        max_tokens=max_tokens,
        sampler=sampler_config(sampling, profile_seed),
        stop_ids=prompt.stop_ids,
        cancel=cancel,
        # Shifting a cached chunk is an approximation; FIM keystrokes are where it pays off.
        reuse_min=None if prompt.mode == "fim" else 0,
        speculative=sampling.speculative,
        cache=sampling.cache_prompt,
        grammar=prompt.grammar,
        starts_with=prompt.heal,
        n=n,
        priority=priority,
        max_prompt_s=sampling.t_max_prompt_ms / 1000 if sampling.t_max_prompt_ms else None,
    )
    # The request's stop strings are checked before any decoding (the server checks them at parse).
    stop_strings = [*prompt.stop_strings, *check_stop_strings(sampling.stop)]
    if n == 1 and sampling.n == 1:
        yield from _choice(
            engine, prompt, engine.stream(request), StopMatcher(stop_strings), guards, ctx, t_start
        )
        return
    streams = engine.stream_choices(request)
    runs = [_choice(engine, prompt, s, StopMatcher(stop_strings), guards, ctx, t_start) for s in streams]
    results: list[Result | None] = [None] * n
    try:
        while live := [i for i in range(n) if results[i] is None]:
            for i in live:  # round robin: every choice decodes at once, so none waits long
                chunk = next(runs[i])
                if chunk.text:
                    yield Chunk(chunk.text, index=i, tool_calls=chunk.tool_calls)
                results[i] = chunk.result
    finally:
        for stream in streams:
            stream.close()
    done = [r for r in results if r is not None]
    if n < sampling.n:
        done[0].warnings.append(
            GuardWarning(
                "n_reduced",
                f"asked for {sampling.n} choices; this model decodes {n} sequence(s) at once, so {n} "
                f"came back. Start the server with --parallel {sampling.n} for {sampling.n}.",
            )
        )
    yield Chunk("", result=done[0], results=done)


def _choice(
    engine: Engine,
    prompt: Prompt,
    stream: TokenStream,
    stops: StopMatcher,
    guards: GuardSettings,
    ctx: RunContext,
    t_start: float,
) -> Iterator[Chunk]:
    """One choice's chunks from its token stream; the last one has its ``Result``."""
    protected = ctx.protected_ids
    markup = prompt.tools.markup_ids if prompt.tools is not None else frozenset()  # for the tool-call parser
    utf8 = Utf8Stream()
    fim = fim_rules(prompt, guards) if prompt.mode == "fim" else None
    heal = prompt.heal  # still to drop from the front of the output
    rep = RepetitionGuard(
        RepetitionConfig(
            enabled=guards.repetition,
            min_lines=guards.repetition_min_lines,
            block_repeats=guards.repetition_block_repeats,
            shape_run_lines=guards.repetition_shape_lines,
        )
    )
    warnings = list(prompt.warnings)
    out: list[str] = []
    emitted = 0  # characters of output so far
    sent = 0  # characters streamed so far: never more than the rules have settled
    unsent = ""  # out's text after ``sent``
    finish: str | None = None
    keep: int | None = None
    first_at = last_at = None
    try:
        for tok in stream:
            now = time.perf_counter()
            first_at = first_at or now
            last_at = now
            if isinstance(tok, bytes):
                data = tok  # a remote engine's text
            elif tok in markup:
                data = engine.piece(tok, special=True)
            elif tok in protected:
                continue  # control tokens never reach the text
            else:
                data = engine.piece(tok)
            text = utf8.feed(data)
            if heal and text:
                text, heal = _healed(text, heal)
            text, stopped = stops.feed(text)
            if stopped:
                finish = "stop"
            if text:
                out.append(text)
                emitted += len(text)
                if fim is not None and (cut := fim.feed(text)) is not None:
                    keep, finish = cut, "stop"
                verdict = rep.feed(text)
                if verdict is not None and finish is None:
                    keep, finish = verdict.keep_chars, "repetition"
                    warnings.append(
                        GuardWarning(
                            "repetition",
                            f"stopped a loop: {verdict.detail}. "
                            "Use an instruction-tuned model for instructions, "
                            "lower max_tokens, or raise the temperature slightly.",
                        )
                    )
                unsent += text
                settled = keep if keep is not None else fim.settled() if fim is not None else emitted
                if settled > sent:
                    yield Chunk(unsent[: settled - sent])
                    unsent, sent = unsent[settled - sent :], settled
            if finish is not None:
                break
    finally:
        stream.close()
    if finish is None:
        tail = stops.flush() + utf8.flush()
        if tail:
            out.append(tail)
        finish = ENGINE_FINISH.get(stream.stats.finish or "", "length")
        if fim is not None:
            # The tail may complete a cut; else the FIM rules get their end-of-output say.
            cut = fim.feed(tail) if tail else None
            if cut is None:
                cut = fim.finish()
            if cut is not None:
                keep = cut
    full = "".join(out)
    if keep is not None:
        full = full[:keep]
    if len(full) > sent:
        yield Chunk(full[sent:])  # what was held back and kept: the chunks add up to the text
    stats = stream.stats
    if stats.finish == "time_limit":
        warnings.append(
            GuardWarning(
                "prompt_time_limit",
                f"the prompt took longer than t_max_prompt_ms, after {stats.n_prompt_evaluated} of "
                f"{stats.n_prompt} tokens; nothing was generated. The evaluated part stays cached, so "
                "the next request continues from it; raise t_max_prompt_ms (0 = no limit) to wait longer.",
            )
        )
    elif not full.strip():  # (after a prompt_time_limit stop the empty text is explained already)
        warnings.append(
            empty_output_warning(
                prompt=prompt,
                prompt_text=engine.detokenize(prompt.tokens, special=True),
                info=engine.info,
                family=ctx.family,
                stats=stats,
                finish_reason=finish,
                stop_at_start=stops.matched if stops.matched_at_start else None,
                variant_problem=ctx.variant_problem,
            )
        )
    total = time.perf_counter() - t_start
    timings = Timings(
        time_to_first_token_s=(first_at - t_start) if first_at is not None else None,
        prompt_tokens_per_s=prompt_rate(stats.n_prompt_evaluated, stats.prompt_eval_s),
        generation_tokens_per_s=generation_rate(stats.n_generated, first_at, last_at),
        total_s=total,
        prompt_eval_s=stats.prompt_eval_s,
        prompt_tokens_evaluated=stats.n_prompt_evaluated,
        prompt_tokens_reused=stats.n_reused,
        queued_s=stats.queued_s,
        draft_tokens=stats.n_drafted,
        draft_tokens_accepted=stats.n_accepted,
        context_tokens=prompt.context_span[1] - prompt.context_span[0],
        context_tokens_reused=prompt.context_reused(stats.n_reused),
    )
    result = Result(
        text=full,
        finish_reason=finish,
        warnings=warnings,
        usage=Usage(prompt_tokens=len(prompt.tokens), completion_tokens=stats.n_generated),
        timings=timings,
        mode=prompt.mode,
        stop_rule=fim.rule if fim is not None and keep is not None else None,
    )
    yield Chunk("", result=result)


def fim_rules(prompt: Prompt, guards: GuardSettings) -> FimRules:
    """The FIM rules for a prompt: the suffix rule and single line wherever FIM runs; the editor
    endings (block end, line end, bracket overlap) on editor paths only (``Prompt.editor``)."""
    editor = prompt.editor
    style = block_style(prompt.path, prompt.prefix_tail)
    return FimRules(
        prompt.suffix,
        prompt.prefix_tail,
        guards.fim_stop_at_suffix,
        guards.fim_single_line,
        block_end=guards.fim_block_end and editor,
        line_end=guards.fim_line_end and editor,
        closers=guards.fim_bracket_overlap and editor,
        style=style,
        comment=comment_start(prompt.path, style),
    )


def _healed(text: str, heal: str) -> tuple[str, str]:
    """Drop the healed text from the output's front: (text left, healed text still to come).

    The engine made the first token start with it; output that does not (an engine that ignored
    the constraint) is kept whole."""
    n = min(len(text), len(heal))
    if text[:n] != heal[:n]:
        return text, ""
    return text[n:], heal[n:]


def distinct(results: list[Result]) -> list[Result]:
    """The choices whose text no earlier choice has: identical suggestions are shown once.

    When some are dropped, the first kept result gets a ``duplicates_dropped`` warning. At
    temperature 0 every choice decodes the same tokens, so n choices come back as one."""
    kept: list[Result] = []
    for r in results:
        if all(r.text != k.text for k in kept):
            kept.append(r)
    if len(kept) < len(results):
        kept[0].warnings.append(
            GuardWarning(
                "duplicates_dropped",
                f"{len(results) - len(kept)} of {len(results)} choices repeated an earlier one's text and "
                "were dropped; raise the temperature for more varied choices.",
            )
        )
    return kept


def cancelled_run(mode: str) -> Iterator[Chunk]:
    """The stream of a run cancelled before decoding (while its prompt was being built)."""
    result = Result(
        text="",
        finish_reason="cancelled",
        warnings=[],
        usage=Usage(prompt_tokens=0, completion_tokens=0),
        timings=Timings(None, None, None, 0.0),
        mode=mode,
    )
    return iter([Chunk("", result=result)])
