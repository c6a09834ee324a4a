"""The ``bayesln bias`` command as a plain function (the CLI only prints its text).

``bayesln bias DATA --outcome NAME --treat LABELS [--control LABELS] [--measure RR|OR]
[--model rma|lm] [--predictor sei|ninv] [--method reml|dl|iv] [--estimator L0|R0]
[--side left|right] [--phase PHASE] [--format table|json]``

Contrasts are built as ``bayesln frequentist`` builds them (bundled dataset or CSV,
comma-separated labels, multi-arm trials pooled per side; the helpers of
:mod:`bayesln.frequentist.command` are reused). The numbers are metafor's ``regtest``,
``ranktest`` and ``trimfill`` (see :mod:`bayesln.frequentist.bias`).
"""

from __future__ import annotations

import json
import math

import pandas as pd

from .bias import (
    BIAS_MEASURES,
    REGTEST_MODELS,
    REGTEST_PREDICTORS,
    TRIMFILL_ESTIMATORS,
    TRIMFILL_SIDES,
    SmallStudyEffects,
    _check_choice,
    _check_method,
    small_study_effects,
)
from .command import _fmt, _fmt_p, _labels, load_trials
from .effects import check_measure
from .errors import FrequentistInputError

BIAS_FORMATS = ("table", "json")
_METHOD_NAME = {"reml": "REML", "dl": "DerSimonian-Laird", "iv": "common effect (inverse variance)"}


def _only_phase(con: pd.DataFrame, phase: str) -> pd.DataFrame:
    """Rows of ``phase``; the other studies join ``attrs["excluded"]`` with a reason."""
    if "phase" not in con.columns:
        raise FrequentistInputError("--phase: the contrast table has no phase column")
    in_phase = con["phase"].astype("string").eq(phase).fillna(False).to_numpy(bool)
    before = con.attrs.get("excluded")
    reasons = [(s, f"phase {p}, not {phase}") for s, p in zip(con["study"][~in_phase], con["phase"][~in_phase])]
    excluded = pd.concat(
        [before if isinstance(before, pd.DataFrame) else pd.DataFrame(columns=["study", "reason"]),
         pd.DataFrame(reasons, columns=["study", "reason"])], ignore_index=True)
    kept = con.loc[in_phase].reset_index(drop=True)
    kept.attrs = {**con.attrs, "excluded": excluded}
    return kept


def _natural(x: float) -> float:
    return math.exp(x) if x is not None and math.isfinite(x) else math.nan


def _effect(measure: str, est: float, lo: float, hi: float) -> str:
    return (f"{measure} {_fmt(_natural(est))} [{_fmt(_natural(lo))}, {_fmt(_natural(hi))}] "
            f"(log {_fmt(est, 4)} [{_fmt(lo, 4)}, {_fmt(hi, 4)}])")


def _table(title: str, res: SmallStudyEffects, level: float) -> str:
    m = res.measure
    e, b, t = res.egger, res.begg, res.trimfill
    lines = [title, ""]
    if res.warning:
        lines += [f"warning: {res.warning}", ""]
    if e.model == "rma":
        how = f"random-effects meta-regression, {_METHOD_NAME[e.method]}"
    else:
        how = "classical Egger: weighted least squares"
    pred = "standard error" if e.predictor == "sei" else "1/n"
    stat = f"{e.statistic_type} = {_fmt(e.statistic)}" + (f" (df = {int(e.df)})" if e.statistic_type == "t" else "")
    lines += [f"Egger's regression test ({how}; predictor: {pred})",
              f"  {stat}, p = {_fmt_p(e.pvalue)}",
              f"  limit estimate ({pred} -> 0): {_effect(m, e.limit_estimate, e.limit_ci_low, e.limit_ci_high)}",
              "Begg and Mazumdar's rank correlation test",
              (f"  Kendall's tau = {_fmt(b.tau, 3)}, p = {_fmt_p(b.pvalue)} "
               f"({'exact' if b.exact else 'normal approximation'})"),
              f"Trim-and-fill ({t.estimator} estimator, {_METHOD_NAME[t.method]})",
              f"  observed ({res.k} studies): {_effect(m, res.pooled.beta, res.pooled.ci_lb, res.pooled.ci_ub)}",
              (f"  {t.k0} stud{'y' if t.k0 == 1 else 'ies'} filled on the {t.side}; "
               f"{'adjusted' if t.k0 else 'unchanged'} ({res.k + t.k0} studies): "
               f"{_effect(m, t.estimate, t.ci_low, t.ci_high)}")]
    if len(res.excluded):
        lines += ["", "excluded: " + "; ".join(f"{s} ({r})" for s, r in zip(res.excluded["study"], res.excluded["reason"]))]
    lines += ["", f"{level:g}% confidence intervals; metafor regtest / ranktest / trimfill."]
    return "\n".join(lines) + "\n"


def bias_command(data: str, outcome: str, treat, control=None, measure: str = "RR", fmt: str = "table", *,
                 model: str = "rma", predictor: str = "sei", method: str = "reml", estimator: str = "L0",
                 side: str | None = None, phase: str | None = None, level: float = 95.0) -> str:
    """Small-study effects for one contrast and the text to print.

    ``data``: bundled dataset name or CSV path; ``treat`` / ``control``: labels or network
    nodes (comma-separated strings allowed; empty ``control`` = every other arm);
    ``phase``: keep only studies of that phase. ``fmt="json"`` gives one object
    ``{"egger": {...}, "begg": {...}, "trimfill": {...}, "k": ..., "warning": ...}``
    (log scale; ``warning`` is the Cochrane Handbook warning for k < 10, else null);
    ``fmt="table"`` a short readable text. Bad input raises
    :class:`~bayesln.frequentist.errors.FrequentistInputError` (a ``ValueError``).
    """
    fmt = _check_choice(fmt, BIAS_FORMATS, "--format")
    measure = check_measure(measure, BIAS_MEASURES)
    model = _check_choice(model, REGTEST_MODELS, "--model")
    predictor = _check_choice(predictor, REGTEST_PREDICTORS, "--predictor")
    method = _check_method(method, "--method")
    estimator = _check_choice(estimator, TRIMFILL_ESTIMATORS, "--estimator")
    if side is not None:
        side = _check_choice(side, TRIMFILL_SIDES, "--side")
    t = _labels(treat)
    if not t:
        raise FrequentistInputError("--treat needs at least one treatment label")
    c = _labels(control) or None
    td = load_trials(data, outcome=outcome, treat=t, control=c)
    try:
        con = td.contrasts(outcome, treat=t, control=c, multi_arm="pool")
    except ValueError as exc:  # unknown outcome / label from the data layer
        if isinstance(exc, FrequentistInputError):
            raise
        raise FrequentistInputError(str(exc)) from None
    if phase:
        con = _only_phase(con, phase)
    if len(con) == 0:
        raise FrequentistInputError(f"no study gives a {outcome} contrast of {','.join(t)} vs "
                                    f"{','.join(c) if c else 'all other arms'}")
    res = small_study_effects(con, measure, model=model, predictor=predictor, method=method,
                              estimator=estimator, side=side, level=level)
    if fmt == "json":
        return json.dumps(res.to_dict(), indent=2) + "\n"
    title = (f"{getattr(td, 'name', data)}: {outcome}, {','.join(t)} vs {','.join(c) if c else 'all other arms'}"
             f"{f' ({phase})' if phase else ''}: small-study effects (log {measure})")
    return _table(title, res, level)
