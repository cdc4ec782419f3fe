"""Prompt formats built as token-id sequences, per model family."""
