"""Leave-one-study-out: PSIS-LOO per study, exact refits where it is unreliable, and the
influence of each study on the pooled effect and the heterogeneity.

One study is one unit. Two importance-sampling versions of PSIS-LOO are reported:

* **integrated** (used for elpd and for the refit decision): the log-likelihood of study
  i is its likelihood as a new study of the model, with its own parameters (baseline
  mu_i, effect delta_i) integrated out given the population parameters
  (:func:`bayesln.checks.marginal.integrated_study_loglik`); PSIS reweights the draws of
  the population parameters only ("integrated importance sampling", Vehtari, Mononen,
  Tolvanen, Sivula & Winther 2016, JMLR 17:103). Removing a study changes the posterior of
  d and tau a little unless the study is influential or outlying, so Pareto k is a
  useful per-study flag.
* **conditional** (column ``pareto_k_conditional``): ArviZ's PSIS-LOO on the fit's
  ``study_loglik`` (the likelihood given the study's own mu_i and delta_i). Leaving a
  study out returns its own mu_i to the prior, so these k are usually above 0.7 for every
  study with independent baselines; reported for completeness, not used.

The integrated version also covers the joint efficacy-safety model
(:func:`bayesln.checks.marginal.joint_integrated_study_loglik`: the study's baselines and
correlated effects of all its outcomes integrated out; no exact refits for that model).

Both estimate the same quantity, elpd_i = log p(y_i | y_-i). Where the integrated Pareto
k exceeds ``k_threshold`` (0.7; Vehtari, Simpson, Gelman, Yao & Gabry 2024, JMLR 25:72)
the study is refitted without it (:func:`bayesln.checks.refit.refit` with its counts set
to 0, which reuses the compiled model) and its exact elpd_i is the log of the average of
p(y_i | theta_s) over the refit's draws.

The influence table uses the same held-out refits for every study: the posterior median
and interval of d (log OR), OR and tau with and without each study, and the change; next
to it metafor-style ``leave1out`` (REML, OR) from :mod:`bayesln.frequentist`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayesln import _arviz
from bayesln.checks.marginal import (
    INNER,
    integrated_study_loglik,
    is_joint_fit,
    joint_integrated_study_loglik,
    stored_integrated_loglik,
)
from bayesln.checks.refit import derive_seed, is_core_fit, refit_many, zero_counts

__all__ = ["K_THRESHOLD", "StudyLoo", "held_out_refits", "influence_table", "psislw", "study_loo"]

K_THRESHOLD = 0.7


def psislw(log_ratios: np.ndarray, reff: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed log weights (normalised) and Pareto k; ``log_ratios`` is
    (n_units, n_draws). ArviZ's ``psislw`` (through :mod:`bayesln._arviz`)."""
    lw, k = _arviz.psislw(np.array(log_ratios, dtype=float, copy=True), reff=reff)
    return np.asarray(lw), np.asarray(k)


@dataclass
class StudyLoo:
    """Leave-one-study-out result.

    ``pointwise``: one row per study: ``elpd_loo`` (the value used: exact where refitted),
    ``elpd_psis``, ``pareto_k`` (integrated), ``pareto_k_conditional``, ``elpd_exact``
    (NaN when not refitted), ``lppd``, ``p_loo``, ``method`` (``psis`` / ``exact`` /
    ``psis (k high, not refitted)``), ``refit_gate`` and ``flag`` / ``reason``.
    ``elpd``, ``se``, ``p_loo`` are the sums (se = sqrt(n var(elpd_i))).
    ``refits`` holds the held-out fits by study.
    """

    pointwise: pd.DataFrame
    elpd: float
    se: float
    p_loo: float
    lppd: float
    k_threshold: float
    kind: str = "integrated"
    refits: dict = field(default_factory=dict, repr=False)

    @property
    def n_high_k(self) -> int:
        return int((self.pointwise["pareto_k"] > self.k_threshold).sum())

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "elpd_loo": self.elpd, "se": self.se, "p_loo": self.p_loo, "lppd": self.lppd,
            "n_studies": len(self.pointwise), "n_high_k": self.n_high_k,
            "n_exact": int((self.pointwise["method"] == "exact").sum()), "k_threshold": self.k_threshold,
            "kind": self.kind,
        }])

    def to_dict(self) -> dict:
        return {"summary": _records(self.summary())[0], "pointwise": _records(self.pointwise)}


