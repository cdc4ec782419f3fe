"""Natural-language code generation on a pretrained model: a completion prompt, not chat.

The request becomes a comment in the target language under a file-path header, and the
model continues the file. This is the layout pretrained code models saw in training.
"""

from __future__ import annotations

import textwrap

from cgstudio.core.errors import UsageError

LANGUAGES: dict[str, tuple[str, str]] = {  # name -> (file name, line-comment marker)
    "python": ("main.py", "#"),
    "javascript": ("main.js", "//"),
    "typescript": ("main.ts", "//"),
    "java": ("Main.java", "//"),
    "c": ("main.c", "//"),
    "cpp": ("main.cpp", "//"),
    "c++": ("main.cpp", "//"),
    "csharp": ("Program.cs", "//"),
    "go": ("main.go", "//"),
    "rust": ("main.rs", "//"),
    "kotlin": ("Main.kt", "//"),
    "swift": ("main.swift", "//"),
    "php": ("index.php", "//"),
    "ruby": ("main.rb", "#"),
    "bash": ("script.sh", "#"),
    "shell": ("script.sh", "#"),
    "sql": ("query.sql", "--"),
    "r": ("main.R", "#"),
    "lua": ("main.lua", "--"),
    "haskell": ("Main.hs", "--"),
    "scala": ("Main.scala", "//"),
}


def completion_request_text(request: str, language: str) -> tuple[str, str]:
    """Return (prompt text, file path) for a pretrained model."""
    key = language.strip().lower()
    if key not in LANGUAGES:
        raise UsageError(f"unknown language {language!r}; known: {', '.join(sorted(LANGUAGES))}")
    path, marker = LANGUAGES[key]
    lines = textwrap.wrap(" ".join(request.split()), width=96) or [request.strip()]
    comment = "\n".join(f"{marker} {ln}" for ln in lines)
    return f"{comment}\n", path
