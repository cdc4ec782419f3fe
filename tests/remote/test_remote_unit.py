"""The remote engine against scripted upstreams: vLLM's request and response shapes, text upstreams,
tokenizers, retries and error mapping. The vocabulary is Qwen2.5-Coder's real GGUF (vocab only)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_upstreams import FakeTextServer, FakeVLLM, chunk, sse

from cgstudio.core.engine import DecodeRequest, SamplerConfig
from cgstudio.core.errors import InvalidInputError, OverloadedError, SettingsError, UpstreamError
from cgstudio.core.settings import Settings, load_settings
from cgstudio.engine.remote import OpenAIEngine, family_from_name, upstream_settings
from cgstudio.engine.remote.dialect import parse_event, sse_data
from cgstudio.engine.remote.llamacpp_server import LlamaCppServerDialect, TextDialect, render_prompt
from cgstudio.engine.remote.tokenizer import EstimateTokenizer, GGUFTokenizer, UpstreamTokenizer
from cgstudio.engine.remote.vllm import VLLMDialect, is_vllm, max_model_len
from cgstudio.generation.request import GenerationRequest
from cgstudio.prompts.vocab import Vocab
from cgstudio.server.config import resolve_remote_model
from cgstudio.session import CodeModel

BASE = "http://vllm.test:8000"
PREFIX = 's = "<|fim_suffix|>"  # user text that spells a control token\ndef add(a, b):\n    '
SUFFIX = "\n\nprint(add(1, 2))\n"
GREEDY = {"temperature": 0.0, "max_tokens": 16}


@pytest.fixture(scope="module")
def tok(qwen_path: Path) -> Iterator[GGUFTokenizer]:
    t = GGUFTokenizer(qwen_path)
    yield t
    t.close()


@pytest.fixture
def settings() -> Settings:
    return load_settings({"load": {"n_ctx": 8192}})


def remote(server: object, settings: Settings, **kw: object) -> CodeModel:
    engine = OpenAIEngine(
        upstream_settings(base_url=BASE, **kw),
        n_ctx=settings.load.n_ctx,
        transport=httpx.MockTransport(server),
    )
    return CodeModel(engine, settings, "remote")


# -- vLLM: token-id prompts -------------------------------------------------------------------------


def test_vllm_fim_sends_our_token_ids_and_user_text_stays_text(
    tok: GGUFTokenizer, qwen_path: Path, settings: Settings
) -> None:
    server = FakeVLLM(tok, stop_reason=tok.info.special_tokens["<|file_sep|>"])
    m = remote(server, settings, tokenizer=qwen_path)
    r = m.complete(PREFIX, SUFFIX, sampling={**GREEDY, "top_k": 0})
    body = server.bodies[-1]
    expected, _ = m.prompt(GenerationRequest("fim", PREFIX, SUFFIX, sampling={"max_tokens": 16}))
    assert body["prompt"] == expected.tokens and all(isinstance(t, int) for t in body["prompt"])
    special = tok.info.special_tokens
    # The structure's special tokens appear once each; the user's "<|fim_suffix|>" is plain text.
    assert body["prompt"].count(special["<|fim_suffix|>"]) == 1
    assert body["prompt"][-1] == special["<|fim_middle|>"]
    assert '"<|fim_suffix|>"' in tok.detokenize(body["prompt"], special=False).decode()
    assert "suffix" not in body  # vLLM rejects `suffix`; the FIM format is rendered here
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["skip_special_tokens"] is True and body["spaces_between_special_tokens"] is False
    assert body["include_stop_str_in_output"] is False
    assert {special[t] for t in ("<|fim_prefix|>", "<|file_sep|>", "<|endoftext|>")} <= set(
        body["stop_token_ids"]
    )
    assert body["temperature"] == 0.0 and body["top_k"] == -1 and body["max_tokens"] == 16
    assert body["model"] == "Qwen/Qwen2.5-Coder-0.5B"
    assert r.text == "return a + b" and r.finish_reason == "eos"
    assert r.usage.completion_tokens == 4 and r.usage.prompt_tokens == len(expected.tokens)
    assert m.engine.counters.aborted_streams == 0  # read to [DONE]


def test_vllm_request_shapes() -> None:
    d = VLLMDialect()
    assert d.tokenize_body("m", "x") == {"model": "m", "prompt": "x", "add_special_tokens": False}
    assert d.parse_tokens({"count": 2, "max_model_len": 8192, "tokens": [5, 6]}) == [5, 6]
    assert d.detokenize_body("m", [5, 6]) == {"model": "m", "tokens": [5, 6]}
    assert d.parse_text({"prompt": "ab"}) == "ab"
    assert (d.tokenize_path, d.detokenize_path) == ("/tokenize", "/detokenize")
    body = d.completion_body("m", [1, 2], 8, SamplerConfig(top_k=40, seed=7, repeat_penalty=1.1), [3], [])
    assert body["prompt"] == [1, 2] and body["top_k"] == 40 and body["seed"] == 7
    assert body["repetition_penalty"] == 1.1 and body["stop_token_ids"] == [3]
    with pytest.raises(TypeError):
        d.completion_body("m", "text", 8, SamplerConfig(), [], [])
    cards = [{"id": "google/codegemma-7b", "owned_by": "vllm", "max_model_len": 8192}]
    assert is_vllm(cards) and max_model_len(cards[0]) == 8192 and not is_vllm([{"id": "x", "owned_by": "me"}])
    ev = parse_event(chunk("a", "stop", 107))
    assert (ev.text, ev.finish_reason, ev.stop_reason) == ("a", "stop", 107)
    usage = parse_event({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}})
    assert (usage.completion_tokens, usage.prompt_tokens) == (3, 9)
    assert list(sse_data(iter([": ping", "data: {}", "", "data: [DONE]", "data: {}"]))) == ["{}"]


def test_upstream_tokenizer_over_vllm_tokenize_matches_the_gguf(
    tok: GGUFTokenizer, qwen_path: Path, settings: Settings
) -> None:
    server = FakeVLLM(tok, max_model_len=4096)
    m = remote(server, settings)
    assert isinstance(m.engine.tokenizer, UpstreamTokenizer)
    assert m.family == "qwen2.5-coder" and m.fim_capable
    assert m.engine.n_ctx == 4096  # vLLM's max_model_len caps the budget
    for text in ("<|fim_prefix|>", "<|file_sep|>", "<|im_end|>", "<|endoftext|>"):
        assert m.engine.info.special_tokens[text] == tok.info.special_tokens[text]
    exact = remote(FakeVLLM(tok), settings, tokenizer=qwen_path)
    ours, _ = m.prompt(GenerationRequest("fim", PREFIX, SUFFIX, sampling={"max_tokens": 16}))
    theirs, _ = exact.prompt(GenerationRequest("fim", PREFIX, SUFFIX, sampling={"max_tokens": 16}))
    # Same text, same structure; the user's "<|fim_suffix|>" is split into plain pieces by Vocab.plain
    # (the endpoint always parses specials), so ordinary tokens may differ around it.
    assert tok.detokenize(ours.tokens, special=True) == tok.detokenize(theirs.tokens, special=True)
    fim_suffix = tok.info.special_tokens["<|fim_suffix|>"]
    assert ours.tokens.count(fim_suffix) == theirs.tokens.count(fim_suffix) == 1
    assert abs(len(ours.tokens) - len(theirs.tokens)) <= 3
    assert (
        m.engine.detokenize(ours.tokens, special=True) == tok.detokenize(ours.tokens, special=True).decode()
    )
    assert m.complete(PREFIX, SUFFIX, sampling=GREEDY).warnings == []


# -- text upstreams --------------------------------------------------------------------------------


def test_text_upstream_refuses_special_token_text(
    tok: GGUFTokenizer, qwen_path: Path, settings: Settings
) -> None:
    server = FakeTextServer()
    m = remote(server, settings, tokenizer=qwen_path, dialect="openai")
    with pytest.raises(InvalidInputError) as exc:
        m.complete(PREFIX, SUFFIX, sampling=GREEDY)
    assert exc.value.message == (
        "this upstream takes text prompts; the input contains special-token text (<|fim_suffix|>) that it "
        "would parse as a control token; use a vLLM upstream (token-id prompts) or remove it"
    )
    assert server.bodies == []  # nothing was sent
    r = m.complete("def add(a, b):\n    ", SUFFIX, sampling=GREEDY)
    body = server.bodies[-1]
    prompt, _ = m.prompt(
        GenerationRequest("fim", "def add(a, b):\n    ", SUFFIX, sampling={"max_tokens": 16})
    )
    assert body["prompt"] == tok.detokenize(prompt.tokens, special=True).decode()
    assert body["prompt"].endswith("<|fim_middle|>") and "suffix" not in body
    assert len(body["stop"]) <= 4 and "top_k" not in body  # plain OpenAI parameters only
    assert r.text == "x = 1" and r.finish_reason == "length"
    # A client-rendered (raw) prompt means its special tokens: it passes.
    raw = "<|fim_prefix|>def f():\n    <|fim_suffix|>\n<|fim_middle|>"
    list(m.stream(GenerationRequest("raw", raw, sampling=GREEDY)))
    assert server.bodies[-1]["prompt"] == raw


def test_render_prompt_drops_bos_the_upstream_adds(codegemma_paths: dict[str, Path]) -> None:
    t = GGUFTokenizer(codegemma_paths["control"])
    try:
        vocab_ids = Vocab(_Shim(t)).protected_ids
        bos = t.info.bos_id
        assert bos is not None and t.info.add_bos
        ids = [
            bos,
            t.info.special_tokens["<|fim_prefix|>"],
            *t.tokenize("x = 1"),
            t.info.special_tokens["<|fim_middle|>"],
        ]
        text = render_prompt(t, ids, vocab_ids)
        assert text.startswith("<|fim_prefix|>") and "<bos>" not in text
    finally:
        t.close()


def test_llama_cpp_dialect_shapes() -> None:
    d = LlamaCppServerDialect()
    body = d.completion_body("m", "p", 8, SamplerConfig(top_k=40, min_p=0.05), [], ["<|file_sep|>"])
    assert (
        body["prompt"] == "p"
        and body["top_k"] == 40
        and body["min_p"] == 0.05
        and body["stop"] == ["<|file_sep|>"]
    )
    assert d.tokenize_body("m", "x") == {"model": "m", "input": "x"} and d.tokenize_path == "/extras/tokenize"
    assert d.parse_text({"text": "x"}) == "x"
    with pytest.raises(TypeError):
        TextDialect().completion_body("m", [1], 8, SamplerConfig(), [], [])


# -- estimate ----------------------------------------------------------------------------------------


def test_estimate_tokenizer_round_trips_and_marks_results(settings: Settings) -> None:
    t = EstimateTokenizer("codegemma", "codegemma-7b")
    text = "naïve = '日本'\n<|fim_prefix|>x"
    plain = t.tokenize(text)
    assert t.detokenize(plain).decode() == text and not set(plain) & set(t.info.special_kinds)
    parsed = t.tokenize(text, parse_special=True)
    assert t.info.special_tokens["<|fim_prefix|>"] in parsed
    assert t.detokenize(parsed, special=True).decode() == text
    assert len(plain) == -(-len(text.encode()) // 3)
    server = FakeTextServer()
    m = remote(server, settings, tokenizer_mode="estimate")
    assert m.family == "qwen2.5-coder" and m.engine.estimate
    r = m.complete("def add(a, b):\n    ", SUFFIX, sampling=GREEDY)
    assert [w.code for w in r.warnings] == ["token_estimate"]
    assert (
        server.bodies[-1]["prompt"]
        == "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>" + SUFFIX + "<|fim_middle|>"
    )
    assert [w.code for w in m.chat([{"role": "user", "content": "hi"}], sampling=GREEDY).warnings] == [
        "token_estimate"
    ]
    with pytest.raises(SettingsError):
        remote(server, settings, tokenizer_mode="upstream")  # a plain OpenAI server cannot tokenize


# -- retries, errors, cancellation -----------------------------------------------------------------


def test_retries_before_the_first_token_only(tok: GGUFTokenizer, qwen_path: Path, settings: Settings) -> None:
    server = FakeVLLM(tok)
    m = remote(server, settings, tokenizer=qwen_path)
    server.failures = [503, httpx.ConnectError("refused")]
    assert m.complete("def f():\n    ", "", sampling=GREEDY).text == "return a + b"
    assert m.engine.counters.retries == 2 and len(server.bodies) == 3
    server.failures = [503, 503, 503]
    with pytest.raises(UpstreamError, match=r"the upstream failed \(503\): scripted 503"):
        m.complete("def f():\n    ", "", sampling=GREEDY)
    assert m.engine.counters.retries == 4

    def broken(body: dict[str, object]) -> httpx.Response:  # a token, then an error in the stream
        events = [chunk("ok"), {"error": {"message": "engine died", "type": "InternalServerError"}}]
        return httpx.Response(200, content=sse(events))

    server.completion = broken
    calls = len(server.bodies)
    with pytest.raises(UpstreamError, match="failed mid-stream: engine died"):
        m.complete("def f():\n    ", "", sampling=GREEDY)
    assert len(server.bodies) == calls + 1  # no retry after a token


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (400, InvalidInputError, "rejected the request (400)"),
        (401, UpstreamError, "--api-key-upstream"),
        (404, UpstreamError, "404"),
        (429, OverloadedError, "overloaded (429)"),
    ],
)
def test_upstream_statuses_map_to_our_errors(
    tok: GGUFTokenizer, qwen_path: Path, settings: Settings, status: int, error: type[Exception], text: str
) -> None:
    server = FakeVLLM(tok)
    m = remote(server, settings, tokenizer=qwen_path)
    server.failures = [status]
    with pytest.raises(error) as exc:
        m.complete("def f():\n    ", "", sampling=GREEDY)
    assert text in str(exc.value) and len(server.bodies) == 1


def test_down_upstream_is_a_clear_upstream_error(qwen_path: Path, settings: Settings) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(
        UpstreamError, match=r"is not answering .*Connection refused.*start it or check --base-url"
    ):
        remote(down, settings)  # no local tokenizer: the upstream must answer to tokenize
    m = remote(down, settings, tokenizer=qwen_path)  # with one, the model loads; requests fail
    with pytest.raises(UpstreamError, match="is not answering"):
        m.complete("def f():\n    ", "", sampling=GREEDY)


def test_cancel_between_events_closes_the_upstream_stream(
    tok: GGUFTokenizer, qwen_path: Path, settings: Settings
) -> None:
    server = FakeVLLM(tok, pieces=tuple(f" t{i}" for i in range(50)))
    m = remote(server, settings, tokenizer=qwen_path)
    cancel = threading.Event()
    stream = m.engine.stream(DecodeRequest(tokens=tok.tokenize("x = 1"), max_tokens=50, cancel=cancel))
    assert next(stream) == b" t0"
    cancel.set()
    assert list(stream) == []
    assert stream.stats.finish == "cancelled" and stream.stats.n_generated == 1
    assert m.engine.counters.aborted_streams == 1 and m.engine.counters.last_abort_at is not None
    assert m.engine.counters.active_sequences == 0


def test_family_from_served_names() -> None:
    assert family_from_name("google/codegemma-7b-it") == "codegemma"
    assert family_from_name("Qwen/Qwen2.5-Coder-7B") == "qwen2.5-coder"
    assert family_from_name("/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") == "qwen2.5-coder"
    assert family_from_name("google/gemma-2-2b") == "gemma"
    assert family_from_name("meta-llama/Llama-3-8B") == "unknown"


def test_resolve_remote_model_names(qwen_path: Path) -> None:
    up = upstream_settings(base_url=BASE)
    spec, s = resolve_remote_model([str(qwen_path)], up)
    assert s.tokenizer == qwen_path and s.model is None and spec.alias == qwen_path.stem
    spec, s = resolve_remote_model(["cg=google/codegemma-7b"], up)
    assert (spec.alias, s.model, str(spec.path), s.tokenizer) == (
        "cg",
        "google/codegemma-7b",
        "google/codegemma-7b",
        None,
    )
    spec, _ = resolve_remote_model([], up, discovered="/m/qwen2.5-coder-0.5b.gguf")
    assert spec.alias == "qwen2.5-coder-0.5b"
    assert resolve_remote_model([], up)[0].alias == "remote"
    with pytest.raises(SettingsError):
        resolve_remote_model(["a.gguf", "b.gguf"], up)
    with pytest.raises(SettingsError, match="not found"):
        resolve_remote_model(["/nonexistent/x.gguf"], up)
    with pytest.raises(SettingsError, match="not an http"):
        upstream_settings(base_url="vllm:8000")


class _Shim:
    """Just enough of an Engine for Vocab."""

    def __init__(self, t: GGUFTokenizer) -> None:
        self.info = t.info
        self.tokenize = t.tokenize
        self.piece = t.piece


def test_probe_and_listing_info_when_the_upstream_is_down() -> None:
    from cgstudio.engine.remote.engine import model_info_for, probe_upstream

    down = upstream_settings(base_url="http://127.0.0.1:9", family="codegemma")
    ids, status = probe_upstream(down, timeout_s=2)
    assert ids == [] and status.startswith("not answering") and "503" in status
    info = model_info_for(down, timeout_s=2)  # the registry's listing: the family from --family
    assert info.name == "remote" and info.architecture == "gemma" and "<|fim_prefix|>" in info.special_tokens


def test_hf_tokenizer_json(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")  # optional dependency: only where it is installed
    from cgstudio.engine.remote.tokenizer import HFTokenizer

    vocab = {"<unk>": 0, "def": 1, "f": 2, "<": 3, "|": 4}
    hf = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    hf.add_special_tokens(["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>"])
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    t = HFTokenizer(path, "qwen2.5-coder", "m")
    fim = t.info.special_tokens["<|fim_prefix|>"]
    assert t.tokenize("<|fim_prefix|>def", parse_special=True) == [fim, 1]
    assert fim not in t.tokenize("<|fim_prefix|>def", parse_special=False)
    assert t.piece(fim, special=True) == b"<|fim_prefix|>" and t.piece(fim) == b""
