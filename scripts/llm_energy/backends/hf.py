"""HF transformers on PyTorch (the paper's unoptimized baseline)."""

from __future__ import annotations

import logging

from .base import Backend, BatchResult

log = logging.getLogger(__name__)


class TransformersBackend(Backend):
    """``model.generate`` on a batch of equal-length prompts; ``min_new_tokens`` forces the exact length."""

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        if self.variant != "transformers-eager":
            raise ValueError(f"variant {self.variant!r} is not implemented by the transformers backend")
        self._torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_dir, dtype=getattr(torch, self.dtype)).to(self.device).eval()
        # generate() needs a pad id even when no row is padded; prompts here are never padded.
        self.pad_id = self.model.config.eos_token_id if self.model.config.pad_token_id is None \
            else self.model.config.pad_token_id
        if isinstance(self.pad_id, list):
            self.pad_id = self.pad_id[0]

    def _generate_kwargs(self, output_len: int) -> dict:
        if self.decoding != "greedy":
            raise ValueError(f"decoding {self.decoding!r} is not implemented by the transformers backend")
        return {"do_sample": False, "max_new_tokens": output_len, "min_new_tokens": output_len}

    def run(self, prompts: list[list[int]], output_len: int) -> BatchResult:
        torch = self._torch
        ids = torch.tensor(prompts, dtype=torch.long, device=self.device)
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=self.pad_id,
                                      **self._generate_kwargs(output_len))
        self.sync()
        new = out.shape[1] - ids.shape[1]
        return BatchResult(output_tokens=[int(new)] * out.shape[0])

    def run_padded(self, prompts: list[list[int]], output_len: int) -> BatchResult:
        """Left-pad to the longest prompt (masked), as a static-batching server does."""
        torch = self._torch
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=mask, pad_token_id=self.pad_id,
                                      **self._generate_kwargs(output_len))
        self.sync()
        return BatchResult(output_tokens=[int(out.shape[1] - width)] * len(prompts))

    def sync(self) -> None:
        if self.device == "cuda":
            self._torch.cuda.synchronize()

    def peak_memory_bytes(self) -> int | None:
        if self.device == "cuda":
            return int(self._torch.cuda.max_memory_allocated())
        return None

    def reset_peak_memory(self) -> None:
        if self.device == "cuda":
            self._torch.cuda.reset_peak_memory_stats()

    def release_memory(self) -> None:
        super().release_memory()
        if self.device == "cuda":
            self._torch.cuda.empty_cache()

    def close(self) -> None:
        self.model = None
        if getattr(self, "device", "cpu") == "cuda":
            self._torch.cuda.empty_cache()

    def describe(self) -> dict:
        import torch
        import transformers

        name = torch.cuda.get_device_name(0) if self.device == "cuda" else "cpu"
        return {"framework": "transformers", "torch_version": torch.__version__,
                "transformers_version": transformers.__version__, "vllm_version": "",
                "device": name, "dtype": self.dtype, "cuda_runtime_version": torch.version.cuda or ""}
