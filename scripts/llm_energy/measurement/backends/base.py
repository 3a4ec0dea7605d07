"""What every backend offers the measurement loop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from llm_energy.pipeline.cells import DECODINGS, SPECULATIVE, Variant
from llm_energy.pipeline.config import section_defaults

# Prompt lookup's n-gram sizes (vLLM's ngram proposer; transformers matches up to the larger one).
PROMPT_LOOKUP_MIN, PROMPT_LOOKUP_MAX = 2, 4


class Unsupported(Exception):
    """The backend cannot run this point as asked (e.g. batched assisted generation); a result, not a crash."""


@dataclass
class BatchResult:
    """Tokens generated for each request of one batch."""

    output_tokens: list[int]


class Backend(ABC):
    """Load once (:meth:`load`), then run batches (:meth:`run`) of prompts given as token ids.

    Everything the measurement loop asks of a backend is declared here, with the answer of a
    backend that does not know better; subclasses override what they can tell.
    """

    variant: Variant
    # Whether the engine caches prompts (then the batches of a window must not repeat prompts, or a
    # repeated batch would skip its prefill).
    prefix_caching: bool = False

    def __init__(self, model_dir: str, *, variant: str | Variant, dtype: str = "bfloat16", decoding: str = "greedy",
                 seed: int = 0, max_model_len: int | None = None, max_batch_size: int = 1,
                 decoding_options: dict | None = None, draft_dir: str | None = None):
        if decoding not in DECODINGS:
            raise ValueError(f"unknown decoding {decoding!r}; known: {', '.join(DECODINGS)}")
        if decoding == "speculative" and not draft_dir:
            raise ValueError("speculative decoding needs a draft model folder (draft_dir)")
        self.model_dir = str(model_dir)
        self.variant = Variant.parse(variant)
        self.dtype = dtype
        self.decoding = decoding
        self.seed = seed
        self.max_model_len = max_model_len
        self.max_batch_size = max_batch_size
        self.options = {**section_defaults("decoding"), **(decoding_options or {})}
        self.draft_dir = str(draft_dir) if draft_dir else None
        self.tensor_parallel = self.variant.tensor_parallel

    def describe_decoding(self) -> dict:
        """The decoding settings that apply to this cell, for its rows."""
        o = self.options
        return {"beam_width": o["beam_width"] if self.decoding == "beam" else 1,
                "temperature": {"temperature": o["temperature"], "top-p": 1.0}.get(self.decoding, 0.0),
                "top_p": o["top_p"] if self.decoding == "top-p" else 1.0,
                "num_speculative_tokens": o["num_speculative_tokens"] if self.decoding in SPECULATIVE else 0,
                "speculative_method": {"speculative": "draft_model", "prompt-lookup": "ngram"}.get(self.decoding, ""),
                "draft_model_dir": self.draft_dir or "", "tensor_parallel": self.tensor_parallel}

    @abstractmethod
    def load(self) -> None:
        """Load weights and start whatever engine the variant needs."""

    @abstractmethod
    def run(self, prompts: list[list[int]], output_len: int) -> BatchResult:
        """Generate exactly ``output_len`` tokens for every prompt, as one batch; return when done."""

    def run_many(self, prompts: list[list[int]], output_len: int, n: int) -> BatchResult:
        """Run the batch ``n`` times back to back (a metered window); the last batch's result.

        Serving backends override this to stream all ``n`` batches' requests at once.
        """
        result = None
        for _ in range(n):
            result = self.run(prompts, output_len)
        return result

    def serve(self, prompts: list[list[int]], output_lens: list[int], batch_size: int) -> list[int]:
        """Serve requests of their own lengths, at most ``batch_size`` at a time; tokens generated per request.

        The base form is static batching in arrival order (what a plain ``generate`` server does):
        each batch runs until its longest request is done, so shorter ones generate more tokens
        than asked and the batch pays for them.
        """
        tokens = []
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            longest = max(output_lens[start:start + batch_size])
            tokens += self.run_padded(chunk, longest).output_tokens
        return tokens

    def spec_counts(self) -> tuple[int, int] | None:
        """Speculative decoding's running totals (draft tokens proposed, accepted) since load, or None
        where the backend cannot count them (then a row's acceptance rate is unknown, never 0)."""
        return None

    def max_concurrent(self, input_len: int, output_len: int) -> int | None:
        """How many requests of this shape run at once at most (engines that queue past a limit instead
        of running out of memory); None when the backend has no such limit or cannot tell."""
        return None

    def run_padded(self, prompts: list[list[int]], output_len: int) -> BatchResult:
        """Run prompts of different lengths as one batch (padded to the longest)."""
        raise NotImplementedError

    def sync(self) -> None:
        """Wait for queued device work (a no-op on CPU)."""

    def close(self) -> None:
        """Release the engine and its memory."""

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory count (device backends)."""

    def peak_memory_bytes(self) -> int | None:
        """Peak device memory since the last reset, or None where the backend cannot tell."""
        return None

    def release_memory(self) -> None:
        """Free what a failed (out-of-memory) batch left allocated, so that the sweep can go on."""
        import gc

        gc.collect()

    @abstractmethod
    def describe(self) -> dict:
        """Provenance: library versions, device, dtype actually used."""
