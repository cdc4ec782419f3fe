"""The models an eval runs: the ``Backend`` protocol, ``LocalBackend`` (a ``CodeModel``, local or on a
remote engine) and ``EngineBackend`` (``LocalBackend`` on an OpenAI-compatible upstream). The
server-side backend, ``RemoteBackend``, is in ``remote``; ``open_local_backend`` loads a GGUF."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Protocol

from cgstudio.core.settings import Settings
from cgstudio.evaluation.cache import gguf_fingerprint, remote_fingerprint
from cgstudio.evaluation.protocol import EVAL_GUARDS, GUARD_SETS, Generated, GenRequest
from cgstudio.generation.request import GenerationRequest
from cgstudio.session.model import CodeModel


class Backend(Protocol):
    """A model to evaluate: ``LocalBackend`` (a GGUF) or ``RemoteBackend`` (a server)."""

    name: str
    fingerprint: str  # the cache's model key
    variant: str  # "pretrained", "instruction-tuned" or "unknown"
    fim_capable: bool

    def describe(self) -> dict[str, Any]: ...

    def cache_settings(self) -> dict[str, Any]:
        """Load settings that change outputs (n_ctx, KV cache types), for the cache key."""
        ...

    def generate(self, request: GenRequest) -> Generated: ...

    def close(self) -> None: ...


class LocalBackend:
    """A loaded GGUF (``cgstudio.session.model.CodeModel``), run through the one generation pipeline.

    ``guards``: the paper's protocol (``EVAL_GUARDS``) or another of ``GUARD_SETS``."""

    def __init__(
        self,
        model: CodeModel,
        guards: dict[str, bool | int] | None = None,
        *,
        name: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        """``name`` and ``fingerprint`` default to the model's alias and its GGUF's fingerprint; a
        model on a remote engine passes the served name and ``remote_fingerprint`` instead."""
        self.model = model
        self.name = name or model.alias
        self.fingerprint = fingerprint or gguf_fingerprint(model.engine.info.path)
        self.variant: str = model.variant.variant
        self.fim_capable = model.fim_capable
        self.guards = dict(guards or EVAL_GUARDS)
        self._requests = itertools.count()

    def describe(self) -> dict[str, Any]:
        m, info = self.model, self.model.engine.info
        return {
            "name": self.name,
            "path": info.path,
            "general_name": info.metadata.get("general.name"),
            "family": m.family,
            "variant": self.variant,
            "variant_reason": m.variant.reason,
            "quantization": info.quantization,
            "size_bytes": info.size_bytes,
            "fingerprint": self.fingerprint,
        }

    def cache_settings(self) -> dict[str, Any]:
        load = self.model.settings.load
        return {
            "n_ctx": self.model.engine.n_ctx,
            "cache_type_k": load.cache_type_k,
            "cache_type_v": load.cache_type_v,
            "cache_reuse": load.cache_reuse,
            # Only when not the paper's: caches made before this option keep their keys.
            **({"guards": self.guards} if self.guards != EVAL_GUARDS else {}),
        }

    def generate(self, request: GenRequest) -> Generated:
        result = None
        for chunk in self.model.stream(self.translate(request)):
            result = chunk.result or result
        assert result is not None
        return Generated(
            result.text,
            result.finish_reason,
            result.usage.completion_tokens,
            tuple(f"{w.code}: {w.message}" for w in result.warnings),
        )

    def translate(self, request: GenRequest) -> GenerationRequest:
        """The eval protocol's style as the one request type: ``chat`` sends the prompt as a user
        turn; ``plain`` continues the text as it is (raw mode: a FIM-capable model would otherwise
        get it wrapped in its FIM format); ``fim`` and ``fim-completion`` use the FIM format."""
        common: dict[str, Any] = {
            "sampling": dict(request.sampling),
            "guards": dict(self.guards),
            "client": f"eval:{next(self._requests)}",  # a task of its own: no editor memory from another
        }
        if request.style == "chat":
            return GenerationRequest("chat", messages=[{"role": "user", "content": request.prompt}], **common)
        if request.style == "plain" and self.model.fim_capable:
            return GenerationRequest("raw", request.prompt, **common)
        return GenerationRequest("fim", request.prompt, request.suffix, **common)

    def close(self) -> None:
        self.model.close()


class EngineBackend(LocalBackend):
    """``LocalBackend`` on the remote engine (``OpenAIEngine``, from ``remote.open_engine_backend``):
    cgstudio's pipeline, the upstream's identity. ``root``: the upstream's URL; ``served``: its model id."""

    def __init__(self, model: CodeModel, root: str, served: str) -> None:
        # The one LocalBackend initialiser (guards included), with the upstream's identity.
        super().__init__(model, name=served, fingerprint=remote_fingerprint(root, served))
        self.root = root

    def describe(self) -> dict[str, Any]:
        engine: Any = self.model.engine
        return {
            "name": self.name,
            "base_url": self.root,
            "backend": "openai-engine",
            "family": self.model.family,
            "variant": self.variant,
            "variant_reason": self.model.variant.reason,
            "tokenizer": engine.tokenizer.source,
            "fingerprint": self.fingerprint,
        }

    def cache_settings(self) -> dict[str, Any]:
        return {"base_url": self.root, "backend": "openai-engine", "n_ctx": self.model.engine.n_ctx}


def open_local_backend(
    path: Path, alias: str, settings: Settings, parallel: int, guard_set: str = "paper"
) -> LocalBackend:
    """A GGUF loaded for an eval: ``parallel`` sequences, ``guard_set`` a name in ``GUARD_SETS``
    ("paper", "suffix" or "editor"). ``settings`` is changed in place (KV reuse, ``n_parallel``)."""
    # Imported here: it imports llama_cpp, which a server-backed eval does not need.
    from cgstudio.engine.llamacpp import LlamaCppEngine

    # Prefix-only KV reuse: a shifted cached chunk (the opt-in kv_shift_reuse) can change outputs.
    settings.load.cache_reuse = 0
    settings.load.kv_shift_reuse = False
    settings.load.n_parallel = parallel
    guards = GUARD_SETS[guard_set]
    model = CodeModel(LlamaCppEngine(path, settings.load), settings, alias)
    return LocalBackend(model, guards)
