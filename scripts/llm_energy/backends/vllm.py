"""vLLM offline inference (``LLM.generate``), the paper's optimized stack.

vLLM starts worker processes: whatever calls :meth:`VllmBackend.load` must run under an
``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import logging
import os

from .base import Backend, BatchResult

log = logging.getLogger(__name__)

# Thread-count variables that job schedulers (Snakemake sets all of these to the job's threads)
# put in the environment. vLLM's CPU backend pins its own worker threads; with these inherited, a
# 2-core machine ran decode 30x slower (0.4 s -> 14 s for 128 tokens), so they are cleared before
# the engine starts and vLLM chooses.
_SCHEDULER_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                          "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class VllmBackend(Backend):
    """One engine per cell; prefix caching off so that every repeat pays for its prefill."""

    def __init__(self, model_dir: str, *, kv_cache_gib: float = 1.0, **kwargs):
        super().__init__(model_dir, **kwargs)
        self.kv_cache_gib = kv_cache_gib

    def load(self) -> None:
        if self.variant != "vllm-eager":
            raise ValueError(f"variant {self.variant!r} is not implemented by the vLLM backend")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{self.kv_cache_gib:g}")
        import torch

        if not torch.cuda.is_available():
            cleared = {v: os.environ.pop(v) for v in _SCHEDULER_THREAD_VARS if v in os.environ}
            if cleared:
                log.info("cleared %s so that vLLM's CPU backend places its own threads", ", ".join(cleared))
        from vllm import LLM, SamplingParams

        self._SamplingParams = SamplingParams
        longest = self.max_model_len or 4096
        self.llm = LLM(
            model=self.model_dir,
            dtype=self.dtype,
            enforce_eager=True,
            enable_prefix_caching=False,
            seed=self.seed,
            max_model_len=longest,
            max_num_seqs=max(self.max_batch_size, 1),
            # A whole batch of prompts in one scheduler step where it fits, as a static batch would be.
            max_num_batched_tokens=max(longest, 2048),
        )

    def _sampling_params(self, output_len: int):
        if self.decoding != "greedy":
            raise ValueError(f"decoding {self.decoding!r} is not implemented by the vLLM backend")
        return self._SamplingParams(max_tokens=output_len, min_tokens=output_len, ignore_eos=True,
                                    temperature=0.0, seed=self.seed)

    def run(self, prompts: list[list[int]], output_len: int) -> BatchResult:
        requests = [{"prompt_token_ids": p} for p in prompts]
        outputs = self.llm.generate(requests, self._sampling_params(output_len), use_tqdm=False)
        return BatchResult(output_tokens=[len(o.outputs[0].token_ids) for o in outputs])

    def serve(self, prompts: list[list[int]], output_lens: list[int], batch_size: int) -> list[int]:
        """All requests at once with their own lengths; the scheduler keeps up to ``max_num_seqs``
        running (continuous batching within one offline call)."""
        params = [self._sampling_params(o) for o in output_lens]
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        return [len(o.outputs[0].token_ids) for o in outputs]

    def max_concurrent(self, input_len: int, output_len: int) -> int | None:
        """How many requests of this shape the KV cache holds at once (vLLM queues, never OOMs, past it)."""
        try:
            cache = self.llm.llm_engine.vllm_config.cache_config
            blocks, block_size = cache.num_gpu_blocks, cache.block_size
        except AttributeError:
            return None
        if not blocks:
            return None
        per_request = -(-(input_len + output_len) // block_size)
        return min(blocks // per_request, self.max_batch_size)

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None),
                                                                     "shutdown", None)
            if callable(shutdown):
                shutdown()
            self.llm = None

    def describe(self) -> dict:
        import torch
        import transformers
        import vllm

        name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        return {"framework": "vllm", "torch_version": torch.__version__,
                "transformers_version": transformers.__version__, "vllm_version": vllm.__version__,
                "device": name, "dtype": self.dtype, "cuda_runtime_version": torch.version.cuda or ""}
