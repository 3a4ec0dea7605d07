"""An energy model of one cell, fitted to the cell's own measured points (grid and sweeps, every batch size).

The paper's binned estimate reads one measured batch per bin; this model gives the energy of a batch
at any true (input I, output O, batch B), split into its prefill and decode parts, so that a workload
can be served at its real lengths (``llm_energy.modelling.serving``). Its form follows what a step of a
transformer costs:

    prefill(I, B) = a [+ a1·B] + b·B·I + c·B·I²              (one forward pass over B prompts of I tokens:
                                                               fixed launch cost, [per-sequence work,]
                                                               linear layers, attention)
    decode step   = d + e·n + f·Σ context                      (n sequences in the step, each attending to
                                                               its whole context)
    decode(I, O, B) = Σ over the O − 1 steps after the first token
                    = (O−1)(d + e·B) + f·B·((O−1)·I + O(O−1)/2)

The measured prefill energy is a one-token run (it includes the first token), and the decode energy
is the full run minus it, as the measurement protocol defines them. The coefficients are fitted
by non-negative least squares on relative errors (each measured prefill and each full-run energy
divided by itself), so that a 1 J point and a 1 kJ point weigh alike and no term can go negative
when a short-length point is noisy. Non-negative, every term has its physical sign, and a request
beyond the measured lengths is extrapolated along the same physics (counted, never dropped).

Padded batches (transformers' static batching): a batch of prompts of different lengths is left-padded
to its longest and runs through the masked attention path, dearer than the equal-length batch of the
same shape (0-26 % on CPU here, growing with the prompt length). Such a cell also measures points of
role ``padded``, and the model gains four non-negative terms that only padded batches pay:

    padded extra = g·B·I + h·B·I²  (prefill)  +  (O−1)·k + l·B·((O−1)·I + O(O−1)/2)  (decode)

Leave-one-point-out error: each measured point is left out in turn, the model refitted without it
and its full-run energy predicted; the median and the largest |error| over the grid points say how
well the model predicts a point it has not seen. The per-sequence prefill term ``a1`` is kept where
it lowers that error (:data:`FORMS`, :func:`fit_cell`); the padded decode terms are kept where padded
points measure them at a short and a long input (:func:`_with_padded_decode`).

Not modelled: vLLM's token budget per step (``max_num_batched_tokens``), which splits a long batch's
prefill over several steps (in the measured points as in the replay, so the fit absorbs it on
average), and the KV-cache capacity, which may hold fewer than B long sequences at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from llm_energy import UserError
from llm_energy.models.flops import read_config_json
from llm_energy.pipeline.roles import is_grid, is_padded

log = logging.getLogger(__name__)

PREFILL_TERMS = ("prefill_fixed", "prefill_seq", "prefill_token", "prefill_token_sq")
DECODE_TERMS = ("decode_step", "decode_seq_step", "decode_context")
# What a padded batch pays on top (cells with points of role ``padded`` only; zero for an equal-length batch).
PADDED_PREFILL_TERMS = ("padded_prefill_token", "padded_prefill_token_sq")
PADDED_DECODE_TERMS = ("padded_decode_step", "padded_decode_context")
PADDED_TERMS = (*PADDED_PREFILL_TERMS, *PADDED_DECODE_TERMS)
# The forms a cell's model may take, fewest terms first: the one of the module docstring, and the same
# with a per-sequence prefill cost (B alone: the logits and sampling of each sequence's first token,
# the engine's per-request work), which predicted vLLM's points better on the default run and
# transformers' slightly worse. Each cell takes the form with the smaller leave-one-out error.
DEFAULT_TERMS = ("prefill_fixed", "prefill_token", "prefill_token_sq", *DECODE_TERMS)
PER_SEQUENCE_TERMS = ("prefill_fixed", "prefill_seq", "prefill_token", "prefill_token_sq", *DECODE_TERMS)
FORMS = (DEFAULT_TERMS, PER_SEQUENCE_TERMS)
FORM_MARGIN_PCT = 0.1  # a form with more terms is taken only where it lowers the median LOO error by more
POINT = ["input_len", "output_len", "batch_size"]
# A padded decode term is a candidate only where some padded point shows decode: its decode at least this
# share of its full run (at a short output, decode is a small difference of two noisy windows).
DECODE_VISIBLE_SHARE = 0.5
# ... and the padded points that show decode must reach a long context: at least this share of the longest
# padded input, so that the per-context-token term is measured at long prompts, not extrapolated from short ones.
DECODE_CONTEXT_SHARE = 0.25
# Diagnostics: a term is flagged when it supplies more than FLAG_USE_SHARE of a prediction while no
# measured point shows it above FLAG_SUPPORT_SHARE of that point's energy (an extrapolation).
FLAG_USE_SHARE, FLAG_SUPPORT_SHARE = 0.5, 0.1


class ModelNotFittable(UserError):
    """A cell has too few valid measured points for its energy model (one line saying why)."""


def _as_float(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def prefill_features(input_len, batch_size, padded=False) -> dict[str, np.ndarray]:
    """Each prefill term's multiplier for batches of ``batch_size`` prompts of ``input_len`` tokens
    (``padded``: prompts of different lengths padded to ``input_len``)."""
    i, b, p = np.broadcast_arrays(_as_float(input_len), _as_float(batch_size), _as_float(padded))
    return {"prefill_fixed": np.ones_like(i), "prefill_seq": b, "prefill_token": b * i, "prefill_token_sq": b * i * i,
            "padded_prefill_token": p * b * i, "padded_prefill_token_sq": p * b * i * i}


def decode_features(input_len, output_len, batch_size, padded=False) -> dict[str, np.ndarray]:
    """Each decode term's multiplier summed over the ``output_len - 1`` steps after the first token."""
    i, o, b, p = np.broadcast_arrays(_as_float(input_len), _as_float(output_len), _as_float(batch_size),
                                     _as_float(padded))
    steps = np.maximum(o - 1.0, 0.0)
    context = b * (steps * i + steps * (steps + 1.0) / 2.0)
    return {"decode_step": steps, "decode_seq_step": steps * b, "decode_context": context,
            "padded_decode_step": p * steps, "padded_decode_context": p * context}


