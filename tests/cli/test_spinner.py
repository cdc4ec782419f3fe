"""The transient status line: on a terminal's stderr only, erased before output, never on stdout."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from cgstudio.cli.spinner import ERASE, Spinner


def test_spinner_draws_then_erases_its_line() -> None:
    out = io.StringIO()
    s = Spinner(out, enabled=True, interval_s=60)
    s.show("Loading qwen…")
    s.show("evaluating prompt (1,948 tokens)…")
    s.stop()
    s.stop()
    text = out.getvalue()
    assert "Loading qwen… 0.0 s" in text and "evaluating prompt (1,948 tokens)… 0.0 s" in text
    assert text.endswith(ERASE) and text.count(ERASE) == 3  # two draws, one erase


def test_spinner_is_silent_when_stderr_is_not_a_terminal() -> None:
    out = io.StringIO()  # isatty() is False
    s = Spinner(out)
    s.show("Loading qwen…")
    s.stop()
    assert out.getvalue() == ""


def test_json_stdout_is_untouched_when_stderr_is_a_terminal(codegemma_paths: dict[str, Path]) -> None:
    master, slave = pty.openpty()
    args = ["complete", "-m", str(codegemma_paths["control"]), "--prefix", "def f():\n", "-n", "4", "--json"]
    try:
        r = subprocess.run(
            [sys.executable, "-m", "cgstudio.cli.main", *args],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            timeout=120,
        )
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(master)
    assert r.returncode == 0
    assert json.loads(r.stdout)["usage"]["completion_tokens"] <= 4  # stdout is the document alone
    assert "Loading codegemma-2b-control…" in err.decode() and "evaluating prompt (" in err.decode()