def _records(df: pd.DataFrame) -> list[dict]:
    import json

    return json.loads(df.to_json(orient="records"))


def _conditional_k(result) -> np.ndarray | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(result.loo(kind="conditional").pareto_k.values, dtype=float)
    except Exception:  # noqa: BLE001 - a missing log-likelihood group just leaves the column empty
        return None


def held_out_refits(result, studies=None, *, seed: int | None = None, draws=None, tune=None, chains=None,
                    progressbar: bool = False, existing: dict | None = None, executor=None) -> dict:
    """The fit refitted without each of ``studies`` (default: every study), by study;
    fits already in ``existing`` are reused. ``executor``: see
    :func:`bayesln.checks.refit.refit_many` (default: in this process, reusing the fit's
    compiled model, unless there are many studies)."""
    out = dict(existing or {})
    studies = list(result.design.study_ids) if studies is None else list(studies)
    base = int(result.seed if seed is None else seed)
    todo = [s for s in dict.fromkeys(studies) if s not in out]
    jobs = []
    for s in todo:
        ev, n = zero_counts(result, [s])
        jobs.append(dict(events=ev, n=n, seed=derive_seed(base, "loo", s), draws=draws, tune=tune, chains=chains,
                         progressbar=progressbar, label=f"leave out {s}"))
    for s, fit in zip(todo, refit_many(result, jobs, executor=executor)):
        out[s] = fit
    return out