def measured_points(measurements: pd.DataFrame) -> pd.DataFrame:
    """Mean over valid repeats of every measured point (any role, every batch size).

    Columns: ``input_len``, ``output_len``, ``batch_size``, ``padded`` (a padded batch), ``energy_j``,
    ``prefill_energy_j``, ``n_repeats``, ``grid`` (the point is one of the bin grid's).
    """
    m = measurements
    keep = pd.Series(True, index=m.index)
    if "status" in m:
        keep &= m["status"] == "ok"
    if "valid" in m:
        keep &= m["valid"].fillna(False).astype(bool)
    m = m[keep & np.isfinite(m["energy_j"]) & (m["energy_j"] > 0)
          & np.isfinite(m["prefill_energy_j"]) & (m["prefill_energy_j"] > 0)]
    role = m["role"].astype(str) if "role" in m else pd.Series("grid", index=m.index)
    m = m.assign(grid=is_grid(role), padded=is_padded(role))
    out = m.groupby([*POINT, "padded"]).agg(energy_j=("energy_j", "mean"),
                                            prefill_energy_j=("prefill_energy_j", "mean"),
                                            n_repeats=("energy_j", "size"), grid=("grid", "any")).reset_index()
    return out.astype({c: "int64" for c in POINT})


def nnls(a: np.ndarray, y: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """Non-negative least squares (Lawson and Hanson's active-set method, as scipy's ``nnls``):
    min |a x - y| with x >= 0. Columns are scaled to unit norm first, so that terms of very different
    magnitudes (B·I² beside 1) are treated alike."""
    k = a.shape[1]
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    a = a / scale
    x, free = np.zeros(k), np.zeros(k, dtype=bool)
    tol = 10 * np.finfo(float).eps * max(a.shape) * max(np.abs(a).sum(axis=0).max(), 1.0)
    for _ in range(max_iter):
        grad = a.T @ (y - a @ x)
        grad[free] = -np.inf
        if free.all() or grad.max() <= tol:
            break
        free[int(np.argmax(grad))] = True
        while True:
            s = np.zeros(k)
            s[free], *_ = np.linalg.lstsq(a[:, free], y, rcond=None)
            if (s[free] > 0).all():
                break
            bad = free & (s <= 0)
            alpha = np.min(x[bad] / (x[bad] - s[bad]))
            x = x + alpha * (s - x)
            free &= x > tol
            x[~free] = 0.0
        x = s
    return x / scale


def _design(points: pd.DataFrame, terms: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Rows (relative-error weighted) of the prefill runs then the full runs; the targets are ones."""
    i, o, b = (points[c].to_numpy() for c in POINT)
    p = points["padded"].to_numpy() if "padded" in points else False
    pre, dec = prefill_features(i, b, p), decode_features(i, o, b, p)
    zero = np.zeros(len(points))
    pre_rows = np.column_stack([pre.get(t, zero) for t in terms])
    full_rows = np.column_stack([pre[t] if t in pre else dec[t] for t in terms])
    rows = np.vstack([pre_rows / points["prefill_energy_j"].to_numpy()[:, None],
                      full_rows / points["energy_j"].to_numpy()[:, None]])
    return rows, np.ones(len(rows))


def fit_coefficients(points: pd.DataFrame, terms: tuple[str, ...] = DEFAULT_TERMS) -> dict[str, float]:
    """The non-negative coefficients of ``terms`` that best fit the points' prefill and full-run energies."""
    rows, target = _design(points, terms)
    return dict(zip(terms, map(float, nnls(rows, target))))


@dataclass(frozen=True)
class EnergyModel:
    """A fitted cell: coefficients of the terms, the measured ranges, and its leave-one-out errors."""

    coef: dict[str, float]
    terms: tuple[str, ...] = DEFAULT_TERMS
    max_input: int = 0  # the largest measured input / output length / batch: beyond them is extrapolated
    max_output: int = 0
    max_batch: int = 0
    n_points: int = 0
    loo_median_error_pct: float = math.nan  # median |error| over the grid points left out one at a time
    loo_max_error_pct: float = math.nan
    loo: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)
    form_note: str = ""  # why a candidate term was left out of the form (empty when none was)

    def loo_by_role(self) -> dict[str, float]:
        """Median |leave-one-out error| (%) over the points of each role: grid, sweep, padded."""
        if self.loo.empty:
            return {}
        kind = point_kind(self.loo)
        return {k: float(self.loo.loc[kind == k, "error_pct"].abs().median()) for k in ("grid", "sweep", "padded")
                if (kind == k).any()}

    def contributions(self, input_len, output_len, batch_size, padded=False) -> dict[str, np.ndarray]:
        """Each term's part of a batch's full-run energy (they sum to :meth:`batch_j`)."""
        pre = prefill_features(input_len, batch_size, padded)
        dec = decode_features(input_len, output_len, batch_size, padded)
        return {t: self._c(t) * (pre[t] if t in pre else dec[t]) for t in self.terms}

    def support_shares(self, points: pd.DataFrame) -> dict[str, float]:
        """Each term's largest share of a measured point's modelled energy: how well the points show it."""
        padded = points["padded"].to_numpy() if "padded" in points else False
        parts = self.contributions(*(points[c].to_numpy() for c in POINT), padded)
        total = sum(parts.values())
        total = np.where(total > 0, total, np.nan)
        return {t: float(np.nanmax(v / total)) if len(points) else math.nan for t, v in parts.items()}

    def only(self, term: str) -> EnergyModel:
        """The model with every coefficient but ``term``'s set to zero (the model is linear in them, so a
        workload served by it is that term's part of the whole model's estimate)."""
        return EnergyModel({term: self._c(term)}, terms=self.terms, max_input=self.max_input,
                           max_output=self.max_output, max_batch=self.max_batch, n_points=self.n_points)

    def _c(self, term: str) -> float:
        return self.coef.get(term, 0.0)

    def prefill_fixed_j(self) -> float:
        """The part of a prefill step that does not grow with its prompts."""
        return self._c("prefill_fixed")

    def prefill_per_seq_j(self, input_len) -> np.ndarray:
        """What each prompt of ``input_len`` tokens adds to a prefill step."""
        i = _as_float(input_len)
        return self._c("prefill_seq") + self._c("prefill_token") * i + self._c("prefill_token_sq") * i * i

    def prefill_j(self, input_len, batch_size, padded=False) -> np.ndarray:
        """Prefill (one-token run) energy of batches of ``batch_size`` prompts of ``input_len`` tokens
        (``padded``: of different lengths, padded to ``input_len``)."""
        f = prefill_features(input_len, batch_size, padded)
        return self.prefill_fixed_j() + _as_float(batch_size) * self.prefill_per_seq_j(input_len) \
            + sum(self._c(t) * f[t] for t in PADDED_PREFILL_TERMS)

    def step_j(self, n_running, context_sum) -> np.ndarray:
        """One decode step with ``n_running`` sequences attending to ``context_sum`` tokens in all (0 when idle)."""
        n = _as_float(n_running)
        e = self._c("decode_step") + self._c("decode_seq_step") * n + self._c("decode_context") * _as_float(context_sum)
        return np.where(n > 0, e, 0.0)

    def decode_j(self, input_len, output_len, batch_size, padded=False) -> np.ndarray:
        """Decode energy (full run minus prefill) of a batch run to ``output_len`` tokens."""
        f = decode_features(input_len, output_len, batch_size, padded)
        return sum(self._c(t) * f[t] for t in (*DECODE_TERMS, *PADDED_DECODE_TERMS))

    def batch_j(self, input_len, output_len, batch_size, padded=False) -> np.ndarray:
        """Energy of one batch of ``batch_size`` requests of (``input_len``, ``output_len``), as measured."""
        return self.prefill_j(input_len, batch_size, padded) + self.decode_j(input_len, output_len, batch_size, padded)


def leave_one_out(points: pd.DataFrame, terms: tuple[str, ...] = DEFAULT_TERMS) -> pd.DataFrame:
    """Each point's full-run energy predicted by the model fitted without it (``error_pct``: positive
    when the prediction is higher)."""
    preds = []
    for k in range(len(points)):
        coef = fit_coefficients(points.drop(index=points.index[k]), terms)
        row = points.iloc[[k]]
        padded = row["padded"].to_numpy() if "padded" in row else False
        preds.append(float(EnergyModel(coef).batch_j(*(row[c].to_numpy() for c in POINT), padded)[0]))
    out = points.copy()
    out["loo_energy_j"] = preds
    out["error_pct"] = 100.0 * (out["loo_energy_j"] / out["energy_j"] - 1.0)
    return out


def point_kind(points: pd.DataFrame) -> pd.Series:
    """``padded``, ``grid`` or ``sweep`` for each measured point (a grid point also on a sweep is grid)."""
    kind = np.where(points["padded"], "padded", np.where(points["grid"], "grid", "sweep"))
    return pd.Series(kind, index=points.index)


def decode_shown(points: pd.DataFrame) -> pd.Series:
    """Which points are padded points whose decode is at least :data:`DECODE_VISIBLE_SHARE` of their full run."""
    decode = points["energy_j"] - points["prefill_energy_j"]
    return points["padded"].astype(bool) & (decode >= DECODE_VISIBLE_SHARE * points["energy_j"])


def decode_visible(points: pd.DataFrame) -> bool:
    """Whether some padded point's decode is at least :data:`DECODE_VISIBLE_SHARE` of its full run."""
    return bool(decode_shown(points).any())


def min_points(terms: tuple[str, ...] = DEFAULT_TERMS) -> int:
    """Points a fit needs: one more than its terms, so that a point can be left out."""
    return len(terms) + 1


def fit_cell(measurements: pd.DataFrame, terms: tuple[str, ...] | None = None, name: str = "the cell",
             loo: bool = True) -> EnergyModel:
    """The energy model of one cell's measurements: of the form ``terms``, or (None) of whichever of
    :data:`FORMS` has the smaller median leave-one-out error over the grid points among those the
    points suffice for (more terms only where they lower it by more than ``FORM_MARGIN_PCT``; the
    fewest terms without ``loo``); :class:`ModelNotFittable`
    (one line) with too few points."""
    forms = FORMS if terms is None else (tuple(terms),)
    points = measured_points(measurements)
    padded = terms is None and bool(points["padded"].any())  # a static-batching cell with padded batches
    if padded:
        forms = tuple((*f, *PADDED_PREFILL_TERMS) for f in forms)
    usable = [f for f in forms if len(points) >= min_points(f)]
    if not usable:
        need = min_points(forms[0])
        raise ModelNotFittable(
            f"{name}: {len(points)} valid measured point(s), the energy model needs at least {need} "
            f"({len(forms[0])} terms, and one to leave out); measure the cell with its grid and sweeps "
            "(points: [grid, sweep]) at two or more batch sizes")
    best = None
    for form in usable if loo else usable[:1]:
        model = _fit_form(points, form, loo)
        if best is None or model.loo_median_error_pct < best.loo_median_error_pct - FORM_MARGIN_PCT:
            best = model
    return _with_padded_decode(points, best, loo) if padded else best


def _with_padded_decode(points: pd.DataFrame, model: EnergyModel, loo: bool) -> EnergyModel:
    """The model with the padded decode terms (per step, per context token) where the padded points
    measure both: points whose decode shows (:func:`decode_shown`) at two or more input lengths, the
    longest of them at least :data:`DECODE_CONTEXT_SHARE` of the longest padded input. Else the model
    without them, saying why.

    Not a leave-one-out gate: with two or three such points, leaving out the one at a long context
    leaves the context term unmeasured, so its error says nothing of the term (on two default runs the
    gate kept the terms out while a padded batch of 4,063-token prompts cost 10 % more than the model
    without them said). The padded points' leave-one-out error is still reported (``loo_padded_pct``),
    and a term that supplies most of an estimate without a point showing it is flagged."""
    form = (*model.terms, *PADDED_DECODE_TERMS)
    shown = points[decode_shown(points)]
    if shown.empty:
        return replace(model, form_note=(
            f"padded decode terms left out: no padded point's decode is {100 * DECODE_VISIBLE_SHARE:.0f} % of its "
            "energy (measure a padded batch at a long output to fit them)"))
    longest = int(points.loc[points["padded"], "input_len"].max())
    lengths = sorted(set(shown["input_len"].astype(int)))
    if len(lengths) < 2 or lengths[-1] < DECODE_CONTEXT_SHARE * longest:
        return replace(model, form_note=(
            f"padded decode terms left out: the padded points whose decode shows are at input "
            f"{', '.join(map(str, lengths))} only; both terms need two input lengths, one of at least "
            f"{DECODE_CONTEXT_SHARE * longest:.0f} tokens (a padded batch at a long input and a long output)"))
    if len(points) < min_points(form):
        return replace(model, form_note="padded decode terms left out: too few points to fit them")
    return _fit_form(points, form, loo)


def _fit_form(points: pd.DataFrame, terms: tuple[str, ...], loo: bool) -> EnergyModel:
    table = leave_one_out(points, terms) if loo else pd.DataFrame()
    errs = table.loc[table["grid"], "error_pct"].abs() if loo else pd.Series(dtype=float)
    if loo and errs.empty:  # a cell without grid points: over every point
        errs = table["error_pct"].abs()
    return EnergyModel(
        coef=fit_coefficients(points, terms), terms=terms, max_input=int(points["input_len"].max()),
        max_output=int(points["output_len"].max()), max_batch=int(points["batch_size"].max()),
        n_points=len(points), loo_median_error_pct=float(errs.median()) if len(errs) else math.nan,
        loo_max_error_pct=float(errs.max()) if len(errs) else math.nan, loo=table)


def context_length(config_json) -> int | None:
    """``max_position_embeddings`` of a model's ``config.json`` (None when it names none)."""
    cfg = read_config_json(config_json)
    cfg = {**cfg, **cfg.get("text_config", {})}
    value = cfg.get("max_position_embeddings")
    return int(value) if value else None
