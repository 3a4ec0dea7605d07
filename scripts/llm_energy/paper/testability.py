"""Where this hardware and these models cannot discriminate a finding: each function says why (and
what would test it), or None where they can. A finding so marked is ``not testable here``."""

from __future__ import annotations

import pandas as pd

from llm_energy.paper.criteria import CPU_ESTIMATE, Data
from llm_energy.pipeline.cells import is_cpu_hardware


def _sources(d: Data) -> set[str]:
    m = d.measurements
    return set(m["energy_source"].dropna().astype(str)) if "energy_source" in m else set()


def _on_cpu(d: Data) -> bool:
    m = d.measurements
    return "hardware" in m and bool(m["hardware"].astype(str).map(is_cpu_hardware).all()) and not m.empty


def compile_cannot_tell(d: Data) -> str | None:
    if _on_cpu(d):
        return ("on a CPU there is no kernel-launch overhead for torch.compile to remove (the paper's saving "
                "at small batch is the GPU's launch overhead)")
    return None


def cudagraphs_cannot_tell(d: Data) -> str | None:
    if _on_cpu(d):
        return ("on a CPU vllm-cudagraph is vLLM's compiled path (torch.compile; there are no CUDA graphs), so "
                "the run compares compiled with eager vLLM, not CUDA graphs")
    return None


def online_cannot_tell(d: Data) -> str | None:
    largest = int(d.batches["batch_size"].max()) if not d.batches.empty else 0
    if CPU_ESTIMATE in _sources(d):
        return ("the CPU-time meter counts the online server's own processes (API server, engine polling), "
                "which the offline engine does not have, and the largest batch here is "
                f"{largest} (the paper's saving is at large batch, >= 64, metered by NVML)")
    if largest < 64:
        return f"the largest batch here is {largest}; the paper's saving is at large batch (>= 64)"
    return None


TINY_MODEL = 1e8  # parameters: below this, sampling over the vocabulary costs as much as the forward pass


def decoding_cannot_tell(d: Data) -> str | None:
    m = d.measurements
    if "n_parameters" not in m or "decoding" not in m:
        return None
    sampled = m[m["decoding"].isin(["temperature", "top-p"])]  # the models the finding compares
    params = pd.to_numeric(sampled["n_parameters"], errors="coerce").dropna()
    if len(params) and float(params.max()) < TINY_MODEL:
        return (f"the models here have at most {float(params.max()) / 1e6:.0f}M parameters: top-p and "
                "temperature sampling over a 32k vocabulary cost as much as their forward pass, which a "
                "billion-parameter model's dwarfs (a model of >= 1B parameters is needed)")
    return None


def ideal_cannot_tell(d: Data) -> str | None:
    sources = set(d.estimates["energy_source"].dropna().astype(str)) if "energy_source" in d.estimates else set()
    if any(CPU_ESTIMATE in s for s in sources):
        return ("the ideal's power here is the CPU estimate's own watts per core, so every estimate is above "
                "the ideal by construction (a measured energy, NVML or RAPL, is needed)")
    return None