def study_loo(result, *, k_threshold: float = K_THRESHOLD, refit: str = "auto", refits: dict | None = None,
              inner: int = INNER, seed: int | None = None, draws=None, tune=None, chains=None,
              progressbar: bool = False, kind: str = "integrated", executor=None,
              reff: float | str = "arviz") -> StudyLoo:
    """Leave-one-study-out for a fit (see the module docstring).

    ``refit``: ``"auto"`` (exact refits where the integrated Pareto k > ``k_threshold``),
    ``"all"`` (every study) or ``"none"``. ``refits``: held-out fits already made (e.g.
    by :func:`influence_table`), reused. For fits of other model families (no core
    design) only the conditional PSIS-LOO of ``study_loglik`` is available;
    ``kind="conditional"`` asks for it for a core fit too (no refits). A joint
    efficacy-safety fit (:func:`bayesln.hierarchy.joint.fit_joint`) gets the integrated
    estimator too (:func:`bayesln.checks.marginal.joint_integrated_study_loglik`: the
    study's baselines and correlated effects integrated out; one study = all its
    outcomes), without exact refits (a study with k > ``k_threshold`` keeps its PSIS
    value, method ``psis (k high, not refitted)``). ``executor`` runs the refits
    (:func:`held_out_refits`).

    The integrated log-likelihood of the fit's own draws is read from its InferenceData
    (``log_likelihood["study_integrated"]``, written by ``fit_core`` / ``fit_joint``) when
    it was made with this ``inner`` and ``seed``, else computed: the same numbers either
    way. ``reff``: the relative efficiency given to PSIS, ``"arviz"`` (default: the value
    ``az.loo`` computes when not given one, :func:`bayesln._arviz.relative_eff`, mean ESS of
    all posterior variables / draws - so that ``az.loo`` on a run's idata.nc equals
    ``bayesln check``'s elpd and Pareto k wherever no exact refit replaced a study) or a
    number (1.0: bayesln before 2026-12-03, ``az.loo(idata, reff=1.0)``).
    """
    if refit not in ("auto", "all", "none"):
        raise ValueError(f"refit must be 'auto', 'all' or 'none', not {refit!r}")
    if kind not in ("integrated", "conditional"):
        raise ValueError(f"kind must be 'integrated' or 'conditional', not {kind!r}")
    joint = is_joint_fit(result)
    if kind == "conditional" or not (is_core_fit(result) or joint):
        return _conditional_only(result, k_threshold)
    stored = stored_integrated_loglik(result, inner=inner, seed=seed)
    if stored is not None:
        studies, L = stored
    elif joint:
        studies, L = joint_integrated_study_loglik(result, inner=inner, seed=seed)
    else:
        studies, L = integrated_study_loglik(result, inner=inner, seed=seed)
    S = L.shape[0]
    if isinstance(reff, str):
        if reff != "arviz":
            raise ValueError(f"reff must be a number or 'arviz', not {reff!r}")
        reff = _arviz.relative_eff(result.idata.posterior)
    lw, k = psislw(-L.T, reff=float(reff))
    elpd_psis = logsumexp(lw + L.T, axis=1)
    lppd = logsumexp(L, axis=0) - np.log(S)
    kc = _conditional_k(result)
    pw = pd.DataFrame({"study": studies, "elpd_psis": elpd_psis, "pareto_k": k, "lppd": lppd})
    pw["pareto_k_conditional"] = kc if kc is not None and len(kc) == len(studies) else np.nan
    todo = [s for s, kk in zip(studies, k) if (refit == "all") or (refit == "auto" and kk > k_threshold)]
    if joint:
        todo = []  # no exact refits for the joint model
    fits = held_out_refits(result, todo, seed=seed, draws=draws, tune=tune, chains=chains,
                           progressbar=progressbar, existing=refits, executor=executor) if todo else dict(refits or {})
    exact, gate = [], []
    for s in studies:
        if s in fits and s in todo:
            _, Le = integrated_study_loglik(result, posterior=fits[s].idata.posterior, studies=[s], inner=inner,
                                            seed=seed)
            exact.append(float(logsumexp(Le[:, 0]) - np.log(Le.shape[0])))
            gate.append(fits[s].diagnostics.verdict)
        else:
            exact.append(np.nan)
            gate.append("")
    pw["elpd_exact"] = exact
    pw["refit_gate"] = gate
    use_exact = np.isfinite(pw["elpd_exact"].to_numpy())
    pw["elpd_loo"] = np.where(use_exact, pw["elpd_exact"], pw["elpd_psis"])
    high = pw["pareto_k"] > k_threshold
    pw["method"] = np.where(use_exact, "exact", np.where(high, "psis (k high, not refitted)", "psis"))
    pw["p_loo"] = pw["lppd"] - pw["elpd_loo"]
    flags, reasons = [], []
    for _, r in pw.iterrows():
        why = []
        if r["pareto_k"] > k_threshold:
            why.append(f"Pareto k {r['pareto_k']:.2f} > {k_threshold}: influential or outlying study"
                       + (" (exact refit used)" if r["method"] == "exact" else
                          " (no exact refit for the joint model: PSIS value unreliable)" if joint else ""))
        flags.append(bool(why))
        if r["refit_gate"] == "fail":
            why.append("the refit without it failed the diagnostics gate (more draws?)")
        reasons.append("; ".join(why))
    pw["flag"] = flags
    pw["reason"] = reasons
    n = len(pw)
    e = pw["elpd_loo"].to_numpy()
    cols = ["study", "elpd_loo", "elpd_psis", "elpd_exact", "pareto_k", "pareto_k_conditional", "lppd", "p_loo",
            "method", "refit_gate", "flag", "reason"]
    return StudyLoo(pointwise=pw[cols], elpd=float(e.sum()), se=float(np.sqrt(n * np.var(e))) if n > 1 else np.nan,
                    p_loo=float(pw["p_loo"].sum()), lppd=float(pw["lppd"].sum()), k_threshold=k_threshold,
                    kind="integrated", refits=fits)


