"""The bench's 'peer' section (``--peer llama-server=PATH``): what it sends and what it records.

The peer here is tests/bench/fake_llama_server.py, which logs every request; cgstudio's side is a
real ``cgstudio serve`` subprocess on the synthetic CodeGemma GGUF. The real llama-server
comparison is a figure in BENCHMARKS.md (``make peer``), not a test: timings are not asserted.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import psutil
import pytest

from cgstudio.bench import traces
from cgstudio.bench.context import BenchContext, Plan
from cgstudio.bench.sections import peer
from cgstudio.cli.main import main
from cgstudio.core.settings import LoadProfile
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

FAKE = Path(__file__).with_name("fake_llama_server.py")
FAKE_TOKENS = ["a", "b", "c"]  # what fake_llama_server.py streams for every answer


def test_the_peer_section_needs_a_peer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--sections", "peer", "--report", ""]) == 2
    assert "needs --peer llama-server=PATH" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ollama=/bin/true", "takes llama-server=PATH"),
        ("llama-server=", "takes llama-server=PATH"),
        ("llama-server=/no/such/llama-server", "is not a file"),
    ],
)
def test_a_bad_peer_is_a_clear_error(spec: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--peer", spec, "--sections", "peer", "--report", ""]) == 2
    assert message in capsys.readouterr().err


def test_without_a_peer_the_section_says_it_skipped(tmp_path: Path) -> None:
    bc = BenchContext(tmp_path / "m.gguf", LoadProfile(), Plan.make(quick=True), progress=lambda _: None)
    peer.run(bc)
    assert "skipped" in bc.results["peer"] and not bc.ratios


@pytest.mark.slow
def test_every_trace_step_goes_to_both_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "peer.jsonl"
    monkeypatch.setenv("FAKE_PEER_LOG", str(log))
    model = write_codegemma_gguf(tmp_path / "codegemma-2b.gguf")
    bc = BenchContext(
        model,
        LoadProfile(n_ctx=2048),
        Plan.make(quick=True),
        progress=lambda _: None,
        log_dir=tmp_path / "logs",
        peer=binary,
    )
    peer.run(bc)

    sent = [json.loads(line) for line in log.read_text().splitlines()]
    # The peer runs with the profile's flash attention (off), not its own default (auto: on).
    assert [s["body"] for s in sent if s["path"] == "argv"] == [{"flash_attn": "off"}]
    infill = [s["body"] for s in sent if s["path"] == "/infill"]
    # Every step, in order. A ghost step accepts the first line of the peer's own last answer
    # (the fake streams "abc"), so the ghost trace's later prefixes hold it.
    answer = "".join(FAKE_TOKENS)
    want = []
    for t in traces.typing_traces(quick=True):
        accepted: list[tuple[int, str]] = []
        for i, st in enumerate(t.steps):
            if st.kind == "ghost":
                accepted.append((len(st.prefix), answer if i > 1 else ""))
            step = traces.with_accepted(st, accepted)
            want.append((step.prefix, step.suffix))
    assert any(st.kind == "ghost" for t in traces.typing_traces(quick=True) for st in t.steps)
    assert [(b["input_prefix"], b["input_suffix"]) for b in infill] == want
    assert all(b["n_predict"] == peer.KEY_TOKENS and b["temperature"] == 0 and b["stream"] for b in infill)
    streams = [s for s in sent if s["path"] == "/v1/completions"]
    trials = max(2, bc.plan.trials // 2)
    assert len(streams) == peer.SLOTS * trials
    assert len({s["body"]["prompt"] for s in streams}) == len(streams)  # cold prompts, none shared

    n_traces = len(traces.typing_traces(quick=True))
    assert bc.ratios["keystroke_p95_vs_llama_server"].value.n == n_traces
    assert bc.ratios["concurrency_4_vs_llama_server"].value.n == trials
    rows = bc.results["peer"]["keystroke"]
    assert [r["trace"] for r in rows] == list(traces.TRACE_NAMES)
    assert all(r["cgstudio_ttft_s"]["n"] == r["llama_server_ttft_s"]["n"] == r["keystrokes"] for r in rows)
    # What each server evaluated a keystroke, from its last chunk's timings.prompt_n.
    assert all(r["llama_server_tokens_evaluated"] == [7] * r["keystrokes"] for r in rows)
    ours = [n for r in rows for n in r["cgstudio_tokens_evaluated"]]
    assert len(ours) == sum(r["keystrokes"] for r in rows) and all(n >= 0 for n in ours) and any(ours)


@pytest.mark.slow
def test_a_terminated_bench_stops_the_servers_it_started(tmp_path: Path) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "peer.jsonl"
    model = write_codegemma_gguf(tmp_path / "codegemma-2b.gguf")
    cmd = [sys.executable, "-m", "cgstudio.cli.main", "bench", "-m", str(model), "--quick"]
    cmd += ["--sections", "peer", "--peer", f"llama-server={binary}", "--report", str(tmp_path / "B.md")]
    bench = psutil.Popen(cmd, env={**os.environ, "FAKE_PEER_LOG": str(log)}, cwd=tmp_path)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and log.read_text()):  # both servers are up and answering
            assert bench.poll() is None and time.monotonic() < deadline, "the bench never reached the peer"
            time.sleep(0.2)
        children = bench.children(recursive=True)
        assert len(children) >= 2
        bench.terminate()
        bench.wait(timeout=60)
        _gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        for p in [bench, *children]:  # whatever the outcome, nothing is left running
            if p.is_running():
                p.kill()
