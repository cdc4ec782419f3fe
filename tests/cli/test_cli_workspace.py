"""``cgstudio complete --workspace``: the dry run lists the repository context; without the flag
nothing from disk is added."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_complete_dry_run_lists_the_context(codegemma_paths: dict[str, Path], tmp_path: Path) -> None:
    ws = tmp_path / "proj"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "shapes.py").write_text("class Square:\n    def area(self):\n        return 4\n")
    (ws / "pkg" / "main.py").write_text("from pkg.shapes import Square\n\nSquare().<CURSOR>\n")
    model = str(codegemma_paths["control"])
    args = ["complete", "-m", model, "--file", "main.py", "--dry-run", "--json"]
    with_ws = cli(*args, "--workspace", str(ws), cwd=ws / "pkg")  # --file relative to here
    assert with_ws.returncode == 0, with_ws.stderr
    doc = json.loads(with_ws.stdout)
    assert [(c["path"], c["reason"]) for c in doc["context"]] == [("pkg/shapes.py", "import")]
    assert doc["prompt_text"].startswith("<bos>pkg/shapes.py\nclass Square:")
    assert "<|file_separator|>pkg/main.py\n<|fim_prefix|>" in doc["prompt_text"]
    bare = cli(*args, cwd=ws / "pkg")
    assert bare.returncode == 0, bare.stderr
    doc = json.loads(bare.stdout)
    assert doc["context"] == [] and "class Square" not in doc["prompt_text"]
    missing = cli(*args, "--workspace", str(tmp_path / "nope"), cwd=ws / "pkg")
    assert missing.returncode == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr
