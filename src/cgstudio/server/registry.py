"""Served models: metadata at startup, weights on first use, unload after keep_alive, routing.

Routing when a request names no model (or ``default``):
    fim         a model with FIM tokens, pretrained first (then unknown, then instruction-tuned)
    chat        an instruction-tuned model
    completion  the default model (the first --model)
Nothing fits -> the default model answers; CodeModel adds the variant_mismatch warning.
Among equals, a model already in memory wins, then the --model order.

A name that no served model has follows the dialect's convention (``UnknownName``, ``resolve``):
    refuse  404 (Ollama: its clients pull on a 404; cgstudio's own routes)
    fit     route by capability when a served model fits the request, with a
            ``model_substituted`` warning; else 404 (OpenAI: minuet sends "PLACEHOLDER")
    any     route by capability as for ``default``, with the warning (llama.cpp: llama-server
            ignores the name)
``--strict-model-names`` makes every unknown name a 404.

Concurrency: ``in_use``/``available`` change on the event loop thread only; loading and closing
run in worker threads under the entry's lock. A model is closed only while ``in_use == 0``, so no
generation ever runs on a freed llama.cpp context. So ``keep_alive: 0`` on a model in use (an
Ollama unload request during another request's stream) unloads it when its running work ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from cgstudio.core.engine import Engine, ModelInfo
from cgstudio.core.errors import ModelNotFoundError, OverloadedError, SettingsError
from cgstudio.core.prompt import GuardWarning
from cgstudio.core.settings import LoadProfile, Settings, format_validation_error
from cgstudio.families import profile
from cgstudio.generation.request import Capability
from cgstudio.repo import RepoContext
from cgstudio.server.config import ModelSpec, ServerSettings
from cgstudio.server.prometheus import Metrics
from cgstudio.session import remote
from cgstudio.session.model import CodeModel
from cgstudio.store.demo import demo_for

log = logging.getLogger("cgstudio.server")

Loader = Callable[[Path, Settings], Engine]
Inspector = Callable[[Path], ModelInfo]
KEEP_DEFAULT: Any = object()  # "use the server's keep_alive" (a request may say None = forever)
RELOAD_WAIT_S = 300.0
UnknownName = Literal["refuse", "fit", "any"]  # what an unknown model name does (module docstring)


def _llama_loader(path: Path, settings: Settings) -> Engine:
    # Imported here: it loads llama_cpp, which importing this module must not (start-up time).
    from cgstudio.engine.llamacpp import LlamaCppEngine

    return LlamaCppEngine(path, settings.load)


def _llama_inspector(path: Path) -> ModelInfo:
    # Imported here: it loads llama_cpp, which importing this module must not (start-up time).
    from cgstudio.engine.llamacpp import inspect_model

    return inspect_model(path)


@dataclass(frozen=True)
class ModelMeta:
    """What routing and the listing endpoints need, read from the GGUF without its weights."""

    family: str
    variant: str
    variant_reason: str
    fim: bool
    architecture: str
    size_bytes: int
    n_params: int
    quantization: str
    n_ctx_train: int
    chat_template: str | None
    modified: float
    size_label: str = ""  # the GGUF's general.size_label ("0.5B"), as its makers name the size
    demo: bool = False  # one of cgstudio's demo models, not CodeGemma

    @classmethod
    def from_info(cls, info: ModelInfo, settings: Settings, path: Path) -> ModelMeta:
        prof = profile(info, settings.guards.variant)
        family, variant = prof.family.name, prof.variant
        try:
            modified = path.stat().st_mtime
        except OSError:
            modified = 0.0
        return cls(
            family=family,
            variant=variant.variant,
            variant_reason=variant.reason,
            fim=prof.fim,
            architecture=info.architecture,
            size_bytes=info.size_bytes,
            n_params=info.n_params,
            quantization=info.quantization,
            n_ctx_train=info.n_ctx_train,
            chat_template=info.chat_template,
            modified=modified,
            size_label=str(info.metadata.get("general.size_label") or ""),
            demo=demo_for(path) is not None,
        )


class ModelEntry:
    """One served model. ``model`` is None until first use and after an unload."""

    def __init__(
        self,
        spec: ModelSpec,
        settings: Settings,
        order: int,
        loader: Loader,
        inspector: Inspector,
        repo: RepoContext | None = None,
    ) -> None:
        self.alias = spec.alias
        self.repo = repo
        self.path = spec.path
        self.notice = spec.notice
        self.settings = settings
        self.order = order
        self.model: CodeModel | None = None
        self.in_use = 0
        self.available = asyncio.Event()
        self.available.set()
        self.unload_when_idle = False  # keep_alive 0 arrived while in use: unload at the next release
        self.expires_at: float | None = None  # monotonic; None while in use or kept forever
        self.expires_wall: float | None = None
        self.loaded_at: float | None = None
        self._loader = loader
        self._inspector = inspector
        self._lock = threading.Lock()
        self._meta: ModelMeta | None = None

    @property
    def meta(self) -> ModelMeta:
        if self._meta is None:
            with self._lock:
                if self._meta is None:
                    info = self.model.engine.info if self.model else self._inspector(self.path)
                    self._meta = ModelMeta.from_info(info, self.settings, self.path)
        return self._meta

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def ensure_loaded(self) -> tuple[CodeModel, float]:
        """Load on first use (worker thread). Returns the model and the seconds spent loading."""
        with self._lock:
            if self.model is not None:
                return self.model, 0.0
            t0 = time.perf_counter()
            engine = self._loader(self.path, self.settings)
            try:
                model = CodeModel(engine, self.settings, self.alias, self.repo)
            except BaseException:
                engine.close()
                raise
            self.model = model
            self._meta = None  # read again from the loaded engine (a remote one may know more now)
            self.loaded_at = time.time()
            return model, time.perf_counter() - t0

    def detach(self) -> CodeModel | None:
        with self._lock:
            model, self.model = self.model, None
            self.expires_at = self.expires_wall = self.loaded_at = None
            return model


class Registry:
    def __init__(
        self,
        config: ServerSettings,
        metrics: Metrics,
        *,
        loader: Loader | None = None,
        inspector: Inspector | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.keep_alive_s = config.keep_alive_s
        if config.upstream is not None:  # --backend openai: an OpenAI-compatible server generates
            loader = loader or remote.remote_loader(config.upstream)
            inspector = inspector or remote.remote_inspector(config.upstream)
        # One repository context for every model: the index and the clients' recent edits are shared.
        self.repo = RepoContext(config.workspaces) if config.workspaces else None
        self.entries: dict[str, ModelEntry] = {
            spec.alias: ModelEntry(
                spec, config.settings, i, loader or _llama_loader, inspector or _llama_inspector, self.repo
            )
            for i, spec in enumerate(config.models)
        }

    # -- lookup and routing ------------------------------------------------------------------
    @property
    def default(self) -> ModelEntry:
        if not self.entries:
            raise ModelNotFoundError("no models are served; restart with --model PATH.gguf")
        return next(iter(self.entries.values()))

    def inspect_all(self) -> None:
        """Read every model's metadata now (blocking), so a bad file fails at startup."""
        for entry in self.entries.values():
            _ = entry.meta

    def find(self, name: str) -> ModelEntry | None:
        """The entry ``name`` means (alias, file name or stem, path; ``:latest`` ignored), if any."""
        if name in self.entries:
            return self.entries[name]
        base = name.removesuffix(":latest")
        for entry in self.entries.values():
            if base in (entry.alias, entry.path.name, entry.path.stem, str(entry.path)):
                return entry
        return None

    def get(self, name: str) -> ModelEntry:
        entry = self.find(name)
        if entry is None:
            raise ModelNotFoundError(self._unknown_message(name))
        return entry

    def _unknown_message(self, name: str) -> str:
        return (
            f"unknown model {name!r}; served: {', '.join(self.entries) or 'none'} "
            "(or 'default' to route by capability)"
        )

    def route(self, name: str | None, task: Capability) -> ModelEntry:
        if name and name != "default":
            return self.get(name)
        default = self.default
        if task == "completion":
            return default

        def rank(e: ModelEntry) -> tuple[int, int, int]:
            pref = {"pretrained": 0, "unknown": 1}.get(e.meta.variant, 2) if task == "fim" else 0
            return pref, 0 if e.loaded else 1, e.order

        fitting = [e for e in self.entries.values() if self.fits(e, task)]
        return min(fitting, key=rank) if fitting else default

    @staticmethod
    def fits(entry: ModelEntry, task: Capability) -> bool:
        """Whether ``entry`` is made for ``task`` (every model continues text)."""
        if task == "completion":
            return True
        return entry.meta.fim if task == "fim" else entry.meta.variant == "instruction-tuned"

    def resolve(
        self, name: str | None, task: Capability, unknown: UnknownName = "refuse"
    ) -> tuple[ModelEntry, GuardWarning | None]:
        """``route``, where a name no served model has follows ``unknown`` (module docstring).

        Returns the entry and the ``model_substituted`` warning when another model answers.
        """
        if not name or name == "default" or self.find(name) is not None:
            return self.route(name, task), None
        if unknown == "refuse" or self.config.strict_model_names:
            raise ModelNotFoundError(self._unknown_message(name))
        entry = self.route(None, task)
        if unknown == "fit" and not self.fits(entry, task):
            raise ModelNotFoundError(
                f"{self._unknown_message(name)}; no served model fits a {task} request, "
                "so none was substituted"
            )
        return entry, GuardWarning(
            "model_substituted",
            f"no served model is named {name!r}; {entry.alias} answered instead (routed by "
            f"capability for this {task} request). Served: {', '.join(self.entries)}; name one of "
            "them, or start the server with --strict-model-names to get a 404 instead.",
        )

    # -- use, keep_alive, unload -------------------------------------------------------------
    async def acquire(self, entry: ModelEntry) -> None:
        await entry.available.wait()
        entry.in_use += 1
        entry.expires_at = entry.expires_wall = None

    def release(self, entry: ModelEntry, keep_alive_s: Any = KEEP_DEFAULT) -> None:
        entry.in_use -= 1
        if entry.in_use > 0 or not entry.loaded:
            return
        keep = self.keep_alive_s if keep_alive_s is KEEP_DEFAULT else keep_alive_s
        if entry.unload_when_idle:
            keep = 0.0
        if keep is None:
            entry.expires_at = entry.expires_wall = None
        else:
            entry.expires_at = time.monotonic() + keep
            entry.expires_wall = time.time() + keep
        self.metrics.loaded.set(sum(e.loaded for e in self.entries.values()))
        if keep is not None and keep <= 0:
            asyncio.get_running_loop().create_task(self.unload_if_idle(entry))

    @contextlib.asynccontextmanager
    async def use(self, entry: ModelEntry, keep_alive_s: Any = KEEP_DEFAULT) -> AsyncIterator[CodeModel]:
        """Hold ``entry`` loaded for a short non-generating job (tokenize, show the prompt)."""
        await self.acquire(entry)
        try:
            model, load_s = await asyncio.to_thread(entry.ensure_loaded)
            self.note_loaded(entry, load_s)
            yield model
        finally:
            self.release(entry, keep_alive_s)

    def note_loaded(self, entry: ModelEntry, load_s: float) -> None:
        if load_s > 0:
            self.metrics.load_seconds.labels(entry.alias).observe(load_s)
            self.metrics.loaded.set(sum(e.loaded for e in self.entries.values()))
            log.info("loaded %s in %.2f s", entry.alias, load_s)

    async def unload_if_idle(self, entry: ModelEntry) -> bool:
        """Unload now if idle (True); a model in use unloads when its running work ends (False).

        So ``keep_alive: 0`` during another request's stream answers "unload" truthfully: the
        model is freed as soon as that stream (and anything else running on it) finishes.
        """
        if entry.in_use:
            entry.unload_when_idle = True
            log.info("%s unloads when its %d running request(s) finish", entry.alias, entry.in_use)
            return False
        entry.unload_when_idle = False
        if not entry.loaded:
            return False
        model = entry.detach()
        self.metrics.loaded.set(sum(e.loaded for e in self.entries.values()))
        if model is not None:
            await asyncio.to_thread(model.close)
            log.info("unloaded %s", entry.alias)
        return True

    async def sweep(self) -> None:
        now = time.monotonic()
        for entry in list(self.entries.values()):
            if (
                entry.loaded
                and entry.in_use == 0
                and entry.expires_at is not None
                and now >= entry.expires_at
            ):
                await self.unload_if_idle(entry)

    async def sweep_forever(self) -> None:
        interval = 15.0 if self.keep_alive_s is None else min(15.0, max(0.25, self.keep_alive_s / 10))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:  # never let the sweeper die: log and go on
                log.exception("keep_alive sweep failed")

    async def close(self) -> None:
        for entry in self.entries.values():
            if entry.in_use:
                continue  # a worker may still be decoding; freeing its context would crash the process
            model = entry.detach()
            if model is not None:
                await asyncio.to_thread(model.close)

    # -- reload --------------------------------------------------------------------------------
    async def reload(self, name: str, load: dict[str, Any]) -> tuple[ModelEntry, float]:
        """Reload ``name`` with load parameters merged over its current ones; waits for running work.

        On failure the old parameters stay (the model reloads with them on next use) and the
        error is raised. Returns the entry and the load time in seconds.
        """
        entry = self.get(name)
        try:
            profile = LoadProfile.model_validate({**entry.settings.load.model_dump(), **load})
        except ValidationError as exc:
            raise SettingsError(format_validation_error(exc)) from exc
        new_settings = entry.settings.model_copy(update={"load": profile})
        if not entry.available.is_set():
            raise OverloadedError(f"{entry.alias} is already reloading; try again shortly")
        entry.available.clear()
        try:
            deadline = time.monotonic() + RELOAD_WAIT_S
            while entry.in_use:
                if time.monotonic() > deadline:
                    raise OverloadedError(f"{entry.alias} stayed busy; reload again when idle", 10)
                await asyncio.sleep(0.02)
            old = entry.detach()
            if old is not None:
                await asyncio.to_thread(old.close)
            entry.unload_when_idle = False  # an explicit reload overrides an earlier keep_alive 0
            old_settings, entry.settings = entry.settings, new_settings
            entry.in_use += 1
            try:
                _, load_s = await asyncio.to_thread(entry.ensure_loaded)
            except BaseException:
                entry.settings = old_settings
                raise
            finally:
                entry.in_use -= 1
            self.note_loaded(entry, load_s)
        finally:
            entry.available.set()
        self.release_idle(entry)
        return entry, load_s

    def release_idle(self, entry: ModelEntry) -> None:
        entry.in_use += 1
        self.release(entry)
