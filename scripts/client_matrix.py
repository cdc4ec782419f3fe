"""Client matrix: replay the request shapes of real editor clients against ``cgstudio serve``.

    .venv/bin/python scripts/client_matrix.py                    # starts a server on the demo Qwen model
    .venv/bin/python scripts/client_matrix.py --url http://127.0.0.1:11435
    .venv/bin/python scripts/client_matrix.py --model synthetic  # tiny random models: shapes only
    .venv/bin/python scripts/client_matrix.py --markdown         # the compatibility table for docs/server.md
    .venv/bin/python scripts/client_matrix.py --only llama.vim --only Tabby

Each scenario is one request exactly as a client builds it, read from the client's own source
(the repository, file and commit are printed next to it): the endpoint, the body fields, the
client-rendered FIM template where the client renders one, and the way the client reads the
answer (SSE, NDJSON or JSON, and which fields). Only two things are ours: every token budget is
``--max-tokens`` (clients ask for 56 to 4096; the matrix bounds its run time), and the model
name is the one the client's documented configuration would send (``default``, a served alias,
or a placeholder such as minuet's ``PLACEHOLDER``).

A scenario passes when all its checks hold:

- **status**: the HTTP status the client needs (2xx);
- **shape**: the body or stream parses the way the client parses it (every SSE event of Tabby's
  llama.cpp backend must carry ``content`` and ``stop``, Ollama streams end with ``done``, ...);
- **text**: a completion is not empty (a pre-warm's must be, and generates nothing);
- **no leak**: no control-token markup of any common family in the text;
- **finish**: a finish reason the dialect defines, the budget honoured where the answer counts
  tokens, and for FIM a completion that is code, not chat prose ("Here's ...").

With ``--model synthetic`` the models are random: the text checks are skipped (status and shape
still hold every request to the client's format). The exit status is 0 when every scenario
passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cgstudio.testing.subprocess_server import ServeProcess, ServerStartError

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\n\nprint(add(1, 2))\n"
QUESTION = "Write a Python function that returns the square of a number."
EDIT_CONTEXT = "def square(x):\n    return x * x\n"
FIM_QWEN = f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>"
FIM_STARCODER = f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>"
EMBED_ALIAS = "embed"

# Markup that must never reach an editor: the control tokens of the common code-model families.
LEAK_MARKERS = (
    "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|file_sep|>",
    "<|repo_name|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fim_prefix>", "<fim_suffix>",
    "<fim_middle>", "<file_sep>", "<|file_separator|>", "<start_of_turn>", "<end_of_turn>",
    "<eos>", "<bos>", "<PRE>", "<SUF>", "<MID>", "<EOT>", "<\uff5cfim\u2581", "<tool_call>",
)  # fmt: skip
CHAT_PROSE = ("Here", "Sure", "Certainly", "This code", "The code", "```")
FINISH = {
    "openai": {"stop", "length", "tool_calls"},
    "ollama": {"stop", "length", "load", "unload"},
    "llamacpp": {"eos", "word", "limit"},
}


class ShapeError(Exception):
    """The answer does not have the shape the client reads."""


def _json(r: httpx.Response) -> Any:
    r.read()
    return r.json()


@dataclass(frozen=True)
class Source:
    repo: str
    path: str
    commit: str

    def cite(self) -> str:
        return f"{self.repo} {self.path} @ {self.commit[:7]}"


# The clients' sources, at the commits the shapes were read from.
CONTINUE = "continuedev/continue", "d0a3c0b626b5bebc3bef4742eec05a0242be0bab"
LLAMA_VIM = "ggml-org/llama.vim", "a1c8e6e40cb45df59b78add5b65d575386832465"
LLAMA_VSCODE = "ggml-org/llama.vscode", "3938fb3568b98e3ddfcf2ce3dd52d9570552b579"
TWINNY = "twinnydotdev/twinny", "193d14c0db4645d6483a38926fc997f9d07fe9ff"
TABBY = "TabbyML/tabby", "21b29048d7bcf6b94f9f482f2d0fd05efadfd19f"
MINUET = "milanglacier/minuet-ai.nvim", "479487c34041f53aad3184597428e42d9f3333b5"
LLM_LS = "huggingface/llm-ls", "1c52b94f30fa8293741d8b68c7fa48074b7f6589"


def src(repo_commit: tuple[str, str], path: str) -> Source:
    return Source(repo_commit[0], path, repo_commit[1])


@dataclass
class Outcome:
    """What the client would show: the text, the finish reason and the token count it reads."""

    text: str = ""
    finish: str | None = None
    n_tokens: int | None = None
    notes: list[str] = field(default_factory=list)


Reader = Callable[[httpx.Response], Outcome]


@dataclass(frozen=True)
class Scenario:
    client: str
    name: str
    source: Source
    path: str
    body: dict[str, Any] | None
    read: Reader
    kind: str  # fim | chat | prewarm | embed | meta
    dialect: str = "openai"
    needs: str = ""  # the issue 14 section this shape depends on, if any
    method: str = "POST"
    budget: int | None = None
    reads_finish: bool = True  # False where the client asks for fields without one (response_fields)

    @property
    def id(self) -> str:
        return f"{self.client} / {self.name}"


# -- readers: how each client reads the answer ---------------------------------------------------
def _sse_events(r: httpx.Response) -> Iterator[Any]:
    if not r.headers.get("content-type", "").startswith("text/event-stream"):
        raise ShapeError(f"content-type {r.headers.get('content-type')!r}, not text/event-stream")
    done = False
    for line in r.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        event = json.loads(data)
        if isinstance(event, dict) and "error" in event:
            raise ShapeError(f"error event: {event['error']}")
        yield event
    if not done and "v1" in str(r.request.url):
        raise ShapeError("the stream did not end with data: [DONE]")


def read_openai_sse(field_path: str) -> Reader:
    """OpenAI SSE: choices[0].text (completions) or choices[0].delta.content (chat, FIM API)."""

    def read(r: httpx.Response) -> Outcome:
        out = Outcome()
        for event in _sse_events(r):
            choices = event.get("choices")
            if not isinstance(choices, list):
                raise ShapeError(f"event without choices: {event}")
            if not choices:  # the include_usage chunk
                continue
            choice = choices[0]
            piece = choice.get("delta", {}).get("content") if field_path == "delta" else choice.get("text")
            if piece is not None and not isinstance(piece, str):
                raise ShapeError(f"{field_path} is {piece!r}")
            out.text += piece or ""
            if field_path == "delta" and choice.get("delta", {}).get("tool_calls"):
                out.notes.append("tool_calls")
            out.finish = choice.get("finish_reason") or out.finish
            if event.get("usage"):
                out.n_tokens = event["usage"].get("completion_tokens")
        return out

    return read


def read_openai_json(field_path: str) -> Reader:
    def read(r: httpx.Response) -> Outcome:
        body = _json(r)
        choice = body["choices"][0]
        text = choice["message"].get("content") if field_path == "message" else choice["text"]
        if choice.get("message", {}).get("tool_calls"):
            return Outcome(text or "", choice.get("finish_reason"), notes=["tool_calls"])
        if not isinstance(text, str):
            raise ShapeError(f"choices[0].{field_path} is {text!r}")
        return Outcome(text, choice.get("finish_reason"), body.get("usage", {}).get("completion_tokens"))

    return read


def read_llamacpp_sse(r: httpx.Response) -> Outcome:
    """llama.cpp /completion SSE, as Tabby's serde struct reads it: every event has content and stop."""
    out = Outcome()
    for event in _sse_events(r):
        if not isinstance(event.get("content"), str) or not isinstance(event.get("stop"), bool):
            raise ShapeError(f"event without content (str) and stop (bool): {str(event)[:120]}")
        out.text += event["content"]
        if event["stop"]:
            out.finish = event.get("stop_type")
            out.n_tokens = event.get("tokens_predicted")
    return out


