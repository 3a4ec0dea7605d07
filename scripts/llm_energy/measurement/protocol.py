"""What a cell measures and how: its points (input, output, batch; role) and the measurement protocol
(warm-up, repeats, windows, idle and cool-down, the meter), typed with the schema's names and defaults."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields

from llm_energy.measurement.meters import make_meter
from llm_energy.pipeline.config import section_defaults
from llm_energy.pipeline.roles import PADDED


@dataclass(frozen=True)
class Point:
    """One shape to measure. ``role`` says why: ``grid`` (a workload bin) and/or ``sweep`` (Figure 2), or
    ``padded`` (a batch of different prompt lengths padded to ``input_len``, for the energy model)."""

    input_len: int
    output_len: int
    batch_size: int
    role: str = "grid"

    @property
    def padded(self) -> bool:
        return self.role == PADDED

    @property
    def shape(self) -> tuple[int, int, bool]:
        """What the point's prefill run and its eager kernels depend on: all but the output length."""
        return self.input_len, self.batch_size, self.padded


def padded_lengths(input_len: int, batch_size: int) -> list[int]:
    """Prompt lengths of a padded point's batch: evenly up to ``input_len`` (the longest, which the batch
    is padded to), e.g. 64 at batch 4 -> [16, 32, 48, 64]: about half of the batch is padding, as in a
    batch of trace requests in arrival order."""
    return [max(1, round(input_len * (k + 1) / batch_size)) for k in range(batch_size)]


# The paper's larger example count (examples_per_point_large_batch) is for batches above 256.
LARGE_BATCH_FROM = 257


@dataclass
class Protocol:
    """How each point is measured: the keys of the config's ``measurement`` section that the
    measurement reads, by the schema's names, with no default of its own (:meth:`of` fills the
    schema's; :meth:`from_config` takes a validated section)."""

    meter: str
    cpu_watts_per_core: float
    require_measured_energy: bool
    allow_shared_gpu: bool
    warmup_batches: int
    warmup_output_tokens: int | None
    prefill_per_shape: bool
    warmup_per_shape: bool
    repeats: int
    repeat_order: str
    pause_s: float
    idle_s: float
    min_window_s: float
    examples_per_point: int
    examples_per_point_large_batch: int
    power_sample_interval_s: float
    max_batch_probe: list[int]
    seed: int
    nvml_counter_probe_s: float
    cooldown_temp_c: float | None
    cooldown_max_s: float

    @classmethod
    def from_config(cls, m: dict) -> Protocol:
        """From a ``measurement`` section (validated: every key there); keys it does not read are ignored."""
        return cls(**{f.name: copy.deepcopy(m[f.name]) for f in fields(cls)})

    @classmethod
    def of(cls, **keys) -> Protocol:
        """The schema's protocol (the paper's) with ``keys`` set, e.g. ``Protocol.of(repeats=1)``."""
        unknown = set(keys) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"not a protocol key: {', '.join(sorted(unknown))}")
        return cls.from_config({**section_defaults("measurement"), **keys})

    def make_meter(self, n_gpus: int | None = None):
        """The meter this protocol asks for (see :func:`llm_energy.measurement.meters.make_meter`); ``n_gpus``: the
        GPUs the cell's engine uses (its tensor-parallel size), the ones an NVML meter meters."""
        return make_meter(self.meter, watts_per_core=self.cpu_watts_per_core,
                          require_measured=self.require_measured_energy, allow_shared_gpu=self.allow_shared_gpu,
                          sample_interval_s=self.power_sample_interval_s, n_gpus=n_gpus,
                          counter_probe_s=self.nvml_counter_probe_s)

    def batches_per_window(self, batch_size: int) -> int:
        """At least enough batches to cover the point's examples (the paper's 1,024 / 4,096)."""
        examples = self.examples_per_point_large_batch if batch_size >= LARGE_BATCH_FROM \
            else self.examples_per_point
        return max(1, math.ceil(examples / batch_size)) if examples else 1

    def interleaved(self, compiled: bool) -> bool:
        """Whether a variant's points are measured in serpentine rounds (``repeat_order``): never for a
        compiled variant, which warms up (compiles) at every point."""
        return self.repeat_order == "serpentine" and not compiled


def visits(n_points: int, repeats: int, interleaved: bool, first: list[int] | None = None) -> list[tuple[int, range]]:
    """The order a cell measures its points in: (point index, repeats measured at that visit).
    Consecutive: each point once, all its repeats. Interleaved (serpentine): round r measures repeat r
    of every point, in the order ``first`` (default: index order) for even r and in reverse for odd r,
    so that the point at place k of the round has its repeats at times k and 2n - 1 - k, the same mean
    for every point: a linear drift of the meter's level over the job falls on all points alike."""
    if not interleaved or repeats == 1:
        return [(k, range(repeats)) for k in range(n_points)]
    ks = list(range(n_points)) if first is None else list(first)
    if sorted(ks) != list(range(n_points)):
        raise ValueError(f"visits: {ks} is not an order of the {n_points} points")
    order = []
    for r in range(repeats):
        order += [(k, range(r, r + 1)) for k in (ks if r % 2 == 0 else ks[::-1])]
    return order


def spread_order(points: list[Point]) -> list[int]:
    """The order of a serpentine round: the points' shapes spread over the round, each padded point
    right after the unpadded point of its shape. A shape's place is its bit-reversed Morton code of
    (rank of its input length, of its output length, of its batch size) among the cell's: consecutive
    places alternate between short and long inputs, then short and long outputs, then batch sizes, so
    any few consecutive visits cover the corners of the grid. A drift of the meter that is not linear
    in time (a stretch of the job where the shared CPU runs slower) then falls on points spread over
    the grid instead of on one corner of it (in sorted order the long-input points sat together in the middle
    of the round), and the padded batches' extra cost, a difference between a padded point and its
    twin, is measured seconds apart."""
    dims = [sorted({getattr(p, a) for p in points}) for a in ("input_len", "output_len", "batch_size")]
    widths = [(len(d) - 1).bit_length() for d in dims]

    def place(p: Point) -> int:
        ranks = [d.index(v) for d, v in zip(dims, (p.input_len, p.output_len, p.batch_size))]
        code = 0
        for level in range(max(widths)):  # Morton: each rank's bits, highest first, interleaved
            for r, w in zip(ranks, widths):
                if level < w:
                    code = code << 1 | (r >> (w - 1 - level)) & 1
        return int(f"{code:0{max(1, sum(widths))}b}"[::-1], 2)

    return sorted(range(len(points)), key=lambda k: (place(points[k]), points[k].padded, k))
