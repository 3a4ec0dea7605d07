"""What a cell is: its framework variant, parsed from the config's name in this one place, and the
files a cell has at every stage.

A variant name is ``<framework>-<mode>`` with an optional tensor-parallel suffix ``-tpN``:
``transformers-eager``, ``transformers-compile``, ``vllm-eager``, ``vllm-cudagraph``, ``vllm-online``,
``vllm-cudagraph-tp2``. Every other module asks a :class:`Variant` (``.framework``, ``.compiled``,
``.online``, ``.tensor_parallel``) instead of looking at the string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from llm_energy import UserError

# mode -> (compiled, online), per framework. The schema's variant pattern accepts exactly these
# (workflow/schemas/config.schema.yaml; tests/test_cells.py holds the two together).
MODES = {
    "transformers": {"eager": (False, False), "compile": (True, False)},
    "vllm": {"eager": (False, False), "cudagraph": (True, False), "online": (False, True)},
}
# The columns that name a cell in every table between stages (measurement, replay, estimate, figures).
CELL_KEYS = ["hardware", "model", "variant", "decoding"]
# The decoding strategies, in the paper's order (Figure 3, tables); the schema's decoding enum is the
# same list (tests/test_cells.py holds the two together).
# A cell's files under every stage folder (results/<stage>/, logs/<stage>/): the wildcard pattern of
# every rule that makes one (workflow/rules/*.smk) and of Cell.path.
CELL_PATH = "{hardware}/{model}/{variant}/{decoding}"
DECODINGS = ("greedy", "beam", "temperature", "top-p", "speculative", "prompt-lookup")
# Tensor-parallel sizes a variant may name (vLLM only); 1 is the name without a suffix.
TENSOR_PARALLEL_SIZES = (2, 4, 8)
VARIANT_CHOICES = ("transformers-eager, transformers-compile, vllm-eager, vllm-cudagraph, vllm-online "
                   "(a vLLM variant may end in -tp2, -tp4 or -tp8)")
# Point families (config.cell_points) of a cell the config does not name: the grid and the sweeps
# (``batch`` is the sweeps' fixed shape).
DEFAULT_KINDS = ("grid", "sweep")

_TP_SUFFIX = re.compile(r"^(?P<base>.*)-tp(?P<tp>\d+)$")


def split_tensor_parallel(name: str) -> tuple[str, int]:
    """``vllm-cudagraph-tp4`` -> ``("vllm-cudagraph", 4)``; a name without ``-tpN`` -> ``(name, 1)``.

    Lenient (any name): figures read it from measurement tables, which may be older than the schema.
    """
    found = _TP_SUFFIX.match(str(name))
    return (found["base"], int(found["tp"])) if found else (str(name), 1)


@dataclass(frozen=True)
class Variant:
    """A framework variant: the software stack of a cell (see the module docstring)."""

    name: str
    framework: str  # "transformers" or "vllm"
    mode: str  # "eager", "compile", "cudagraph" or "online"
    compiled: bool  # torch.compile / CUDA graphs on (transformers-compile, vllm-cudagraph)
    online: bool  # vLLM's OpenAI-compatible server fed over HTTP (vllm-online)
    tensor_parallel: int = 1

    @classmethod
    def parse(cls, name: str | Variant) -> Variant:
        """The variant a config name stands for; :class:`UserError` (one line) for a name the schema refuses."""
        if isinstance(name, Variant):
            return name
        base, tp = split_tensor_parallel(name)
        framework, _, mode = base.partition("-")
        flags = MODES.get(framework, {}).get(mode)
        variant = None if flags is None else cls(str(name), framework, mode, *flags, tensor_parallel=tp)
        if variant is None or compose(framework, mode, tp) != name:
            raise UserError(f"unknown variant {name!r}; choose one of {VARIANT_CHOICES}")
        return variant

    @property
    def base(self) -> str:
        """The name without its tensor-parallel suffix: ``vllm-cudagraph-tp4`` -> ``vllm-cudagraph``."""
        return f"{self.framework}-{self.mode}"

    def __str__(self) -> str:
        return self.name


def compose(framework: str, mode: str, tensor_parallel: int = 1) -> str:
    """The config name of a variant; only vLLM takes a tensor-parallel suffix, and only of the allowed sizes."""
    if tensor_parallel == 1:
        return f"{framework}-{mode}"
    if framework != "vllm" or tensor_parallel not in TENSOR_PARALLEL_SIZES:
        return ""
    return f"{framework}-{mode}-tp{tensor_parallel}"


def is_cpu_hardware(hardware: str) -> bool:
    """Whether a hardware slug names a CPU (``cpu-<model>``, see :func:`llm_energy.pipeline.hardware.cpu_slug`)."""
    return hardware.startswith("cpu-")


@dataclass(frozen=True)
class Cell:
    """One measurement job: (hardware, model, variant, decoding), and the point families it sweeps.

    Every stage keeps a cell's file at ``<root>/<stage>/<hardware>/<model>/<variant>/<decoding><suffix>``.
    """

    hardware: str
    model: str
    variant: Variant
    decoding: str
    kinds: tuple[str, ...] = DEFAULT_KINDS

    @classmethod
    def of(cls, hardware: str, model: str, variant: str | Variant, decoding: str,
           kinds: tuple[str, ...] = DEFAULT_KINDS) -> Cell:
        """A cell from the names in a path or the config (the variant parsed)."""
        return cls(hardware, model, Variant.parse(variant), decoding, tuple(kinds))

    @property
    def key(self) -> tuple[str, str, str]:
        """(model, variant name, decoding): the cell as the config names it, on any hardware."""
        return self.model, self.variant.name, self.decoding

    @property
    def gpus(self) -> int:
        """GPUs its jobs hold: the tensor-parallel size on GPU hardware, none on CPU."""
        return 0 if is_cpu_hardware(self.hardware) else self.variant.tensor_parallel

    @property
    def has_grid(self) -> bool:
        """Whether it measures the bin grid (needed for workload estimates and replay)."""
        return "grid" in self.kinds

    def on(self, hardware: str) -> Cell:
        """The same cell measured on other hardware (a merged one)."""
        return replace(self, hardware=hardware)

    def path(self, stage: str, suffix: str = ".parquet", root: str = "results") -> str:
        """The cell's file of a stage (``measurements``, ``checked``, ``validation``) or log folder."""
        cell = CELL_PATH.format(hardware=self.hardware, model=self.model, variant=self.variant.name,
                                decoding=self.decoding)
        return f"{root}/{stage}/{cell}{suffix}"

    @property
    def measurement(self) -> str:
        """``results/measurements/...parquet``: one row per point and repeat."""
        return self.path("measurements")

    @property
    def checked(self) -> str:
        """``results/checked/...parquet``: the measurement with each row's validity."""
        return self.path("checked")

    def replay(self, workload: str) -> str:
        """``results/replay/<cell>/<workload>.parquet``: the metered replay of one workload's sample."""
        return self.path("replay", f"/{workload}.parquet")

    @property
    def validation(self) -> str:
        """``results/validation/...parquet``: the cell's replay validation."""
        return self.path("validation")


HARDWARE_SLUG = "[a-z0-9][a-z0-9-]*"


def merged_cells(cells: list[Cell], hardware: str, root: str | Path = "results/measurements") -> list[Cell]:
    """The configured ``cells`` as measured on other hardware and copied into ``root`` (README, merging).

    Every ``root/<other hardware>/`` folder (not ``hardware``) is looked at, in name order; a cell is
    merged where its measurement file is there.
    """
    root = Path(root)
    others = sorted(d.name for d in (root.iterdir() if root.is_dir() else [])
                    if d.is_dir() and d.name != hardware and re.fullmatch(HARDWARE_SLUG, d.name))
    return [c.on(hw) for hw in others for c in cells
            if (root / hw / c.model / c.variant.name / f"{c.decoding}.parquet").is_file()]


# Speculative decoding: with a draft model, or with n-gram proposals looked up in the prompt (no draft).
SPECULATIVE = ("speculative", "prompt-lookup")
