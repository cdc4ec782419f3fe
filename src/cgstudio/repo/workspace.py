"""Workspaces: the folders whose files repository context may read, and confinement to them.

A request names its current file with ``filepath`` (an editor's absolute path, a ``file://`` URI,
or a path relative to a workspace). That name is a label: it is mapped to a file of the index
only when it lies inside a configured workspace once symlinks are resolved, and it never makes
cgstudio open anything. A label with a ``..`` part is refused outright, whatever it resolves to.
The filenames of ``input_extra`` and ``context_files`` are labels in the same sense and are never
even looked up. Only ``index.WorkspaceIndex`` reads files, and only by walking its own root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from cgstudio.core.errors import SettingsError


@dataclass(frozen=True)
class Located:
    """A label that names a file inside a workspace: which one, and the file's path within it
    (POSIX, relative, no ``..``)."""

    workspace: int
    rel: str


def workspace_root(folder: str | os.PathLike[str]) -> Path:
    """The resolved root of a ``--workspace`` folder; a clear error when it is not a folder."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise SettingsError(f"--workspace {folder}: no such folder; give the root of a project")
    return root.resolve()


def locate(label: str | None, roots: tuple[Path, ...]) -> Located | None:
    """The workspace file a request's ``filepath`` names, or None when it names none.

    Relative labels are tried against each root in turn; absolute ones (and ``file://`` URIs)
    must resolve inside a root. Symlinks are resolved before the check, so a link that points out
    of a workspace names nothing."""
    if not label or "\x00" in label or not roots:
        return None
    text = label
    if text.startswith("file://"):
        text = unquote(urlparse(text).path)
    pure = PurePosixPath(text.replace("\\", "/"))
    if ".." in pure.parts:
        return None
    candidates = [Path(pure)] if pure.is_absolute() else [root / pure for root in roots]
    for path in candidates:
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            continue
        for i, root in enumerate(roots):
            if real == root or not real.is_relative_to(root):
                continue
            return Located(i, real.relative_to(root).as_posix())
    return None
