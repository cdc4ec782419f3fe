"""The bench's section registry, its runner and its subprocess helper: fast, no model needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cgstudio.bench import sections, suite
from cgstudio.bench.context import BenchContext, Plan
from cgstudio.cli import bench as cli_bench
from cgstudio.cli.main import main
from cgstudio.core.settings import LoadProfile
from cgstudio.testing.subprocess_server import free_port, server_process


def _context(tmp_path: Path) -> BenchContext:
    return BenchContext(tmp_path / "m.gguf", LoadProfile(), Plan.make(quick=True), progress=lambda _: None)


def test_every_name_the_cli_accepts_maps_to_a_section() -> None:
    assert list(sections.SECTIONS) == list(cli_bench.KNOWN)
    for name in cli_bench.KNOWN:
        assert callable(sections.SECTIONS[name]), name
    assert [n for n, _ in sections.select(cli_bench.SECTIONS)] == list(cli_bench.SECTIONS)


def test_an_unknown_section_is_a_clear_error() -> None:
    with pytest.raises(sections.UnknownSectionError) as exc:
        sections.select(["decode", "tffd", "nope"])
    message = str(exc.value)
    assert "unknown bench sections ['tffd', 'nope']" in message
    assert "known: decode, ttft, keystroke, concurrency, speculation, http, priority, remote" in message


def test_the_cli_rejects_an_unknown_section_before_loading_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "--sections", "decode,tffd", "--report", ""]) == 2
    assert "unknown bench sections ['tffd']" in capsys.readouterr().err


def test_the_runner_runs_the_chosen_sections_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def fake(name: str) -> sections.Section:
        def run(bc: BenchContext) -> None:
            calls.append(name)
            bc.results[name] = {"ok": True}
            bc.record_ratio(f"{name}_ratio", [2.0, 4.0], [1.0, 2.0])

        return run

    for name in sections.SECTIONS:
        monkeypatch.setitem(sections.SECTIONS, name, fake(name))
    bc = _context(tmp_path)
    events: list[str] = []
    suite.run_sections(
        bc,
        ["ttft", "decode"],
        on_start=lambda n: events.append(f"start {n}"),
        on_done=lambda n: events.append(f"done {n}"),
    )
    assert calls == ["ttft", "decode"]
    assert events == ["start ttft", "done ttft", "start decode", "done decode"]
    with pytest.raises(sections.UnknownSectionError):
        suite.run_sections(bc, ["decode", "bogus"])
    assert calls == ["ttft", "decode"]  # nothing ran: names are checked first

    bc.results["raw_tg_samples"] = [1.0]
    doc = suite.document(bc, model="m", quick=True, machine={"cpu": "x"}, wall_s=1.5)
    assert set(doc["results"]) == {"ttft", "decode"}
    assert doc["ratios"]["ttft_ratio"]["median"] == pytest.approx(2.0)
    assert doc["profile"] == "defaults" and doc["quick"] is True and doc["peak_rss_mib"] > 0


def test_the_remote_section_needs_an_upstream(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--base-url"):
        sections.SECTIONS["remote"](_context(tmp_path))


def test_server_process_waits_for_health_and_stops_the_server(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(tmp_path)]
    log = tmp_path / "logs" / "server.log"
    with server_process(cmd, f"http://127.0.0.1:{port}/", log) as proc:
        assert proc.poll() is None
    assert proc.returncode is not None
    assert log.exists()


def test_server_process_reports_a_server_that_exits_early(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; print('bad flag', flush=True); sys.exit(3)"]
    log = tmp_path / "server.log"
    with (
        pytest.raises(RuntimeError, match="exited with code 3"),
        server_process(cmd, f"http://127.0.0.1:{free_port()}/", log),
    ):
        pytest.fail("the body must not run")
    assert "bad flag" in log.read_text()
