"""Engines: the small contract every backend implements (tokenize, count, stream tokens)."""
