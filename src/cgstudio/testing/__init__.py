"""Test helpers shipped with the package: tiny synthetic models that llama.cpp can load.

`cgstudio.testing.synthetic_gguf.write_codegemma_gguf` writes a few-hundred-kilobyte GGUF with
CodeGemma's architecture (`gemma`) and CodeGemma's special-token ids, so tests can exercise the
real loading, tokenization and generation paths without downloading a model.

`cgstudio.testing.synthetic_embedding.write_bert_embedding_gguf` writes a tiny BERT embedding GGUF
(WordPiece vocabulary, mean pooling) for the embedding engine and the `/v1/embeddings` routes.

`cgstudio.testing.loopback.serve_app` runs an ASGI app with uvicorn on a free loopback port in a
thread (``with serve_app(app) as url``); `free_port` gives a port for servers run as subprocesses.

`cgstudio.testing.subprocess_server.ServeProcess` runs ``cgstudio serve`` as a subprocess on a free
loopback port until ``/health`` answers, and stops it (tests, scripts/, the bench);
`server_process` does the same for any server command.
"""
