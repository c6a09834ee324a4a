"""Bayesian results lined up against the frequentist relative risks clinicians know.

The Bayesian RR
---------------
The core model pools log odds ratios; clinicians know relative risks. The Bayesian RR is
computed on the RR scale from posterior arm probabilities, in two ways (both reported):

- ``binomial_normal_bayes_marginal``: for each posterior draw, the comparator risk of
  every study with a contrast is p_c,i = inv_logit(mu_i) and its treated risk
  p_t,i = inv_logit(mu_i + d) (the population-average effect d, not the study's own
  delta_i); the RR is the ratio of the n-weighted average risks,
  sum w_i p_t,i / sum w_i p_c,i with w_i = n_t,i + n_c,i — the RR marginalised over the
  studies' baselines, the Bayesian analogue of pooling with Mantel–Haenszel weights.
- ``binomial_normal_bayes_pooled_baseline``: the RR at the pooled baseline risk
  p_c = inv_logit(m̄), where m̄ is m (+ the weighted mean baseline covariates . gamma) for
  exchangeable baselines and the n-weighted mean of the mu_i for independent ones:
  inv_logit(m̄ + d) / inv_logit(m̄).
- ``binomial_normal_pooled_or``: exp(d), the pooled odds ratio itself (measure OR).

With effect modifiers, each arm's linear predictor includes its own covariate term
A_ij . beta: the marginal RR averages over the trials' own covariate values (and arms of a
multi-arm side are averaged with their n as weights), and the pooled-baseline RR uses the
weighted mean covariate rows; exp(d) is the OR at the covariate reference values.

Medians and central 95% intervals of the draws are reported.

Subgroups
---------
The subgroup Bayesian RRs (TAC regimen duo / triple, phase induction / maintenance) come
from **separate subgroup fits**: the same model fitted to the subgroup's trials only,
without covariates, so each subgroup has its own d and tau, like the frequentist subgroup
analyses. They are computed as refits of the outcome's full fit with the arms outside
the subgroup set to n = 0 (:mod:`bayesln.checks.refit`): the posterior of d and tau is
exactly that of a fit without them (and the compiled model is reused when the fit has no
covariates). When the fit has effect modifiers (e.g. ``regimen``, ``phase``) or baseline
covariates, the subgroup refits drop them (``drop_effect_modifiers`` /
``drop_baseline_covariates``; the rows' reason says so): a modifier that is (nearly)
constant within a subgroup is confounded with d there (d and beta are identified only
through d + x . beta), and a constant baseline covariate is confounded with the
baseline mean m. Random vs common effect, the baseline model (independent /
exchangeable) and the priors stay as fitted. The ``all`` row uses the fit itself,
covariates included (RR over the trials' own covariate values).

Agreement
---------
Every row is compared with the Mantel–Haenszel RR of the same outcome, subgroup and
trials: ``ratio_to_mh`` (estimate / MH estimate) and ``overlaps_mh`` (95% intervals
overlap). A row is flagged when the ratio leaves [0.9, 1/0.9] or the intervals do not
overlap, with a short reason that depends on the row's model and data:

- "random vs fixed effects" only for a random-effects estimate (DL / REML, or a
  random-effects Bayesian fit) on trials with between-trial heterogeneity: the row's own
  tau2 > 0 for DL / REML, the REML (else DL) tau2 > 0 for a Bayesian fit. A DL / REML row
  with tau2 = 0 is an inverse-variance fixed-effect estimate ("inverse-variance weights
  ... vs Mantel-Haenszel weights"); a random-effects Bayesian fit on trials without
  heterogeneity says that tau comes from its prior; a common-effect Bayesian fit says
  "common-effect binomial model on the log-odds scale";
- "zero-cell studies: ..." only when a trial of the comparison has a zero (or full) cell;
- trials missing from the Bayesian fit, a different trial set than the published one.

Published rows are also flagged when they are not reproduced from the bundled counts
(with the reason from :func:`bayesln.frequentist.reproduce_published`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.special import expit

from bayesln.checks.refit import derive_seed, refit

__all__ = [
    "AGREE_HIGH",
    "AGREE_LOW",
    "COLUMNS",
    "DEFAULT_SUBGROUPS",
    "bayesian_rr_draws",
    "comparison_table",
    "full_comparison",
    "informative",
    "published_rows",
    "subgroup_contrasts",
    "subgroup_counts",
]

COLUMNS = [
    "outcome", "subgroup", "source", "method", "measure", "k", "trials", "estimate", "ci_low", "ci_high",
    "ratio_to_mh", "overlaps_mh", "reproduced", "flag", "reason",
]
AGREE_LOW, AGREE_HIGH = 0.9, 1 / 0.9

#: subgroup name -> filter: ``node`` (the treated arms' network node) and/or ``phase``
DEFAULT_SUBGROUPS: dict[str, dict] = {
    "all": {},
    "duo": {"node": "tac_duo"},
    "triple": {"node": "tac_triple"},
    "induction": {"phase": "induction"},
    "maintenance": {"phase": "maintenance"},
}

METHOD_NAMES = {
    "mh": "mantel_haenszel_fixed", "dl": "dersimonian_laird_random", "reml": "reml_random",
    "iv": "inverse_variance_fixed", "peto": "peto_fixed", "pm": "paule_mandel_random",
}


def _q(x: np.ndarray, ci: float = 0.95) -> tuple[float, float, float]:
    a = (1 - ci) / 2
    lo, med, hi = np.quantile(x, [a, 0.5, 1 - a])
    return float(med), float(lo), float(hi)


# --------------------------------------------------------------------------- draws
def _flat(post, name):
    a = np.asarray(post[name].values, dtype=float)
    return a.reshape((-1,) + a.shape[2:])


def bayesian_rr_draws(result, contrasts: pd.DataFrame) -> dict[str, np.ndarray]:
    """Draws of the marginal and pooled-baseline RR (and the OR) from a core-model fit,
    for the studies of ``contrasts`` that are in the fit (weights n_t + n_c; see the
    module docstring). Only arms with n > 0 in the fit's design count (a subgroup refit
    sets the others to 0)."""
    post = result.idata.posterior
    d = _flat(post, "d")
    des = result.design
    mu_all = _flat(post, "mu")
    fit_studies = [str(x) for x in post["mu"]["study"].values]
    studies = [s for s in contrasts["study"] if s in set(fit_studies)]
    if not studies:
        raise ValueError("no study of the contrast table is in the fit")
    w = (contrasts.set_index("study").loc[studies, ["n_t", "n_c"]].sum(axis=1)).to_numpy(float)
    w = w / w.sum()
    K = len(des.effect_names)
    beta = _flat(post, "beta") if K else np.zeros((d.shape[0], 0))
    S = d.shape[0]
    p_t = np.zeros((S, len(studies)))
    p_c = np.zeros((S, len(studies)))
    mu_s = np.zeros((S, len(studies)))
    xt = np.zeros((len(studies), K))
    xc = np.zeros((len(studies), K))
    for j, s in enumerate(studies):
        i = fit_studies.index(s)
        mu_s[:, j] = mu_all[:, i]
        J = np.flatnonzero((des.arm_study == des.study_ids.index(s)) & (des.n > 0))
        tr = des.treated[J] == 1
        nJ = des.n[J].astype(float)
        X = des.X_effect[J] if K else np.zeros((len(J), 0))
        eta = mu_all[:, i, None] + tr[None, :] * d[:, None] + beta @ X.T
        p = expit(eta)
        p_t[:, j] = p[:, tr] @ (nJ[tr] / nJ[tr].sum())
        p_c[:, j] = p[:, ~tr] @ (nJ[~tr] / nJ[~tr].sum())
        xt[j] = (nJ[tr] / nJ[tr].sum()) @ X[tr] if K else xt[j]
        xc[j] = (nJ[~tr] / nJ[~tr].sum()) @ X[~tr] if K else xc[j]
    marginal = (p_t @ w) / (p_c @ w)
    if "m" in post:
        mbar = _flat(post, "m")
        if getattr(des, "baseline_names", None):
            idx = [des.study_ids.index(s) for s in studies]
            mbar = mbar + _flat(post, "gamma") @ (w @ des.Z_baseline[idx])
    else:
        mbar = mu_s @ w
    pooled = expit(mbar + d + beta @ (w @ xt)) / expit(mbar + beta @ (w @ xc))
    return {"bayes_marginal": marginal, "bayes_pooled_baseline": pooled, "odds_ratio": np.exp(d)}


# --------------------------------------------------------------------------- helpers
def _overlap(a_lo, a_hi, b_lo, b_hi) -> bool:
    return bool(a_lo <= b_hi and b_lo <= a_hi)


def _zero_cell_studies(c: pd.DataFrame) -> list[str]:
    if c is None or not len(c):
        return []
    z = (c["events_t"] == 0) | (c["events_c"] == 0) | (c["events_t"] == c["n_t"]) | (c["events_c"] == c["n_c"])
    return list(c.loc[z, "study"])


def informative(c: pd.DataFrame) -> pd.Series:
    """Contrasts that carry information on a ratio: not zero events in both arms and not
    every patient with the event in both arms."""
    both0 = (c["events_t"] == 0) & (c["events_c"] == 0)
    both_all = (c["events_t"] == c["n_t"]) & (c["events_c"] == c["n_c"])
    return ~(both0 | both_all)


def _split(trials) -> list[str]:
    if trials is None or (isinstance(trials, float) and np.isnan(trials)):
        return []
    return [s.strip() for s in str(trials).split(";") if s.strip()]


def _bool(x) -> bool:
    return isinstance(x, (bool, np.bool_)) and bool(x)


# --------------------------------------------------------------------------- published
def published_rows(td, outcome: str | None = None) -> pd.DataFrame | None:
    """The published pooled RRs (``td.published``) of ``outcome`` (all when None), each
    with its recomputation on the listed trials that have counts
    (:func:`bayesln.frequentist.reproduce_published`): one ``published`` row (flagged
    when not reproduced, with the reason) and one ``recomputed`` row (NaN with the reason
    when it cannot be recomputed). None when the data have no published table."""
    if getattr(td, "published", None) is None or not isinstance(td.published, pd.DataFrame):
        return None
    try:
        from bayesln.frequentist.published import reproduce_published
    except ImportError:  # pragma: no cover - written in parallel
        return None
    rep = reproduce_published(td)
    if outcome is not None:
        rep = rep[rep["outcome"] == outcome]
    if rep.empty:
        return None
    rows = []
    for _, r in rep.iterrows():
        listed = _split(r["trials"])
        have = _split(r.get("trials_with_counts"))
        reproduced = bool(r["reproduced"])
        src = str(r.get("source") or "published")
        label = "Kraaij et al." if "kraaij" in src.lower() else src
        why = str(r.get("reason") or "")
        method = METHOD_NAMES.get(str(r["method"]), str(r["method"]))
        rows.append({
            "outcome": r["outcome"], "subgroup": r["subgroup"], "source": "published", "method": str(r["model"]),
            "measure": r["measure"], "k": len(listed), "trials": ";".join(listed),
            "estimate": r["published_estimate"], "ci_low": r["published_ci_low"], "ci_high": r["published_ci_high"],
            "reproduced": reproduced, "flag": not reproduced,
            "reason": f"{label}; " + ("reproduced from the bundled counts" if reproduced else f"not reproduced: {why}"),
        })
        if np.isfinite(r["estimate"]):
            rows.append({
                "outcome": r["outcome"], "subgroup": r["subgroup"], "source": "recomputed", "method": method,
                "measure": r["measure"], "k": int(r["k"]), "trials": ";".join(have),
                "estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                "reproduced": reproduced, "flag": not reproduced,
                "reason": (f"recomputes the published figure ({why})" if reproduced
                           else f"published trials with counts only; {why}"),
            })
        else:
            rows.append({
                "outcome": r["outcome"], "subgroup": r["subgroup"], "source": "recomputed", "method": method,
                "measure": r["measure"], "k": int(r["k"]), "trials": ";".join(have),
                "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "reproduced": False, "flag": True,
                "reason": f"could not be recomputed: {why}",
            })
    out = pd.DataFrame(rows)
    out["reproduced"] = out["reproduced"].astype("boolean")
    return out


# --------------------------------------------------------------------------- one table
def _frequentist_rows(contrasts, outcome, subgroup, methods=("mh", "dl", "reml")):
    """The frequentist rows, their (estimate, low, high) by method and the between-trial
    heterogeneity by method (``{method: (tau2, I2)}``, random-effects methods only)."""
    from bayesln.frequentist import meta_analysis

    trials = ";".join(contrasts["study"])
    rows, freq, het = [], {}, {}
    for method in methods:
        try:
            s = meta_analysis(contrasts, "RR", method, outcome=outcome, subgroup=subgroup).summary.iloc[0]
            freq[method] = (float(s["estimate"]), float(s["ci_low"]), float(s["ci_high"]))
            note = ""
            if method not in ("mh", "iv", "peto") and np.isfinite(s.get("tau2", np.nan)):
                note = f"tau2 = {s['tau2']:.3g}, I2 = {s['i2']:.0f}%"
                het[METHOD_NAMES[method]] = (float(s["tau2"]), float(s["i2"]))
            k = int(s["k"])
        except ValueError as exc:
            freq[method] = (np.nan, np.nan, np.nan)
            note = f"not estimable: {exc}"
            k = len(contrasts)
        rows.append({"source": "frequentist", "method": METHOD_NAMES[method], "measure": "RR", "k": k,
                     "trials": trials, "estimate": freq[method][0], "ci_low": freq[method][1],
                     "ci_high": freq[method][2], "reason": note})
    return rows, freq, het


def _bayesian_rows(result, contrasts, ci):
    in_fit = set(result.idata.posterior["mu"]["study"].values)
    used = contrasts[contrasts["study"].isin(in_fit)]
    missing = [s for s in contrasts["study"] if s not in in_fit]
    trials = ";".join(used["study"])
    draws = bayesian_rr_draws(result, used)
    note = []
    if missing:
        note.append(f"not in the Bayesian fit: {', '.join(missing)} (different trial set than MH)")
    common = "tau" not in result.idata.posterior
    if not common:
        note.append(f"random effects (tau median {float(np.median(result.idata.posterior['tau'].values)):.2f})")
    else:
        note.append("common effect")
    changed = (getattr(result, "config", None) or {}).get("refit", {})
    dropped = [f"{what} {', '.join(changed[key])}" for key, what in
               (("dropped_effect_modifiers", "effect modifiers"), ("dropped_baseline_covariates", "baseline covariates"))
               if changed.get(key)]
    if dropped:
        what = "separate subgroup fit" if str(changed.get("label", "")).startswith("subgroup") else "refit"
        note.append(f"{what} without the fitted model's covariates (" + "; ".join(dropped) + ")")
    if getattr(result, "status", "ok") != "ok":
        note.append("diagnostics gate failed")
    cov = list(getattr(result.design, "effect_names", []) or [])
    rows = []
    for name, x in draws.items():
        med, lo, hi = _q(x, ci)
        measure = "OR" if name == "odds_ratio" else "RR"
        method = "binomial_normal_pooled_or" if name == "odds_ratio" else "binomial_normal_" + name
        why = list(note)
        if cov:
            why.append("OR at the covariate reference values (" + ", ".join(cov) + " = 0)" if measure == "OR"
                       else "RR over the trials' own covariate values (" + ", ".join(cov) + ")")
        rows.append({"source": "bayesian", "method": method, "measure": measure, "k": len(used), "trials": trials,
                     "estimate": med, "ci_low": lo, "ci_high": hi, "reason": "; ".join(why),
                     "_effects": "common" if common else "random"})
    return rows


def comparison_table(result, contrasts: pd.DataFrame, *, outcome: str, subgroup: str = "all",
                     published: pd.DataFrame | None = None, ci: float = 0.95) -> pd.DataFrame:
    """One row per estimate for one outcome and subgroup: Mantel–Haenszel,
    DerSimonian–Laird and REML RRs on ``contrasts``, the Bayesian RRs (marginal and
    pooled-baseline) and OR of ``result`` on the same studies, and the ``published`` rows
    (see :func:`published_rows`; rows of other outcomes are ignored), each with its
    agreement with the MH RR (columns :data:`COLUMNS`)."""
    rows, freq, het = _frequentist_rows(contrasts, outcome, subgroup)
    if result is not None:
        rows += _bayesian_rows(result, contrasts, ci)
    out = pd.DataFrame(rows)
    out.insert(0, "outcome", outcome)
    out.insert(1, "subgroup", subgroup)
    if published is not None and len(published):
        pub = published[published["outcome"] == outcome] if "outcome" in published.columns else published
        out = pd.concat([out, pub], ignore_index=True)
    return _agreement(out, freq.get("mh"), contrasts, subgroup, het)


def _het_text(tau2: float, i2: float, name: str) -> str:
    return f"{name} tau2 = {tau2:.3g}, I2 = {i2:.0f}%"


def _differs_reason(r, het: Mapping[str, tuple[float, float]]) -> str:
    """Why an estimate of another model can differ from MH (see the module docstring):
    "random vs fixed effects" only for a random-effects estimate on trials with
    between-trial heterogeneity (estimated tau2 > 0)."""
    if r["source"] == "bayesian":
        ref = het.get("reml_random") or het.get("dersimonian_laird_random")
        name = "REML" if "reml_random" in het else "DL"
        scale = "binomial model on the log-odds scale (OR pooled, RR from the arm probabilities)"
        if r.get("_effects") == "common":
            return f"differs from MH: common-effect {scale}"
        if ref is not None and ref[0] > 0:
            return f"differs from MH: random vs fixed effects ({_het_text(*ref, name)}); binomial-normal {scale}"
        why = "no between-trial heterogeneity in the data: " + _het_text(*ref, name) if ref is not None else \
            "heterogeneity not estimable"
        return f"differs from MH: binomial-normal random-effects {scale}, tau from its prior ({why})"
    if r["source"] == "frequentist":
        own = het.get(r["method"])
        if own is not None and own[0] > 0:
            return f"differs from MH: random vs fixed effects ({_het_text(*own, 'estimated')})"
        return ("differs from MH: inverse-variance weights on the log RR "
                "vs Mantel-Haenszel weights; no between-trial heterogeneity estimated")
    return ""


def _agreement(out: pd.DataFrame, mh, contrasts: pd.DataFrame, subgroup: str = "all",
               het: Mapping[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    out = out.copy()
    het = dict(het or {})
    for c in ("reproduced", "flag"):
        if c not in out.columns:
            out[c] = pd.NA
    zero = _zero_cell_studies(contrasts)
    here = list(contrasts["study"]) if contrasts is not None else []
    ratio, overlap, flag, reason = [], [], [], []
    for _, r in out.iterrows():
        why = [r["reason"]] if isinstance(r.get("reason"), str) and r["reason"] else []
        pre_flag = _bool(r.get("flag"))
        is_mh = r["source"] == "frequentist" and r["method"] == "mantel_haenszel_fixed"
        same_group = str(r.get("subgroup")) == str(subgroup)
        if (mh is None or not np.isfinite(mh[0]) or r["measure"] != "RR" or not np.isfinite(r["estimate"])
                or is_mh or not same_group):
            ratio.append(np.nan)
            overlap.append(pd.NA)
            flag.append(pre_flag)
            reason.append("; ".join(why))
            continue
        q = r["estimate"] / mh[0]
        ov = _overlap(r["ci_low"], r["ci_high"], mh[1], mh[2])
        differs = (not AGREE_LOW <= q <= AGREE_HIGH) or not ov
        if r["source"] in ("published", "recomputed"):
            theirs = _split(r["trials"])
            if set(theirs) != set(here):
                missing = [s for s in theirs if s not in here]
                extra = [s for s in here if s not in theirs]
                bits = []
                if missing:
                    bits.append(f"not in this comparison: {', '.join(missing)}")
                if extra:
                    bits.append(f"not in the published set: {', '.join(extra)}")
                why.append("different trial set than here (" + "; ".join(bits) + ")")
        if differs:
            if r["source"] in ("bayesian", "frequentist"):
                why.append(_differs_reason(r, het))
            else:
                why.append(f"differs from MH on this comparison's trials (ratio {q:.2f})")
            if zero:
                why.append(f"zero-cell studies: {', '.join(zero)}"
                           + (" (MH uses the raw counts, DL / REML add 0.5 to their cells)"
                              if r["source"] == "frequentist" else ""))
        ratio.append(q)
        overlap.append(ov)
        flag.append(bool(differs) or pre_flag)
        reason.append("; ".join(w for w in why if w))
    out["ratio_to_mh"] = ratio
    out["overlaps_mh"] = pd.array(overlap, dtype="boolean")
    out["flag"] = flag
    out["reason"] = reason
    out["reproduced"] = out["reproduced"].astype("boolean")
    return out[COLUMNS]


# --------------------------------------------------------------------------- subgroups
def _control_labels(td, treat: tuple[str, ...]) -> tuple[str, ...]:
    arms = td.arms
    is_t = arms["treatment"].isin(treat) | arms["node"].isin(treat)
    return tuple(sorted(set(arms.loc[~is_t, "treatment"].dropna().astype(str))))


def subgroup_contrasts(td, outcome: str, subgroup: str, *, treat=("tac",),
                       subgroups: Mapping[str, dict] = DEFAULT_SUBGROUPS) -> pd.DataFrame:
    """The two-arm contrasts of a subgroup: treated arms of the subgroup's node (all
    treated arms when none) against every arm that is not treated (so a second TAC arm
    never becomes a control), studies of the subgroup's phase."""
    treat = tuple(treat)
    flt = subgroups[subgroup]
    control = _control_labels(td, treat)
    t = (flt["node"],) if "node" in flt else treat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = td.contrasts(outcome, treat=t, control=control)
    if "phase" in flt:
        c = c[c["phase"].astype(str) == flt["phase"]]
    return c.reset_index(drop=True)


