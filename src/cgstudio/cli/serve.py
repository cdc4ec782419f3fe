"""``cgstudio serve``: OpenAI, Ollama and llama.cpp-server APIs on one local port (default 11435)."""

from __future__ import annotations

from typing import Any

import click

from cgstudio.cli.options import load_options, sampling_options, settings_from, workspace_options
from cgstudio.core.errors import UsageError
from cgstudio.core.settings import MAX_INPUT_BYTES
from cgstudio.families import family_names
from cgstudio.server.config import DEFAULT_MAX_CONNECTIONS, DEFAULT_PORT, DEFAULT_READ_TIMEOUT_S
from cgstudio.store.demo import DEMO_MODELS


@click.command()
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    envvar="CGSTUDIO_MODEL",
    help="GGUF path or demo alias, optionally ALIAS=PATH (repeatable). The first is the default "
    "[CGSTUDIO_MODEL, the profile, or both demo models].",
)
@click.option(
    "--embedding-model",
    "embedding_model",
    default=None,
    envvar="CGSTUDIO_EMBEDDING_MODEL",
    help="An embedding GGUF (BERT/nomic-style), optionally ALIAS=PATH, for /v1/embeddings and /api/embed "
    "[CGSTUDIO_EMBEDDING_MODEL; none: those endpoints answer 400].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Bind address. Anything but loopback needs --api-key.",
)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="TCP port.")
@click.option(
    "--api-key",
    envvar="CGSTUDIO_API_KEY",
    default=None,
    help="Require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' [CGSTUDIO_API_KEY].",
)
@click.option(
    "--admin-key",
    envvar="CGSTUDIO_ADMIN_KEY",
    default=None,
    help="A separate key for /admin/* [CGSTUDIO_ADMIN_KEY; default: the API key].",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="Let pages from this origin (http://site:port; '*' any) call the server from a browser "
    "(repeatable). Default: CORS off, browsers only from the server's own pages.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="Also answer requests whose Host is this name (repeatable; '*.example.com', '*' any). "
    "Default: localhost and IP addresses (DNS-rebinding protection).",
)
@click.option(
    "--read-timeout",
    default=DEFAULT_READ_TIMEOUT_S,
    show_default=True,
    type=float,
    help="Seconds a client has to send a request's headers, and again its body; slower ones are closed.",
)
@click.option(
    "--max-connections",
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    type=int,
    help="Open connections at most; requests beyond get 503.",
)
@click.option(
    "--keep-alive",
    default="5m",
    show_default=True,
    help="Unload a model idle this long (300, 30s, 5m, 1h; -1 = never, 0 = at once).",
)
@click.option(
    "--parallel",
    "-np",
    default=None,
    type=int,
    help="Sequences decoded together in one batch (each gets --ctx-size) [4 when their KV cache "
    "fits in 2 GiB, else 1].",
)
@click.option(
    "--max-queue",
    default=32,
    show_default=True,
    type=int,
    help="Requests waiting for a slot; beyond this, 503 with Retry-After.",
)
@click.option(
    "--max-body-mb",
    default=MAX_INPUT_BYTES / (1 << 20),
    show_default=True,
    type=float,
    help="Largest request body (MiB); also the CLI's cap on input files.",
)
@click.option(
    "--speculate-next/--no-speculate-next",
    default=True,
    show_default=True,
    help="After a greedy (or seeded) FIM answer, compute the answer for accepting it while the server "
    "is idle; any real request cancels it.",
)
@click.option(
    "--strict-model-names",
    is_flag=True,
    help="Answer 404 to a model name that no served model has. Default: the llama.cpp routes ignore "
    "it, and the OpenAI routes let a model that fits the request answer (model_substituted warning).",
)
@click.option(
    "--backend",
    type=click.Choice(["llama.cpp", "openai"]),
    default="llama.cpp",
    show_default=True,
    help="llama.cpp: run GGUFs in-process. openai: an OpenAI-compatible server (vLLM, llama_cpp.server) "
    "at --base-url generates; cgstudio renders prompts and applies its guards.",
)
@click.option("--base-url", default=None, help="--backend openai: the upstream, e.g. http://127.0.0.1:8000.")
@click.option(
    "--api-key-upstream",
    envvar="CGSTUDIO_UPSTREAM_API_KEY",
    default=None,
    help="Bearer token for the upstream [CGSTUDIO_UPSTREAM_API_KEY].",
)
@click.option(
    "--family",
    type=click.Choice(family_names()),
    default=None,
    help="--backend openai without a GGUF: the prompt family [from the upstream's model id].",
)
@click.option(
    "--tokenizer",
    default=None,
    help="--backend openai: the model's GGUF (or tokenizer.json) to count tokens locally; 'upstream' or "
    "'estimate' to force those [--model PATH.gguf, else the upstream's tokenize endpoint, else estimate].",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option("--access-log", is_flag=True, help="Log a line per HTTP request (uvicorn's access log) [off].")
@workspace_options
@load_options
@sampling_options
def serve(
    models: tuple[str, ...],
    embedding_model: str | None,
    host: str,
    port: int,
    api_key: str | None,
    admin_key: str | None,
    cors_origins: tuple[str, ...],
    allowed_hosts: tuple[str, ...],
    read_timeout: float,
    max_connections: int,
    keep_alive: str,
    parallel: int | None,
    max_queue: int,
    max_body_mb: float,
    speculate_next: bool,
    strict_model_names: bool,
    backend: str,
    base_url: str | None,
    api_key_upstream: str | None,
    family: str | None,
    tokenizer: str | None,
    log_level: str,
    access_log: bool,
    workspaces: tuple[str, ...],
    **opts: Any,
) -> None:
    """Serve OpenAI (/v1), Ollama (/api) and llama.cpp (/infill, /completion) APIs.

    Models load on first use and unload after --keep-alive. Requests that name no model
    (or 'default') are routed by capability: FIM to a FIM model (pretrained first), chat to an
    instruction-tuned one, else the first --model. A name that no served model has is ignored
    on the llama.cpp routes, answered by a fitting model on the OpenAI routes (both with a
    model_substituted warning) and a 404 on Ollama's; --strict-model-names makes it a 404 everywhere.
    """
    from cgstudio.server import create_app
    from cgstudio.server.config import (
        parse_duration,
        resolve_embedding_model,
        resolve_models,
        server_settings,
    )
    from cgstudio.server.listener import run

    settings = settings_from(opts)
    upstream = None
    if backend == "openai":
        specs, upstream = _remote_spec(list(models), base_url, api_key_upstream, family, tokenizer)
        parallel = parallel or 8  # the upstream batches; each slot here is one open HTTP stream
    else:
        if base_url or tokenizer or family:
            raise UsageError("--base-url, --tokenizer and --family need --backend openai")
        if not models and not settings.model:
            # Out of the box, both demo models: the studio then shows a FIM/chat model and a
            # pretrained one (with its warnings) side by side.
            models = tuple(DEMO_MODELS)
            click.echo(
                f"note: no model configured: serving the demo models {', '.join(models)}; "
                "pass --model PATH.gguf (repeatable) or set CGSTUDIO_MODEL",
                err=True,
            )
        specs = resolve_models(list(models), configured=settings.model)
    if parallel is None:
        parallel = _auto_parallel([str(s.path) for s in specs], settings.load.n_ctx)
    settings.load.n_parallel = parallel
    config = server_settings(
        host=host,
        port=port,
        models=specs,
        settings=settings,
        api_key=api_key,
        admin_key=admin_key,
        cors_origins=list(cors_origins),
        allowed_hosts=list(allowed_hosts),
        read_timeout_s=read_timeout,
        max_connections=max_connections,
        keep_alive_s=parse_duration(keep_alive),
        parallel=parallel,
        max_queue=max_queue,
        max_body_bytes=int(max_body_mb * (1 << 20)),
        strict_model_names=strict_model_names,
        speculate_next=speculate_next,
        upstream=upstream,
        embedding_model=resolve_embedding_model(embedding_model) if embedding_model else None,
        workspaces=list(workspaces),
    )
    for spec in specs:
        if spec.notice:
            click.echo(f"note: {spec.notice}", err=True)
    app = create_app(config)
    app.state.registry.inspect_all()  # a bad GGUF fails here, with one clear line
    for entry in app.state.registry.entries.values():
        m = entry.meta
        where = f"upstream {upstream.base_url}" if upstream else str(entry.path)
        click.echo(
            f"model {entry.alias}: {m.family}, {m.variant}{', FIM' if m.fim else ''} ({where})", err=True
        )
    for index in app.state.registry.repo.indexes if app.state.registry.repo else ():
        index.refresh(force=True)  # now, so the first keystroke does not wait for it
        capped = f"; capped at {index.max_total_bytes >> 20} MiB of text" if index.capped else ""
        click.echo(f"workspace {index.root}: {len(index.paths())} text files indexed{capped}", err=True)
    embedding = app.state.embeddings.inspect()  # a file that is no embedding model fails here too
    if embedding is not None:
        click.echo(
            f"embedding model {app.state.embeddings.alias}: {embedding.architecture}, "
            f"{embedding.n_embd} dimensions, {embedding.pooling} pooling ({embedding.path})",
            err=True,
        )

    def announce(url: str) -> None:  # once the port is ours; a taken one is a ListenError instead
        click.echo(
            f"cgstudio serving on {url} (OpenAI /v1, Ollama /api, llama.cpp /infill)"
            + ("; API key required" if api_key else ""),
            err=True,
        )

    def opened(url: str) -> None:  # after uvicorn's start-up lines: the last line, easy to find
        click.echo(f"Open {url} in your browser", err=True)

    run(app, config, log_level=log_level, announce=announce, opened=opened, access_log=access_log)


def _remote_spec(
    models: list[str], base_url: str | None, api_key: str | None, family: str | None, tokenizer: str | None
) -> tuple[list[Any], Any]:
    """The one served spec and the upstream settings for --backend openai (probes the upstream once)."""
    from pathlib import Path

    from cgstudio.engine.remote import upstream_settings
    from cgstudio.engine.remote.engine import probe_upstream
    from cgstudio.server.config import resolve_remote_model

    if not base_url:
        raise UsageError("--backend openai needs --base-url URL (e.g. http://127.0.0.1:8000)")
    mode = tokenizer if tokenizer in ("upstream", "estimate") else "auto"
    path = Path(tokenizer).expanduser() if tokenizer and mode == "auto" else None
    upstream = upstream_settings(
        base_url=base_url, api_key=api_key, family=family, tokenizer=path, tokenizer_mode=mode
    )
    spec, upstream = resolve_remote_model(models, upstream)
    ids, status = probe_upstream(upstream)
    click.echo(f"upstream {upstream.base_url}: {status}", err=True)
    if upstream.model is None and ids and not any("=" in m for m in models):
        # Name the served model after the upstream's when it answers now (else "remote").
        spec, upstream = resolve_remote_model(models, upstream, discovered=ids[0])
    return [spec], upstream


def _auto_parallel(paths: list[str], n_ctx: int, budget: int = 2 << 30) -> int:
    """4 slots when four full contexts of every model fit the KV budget, else 1 (a 7B at 8192: 1)."""
    from cgstudio.core.errors import CGStudioError
    from cgstudio.engine.llamacpp import inspect_model

    try:
        kv = sum(inspect_model(p).kv_bytes_per_token() for p in paths) * n_ctx
    except CGStudioError:
        return 1  # the registry reports the bad file with its own message
    return 4 if kv * 4 <= budget else 1
