"""Turn a --model value into a GGUF path: a file path, a demo alias, or the configured default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cgstudio.errors import ModelNotFoundError
from cgstudio.models import demo


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    alias: str
    notice: str | None = None  # said to the user, e.g. "this is a small demo model"


def resolve(spec: str | None, *, configured: str | None = None) -> ResolvedModel:
    spec = spec or configured
    if not spec:
        d = demo.DEMO_MODELS[demo.DEFAULT_DEMO]
        return ResolvedModel(
            demo.ensure(d.key), d.key,
            notice=f"no model configured: using {d.description}. Pass --model PATH.gguf or set CGSTUDIO_MODEL.",
        )
    if spec in demo.DEMO_MODELS:
        d = demo.DEMO_MODELS[spec]
        return ResolvedModel(demo.ensure(spec), spec, notice=f"using {d.description}")
    path = Path(spec).expanduser()
    if path.exists():
        return ResolvedModel(path, path.stem)
    raise ModelNotFoundError(
        f"model {spec!r} is neither a file nor a known alias (known: {', '.join(demo.DEMO_MODELS)}); "
        "pass the path of a .gguf file"
    )
