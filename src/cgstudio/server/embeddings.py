"""The embedding model behind /v1/embeddings, /api/embed and /api/embeddings (dialect-free).

Embeddings come only from ``cgstudio serve --embedding-model [ALIAS=]PATH.gguf``, a model made for
them (BERT, nomic-bert, ...): the code models' hidden states are not embeddings, so without one
every embedding request is a 400 that names the flag.

The model is checked at startup (its header: an embedding GGUF, a pooling llama.cpp applies),
loaded on first use in a worker thread and kept until shutdown (embedding models are small). It
has its own llama.cpp context, apart from the code models' generation queue; its lock serialises
requests, and each runs in a worker thread so the event loop never tokenizes or decodes.

Every vector leaves L2-normalised, as Ollama's /api/embed and llama.cpp's server (``embd_normalize``
2) return them; ``dimensions`` keeps the first N components and normalises again (Matryoshka models
such as nomic-embed-text v1.5).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cgstudio.core.errors import CGStudioError, InvalidInputError, ModelNotFoundError, UnsupportedModeError
from cgstudio.core.settings import Settings
from cgstudio.server.config import ModelSpec
from cgstudio.server.registry import Registry
from cgstudio.session.model import check_text

if TYPE_CHECKING:
    from cgstudio.engine.llamacpp.embedding import EmbeddingModelInfo, LlamaCppEmbedder

log = logging.getLogger("cgstudio.server")

NO_EMBEDDING_MODEL = (
    "no embedding model: start cgstudio serve with --embedding-model PATH.gguf (a BERT/nomic-style "
    "embedding GGUF); the code model's hidden states are not embeddings"
)
MAX_INPUTS = 2048  # inputs per request, as OpenAI's API
MAX_REQUEST_TOKENS = 300_000  # tokens per request after truncation, as OpenAI's API

EmbedInput = str | Sequence[int]


@dataclass(frozen=True)
class EmbedResult:
    """Unit-length float32 vectors in input order, the tokens embedded, and the seconds it took."""

    alias: str
    vectors: list[np.ndarray]
    n_tokens: int
    load_s: float
    total_s: float


class EmbeddingHost:
    """The --embedding-model (or none): name check, lazy load, and one embedding job at a time."""

    def __init__(self, spec: ModelSpec | None, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.info: EmbeddingModelInfo | None = None
        self._embedder: LlamaCppEmbedder | None = None
        self._load_lock = threading.Lock()

    @property
    def alias(self) -> str | None:
        return self.spec.alias if self.spec else None

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def inspect(self) -> EmbeddingModelInfo | None:
        """Check the file now (blocking, no weights), so a wrong one fails at startup with one line."""
        if self.spec is None:
            return None
        if self.info is None:
            # Imported here: it loads llama_cpp, which importing this module must not (start-up time).
            from cgstudio.engine.llamacpp.embedding import inspect_embedding_model

            self.info = inspect_embedding_model(self.spec.path)
        return self.info

    def resolve(self, name: str | None, registry: Registry) -> ModelSpec:
        """The embedding model a request names: its alias, file name, 'default' or nothing."""
        spec = self.spec
        if spec is None:
            raise UnsupportedModeError(NO_EMBEDDING_MODEL)
        base = (name or "default").removesuffix(":latest")
        if base in ("default", spec.alias, spec.path.name, spec.path.stem, str(spec.path)):
            return spec
        try:
            code_model = registry.get(base)
        except ModelNotFoundError:
            raise ModelNotFoundError(
                f"unknown embedding model {name!r}; this server embeds with {spec.alias!r} "
                "(--embedding-model), or send 'default'"
            ) from None
        raise UnsupportedModeError(
            f"{code_model.alias!r} is a code model and its hidden states are not embeddings; "
            f"embed with {spec.alias!r} (--embedding-model), or send 'default'"
        )

    async def load(self, name: str | None, registry: Registry) -> tuple[str, float]:
        """Load the named embedding model now (Ollama's empty-input request); (alias, seconds)."""
        spec = self.resolve(name, registry)
        _, load_s = await asyncio.to_thread(self._ensure_loaded)
        return spec.alias, load_s

    async def embed(
        self,
        name: str | None,
        inputs: Sequence[EmbedInput],
        registry: Registry,
        *,
        truncate: bool,
        dimensions: int | None = None,
    ) -> EmbedResult:
        """Embed ``inputs`` (texts, or token-id lists used as given) in a worker thread.

        ``truncate``: an input longer than the model's context is cut (else a 400). ``dimensions``
        keeps that many leading components (1 to the model's width; more is a 400).
        """
        t0 = time.perf_counter()
        spec = self.resolve(name, registry)
        check_inputs(inputs)
        embedder, load_s = await asyncio.to_thread(self._ensure_loaded)
        vectors, n_tokens = await asyncio.to_thread(_run, embedder, inputs, truncate, dimensions)
        return EmbedResult(spec.alias, vectors, n_tokens, load_s, time.perf_counter() - t0)

    def _ensure_loaded(self) -> tuple[LlamaCppEmbedder, float]:
        with self._load_lock:
            if self._embedder is not None:
                return self._embedder, 0.0
            assert self.spec is not None  # resolve() refused the request otherwise
            from cgstudio.engine.llamacpp.embedding import LlamaCppEmbedder  # llama_cpp: see inspect()

            t0 = time.perf_counter()
            self._embedder = LlamaCppEmbedder(self.spec.path, self.settings.load)
            self.info = self._embedder.info
            load_s = time.perf_counter() - t0
            log.info("loaded embedding model %s in %.2f s", self.spec.alias, load_s)
            return self._embedder, load_s

    async def close(self) -> None:
        """Free the model; a running embedding job finishes first (it holds the embedder's lock)."""
        with self._load_lock:
            embedder, self._embedder = self._embedder, None
        if embedder is not None:
            await asyncio.to_thread(embedder.close)


def check_inputs(inputs: Sequence[EmbedInput]) -> None:
    """400 for no input, too many, an empty one, NUL characters, lone surrogates or oversized text."""
    if not inputs:
        raise InvalidInputError("input is empty; send a string or a non-empty list of strings")
    if len(inputs) > MAX_INPUTS:
        raise InvalidInputError(
            f"got {len(inputs):,} inputs; at most {MAX_INPUTS:,} per request (send them in several requests)"
        )
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            check_text(f"input {i}", item)
            if not item:
                raise InvalidInputError(f"input {i} is an empty string; every input needs text to embed")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInputError(
                    f"input {i} is not valid Unicode (a lone surrogate?); send valid UTF-8 text"
                ) from None
        elif not item:
            raise InvalidInputError(f"input {i} is an empty list of tokens")


def _run(
    embedder: LlamaCppEmbedder, inputs: Sequence[EmbedInput], truncate: bool, dimensions: int | None
) -> tuple[list[np.ndarray], int]:
    """Worker thread: tokenize, bound the request, embed, normalise, cut to ``dimensions``."""
    if dimensions is not None and not 1 <= dimensions <= embedder.n_embd:
        raise InvalidInputError(
            f"dimensions is {dimensions}; the embedding model gives 1 to {embedder.n_embd} dimensions"
        )
    sequences: list[list[int]] = []
    n_tokens = 0
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            tokens, _ = embedder.tokens_for(item, truncate=truncate, index=i)
        else:
            tokens, _ = embedder.check_tokens(item, truncate=truncate, index=i)
        n_tokens += len(tokens)
        if n_tokens > MAX_REQUEST_TOKENS:
            raise InvalidInputError(
                f"the inputs hold more than {MAX_REQUEST_TOKENS:,} tokens; send them in several requests"
            )
        sequences.append(tokens)
    vectors = [l2_normalized(v) for v in embedder.embed_tokens(sequences)]
    if dimensions is not None and dimensions < embedder.n_embd:
        vectors = [l2_normalized(v[:dimensions]) for v in vectors]
    return vectors, n_tokens


def l2_normalized(vector: np.ndarray) -> np.ndarray:
    """``vector / ||vector||`` as float32; a zero vector stays zero. NaN or infinity is an error."""
    if not np.isfinite(vector).all():
        raise CGStudioError("the embedding model produced NaN or infinite values; the file may be damaged")
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    return (vector / max(norm, 1e-12)).astype(np.float32)
