"""vLLM offline inference (``LLM.generate``), the paper's optimized stack.

``vllm-eager`` runs with ``enforce_eager=True``; ``vllm-cudagraph`` with vLLM's defaults (torch.compile
and CUDA graph capture on GPUs; on CPU, where there are no CUDA graphs, vLLM's torch.compile path is
the nearest equivalent). ``-tpN`` sets ``tensor_parallel_size``. Decoding: greedy, temperature and
top-p sampling (seeded through the engine), beam search (``LLM.beam_search``) and speculative
decoding with a draft model (``speculative_config``, ``method = draft_model``).

vLLM starts worker processes: whatever calls :meth:`VllmBackend.load` must run under an
``if __name__ == "__main__":`` guard.

On CPU (no CUDA, one device) the offline engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``,
unless the environment sets it): with its engine core and worker in processes of their own, the
processes poll each other's queues while they wait, and on 2 cores that polling was half of the
CPU time the CPU estimate counts (2.85 J against 1.37 J for the same batch of 8 x (50 -> 64) tokens),
its noise ±15 % from batch to batch, and the engine took 20 s to start instead of 9 s. On GPUs the
engine keeps vLLM's default processes (the GPU meter does not see host polling). The online server
(``vllm-online``) keeps them everywhere: its processes are what a served deployment runs.

Logging: when its engine starts, vLLM applies a ``dictConfig`` of its own (a stdout handler on the
``vllm`` logger, which does not propagate to the root logger) in this process and again in each
engine-core and worker process it spawns. A cell's log file would get none of vLLM's lines (engine
start, errors in the engine process) and, with a write-mode file handler, none of the project's lines
after the engine start either. :func:`vllm_logging` hands the engine a logging config that keeps
vLLM's stdout handler and adds the log files of this process (``rulekit.log_files``) to the
``vllm`` logger, so every engine process appends to the cell's log.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from llm_energy.measurement.backends.base import PROMPT_LOOKUP_MAX, PROMPT_LOOKUP_MIN, Backend, BatchResult
from llm_energy.pipeline.cells import SPECULATIVE
from llm_energy.pipeline.rulekit import kept_log_handlers, log_files

log = logging.getLogger(__name__)

# Thread-count variables that job schedulers (Snakemake sets all of these to the job's threads)
# put in the environment. vLLM's CPU backend pins its own worker threads; with these inherited, a
# 2-core machine ran decode 30x slower (0.4 s -> 14 s for 128 tokens), so they are cleared before
# the engine starts and vLLM chooses.
_SCHEDULER_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                          "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


IN_PROCESS_VAR = "VLLM_ENABLE_V1_MULTIPROCESSING"
_in_process_used = False  # an in-process engine has started in this process (vLLM's parallel state is global)


def engine_in_process(tensor_parallel: int) -> bool:
    """Whether an offline engine starts in this process (see the module docstring): on CPU with one
    device, unless the environment says otherwise, and only for the first engine of the process: vLLM's
    parallel state is global, and an engine closed in a process leaves a later one there without
    it ("pipeline model parallel group is not initialized"). A job runs one engine; a test session
    that starts several gets processes for all but the first."""
    import torch

    if torch.cuda.is_available() or tensor_parallel != 1 or _in_process_used:
        return False
    return os.environ.get(IN_PROCESS_VAR, "0") == "0"


@contextmanager
def engine_processes(in_process: bool) -> Iterator[None]:
    """``VLLM_ENABLE_V1_MULTIPROCESSING`` as chosen while an engine starts; the environment as it was after."""
    before = os.environ.get(IN_PROCESS_VAR)
    os.environ[IN_PROCESS_VAR] = "0" if in_process else (before or "1")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(IN_PROCESS_VAR, None)
        else:
            os.environ[IN_PROCESS_VAR] = before


# vLLM 0.32 on CPU saves its AOT-compiled model to ~/.cache/vllm/torch_compile_cache/torch_aot_compile
# but cannot load it back ("'function' object has no attribute 'finalize_loading'"), so every compiled
# engine compiled again (the vllm-cudagraph cell: 18 s to start, each time). Its standard compile cache
# (VLLM_USE_AOT_COMPILE=0, the default before torch 2.10) loads: 18.1 s, then 10.6 s on the next start.
AOT_COMPILE_VAR = "VLLM_USE_AOT_COMPILE"


def prepare_cpu_environment(kv_cache_gib: float) -> None:
    """Size vLLM's CPU KV cache, clear inherited thread-count variables, and on CPU use vLLM's standard
    compile cache instead of its AOT one (see above), unless the environment chose."""
    import torch

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{kv_cache_gib:g}")
    if not torch.cuda.is_available():
        cleared = {v: os.environ.pop(v) for v in _SCHEDULER_THREAD_VARS if v in os.environ}
        if cleared:
            log.info("cleared %s so that vLLM's CPU backend places its own threads", ", ".join(cleared))
        if AOT_COMPILE_VAR not in os.environ:
            os.environ[AOT_COMPILE_VAR] = "0"
            log.info("%s=0: vLLM's standard compile cache, which loads on CPU (its AOT cache does not)",
                     AOT_COMPILE_VAR)


# vLLM's lines in a log file: the project's format, plus the process (engine core and workers are
# processes of their own) that logged them.
VLLM_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(processName)s pid=%(process)d]: %(message)s"


def vllm_logging_config(files: list[str]) -> dict | None:
    """vLLM's default ``dictConfig`` (stdout handler, level from ``VLLM_LOGGING_LEVEL``) with an
    append-mode file handler per entry of ``files`` on the ``vllm`` logger; None when this vLLM has no
    default config to extend."""
    try:
        from vllm import envs
        from vllm.logger import DEFAULT_LOGGING_CONFIG
    except ImportError:
        return None
    config = copy.deepcopy(DEFAULT_LOGGING_CONFIG)
    try:
        vllm_logger = config["loggers"]["vllm"]
        handler = config["handlers"]["vllm"]
    except KeyError:
        return None
    # As vLLM does when it applies this config itself: refresh what the environment may have changed.
    level = envs.VLLM_LOGGING_LEVEL
    handler.update(level=level, stream=envs.VLLM_LOGGING_STREAM)
    for formatter in config.get("formatters", {}).values():
        if "log_level" in formatter:
            formatter["log_level"] = level
    vllm_logger["level"] = level
    config.setdefault("formatters", {})["llm_energy_file"] = {"format": VLLM_FILE_FORMAT}
    for k, path in enumerate(files):
        name = f"llm_energy_file_{k}"
        config["handlers"][name] = {"class": "logging.FileHandler", "filename": path, "mode": "a",
                                    "encoding": "utf-8", "formatter": "llm_energy_file", "level": level}
        vllm_logger.setdefault("handlers", []).append(name)
    return config


@contextmanager
def vllm_logging() -> Iterator[dict]:
    """Engine arguments that send vLLM's log lines, from every engine process, to this process's log
    files too; the root logger keeps its handlers through the engine start.

    Yields ``{}`` (vLLM's own behaviour) when nothing logs to a file, or when the user configures
    vLLM's logging (``VLLM_LOGGING_CONFIG_PATH``, or ``VLLM_CONFIGURE_LOGGING=0``: then vLLM's loggers
    propagate to the root logger's handlers, in this process). A vLLM without a logging config to
    extend gets the files on its ``vllm`` logger after the engine start (this process's lines only).
    """
    from vllm import envs

    files = log_files()
    path = None
    extra: dict = {}
    user_configured = not envs.VLLM_CONFIGURE_LOGGING or bool(envs.VLLM_LOGGING_CONFIG_PATH)
    if files and not user_configured:
        config = vllm_logging_config(files)
        try:
            from vllm.config.logging import LoggingConfig
        except ImportError:
            config = None
        if config is not None:
            fd, path = tempfile.mkstemp(prefix="vllm-logging-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(config, f)
            extra["logging_config"] = LoggingConfig(pylogging_config_file=path)
            log.info("vLLM logs to stdout and to %s", ", ".join(files))
    try:
        with kept_log_handlers():
            yield extra
    finally:
        if path is not None:  # every engine process has read it once the engine is up (or failed)
            os.unlink(path)
    if files and not user_configured and not extra:
        vllm_logger = logging.getLogger("vllm")
        attached = {h.baseFilename for h in vllm_logger.handlers if isinstance(h, logging.FileHandler)}
        for name in files:
            if name not in attached and not vllm_logger.propagate:
                handler = logging.FileHandler(name, mode="a", encoding="utf-8")
                handler.setFormatter(logging.Formatter(VLLM_FILE_FORMAT))
                vllm_logger.addHandler(handler)


def detach_log_files(files: list[str]) -> None:
    """Take the file handlers of ``files`` off the ``vllm`` logger (after the engine shut down), so that
    a later engine in this process does not write into a finished cell's log."""
    vllm_logger = logging.getLogger("vllm")
    for handler in list(vllm_logger.handlers):
        if isinstance(handler, logging.FileHandler) and handler.baseFilename in files:
            vllm_logger.removeHandler(handler)
            handler.close()


def engine_args(backend: Backend) -> dict:
    """vLLM engine arguments of a backend's variant and decoding (shared by offline and online)."""
    longest = backend.max_model_len or 4096
    args = {
        "model": backend.model_dir,
        "dtype": backend.dtype,
        # vllm-online runs eager too: it is compared with vllm-eager, and only the serving path differs.
        "enforce_eager": not backend.variant.compiled,
        # Off, so that every repeat pays for its prefill; on for beam search, whose vLLM implementation
        # resubmits every beam's prefix at each step and relies on the cache (prompts then differ
        # from batch to batch, see prefix_caching below).
        "enable_prefix_caching": backend.decoding == "beam",
        "seed": backend.seed,
        "max_model_len": longest,
        "max_num_seqs": max(backend.max_batch_size, 1) * (backend.options["beam_width"]
                                                         if backend.decoding == "beam" else 1),
        # A whole batch of prompts in one scheduler step where it fits, as a static batch would be.
        "max_num_batched_tokens": max(longest, 2048),
        "tensor_parallel_size": backend.tensor_parallel,
    }
    n_spec = backend.options["num_speculative_tokens"]
    if backend.decoding == "speculative":
        args["speculative_config"] = {"model": backend.draft_dir, "method": "draft_model",
                                      "num_speculative_tokens": n_spec}
    elif backend.decoding == "prompt-lookup":
        args["speculative_config"] = {"method": "ngram", "num_speculative_tokens": n_spec,
                                      "prompt_lookup_min": PROMPT_LOOKUP_MIN, "prompt_lookup_max": PROMPT_LOOKUP_MAX}
    if backend.decoding in SPECULATIVE:
        args["disable_log_stats"] = False  # the engine's spec-decode counters (acceptance) need its stats
    return args


SPEC_COUNTERS = ("vllm:spec_decode_num_draft_tokens", "vllm:spec_decode_num_accepted_tokens")


def spec_counters(metrics) -> tuple[int, int] | None:
    """(draft tokens proposed, accepted) from ``LLM.get_metrics()``'s counters, or None without them."""
    found = {}
    for m in metrics or []:
        if getattr(m, "name", None) in SPEC_COUNTERS:
            found[m.name] = found.get(m.name, 0) + int(getattr(m, "value", 0))
    if set(found) != set(SPEC_COUNTERS):
        return None
    return found[SPEC_COUNTERS[0]], found[SPEC_COUNTERS[1]]


def sampling_kwargs(backend: Backend, output_len: int) -> dict:
    """Sampling settings of a decoding strategy; every request generates exactly ``output_len`` tokens."""
    kw = {"max_tokens": output_len, "min_tokens": output_len, "ignore_eos": True, "temperature": 0.0}
    if backend.decoding == "temperature":
        kw.update(temperature=backend.options["temperature"], top_p=1.0, top_k=0)
    elif backend.decoding == "top-p":
        kw.update(temperature=1.0, top_p=backend.options["top_p"], top_k=0)
    return kw


def describe_vllm(backend: Backend) -> dict:
    """Provenance of a vLLM cell (offline or online): versions, device, engine settings, decoding."""
    import torch
    import transformers
    import vllm

    args = engine_args(backend)
    return {"framework": "vllm", "torch_version": torch.__version__,
            "transformers_version": transformers.__version__, "vllm_version": vllm.__version__,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "dtype": backend.dtype, "cuda_runtime_version": torch.version.cuda or "",
            "enforce_eager": args["enforce_eager"], "prefix_caching": args["enable_prefix_caching"],
            "engine_in_process": bool(getattr(backend, "in_process", False)),
            # Which compile cache a compiled engine used (see AOT_COMPILE_VAR); empty: vLLM's own default.
            "vllm_aot_compile": os.environ.get(AOT_COMPILE_VAR, ""), **backend.describe_decoding()}


class VllmBase(Backend):
    """What offline and online vLLM cells share: KV-cache size, prompt caching rule, provenance."""

    VARIANTS: tuple[str, ...] = ()

    def __init__(self, model_dir: str, *, kv_cache_gib: float = 1.0, **kwargs):
        super().__init__(model_dir, **kwargs)
        self.kv_cache_gib = kv_cache_gib

    @property
    def prefix_caching(self) -> bool:
        """Whether the engine caches prompts (then a window's batches must not repeat prompts)."""
        return self.decoding == "beam"

    def _prepare(self) -> None:
        """Check the variant, then ready the environment the engine starts in."""
        if self.variant.base not in self.VARIANTS:
            raise ValueError(f"variant {self.variant.name!r} is not one of {self.VARIANTS} (-tpN)")
        prepare_cpu_environment(self.kv_cache_gib)

    def describe(self) -> dict:
        return describe_vllm(self)


class VllmBackend(VllmBase):
    """One engine per cell; prefix caching off (except for beam search) so that every repeat pays for its
    prefill."""

    VARIANTS = ("vllm-eager", "vllm-cudagraph")

    def load(self) -> None:
        self._prepare()
        global _in_process_used
        self.in_process = engine_in_process(self.tensor_parallel)
        from vllm import LLM, SamplingParams
        from vllm.sampling_params import BeamSearchParams

        self._SamplingParams = SamplingParams
        self._BeamSearchParams = BeamSearchParams
        with vllm_logging() as logging_args, engine_processes(self.in_process):
            self.llm = LLM(**engine_args(self), **logging_args)
        if self.in_process:
            _in_process_used = True
            log.info("vLLM's engine runs in this process on CPU (%s=0): no inter-process polling in the CPU "
                     "estimate", IN_PROCESS_VAR)
        self._log_files = log_files()

    def _sampling_params(self, output_len: int):
        return self._SamplingParams(**sampling_kwargs(self, output_len))

    def _beam(self, prompts: list[list[int]], output_lens: list[int], concurrency: int) -> list[int]:
        """Beam search per distinct output length; tokens generated by each request's best beam."""
        tokens = [0] * len(prompts)
        for length in sorted(set(output_lens)):
            idx = [k for k, o in enumerate(output_lens) if o == length]
            params = self._BeamSearchParams(beam_width=self.options["beam_width"], max_tokens=length,
                                            ignore_eos=True)
            outs = self.llm.beam_search([{"prompt_token_ids": prompts[k]} for k in idx], params,
                                        concurrency_limit=concurrency)
            for k, out in zip(idx, outs):
                tokens[k] = len(out.sequences[0].tokens) - len(prompts[k])
        return tokens

    def run(self, prompts: list[list[int]], output_len: int) -> BatchResult:
        if self.decoding == "beam":
            return BatchResult(output_tokens=self._beam(prompts, [output_len] * len(prompts), len(prompts)))
        requests = [{"prompt_token_ids": p} for p in prompts]
        outputs = self.llm.generate(requests, self._sampling_params(output_len), use_tqdm=False)
        return BatchResult(output_tokens=[len(o.outputs[0].token_ids) for o in outputs])

    def serve(self, prompts: list[list[int]], output_lens: list[int], batch_size: int) -> list[int]:
        """All requests at once with their own lengths; the scheduler keeps up to ``max_num_seqs``
        running (continuous batching within one offline call)."""
        if self.decoding == "beam":
            return self._beam(prompts, output_lens, batch_size)
        params = [self._sampling_params(o) for o in output_lens]
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        return [len(o.outputs[0].token_ids) for o in outputs]

    def spec_counts(self) -> tuple[int, int] | None:
        if self.decoding not in SPECULATIVE:
            return None
        try:
            return spec_counters(self.llm.get_metrics())
        except (AttributeError, RuntimeError, AssertionError) as exc:
            log.warning("vLLM's spec-decode counters are not readable (%s): acceptance rate unknown", exc)
            return None

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
        detach_log_files(getattr(self, "_log_files", []))
