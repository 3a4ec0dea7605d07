"""Inference backends. A backend loads a model once and runs batches of an exact shape.

Imports of torch, transformers and vLLM happen inside the backend modules, so that choosing
one does not import the other (vLLM is not installed on every machine).
"""

from __future__ import annotations

from .base import DECODINGS, Backend, BatchResult, Unsupported

VARIANTS = ("transformers-eager", "transformers-compile", "vllm-eager", "vllm-cudagraph", "vllm-online")


def make_backend(variant: str, model_dir: str, **options) -> Backend:
    """The backend of a framework variant, not yet loaded."""
    if variant.startswith("transformers-"):
        from .hf import TransformersBackend

        return TransformersBackend(model_dir, variant=variant, **options)
    if variant.startswith("vllm-online"):
        from .vllm_online import VllmOnlineBackend

        return VllmOnlineBackend(model_dir, variant=variant, **options)
    if variant.startswith("vllm-"):
        from .vllm import VllmBackend

        return VllmBackend(model_dir, variant=variant, **options)
    raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")


__all__ = ["Backend", "BatchResult", "DECODINGS", "Unsupported", "make_backend", "VARIANTS"]
