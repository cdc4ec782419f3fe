"""The local model store: GGUF files addressed by alias, listed in one JSON registry.

Layout (``$CGSTUDIO_HOME`` replaces ``$XDG_DATA_HOME/cgstudio``, default ``~/.local/share/cgstudio``):

    <data dir>/models/registry.json      the registry: {"version": 1, "models": [...]}
    <data dir>/models/hf/<owner>/<repo>/  files downloaded by ``cgstudio pull``
    <data dir>/models/local/              files copied in by ``cgstudio models add --copy``

``models add`` registers an existing file in place by default; such files are never deleted by
``models rm``. Files inside the store (pulled or copied) are "managed" and ``rm`` deletes them.
Whatever the registry says, cgstudio writes and deletes model files only inside the store: a name
that would leave it (an absolute path, ``..``, a backslash, NUL, a symlink out) is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cgstudio.core.errors import ModelError, ModelNotFoundError, UsageError
from cgstudio.engine.llamacpp.gguf_check import validate_model_file
from cgstudio.store.demo import DEMO_MODELS

ALIAS_RE = re.compile(r"^[a-z0-9][a-z0-9._:+-]{0,127}$")
REGISTRY_VERSION = 1


def data_dir() -> Path:
    """``$CGSTUDIO_HOME``, else ``$XDG_DATA_HOME/cgstudio``, else ``~/.local/share/cgstudio``."""
    if home := os.environ.get("CGSTUDIO_HOME"):
        return Path(home).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "cgstudio"


def store_dir() -> Path:
    return data_dir() / "models"


class StoredModel(BaseModel):
    """One registry entry. ``path`` is absolute; ``managed`` files live inside the store."""

    model_config = ConfigDict(extra="ignore")

    alias: str
    path: str
    family: str = "unknown"
    variant: str = "unknown"
    variant_confidence: str = "low"
    architecture: str = "unknown"
    name: str = ""
    quantization: str = "unknown"
    size_bytes: int = 0
    fim: bool = False
    managed: bool = False
    source: str = "local"  # "local", "copy", or "hf://<repo>@<commit>/<file>"
    sha256: str | None = None
    added_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def exists(self) -> bool:
        return Path(self.path).is_file()

    def public(self) -> dict[str, Any]:
        """The JSON shape of ``cgstudio models list --json`` (one element of the array)."""
        return {**self.model_dump(), "exists": self.exists()}


class _Registry(BaseModel):
    version: int = REGISTRY_VERSION
    models: list[StoredModel] = Field(default_factory=list)


def normalize_alias(alias: str) -> str:
    """Lower-case and check an alias; aliases never contain '/', so they cannot look like paths."""
    a = alias.strip().lower()
    if not ALIAS_RE.match(a):
        raise UsageError(
            f"invalid alias {alias!r}: use letters, digits and . _ : + - (no spaces or slashes), "
            "starting with a letter or digit"
        )
    return a


def inside_store(root: Path, *parts: str) -> Path:
    """``root / parts...``, refusing any part that would put the path outside ``root``.

    Parts come from the Hub (a listed file name) or the command line (``--repo``); they may hold
    ``/`` between names, never an absolute path, ``.``/``..``, a backslash or NUL.
    """
    for part in parts:
        names = part.split("/")
        if (
            not part
            or "\x00" in part
            or "\\" in part
            or part.startswith("/")
            or any(n in ("", ".", "..") for n in names)
        ):
            raise UsageError(f"{part!r} is not a safe file name inside the model store")
    target = root.joinpath(*parts)
    if not is_inside(root, target):
        raise UsageError(f"{'/'.join(parts)!r} would lead outside the model store {root}")
    return target


def is_inside(root: Path, path: Path) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside ``root``."""
    return path.resolve().is_relative_to(root.resolve())


def default_alias(path: Path) -> str:
    stem = path.name.removesuffix(".gguf").lower()
    stem = re.sub(r"[^a-z0-9._:+-]+", "-", stem).strip("-._:+") or "model"
    return stem[:128]


