"""Prometheus metrics on a per-app CollectorRegistry (never the global one). Names start ``cgstudio_``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from cgstudio.generation.pipeline import Result

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
TPS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0)


class Metrics:
    """Everything /metrics exports. Updated on the event loop thread only."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "cgstudio_requests",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "cgstudio_prompt_tokens", "Prompt tokens of finished generations.", ["model"], registry=r
        )
        self.completion_tokens = Counter(
            "cgstudio_completion_tokens", "Generated tokens of finished generations.", ["model"], registry=r
        )
        self.generations = Counter(
            "cgstudio_generations",
            "Finished generations by finish reason.",
            ["model", "finish_reason"],
            registry=r,
        )
        self.ttft = Histogram(
            "cgstudio_time_to_first_token_seconds",
            "Time from the start of a generation to its first token.",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tps = Histogram(
            "cgstudio_generation_tokens_per_second",
            "Decode rate of generations with at least 2 tokens.",
            ["model"],
            buckets=TPS_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "cgstudio_queue_depth", "Requests waiting for a generation slot.", registry=r
        )
        self.running = Gauge("cgstudio_requests_running", "Generations running now.", registry=r)
        self.warnings = Counter(
            "cgstudio_guard_warnings", "Guard warnings on results, by code.", ["code"], registry=r
        )
        self.cancelled = Counter(
            "cgstudio_cancellations", "Generations cancelled, by reason.", ["reason"], registry=r
        )
        self.rejected = Counter(
            "cgstudio_overload_rejections",
            "Requests refused with 503 because the queue was full.",
            registry=r,
        )
        # Speculative next completions (server/speculate.py): runs started, runs cancelled (by a
        # real request), and requests answered from a speculated answer.
        self.speculative_started = Counter(
            "cgstudio_speculative_started", "Speculative next completions started.", registry=r
        )
        self.speculative_cancelled = Counter(
            "cgstudio_speculative_cancelled",
            "Speculative next completions cancelled by a real request (nothing kept).",
            registry=r,
        )
        self.speculative_used = Counter(
            "cgstudio_speculative_used",
            "Requests answered from a speculative next completion (timings.source speculative).",
            registry=r,
        )
        self.loaded = Gauge("cgstudio_models_loaded", "Models loaded in memory now.", registry=r)
        self.load_seconds = Histogram(
            "cgstudio_model_load_seconds",
            "Time to load a model.",
            ["model"],
            buckets=(0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0),
            registry=r,
        )

    def observe_result(self, model: str, result: Result) -> None:
        self.prompt_tokens.labels(model).inc(result.usage.prompt_tokens)
        self.completion_tokens.labels(model).inc(result.usage.completion_tokens)
        self.generations.labels(model, result.finish_reason).inc()
        t = result.timings
        if t.time_to_first_token_s is not None:
            self.ttft.labels(model).observe(t.time_to_first_token_s)
        if t.generation_tokens_per_s is not None:
            self.tps.labels(model).observe(t.generation_tokens_per_s)
        for w in result.warnings:
            self.warnings.labels(w.code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
