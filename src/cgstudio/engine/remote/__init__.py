"""A remote engine: any OpenAI-compatible server (vLLM, llama_cpp.server) behind the Engine contract.

config            UpstreamSettings (pydantic): URL, key, model, family, tokenizer, timeouts, retries
engine            OpenAIEngine: discovery, streaming, cancellation, counters
client            UpstreamClient: the one HTTP client (timeouts, retries, error mapping), shared
                  with the eval --base-url client and the bench
tokenizer         GGUF / HF / upstream-endpoint / estimate tokenizers
dialect           request shaping interface and the OpenAI stream reader
vllm              token-id prompts and vLLM's sampling extensions
llamacpp_server   text prompts, with the check that user text cannot become control tokens
"""

from cgstudio.engine.remote.config import UpstreamSettings, upstream_settings
from cgstudio.engine.remote.engine import OpenAIEngine, RemoteCounters, family_from_name

__all__ = ["OpenAIEngine", "RemoteCounters", "UpstreamSettings", "family_from_name", "upstream_settings"]
