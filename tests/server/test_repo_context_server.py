"""Repository context through the server: /v1/prompt lists it, /v1/completions uses it and
reports its tokens; without --workspace nothing from disk is read."""

from __future__ import annotations

from pathlib import Path

import httpx

PREFIX = "from pkg.util import helper\n\ndef run():\n    return "
SUFFIX = "\n"


def make_ws(root: Path) -> Path:
    for rel, text in {
        "pkg/__init__.py": "",
        "pkg/base.py": "class Base:\n    pass\n",
        "pkg/util.py": "from pkg.base import Base\n\ndef helper():\n    return Base()\n",
        "pkg/app.py": PREFIX + "helper()\n",
        "tests/test_app.py": "from pkg.app import run\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_server_shows_and_uses_repository_context(
    live_server, synthetic: dict[str, Path], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ws = make_ws(tmp_path / "ws")
    body = {"prompt": PREFIX, "suffix": SUFFIX, "filepath": str(ws / "pkg/app.py"), "max_tokens": 2}
    with live_server({"cg-pt": synthetic["cg-pt"]}, workspaces=[ws]) as live:
        shown = httpx.post(f"{live.url}/v1/prompt", json=body, timeout=60).json()
        done = httpx.post(
            f"{live.url}/v1/completions",
            json={**body, "context_files": [{"filename": "/etc/passwd", "text": "GIVEN = 1\n"}]},
            timeout=60,
        ).json()
    assert [(c["path"], c["reason"]) for c in shown["context"]] == [
        ("pkg/base.py", "import"),
        ("pkg/util.py", "import"),
        ("tests/test_app.py", "test"),
    ]
    assert all(c["tokens"] > 0 for c in shown["context"])
    assert "pkg/base.py\nclass Base" in shown["prompt_text"]
    assert done["timings"]["context_tokens"] > 0
    with live_server({"cg-pt": synthetic["cg-pt"]}) as live:
        bare = httpx.post(f"{live.url}/v1/prompt", json=body, timeout=60).json()
    assert bare["context"] == [] and "class Base" not in bare["prompt_text"]