def subgroup_counts(result, contrasts: pd.DataFrame, node: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The fit's events and n with every arm outside the subgroup set to 0 of 0: kept are
    the studies of ``contrasts``, and in them the control arms and the treated arms (of
    ``node`` when given)."""
    des = result.design
    arms = des.arms
    keep_study = arms["study"].isin(set(contrasts["study"])).to_numpy()
    treated = arms["treated"].astype(bool).to_numpy()
    keep = keep_study.copy()
    if node is not None and "node" in arms.columns:
        keep &= ~treated | (arms["node"].astype(str) == node).to_numpy()
    ev, n = des.events.copy(), des.n.copy()
    ev[~keep] = 0
    n[~keep] = 0
    return ev, n


# --------------------------------------------------------------------------- everything
def full_comparison(
    td,
    *,
    outcomes: Iterable[str] | None = None,
    subgroups: Mapping[str, dict] | Iterable[str] | None = None,
    treat=("tac",),
    seed: int,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    backend: str = "auto",
    priors=None,
    min_trials: int = 2,
    ci: float = 0.95,
    progressbar: bool = False,
    fits: Mapping[str, object] | None = None,
    return_fits: bool = False,
):
    """The comparison table for every outcome and subgroup of ``td``.

    For each outcome (default: every outcome with at least ``min_trials`` informative
    trials in the ``all`` subgroup, plus the outcomes of ``td.published``) and each
    subgroup (default :data:`DEFAULT_SUBGROUPS`: all, duo, triple, induction,
    maintenance) with at least ``min_trials`` informative trials: MH, DL and REML RRs,
    the Bayesian RRs from a core-model fit of the outcome (random effects, independent
    baselines, priors ``priors``; subgroups by separate subgroup fits without
    covariates, see the module docstring), and the published rows with their reproduction. Subgroups with fewer
    informative trials get one ``skipped`` row saying why; published figures that could
    not be recomputed are listed with the reason.

    ``fits`` maps an outcome to an existing fit of it (used instead of a new fit; e.g. a
    run's fit). ``seed`` is required; each outcome's fit uses a seed derived from it.
    Returns the table (columns :data:`COLUMNS`), or ``(table, fits)`` with
    ``return_fits=True`` (fits keyed by ``(outcome, subgroup)``).
    """
    from bayesln.hierarchy import fit_core

    treat = tuple([treat] if isinstance(treat, str) else treat)
    if subgroups is None:
        subgroups = DEFAULT_SUBGROUPS
    elif not isinstance(subgroups, Mapping):
        names = list(subgroups)
        bad = [s for s in names if s not in DEFAULT_SUBGROUPS]
        if bad:
            raise ValueError(f"unknown subgroup(s) {', '.join(bad)}; known: {', '.join(DEFAULT_SUBGROUPS)} "
                             "(or pass a mapping name -> {'node': ..., 'phase': ...})")
        subgroups = {s: DEFAULT_SUBGROUPS[s] for s in names}
    pub_all = published_rows(td)
    known = sorted(set(td.outcomes["outcome"].astype(str)))
    if outcomes is None:
        outcomes = []
        for oc in known:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = td.contrasts(oc, treat=treat)
            if int(informative(c).sum()) >= min_trials:
                outcomes.append(oc)
        if pub_all is not None:
            outcomes += [o for o in dict.fromkeys(pub_all["outcome"]) if o not in outcomes]
    else:
        outcomes = [outcomes] if isinstance(outcomes, str) else list(outcomes)
    tables, fitted = [], {}
    for oc in outcomes:
        pub = pub_all[pub_all["outcome"] == oc] if pub_all is not None else None
        base = None
        base_error = None
        base_skipped = False
        done_pub: set[str] = set()
        for sg, flt in subgroups.items():
            try:
                c = subgroup_contrasts(td, oc, sg, treat=treat, subgroups=subgroups)
            except ValueError as exc:
                c = None
                skip_reason = f"no contrasts: {str(exc).splitlines()[0]}"
            else:
                info = informative(c)
                skip_reason = None
                if int(info.sum()) < min_trials:
                    which = ", ".join(c.loc[info, "study"]) or "none"
                    skip_reason = (f"{int(info.sum())} informative trial(s) ({which}); "
                                   f"pooling needs at least {min_trials}")
                c = c[info].reset_index(drop=True)
            sg_pub = pub[pub["subgroup"] == sg] if pub is not None else None
            if skip_reason is not None and base_skipped:
                continue  # too few trials in "all": no subgroup can have more
            if skip_reason is not None and not flt:
                base_skipped = True
            if skip_reason is not None:
                row = pd.DataFrame([{"outcome": oc, "subgroup": sg, "source": "skipped", "method": "none",
                                     "measure": "RR", "k": 0 if c is None else len(c),
                                     "trials": "" if c is None else ";".join(c["study"]),
                                     "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                                     "reason": skip_reason, "flag": False}])
                if sg_pub is not None and len(sg_pub):
                    row = pd.concat([row, sg_pub], ignore_index=True)
                    done_pub.add(sg)
                tables.append(_agreement(row, None, c if c is not None else pd.DataFrame(columns=["study"]), sg))
                continue
            # the Bayesian fit of the subgroup
            if base is None and base_error is None:
                if fits is not None and oc in fits:
                    base = fits[oc]
                else:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", UserWarning)
                            base = fit_core(td, oc, treat=treat, priors=priors, seed=derive_seed(seed, oc),
                                            draws=draws, tune=tune, chains=chains, backend=backend,
                                            progressbar=progressbar, prior_predictive=False)
                    except ValueError as exc:
                        base_error = f"no Bayesian fit: {str(exc).splitlines()[0]}"
            fit, note = None, base_error or "no trial of this subgroup is in the Bayesian fit"
            if base is not None:
                c_bayes = c[c["study"].isin(base.design.study_ids)]
                if len(c_bayes):
                    fit = base
                    ev, n = subgroup_counts(base, c_bayes, flt.get("node"))
                    # a subgroup (any filter) is a separate fit without covariates: a
                    # meta-regression inside one subgroup would split its effect between
                    # d and the (then nearly constant) covariate terms
                    drop = bool(flt) and bool(base.design.effect_names or base.design.baseline_names)
                    if drop or not (np.array_equal(ev, base.design.events) and np.array_equal(n, base.design.n)):
                        fit = refit(base, events=ev, n=n, drop_effect_modifiers=bool(flt),
                                    drop_baseline_covariates=bool(flt), seed=derive_seed(seed, oc, sg), draws=draws,
                                    tune=tune, chains=chains, progressbar=progressbar, label=f"subgroup {sg}")
                    fitted[(oc, sg)] = fit
            tab = comparison_table(fit, c, outcome=oc, subgroup=sg, published=sg_pub, ci=ci)
            if fit is None:
                tab = pd.concat([tab, _agreement(pd.DataFrame([{
                    "outcome": oc, "subgroup": sg, "source": "bayesian", "method": "none", "measure": "RR",
                    "k": 0, "trials": "", "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                    "reason": note, "flag": True}]), None, c, sg)], ignore_index=True)
            if sg_pub is not None and len(sg_pub):
                done_pub.add(sg)
            tables.append(tab)
        # published rows of subgroups not compared here
        if pub is not None:
            rest = pub[~pub["subgroup"].isin(done_pub)]
            if len(rest):
                tables.append(_agreement(rest.copy(), None, pd.DataFrame(columns=["study"]), "__none__"))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
    table["reproduced"] = table["reproduced"].astype("boolean")
    table["overlaps_mh"] = table["overlaps_mh"].astype("boolean")
    return (table, fitted) if return_fits else table
