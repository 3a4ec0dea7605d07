"""HF transformers on PyTorch (the paper's unoptimized baseline), eager or with torch.compile."""

from __future__ import annotations

import logging

from llm_energy.measurement.backends.base import PROMPT_LOOKUP_MAX, Backend, BatchResult, Unsupported
from llm_energy.pipeline.cells import SPECULATIVE

log = logging.getLogger(__name__)


class TransformersBackend(Backend):
    """``model.generate`` on a batch of equal-length prompts; ``min_new_tokens`` forces the exact length.

    ``transformers-compile`` is transformers' own compiled generation: a static KV cache, and the
    decoding step's forward compiled with ``torch.compile`` (CUDA graphs through
    ``mode="reduce-overhead"`` on GPUs; inductor's default mode on CPU, where there are no graphs).
    Compilation happens per shape, in the warm-up batches, never inside a metered window.
    Speculative decoding is transformers' assisted generation with the draft model, or with n-gram
    candidates looked up in the prompt (``prompt-lookup``); both support one request at a time: a
    larger batch is :class:`Unsupported` (a row says so), not a loop presented as a batch.

    Acceptance is counted from the target model's forward calls: each call verifies ``c`` candidates
    (appended to the whole prompt in the first call, to the last accepted token in later ones) and
    yields ``a + 1`` tokens for ``a`` accepted, so over a generation of ``n`` tokens in ``k`` calls,
    proposed = sum(c) and accepted = n - k.
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
            # transformers reads the look-ahead from the draft's own generation config, not generate()'s
            # arguments: without this the draft proposed its default (and stopped early when unsure).
            gc = self.draft.generation_config
            gc.num_assistant_tokens = self.options["num_speculative_tokens"]
            gc.num_assistant_tokens_schedule, gc.assistant_confidence_threshold = "constant", 0.0
        self._spec, self._calls_len = [0, 0], []
        if self.decoding in SPECULATIVE:
            self.model.register_forward_pre_hook(self._count_call, with_kwargs=True)
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
        elif self.decoding in SPECULATIVE:
            if self._compile is not None:
                raise Unsupported("transformers' assisted generation does not support the static KV cache that "
                                  "its compiled generation needs")
            if batch_size != 1:
                raise Unsupported(f"transformers' assisted generation runs one request at a time (batch "
                                  f"{batch_size} asked)")
            if self.decoding == "prompt-lookup":
                kw.update(prompt_lookup_num_tokens=opts["num_speculative_tokens"],
                          max_matching_ngram_size=PROMPT_LOOKUP_MAX)
            else:
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
        self._calls_len = []
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=mask, pad_token_id=self.pad_id, **kwargs)
        self.sync()
        if self.decoding in SPECULATIVE and self._calls_len:
            calls = self._calls_len
            self._spec[0] += (calls[0] - ids.shape[1]) + sum(c - 1 for c in calls[1:])
            self._spec[1] += max(int(out.shape[1] - ids.shape[1]) - len(calls), 0)
        return out

    def _count_call(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else (args[0] if args else None)
        if ids is not None:
            self._calls_len.append(int(ids.shape[1]))

    def spec_counts(self) -> tuple[int, int] | None:
        return tuple(self._spec) if self.decoding in SPECULATIVE else None

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
        if self.decoding in SPECULATIVE:
            batch_size = 1  # assisted generation and prompt lookup: one request at a time
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
