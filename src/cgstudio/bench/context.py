"""What every bench section shares: the plan, the context it writes into, and small helpers.

Every comparison interleaves its two sides trial by trial (A B A B ...), on the same model and
load parameters, and reports the median ratio with its min-max spread.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cgstudio.bench.stats import Ratio, ratio, summarize
from cgstudio.core.settings import LoadProfile, Settings, load_settings
from cgstudio.engine.llamacpp import LlamaCppEngine
from cgstudio.session.model import CodeModel

TARGETS = {
    "decode_vs_raw_llama_cpp": 0.97,
    "decode_default_vs_raw_llama_cpp": 0.98,  # the default load profile (speculation "auto")
    "http_stream_vs_raw_llama_cpp": 0.95,
    "http_stream_vs_llama_cpp_server": 1.0,
    "keystroke_ttft_speedup": 50.0,
    "keystroke_agreement_vs_cold": 1.0,
    "keystroke_bare_vs_context_ttft": 0.83,  # a keystroke with repository context costs <= 1.2x
    "keystroke_p95_over_decode_step": 2.0,  # on the traces where exact reuse applies; lower is better
    "keystroke_p95_over_decode_step_no_suffix": 2.0,  # typing at the end of a file; lower is better
    "typed_ahead_hit_ms_p50": 5.0,  # milliseconds; lower is better
    "fim_p95_with_chat_over_without": 1.5,  # a keystroke beside a streaming chat; lower is better
    "concurrency_4_vs_1_throughput": 2.5,
    "speculation_speedup": 1.5,
    "remote_stream_vs_upstream": 0.95,
    "keystroke_p95_vs_llama_server": 1.0,  # their p95 over ours: no slower than llama-server
    "concurrency_4_vs_llama_server": 0.95,
}
# Targets that are ceilings: the figure meets its target at or below it.
LOWER_IS_BETTER = frozenset(
    {
        "keystroke_p95_over_decode_step",
        "keystroke_p95_over_decode_step_no_suffix",
        "typed_ahead_hit_ms_p50",
        "fim_p95_with_chat_over_without",
    }
)
GREEDY = {"temperature": 0.0}


@dataclass
class Plan:
    quick: bool
    trials: int
    tg_tokens: int
    pp_tokens: int
    ttft_lengths: list[int]
    concurrency: list[int]
    conc_tokens: int
    spec_tokens: int
    http_trials: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 2, 48, 256, [128, 512], [1, 4], 24, 96, 2)
        return cls(False, 5, 128, 512, [128, 512, 1024, 2048], [1, 2, 4, 8], 64, 256, 4)


@dataclass(frozen=True)
class Upstream:
    """The OpenAI-compatible server the 'remote' section puts cgstudio in front of."""

    base_url: str
    tokenizer: Path | None = None  # the model's GGUF, for cgstudio's tokenizer; None: the upstream's
    api_key: str | None = None


@dataclass
class BenchContext:
    path: Path
    profile: LoadProfile
    plan: Plan
    progress: Callable[[str], None]
    log_dir: Path = Path("bench-logs")  # the servers' logs (sections 'http' and 'remote')
    upstream: Upstream | None = None  # only the 'remote' section needs one
    peer: Path | None = None  # llama.cpp's llama-server binary, for the 'peer' section
    results: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, Ratio] = field(default_factory=dict)

    def record_ratio(self, key: str, numer: list[float], denom: list[float]) -> None:
        """The median ratio of paired trials, with its spread, against the key's target."""
        self.ratios[key] = Ratio(key, ratio(numer, denom), TARGETS.get(key), key in LOWER_IS_BETTER)

    def record_values(self, key: str, values: list[float]) -> None:
        """A figure reported like a ratio but not one of paired trials (e.g. a share per trace)."""
        self.ratios[key] = Ratio(key, summarize(values), TARGETS.get(key), key in LOWER_IS_BETTER)


def open_model(path: Path, profile: LoadProfile, **update: Any) -> CodeModel:
    """A model on llama.cpp with ``profile`` (fields in ``update`` replaced)."""
    settings: Settings = load_settings({"load": profile.model_copy(update=update).model_dump()})
    return CodeModel(LlamaCppEngine(path, settings.load), settings, path.stem)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
