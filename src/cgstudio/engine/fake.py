"""A scripted engine for unit tests: it "generates" a fixed list of byte pieces, or a reply computed
from the prompt."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from cgstudio.core.engine import (
    DecodeRequest,
    DecodeStats,
    Engine,
    EngineCounters,
    ModelInfo,
    TokenKind,
    TokenStream,
    check_choices,
)
from cgstudio.families import gemma

EOS = 1
BOS = 2


class FakeEngine(Engine):
    """Token ids 0..2 are pad/eos/bos (Gemma spellings); ids from 10 are the scripted output pieces.

    ``choices`` scripts choices 1, 2, ... of ``stream_choices`` (choice 0, and any choice without
    a script, says ``pieces``); like llama.cpp's engine it evaluates the prompt once for all.

    ``reply`` replaces the script with a function of the prompt: it gets the prompt's text (its
    byte tokens; special tokens left out) and the strings it yields are streamed one byte token
    each, as they come, so a reply may be slow or endless (the request's cancel or max_tokens ends
    it). Every choice says the reply.
    """

    def __init__(
        self,
        pieces: list[bytes],
        *,
        end_with_eos: bool = True,
        n_ctx: int = 4096,
        choices: list[list[bytes]] | None = None,
        max_choices: int = 4,
        forces_start: bool = False,
        reply: Callable[[str], Iterable[str]] | None = None,
    ) -> None:
        """``forces_start``: claim to honour ``DecodeRequest.starts_with`` (token healing); the
        script must then start with the healed text, as llama.cpp's masked first token would."""
        self.pieces = list(pieces)
        self._forces_start = forces_start
        self._scripts = [list(range(10, 10 + len(pieces)))]
        for script in choices or []:
            start = 10 + len(self.pieces)
            self.pieces.extend(script)
            self._scripts.append(list(range(start, start + len(script))))
        self._max_choices = max_choices
        self._reply = reply
        self.end_with_eos = end_with_eos
        self.n_ctx = n_ctx
        self.counters = EngineCounters()
        self.requests: list[DecodeRequest] = []  # every request streamed, for tests (grammar, ...)
        self.info = ModelInfo(
            path="fake.gguf",
            architecture="fake",
            name="fake",
            n_ctx_train=n_ctx,
            n_layers=1,
            n_head=1,
            n_head_kv=1,
            key_length=1,
            value_length=1,
            size_bytes=0,
            n_params=0,
            quantization="F32",
            chat_template=None,
            bos_id=BOS,
            eos_id=EOS,
            eot_id=None,
            add_bos=True,
            add_space_prefix=False,
            n_vocab=10 + len(self.pieces),
            special_tokens={gemma.PAD: 0, gemma.EOS: EOS, gemma.BOS: BOS},
            special_kinds={0: TokenKind.CONTROL, EOS: TokenKind.CONTROL, BOS: TokenKind.CONTROL},
        )

    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        return [1000 + b for b in text.encode()]  # one token per byte

    def piece(self, token: int, *, special: bool = False) -> bytes:
        if token >= 1000:
            return bytes([token - 1000])
        if token >= 10:
            return self.pieces[token - 10]
        return {0: gemma.PAD, EOS: gemma.EOS, BOS: gemma.BOS}[token].encode() if special else b""

    def token_kind(self, token: int) -> TokenKind:
        return self.info.special_kinds.get(token, TokenKind.NORMAL)

    @property
    def forces_start(self) -> bool:
        return self._forces_start

    def stream(self, request: DecodeRequest) -> TokenStream:
        self.requests.append(request)
        return self._stream(request, self._script(request, 0), evaluate=True)

    @property
    def max_choices(self) -> int:
        return self._max_choices

    @property
    def shares_prompt(self) -> bool:
        return True

    def stream_choices(self, request: DecodeRequest) -> list[TokenStream]:
        check_choices(request.n, self.max_choices)
        return [self._stream(request, self._script(request, i), evaluate=i == 0) for i in range(request.n)]

    def _script(self, request: DecodeRequest, choice: int) -> Iterable[int]:
        if self._reply is None:
            return self._scripts[choice] if choice < len(self._scripts) else self._scripts[0]
        prompt = bytes(t - 1000 for t in request.tokens if t >= 1000).decode(errors="replace")
        return (1000 + b for text in self._reply(prompt) for b in text.encode())

    def _stream(self, request: DecodeRequest, script: Iterable[int], *, evaluate: bool) -> TokenStream:
        n = len(request.tokens)
        stats = DecodeStats(
            n_prompt=n,
            n_prompt_evaluated=n if evaluate else 0,
            n_shared=0 if evaluate else n,
            prompt_eval_s=0.001,
        )

        def gen() -> Iterator[int]:
            if evaluate:
                self.counters.evaluated_tokens += n
            for tok in script:
                if request.cancel is not None and request.cancel.is_set():
                    stats.finish = "cancelled"
                    return
                if stats.n_generated >= request.max_tokens:
                    stats.finish = "max_tokens"
                    return
                stats.n_generated += 1
                self.counters.generated_tokens += 1
                yield tok
            stats.finish = "stop_token" if self.end_with_eos else "max_tokens"
            stats.stop_token = EOS if self.end_with_eos else None

        return TokenStream(gen(), stats)
