"""Turn a --model value into a GGUF path.

Order: the configured default when none is given (else the default demo model), a demo alias,
an existing file, a store alias (``cgstudio models list``; ``codegemma-2b`` also finds the only
``codegemma-2b:<quant>``), then an existing directory (reported by the loader).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cgstudio.core.errors import ModelNotFoundError
from cgstudio.store import demo


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
            demo.ensure(d.key),
            d.key,
            notice=f"no model configured: using {d.description}. "
            "Pass --model PATH.gguf or set CGSTUDIO_MODEL.",
        )
    if spec in demo.DEMO_MODELS:
        d = demo.DEMO_MODELS[spec]
        return ResolvedModel(demo.ensure(spec), spec, notice=f"using {d.description}")
    path = Path(spec).expanduser()
    if path.is_file():
        return ResolvedModel(path, path.stem)
    stored = _from_store(spec)
    if stored is not None:
        return stored
    if path.exists():
        return ResolvedModel(path, path.stem)
    # Imported here: the store loads llama_cpp (through its GGUF inspection), which resolving a
    # file path or a demo alias must not (start-up time of every CLI command and the server).
    from cgstudio.store.store import ModelStore

    aliases = [m.alias for m in ModelStore().list()]
    store_hint = f"; in the store: {', '.join(aliases)}" if aliases else ""
    raise ModelNotFoundError(
        f"model {spec!r} is neither a file nor a known alias "
        f"(demo: {', '.join(demo.DEMO_MODELS)}{store_hint}); "
        "pass the path of a .gguf file, `cgstudio models add PATH`, or `cgstudio pull NAME`"
    )


def _from_store(spec: str) -> ResolvedModel | None:
    if "/" in spec or "\\" in spec or spec.endswith(".gguf"):
        return None  # a path, not an alias
    # Imported here: see resolve() (the store loads llama_cpp).
    from cgstudio.store.store import ModelStore

    entry = ModelStore().find(spec)
    if entry is None:
        return None
    if not entry.exists():
        raise ModelNotFoundError(
            f"store alias {entry.alias!r} points to {entry.path}, which no longer exists; "
            f"`cgstudio models rm {entry.alias}`, then add or pull it again"
        )
    return ResolvedModel(Path(entry.path), entry.alias)