def read_infill_json(r: httpx.Response) -> Outcome:
    """llama.vim / llama.vscode: {content} (or with n_cmpl, a list of them)."""
    body = _json(r)
    items = body if isinstance(body, list) else [body]
    if not items or not all(isinstance(i, dict) and isinstance(i.get("content"), str) for i in items):
        raise ShapeError(f"no content: {str(body)[:120]}")
    out = Outcome(items[0]["content"], items[0].get("stop_type"), items[0].get("tokens_predicted"))
    if "timings/predicted_n" in items[0]:  # response_fields flattens the paths, as llama-server does
        out.n_tokens = items[0]["timings/predicted_n"]
    if isinstance(body, list):
        out.notes.append(f"{len({i['content'] for i in items})} distinct of {len(items)}")
    return out


def read_prewarm(r: httpx.Response) -> Outcome:
    """A pre-warm's answer is not read (llama.vim asks for no field: ``response_fields: [""]``)."""
    body = _json(r)
    if not isinstance(body, dict):
        raise ShapeError(f"not a JSON object: {str(body)[:120]}")
    return Outcome(body.get("content") or "", body.get("stop_type"), body.get("tokens_predicted"))


def read_infill_fields(wanted: list[str]) -> Reader:
    """llama.vim asks for response_fields and reads them by their flattened names."""

    def read(r: httpx.Response) -> Outcome:
        out = read_infill_json(r)
        body = _json(r)
        missing = [f for f in wanted if f not in body]
        if missing:
            raise ShapeError(f"response_fields missing: {missing}")
        return out

    return read


