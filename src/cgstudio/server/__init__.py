"""The HTTP server: OpenAI, Ollama and llama.cpp-server dialects over one generation pipeline.

app.py        create_app(config) -> FastAPI; state lives on app.state
config.py     ServerSettings (flags, defaults, the loopback/API-key rule)
registry.py   served models: lazy load, keep_alive, capability routing, reload
runner.py     fair admission queue, worker-thread <-> event-loop bridge, cancellation, supersede
service.py    what to generate (GenSpec) and how to build its prompt on a CodeModel
middleware.py auth, body-size limit, request metrics (pure ASGI, before validation)
errors.py     the one mapping table from typed errors to HTTP status and OpenAI-shaped JSON
metrics.py    Prometheus metrics on a per-app registry
protocol/     request schemas per dialect;  routes/  thin routers per dialect
"""

from cgstudio.server.app import create_app
from cgstudio.server.config import ServerSettings

__all__ = ["ServerSettings", "create_app"]