def _conditional_only(result, k_threshold) -> StudyLoo:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = result.loo(kind="conditional")
    ll = result.conditional_loglik()
    studies = [str(s) for s in ll["study"].values]
    L = np.asarray(ll.values, dtype=float).reshape(-1, len(studies))
    lppd = logsumexp(L, axis=0) - np.log(L.shape[0])
    e = np.asarray(loo.loo_i.values, dtype=float)
    k = np.asarray(loo.pareto_k.values, dtype=float)
    pw = pd.DataFrame({"study": studies, "elpd_loo": e, "elpd_psis": e, "elpd_exact": np.nan, "pareto_k": k,
                       "pareto_k_conditional": k, "lppd": lppd, "p_loo": lppd - e,
                       "method": np.where(k > k_threshold, "psis (k high, not refitted)", "psis"), "refit_gate": ""})
    pw["flag"] = k > k_threshold
    pw["reason"] = [f"Pareto k {kk:.2f} > {k_threshold} (conditional PSIS; exact refits need a core-model fit)"
                    if kk > k_threshold else "" for kk in k]
    n = len(pw)
    return StudyLoo(pointwise=pw, elpd=float(e.sum()), se=float(np.sqrt(n * np.var(e))) if n > 1 else np.nan,
                    p_loo=float((lppd - e).sum()), lppd=float(lppd.sum()), k_threshold=k_threshold, kind="conditional")


# --------------------------------------------------------------------------- influence
def _qs(x, ci):
    a = (1 - ci) / 2
    lo, med, hi = np.quantile(np.asarray(x, float).reshape(-1), [a, 0.5, 1 - a])
    return float(med), float(lo), float(hi)


def study_contrasts(result) -> pd.DataFrame:
    """One two-arm contrast per study of the fit (arms on the same side pooled, as
    ``TrialData.contrasts(multi_arm="pool")``), from the design's counts."""
    des = result.design
    rows = []
    for i, s in enumerate(des.study_ids):
        J = des.arm_study == i
        t = J & (des.treated == 1)
        c = J & (des.treated == 0)
        if not t.any() or not c.any():
            continue
        rows.append({"study": s, "events_t": int(des.events[t].sum()), "n_t": int(des.n[t].sum()),
                     "events_c": int(des.events[c].sum()), "n_c": int(des.n[c].sum())})
    return pd.DataFrame(rows, columns=["study", "events_t", "n_t", "events_c", "n_c"])