def read_ollama_ndjson(key: str) -> Reader:
    """Ollama NDJSON: "response" (generate) or "message.content" (chat); the last line has done."""

    def read(r: httpx.Response) -> Outcome:
        out = Outcome()
        last: dict[str, Any] = {}
        for line in r.iter_lines():
            if not line.strip():
                continue
            last = json.loads(line)
            if "error" in last:
                raise ShapeError(f"error line: {last['error']}")
            piece = last["message"].get("content", "") if key == "message" else last.get("response")
            if not isinstance(piece, str):
                raise ShapeError(f"{key} is {piece!r}")
            out.text += piece
            if key == "message" and last["message"].get("tool_calls"):
                out.notes.append("tool_calls")
        if not last.get("done"):
            raise ShapeError("the stream did not end with done: true")
        out.finish, out.n_tokens = last.get("done_reason"), last.get("eval_count")
        return out

    return read


def read_ollama_json(r: httpx.Response) -> Outcome:
    body = _json(r)
    if not isinstance(body.get("response"), str) or not body.get("done"):
        raise ShapeError(f"no response/done: {str(body)[:120]}")
    return Outcome(body["response"], body.get("done_reason"), body.get("eval_count"))


def read_show(r: httpx.Response) -> Outcome:
    """Continue's Ollama provider: FIM if the template mentions .Suffix; num_ctx/stop from parameters."""
    body = _json(r)
    if ".Suffix" not in body.get("template", ""):
        raise ShapeError("template has no .Suffix: Continue would render FIM templates itself")
    return Outcome("template with .Suffix", "stop")


def read_embeddings(path: str) -> Reader:
    def read(r: httpx.Response) -> Outcome:
        body = _json(r)
        vector = body["data"][0]["embedding"] if path == "data" else body[path][0]
        if not vector or not all(isinstance(x, float) for x in vector):
            raise ShapeError("no float vector")
        return Outcome(f"{len(vector)} floats", "stop")

    return read


