"""llama.cpp in-process through llama-cpp-python's low-level ctypes API.

``handle`` owns the model and context pointers; ``scheduler`` owns the KV cache and decodes;
``engine`` puts them behind the ``Engine`` contract.
"""

from cgstudio.engine.llamacpp.engine import LlamaCppEngine, inspect_model

__all__ = ["LlamaCppEngine", "inspect_model"]
