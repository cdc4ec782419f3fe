"""Continue's own FIM client against /v1/fim/completions: ``@continuedev/openai-adapters``' fimStream.

The package is installed from npm into pytest's cache (once; about 100 MB, some 10 s). Without node/npm, or
when the npm registry cannot be reached, the test is skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from server_testing import API_KEY, Live

PACKAGE = "@continuedev/openai-adapters@1.37.0"
FIM = {"prompt": "def add(a, b):\n    return ", "suffix": "\n\nprint(add(1, 2))\n"}

# fimStream posts to new URL("fim/completions", apiBase) and yields the chunks that have
# choices; Continue's core reads each one with fromChatCompletionChunk: choices[0].delta.content.
SCRIPT = """
import { constructLlmApi } from "@continuedev/openai-adapters";
const [apiBase, apiKey, provider, PROMPT, SUFFIX] = process.argv.slice(2);
// requestOptions.extraBodyProperties is Continue's config for extra body fields: a seed here.
const requestOptions = { extraBodyProperties: { random_seed: 7 } };
const api = constructLlmApi({ provider, apiBase, apiKey, requestOptions });
const body = {
  model: "PLACEHOLDER", prompt: PROMPT, suffix: SUFFIX, max_tokens: 6, temperature: 1.0, stream: true,
};
const out = { text: "", chunks: 0, models: [], warnings: [] };
for await (const chunk of api.fimStream(body, new AbortController().signal)) {
  out.chunks += 1;
  out.models.push(chunk.model);
  out.text += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.warnings) out.warnings.push(...chunk.warnings.map((w) => w.code));
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def adapters(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("SKIPPED LOUDLY: node/npm are not installed; Continue's fimStream was not run")
    cache = getattr(pytestconfig, "cache", None)  # None under -p no:cacheprovider: install afresh
    root = Path(str(cache.mkdir("npm-openai-adapters"))) if cache else tmp_path_factory.mktemp("npm")
    if not (root / "node_modules" / "@continuedev" / "openai-adapters").is_dir():
        proc = subprocess.run(
            ["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", "--loglevel=error", PACKAGE],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            pytest.skip(f"SKIPPED LOUDLY: npm could not install {PACKAGE}: {proc.stderr.strip()[-400:]}")
    (root / "fim.mjs").write_text(SCRIPT)
    return root


@pytest.mark.parametrize("provider", ["openai", "llama.cpp", "mistral"])
def test_continue_fim_stream(adapters: Path, live: Live, provider: str) -> None:
    proc = subprocess.run(
        [
            "node",
            str(adapters / "fim.mjs"),
            live.url + "/v1/",
            API_KEY,
            provider,
            FIM["prompt"],
            FIM["suffix"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=adapters,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    reference = httpx.post(
        live.url + "/v1/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={**FIM, "model": "cg-pt", "max_tokens": 6, "temperature": 1.0, "seed": 7},
        timeout=60,
    ).json()["choices"][0]["text"]
    assert reference  # the precondition: there is text to compare
    assert out["text"] == reference  # Continue reads our chunks; the same FIM path as /v1/completions
    assert set(out["models"]) == {"cg-pt"}  # the placeholder name went to the FIM model
    assert "model_substituted" in out["warnings"]