# -- the scenarios -------------------------------------------------------------------------------
def scenarios(n: int) -> list[Scenario]:
    """Every client shape, with ``n`` as each request's token budget."""
    continue_stops = ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<|endoftext|>",
                      "</fim_middle>", "</code>", "/src/", "#- coding: utf-8", "```"]  # fmt: skip
    qwen_stops = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                  "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>", "/src/",
                  "#- coding: utf-8", "```"]  # fmt: skip
    chat = [{"role": "system", "content": "You are a helpful coding assistant."},
            {"role": "user", "content": QUESTION}]  # fmt: skip
    tool = {"type": "function", "function": {
        "name": "read_file", "description": "Read a file in the workspace",
        "parameters": {"type": "object", "properties": {"filepath": {"type": "string"}},
                       "required": ["filepath"]}}}  # fmt: skip
    chatml = (f"<|im_start|>system\n{chat[0]['content']}<|im_end|>\n"
              f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n")  # fmt: skip
    extra = [{"text": "def sub(a, b):\n    return a - b\n", "time": 1, "filename": "util.py"}]
    vim_fields = ["content", "timings/prompt_n", "timings/prompt_ms", "timings/prompt_per_token_ms",
                  "timings/prompt_per_second", "timings/predicted_n", "timings/predicted_ms",
                  "timings/predicted_per_token_ms", "timings/predicted_per_second", "truncated",
                  "tokens_cached"]  # fmt: skip
    c_ollama, c_openai = src(CONTINUE, "core/llm/llms/Ollama.ts"), src(CONTINUE, "core/llm/llms/OpenAI.ts")
    c_llamacpp = src(CONTINUE, "core/llm/llms/LlamaCpp.ts")
    vim, vsc = src(LLAMA_VIM, "autoload/llama.vim"), src(LLAMA_VSCODE, "src/llama-server.ts")
    tw_fim = src(TWINNY, "src/extension/provider-options.ts")
    tabby_http = "crates/http-api-bindings/src/completion/"
    minuet_base = src(MINUET, "lua/minuet/backends/openai_base.lua")
    llm_ls = src(LLM_LS, "crates/llm-ls/src/backend.rs")
    S = Scenario
    return [
        # Continue: Ollama provider (autocomplete via /api/show + suffix, chat, agent mode, indexing)
        S("Continue (Ollama)", "FIM detection", c_ollama, "/api/show", {"name": "default"}, read_show,
          "meta", "ollama"),
        S("Continue (Ollama)", "autocomplete", c_ollama, "/api/generate",
          {"model": "default", "prompt": PREFIX, "suffix": SUFFIX,
           "options": {"temperature": 0.01, "num_predict": n, "stop": continue_stops, "num_ctx": 8192},
           "keep_alive": 1800, "stream": True}, read_ollama_ndjson("response"), "fim", "ollama", budget=n),
        S("Continue (Ollama)", "chat", c_ollama, "/api/chat",
          {"model": "default", "messages": chat, "options": {"num_predict": n, "num_ctx": 8192},
           "keep_alive": 1800, "stream": True}, read_ollama_ndjson("message"), "chat", "ollama", budget=n),
        S("Continue (Ollama)", "agent mode (tools)", c_ollama, "/api/chat",
          {"model": "default", "messages": chat, "options": {"num_predict": n, "num_ctx": 8192},
           "keep_alive": 1800, "stream": True, "tools": [tool]}, read_ollama_ndjson("message"), "chat",
          "ollama", "§1 tools", budget=n),
        S("Continue (Ollama)", "indexing embeddings", c_ollama, "/api/embed",
          {"model": EMBED_ALIAS, "input": ["def add(a, b):", "return a + b"]},
          read_embeddings("embeddings"), "embed", "ollama"),
        # Continue: OpenAI provider (no FIM API: renders the template chosen by model name, raw)
        S("Continue (OpenAI)", "autocomplete, StarCoder template for 'default'", c_openai,
          "/v1/completions",
          {"model": "default", "prompt": FIM_STARCODER, "max_tokens": n, "temperature": 0.01,
           "stop": continue_stops[:4], "stream": True}, read_openai_sse("text"), "fim",
          needs="§2 foreign FIM", budget=n),
        S("Continue (OpenAI)", "chat", c_openai, "/v1/chat/completions",
          {"model": "default", "messages": chat, "max_tokens": n, "stream": True,
           "stream_options": {"include_usage": True}}, read_openai_sse("delta"), "chat", budget=n),
        S("Continue (OpenAI)", "agent mode (tools)", c_openai, "/v1/chat/completions",
          {"model": "default", "messages": chat, "max_tokens": n, "stream": True, "tools": [tool],
           "parallel_tool_calls": False, "stream_options": {"include_usage": True}},
          read_openai_sse("delta"), "chat", needs="§1 tools", budget=n),
        # Continue: LM Studio provider (OpenAI's code; the model name is LM Studio's id)
        S("Continue (LM Studio)", "autocomplete, Qwen template", c_openai, "/v1/completions",
          {"model": "qwen2.5-coder-0.5b-instruct", "prompt": FIM_QWEN, "max_tokens": n,
           "temperature": 0.01, "stop": qwen_stops, "stream": True}, read_openai_sse("text"), "fim",
          needs="§3 model names", budget=n),
        S("Continue (LM Studio)", "chat", c_openai, "/v1/chat/completions",
          {"model": "qwen2.5-coder-0.5b-instruct", "messages": chat, "max_tokens": n, "stream": True},
          read_openai_sse("delta"), "chat", needs="§3 model names", budget=n),
        # Continue: llama.cpp provider (/completion; templates rendered by Continue)
        S("Continue (llama.cpp)", "autocomplete, Qwen template", c_llamacpp, "/completion",
          {"model": "qwen2.5-coder", "prompt": FIM_QWEN, "stream": True, "n_predict": n,
           "stop": qwen_stops, "temperature": 0.01}, read_llamacpp_sse, "fim", "llamacpp",
          "§3 model names", budget=n),
        S("Continue (llama.cpp)", "chat, ChatML rendered by Continue", c_llamacpp, "/completion",
          {"model": "qwen2.5-coder", "prompt": chatml, "stream": True, "n_predict": n,
           "stop": ["<|im_start|>", "<|im_end|>"]}, read_llamacpp_sse, "chat", "llamacpp",
          "§3 model names", budget=n),
        # llama.vim: /infill (the model key is always sent: `len("g:llama_config.model_fim")`)
        S("llama.vim", "FIM", vim, "/infill",
          {"id_slot": 0, "input_prefix": "def add(a, b):\n", "input_suffix": SUFFIX, "input_extra": extra,
           "prompt": "    return ", "n_predict": n, "stop": [], "n_indent": 4, "top_k": 40, "top_p": 0.90,
           "samplers": ["top_k", "top_p", "infill"], "stream": False, "cache_prompt": True,
           "t_max_prompt_ms": 500, "t_max_predict_ms": 1000, "response_fields": vim_fields,
           "model": ""}, read_infill_fields(vim_fields), "fim", "llamacpp", budget=n, reads_finish=False),
        S("llama.vim", "ring-buffer pre-warm (n_predict 0)", vim, "/infill",
          {"id_slot": 0, "input_prefix": "", "input_suffix": "", "input_extra": extra, "prompt": "",
           "n_predict": 0, "temperature": 0.0, "samplers": [], "stream": False, "cache_prompt": True,
           "t_max_prompt_ms": 1, "t_max_predict_ms": 1, "response_fields": [""], "model": ""},
          read_prewarm, "prewarm", "llamacpp"),
        S("llama.vim", "instruct warm-up (n_predict 0)", vim, "/v1/chat/completions",
          {"id_slot": 0, "messages": [{"role": "system", "content": "You are a text-editing assistant."},
                                      {"role": "user", "content": ""}],
           "samplers": [], "n_predict": 0, "stream": False, "cache_prompt": True, "response_fields": [""]},
          read_openai_json("message"), "prewarm", needs="§4 n_predict"),
        S("llama.vim", "instruct", vim, "/v1/chat/completions",
          {"id_slot": 1, "messages": chat, "min_p": 0.1, "temperature": 0.1,
           "samplers": ["min_p", "temperature"], "stream": True, "cache_prompt": True, "max_tokens": n},
          read_openai_sse("delta"), "chat", budget=n),
        # llama.vscode
        S("llama.vscode", "FIM, 3 suggestions (n_cmpl)", vsc, "/infill",
          {"id_slot": 0, "input_prefix": "def add(a, b):\n", "input_suffix": SUFFIX, "input_extra": extra,
           "prompt": "    return ", "n_predict": n, "n_cmpl": 3, "top_k": 40, "top_p": 0.99, "stream": False,
           "samplers": ["top_k", "top_p", "infill"], "cache_prompt": True, "n_indent": 4,
           "t_max_prompt_ms": 500, "t_max_predict_ms": 2500}, read_infill_json, "fim", "llamacpp",
          "§5 n>1", budget=n),
        S("llama.vscode", "FIM pre-warm (n_predict 0)", vsc, "/infill",
          {"id_slot": 0, "input_prefix": "", "input_suffix": "", "input_extra": extra, "prompt": "",
           "n_predict": 0, "samplers": [], "cache_prompt": True, "t_max_prompt_ms": 500,
           "t_max_predict_ms": 1}, read_prewarm, "prewarm", "llamacpp"),
        S("llama.vscode", "chat", vsc, "/v1/chat/completions",
          {"messages": [{"role": "system", "content": "You are an expert coder."},
                        {"role": "user", "content": QUESTION}],
           "stream": False, "temperature": 0.8, "max_tokens": n}, read_openai_json("message"), "chat",
          budget=n),
        S("llama.vscode", "edit with context", vsc, "/v1/chat/completions",
          {"messages": [{"role": "system", "content": "You are an expert coder.\n" + EDIT_CONTEXT},
                        {"role": "user", "content": "Add type hints to square."}],
           "stream": False, "cache_prompt": True, "temperature": 0.8, "top_p": 0.95, "max_tokens": n},
          read_openai_json("message"), "chat", budget=n),
        S("llama.vscode", "embeddings", vsc, "/v1/embeddings",
          {"input": "def add(a, b):", "model": EMBED_ALIAS, "encoding_format": "float"},
          read_embeddings("data"), "embed"),
        # Twinny: the FIM template is rendered by Twinny (codeqwen), sent as the prompt
        S("Twinny (Ollama)", "FIM, rendered template without raw", tw_fim, "/api/generate",
          {"model": "default", "prompt": FIM_QWEN, "stream": True, "keep_alive": "5m",
           "options": {"temperature": 0.2, "num_predict": n}}, read_ollama_ndjson("response"), "fim",
          "ollama", "§2 foreign FIM", budget=n),
        S("Twinny (llama.cpp)", "FIM with max_tokens", tw_fim, "/completion",
          {"prompt": FIM_QWEN, "stream": True, "temperature": 0.2, "max_tokens": n}, read_llamacpp_sse,
          "fim", "llamacpp", "§5 max_tokens", budget=n),
        S("Twinny (LM Studio)", "FIM", tw_fim, "/v1/completions",
          {"model": "default", "prompt": FIM_QWEN, "stream": True, "temperature": 0.2, "max_tokens": n},
          read_openai_sse("text"), "fim", budget=n),
        S("Twinny", "chat", src(TWINNY, "src/extension/chat.ts"), "/v1/chat/completions",
          {"model": "default", "messages": chat, "stream": True, "temperature": 0.2, "max_tokens": n},
          read_openai_sse("delta"), "chat", budget=n),
        S("Twinny", "embeddings", src(TWINNY, "src/extension/embeddings.ts"), "/api/embed",
          {"model": EMBED_ALIAS, "input": "def add(a, b):"}, read_embeddings("embeddings"), "embed",
          "ollama"),
        # Tabby's HTTP backends (seed: milliseconds since the epoch, as tabby-inference sets it)
        S("Tabby (llama.cpp/completion)", "FIM", src(TABBY, tabby_http + "llama.rs"),
          "/completion",
          {"seed": int(time.time() * 1000), "prompt": FIM_QWEN, "n_predict": n, "temperature": 0.1,
           "stream": True, "penalty_last_n": 0, "presence_penalty": 0.0}, read_llamacpp_sse, "fim",
          "llamacpp", budget=n),
        S("Tabby (openai/completion)", "FIM via suffix",
          src(TABBY, tabby_http + "openai.rs"), "/v1/completions",
          {"model": "default", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": n, "temperature": 0.1,
           "stream": True, "presence_penalty": 0.0}, read_openai_sse("text"), "fim", budget=n),
        S("Tabby (ollama/completion)", "model check", src(TABBY, "crates/ollama-api-bindings/src/model.rs"),
          "/api/show", {"name": "default"}, read_show, "meta", "ollama"),
        S("Tabby (ollama/completion)", "FIM, template {{ .Prompt }}",
          src(TABBY, "crates/ollama-api-bindings/src/completion.rs"), "/api/generate",
          {"model": "default", "prompt": FIM_QWEN, "template": "{{ .Prompt }}", "stream": True,
           "options": {"num_predict": n, "seed": (int(time.time() * 1000) & 0xFFFFFFFF) - (1 << 31),
                       "repeat_last_n": 0, "temperature": 0.1}}, read_ollama_ndjson("response"), "fim",
          "ollama", "§5 template", budget=n),
        S("Tabby (mistral/completion)", "FIM API", src(TABBY, tabby_http + "mistral.rs"),
          "/v1/fim/completions",
          {"prompt": PREFIX, "suffix": SUFFIX, "model": "default", "temperature": 0.1, "max_tokens": n,
           "stream": True, "random_seed": int(time.time() * 1000)}, read_openai_sse("delta"), "fim",
          needs="§4 /v1/fim/completions", budget=n),
        S("Tabby (openai/chat)", "chat", src(TABBY, "crates/http-api-bindings/src/chat/mod.rs"),
          "/v1/chat/completions",
          {"model": "default", "messages": chat, "stream": True, "max_tokens": n, "temperature": 0.1},
          read_openai_sse("delta"), "chat", budget=n),
        # minuet-ai.nvim: openai_fim_compatible
        S("minuet-ai.nvim (llama.cpp recipe)", "FIM, model PLACEHOLDER", src(MINUET, "recipes.md"),
          "/v1/completions",
          {"model": "PLACEHOLDER", "stream": True, "max_tokens": n, "top_p": 0.9, "prompt": FIM_QWEN},
          read_openai_sse("text"), "fim", needs="§3 model names", budget=n),
        S("minuet-ai.nvim (Ollama recipe)", "FIM via suffix", minuet_base,
          "/v1/completions",
          {"model": "default", "stream": True, "max_tokens": n, "top_p": 0.9,
           "prompt": "# language: python\n# indentation: use 4 spaces for a tab\n" + PREFIX,
           "suffix": SUFFIX}, read_openai_sse("text"), "fim", budget=n),
        S("minuet-ai.nvim (openai_compatible)", "chat-based completion",
          minuet_base, "/v1/chat/completions",
          {"model": "default", "stream": True, "max_tokens": n,
           "messages": [{"role": "system", "content": "You are the backend of an AI-powered code "
                         "completion engine. Complete the code at <cursorPosition>."},
                        {"role": "user", "content": f"<contextAfterCursor>\n{SUFFIX}\n<contextBeforeCursor>\n"
                                                    f"{PREFIX}<cursorPosition>"}]},
          read_openai_sse("delta"), "chat", budget=n),
        # llm-ls (llm.nvim, llm-vscode): prompts rendered with the configured FIM tokens, stream false
        S("llm-ls (ollama)", "FIM, rendered template without raw", llm_ls,
          "/api/generate",
          {"prompt": FIM_QWEN, "model": "default", "stream": False,
           "options": {"temperature": 0.2, "top_p": 0.95, "num_predict": n}}, read_ollama_json, "fim",
          "ollama", "§2 foreign FIM", budget=n),
        S("llm-ls (openai)", "FIM, rendered template", llm_ls,
          "/v1/completions",
          {"prompt": FIM_QWEN, "model": "default", "stream": False, "temperature": 0.2, "top_p": 0.95,
           "max_tokens": n}, read_openai_json("text"), "fim", budget=n),
        S("llm-ls (llamacpp)", "FIM, model name as typed", llm_ls,
          "/v1/completions",
          {"prompt": FIM_QWEN, "model": "codellama", "stream": False, "temperature": 0.2,
           "max_tokens": n}, read_openai_json("text"), "fim", needs="§3 model names", budget=n),
    ]  # fmt: skip


# -- running and checking ------------------------------------------------------------------------
@dataclass
class Result:
    scenario: Scenario
    status: int | None = None
    failed: list[str] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def check(s: Scenario, out: Outcome, *, text_checks: bool) -> list[str]:
    failed = []
    if s.kind in ("fim", "chat") and text_checks and not out.text.strip() and "tool_calls" not in out.notes:
        failed.append("text: empty completion")
    if s.kind == "prewarm" and out.text:
        failed.append(f"text: a pre-warm generated {out.text[:30]!r}")
    if s.kind == "prewarm" and out.n_tokens:
        failed.append(f"text: a pre-warm generated {out.n_tokens} tokens")
    leaked = [m for m in LEAK_MARKERS if m in out.text]
    if leaked:
        failed.append(f"leak: {leaked}")
    if s.kind in ("fim", "chat") and s.reads_finish and out.finish not in FINISH[s.dialect]:
        failed.append(f"finish: {out.finish!r} is not one of {sorted(FINISH[s.dialect])}")
    if s.budget is not None and out.n_tokens is not None and out.n_tokens > s.budget:
        failed.append(f"finish: {out.n_tokens} tokens for a budget of {s.budget}")
    if s.kind == "fim" and text_checks and out.text.lstrip().startswith(CHAT_PROSE):
        failed.append(f"finish: chat prose, not code: {out.text[:40]!r}")
    return failed


def run_one(client: httpx.Client, s: Scenario, *, text_checks: bool) -> Result:
    res = Result(s)
    t0 = time.perf_counter()
    try:
        with client.stream(s.method, s.path, json=s.body) as r:
            res.status = r.status_code
            if not 200 <= r.status_code < 300:
                r.read()
                res.failed.append(f"status: {r.status_code} {_error_message(r)}")
                return res
            res.outcome = s.read(r)
    except (ShapeError, KeyError, TypeError, IndexError, ValueError) as exc:
        res.failed.append(f"shape: {type(exc).__name__}: {exc}")
        return res
    except httpx.HTTPError as exc:
        res.failed.append(f"transport: {type(exc).__name__}: {exc}")
        return res
    finally:
        res.seconds = time.perf_counter() - t0
    res.failed += check(s, res.outcome, text_checks=text_checks)
    return res


def _error_message(r: httpx.Response) -> str:
    try:
        err = r.json().get("error")
    except ValueError:
        return r.text[:160]
    return str(err.get("message") if isinstance(err, dict) else err)[:160]


def line(res: Result) -> str:
    s, out = res.scenario, res.outcome
    verdict = "PASS" if res.ok else "FAIL"
    detail = "; ".join(res.failed) if res.failed else f"{out.text[:40]!r} finish={out.finish}"
    notes = f" [{', '.join(out.notes)}]" if out.notes else ""
    needs = f" (needs {s.needs})" if s.needs and not res.ok else ""
    return (f"{verdict} {s.id}: {s.method} {s.path} -> {res.status} {res.seconds:.1f}s {detail}{notes}{needs}"
            f"\n     source: {s.source.cite()}")  # fmt: skip


def markdown(results: list[Result], model: str) -> str:
    rows = [
        f"Measured with `scripts/client_matrix.py` on {model}: "
        f"**{sum(r.ok for r in results)} of {len(results)}** scenarios pass.",
        "",
        "| Client | Scenario | Endpoint | Result | Shape read from |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        s = r.scenario
        verdict = "pass" if r.ok else "**fail**: " + "; ".join(r.failed).replace("|", "\\|")[:120]
        if s.needs and not r.ok:
            verdict += f" (needs {s.needs})"
        rows.append(
            f"| {s.client} | {s.name} | `{s.path}` | {verdict} | `{s.source.path}` @ {s.source.commit[:7]} |"
        )
    repos = dict.fromkeys((r.scenario.source.repo, r.scenario.source.commit) for r in results)
    rows += ["", "Sources: " + ", ".join(f"{repo} @ `{commit}`" for repo, commit in repos) + "."]
    return "\n".join(rows)


# -- the server ----------------------------------------------------------------------------------
def start_server(models: list[str], workdir: Path, extra: list[str]) -> ServeProcess:
    """``cgstudio serve`` in a subprocess on a free loopback port, with a synthetic embedding model."""
    from cgstudio.testing.synthetic_embedding import write_bert_embedding_gguf

    embed = write_bert_embedding_gguf(workdir / "tiny-embed.gguf")
    args = [*models, "--embedding-model", f"{EMBED_ALIAS}={embed}", "--keep-alive", "-1",
            "--log-level", "warning", *extra]  # fmt: skip
    try:
        return ServeProcess(args, log=workdir / "server.log", start_timeout_s=300).start()
    except ServerStartError as exc:
        raise SystemExit(str(exc)) from exc


def model_args(model: str, workdir: Path) -> tuple[list[str], str]:
    """``-m`` arguments and a description: the demo Qwen model, a path, or 'synthetic'."""
    if model == "synthetic":
        from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

        pt = write_codegemma_gguf(workdir / "codegemma-2b-synthetic.gguf")
        it = write_codegemma_gguf(workdir / "codegemma-7b-it-synthetic.gguf", name="codegemma-7b-it")
        return ["-m", f"cg-pt={pt}", "-m", f"cg-it={it}"], "two tiny synthetic CodeGemma models"
    if model == "demo":
        from cgstudio.store.demo import ensure

        path = ensure("qwen2.5-coder-0.5b")
        return ["-m", str(path)], f"Qwen2.5-Coder-0.5B-Instruct Q4_K_M (`{path.name}`)"
    return ["-m", model], f"`{Path(model).name}`"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running server (default: start one)")
    p.add_argument("--model", default="demo", help="GGUF path, 'demo' (Qwen2.5-Coder-0.5B) or 'synthetic'")
    p.add_argument("--max-tokens", type=int, default=48, help="every scenario's token budget [48]")
    p.add_argument("--only", action="append", default=[], help="clients whose name contains this")
    p.add_argument("--markdown", action="store_true", help="also print the compatibility table")
    p.add_argument("--server-arg", action="append", default=[], help="extra `cgstudio serve` argument")
    p.add_argument("--timeout", type=float, default=300, help="seconds per request [300]")
    args = p.parse_args(argv)
    text_checks = args.model != "synthetic"
    chosen = [s for s in scenarios(args.max_tokens) if not args.only or any(o in s.client for o in args.only)]
    with tempfile.TemporaryDirectory(prefix="client-matrix-") as tmp:
        server, description = None, args.url or "the server at --url"
        if not args.url:
            models, description = model_args(args.model, Path(tmp))
            server = start_server(models, Path(tmp), ["-c", "4096", *args.server_arg])
        url = args.url or (server.url if server else "")
        try:
            with httpx.Client(base_url=url, timeout=args.timeout) as client:
                results = []
                for s in chosen:
                    results.append(run_one(client, s, text_checks=text_checks))
                    print(line(results[-1]), flush=True)
        finally:
            if server:
                server.stop()
    passed = sum(r.ok for r in results)
    print(f"\n{passed} of {len(results)} scenarios passed ({len(results) - passed} failed) on {description}")
    if args.markdown:
        print("\n" + markdown(results, description))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
