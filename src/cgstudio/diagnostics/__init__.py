"""Checks and advice: machine facts (``hardware``), memory estimates, ``doctor`` and ``recommend``."""