class ModelStore:
    """The registry of local models. Reads on every call, writes atomically under a lock."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or store_dir()
        self.registry_path = self.root / "registry.json"

    # -- reading -------------------------------------------------------------------------------
    def _read(self) -> _Registry:
        try:
            raw = self.registry_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _Registry()
        except OSError as exc:
            raise ModelError(f"cannot read the model registry {self.registry_path}: {exc.strerror}") from exc
        try:
            return _Registry.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise ModelError(
                f"the model registry {self.registry_path} is damaged ({str(exc).splitlines()[0]}); "
                "fix or delete it, then re-add your models with `cgstudio models add`"
            ) from exc

    def list(self) -> list[StoredModel]:
        return sorted(self._read().models, key=lambda m: m.alias)

    def get(self, alias: str) -> StoredModel | None:
        a = alias.strip().lower()
        return next((m for m in self._read().models if m.alias == a), None)

    def find(self, spec: str) -> StoredModel | None:
        """An exact alias, else the only ``spec:<tag>`` alias (``codegemma-2b`` -> ``codegemma-2b:q8_0``)."""
        models = self._read().models
        a = spec.strip().lower()
        exact = next((m for m in models if m.alias == a), None)
        if exact or ":" in a:
            return exact
        tagged = [m for m in models if m.alias.startswith(a + ":")]
        return tagged[0] if len(tagged) == 1 else None

    # -- writing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[_Registry]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.root / ".registry.lock"
        with lock_path.open("a") as lock:
            try:
                import fcntl

                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            except ImportError:  # Windows: a single writer is the documented expectation
                pass
            reg = self._read()
            yield reg
            tmp = self.registry_path.with_name(f".registry.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(reg.model_dump(), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.registry_path)

    def put(self, entry: StoredModel, *, replace: bool = False) -> StoredModel:
        """Add ``entry``; an existing alias is an error unless ``replace``."""
        entry.alias = normalize_alias(entry.alias)
        if entry.alias in DEMO_MODELS:
            raise UsageError(f"alias {entry.alias!r} is a built-in demo model; choose another with --alias")
        with self._locked() as reg:
            old = next((m for m in reg.models if m.alias == entry.alias), None)
            if old is not None and not replace:
                raise alias_taken_error(entry.alias, old)
            reg.models = [m for m in reg.models if m.alias != entry.alias] + [entry]
        return entry

    def add(self, path: Path, *, alias: str | None = None, copy: bool = False) -> StoredModel:
        """Register an existing GGUF (in place, or copied into the store with ``copy``)."""
        path = path.expanduser().resolve()
        validate_model_file(path)
        name = normalize_alias(alias) if alias else default_alias(path)
        if (old := self.get(name)) is not None:  # fail before copying gigabytes
            raise alias_taken_error(name, old)
        target = path
        if copy:
            target = self.root / "local" / path.name
            if target.exists() and not target.samefile(path):
                raise UsageError(f"{target} already exists in the store; pass --alias and rename the file")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                shutil.copyfile(path, tmp)
                os.replace(tmp, target)
        entry = describe_file(target, alias=name, managed=copy, source="copy" if copy else "local")
        return self.put(entry)

    def remove(self, alias: str, *, delete_file: bool | None = None) -> tuple[StoredModel, bool]:
        """Unregister ``alias``. Deletes the file when it is managed (or ``delete_file`` says so).

        Returns the entry and whether a file was deleted. A file still named by another alias stays.
        """
        a = alias.strip().lower()
        with self._locked() as reg:
            entry = next((m for m in reg.models if m.alias == a), None)
            if entry is None:
                known = ", ".join(m.alias for m in reg.models) or "none"
                raise ModelNotFoundError(
                    f"no model {alias!r} in the store (known: {known}); see `cgstudio models list`"
                )
            rest = [m for m in reg.models if m.alias != a]
            shared = any(m.path == entry.path for m in rest)
            delete = (entry.managed if delete_file is None else delete_file) and not shared
            p = Path(entry.path)
            if delete and p.exists() and not is_inside(self.root, p):
                # Raised inside the lock: the registry is left as it was.
                raise UsageError(
                    f"{entry.path} is outside the model store {self.root}, and cgstudio deletes only "
                    f"files inside it; delete the file yourself, or `cgstudio models rm {entry.alias} "
                    "--keep-file` to unregister it only"
                )
            reg.models = rest
        deleted = False
        if delete and p.is_file():
            p.unlink()
            deleted = True
        return entry, deleted


def alias_taken_error(alias: str, old: StoredModel) -> UsageError:
    return UsageError(
        f"alias {alias!r} already names {old.path}; pass --alias NEW, or `cgstudio models rm {alias}` first"
    )


def describe_file(
    path: Path, *, alias: str, managed: bool, source: str, sha256: str | None = None
) -> StoredModel:
    """Inspect ``path`` (vocabulary only, fast) and build its registry entry."""
    # Imported here: it loads llama_cpp, which importing this module must not (start-up time).
    from cgstudio.engine.llamacpp import inspect_model
    from cgstudio.families import profile

    info = inspect_model(path)
    prof = profile(info)
    family, variant = prof.family.name, prof.variant
    return StoredModel(
        alias=alias,
        path=str(path),
        family=family,
        variant=variant.variant,
        variant_confidence=variant.confidence,
        architecture=info.architecture,
        name=info.name,
        quantization=info.quantization,
        size_bytes=info.size_bytes,
        fim=prof.fim,
        managed=managed,
        source=source,
        sha256=sha256,
    )
