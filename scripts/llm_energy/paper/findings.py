"""Every finding of the paper against this run's measurements: one row each, with a verdict computed
by a criterion written in the row, never typed in.

A verdict is ``reproduced``, ``not reproduced`` or ``not testable here`` (the cells that would test it
were not measured; the row names them). Criteria are fixed here, before any data is seen: where the
paper gives a number, "sign of the effect and magnitude within 2x"; where its claim is qualitative
(a shape, an ordering), the shape or the ordering. Each finding is computed per hardware.

Energy from the CPU estimate (``cpu-estimate``) is CPU time times a constant, so on CPU a finding about
energy against time (compile and CUDA graphs "at no extra energy", tensor parallel "less latency, more
energy") cannot separate the two: the row says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llm_energy.paper.criteria import (
    COLUMNS,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    REPRODUCED,
    Data,
    Result,
    compile_helps_small_batch,
    cudagraphs_help_small_batch,
    decode_dominates,
    decode_linear,
    meta_values,
    moe_costs_more,
    online_saves_large_batch,
    other_decoding_little,
    prefill_shape,
    speculative_large_batch,
    speculative_small_batch,
    tensor_parallel_tradeoff,
    vllm_beats_pytorch,
)
from llm_energy.paper.figures.data import batch_table
from llm_energy.paper.savings import PAPER_ABOVE_IDEAL, above_ideal, optimized_savings
from llm_energy.paper.testability import (
    compile_cannot_tell,
    cudagraphs_cannot_tell,
    decoding_cannot_tell,
    ideal_cannot_tell,
    online_cannot_tell,
)
from llm_energy.paper.tex import tex_escape
from llm_energy.pipeline.roles import without_padded


def _used_rows(m: pd.DataFrame, evidence: str) -> pd.DataFrame:
    """The measurement rows of the models a finding's evidence names (all rows when it names none)."""
    if m.empty or "model" not in m:
        return m
    named = [x for x in m["model"].dropna().astype(str).unique() if x in evidence]
    return m[m["model"].isin(named)] if named else m


def _on(t: pd.DataFrame, hw: str) -> pd.DataFrame:
    return t[t["hardware"].astype(str) == hw] if not t.empty and "hardware" in t else t


def meter_noise(validation: pd.DataFrame | None) -> dict[str, float]:
    """Per hardware, how far the meter repeats between two jobs, in %: the median over its replayed cells
    of the control points' drift and half-range in quadrature (``meter_interval_pct`` of the
    validation). Empty without validation rows (replay off): the gate then has the repeats only."""
    if validation is None or validation.empty or "meter_drift_pct" not in validation:
        return {}
    v = validation
    half = (v["control_ratio_max_pct"] - v["control_ratio_min_pct"]) / 2
    width = np.hypot(v["meter_drift_pct"], half)
    width = width.groupby(v["hardware"].astype(str)).median().dropna()
    return {hw: float(w) for hw, w in width.items()}


def gate(res: Result, meter_pct: float | None) -> tuple[str, float, str]:
    """The verdict after the noise gate, the interval's half-width (%) and what it is made of.

    The interval of a criterion's number: the spread of its repeats and the meter's drift between
    jobs, which enters twice (each of the two cells compared was measured in its own job), in
    quadrature. A verdict whose number, moved by the interval either way, lands on both sides of its
    criterion's boundary is ``inconclusive``: the measurements cannot tell it here."""
    if res.noise_basis:  # gated by the criterion itself
        return res.verdict, res.our_spread, res.noise_basis
    if res.passes is None or math.isnan(res.our_value):
        return res.verdict, math.nan, ""
    spread = 0.0 if math.isnan(res.our_spread) else res.our_spread
    meter = meter_pct if meter_pct is not None and not math.isnan(meter_pct) else None
    noise = math.hypot(spread, math.sqrt(2) * meter) if meter is not None else spread
    basis = (f"repeats {spread:.1f}%, meter between jobs {meter:.1f}% (x sqrt 2, two jobs)" if meter is not None
             else f"repeats {spread:.1f}% (the meter's drift between jobs unknown: no replay control points)")
    value = res.our_value if res.gate_value is None else res.gate_value
    if res.passes(value - noise) != res.passes(value + noise):
        return INCONCLUSIVE, noise, basis
    return res.verdict, noise, basis


