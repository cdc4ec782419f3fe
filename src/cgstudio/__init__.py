"""CodeGemma Studio: run CodeGemma locally with exact prompt formats, guards and honest metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from cgstudio.session.model import CodeModel


def load(model: str | None = None, **profile: Any) -> CodeModel:
    """Load a GGUF model; see ``cgstudio.session.model.load``."""
    # Imported here: `import cgstudio` stays light (the CLI imports it); loading pulls in the runtime.
    from cgstudio.session.model import load as _load

    return _load(model, **profile)


__all__ = ["__version__", "load"]