def influence_table(result, *, loo: StudyLoo | None = None, refits: dict | None = None, ci: float = 0.95,
                    seed: int | None = None, draws=None, tune=None, chains=None, progressbar: bool = False,
                    frequentist: bool = True, executor=None) -> pd.DataFrame:
    """Pooled log OR ``d`` (and OR) and ``tau`` with and without each study.

    Columns: ``study``; ``d_median`` / ``d_low`` / ``d_high`` without the study and
    ``d_change`` (median without minus median with all studies); the same for ``or_*``
    (``or_ratio`` = OR median without / with) and ``tau_*``; ``pareto_k`` (integrated,
    when ``loo`` is given); ``reml_log_or`` / ``reml_change`` / ``reml_tau2`` /
    ``reml_tau2_change``: metafor-style leave1out (REML, OR) of the same studies; the
    refit's gate verdict; ``flag`` and ``reason`` (the median of d or tau moves by more than
    half its posterior SD, or Pareto k is high). The first row (``study = "(none)"``) is
    the fit with all studies. Refits are shared with ``loo`` (and stored back into it);
    ``executor`` runs the missing ones (:func:`held_out_refits`).
    """
    post = result.idata.posterior
    d_all = np.asarray(post["d"].values).reshape(-1)
    has_tau = "tau" in post
    tau_all = np.asarray(post["tau"].values).reshape(-1) if has_tau else None
    fits = dict(refits or {})
    if loo is not None:
        fits.update(loo.refits)
    fits = held_out_refits(result, None, seed=seed, draws=draws, tune=tune, chains=chains,
                           progressbar=progressbar, existing=fits, executor=executor)
    if loo is not None:
        loo.refits.update(fits)
    dm, dl, dh = _qs(d_all, ci)
    rows = [{"study": "(none)", "d_median": dm, "d_low": dl, "d_high": dh, "d_change": 0.0,
             "or_median": np.exp(dm), "or_low": np.exp(dl), "or_high": np.exp(dh), "or_ratio": 1.0}]
    if has_tau:
        tm, tl, th = _qs(tau_all, ci)
        rows[0].update(tau_median=tm, tau_low=tl, tau_high=th, tau_change=0.0)
    d_sd = float(np.std(d_all))
    tau_sd = float(np.std(tau_all)) if has_tau else np.nan
    kmap = dict(zip(loo.pointwise["study"], loo.pointwise["pareto_k"])) if loo is not None else {}
    kthr = loo.k_threshold if loo is not None else K_THRESHOLD
    for s in result.design.study_ids:
        p = fits[s].idata.posterior
        m, lo, hi = _qs(p["d"].values, ci)
        row = {"study": s, "d_median": m, "d_low": lo, "d_high": hi, "d_change": m - dm,
               "or_median": np.exp(m), "or_low": np.exp(lo), "or_high": np.exp(hi), "or_ratio": np.exp(m - dm),
               "refit_gate": fits[s].diagnostics.verdict}
        why = []
        if abs(m - dm) > 0.5 * d_sd:
            why.append(f"pooled log OR moves by {m - dm:+.2f} (> half its posterior SD {d_sd:.2f})")
        if has_tau:
            t_m, t_l, t_h = _qs(p["tau"].values, ci)
            row.update(tau_median=t_m, tau_low=t_l, tau_high=t_h, tau_change=t_m - rows[0]["tau_median"])
            if abs(t_m - rows[0]["tau_median"]) > 0.5 * tau_sd:
                why.append(f"tau moves by {t_m - rows[0]['tau_median']:+.2f} (> half its posterior SD {tau_sd:.2f})")
        if s in kmap:
            row["pareto_k"] = kmap[s]
            if kmap[s] > kthr:
                why.append(f"Pareto k {kmap[s]:.2f} > {kthr}")
        row["flag"] = bool(why)
        if row["refit_gate"] == "fail":
            why.append("refit failed the diagnostics gate (more draws?)")
        row["reason"] = "; ".join(why)
        rows.append(row)
    out = pd.DataFrame(rows)
    if frequentist:
        out = _add_frequentist(out, result)
    out.loc[0, "flag"] = False
    out.loc[0, "reason"] = "all studies"
    out["flag"] = out["flag"].astype(bool)
    return out


def _add_frequentist(out: pd.DataFrame, result) -> pd.DataFrame:
    from bayesln.frequentist import leave_one_out, meta_analysis

    c = study_contrasts(result)
    cols = {"reml_log_or": np.nan, "reml_change": np.nan, "reml_tau2": np.nan, "reml_tau2_change": np.nan}
    for k, v in cols.items():
        out[k] = v
    if len(c) < 2:
        return out
    try:
        full = meta_analysis(c, "OR", "reml").summary.iloc[0]
        l1o = leave_one_out(c, "OR", "reml")
    except ValueError:
        return out
    b0, t0 = float(full["log_estimate"]), float(full["tau2"])
    out.loc[out["study"] == "(none)", ["reml_log_or", "reml_change", "reml_tau2", "reml_tau2_change"]] = [b0, 0.0, t0, 0.0]
    for _, r in l1o.iterrows():
        m = out["study"] == r["omitted"]
        out.loc[m, "reml_log_or"] = r["log_estimate"]
        out.loc[m, "reml_change"] = r["log_estimate"] - b0
        out.loc[m, "reml_tau2"] = r["tau2"]
        out.loc[m, "reml_tau2_change"] = r["tau2"] - t0
    return out
