"""Inference backends. A backend loads a model once and runs batches of an exact shape.

Imports of torch, transformers and vLLM happen inside the backend modules, so that choosing
one does not import the other (vLLM is not installed on every machine).
"""

from __future__ import annotations

from llm_energy.measurement.backends.base import DECODINGS, Backend, BatchResult, Unsupported
from llm_energy.pipeline.cells import MODES, Variant

# The variants without a tensor-parallel suffix (llm_energy.pipeline.cells is where names are parsed).
VARIANTS = tuple(f"{framework}-{mode}" for framework, modes in MODES.items() for mode in modes)


def make_backend(variant: str | Variant, model_dir: str, **options) -> Backend:
    """The backend of a framework variant, not yet loaded (a name the schema refuses: UserError)."""
    variant = Variant.parse(variant)
    # Each framework is imported only when a cell chooses it: the package must import where vLLM is
    # not installed (a transformers-only GPU install) and without loading torch for a plan.
    if variant.framework == "transformers":
        from llm_energy.measurement.backends.hf import TransformersBackend

        return TransformersBackend(model_dir, variant=variant, **options)
    if variant.online:
        from llm_energy.measurement.backends.vllm_online import VllmOnlineBackend

        return VllmOnlineBackend(model_dir, variant=variant, **options)
    from llm_energy.measurement.backends.vllm import VllmBackend

    return VllmBackend(model_dir, variant=variant, **options)


__all__ = ["Backend", "BatchResult", "DECODINGS", "Unsupported", "make_backend", "VARIANTS"]
