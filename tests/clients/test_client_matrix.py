"""scripts/client_matrix.py: every client shape against a real server on the synthetic models.

The script starts ``cgstudio serve`` on two tiny synthetic CodeGemma GGUFs and an embedding GGUF
(seconds), so a change that breaks any editor's request or response shape fails here. The
synthetic models are random, so only the status, shape, leak, finish and budget checks apply;
the text checks run on the real model (docs/server.md, "Clients").
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def matrix() -> ModuleType:
    spec = importlib.util.spec_from_file_location("client_matrix", REPO / "scripts" / "client_matrix.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["client_matrix"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_scenario_passes_on_the_synthetic_models(
    matrix: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = matrix.main(["--model", "synthetic", "--max-tokens", "8", "--markdown"])
    out = capsys.readouterr().out
    n = len(matrix.scenarios(8))
    assert f"{n} of {n} scenarios passed" in out, out
    assert rc == 0
    assert out.count("\nPASS ") + out.startswith("PASS ") == n
    table = out.split("| Client |", 1)[1]
    assert table.count("| pass |") == n


def test_every_scenario_cites_a_client_source_at_a_commit(matrix: ModuleType) -> None:
    scenarios = matrix.scenarios(16)
    clients = {s.client.split(" (")[0] for s in scenarios}
    assert {"Continue", "llama.vim", "llama.vscode", "Twinny", "Tabby", "minuet-ai.nvim", "llm-ls"} <= clients
    for s in scenarios:
        assert re.fullmatch(r"[0-9a-f]{40}", s.source.commit), s.id
        assert s.source.path and "/" in s.source.repo


def _sse(*events: str, ctype: str = "text/event-stream") -> httpx.Response:
    body = "".join(f"data: {e}\n\n" for e in events)
    return httpx.Response(
        200, headers={"content-type": ctype}, content=body.encode(),
        request=httpx.Request("POST", "http://127.0.0.1/completion"),
    )  # fmt: skip


def test_the_checks_can_fail(matrix: ModuleType) -> None:
    """The matrix is only as good as its checks: each catches what it names."""
    read = matrix.read_llamacpp_sse
    ok = read(
        _sse('{"content": "a + b", "stop": false}', '{"content": "", "stop": true, "stop_type": "eos"}')
    )
    assert (ok.text, ok.finish) == ("a + b", "eos")
    with pytest.raises(matrix.ShapeError, match="content"):  # Tabby's serde struct needs both fields
        read(_sse('{"content": "a + b"}'))
    with pytest.raises(matrix.ShapeError, match="event-stream"):
        read(_sse('{"content": "x", "stop": true}', ctype="application/json"))
    fim = next(s for s in matrix.scenarios(8) if s.kind == "fim" and s.dialect == "openai")
    Outcome = matrix.Outcome
    assert matrix.check(fim, Outcome("a + b", "stop", 3), text_checks=True) == []
    assert matrix.check(fim, Outcome("", "stop"), text_checks=True) == ["text: empty completion"]
    assert matrix.check(fim, Outcome("a<|fim_middle|>", "stop"), text_checks=True)[0].startswith("leak")
    assert matrix.check(fim, Outcome("a", "eos"), text_checks=True)[0].startswith("finish")
    assert matrix.check(fim, Outcome("a", "length", 9), text_checks=True)[0].startswith("finish: 9 tokens")
    assert "chat prose" in matrix.check(fim, Outcome("Here's the output", "stop"), text_checks=True)[0]
    warm = next(s for s in matrix.scenarios(8) if s.kind == "prewarm")
    assert matrix.check(warm, Outcome("x", "limit", 1), text_checks=False)
