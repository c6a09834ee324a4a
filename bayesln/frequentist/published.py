"""Reproduce published pooled estimates from the bundled arm-level counts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .analysis import meta_analysis
from .errors import FrequentistInputError, NotEstimableError

#: published ``model`` text -> bayesln method (the published figure's method is used;
#: rows without a recognisable model fall back to Mantel-Haenszel fixed effect).
_MODEL_TO_METHOD = (
    ("mantel", "mh"), ("mh", "mh"), ("peto", "peto"), ("dersimonian", "dl"), ("dl", "dl"),
    ("reml", "reml"), ("paule", "pm"), ("inverse", "iv"), ("iv", "iv"), ("random", "dl"),
    ("fixed", "mh"), ("common", "mh"),
)

RESULT_COLUMNS = (
    "source", "outcome", "subgroup", "measure", "model", "method", "trials",
    "published_estimate", "published_ci_low", "published_ci_high",
    "estimate", "ci_low", "ci_high", "k",
    "abs_diff_estimate", "abs_diff_ci_low", "abs_diff_ci_high", "rel_diff_estimate",
    "reproduced", "trials_with_counts", "trials_missing", "reason", "note",
)


def _method_for(model) -> str:
    text = str(model).lower() if model is not None and not (isinstance(model, float) and math.isnan(model)) else ""
    for key, method in _MODEL_TO_METHOD:
        if key in text:
            return method
    return "mh"


def _round2(x: float) -> float:
    """Round half away from zero to 2 decimals (how published tables round)."""
    return math.copysign(math.floor(abs(x) * 100 + 0.5 + 1e-9) / 100, x)


def _tac_labels(trialdata, subgroup: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """treat / control labels for a published subgroup (all, duo, triple of the TAC arm)."""
    sub = (subgroup or "all").strip().lower()
    treat = {"all": ("tac",), "duo": ("tac_duo",), "triple": ("tac_triple",)}.get(sub)
    if treat is None:
        raise FrequentistInputError(f"unknown published subgroup {subgroup!r} (expected all, duo or triple)")
    control = tuple(sorted(t for t in set(trialdata.arms["treatment"].dropna()) if t != "tac"))
    return treat, control


def reproduce_published(trialdata, *, tolerance: float = 0.005, phase: str = "induction",
                        level: float = 95.0) -> pd.DataFrame:
    """Recompute every published pooled estimate in ``trialdata.published``.

    For each published row (columns ``source, outcome, subgroup, trials, measure, model,
    estimate, ci_low, ci_high, note``; ``trials`` is a ``;``-separated list of study ids):

    * contrasts: TAC arms (``subgroup`` ``all``: every TAC arm; ``duo``/``triple``: the TAC
      arms of that regimen) against **all non-TAC arms** of the study, several arms on one
      side pooled (``TrialData.contrasts(..., multi_arm="pool")``), studies of the
      ``phase`` phase only (default induction), restricted to the listed trials;
    * pooled with the published method - Mantel-Haenszel fixed effect for
      ``mantel_haenszel_fixed`` (metafor ``rma.mh``), ``dl`` for a random-effects model,
      etc. - on the published measure (RR when blank);
    * ``reproduced`` is True when the recomputed estimate and both CI limits, rounded to 2
      decimals, are within ``tolerance`` (0.005) of the published numbers.

    Output columns: see ``RESULT_COLUMNS``; ``trials_with_counts`` / ``trials_missing``
    are ``;``-separated study ids and ``reason`` says why a row is not reproduced (missing
    trials with their reasons, or the size of the difference).
    """
    pub = getattr(trialdata, "published", None)
    if pub is None or not isinstance(pub, pd.DataFrame):
        raise FrequentistInputError("this TrialData has no published table (bundled datasets only)")
    need = {"outcome", "trials", "estimate", "ci_low", "ci_high"}
    missing = need - set(pub.columns)
    if missing:
        raise FrequentistInputError(f"published table lacks column(s) {', '.join(sorted(missing))}")
    studies = trialdata.studies
    rows = []
    for _, p in pub.iterrows():
        outcome = str(p["outcome"])
        subgroup = str(p.get("subgroup", "all") if pd.notna(p.get("subgroup", "all")) else "all")
        measure = str(p.get("measure") if pd.notna(p.get("measure", np.nan)) else "RR").upper()
        model = p.get("model")
        method = _method_for(model)
        listed = [s.strip() for s in str(p["trials"]).split(";") if s.strip()]
        pe, pl, ph = (float(p[c]) for c in ("estimate", "ci_low", "ci_high"))
        base = {
            "source": p.get("source"), "outcome": outcome, "subgroup": subgroup, "measure": measure,
            "model": model, "method": method, "trials": ";".join(listed),
            "published_estimate": pe, "published_ci_low": pl, "published_ci_high": ph,
            "estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "k": 0,
            "abs_diff_estimate": math.nan, "abs_diff_ci_low": math.nan, "abs_diff_ci_high": math.nan,
            "rel_diff_estimate": math.nan, "reproduced": False, "trials_with_counts": "",
            "trials_missing": "", "reason": "", "note": p.get("note"),
        }
        missing_reason: dict[str, str] = {}
        for s in listed:
            if s not in studies.index:
                missing_reason[s] = "not in the dataset"
            elif phase and "phase" in studies.columns and str(studies.loc[s, "phase"]) != phase:
                missing_reason[s] = f"phase {studies.loc[s, 'phase']}, not {phase}"
        try:
            treat, control = _tac_labels(trialdata, subgroup)
            con = trialdata.contrasts(outcome, treat=treat, control=control, multi_arm="pool")
        except ValueError as exc:  # unknown outcome or labels: report, do not stop
            for s in listed:
                missing_reason.setdefault(s, str(exc).splitlines()[0])
            base.update(trials_missing=";".join(listed), reason=f"cannot form contrasts: {exc}")
            rows.append(base)
            continue
        excl = con.attrs.get("excluded")
        if isinstance(excl, pd.DataFrame) and len(excl):
            for s, r in zip(excl["study"], excl["reason"]):
                if s in listed:
                    missing_reason.setdefault(s, str(r))
        con = con[con["study"].isin(listed) & ~con["study"].isin(list(missing_reason))]
        for s in listed:
            if s not in set(con["study"]) and s not in missing_reason:
                missing_reason[s] = f"no {outcome} counts for the {subgroup} TAC arm"
        have = [s for s in listed if s in set(con["study"])]
        base["trials_with_counts"] = ";".join(have)
        base["trials_missing"] = ";".join(s for s in listed if s in missing_reason)
        base["k"] = len(have)
        missing_text = "; ".join(f"{s}: {missing_reason[s]}" for s in listed if s in missing_reason)
        if not have:
            base["reason"] = f"no listed trial has {outcome} counts ({missing_text})"
            rows.append(base)
            continue
        try:
            res = meta_analysis(con.reset_index(drop=True), measure, method, level=level, outcome=outcome,
                                subgroup=subgroup)
        except (NotEstimableError, FrequentistInputError) as exc:
            base["reason"] = f"not estimable from {len(have)} trial(s): {exc}" + (
                f"; missing: {missing_text}" if missing_text else "")
            rows.append(base)
            continue
        r = res.summary.iloc[0]
        est, lo, hi = float(r["estimate"]), float(r["ci_low"]), float(r["ci_high"])
        base.update(estimate=est, ci_low=lo, ci_high=hi,
                    abs_diff_estimate=est - pe, abs_diff_ci_low=lo - pl, abs_diff_ci_high=hi - ph,
                    rel_diff_estimate=(est - pe) / pe if pe != 0 else math.nan)
        ok = all(abs(_round2(x) - y) <= tolerance + 1e-9 for x, y in ((est, pe), (lo, pl), (hi, ph)))
        base["reproduced"] = bool(ok)
        got = f"{_round2(est):.2f} ({_round2(lo):.2f}-{_round2(hi):.2f})"
        want = f"{pe:.2f} ({pl:.2f}-{ph:.2f})"
        if ok:
            base["reason"] = f"reproduced: {got}" + (f" (listed trials without counts: {missing_text})" if missing_text else "")
        elif missing_text:
            base["reason"] = (f"{len(have)} of {len(listed)} listed trials have counts (missing: {missing_text}); "
                              f"recomputed {got} vs published {want}")
        else:
            base["reason"] = f"all listed trials have counts but recomputed {got} differs from published {want}"
        rows.append(base)
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
