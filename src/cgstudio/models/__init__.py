"""Model files: GGUF inspection, family/variant detection, demo models."""
