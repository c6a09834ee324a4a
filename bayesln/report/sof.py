"""Summary-of-Findings table (GRADE layout) of a run: absolute effects per 1,000 patients.

One row per outcome and population:

* ``trial population`` (core fits): the population the trials enrolled. The assumed
  comparator risk is the median of the observed comparator-arm risks of the trials in the
  fit (the GRADE Handbook's default "study population" risk, section 5.2.2); the TAC risk
  per draw is ``inv_logit(logit(comparator risk) + d)`` with the posterior draws of the
  pooled log odds ratio ``d`` (at the covariates' reference values when the model has
  effect modifiers), so its interval is the credible interval of the pooled effect applied
  to that risk; the relative effect is the pooled odds ratio, as in ``summary.csv``.
* one row per prediction target (runs whose spec lists targets): the population-level
  posterior predictive risks on the comparator and on TAC (``predictions.csv``, level
  ``population``), their difference and the odds ratio, with the target's extrapolation
  status and the share of the predictive variance that comes from priors - GRADE's
  indirectness signal.

Risks are per 1,000 patients, rounded for display only in the report; the CSV keeps the
numbers. ``certainty_signals`` lists what a guideline panel would downgrade for: the
population is outside the trials' data, the prediction is driven by the prior, or the fit
failed its diagnostics gate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit

__all__ = ["SOF_COLUMNS", "summary_of_findings"]

SOF_COLUMNS = [
    "outcome", "direction", "population", "population_label", "n_trials", "n_participants",
    "comparator_risk_per_1000", "comparator_low_per_1000", "comparator_high_per_1000", "comparator_risk_source",
    "tac_risk_per_1000", "tac_low_per_1000", "tac_high_per_1000",
    "difference_per_1000", "difference_low_per_1000", "difference_high_per_1000",
    "relative_measure", "relative_median", "relative_low", "relative_high", "ci_level",
    "outside_data", "prior_share", "fit_status", "certainty_signals", "footnote",
]


def _q(x: np.ndarray, ci: float) -> tuple[float, float, float]:
    a = (1 - ci) / 2
    lo, med, hi = np.quantile(np.asarray(x, dtype=float), [a, 0.5, 1 - a])
    return float(med), float(lo), float(hi)


def _signals(outside: str, prior_share: float | None, status: str) -> str:
    out = []
    if outside:
        out.append(f"indirectness: outside the trials' data ({outside})")
    if prior_share is not None and np.isfinite(prior_share) and prior_share >= 0.5:
        out.append(f"indirectness: driven by the prior ({100 * prior_share:.0f}% of the predictive variance)")
    if status != "ok":
        out.append("the fit failed its diagnostics gate")
    return "; ".join(out)


def _trial_population_row(result, contrasts: pd.DataFrame, outcome: str, direction: str, ci: float,
                          status: str) -> dict:
    pc_obs = (contrasts["events_c"] / contrasts["n_c"]).astype(float).to_numpy()
    pc = float(np.median(pc_obs))
    d = np.asarray(result.idata.posterior["d"].values, dtype=float).reshape(-1)
    # an assumed risk of exactly 0 or 1 has no odds: keep it inside (0, 1) by half an event
    n_c = float(np.median(contrasts["n_c"].astype(float)))
    pc_eff = min(max(pc, 0.5 / n_c), 1 - 0.5 / n_c)
    pt = expit(logit(pc_eff) + d)
    t_med, t_lo, t_hi = _q(1000 * pt, ci)
    rd_med, rd_lo, rd_hi = _q(1000 * (pt - pc_eff), ci)
    or_med, or_lo, or_hi = _q(np.exp(d), ci)
    covs = list(getattr(result.design, "effect_names", []) or [])
    note = (f"Comparator risk: median of the comparator arms of the {len(contrasts)} trials "
            f"({', '.join(f'{1000 * p:.0f}' for p in sorted(pc_obs))} per 1,000); TAC risk: that risk with the "
            "pooled odds ratio applied, draw by draw")
    if covs:
        note += f"; at the reference values of {', '.join(covs)}"
    n_part = int(contrasts[["n_t", "n_c"]].astype(float).sum().sum())
    return {
        "outcome": outcome, "direction": direction, "population": "trial_population",
        "population_label": "Patients as enrolled in the trials", "n_trials": int(len(contrasts)),
        "n_participants": n_part, "comparator_risk_per_1000": 1000 * pc_eff, "comparator_low_per_1000": np.nan,
        "comparator_high_per_1000": np.nan, "comparator_risk_source": "median comparator-arm risk of the trials",
        "tac_risk_per_1000": t_med, "tac_low_per_1000": t_lo, "tac_high_per_1000": t_hi,
        "difference_per_1000": rd_med, "difference_low_per_1000": rd_lo, "difference_high_per_1000": rd_hi,
        "relative_measure": "OR", "relative_median": or_med, "relative_low": or_lo, "relative_high": or_hi,
        "ci_level": ci, "outside_data": "", "prior_share": np.nan, "fit_status": status,
        "certainty_signals": _signals("", None, status), "footnote": note,
    }


def _target_rows(predictions: pd.DataFrame, labels: dict[str, str], n_trials: int, n_part: int,
                 direction_of) -> list[dict]:
    rows = []
    pop = predictions[predictions["level"] == "population"]
    for (target, outcome), g in pop.groupby(["target", "outcome"], sort=False):
        q = g.set_index("quantity")
        if not {"p_tac", "p_comparator", "rd"} <= set(q.index):
            continue  # e.g. the P(PR) rows of an ordinal prediction: no contrast of their own
        pt, pc, rd = q.loc["p_tac"], q.loc["p_comparator"], q.loc["rd"]
        o = q.loc["or"] if "or" in q.index else None
        outside = str(pt.get("outside_data") or "") if pd.notna(pt.get("outside_data")) else ""
        share = float(q.loc["or", "prior_share"]) if o is not None else float(rd["prior_share"])
        status = str(pt.get("fit_status", "ok") or "ok")
        ci = float(pt["ci_level"])
        note = (f"Population-level posterior predictive risks for the target population (comparator: "
                f"{pt.get('comparator', '')}; regimen {pt.get('regimen', '')})")
        if outside:
            note += f"; outside the trials' data in {outside}: the extrapolation prior carries that part"
        rows.append({
            "outcome": outcome, "direction": direction_of(outcome), "population": target,
            "population_label": labels.get(target, target), "n_trials": n_trials, "n_participants": n_part,
            "comparator_risk_per_1000": 1000 * float(pc["median"]), "comparator_low_per_1000": 1000 * float(pc["lower"]),
            "comparator_high_per_1000": 1000 * float(pc["upper"]),
            "comparator_risk_source": "posterior predictive (population level)",
            "tac_risk_per_1000": 1000 * float(pt["median"]), "tac_low_per_1000": 1000 * float(pt["lower"]),
            "tac_high_per_1000": 1000 * float(pt["upper"]),
            "difference_per_1000": 1000 * float(rd["median"]), "difference_low_per_1000": 1000 * float(rd["lower"]),
            "difference_high_per_1000": 1000 * float(rd["upper"]),
            "relative_measure": "OR", "relative_median": float(o["median"]) if o is not None else np.nan,
            "relative_low": float(o["lower"]) if o is not None else np.nan,
            "relative_high": float(o["upper"]) if o is not None else np.nan, "ci_level": ci,
            "outside_data": outside, "prior_share": share, "fit_status": status,
            "certainty_signals": _signals(outside, share, status), "footnote": note,
        })
    return rows


def summary_of_findings(result, *, outcome: str, contrasts: pd.DataFrame | None = None,
                        predictions: pd.DataFrame | None = None, target_labels: dict[str, str] | None = None,
                        ci: float = 0.95) -> pd.DataFrame:
    """The Summary-of-Findings rows of one fitted outcome (see the module docstring).

    result : the fit (a core FitResult gives the trial-population row from its draws of
        ``d``; other families give target rows only).
    contrasts : ``TrialData.contrasts(outcome, treat=...)`` of the trials in the fit (one
        row per study: events_t, n_t, events_c, n_c).
    predictions : the run's prediction table (``PredictionSet.table()``, ``predictions.csv``).
    """
    from bayesln import vocab

    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    status = str(getattr(result, "status", "ok"))

    def direction_of(o: str) -> str:
        if o == outcome and getattr(result, "direction", None):
            return str(result.direction)
        return str(vocab.OUTCOMES.get(o, ""))

    rows = []
    n_trials = n_part = 0
    if contrasts is not None and len(contrasts):
        used = contrasts.dropna(subset=["events_t", "n_t", "events_c", "n_c"])
        n_trials = int(len(used))
        n_part = int(used[["n_t", "n_c"]].astype(float).sum().sum())
        if "d" in result.idata.posterior and result.idata.posterior["d"].ndim == 2 and n_trials:
            rows.append(_trial_population_row(result, used, outcome, direction_of(outcome), ci, status))
    if predictions is not None and len(predictions):
        rows += _target_rows(predictions, target_labels or {}, n_trials, n_part, direction_of)
    return pd.DataFrame(rows, columns=SOF_COLUMNS)
