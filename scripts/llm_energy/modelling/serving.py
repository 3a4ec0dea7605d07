"""A workload served as a stack serves it, priced by a cell's :class:`~llm_energy.modelling.energy_model.EnergyModel`.

Every request keeps its true (input, output) length and its place in the trace:

- transformers (static batching, what ``Backend.serve`` does in the replay): batches of B requests in
  trace order, each padded to its longest prompt and run until its longest output is done, so every
  sequence of a batch pays for the batch's longest shape, and a batch whose prompts differ in length
  pays the masked attention path too (the model's padded terms). Speculative (assisted) generation runs one
  request at a time.
- vLLM (continuous batching): at most B sequences run; a finished sequence's slot is refilled by the
  next request at the next step. A request admitted at step s is prefilled there (its first token)
  and decodes at steps s+1 .. s+o-1. Each step costs the decode model at that step's occupancy and
  total context; each step that admits pays the prefill's fixed part once and each admitted prompt
  its own part. A batch of B equal requests is thus priced exactly as the model prices the measured
  batch.

Requests longer than the model's context (input + output > ``max_position_embeddings``) are
excluded and counted; requests beyond the largest measured input or output length are extrapolated
and counted.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from llm_energy.modelling.energy_model import EnergyModel
from llm_energy.pipeline.cells import Variant


@dataclass(frozen=True)
class Served:
    """The energy of a workload as served, and what the count says about it."""

    energy_j: float
    prefill_energy_j: float
    decode_energy_j: float
    n_requests: int
    n_included: int
    n_excluded: int  # beyond the model's context
    n_extrapolated: int  # beyond the largest measured input or output length
    n_steps: int  # static: batches; continuous: engine steps
    batch_size: int


def static_batches(inputs: np.ndarray, outputs: np.ndarray, batch_size: int) -> tuple[np.ndarray, ...]:
    """Batches of ``batch_size`` in order: (longest input, longest output, requests, padded) of each;
    a batch is padded when its prompts differ in length."""
    n = len(inputs)
    starts = np.arange(0, n, batch_size)
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool)
    longest_in = np.maximum.reduceat(inputs, starts)
    padded = np.minimum.reduceat(inputs, starts) < longest_in
    longest_out = np.maximum.reduceat(outputs, starts)
    sizes = np.diff(np.append(starts, n))
    return longest_in, longest_out, sizes, padded


def static_energy(model: EnergyModel, inputs: np.ndarray, outputs: np.ndarray,
                  batch_size: int) -> tuple[float, float, int]:
    """(prefill, decode, batches) of static batches padded to their longest request (a padded batch
    pays the model's padded terms where the cell measured them)."""
    longest_in, longest_out, sizes, padded = static_batches(inputs, outputs, batch_size)
    prefill = float(np.sum(model.prefill_j(longest_in, sizes, padded)))
    decode = float(np.sum(model.decode_j(longest_in, longest_out, sizes, padded)))
    return prefill, decode, len(sizes)


def admission_steps(outputs: np.ndarray, batch_size: int) -> np.ndarray:
    """The step at which each request (in order) is admitted when at most ``batch_size`` run at once.

    A request admitted at step s with o output tokens holds its slot through step s + o - 1; the
    next request waiting takes the slot at step s + o.
    """
    n = len(outputs)
    steps = np.zeros(n, dtype=np.int64)
    first = min(batch_size, n)
    free = [int(o) for o in outputs[:first]]  # slot free times of the first batch (admitted at 0)
    heapq.heapify(free)
    for j in range(first, n):
        s = heapq.heappop(free)
        steps[j] = s
        heapq.heappush(free, s + int(outputs[j]))
    return steps


def occupancy(inputs: np.ndarray, outputs: np.ndarray,
              admitted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per engine step t (0 .. the last one with work): sequences decoding at t and their total
    context (prompt + tokens so far).

    A request admitted at s decodes at s+1 .. s+o-1; at step t its context is input + (t - s).
    Difference arrays make it one pass whatever the trace's length.
    """
    inputs, outputs, admitted = (np.asarray(x, dtype=np.int64) for x in (inputs, outputs, admitted))
    last = int(np.max(admitted + outputs)) if len(admitted) else 0  # steps 0 .. last - 1 have work
    start, stop = admitted + 1, admitted + outputs  # decode steps [start, stop)
    busy = stop > start
    count = np.zeros(last + 1)
    base = np.zeros(last + 1)  # sum of (input - s) over the running requests; context = base + t * count
    np.add.at(count, start[busy], 1.0)
    np.add.at(count, stop[busy], -1.0)
    offset = (inputs - admitted)[busy].astype(np.float64)
    np.add.at(base, start[busy], offset)
    np.add.at(base, stop[busy], -offset)
    n_running = np.cumsum(count)[:last]
    context = np.cumsum(base)[:last] + np.arange(last) * n_running
    return n_running, context


def continuous_energy(model: EnergyModel, inputs: np.ndarray, outputs: np.ndarray,
                      batch_size: int) -> tuple[float, float, int]:
    """(prefill, decode, engine steps) of continuous batching with at most ``batch_size`` running."""
    if len(inputs) == 0:
        return 0.0, 0.0, 0
    admitted = admission_steps(outputs, batch_size)
    n_running, context = occupancy(inputs, outputs, admitted)
    decode = float(np.sum(model.step_j(n_running, context)))
    prefill = len(np.unique(admitted)) * model.prefill_fixed_j() + float(np.sum(model.prefill_per_seq_j(inputs)))
    return prefill, decode, len(n_running)


def serve(model: EnergyModel, inputs, outputs, batch_size: int, framework: str, decoding: str = "greedy",
          context_len: int | None = None) -> Served:
    """The energy of serving the requests (true lengths, trace order) as ``framework`` does."""
    inputs = np.maximum(np.asarray(inputs, dtype=np.int64), 1)  # an empty prompt still has its BOS token
    outputs = np.maximum(np.asarray(outputs, dtype=np.int64), 1)  # every request runs one step at least
    n = len(inputs)
    keep = np.ones(n, dtype=bool) if not context_len else (inputs + outputs <= context_len)
    inputs, outputs = inputs[keep], outputs[keep]
    b = 1 if framework == "transformers" and decoding == "speculative" else int(batch_size)
    how = static_energy if framework == "transformers" else continuous_energy
    prefill, decode, steps = how(model, inputs, outputs, b)
    extrapolated = int(np.sum((inputs > model.max_input) | (outputs > model.max_output))) if model.max_input else 0
    return Served(energy_j=prefill + decode, prefill_energy_j=prefill, decode_energy_j=decode, n_requests=n,
                  n_included=int(keep.sum()), n_excluded=int(n - keep.sum()), n_extrapolated=extrapolated,
                  n_steps=steps, batch_size=b)


def framework_of(variant) -> str:
    """``transformers`` or ``vllm`` from a variant (its name or a :class:`~llm_energy.pipeline.cells.Variant`)."""
    return (variant if isinstance(variant, Variant) else Variant.parse(str(variant))).framework


def per_request_j(served: Served) -> float:
    """Energy per included request (NaN when none)."""
    return served.energy_j / served.n_included if served.n_included else math.nan
