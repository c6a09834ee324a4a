"""Prior sensitivity: refits under alternative priors for tau and for the pooled effect.

One prior is changed at a time, the others stay as fitted. Defaults:

* tau: half-normal 0.25 / 0.5 / 1, Turner et al. (2015) empirical (``turner()``: the
  outcome's default outcome type, pharmacological vs pharmacological), half-Cauchy 0.5;
* d (pooled log OR): normal sd 1 / 2.5 / 10.

For each: OR median and interval, tau median and interval, P(OR > 1), and the direction
probability the summary reports (P(OR > 1) for benefit outcomes, P(OR < 1) for harms).
A row is flagged when a conclusion changes against the fitted model: P(OR > 1) crosses
0.95 or 0.05 (either way), or the OR interval starts or stops excluding 1.

A prior equal to the fitted one reuses the fit (no refit). Every other row is a full
refit (:func:`bayesln.checks.refit.refit`; a new prior means a new compiled model).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from bayesln.checks.refit import derive_seed, fit_priors, refit_many
from bayesln.hierarchy.priors import Prior, resolve_tau_prior

__all__ = ["DEFAULT_D_PRIORS", "DEFAULT_TAU_PRIORS", "prior_sensitivity"]

DEFAULT_TAU_PRIORS = ("half_normal(0.25)", "half_normal(0.5)", "half_normal(1)", "turner()", "half_cauchy(0.5)")
DEFAULT_D_PRIORS = ("normal(0, 1)", "normal(0, 2.5)", "normal(0, 10)")


def _summ(result, ci: float) -> dict:
    post = result.idata.posterior
    d = np.asarray(post["d"].values).reshape(-1)
    a = (1 - ci) / 2
    lo, med, hi = np.exp(np.quantile(d, [a, 0.5, 1 - a]))
    out = {"or_median": med, "or_low": lo, "or_high": hi, "p_or_gt_1": float(np.mean(d > 0))}
    if "tau" in post:
        t = np.asarray(post["tau"].values).reshape(-1)
        tl, tm, th = np.quantile(t, [a, 0.5, 1 - a])
        out.update(tau_median=tm, tau_low=tl, tau_high=th)
    else:
        out.update(tau_median=np.nan, tau_low=np.nan, tau_high=np.nan)
    benefit = getattr(result, "direction", "benefit") == "benefit"
    out["p_direction"] = out["p_or_gt_1"] if benefit else float(np.mean(d < 0))
    out["excludes_1"] = bool(lo > 1 or hi < 1)
    out["gate"] = result.diagnostics.verdict
    return out


def _same(a: Prior, b: Prior, outcome: str) -> bool:
    try:
        ra, rb = resolve_tau_prior(a, outcome), resolve_tau_prior(b, outcome)
    except ValueError:
        return False
    pa = {k: v for k, v in ra.params.items() if k != "source"}
    pb = {k: v for k, v in rb.params.items() if k != "source"}
    return ra.dist == rb.dist and pa == pb


def prior_sensitivity(result, *, tau_priors: Iterable[str | Prior] | None = DEFAULT_TAU_PRIORS,
                      d_priors: Iterable[str | Prior] | None = DEFAULT_D_PRIORS, seed: int | None = None,
                      draws=None, tune=None, chains=None, ci: float = 0.95, threshold: float = 0.95,
                      progressbar: bool = False, executor=None, return_fits: bool = False):
    """The key summaries under each alternative prior (see the module docstring).

    Columns: ``changed`` (``reference`` / ``tau`` / ``d``), ``prior`` (as written),
    ``tau_prior``, ``d_prior`` (the full priors of the row), ``fitted_tau_prior``,
    ``fitted_d_prior`` (see below), ``or_median``, ``or_low``,
    ``or_high``, ``tau_median``, ``tau_low``, ``tau_high``, ``p_or_gt_1``,
    ``p_direction``, ``excludes_1``, ``or_ratio`` (OR median / reference),
    ``tau_change``, ``gate``, ``flag`` and ``reason``.

    ``executor``: where the refits run (:func:`bayesln.checks.refit.refit_many`; default
    in this process). Each row's seed is derived from the prior, so the table does not
    depend on the executor.

    ``fitted_tau_prior`` / ``fitted_d_prior`` are read back from each refit's own
    configuration (what was actually sampled; the fit's for the reference and for rows
    that reuse it), so the table shows that every scenario ran with its prior. With
    ``return_fits=True`` the result is ``(table, fits)``, ``fits`` mapping a row index to
    the fit behind it (the fit itself for the reference and reused rows).
    """
    base = fit_priors(result)
    outcome = result.outcome
    label = "P(OR > 1)" if getattr(result, "direction", "benefit") == "benefit" else "P(OR < 1)"
    ref = _summ(result, ci)
    no_tau = "none (common effect)"
    rows = [{"changed": "reference", "prior": "as fitted", "tau_prior": str(base.tau) if not result.common_effect else no_tau,
             "d_prior": str(base.d), **ref, "reason": "the fitted model"}]
    plan = []
    jobs: list[tuple[int, dict]] = []  # (row, refit arguments)
    for p in (tau_priors or ()):
        plan.append(("tau", p))
    for p in (d_priors or ()):
        plan.append(("d", p))
    for what, text in plan:
        row = {"changed": what, "prior": str(text)}
        try:
            pr = Prior.parse(text)
            if what == "tau":
                if result.common_effect:
                    rows.append({**row, "tau_prior": "none (common effect)", "d_prior": str(base.d),
                                 "reason": "common-effect model: no tau"})
                    continue
                resolve_tau_prior(pr, outcome)  # fails early for turner() without a default type
                new = base.model_copy(update={"tau": pr})
            else:
                new = base.model_copy(update={"d": pr})
            new = type(base).model_validate(new.model_dump())
        except ValueError as exc:
            rows.append({**row, "tau_prior": "", "d_prior": "", "reason": f"not available: {str(exc).splitlines()[0]}"})
            continue
        row.update(tau_prior=str(resolve_tau_prior(new.tau, outcome)) if not result.common_effect else "none (common effect)",
                   d_prior=str(new.d))
        if (what == "tau" and _same(pr, base.tau, outcome)) or (what == "d" and pr == base.d):
            rows.append({**row, **ref, "reason": "same as the fitted prior (no refit)"})
            continue
        jobs.append((len(rows), dict(priors=new, seed=derive_seed(int(result.seed if seed is None else seed), "prior", what, text),
                                     draws=draws, tune=tune, chains=chains, progressbar=progressbar,
                                     label=f"prior {what} = {text}")))
        rows.append({**row, "reason": ""})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fits = refit_many(result, [kw for _, kw in jobs], executor=executor)
    by_row = {i: result for i, r in enumerate(rows) if np.isfinite(r.get("or_median", np.nan))}
    for (i, _), fit in zip(jobs, fits):
        rows[i] = {**rows[i], **_summ(fit, ci), "reason": ""}
        by_row[i] = fit
    for i, fit in by_row.items():
        rows[i]["fitted_tau_prior"], rows[i]["fitted_d_prior"] = _fitted_priors(fit)
    out = pd.DataFrame(rows)
    out["or_ratio"] = out["or_median"] / ref["or_median"]
    out["tau_change"] = out["tau_median"] - ref["tau_median"]
    flags, reasons = [], []
    lo_thr = 1 - threshold
    for _, r in out.iterrows():
        why = [r["reason"]] if isinstance(r["reason"], str) and r["reason"] else []
        flag = False
        if r["changed"] != "reference" and np.isfinite(r.get("or_median", np.nan)):
            for thr, word in ((threshold, "above"), (lo_thr, "below")):
                before = ref["p_or_gt_1"] >= thr if word == "above" else ref["p_or_gt_1"] <= thr
                after = r["p_or_gt_1"] >= thr if word == "above" else r["p_or_gt_1"] <= thr
                if before != after:
                    flag = True
                    why.append(f"P(OR > 1) {ref['p_or_gt_1']:.3f} -> {r['p_or_gt_1']:.3f} crosses {thr:g}")
            if bool(r["excludes_1"]) != bool(ref["excludes_1"]):
                flag = True
                why.append("the OR interval " + ("now excludes 1" if r["excludes_1"] else "no longer excludes 1"))
            if r.get("gate") == "fail":
                why.append("refit failed the diagnostics gate")
        flags.append(flag)
        reasons.append("; ".join(why))
    out["flag"] = flags
    out["reason"] = reasons
    out["direction_label"] = label
    cols = ["changed", "prior", "tau_prior", "d_prior", "fitted_tau_prior", "fitted_d_prior", "or_median", "or_low",
            "or_high", "tau_median", "tau_low", "tau_high", "p_or_gt_1", "p_direction", "direction_label", "excludes_1",
            "or_ratio", "tau_change", "gate", "flag", "reason"]
    for c in cols:
        if c not in out.columns:
            out[c] = np.nan
    out = out[cols]
    return (out, by_row) if return_fits else out


def _fitted_priors(fit) -> tuple[str, str]:
    """The tau and d priors a fit was sampled with, from its own configuration."""
    cfg = getattr(fit, "config", None) or {}
    pri = cfg.get("priors") or {}
    if cfg.get("common_effect"):
        tau = "none (common effect)"
    else:
        t = pri.get("tau")
        tau = str(Prior.model_validate(t)) if isinstance(t, dict) else ""
    d = pri.get("d")
    return tau, (str(Prior.model_validate(d)) if isinstance(d, dict) else "")
