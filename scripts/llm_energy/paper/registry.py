"""The paper's figures and tables, each named once, here: the function that writes it, the inputs it
reads, the config values it takes and its caption in the Snakemake report.

The workflow builds its targets (``FIGURES``, ``TABLES`` in ``workflow/common.smk``) and the inputs of
each ``figure`` and ``table`` job from this registry, and the rule scripts call :func:`write`. The
Snakefile imports this module when it is read, so it imports nothing heavy at module level (pandas
and matplotlib load only when an output is written).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_energy.pipeline.roles import without_padded

# What an output may read; each is also the keyword its function takes it by.
INPUTS = {
    "estimates": "results/estimates/estimates.parquet (one table, both methods: binned and model)",
    "by_bin": "results/estimates/by_bin.parquet (one table)",
    "savings": "results/estimates/savings.parquet (one table)",
    "measurements": "the checked measurement tables, every cell (concatenated; without the energy model's padded "
                    "batches)",
    "validation": "the replay validation tables (concatenated)",
    "serving": "the serving rate-sweep tables (concatenated): results/serving/, one row per workload and rate",
    "requests": "the per-request tables of the serving rate sweep (concatenated): results/requests/, one row per "
                "request and rate",
    "replay": "the metered replay tables of the grid cells (concatenated): results/replay/, per workload and run",
    "profiles": "results/profile/{workload}.parquet (a table per workload)",
    "stats": "results/profile/{workload}.stats.json (a dict per workload)",
    "bins": "results/bins/{workload}.summary.json (a dict per workload)",
}
# Config values an output may take, by the keyword its function takes them by (workflow/common.smk).
SETTINGS = ("fixed_input", "fixed_output", "task_workloads", "input_edges", "output_edges", "latency_targets")
WORKLOAD_KINDS = ("all", "trace", "task")


@dataclass(frozen=True)
class Output:
    """One figure or table of the paper.

    Its function, ``<module under llm_energy.paper>:<name>``, is called with the loaded ``inputs``, the
    ``settings`` and the ``options`` as keywords, and ``files`` (where to write, from Snakemake).
    """

    name: str
    function: str
    inputs: tuple[str, ...]
    caption: str
    settings: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)  # fixed keywords (Figures 2 and 10 share one function)
    workloads: str = "all"  # per-workload inputs of every workload, or of the "trace" or "task" ones only
    when: str = ""  # a config section whose `enabled` must be true for the output to exist

    def resolve(self) -> Callable:
        """The function that writes this output (imported now: it may pull in matplotlib)."""
        module, name = self.function.split(":")
        return getattr(importlib.import_module(f"llm_energy.paper.{module}"), name)


_SHAPE = ("fixed_input", "fixed_output")

FIGURES: dict[str, Output] = {o.name: o for o in (
    Output("fig1_workload_energy", "figures.workloads:fig_workload_energy", ("estimates", "by_bin"),
           "Estimated energy to serve each whole workload per framework stack, the paper's binned estimate "
           "(hollow) beside the energy model at true lengths (solid), each with repeat spread and systematic "
           "error combined, against the FLOPs ideal (Figure 1 of the paper)."),
    Output("fig2_prefill_decode", "figures.sweeps:fig_prefill_decode", ("measurements",),
           "Prefill energy against input length and decode energy against output length per batch size, "
           "vLLM (Figure 2 of the paper, its main stack).", _SHAPE, {"framework": "vllm", "number": "2"}),
    Output("fig3_decoding", "figures.batch:fig_decoding", ("measurements",),
           "Decoding strategies (greedy, beam search, temperature, top-p, speculative): energy per batch and "
           "per output token against batch size (Figure 3); the note column of the data says what was not "
           "measured.", _SHAPE),
    Output("fig4_moe", "figures.batch:fig_moe", ("measurements",),
           "Dense against mixture-of-experts models: energy and latency per batch against batch size "
           "(Figure 4).", _SHAPE),
    Output("fig5_compile_cudagraphs", "figures.batch:fig_compile_graphs", ("measurements",),
           "torch.compile and CUDA graphs off and on: energy per batch and throughput against batch size, "
           "with the largest batch that ran (Figure 5).", _SHAPE),
    Output("fig6_tensor_parallel", "figures.batch:fig_tensor_parallel", ("measurements",),
           "Tensor parallel 1, 2 and 4: energy and latency per batch against batch size (Figure 6); without "
           "multi-GPU cells the figure says there is no data.", _SHAPE),
    Output("fig7_binning_cdfs", "figures.workloads:fig_binning_cdfs", ("profiles",),
           "CDFs of real and binned input and output lengths per workload (Figure 7).",
           ("input_edges", "output_edges")),
    Output("fig8_tasks", "figures.workloads:fig_tasks", ("estimates", "by_bin"),
           "Classical NLP tasks (IMDB, WMT-14, CNN/DailyMail, WikiText-2): estimated energy per request for "
           "each stack, binned (hollow) and model (solid), and the ideal (Figure 8).", ("task_workloads",)),
    Output("fig9_online_offline", "figures.online:fig_online", ("measurements", "serving", "replay"),
           "Online serving (continuous batching) against offline batches on the same engine (Figure 9): energy "
           "reduction against batch size; energy per request against request rate beside the offline replay of "
           "the same requests, and latency (end-to-end p50 and p99, time to first token p50) against rate.",
           _SHAPE),
    Output("fig10_prefill_decode_transformers", "figures.sweeps:fig_prefill_decode", ("measurements",),
           "Prefill and decode energy against input and output length per batch size, PyTorch with HF "
           "transformers (Figure 10 of the paper).", _SHAPE, {"framework": "transformers", "number": "10"}),
    Output("fig_replay_validation", "figures.workloads:fig_replay_validation", ("validation",),
           "Binned estimate and energy model against a real replay of a sample of each workload, per stack: "
           "error in percent.",
           when="replay"),
    Output("fig_energy_latency_frontier", "figures.frontier:fig_energy_latency_frontier", ("serving",),
           "Energy per request against p90 latency (time per output token; end to end) of every setting of the "
           "serving rate sweep, with the Pareto front (least energy for a given latency) as a step line."),
    Output("fig_request_energy", "figures.requests:fig_request_energy", ("requests",),
           "Single requests of the serving rate sweep, per stack and workload: the distribution (CDF) of energy "
           "per request at each rate, energy per request against its output tokens coloured by rate, and the "
           "distribution of time to first token at each rate. A request's energy is its share of the steady "
           "window's metered energy by the tokens it processed there (prompt tokens weighted by the measured "
           "prefill/decode split); requests with no tokens inside the window are left out of the "
           "energy panels."),
)}

TABLES: dict[str, Output] = {o.name: o for o in (
    Output("table1_workloads", "tables:table_workloads", ("stats",),
           "Request statistics of each trace: requests, and mean, standard deviation, median and p99 of "
           "input and output tokens (Table 1).", workloads="trace"),
    Output("table2_tasks", "tables:table_tasks", ("stats",),
           "Classical NLP tasks: examples, prompt lengths in the measured model's tokens and the fixed "
           "output length (Table 2).", workloads="task"),
    Output("table3_bins", "tables:table_bins", ("bins",),
           "Binning per workload: requests included and excluded, the excluded share of tokens, and the "
           "inflation of binned over real tokens (Table 3)."),
    Output("table4_estimates", "tables:table_estimates", ("estimates", "savings"),
           "Estimated energy to serve each workload per stack, binned and model each with its systematic error, "
           "against the FLOPs ideal, the optimized stack's saving over the baseline, and facility energy, "
           "carbon and cost (Table 4)."),
    Output("table_latency_targets", "tables:table_latency_targets", ("serving",),
           "Least energy per request of online serving that meets each latency target (config "
           "online.latency_targets), and the setting that gets it, or not met with the best latency reached.",
           ("latency_targets",)),
)}


def entry(name: str) -> Output:
    """The registry entry of a figure or table."""
    return FIGURES[name] if name in FIGURES else TABLES[name]


def enabled(outputs: Mapping[str, Output], config: Mapping) -> list[str]:
    """The names of ``outputs`` that this config makes (in registry order)."""
    return [o.name for o in outputs.values() if not o.when or config[o.when]["enabled"]]


def _paths(given) -> list[str]:
    return [given] if isinstance(given, (str, Path)) else list(given)


def _table(path):
    import pandas as pd

    (path,) = _paths(path)  # one file, also when given as a list of one
    return pd.read_parquet(path)


def _tables(paths):
    import pandas as pd

    return pd.concat([pd.read_parquet(p) for p in _paths(paths)], ignore_index=True)


def _measurement_tables(paths):
    """The checked measurement tables without the energy model's padded batches (role ``padded``): every
    figure, table and finding reads the paper's protocol, equal-length batches."""
    return without_padded(_tables(paths))