def findings_table(measurements: pd.DataFrame, estimates: pd.DataFrame, savings: pd.DataFrame,
                   fixed_input: int, fixed_output: int, validation: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per finding and hardware (``COLUMNS``); a finding with no data on any hardware gets one
    ``not testable here`` row naming the cells that would test it. The energy model's padded batches
    (role ``padded``) are left out, as every figure and table leaves them out: a padded point shares
    its shape with a grid point and would move that point's mean."""
    measurements = without_padded(measurements)
    noise_of = meter_noise(validation)
    hardware = sorted(measurements["hardware"].dropna().astype(str).unique()) if not measurements.empty else []
    batches = batch_table(measurements, fixed_input, fixed_output)
    rows = []
    for f in FINDINGS:
        done = False
        for hw in hardware:
            data = Data(*(_on(t, hw) for t in (measurements, batches, estimates, savings)), fixed_input, fixed_output,
                        _on(validation if validation is not None else pd.DataFrame(), hw), noise_of.get(hw))
            res = f.compute(data)
            if res is None:
                continue
            done = True
            used = _used_rows(data.measurements, res.evidence)
            verdict, noise, basis = gate(res, noise_of.get(hw))
            evidence = res.evidence + (f"; its interval, +-{noise:.1f}% ({basis}), lands on both sides of the "
                                       f"criterion (ungated: {res.verdict})" if verdict != res.verdict else "")
            why = f.cannot_tell(data)
            if why:  # measured, but this hardware and these models cannot discriminate it
                verdict, evidence = NOT_TESTABLE, (f"not testable here: {why}; would be tested by: {f.needs}. "
                                                   f"Measured here, not counted: {res.verdict} ({evidence})")
            rows.append({"finding": f.name, "paper_value": f.paper_value, "our_value": res.our_value,
                         "our_spread": res.our_spread, "our_noise": noise, "noise_basis": basis, "hardware": hw,
                         "energy_source": ",".join(res.sources or meta_values(used, "energy_source")),
                         "weights": ",".join(res.weights or meta_values(used, "weights")),
                         "verdict": verdict, "criterion": f.criterion, "evidence": evidence})
        if not done:
            rows.append({"finding": f.name, "paper_value": f.paper_value, "our_value": math.nan,
                         "our_spread": math.nan, "our_noise": math.nan, "noise_basis": "",
                         "hardware": ",".join(hardware), "energy_source": "",
                         "weights": "", "verdict": NOT_TESTABLE, "criterion": f.criterion,
                         "evidence": _failed_validation(f, measurements, hardware, fixed_input, fixed_output)
                         or f"not measured here; would be tested by: {f.needs}"})
    return pd.DataFrame(rows, columns=COLUMNS)


def _failed_validation(f: Finding, measurements: pd.DataFrame, hardware: list[str], fixed_input: int,
                       fixed_output: int) -> str:
    """For a finding with no verdict: where the rows it needs were measured but failed validation, which
    cells and why, and what the criterion would read on every ok row (not counted); else ''."""
    if measurements.empty or "valid" not in measurements:
        return ""
    invalid = ~measurements["valid"].fillna(False).astype(bool)
    if "status" in measurements:
        invalid &= measurements["status"] == "ok"
    if not invalid.any():
        return ""
    every_ok = measurements.assign(valid=True)
    for hw in hardware:
        m = _on(every_ok, hw)
        res = f.compute(Data(m, batch_table(m, fixed_input, fixed_output), pd.DataFrame(), pd.DataFrame(),
                             fixed_input, fixed_output))
        if res is None:
            continue
        bad = _used_rows(_on(measurements[invalid], hw), res.evidence)
        if "variant" in bad:
            named = [v for v in bad["variant"].astype(str).unique() if v in res.evidence]
            bad = bad[bad["variant"].astype(str).isin(named)]
        if bad.empty:
            continue
        reason = bad["invalid_reason"] if "invalid_reason" in bad else pd.Series("", index=bad.index)
        cells = "; ".join(
            f"{'/'.join(map(str, k))} ({len(g)} rows: {', '.join(sorted(set(reason[g.index].astype(str))))})"
            for k, g in bad.groupby(["model", "variant", "decoding"], sort=True))
        return (f"measured on {hw}, but rows it needs failed validation: {cells}; on every ok row it would read "
                f"{res.verdict} ({res.evidence}), which is not counted; would be tested by: {f.needs}, measured "
                "again with rows that pass validation")
    return ""


def _num(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def findings_markdown(table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    head = ("# Findings of the paper against this run\n\n"
            "Each verdict is computed from this run's measurements by the criterion in its row "
            "(llm_energy/paper/criteria.py). " + ", ".join(f"{counts.get(v, 0)} {v}" for v in
                                                      (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE))
            + ".\nA verdict is inconclusive when its number, moved either way by its interval (noise: the "
            "repeats' spread and the meter's drift between jobs, measured by the replays' control points), "
            "lands on both sides of its criterion.\n"
            "Energy from `cpu-estimate` is CPU time times a constant; weights `random` are seeded random "
            "models, whose speculative acceptance and output lengths differ from trained ones.\n\n")
    lines = ["| finding | paper | ours | spread | noise (+-) | hardware | energy | weights | verdict | criterion | "
             "evidence |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        noise = f"{_num(r.our_noise)} ({r.noise_basis})" if r.noise_basis else ""
        cells = [r.finding, r.paper_value, _num(r.our_value), _num(r.our_spread), noise, r.hardware, r.energy_source,
                 r.weights, f"**{r.verdict}**", r.criterion, r.evidence]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return head + "\n".join(lines) + "\n"


def findings_tex(table: pd.DataFrame) -> str:
    rows = [f"{tex_escape(r.finding)} & {tex_escape(r.paper_value)} & {_num(r.our_value)} & "
            f"{tex_escape(r.hardware)} & {tex_escape(r.verdict)}" for r in table.itertuples()]
    return ("\\begin{table*}[t]\n  \\centering\\small\n  \\resizebox{\\textwidth}{!}{%\n"
            "  \\begin{tabular}{p{6cm}p{4.5cm}rll}\n    \\toprule\n"
            "    finding & paper & ours & hardware & verdict \\\\\n    \\midrule\n"
            + "".join(f"    {r} \\\\\n" for r in rows)
            + "    \\bottomrule\n  \\end{tabular}}\n"
            "  \\caption{Findings of the paper against this run, each verdict computed by the criterion in "
            "paper/findings.csv (with its evidence).}\n  \\label{tab:findings}\n\\end{table*}\n")


@dataclass(frozen=True)
class Finding:
    name: str
    paper_value: str
    criterion: str
    needs: str  # the cells that test it, said when they are missing
    compute: Callable[..., Result | None]  # (Data) -> Result, None when not testable
    # (Data) -> why this hardware and these models cannot discriminate the finding (None: they can)
    cannot_tell: Callable[..., str | None] = lambda d: None


FINDINGS: tuple[Finding, ...] = (
    Finding("Prefill energy is flat at short inputs, then grows with input length (Fig. 2, 10)",
            "flat, then slope ~1 (log-log) above ~128 tokens",
            "every curve's first log-log step flatter than its last (inconclusive where a curve's difference is "
            "within one standard error of its repeats), the median first step flat (slope <= 0.5; inconclusive "
            "where the median curve's standard error reaches across 0.5) "
            "and the median last step in [0.5, 2]",
            "a greedy cell with sweep points over >= 3 input lengths", prefill_shape),
    Finding("Decode energy grows linearly with output length (Fig. 2, 10)", "slope 1 (log-log)",
            "every curve's fitted log-log slope in [0.75, 1.25]",
            "a greedy cell with sweep points over >= 3 output lengths", decode_linear),
    Finding("Decode dominates energy but for the shortest generations (Fig. 2)", "decode > 50% of energy",
            "decode share > 50% at every sweep point with output >= 32 (our_value: the smallest share, %)",
            "a greedy cell with sweep points at output >= 32", decode_dominates),
    Finding("Speculative decoding saves energy at small batch (Fig. 3)", "up to 29.14% saved at batch <= 16",
            "largest saving at batch <= 16: same sign and within 2x of 29.14%",
            "greedy and speculative cells of one model and variant at batch <= 16", speculative_small_batch),
    Finding("Speculative decoding costs energy at large batch (Fig. 3)", "25.65% more at batch 128",
            "change at the largest batch (>= 64): same sign and within 2x of +25.65%",
            "greedy and speculative cells at batch >= 64 (a GPU)", speculative_large_batch),
    Finding("Other decoding strategies differ little from greedy (Fig. 3)", "much less than speculative",
            "temperature and top-p within 15% of greedy at every batch, and less than speculative's largest "
            "(our_value: their largest |change|, %)",
            "greedy, temperature and top-p cells of a model of >= 1B parameters", other_decoding_little,
            decoding_cannot_tell),
    Finding("MoE costs more than dense at equal active parameters (Fig. 4)", "up to 54.24% more (OLMoE vs OLMo-1B)",
            "largest change: same sign and within 2x of +54.24%",
            "a dense and an MoE model (moe column) on one variant", moe_costs_more),
    Finding("torch.compile helps most at small batch (Fig. 5)", "1.96% to 29.90% by GPU, most at small batch",
            "saving at the smallest batch > 0 and >= the saving at the largest (magnitude varies by GPU: not judged)",
            "transformers-eager and transformers-compile at >= 2 batch sizes, on a GPU", compile_helps_small_batch,
            compile_cannot_tell),
    Finding("CUDA graphs help most at small batch (Fig. 5)", "2.97% to 25.47% by GPU, most at small batch",
            "saving at the smallest batch > 0 and >= the saving at the largest (magnitude varies by GPU: not judged)",
            "vllm-eager and vllm-cudagraph at >= 2 batch sizes, on a GPU", cudagraphs_help_small_batch,
            cudagraphs_cannot_tell),
    Finding("vLLM uses less energy than PyTorch (Fig. 5)", "vLLM lower at every batch",
            "vllm-eager below transformers-eager at every batch size (our_value: median saving, %)",
            "transformers-eager and vllm-eager at the fixed shape", vllm_beats_pytorch),
    Finding("Tensor parallel cuts latency but raises energy (Fig. 6)", "TP2: -40.16% latency, +29.3% energy",
            "TP2 vs TP1 at batch 1: both within 2x of the paper's, same signs (our_value: energy change, %)",
            "a -tp2 variant beside its -tp1 (2 GPUs)", tensor_parallel_tradeoff),
    Finding("Online serving saves energy at large batch (Fig. 9)", "up to ~5% at large batch, costs at small",
            "saving at the largest batch > 0 and > the saving at the smallest",
            "vllm-online and vllm-eager at >= 2 batch sizes up to >= 64, on a GPU (NVML)", online_saves_large_batch,
            online_cannot_tell),
    Finding("Optimized stack saves most of the baseline's energy (Table 4)", "73.00% / 37.58% / 72.18% "
            "(BurstGPT / Azure code / Azure conv.)", "every trace's saving within 2x of the paper's, same sign, "
            "on the metered replays of the same requests where both stacks were replayed (else the binned "
            "estimates); inconclusive where a replayed saving's interval straddles that (our_value: median, %)",
            "a comparison (config `comparisons`) with both stacks in the grid",
            optimized_savings),
    Finding("Every stack uses more energy than the FLOPs ideal (Table 4)",
            f"PyTorch {PAPER_ABOVE_IDEAL['transformers']}, vLLM {PAPER_ABOVE_IDEAL['vllm']} above",
            "every estimate above its ideal, PyTorch's median excess above vLLM's (our_value: smallest excess, %)",
            "workload estimates with a hardware spec and a measured energy (NVML, RAPL)", above_ideal,
            ideal_cannot_tell),
)
