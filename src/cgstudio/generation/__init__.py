"""The generation pipeline: formatting in, guards and metrics along the way, chunks out."""
