"""HF transformers on PyTorch (the paper's unoptimized baseline), eager or with torch.compile."""

from __future__ import annotations

import logging

from .base import Backend, BatchResult, Unsupported

log = logging.getLogger(__name__)


class TransformersBackend(Backend):
    """``model.generate`` on a batch of equal-length prompts; ``min_new_tokens`` forces the exact length.

    ``transformers-compile`` is transformers' own compiled generation: a static KV cache, and the
    decoding step's forward compiled with ``torch.compile`` (CUDA graphs through
    ``mode="reduce-overhead"`` on GPUs; inductor's default mode on CPU, where there are no graphs).
    Compilation happens per shape, in the warm-up batches, never inside a metered window.
    Speculative decoding is transformers' assisted generation with the draft model, which supports
    one request at a time: a larger batch is :class:`Unsupported` (a row says so), not a loop
    presented as a batch.
    """

    VARIANTS = ("transformers-eager", "transformers-compile")

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        if self.variant.framework != "transformers":
            raise ValueError(f"variant {self.variant.name!r} is not one of the transformers backend's {self.VARIANTS}")
        if self.tensor_parallel != 1:
            raise Unsupported("tensor parallelism is measured with vLLM variants (-tpN), not transformers")
        self._torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = getattr(torch, self.dtype)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype).to(self.device).eval()
        # generate() needs a pad id even when no row is padded; prompts here are never padded.
        self.pad_id = self.model.config.eos_token_id if self.model.config.pad_token_id is None \
            else self.model.config.pad_token_id
        if isinstance(self.pad_id, list):
            self.pad_id = self.pad_id[0]
        self.draft = None
        if self.decoding == "speculative":
            self.draft = AutoModelForCausalLM.from_pretrained(self.draft_dir, dtype=dtype).to(self.device).eval()
        self._compile = None
        if self.variant.compiled:
            from transformers import CompileConfig

            on_gpu = self.device == "cuda"
            self._compile = CompileConfig(fullgraph=True, mode="reduce-overhead" if on_gpu else "default")
            # transformers compiles on accelerators only unless told (its documented CPU switch).
            self._compile._compile_all_devices = not on_gpu
        self._calls = 0

    def _generate_kwargs(self, output_len: int, batch_size: int) -> dict:
        opts = self.options
        kw = {"max_new_tokens": output_len, "min_new_tokens": output_len, "do_sample": False}
        if self.decoding == "beam":
            kw["num_beams"] = opts["beam_width"]
        elif self.decoding == "temperature":
            kw.update(do_sample=True, temperature=opts["temperature"], top_k=0, top_p=1.0)
        elif self.decoding == "top-p":
            kw.update(do_sample=True, temperature=1.0, top_k=0, top_p=opts["top_p"])
        elif self.decoding == "speculative":
            if self._compile is not None:
                raise Unsupported("transformers' assisted generation does not support the static KV cache that "
                                  "its compiled generation needs")
            if batch_size != 1:
                raise Unsupported(f"transformers' assisted generation runs one request at a time (batch "
                                  f"{batch_size} asked)")
            kw.update(assistant_model=self.draft, num_assistant_tokens=opts["num_speculative_tokens"],
                      num_assistant_tokens_schedule="constant", assistant_confidence_threshold=0.0)
        elif self.decoding != "greedy":
            raise ValueError(f"decoding {self.decoding!r} is not implemented by the transformers backend")
        if self._compile is not None:
            kw.update(cache_implementation="static", compile_config=self._compile)
        return kw

    def _generate(self, ids, mask, output_len: int):
        torch = self._torch
        kwargs = self._generate_kwargs(output_len, ids.shape[0])
        if kwargs["do_sample"]:
            # Seeded per call: the same sequence of batches draws the same tokens in every run.
            torch.manual_seed(self.seed + self._calls)
        self._calls += 1
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=mask, pad_token_id=self.pad_id, **kwargs)
        self.sync()
        return out

    def run(self, prompts: list[list[int]], output_len: int) -> BatchResult:
        torch = self._torch
        ids = torch.tensor(prompts, dtype=torch.long, device=self.device)
        out = self._generate(ids, torch.ones_like(ids), output_len)
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
        out = self._generate(ids.to(self.device), mask.to(self.device), output_len)
        return BatchResult(output_tokens=[int(out.shape[1] - width)] * len(prompts))

    def serve(self, prompts: list[list[int]], output_lens: list[int], batch_size: int) -> list[int]:
        if self.decoding == "speculative":
            batch_size = 1  # assisted generation: one request at a time
        return super().serve(prompts, output_lens, batch_size)

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
        self.model = self.draft = None
        if getattr(self, "device", "cpu") == "cuda":
            self._torch.cuda.empty_cache()

    def describe(self) -> dict:
        import torch
        import transformers

        name = torch.cuda.get_device_name(0) if self.device == "cuda" else "cpu"
        return {"framework": "transformers", "torch_version": torch.__version__,
                "transformers_version": transformers.__version__, "vllm_version": "",
                "device": name, "dtype": self.dtype, "cuda_runtime_version": torch.version.cuda or "",
                "compile_mode": self._compile.mode if self._compile is not None else "",
                **self.describe_decoding()}
