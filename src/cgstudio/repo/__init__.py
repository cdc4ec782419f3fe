"""Repository context: what a request's workspace adds before the current file (issue 16 §2).

``workspace`` confines reads to the configured folders, ``index`` keeps their text files and BM25
chunks up to date, ``sources`` finds imports, tests, retrieved and recent chunks, ``packing`` puts
them in prompt order with their value ranks, and ``context.RepoContext`` ties them together.
"""

from cgstudio.repo.context import RepoContext

__all__ = ["RepoContext"]
