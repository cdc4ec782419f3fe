"""Tokenizers for the remote engine: the prompt budget is counted with the model's own tokenizer.

In order of preference (``open_tokenizer``):
    GGUFTokenizer      the model's GGUF, vocabulary only (--tokenizer PATH.gguf or --model PATH.gguf)
    HFTokenizer        tokenizer.json through the optional ``tokenizers`` package
    UpstreamTokenizer  the upstream's tokenize endpoint (vLLM /tokenize, llama_cpp.server /extras/tokenize)
    EstimateTokenizer  no tokenizer at all: ~3 bytes a token, every result says so (token_estimate)

The last two know a model's special tokens only by the spellings its family uses (``cgstudio.families``).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cgstudio.core.engine import ModelInfo, TokenKind
from cgstudio.core.errors import ModelFormatError
from cgstudio.families import UNKNOWN
from cgstudio.families import get as get_family
from cgstudio.families.base import RemoteVocab

ESTIMATE_BYTES = 3  # bytes per estimated token: code averages 3-4 with real tokenizers, so this over-counts


def family_vocab(family: str | None) -> RemoteVocab:
    """What the family's vocabulary looks like (``cgstudio.families``); the catch-all's for others."""
    fam = get_family(family)
    fv = fam.vocab or UNKNOWN.vocab
    assert fv is not None
    return fv


def synthetic_info(
    name: str, family: str | None, special: dict[str, int], *, n_ctx: int, n_vocab: int | None = None
) -> ModelInfo:
    """ModelInfo for a model known only by its upstream name and family (no GGUF at hand)."""
    fv = family_vocab(family)
    chat_template = get_family(family).chat.fallback_template
    return ModelInfo(
        path=name,
        architecture=fv.architecture,
        name=name,
        n_ctx_train=n_ctx,
        n_layers=0,
        n_head=0,
        n_head_kv=0,
        key_length=0,
        value_length=0,
        size_bytes=0,
        n_params=0,
        quantization="remote",
        chat_template=chat_template,
        bos_id=special.get(fv.bos) if fv.bos else None,
        eos_id=special.get(fv.eos),
        eot_id=special.get(fv.eot) if fv.eot else None,
        add_bos=fv.add_bos and fv.bos in special,
        add_space_prefix=False,
        n_vocab=n_vocab or fv.n_vocab or max(special.values(), default=0) + 1,
        special_tokens=dict(special),
        special_kinds={tid: TokenKind.CONTROL for tid in special.values()},
        metadata={"general.name": name, "general.architecture": fv.architecture},
    )


class Tokenizer(ABC):
    """The vocabulary half of an Engine."""

    info: ModelInfo
    source: str  # "gguf" | "hf" | "upstream" | "estimate"
    estimate: bool = False  # counts are estimates (EstimateTokenizer)

    @abstractmethod
    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]: ...

    @abstractmethod
    def piece(self, token: int, *, special: bool = False) -> bytes: ...

    def token_kind(self, token: int) -> TokenKind:
        return self.info.special_kinds.get(token, TokenKind.NORMAL)

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> bytes:
        return b"".join(self.piece(t, special=special) for t in tokens)

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class GGUFTokenizer(Tokenizer):
    """The model's vocabulary from its GGUF, through llama.cpp (no weights are loaded)."""

    source = "gguf"

    def __init__(self, path: Path) -> None:
        # Imported here: it loads llama_cpp, which importing this module must not (start-up time).
        from cgstudio.core.settings import LoadProfile
        from cgstudio.engine.llamacpp.handle import ModelHandle

        self._handle = ModelHandle(path, LoadProfile(), vocab_only=True)
        self.info = self._handle.model_info()

    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        return self._handle.tokenize(text.encode("utf-8"), parse_special=parse_special)

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return self._handle.piece(token, special=special)

    def token_kind(self, token: int) -> TokenKind:
        kind = self.info.special_kinds.get(token)
        return kind if kind is not None else self._handle.token_kind(token)

    def close(self) -> None:
        self._handle.close()


class HFTokenizer(Tokenizer):
    """A Hugging Face ``tokenizer.json`` (needs the optional ``tokenizers`` package)."""

    source = "hf"

    def __init__(self, path: Path, family: str | None, name: str) -> None:
        try:
            from tokenizers import Tokenizer as HF
        except ImportError as exc:
            raise ModelFormatError(
                f"{path} is a Hugging Face tokenizer; `pip install tokenizers` to use it, "
                "or pass the model's GGUF as --tokenizer"
            ) from exc
        file = path / "tokenizer.json" if path.is_dir() else path
        self._parse = HF.from_file(str(file))
        self._plain = HF.from_file(str(file))
        self._plain.encode_special_tokens = True  # special-token text stays text
        added = self._parse.get_added_tokens_decoder()
        special = {tok.content: tid for tid, tok in added.items() if tok.special}
        self.info = synthetic_info(name, family, special, n_ctx=0, n_vocab=self._parse.get_vocab_size())
        self._pieces: dict[int, bytes] = {}

    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        enc = (self._parse if parse_special else self._plain).encode(text, add_special_tokens=False)
        return list(enc.ids)

    def piece(self, token: int, *, special: bool = False) -> bytes:
        if token in self.info.special_kinds:
            return (self._parse.id_to_token(token) or "").encode() if special else b""
        if token not in self._pieces:
            self._pieces[token] = self._parse.decode([token], skip_special_tokens=False).encode()
        return self._pieces[token]

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> bytes:
        def text_of(ids: list[int]) -> str:
            return str(self._parse.decode(ids, skip_special_tokens=False))

        return _runs(self.info, tokens, special, text_of)


