"""Repository context on Qwen2.5-Coder-0.5B: a method defined only in another file of a workspace
the test writes, with invented names the model cannot know."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from server_testing import LiveFactory

pytestmark = pytest.mark.slow

VAULT = '''class Zorbiq:
    """A vault of quibbets."""

    def __init__(self):
        self.items = []

    def flarnish_quibbets(self, amount):
        """Add ``amount`` quibbets to the vault and return the vault."""
        self.items.append(amount)
        return self
'''
PREFIX = "from ledgerly.vault import Zorbiq\n\n\ndef deposit(amount):\n    vault = Zorbiq()\n    vault."
SUFFIX = "\n    return vault\n"


def workspace(root: Path) -> Path:
    (root / "ledgerly").mkdir(parents=True)
    (root / "ledgerly" / "__init__.py").write_text("")
    (root / "ledgerly" / "vault.py").write_text(VAULT)
    (root / "ledgerly" / "app.py").write_text(PREFIX + "flarnish_quibbets(amount)" + SUFFIX)
    return root


def complete(url: str, filepath: str) -> dict:  # type: ignore[type-arg]
    body = {"prompt": PREFIX, "suffix": SUFFIX, "filepath": filepath, "max_tokens": 24, "temperature": 0}
    return httpx.post(f"{url}/v1/completions", json=body, timeout=300).json()


def test_completion_uses_a_method_from_another_file(
    live_server: LiveFactory, qwen_path: Path, tmp_path: Path
) -> None:
    ws = workspace(tmp_path / "ws")
    path = str(ws / "ledgerly" / "app.py")
    with live_server({"qwen": qwen_path}, n_ctx=2048, workspaces=[ws]) as live:
        shown = httpx.post(
            f"{live.url}/v1/prompt", json={"prompt": PREFIX, "suffix": SUFFIX, "filepath": path}, timeout=300
        ).json()
        with_ctx = complete(live.url, path)
    with live_server({"qwen": qwen_path}, n_ctx=2048) as live:
        without = complete(live.url, path)
    # The prompt holds vault.py in Qwen2.5-Coder's repository format, before the current file.
    assert [(c["path"], c["reason"]) for c in shown["context"]] == [("ledgerly/vault.py", "import")]
    text = shown["prompt_text"]
    assert text.startswith("<|repo_name|>repo\n<|file_sep|>ledgerly/vault.py\nclass Zorbiq:")
    assert text.index("def flarnish_quibbets") < text.index("<|file_sep|>ledgerly/app.py\n<|fim_prefix|>")
    assert with_ctx["timings"]["context_tokens"] > 0
    assert without["timings"]["context_tokens"] == 0
    # The model calls the method it could only have read in the other file; without it, it cannot.
    assert with_ctx["choices"][0]["text"].startswith("flarnish_quibbets("), with_ctx["choices"][0]["text"]
    assert "flarnish_quibbets" not in without["choices"][0]["text"], without["choices"][0]["text"]
