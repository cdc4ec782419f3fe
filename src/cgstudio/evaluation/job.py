"""One ``eval run`` end to end: the cache key, the run, and the summary the report is written from."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cgstudio.evaluation.backends import Backend
from cgstudio.evaluation.cache import (
    PROTOCOL_VERSION,
    CompletionCache,
    default_cache_dir,
    settings_fingerprint,
)
from cgstudio.evaluation.datasets import Task
from cgstudio.evaluation.paper import paper_model
from cgstudio.evaluation.protocol import EVAL_GUARDS, choose_style, key_settings, sampling_for
from cgstudio.evaluation.records import SampleRecord
from cgstudio.evaluation.report import summary_doc
from cgstudio.evaluation.runner import ProgressSink, run_eval
from cgstudio.evaluation.sandbox import Limits, containment, isolation_mode


@dataclass
class EvalJob:
    """One ``eval run``: its tasks and settings. ``progress(label)`` makes the progress display;
    ``note(text)`` tells the user something (the CLI: a line on stderr)."""

    task: str
    tasks: list[Task]
    temperature: float
    samples: int
    seed: int | None
    workers: int
    timeout_s: float
    parallel: int
    progress: Callable[[str], ProgressSink]
    note: Callable[[str], None]

    def _base_settings(self) -> dict[str, Any]:
        return {
            "protocol_version": PROTOCOL_VERSION,
            "workers": self.workers,
            "timeout_s": self.timeout_s,
            "parallel": self.parallel,
        }

    def canonical(self, selection: dict[str, Any]) -> tuple[dict[str, Any], list[SampleRecord]]:
        result = run_eval(
            self.task,
            self.tasks,
            None,
            workers=self.workers,
            limits=Limits(self.timeout_s),
            progress=self.progress(f"{self.task} canonical"),
        )
        summary = summary_doc(
            result,
            model="canonical",
            model_info={"name": "canonical"},
            paper_model=None,
            settings=self._base_settings(),
            selection=selection,
            extra=environment(self.timeout_s),
        )
        return summary, result.records

    def with_model(
        self,
        backend: Backend,
        completion_style: str,
        cache_dir: Path | None,
        cached_only: bool,
        selection: dict[str, Any],
    ) -> tuple[dict[str, Any], list[SampleRecord]]:
        style_choice = "fim-completion" if completion_style == "fim" else "plain"
        style = choose_style(self.task, backend.variant, backend.fim_capable, style_choice)
        key_doc = key_settings(self.task, style, self.temperature, self.seed, backend.cache_settings())
        key = settings_fingerprint(key_doc)
        cache = CompletionCache(cache_dir or default_cache_dir(), backend.fingerprint, key, self.task)
        info = backend.describe()
        cache.write_meta({"model": info, "settings": key_doc})
        self.note(
            f"{self.task}: {len(self.tasks)} tasks x {self.samples} sample(s), {backend.name} "
            f"({backend.variant}, style {style}); cache {cache.path}"
        )
        t0 = time.perf_counter()
        try:
            result = run_eval(
                self.task,
                self.tasks,
                backend,
                style=style,
                temperature=self.temperature,
                samples=self.samples,
                seed=self.seed,
                workers=self.workers,
                parallel=self.parallel,
                cache=cache,
                cached_only=cached_only,
                limits=Limits(self.timeout_s),
                progress=self.progress(f"{self.task} {backend.name}"),
            )
        except KeyboardInterrupt:
            self.note(
                f"interrupted after {time.perf_counter() - t0:.0f} s: every finished completion is "
                f"cached in {cache.path}; run the same command again to resume"
            )
            raise
        file_name = Path(str(info.get("path") or info["name"])).name
        name_for_paper = f"{info.get('general_name') or ''} {file_name}"
        paper_key = paper_model(name_for_paper, backend.variant)
        settings = {
            **self._base_settings(),
            "style": style,
            "sampling": sampling_for(style, self.temperature, self.seed, 0),
            "samples": self.samples,
            "seed": self.seed,
            "guards": getattr(backend, "guards", EVAL_GUARDS),
            "backend": backend.cache_settings(),
            "cache_key": key,
            "cache_file": str(cache.path),
        }
        summary = summary_doc(
            result,
            model=backend.name,
            model_info={**info, "paper_model": paper_key},
            paper_model=paper_key,
            settings=settings,
            selection=selection,
            extra=environment(self.timeout_s),
        )
        return summary, result.records


def environment(timeout_s: float) -> dict[str, Any]:
    """What the report records about where the tests ran: isolation, containment, versions."""
    mode = isolation_mode()
    try:
        version = importlib.metadata.version("cgstudio")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    return {
        "isolation": mode,
        # What bounded the tests (file system, user, memory total, processes) and how it is weaker
        # than root-drop with a cgroup, if it is.
        "containment": containment(mode, Limits(timeout_s)),
        "cgstudio_version": version,
        "machine": machine,
    }
