"""Bayesian results lined up against the frequentist relative risks clinicians know.

The Bayesian RR is computed on the RR scale from posterior arm probabilities, in two ways
(both reported):

- ``bayes_marginal``: for each posterior draw, the comparator risk of every study with a
  contrast is p_c,i = inv_logit(mu_i) and its TAC risk p_t,i = inv_logit(mu_i + d) (the
  population-average effect d, not the study's own delta_i); the RR is the ratio of the
  n-weighted average risks, sum w_i p_t,i / sum w_i p_c,i — the RR marginalised over the
  studies' baselines, the Bayesian analogue of pooling with MH weights.
- ``bayes_pooled_baseline``: the RR at the pooled baseline risk p_c = inv_logit(m̄), where
  m̄ is m for exchangeable baselines and the n-weighted mean of the mu_i for independent
  ones: inv_logit(m̄ + d) / inv_logit(m̄).

Agreement with Mantel–Haenszel: ``ratio_to_mh`` (Bayesian / MH point estimate) and
``overlaps_mh`` (95% intervals overlap). A row is flagged when the ratio leaves
[0.9, 1/0.9] or the intervals do not overlap, with a short reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

COLUMNS = [
    "outcome", "subgroup", "source", "method", "measure", "k", "trials", "estimate", "ci_low", "ci_high",
    "ratio_to_mh", "overlaps_mh", "flag", "reason",
]
AGREE_LOW, AGREE_HIGH = 0.9, 1 / 0.9


def _q(x: np.ndarray, ci: float = 0.95) -> tuple[float, float, float]:
    a = (1 - ci) / 2
    lo, med, hi = np.quantile(x, [a, 0.5, 1 - a])
    return float(med), float(lo), float(hi)


def bayesian_rr_draws(result, contrasts: pd.DataFrame) -> dict[str, np.ndarray]:
    """Draws of the marginal and pooled-baseline RR (and the OR) from a core-model fit."""
    post = result.idata.posterior
    d = post["d"].values.reshape(-1)
    mu = post["mu"]
    studies = [s for s in contrasts["study"] if s in set(mu["study"].values)]
    if not studies:
        raise ValueError("no study of the contrast table is in the fit")
    mu_s = mu.sel(study=studies).values.reshape(-1, len(studies))
    w = (contrasts.set_index("study").loc[studies, ["n_t", "n_c"]].sum(axis=1)).to_numpy(float)
    w = w / w.sum()
    p_c = expit(mu_s)
    p_t = expit(mu_s + d[:, None])
    marginal = (p_t @ w) / (p_c @ w)
    if "m" in post:
        mbar = post["m"].values.reshape(-1)
    else:
        mbar = mu_s @ w
    pooled = expit(mbar + d) / expit(mbar)
    return {"bayes_marginal": marginal, "bayes_pooled_baseline": pooled, "odds_ratio": np.exp(d)}


def _overlap(a_lo, a_hi, b_lo, b_hi) -> bool:
    return bool(a_lo <= b_hi and b_lo <= a_hi)


def _zero_cell_studies(c: pd.DataFrame) -> list[str]:
    z = (c["events_t"] == 0) | (c["events_c"] == 0) | (c["events_t"] == c["n_t"]) | (c["events_c"] == c["n_c"])
    return list(c.loc[z, "study"])


def comparison_table(result, contrasts: pd.DataFrame, *, outcome: str, subgroup: str = "all",
                     published: pd.DataFrame | None = None, ci: float = 0.95) -> pd.DataFrame:
    """One row per estimate: Bayesian (marginal and pooled-baseline RR), Mantel–Haenszel,
    DerSimonian–Laird and REML RRs on the same studies, and the published RRs for this
    outcome (see :func:`published_rows`)."""
    from bayesln.frequentist import meta_analysis

    trials = ";".join(contrasts["study"])
    k = len(contrasts)
    rows = []
    freq = {}
    for method in ("mh", "dl", "reml"):
        try:
            s = meta_analysis(contrasts, "RR", method, outcome=outcome, subgroup=subgroup).summary.iloc[0]
            freq[method] = (float(s["estimate"]), float(s["ci_low"]), float(s["ci_high"]))
            note = ""
            if method != "mh" and np.isfinite(s.get("tau2", np.nan)):
                note = f"tau2 = {s['tau2']:.3g}, I2 = {s['i2']:.0f}%"
        except ValueError as exc:
            freq[method] = (np.nan, np.nan, np.nan)
            note = f"not estimable: {exc}"
        name = {"mh": "mantel_haenszel_fixed", "dl": "dersimonian_laird_random", "reml": "reml_random"}[method]
        rows.append({"source": "frequentist", "method": name, "measure": "RR", "k": k, "trials": trials,
                     "estimate": freq[method][0], "ci_low": freq[method][1], "ci_high": freq[method][2], "reason": note})
    draws = bayesian_rr_draws(result, contrasts)
    tau_note = ""
    if "tau" in result.idata.posterior:
        tau_note = f"random effects (tau median {float(np.median(result.idata.posterior['tau'].values)):.2f})"
    for name, x in draws.items():
        med, lo, hi = _q(x, ci)
        measure = "OR" if name == "odds_ratio" else "RR"
        rows.append({"source": "bayesian", "method": "binomial_normal_" + name if name != "odds_ratio" else "binomial_normal_pooled_or",
                     "measure": measure, "k": k, "trials": trials, "estimate": med, "ci_low": lo, "ci_high": hi,
                     "reason": tau_note})
    out = pd.DataFrame(rows)
    out.insert(0, "outcome", outcome)
    out.insert(1, "subgroup", subgroup)
    if published is not None and len(published):
        out = pd.concat([out, published], ignore_index=True)
    return _agreement(out, freq.get("mh"), contrasts)


def _agreement(out: pd.DataFrame, mh, contrasts: pd.DataFrame) -> pd.DataFrame:
    out = out.copy()
    ratio, overlap, flag, reason = [], [], [], []
    zero = _zero_cell_studies(contrasts)
    for _, r in out.iterrows():
        base_reason = r.get("reason") if isinstance(r.get("reason"), str) else ""
        if mh is None or not np.isfinite(mh[0]) or r["measure"] != "RR" or not np.isfinite(r["estimate"]) or (
            r["source"] == "frequentist" and r["method"] == "mantel_haenszel_fixed"
        ):
            ratio.append(np.nan)
            overlap.append(pd.NA)
            flag.append(bool(r.get("flag")) if isinstance(r.get("flag"), (bool, np.bool_)) else False)
            reason.append(base_reason)
            continue
        q = r["estimate"] / mh[0]
        ov = _overlap(r["ci_low"], r["ci_high"], mh[1], mh[2])
        bad = (not AGREE_LOW <= q <= AGREE_HIGH) or not ov
        why = [base_reason] if base_reason else []
        if bad:
            if r["source"] == "bayesian":
                why.append("differs from MH: fixed vs random effects and the binomial likelihood")
            if zero:
                why.append(f"zero-cell studies: {', '.join(zero)}")
        ratio.append(q)
        overlap.append(ov)
        flag.append(bool(bad) or (bool(r.get("flag")) if isinstance(r.get("flag"), (bool, np.bool_)) else False))
        reason.append("; ".join(w for w in why if w))
    out["ratio_to_mh"] = ratio
    out["overlaps_mh"] = pd.array(overlap, dtype="boolean")
    out["flag"] = flag
    out["reason"] = reason
    return out[COLUMNS]
