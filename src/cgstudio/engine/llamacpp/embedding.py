"""Sentence embeddings from an embedding GGUF (BERT, nomic-bert, ...) through llama.cpp's C API.

A code model's hidden states are not embeddings, so this engine serves only files made for it:
a ``{arch}.pooling_type`` key, or an encoder architecture whose converters write none (mean pooling,
as sentence-transformers). The pooling llama.cpp applies comes from that key:

    mean (1), cls (2), last (3)   used as given
    none (0) or absent            mean: one vector per input, never one per token
    rank (4)                      refused: a reranker scores pairs, it does not embed

llama.cpp aborts the process (``GGML_ASSERT``) where a Python caller would expect an error, so
everything it would assert on is checked here first:

    the file                      ``gguf_check.validate_model_file`` (through ``ModelHandle``)
    head sizes                    ``key_length == value_length`` (the BERT graph asserts it)
    special tokens                BOS/EOS when the vocabulary adds them; [CLS] and [SEP] for WordPiece
    one input longer than n_ctx   truncated (``truncate``) or InvalidInputError; never reaches decode
    a batch                       at most n_ctx tokens (= n_batch = n_ubatch: an encoder decodes a batch
                                  in one micro-batch) and MAX_SEQUENCES sequences
    token ids given by a client   in 0..n_vocab-1

n_ctx is the model's training context (the rows of BERT's position embeddings) capped at
``max_ctx``. One lock serialises every use of the context: callers run ``embed`` in worker threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp as lc
import numpy as np

from cgstudio.core.errors import CGStudioError, InvalidInputError, ModelFormatError, ModelLoadError
from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp.gguf_check import GGUFHeader, validate_model_file
from cgstudio.engine.llamacpp.handle import ModelHandle, llama_log_tail, new_context

log = logging.getLogger("cgstudio.llama_cpp")

POOLING_NAMES = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}
# Architectures llama.cpp runs as embedding encoders; their GGUFs may leave pooling_type out.
ENCODER_ARCHITECTURES = frozenset(
    {
        "bert",
        "nomic-bert",
        "nomic-bert-moe",
        "jina-bert-v2",
        "jina-bert-v3",
        "modern-bert",
        "neo-bert",
        "eurobert",
        "gemma-embedding",
    }
)
DEFAULT_MAX_CTX = 4096  # tokens per input at most; the attention of one batch grows with its square
MAX_SEQUENCES = 32  # inputs decoded together in one batch
NO_EMBEDDING_HINT = "pass a BERT/nomic-style embedding GGUF (e.g. nomic-embed-text, bge, all-MiniLM)"


@dataclass(frozen=True)
class EmbeddingModelInfo:
    """What the header says about an embedding GGUF, read without loading it."""

    path: Path
    architecture: str
    name: str
    n_embd: int
    n_ctx_train: int
    pooling: str  # "mean", "cls" or "last": what llama.cpp will apply

    def n_ctx(self, max_ctx: int = DEFAULT_MAX_CTX) -> int:
        """Tokens one input may have (special tokens included)."""
        return max(1, min(self.n_ctx_train, max_ctx))


@dataclass(frozen=True)
class Embeddings:
    """One vector per input, in input order (pooled, not normalised), and each input's token count."""

    vectors: list[np.ndarray]
    token_counts: list[int]
    truncated: list[bool]

    @property
    def n_tokens(self) -> int:
        return sum(self.token_counts)


def inspect_embedding_model(path: Path) -> EmbeddingModelInfo:
    """Validate ``path`` as an embedding GGUF from its header (no weights load); ModelFormatError if not."""
    return _embedding_info(validate_model_file(path))


