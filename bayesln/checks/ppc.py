"""Posterior predictive checks per study and arm.

For every arm the observed events are set against replicated events y_rep from two
predictive distributions:

* **posterior predictive** (the fit's ``posterior_predictive`` group ``events``, dim
  ``arm``): y_rep ~ Binomial(n, inv_logit(eta)) with the arm's own posterior eta, i.e.
  with the study's own delta_i. It uses the data twice and is conservative (Gelman, Meng
  & Stern 1996; Bayarri & Berger 2000): a random-effects fit bends delta_i towards an
  outlying trial, so these p-values rarely flag anything.
* **mixed predictive** (Marshall & Spiegelhalter 2007, Bayesian Analysis 2:409): the
  study's effect is drawn afresh from the random-effects distribution,
  delta_rep ~ Normal(d, tau), keeping the study's baseline mu_i (and covariate terms):
  "would a new trial like this one, drawn from the fitted population of effects, give
  these counts?". This is what flags a trial whose effect does not fit with the others.
  Control arms depend on delta_i only through mu_i, so their two p-values are similar.
  Under a common effect both are the same distribution.

p-values are two-sided mid-p values for the discrete counts:
p_hi = P(y_rep > y) + 0.5 P(y_rep = y),  p = min(1, 2 min(p_hi, 1 - p_hi)).
An arm is flagged when either p-value is below ``alpha`` (default 0.05).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from bayesln.checks.refit import derive_seed

__all__ = ["mid_p", "plot_ppc", "ppc_table"]


def mid_p(y_rep: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided mid-p values and P(y_rep > y) + 0.5 P(y_rep = y), per column of
    ``y_rep`` (draws x arms) against ``y`` (arms)."""
    y_rep = np.asarray(y_rep)
    y = np.asarray(y)
    p_hi = (y_rep > y).mean(axis=0) + 0.5 * (y_rep == y).mean(axis=0)
    return np.minimum(1.0, 2 * np.minimum(p_hi, 1 - p_hi)), p_hi


def _flat(post, name):
    a = np.asarray(post[name].values)
    return a.reshape((-1,) + a.shape[2:])


def mixed_replicates(result, seed: int | None = None) -> np.ndarray:
    """Replicated events per draw and arm with each study's effect drawn afresh from
    Normal(d, tau) (its baseline and covariate terms kept)."""
    des = result.design
    post = result.idata.posterior
    d = _flat(post, "d")
    S = d.shape[0]
    rng = np.random.default_rng(derive_seed(int(result.seed if seed is None else seed), "mixed-ppc"))
    mu = _flat(post, "mu")
    if "tau" in post:
        delta_rep = d[:, None] + _flat(post, "tau")[:, None] * rng.standard_normal((S, des.n_studies))
    else:
        delta_rep = np.repeat(d[:, None], des.n_studies, axis=1)
    eta = mu[:, des.arm_study] + des.treated[None, :] * delta_rep[:, des.arm_study]
    if des.effect_names:
        eta = eta + _flat(post, "beta") @ des.X_effect.T
    return rng.binomial(des.n[None, :], expit(eta))


def ppc_table(result, *, alpha: float = 0.05, ci: float = 0.95, mixed: bool = True, seed: int | None = None) -> pd.DataFrame:
    """One row per arm: observed events, the replicated median and ``ci`` interval
    (posterior and mixed predictive), the two-sided mid-p values ``p_posterior`` and
    ``p_mixed``, ``flag`` (either below ``alpha``) and a short ``reason``. Arms left out
    of the fit (n = 0) are skipped."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    obs = result.idata.observed_data["events"]
    arms = [str(a) for a in obs["arm"].values]
    y = np.asarray(obs.values)
    pp = result.idata.posterior_predictive["events"]
    y_rep = np.asarray(pp.transpose("chain", "draw", "arm").values).reshape(-1, len(arms))
    n = np.asarray(result.idata.constant_data["n"].values) if "n" in result.idata.constant_data else result.design.n
    p_post, _ = mid_p(y_rep, y)
    a = (1 - ci) / 2
    q_post = np.quantile(y_rep, [a, 0.5, 1 - a], axis=0)
    des = getattr(result, "design", None)
    has_core = des is not None and hasattr(des, "arm_study") and list(des.arm_ids) == arms
    if mixed and has_core:
        y_mix = mixed_replicates(result, seed)
        p_mix, _ = mid_p(y_mix, y)
        q_mix = np.quantile(y_mix, [a, 0.5, 1 - a], axis=0)
    else:
        p_mix = np.full(len(arms), np.nan)
        q_mix = np.full((3, len(arms)), np.nan)
    if has_core:
        info = des.arms.set_index("arm_id").loc[arms]
        study = info["study"].astype(str).to_numpy()
        arm = info["arm"].astype(str).to_numpy()
        treatment = info["treatment"].astype(str).to_numpy()
        treated = des.treated.astype(bool)
    else:
        split = [x.split(":", 1) if ":" in x else (x, x) for x in arms]
        study = np.array([s for s, _ in split])
        arm = np.array([b for _, b in split])
        treatment = arm
        cd = result.idata.constant_data
        treated = np.asarray(cd["treated"].values, bool) if "treated" in cd else np.zeros(len(arms), bool)
    out = pd.DataFrame({
        "study": study, "arm": arm, "arm_id": arms, "treatment": treatment, "treated": treated,
        "events": y.astype(int), "n": np.asarray(n).astype(int),
        "rep_median": q_post[1], "rep_low": q_post[0], "rep_high": q_post[2], "p_posterior": p_post,
        "mixed_median": q_mix[1], "mixed_low": q_mix[0], "mixed_high": q_mix[2], "p_mixed": p_mix,
    })
    out = out[out["n"] > 0].reset_index(drop=True)
    flags, reasons = [], []
    for _, r in out.iterrows():
        why = []
        if r["p_posterior"] < alpha:
            why.append(f"observed {r['events']}/{r['n']} outside the posterior predictive "
                       f"(p = {r['p_posterior']:.3f}; {100 * ci:g}% range {r['rep_low']:.0f}-{r['rep_high']:.0f})")
        if np.isfinite(r["p_mixed"]) and r["p_mixed"] < alpha:
            side = "fewer" if r["events"] < r["mixed_median"] else "more"
            why.append(f"{side} events than a trial with an effect from the fitted population would give "
                       f"(mixed p = {r['p_mixed']:.3f}; {100 * ci:g}% range {r['mixed_low']:.0f}-{r['mixed_high']:.0f})")
        flags.append(bool(why))
        reasons.append("; ".join(why))
    out["flag"] = flags
    out["reason"] = reasons
    out.attrs["alpha"] = alpha
    return out


def plot_ppc(result, *, table: pd.DataFrame | None = None, alpha: float = 0.05, ci: float = 0.95, title: str | None = None):
    """Observed vs replicated event proportions per arm: the posterior predictive
    ``ci`` interval (thick), the mixed predictive interval (thin) and the observed
    proportion (dot; red when flagged). Returns a matplotlib Figure."""
    from bayesln.checks.plots import ppc_figure

    tab = ppc_table(result, alpha=alpha, ci=ci) if table is None else table
    return ppc_figure(tab, title=title or f"Posterior predictive check: {getattr(result, 'outcome', '')}", ci=ci)
