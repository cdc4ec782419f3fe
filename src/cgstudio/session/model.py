"""The Python API: ``cgstudio.load(model, **profile)`` returns a ``CodeModel``.

m = cgstudio.load("codegemma-2b-Q4_K_M.gguf", n_ctx=4096)
r = m.complete("def add(a, b):\\n    ", suffix="\\n\\nprint(add(1, 2))\\n")
print(r.text, r.timings.time_to_first_token_s)
for chunk in m.stream(GenerationRequest("chat", messages=[{"role": "user", "content": "Reverse a list"}])):
    print(chunk.text, end="")

Every face builds one ``GenerationRequest`` (cgstudio.generation.request) and calls ``prompt(req)``
for the exact prompt or ``stream(req)`` to generate; ``complete``/``chat``/``generate`` are
one-call conveniences over ``stream``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cgstudio.core.engine import Engine, Priority
from cgstudio.core.errors import (
    ContextOverflowError,
    InvalidInputError,
    UnsupportedModeError,
    VariantMismatchError,
)
from cgstudio.core.prompt import ChatMessage, ContextFile, GuardWarning, Prompt
from cgstudio.core.settings import GuardSettings, LoadProfile, SamplingParams, Settings, load_settings
from cgstudio.core.tools import AUTO, ToolChoice, ToolSpec
from cgstudio.families import ForeignFim, ModelProfile, VariantGuess, profile
from cgstudio.generation.codeblocks import extract_code
from cgstudio.generation.pipeline import Chunk, Result, RunContext, cancelled_run, run
from cgstudio.generation.request import GenerationRequest, MessageLike
from cgstudio.generation.toolcalls import with_tool_calls
from cgstudio.prompts.chat import ChatBuildCancelled, build_chat
from cgstudio.prompts.fim import build_fim, stop_ids
from cgstudio.prompts.generate import completion_request_text
from cgstudio.prompts.registry import FamilyFormat, get_format
from cgstudio.prompts.tools import plan_tools
from cgstudio.prompts.vocab import Vocab
from cgstudio.repo import RepoContext
from cgstudio.session.anchors import Anchors
from cgstudio.session.editor import editor_prompt, healed, mark_editor
from cgstudio.session.inputs import check_text, to_message  # check_text: also by the faces
from cgstudio.session.window import PrefixWindows

ESTIMATE_WARNING = GuardWarning(
    "token_estimate",
    "no tokenizer for this model: token counts (context budget, truncation, usage) are estimates; "
    "pass --tokenizer PATH.gguf (the model's GGUF) for exact counts",
)


class CodeModel:
    """A loaded model with its prompt format, guards and settings."""

    def __init__(
        self, engine: Engine, settings: Settings, alias: str = "", repo: RepoContext | None = None
    ) -> None:
        self.engine = engine
        self.repo = repo  # --workspace: repository context for FIM requests inside a workspace
        self.settings = settings
        self.alias = alias or Path(engine.info.path).stem
        self.vocab = Vocab(engine)
        self.profile: ModelProfile = profile(engine.info, settings.guards.variant)
        self.family = self.profile.family.name
        self.format: FamilyFormat = get_format(self.profile.family, self.vocab)
        self.variant: VariantGuess = self.profile.variant
        self.anchors = Anchors()  # where editor prompts split the text before the cursor
        self.windows = PrefixWindows()  # where editor prompts' prefix starts

    @property
    def fim_capable(self) -> bool:
        return self.format.fim is not None

    # -- prompt building (also what --dry-run shows) -----------------------------------------
    def sampling(self, overrides: Mapping[str, Any] | None) -> SamplingParams:
        """The profile's sampling with a request's overrides; None means "not given", and a
        negative ``max_tokens`` (llama.cpp's n_predict -1, Ollama's -1/-2) as much as fits."""
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        if given.get("max_tokens") is not None and given["max_tokens"] < 0:
            given["max_tokens"] = max(1, self.engine.n_ctx // 2)
        if not given:
            return self.settings.sampling
        return load_settings({"sampling": {**self.settings.sampling.model_dump(), **given}}).sampling

    def guards(self, overrides: Mapping[str, Any] | None) -> GuardSettings:
        if not overrides:
            return self.settings.guards
        return GuardSettings.model_validate({**self.settings.guards.model_dump(), **overrides})

    def _fim_prompt(
        self,
        prefix: str,
        suffix: str = "",
        files: Iterable[ContextFile] = (),
        *,
        path: str | None = None,
        max_tokens: int | None = None,
        suffix_tokens: int = 0,
    ) -> tuple[Prompt, str | None]:
        check_text("prefix", prefix)
        check_text("suffix", suffix)
        files = tuple(files)
        for f in files:
            check_text(f"context file {f.path}", f.text)
        max_tokens = max_tokens or self.settings.sampling.max_tokens
        fim = self.format.fim
        if fim is None:
            if suffix:
                raise UnsupportedModeError(
                    f"{self.alias} ({self.family}) has no FIM tokens, so it cannot fill in the middle; "
                    "use codegemma-2b or codegemma-7b, or drop the suffix for a plain continuation"
                )
            return self._mark(self._plain_prompt(prefix, max_tokens)), None
        if not prefix and not suffix and not files:
            raise InvalidInputError("prefix and suffix are both empty: give the code around the cursor")
        problem = None
        hints = self.profile.family.variants
        if self.variant.variant == "instruction-tuned" and hints.instruct_not_for_fim:
            problem = f"{self.alias} is instruction-tuned; FIM works best on {hints.fim_models}"
        prompt = build_fim(
            self.vocab,
            fim,
            prefix,
            suffix,
            path=path,
            files=files,
            n_ctx=self.engine.n_ctx,
            max_tokens=max_tokens,
            prefix_share=self.settings.guards.fim_prefix_share,
            context_budget=self.settings.guards.context_tokens,
            suffix_tokens=suffix_tokens,
        )
        return self._mark(prompt), problem

    def _mark(self, prompt: Prompt) -> Prompt:
        """Add the ``token_estimate`` warning when the engine only estimates token counts."""
        if not self.engine.exact_token_counts and all(w.code != "token_estimate" for w in prompt.warnings):
            prompt.warnings.append(ESTIMATE_WARNING)
        return prompt

    def _plain_prompt(self, text: str, max_tokens: int) -> Prompt:
        if not text:
            raise InvalidInputError("the prompt is empty: give some code to continue")
        info = self.engine.info
        head = [info.bos_id] if info.add_bos and info.bos_id is not None else []
        ids = self.vocab.plain(text)
        reserve = min(max_tokens, max(self.engine.n_ctx // 2, 1))
        warnings: list[GuardWarning] = []
        room = self.engine.n_ctx - reserve - len(head)
        if len(ids) > room:
            warnings.append(
                GuardWarning(
                    "prompt_truncated",
                    f"dropped the first {len(ids) - room} of {len(ids)} prompt tokens to fit the "
                    f"{self.engine.n_ctx}-token context; raise --ctx-size to keep them",
                )
            )
            ids = ids[len(ids) - room :]
        fim_stops = self.format.fim.stop_texts if self.format.fim else ()
        return Prompt(
            tokens=head + ids,
            mode="completion",
            stop_ids=stop_ids(self.vocab, fim_stops),
            warnings=warnings,
            max_tokens=reserve,
        )

    def _chat_prompt(
        self,
        messages: Sequence[MessageLike],
        max_tokens: int | None = None,
        *,
        cancel: threading.Event | None = None,
        tools: tuple[ToolSpec, ...] = (),
        choice: ToolChoice = AUTO,
    ) -> tuple[Prompt, str | None]:
        """The chat prompt (with tools: ``prompts.tools``); trimming stops once ``cancel`` is set."""
        msgs = [m if isinstance(m, ChatMessage) else to_message(m) for m in messages]
        for m in msgs:
            check_text(f"{m.role} message", m.content)
        plan = plan_tools(self.vocab, self.profile, self.format.chat, msgs, tools, choice, model=self.alias)
        prompt = build_chat(
            self.vocab,
            plan.renderer if plan else self.format.chat,
            msgs,
            stop_ids=stop_ids(self.vocab, self.format.chat_stops),
            n_ctx=self.engine.n_ctx,
            max_tokens=max_tokens or self.settings.sampling.max_tokens,
            cancel=cancel,
        )
        if plan is not None:
            prompt.tools, prompt.grammar = plan.reply, plan.grammar
        problem = None
        if self.variant.variant == "pretrained":
            problem = (
                f"{self.alias} is a pretrained completion model ({self.variant.reason}); "
                f"for chat use {self.profile.suggested_variant_name('chat')}"
            )
        return self._mark(prompt), problem

    def _raw_prompt(self, text: str) -> Prompt:
        """A client-rendered prompt: special-token text becomes the special token (raw mode)."""
        check_text("prompt", text)
        if not text:
            raise InvalidInputError("the prompt is empty")
        info = self.engine.info
        ids = self.vocab.raw(text)
        if info.add_bos and info.bos_id is not None and (not ids or ids[0] != info.bos_id):
            ids = [info.bos_id, *ids]
        if len(ids) + 1 > self.engine.n_ctx:
            raise ContextOverflowError(len(ids), self.engine.n_ctx, "the raw prompt is too long")
        fim_stops = self.format.fim.stop_texts if self.format.fim else self.format.chat_stops
        return self._mark(
            Prompt(
                tokens=ids,
                mode="completion",
                stop_ids=stop_ids(self.vocab, fim_stops),
                max_tokens=self.engine.n_ctx - len(ids),
            )
        )

    def _generate_prompt(
        self,
        request: str,
        language: str,
        explain: bool,
        max_tokens: int | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> tuple[Prompt, str | None]:
        check_text("request", request)
        if not request.strip():
            raise InvalidInputError("the request is empty: say what code you want")
        if self.variant.variant == "instruction-tuned":
            instruction = (
                f"Write {language} code for this request. Answer with working code in one fenced code block"
                + ("; then explain it briefly." if explain else ", with no advice or alternatives.")
                + f"\n\nRequest: {request}"
            )
            prompt, problem = self._chat_prompt([ChatMessage("user", instruction)], max_tokens, cancel=cancel)
            prompt.mode = "generate"
            return prompt, problem
        text, path = completion_request_text(request, language)
        if self.format.fim is not None:
            prompt = build_fim(
                self.vocab,
                self.format.fim,
                text,
                "",
                path=path,
                n_ctx=self.engine.n_ctx,
                max_tokens=max_tokens or self.settings.sampling.max_tokens,
            )
        else:
            prompt = self._plain_prompt(text, max_tokens or self.settings.sampling.max_tokens)
        prompt.mode = "generate"
        return self._mark(prompt), None

    def _translated_prompt(self, req: GenerationRequest, template: ForeignFim) -> tuple[Prompt, str | None]:
        """A raw or plain prompt that holds a client-rendered FIM template: the FIM request it
        states (``GenerationRequest.as_fim``) in this model's own format, token for token what
        the same prefix and suffix sent as fields give, with a ``fim_template_translated`` warning."""
        check_text("prompt", req.prompt)
        prompt, problem = self.prompt(req.as_fim(template))
        source = template.template + ("" if template.order == "PSM" else f" {template.order}")
        prompt.warnings.insert(
            0,
            GuardWarning(
                "fim_template_translated",
                f"the prompt holds a client-rendered {source} FIM template; its prefix, suffix and "
                f"file headers were rendered in {self.family}'s own FIM format ({template.template} → "
                f"{self.family}). To skip this step, send the code before the cursor as the prompt "
                "and the code after it as the suffix.",
            ),
        )
        return prompt, problem

    # -- the one entry: a GenerationRequest -------------------------------------------------
    def prompt(
        self, req: GenerationRequest, *, cancel: threading.Event | None = None
    ) -> tuple[Prompt, str | None]:
        """The exact prompt (token ids) ``req`` produces, and the variant problem if any.

        This is what ``--dry-run`` and ``/v1/prompt`` show and what ``stream`` runs. Trimming a
        long chat stops (ChatBuildCancelled) once ``cancel`` is set."""
        max_tokens = self.sampling(req.sampling).max_tokens
        if self.format.fim is not None and (template := req.fim_template) is not None:
            return self._translated_prompt(req, template)
        if req.mode == "raw":
            return self._raw_prompt(req.prompt), None
        if req.mode == "chat":
            return self._chat_prompt(
                req.messages or [], max_tokens, cancel=cancel, tools=req.tools, choice=req.tool_choice
            )
        if req.mode == "generate":
            return self._generate_prompt(req.prompt, req.language, req.explain, max_tokens, cancel=cancel)
        notes: list[GuardWarning] = []
        if self.repo is not None and self.format.fim is not None:  # fim, plain and infill only
            req, notes = self.repo.extend(req, self.engine.n_ctx)
        guards = self.guards(req.guards)
        heal_on = self.fim_capable and guards.fim_token_healing and self.engine.forces_start
        # The editor layout needs healing: text after the middle token must end on a token boundary.
        anchors = self.anchors if heal_on and guards.fim_cursor_line_in_middle else None
        in_middle = (
            anchors is not None
            and req.mode in ("fim", "infill")
            and anchors.spans_lines(req.prompt, req.suffix)
        )
        req, heal = healed(req, self.vocab, heal_on, in_middle=in_middle)
        build, n_ctx = self._fim_prompt, self.engine.n_ctx
        prompt, problem = editor_prompt(
            build, self.vocab, n_ctx, req, max_tokens, guards, anchors, heal, self.windows
        )
        prompt.warnings.extend(notes)
        mark_editor(prompt, req, heal)  # editor paths: endings and token healing (session/editor.py)
        return prompt, problem

    def stream(
        self,
        req: GenerationRequest,
        *,
        cancel: threading.Event | None = None,
        on_prompt: Callable[[Prompt], None] | None = None,
    ) -> Iterator[Chunk]:
        """Generate for ``req``: its prompt, then the one run path (``run_prompt``).

        Input errors are raised here, before the first chunk; a chat whose trimming is cancelled
        yields one ``cancelled`` result. ``on_prompt`` sees the built prompt before its evaluation
        starts (progress displays: "evaluating prompt (N tokens)")."""
        try:
            prompt, problem = self.prompt(req, cancel=cancel)
        except ChatBuildCancelled:
            return cancelled_run(req.mode)
        if on_prompt is not None:
            on_prompt(prompt)
        return self.run_prompt(
            prompt, problem, sampling=req.sampling, guards=req.guards, cancel=cancel, priority=req.priority
        )

    def run_prompt(
        self,
        prompt: Prompt,
        problem: str | None = None,
        *,
        sampling: Mapping[str, Any] | None = None,
        guards: Mapping[str, Any] | None = None,
        cancel: threading.Event | None = None,
        priority: Priority | None = None,
    ) -> Iterator[Chunk]:
        """Generate from a built prompt: the one run path (``stream``, and benches that time a
        prebuilt prompt).

        ``problem`` is a variant mismatch (an error under strict guards, else a warning). The
        protected special-token ids always travel with the run, so markup never leaks as text.
        """
        g = self.guards(guards)
        if problem:
            if g.strict:
                raise VariantMismatchError(problem)
            prompt.warnings.insert(0, GuardWarning("variant_mismatch", problem))
        chunks = run(
            self.engine,
            prompt,
            self.sampling(sampling),
            g,
            RunContext(self.family, problem, self.vocab.protected_ids),
            profile_seed=self.settings.load.seed,
            cancel=cancel,
            priority=priority,
        )
        yield from with_tool_calls(chunks, prompt.tools) if prompt.tools is not None else chunks

    # -- Python conveniences: one request each, the final result -----------------------------
    def complete(
        self,
        prefix: str,
        suffix: str = "",
        files: Iterable[ContextFile] = (),
        *,
        path: str | None = None,
        sampling: Mapping[str, Any] | None = None,
        guards: Mapping[str, Any] | None = None,
    ) -> Result:
        req = GenerationRequest("fim", prefix, suffix, files=tuple(files), path=path)
        return self._final(req, sampling, guards)

    def chat(
        self,
        messages: Sequence[MessageLike],
        *,
        sampling: Mapping[str, Any] | None = None,
        guards: Mapping[str, Any] | None = None,
    ) -> Result:
        return self._final(GenerationRequest("chat", messages=messages), sampling, guards)

    def generate(
        self,
        request: str,
        language: str = "python",
        *,
        explain: bool = False,
        sampling: Mapping[str, Any] | None = None,
        guards: Mapping[str, Any] | None = None,
    ) -> Result:
        req = GenerationRequest("generate", request, language=language, explain=explain)
        result = self._final(req, sampling, guards)
        if self.variant.variant == "instruction-tuned" and not explain:
            result.text = extract_code(result.text)
        return result

    def _final(
        self, req: GenerationRequest, sampling: Mapping[str, Any] | None, guards: Mapping[str, Any] | None
    ) -> Result:
        req.sampling, req.guards = dict(sampling or {}), dict(guards or {})
        result = None
        for chunk in self.stream(req):
            result = chunk.result or result
        assert result is not None
        return result

    def close(self) -> None:
        self.engine.close()


def load(model: str | Path | None = None, **profile: Any) -> CodeModel:
    """Load a model. ``profile`` takes LoadProfile fields (n_ctx, n_gpu_layers, n_threads, ...)."""
    # Imported here: it loads llama_cpp, which importing this module must not (start-up time).
    from cgstudio.engine.llamacpp import LlamaCppEngine
    from cgstudio.store.resolve import resolve

    settings = load_settings({"load": profile})
    resolved = resolve(str(model) if model else None, configured=settings.model)
    engine = LlamaCppEngine(resolved.path, settings.load)
    return CodeModel(engine, settings, resolved.alias)


__all__ = ["CodeModel", "LoadProfile", "load"]