def _embedding_info(header: GGUFHeader) -> EmbeddingModelInfo:
    path, arch, kv = header.path, header.architecture or "unknown", header.kv
    raw = kv.get(f"{arch}.pooling_type")
    if raw is None:
        if arch not in ENCODER_ARCHITECTURES:
            raise ModelFormatError(
                f"{path} is a {arch} model without {arch}.pooling_type, not an embedding model "
                f"(a code model's hidden states are not embeddings); {NO_EMBEDDING_HINT}"
            )
        pooling = "mean"
    elif isinstance(raw, bool) or not isinstance(raw, int) or raw not in POOLING_NAMES:
        raise ModelFormatError(f"{path}: {arch}.pooling_type is {raw!r}; llama.cpp knows 0 to 4")
    elif POOLING_NAMES[raw] == "rank":
        raise ModelFormatError(
            f"{path} is a reranker ({arch}.pooling_type rank): it scores pairs and does not embed; "
            f"{NO_EMBEDDING_HINT}"
        )
    else:
        pooling = "mean" if POOLING_NAMES[raw] == "none" else POOLING_NAMES[raw]
    n_embd = kv.get(f"{arch}.embedding_length")
    n_ctx_train = kv.get(f"{arch}.context_length")
    n_head = kv.get(f"{arch}.attention.head_count")
    key_len = kv.get(f"{arch}.attention.key_length")
    value_len = kv.get(f"{arch}.attention.value_length")
    if not isinstance(n_embd, int) or not isinstance(n_ctx_train, int):  # validate_model_file required them
        raise ModelFormatError(f"{path}: {arch}.embedding_length or context_length is missing")
    if isinstance(n_head, int) and n_head > 0 and (key_len is not None or value_len is not None):
        default = n_embd // n_head
        if (key_len if key_len is not None else default) != (value_len if value_len is not None else default):
            raise ModelFormatError(
                f"{path}: {arch}.attention.key_length ({key_len}) and value_length ({value_len}) differ; "
                "llama.cpp's encoders need equal head sizes (the file is damaged or was crafted)"
            )
    name = kv.get("general.name")
    return EmbeddingModelInfo(
        path=path,
        architecture=arch,
        name=name if isinstance(name, str) else path.stem,
        n_embd=n_embd,
        n_ctx_train=n_ctx_train,
        pooling=pooling,
    )


_POOLING_IDS = {
    "mean": lc.LLAMA_POOLING_TYPE_MEAN,
    "cls": lc.LLAMA_POOLING_TYPE_CLS,
    "last": lc.LLAMA_POOLING_TYPE_LAST,
}