def _tables_or_empty(paths):
    """The tables concatenated; an empty table when there are none (no serving sweep, replay off)."""
    import pandas as pd

    paths = _paths(paths)
    return _tables(paths) if paths else pd.DataFrame()


def _json(path) -> dict:
    return json.loads(Path(path).read_text())


def _per_workload(suffix: str, read: Callable) -> Callable:
    """A loader of per-workload files into {workload: content}, in the order given; the workload is
    the file's name without ``suffix`` (the paths in INPUTS)."""
    return lambda paths: {Path(p).name.removesuffix(suffix): read(p) for p in _paths(paths)}


LOADERS: dict[str, Callable] = {
    "estimates": _table, "by_bin": _table, "savings": _table, "measurements": _measurement_tables,
    "validation": _tables,
    "serving": _tables_or_empty, "requests": _tables_or_empty, "replay": _tables_or_empty,
    "profiles": _per_workload(".parquet", _table), "stats": _per_workload(".stats.json", _json),
    "bins": _per_workload(".summary.json", _json),
}


def write(name: str, inputs: Mapping[str, Any], settings: Mapping[str, Any], files) -> Any:
    """Write figure or table ``name`` to ``files`` (a ``FigureFiles`` or a ``TableFiles``).

    ``inputs`` maps each input the registry names to its path(s) (Snakemake's named input);
    ``settings`` holds at least the config values it names.
    """
    out = entry(name)
    loaded = {kind: LOADERS[kind](inputs[kind]) for kind in out.inputs}
    return out.resolve()(**loaded, **{s: settings[s] for s in out.settings}, **out.options, files=files)
