"""Model families: what each family's tokens, prompt orders and variants are, and how to tell a
family from a GGUF's metadata and vocabulary."""