class LlamaCppEmbedder:
    """An embedding GGUF loaded with its own llama.cpp context (``embeddings = true``).

    ``profile`` gives the load parameters it shares with code models (GPU layers, threads, mmap/mlock);
    ``max_ctx`` caps the tokens of one input (default DEFAULT_MAX_CTX, never above the training context).
    """

    def __init__(self, path: Path, profile: LoadProfile, *, max_ctx: int = DEFAULT_MAX_CTX) -> None:
        self.info = inspect_embedding_model(path)
        self._lock = threading.Lock()
        self._handle = ModelHandle(path, profile)
        self._ctx: Any = None
        self._batch: Any = None
        try:
            self._init(profile, max_ctx)
        except BaseException:
            self.close()
            raise

    def _init(self, profile: LoadProfile, max_ctx: int) -> None:
        h, path = self._handle, self.info.path
        vocab = h.vocab
        self.n_vocab = h.n_vocab
        self._check_special_tokens(vocab)
        self.n_embd = int(lc.llama_model_n_embd_out(h.model))
        if self.n_embd <= 0:
            raise ModelFormatError(f"{path}: llama.cpp reports {self.n_embd} embedding dimensions")
        self.n_ctx = self.info.n_ctx(max_ctx)
        params = lc.llama_context_default_params()
        params.n_ctx = self.n_ctx
        # An encoder decodes a batch in one micro-batch (llama.cpp asserts n_ubatch >= n_tokens), so
        # batch, micro-batch and context are one size, and no batch is ever packed beyond it.
        params.n_batch = self.n_ctx
        params.n_ubatch = self.n_ctx
        params.n_seq_max = MAX_SEQUENCES
        params.kv_unified = True  # causal embedders (a KV cache): every sequence may use all n_ctx cells
        params.embeddings = True
        params.pooling_type = _POOLING_IDS[self.info.pooling]
        # Flash attention as the code models' contexts (--flash-attn): llama.cpp's "auto" would turn it
        # on, and its F16 accumulation makes a text's vector depend on the batch it shares to about 1e-4.
        self._ctx = ctx = new_context(
            h.model,
            params,
            profile,
            lambda detail: ModelLoadError(
                f"llama.cpp could not create an embedding context for {path}: {detail}"
            ),
        )
        # Never pack more than llama.cpp kept (it may adjust the sizes it was given).
        self.n_ctx = min(self.n_ctx, int(lc.llama_n_batch(ctx)), int(lc.llama_n_ubatch(ctx)))
        self._memory = lc.llama_get_memory(ctx)  # None for encoders (BERT): nothing to clear
        self._batch = lc.llama_batch_init(self.n_ctx, 0, 1)

    def _check_special_tokens(self, vocab: Any) -> None:
        """The tokens llama.cpp asserts on when it adds special tokens to an input."""
        need: list[tuple[str, int]] = []
        if lc.llama_vocab_type(vocab) == lc.LLAMA_VOCAB_TYPE_WPM:
            need += [("[CLS] (BOS)", lc.llama_vocab_bos(vocab)), ("[SEP]", lc.llama_vocab_sep(vocab))]
        else:
            if lc.llama_vocab_get_add_bos(vocab):
                need.append(("BOS", lc.llama_vocab_bos(vocab)))
            if lc.llama_vocab_get_add_eos(vocab):
                need.append(("EOS", lc.llama_vocab_eos(vocab)))
        for what, token in need:
            if not 0 <= token < self.n_vocab:
                raise ModelFormatError(
                    f"{self.info.path}: the tokenizer adds a {what} token but its id ({token}) is not in "
                    f"the vocabulary of {self.n_vocab}; the file is damaged"
                )

    # -- tokens ----------------------------------------------------------------------------------
    def _tokenize(self, text: str, *, add_special: bool) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 8
        buf = (lc.llama_token * n_max)()
        vocab = self._handle.vocab
        # parse_special=False: text such as "[SEP]" stays text, as in every cgstudio prompt.
        n = lc.llama_tokenize(vocab, data, len(data), buf, n_max, add_special, False)
        if n < 0:
            n_max = -n
            buf = (lc.llama_token * n_max)()
            n = lc.llama_tokenize(vocab, data, len(data), buf, n_max, add_special, False)
        return list(buf[:n])

    def tokens_for(self, text: str, *, truncate: bool, index: int = 0) -> tuple[list[int], bool]:
        """The input's tokens with the model's special tokens; (tokens, truncated).

        Longer than n_ctx: with ``truncate`` the text's tokens are cut and the special tokens kept
        (BERT's [CLS] ... [SEP]); without, InvalidInputError.
        """
        with self._lock:
            self._check_open()
            tokens = self._tokenize(text, add_special=True)
            if len(tokens) <= self.n_ctx:
                return tokens, False
            if not truncate:
                raise self._too_long(index, len(tokens))
            plain = self._tokenize(text, add_special=False)
        return _cut(tokens, plain, self.n_ctx), True

    def check_tokens(
        self, tokens: Sequence[int], *, truncate: bool, index: int = 0
    ) -> tuple[list[int], bool]:
        """Token ids a client sent, used as given (no special tokens added); (tokens, truncated)."""
        ids = list(tokens)
        for t in ids:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < self.n_vocab:
                raise InvalidInputError(
                    f"input {index} holds token id {t!r}; "
                    f"the embedding model's ids are 0 to {self.n_vocab - 1}"
                )
        if len(ids) <= self.n_ctx:
            return ids, False
        if not truncate:
            raise self._too_long(index, len(ids))
        return ids[: self.n_ctx], True

    def _too_long(self, index: int, n: int) -> InvalidInputError:
        return InvalidInputError(
            f"input {index} has {n} tokens; the embedding model takes at most {self.n_ctx} per input. "
            "Split the text, or send truncate: true to embed its beginning"
        )

    # -- embedding -------------------------------------------------------------------------------
    def embed_tokens(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """One pooled vector (float32, not normalised) per token sequence, each at most n_ctx tokens."""
        for i, seq in enumerate(sequences):
            if not 0 < len(seq) <= self.n_ctx:
                raise InvalidInputError(f"input {i} has {len(seq)} tokens; 1 to {self.n_ctx} fit")
        out: list[np.ndarray] = []
        with self._lock:
            self._check_open()
            group: list[Sequence[int]] = []
            n_group = 0
            for seq in sequences:
                if group and (n_group + len(seq) > self.n_ctx or len(group) >= MAX_SEQUENCES):
                    out += self._decode(group)
                    group, n_group = [], 0
                group.append(seq)
                n_group += len(seq)
            if group:
                out += self._decode(group)
        return out

    def embed(self, inputs: Sequence[str | Sequence[int]], *, truncate: bool) -> Embeddings:
        """Embed texts (special tokens added) or token-id lists (used as given), in order."""
        prepared = [
            self.tokens_for(x, truncate=truncate, index=i)
            if isinstance(x, str)
            else self.check_tokens(x, truncate=truncate, index=i)
            for i, x in enumerate(inputs)
        ]
        vectors = self.embed_tokens([tokens for tokens, _ in prepared])
        return Embeddings(
            vectors=vectors,
            token_counts=[len(tokens) for tokens, _ in prepared],
            truncated=[cut for _, cut in prepared],
        )

    def _decode(self, group: Sequence[Sequence[int]]) -> list[np.ndarray]:
        batch = self._batch
        k = 0
        for seq_id, seq in enumerate(group):
            for pos, token in enumerate(seq):
                batch.token[k] = token
                batch.pos[k] = pos
                batch.n_seq_id[k] = 1
                batch.seq_id[k][0] = seq_id
                batch.logits[k] = 1  # pooling reads every token's output
                k += 1
        batch.n_tokens = k
        if self._memory:
            lc.llama_memory_clear(self._memory, True)
        rc = lc.llama_decode(self._ctx, batch)
        if rc != 0:
            raise CGStudioError(
                f"llama.cpp could not embed a batch of {k} tokens (code {rc}): "
                f"{llama_log_tail() or 'no detail'}"
            )
        vectors = []
        for seq_id in range(len(group)):
            ptr = lc.llama_get_embeddings_seq(self._ctx, seq_id)
            if not ptr:
                raise CGStudioError("llama.cpp returned no pooled embedding; is the pooling type supported?")
            vectors.append(np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).astype(np.float32, copy=True))
        return vectors

    # -- lifetime --------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._ctx is None:
            raise CGStudioError("the embedding model was closed (the server is stopping)")

    def close(self) -> None:
        """Free the context and the model; waits for a running ``embed`` (it holds the lock)."""
        with self._lock:
            if self._batch is not None:
                lc.llama_batch_free(self._batch)
                self._batch = None
            if self._ctx is not None:
                lc.llama_free(self._ctx)
                self._ctx = None
            self._handle.close()

    def __del__(self) -> None:
        if getattr(self, "_lock", None) is not None and getattr(self, "_handle", None) is not None:
            self.close()


def _cut(tokens: list[int], plain: list[int], n_ctx: int) -> list[int]:
    """``tokens`` (special tokens around ``plain``) cut to ``n_ctx``, keeping the special tokens."""
    n = len(plain)
    for head in range(len(tokens) - n + 1):
        if tokens[head : head + n] == plain:
            tail = tokens[head + n :]
            keep = n_ctx - head - len(tail)
            if keep > 0:
                return tokens[:head] + plain[:keep] + tail
            break
    return tokens[:n_ctx]
