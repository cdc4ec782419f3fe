"""Load values llama.cpp asserts on are refused or adjusted before it sees them (issue 12, item 2).

A GGML_ASSERT kills the process (SIGABRT, exit 134 from a shell), so each case runs in a
subprocess: the test fails on an abort, not only on a wrong answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cgstudio.core.errors import SettingsError
from cgstudio.core.settings import LoadProfile, load_settings

SIGABRT_RCS = (134, -6)


def _python(code: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize("batch", ["1", "4"])
def test_complete_with_a_batch_below_the_draft_rows_does_not_abort(
    codegemma_paths: dict[str, Path], batch: str
) -> None:
    # Was rc 134: the scheduler sized its batch max(n_batch, n_parallel * 9) > the context's n_batch.
    r = _cli(
        "complete",
        "-m",
        str(codegemma_paths["control"]),
        "--prefix",
        "def f(",
        "--max-tokens",
        "4",
        "--batch-size",
        batch,
        "--temp",
        "0",
        "--json",
    )
    assert r.returncode not in SIGABRT_RCS, r.stderr[-2000:]
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["usage"]["prompt_tokens"] > int(batch)  # the prompt went in chunks


def test_parallel_speculation_with_a_tiny_batch_stays_within_n_batch(
    codegemma_paths: dict[str, Path],
) -> None:
    # Four sequences, speculation on, n_batch 1 (raised to 4: a row per sequence) and 6: drafts
    # must shrink to the rows left, prompts split into chunks of the batch.
    code = f"""
        import threading
        from cgstudio.core.engine import DecodeRequest, SamplerConfig
        from cgstudio.engine.llamacpp import LlamaCppEngine
        from cgstudio.core.settings import LoadProfile

        for n_batch in (1, 6):
            eng = LlamaCppEngine({str(codegemma_paths["control"])!r},
                                 LoadProfile(n_ctx=256, n_batch=n_batch, n_parallel=4, speculative="on"))
            assert eng._context.n_batch == max(n_batch, 4), eng._context.n_batch  # a row per sequence
            prompt = eng.tokenize("a b a b a b a b a b a b a b a b x = 1\\nx = 1\\nx = 1\\n")
            outs = {{}}
            def run(i):
                req = DecodeRequest(tokens=prompt, max_tokens=24, sampler=SamplerConfig(temperature=0.0))
                outs[i] = list(eng.stream(req))
            threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
            for t in threads: t.start()
            for t in threads: t.join()
            assert len(outs) == 4 and all(outs.values()), outs
            assert eng.counters.decode_calls > 0
            eng.close()
        print("ok")
    """
    r = _python(code)
    assert r.returncode not in SIGABRT_RCS, r.stderr[-2000:]
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_a_batch_below_n_parallel_is_raised_with_a_log_line(codegemma_paths: dict[str, Path]) -> None:
    code = f"""
        from cgstudio.engine.llamacpp import LlamaCppEngine
        from cgstudio.core.settings import LoadProfile
        for shift in (False, True):
            profile = LoadProfile(n_ctx=64, n_batch=2, n_parallel=3, kv_shift_reuse=shift)
            eng = LlamaCppEngine({str(codegemma_paths["control"])!r}, profile)
            print("n_batch", eng._context.n_batch, "unified", eng._context.unified)
            eng.close()
    """
    r = _python(code)
    assert r.returncode == 0, r.stderr[-2000:]
    # A KV stream per slot; shifted reuse keeps one unified pool and a scratch sequence.
    assert "n_batch 3 unified False" in r.stdout and "n_batch 4 unified True" in r.stdout
    assert "--batch-size 2 is below the 3 the engine needs (one per sequence of --parallel 3): " in r.stderr
    assert "below the 4 the engine needs (one per sequence of --parallel 3, plus a scratch" in r.stderr


def test_quantized_k_cache_that_does_not_tile_the_heads_is_a_settings_error(
    codegemma_paths: dict[str, Path],
) -> None:
    # The synthetic model's heads have 16 values; q8_0 blocks hold 32.
    r = _cli(
        "complete",
        "-m",
        str(codegemma_paths["control"]),
        "--prefix",
        "x",
        "-n",
        "2",
        "--cache-type-k",
        "q8_0",
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "--cache-type-k q8_0 stores blocks of 32" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("load", "needle"),
    [
        ({"n_threads": 513}, "n_threads"),
        ({"n_threads": 0}, "n_threads"),
        ({"n_batch": 0}, "n_batch"),
        ({"n_ctx": 8}, "n_ctx"),
        ({"n_parallel": 65}, "n_parallel"),
        ({"n_gpu_layers": -2}, "n_gpu_layers"),
        ({"n_gpu_layers": 10**9}, "n_gpu_layers"),
        ({"rope_freq_base": "inf"}, "rope_freq_base"),
        ({"rope_freq_base": "nan"}, "rope_freq_base"),
        ({"rope_freq_scale": 1e30}, "rope_freq_scale"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"cache_type_k": "q3_k"}, "cache_type_k"),
    ],
)
def test_load_values_out_of_llama_cpp_range_are_settings_errors(load: dict[str, object], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        load_settings({"load": load})


def test_in_range_values_still_load() -> None:
    p = LoadProfile(n_threads=512, n_batch=1, rope_freq_base=1e6, rope_freq_scale=0.5, n_gpu_layers=999)
    assert (p.n_threads, p.n_batch, p.n_gpu_layers) == (512, 1, 999)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_a_small_batch_and_a_reload_to_n_batch_1_keeps_serving(
    codegemma_paths: dict[str, Path], tmp_path: Path
) -> None:
    # Was: `serve --batch-size 32` (4 slots: 4 x 9 draft rows > 32) aborted on the first request,
    # and /admin/reload {"load": {"n_batch": 1}} on the next one.
    import time

    import httpx

    port = _free_port()
    args = ["serve", "-m", str(codegemma_paths["control"]), "--batch-size", "32", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cgstudio.cli.main", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        body = {"prompt": "def f(", "max_tokens": 4, "temperature": 0}
        r = httpx.post(url + "/v1/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        r = httpx.post(url + "/admin/reload", json={"load": {"n_batch": 1}}, timeout=120)
        assert r.status_code == 200, r.text
        r = httpx.post(url + "/v1/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        assert proc.poll() is None, log.read_text()[-2000:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