Call = Callable[[str, dict[str, Any]], Any]  # POST path (from the server root), JSON body -> JSON answer


class UpstreamTokenizer(Tokenizer):
    """The upstream's own tokenize and detokenize endpoints; special tokens found by their spelling.

    The endpoints always parse special-token text (vLLM's HF tokenizer, llama_cpp.server's
    ``special=True``); ``Vocab.plain`` keeps user text plain by splitting the spellings we know.
    """

    source = "upstream"

    def __init__(self, call: Call, dialect: Any, model: str, family: str | None, n_vocab: int = 0) -> None:
        self._call = call
        self._dialect = dialect
        self._model = model
        self._lock = threading.Lock()
        self._pieces: dict[int, bytes] = {}
        fv = family_vocab(family)
        # llama_cpp.server prepends BOS to every tokenization when the model adds one.
        empty = self._raw("") if dialect.tokenize_adds_bos else []
        self._strip_bos: int | None = empty[0] if len(empty) == 1 else None
        special: dict[str, int] = {}
        for spelling in fv.specials:
            ids = self.tokenize(spelling)
            if len(ids) == 1:
                special[spelling] = ids[0]
        self.info = synthetic_info(model, family, special, n_ctx=0, n_vocab=n_vocab or None)
        self._spelling = {tid: text.encode() for text, tid in special.items()}

    def _raw(self, text: str) -> list[int]:
        assert self._dialect.tokenize_path is not None
        return self._dialect.parse_tokens(
            self._call(self._dialect.tokenize_path, self._dialect.tokenize_body(self._model, text))
        )

    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        if not text:
            return []
        ids = self._raw(text)
        return ids[1:] if self._strip_bos is not None and ids[:1] == [self._strip_bos] else ids

    def piece(self, token: int, *, special: bool = False) -> bytes:
        if token in self._spelling:
            return self._spelling[token] if special else b""
        with self._lock:
            cached = self._pieces.get(token)
        if cached is None:
            cached = self._text([token]).encode()
            with self._lock:
                self._pieces[token] = cached
        return cached

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> bytes:
        return _runs(self.info, tokens, special, self._text, self._spelling)

    def _text(self, ids: list[int]) -> str:
        assert self._dialect.detokenize_path is not None
        doc = self._call(self._dialect.detokenize_path, self._dialect.detokenize_body(self._model, ids))
        return str(self._dialect.parse_text(doc))


class EstimateTokenizer(Tokenizer):
    """No tokenizer: ``ESTIMATE_BYTES``-byte chunks as tokens (reversible), family spellings as specials.

    Ids: specials are 0..K-1 in the family's ``RemoteVocab.specials`` order; a chunk of n bytes is
    ``1024 + (n - 1) * 2**32 + int.from_bytes(chunk)``. Counts over-estimate real tokenizers.
    """

    source = "estimate"
    estimate = True
    BASE = 1024

    def __init__(self, family: str | None, name: str) -> None:
        fv = family_vocab(family)
        special = {text: i for i, text in enumerate(fv.specials)}
        self.info = synthetic_info(name, family, special, n_ctx=0, n_vocab=1 << 40)
        self._by_first: dict[str, list[str]] = {}
        for text in sorted(special, key=len, reverse=True):
            self._by_first.setdefault(text[0], []).append(text)
        self._specials = special
        self._spelling = {i: text.encode() for text, i in special.items()}

    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        out: list[int] = []
        start = i = 0
        while parse_special and i < len(text):
            hit = next((c for c in self._by_first.get(text[i], ()) if text.startswith(c, i)), None)
            if hit is None:
                i += 1
                continue
            out += self._chunks(text[start:i])
            out.append(self._specials[hit])
            i = start = i + len(hit)
        return out + self._chunks(text[start:])

    def _chunks(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        return [
            self.BASE + (len(c) - 1) * (1 << 32) + int.from_bytes(c, "big")
            for c in (data[i : i + ESTIMATE_BYTES] for i in range(0, len(data), ESTIMATE_BYTES))
        ]

    def piece(self, token: int, *, special: bool = False) -> bytes:
        if token < self.BASE:
            return self._spelling.get(token, b"") if special else b""
        v = token - self.BASE
        return (v & 0xFFFFFFFF).to_bytes((v >> 32) + 1, "big")


def _runs(
    info: ModelInfo,
    tokens: Sequence[int],
    special: bool,
    text_of: Callable[[list[int]], str],
    spelling: dict[int, bytes] | None = None,
) -> bytes:
    """Detokenize runs of ordinary tokens in one call each; special tokens by their spelling."""
    names = spelling or {tid: text.encode() for text, tid in info.special_tokens.items()}
    out: list[bytes] = []
    run: list[int] = []
    for t in tokens:
        if t in names:
            if run:
                out.append(text_of(run).encode())
                run = []
            if special:
                out.append(names[t])
        else:
            run.append(t)
    if run:
        out.append(text_of(run).encode())
    return b"".join(out)


def open_local(path: Path, family: str | None, name: str) -> Tokenizer:
    """A tokenizer from a local file: a GGUF, or a tokenizer.json (or a folder holding one)."""
    if path.is_dir() or path.suffix == ".json":
        return HFTokenizer(path, family, name)
    return GGUFTokenizer(path)
