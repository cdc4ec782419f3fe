"""The application layer: ``CodeModel`` (a loaded model with its family, prompt format, guards and
settings) and ``load``. Faces (CLI, server, eval, bench) drive models through it."""

from cgstudio.session.model import CodeModel, check_text, load

__all__ = ["CodeModel", "check_text", "load"]
