"""What every backend offers the measurement loop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass
class BatchResult:
    """Tokens generated for each request of one batch."""

    output_tokens: list[int]


class Backend(ABC):
    """Load once (:meth:`load`), then run batches (:meth:`run`) of prompts given as token ids."""

    variant: str

    def __init__(self, model_dir: str, *, variant: str, dtype: str = "bfloat16", decoding: str = "greedy",
                 seed: int = 0, max_model_len: int | None = None, max_batch_size: int = 1):
        self.model_dir = str(model_dir)
        self.variant = variant
        self.dtype = dtype
        self.decoding = decoding
        self.seed = seed
        self.max_model_len = max_model_len
        self.max_batch_size = max_batch_size

    @abstractmethod
    def load(self) -> None:
        """Load weights and start whatever engine the variant needs."""

    @abstractmethod
    def run(self, prompts: list[list[int]], output_len: int) -> BatchResult:
        """Generate exactly ``output_len`` tokens for every prompt, as one batch; return when done."""

    def sync(self) -> None:
        """Wait for queued device work (a no-op on CPU)."""

    def close(self) -> None:
        """Release the engine and its memory."""

    @abstractmethod
    def describe(self) -> dict:
        """Provenance: library versions, device, dtype actually used."""
