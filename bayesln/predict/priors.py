"""Default priors for effect modifiers the data cannot estimate ("extrapolation priors").

When a target's covariate value differs from the trials that inform the fitted model and
the model has no coefficient for that covariate (it is constant in the data, e.g.
``asian_fraction`` = 1 in every trial, or it was not modelled), the prediction adds

    log-OR (TAC vs comparator):     + Delta_c * (x_target - x_data)       Delta_c ~ prior_c
    comparator-arm log odds:        + Gamma_c * (x_target - x_data)       Gamma_c ~ prior'_c
                                    (only when the baseline comes from the fitted trials)

where ``x_data`` is the mean of the covariate over the trials that inform the model (the
same centring the core design uses). This is exactly the prediction of the meta-regression
with ``c`` as an effect modifier centred at the data mean and the prior ``prior_c`` on its
coefficient, fitted to data in which ``c`` does not vary: there the likelihood is flat in
``Delta_c``, its posterior equals its prior and the pooled effect ``d`` is unchanged. The
width the term adds is therefore exactly the prior's, and it is reported as prior-driven.

The same priors carry the part of a target's value **beyond the fitted range** of a
covariate the model does have a coefficient for (an effect modifier or baseline covariate
fitted on study values in [lo, hi]): the fitted coefficient is used up to the bound and
``Delta_c * (x_target - bound)`` is added, ``Delta_c`` drawn from ``prior_c`` per posterior
draw (:mod:`bayesln.predict.engine`). A fitted slope is never extrapolated linearly: a
few trials with class V fractions 0-0.19 do not tell how a pure class V population
responds, and extrapolating their slope gave odds ratios of 0.01 labelled data-driven.
``extrapolation_priors=`` / ``baseline_extrapolation_priors=`` (or a target's own) replace
these defaults in both uses.

Units: per 1.0 of a fraction (all patients vs none), yes vs no for flags
(``pediatric``, ``refractory``), maintenance vs induction for ``phase``, triple vs duo
for ``regimen``, a comparator no trial used vs the trials' comparators for
``comparator``, per year for ``mean_age`` and ``year`` (the fitted coefficients of
:mod:`bayesln.hierarchy.design` use the same units except that age and calendar year
are per 10 years there; the engine converts).

Why Normal(0, 0.5) per full switch of the population (log scale)
----------------------------------------------------------------
* 95% of its mass gives a ratio of odds ratios between 0.38 and 2.7 for all-non-Asian vs
  all-Asian patients: a modifier about as large as the typical between-trial
  heterogeneity of log odds ratios assumed by the core model's tau prior
  (HalfNormal(0.5), Röver et al. 2021, Res Synth Methods 12:448).
* It is of the order of the one randomised estimate of ethnic effect modification of LN
  induction therapy: in ALMS (MMF vs IV cyclophosphamide, 370 patients; Isenberg et al.
  2010, Rheumatology 49:128) the response rates were 53.2% vs 63.9% in Asians, 56.0% vs
  54.2% in Whites and 60.4% vs 38.5% in the combined Black and Other group (treatment x
  race interaction P = 0.047): log-OR differences from Asians of about +0.5 (White) and
  +1.3 (Black/Other), each with a standard error of about 0.5. For Black or Hispanic
  populations the default is therefore optimistic; the sensitivity table of every
  prediction always shows the result under Normal(0, 1) and shifted priors, and
  ``extrapolation_priors={"asian_fraction": "normal(0, 1)"}`` makes it the prior.
* The same scale is used for the comparator-arm log odds (ALMS IV cyclophosphamide
  response: 63.9% Asian vs 54.2% White vs 38.5% Black/Other: -0.4 and -1.0 on the
  log-odds scale). Better: give the target a ``baseline_risk`` from a cohort of the
  target population; then no baseline extrapolation is needed.
* Age: Normal(0, 0.025) per year (0.5 per 20 years); calendar year: Normal(0, 0.02).
* Phase on the comparator-arm log odds: Normal(0, 1.5). Maintenance endpoints (response
  *kept*) and induction endpoints (response *reached*) are different events: the only
  maintenance RCT (Chen 2012) kept 34/36 (94%) on azathioprine, while 45-75% reach a
  response on IV cyclophosphamide in the induction RCTs, a log-odds difference of about
  2. With Normal(0, 0.5) the leave-one-trial-out check predicted Chen 2012's comparator
  arm outside its 90% interval (benchmarks/predict_validation.py); 1.5 gives 95% of its
  mass within +/- 2.9.
* The comparator carries one term, on the log odds of the comparator arm (and hence on
  the log-OR): a comparator no trial used does not change the TAC arm.

Ordinal CR / PR / NR fits (:mod:`bayesln.predict.ordinal`) use the same priors: one
draw of each term is added to the log odds ratio of every step of the sequential logit
(response; CR among responders) or to the location of the cumulative logit (both
cut-points), and baseline terms to the comparator's log odds likewise, so the predictions
stay coherent (P(CR) <= P(CR or PR)) whatever the term's value.

These are assumptions, not evidence; every prediction that uses them says so.
"""

from __future__ import annotations

from bayesln.hierarchy.priors import Prior, normal

__all__ = [
    "DEFAULT_BASELINE_EXTRAPOLATION_PRIORS",
    "DEFAULT_EXTRAPOLATION_PRIORS",
    "DEFAULT_MARGIN",
    "UNITS",
    "prior_mean",
    "prior_quantile",
    "prior_sd",
]

_HALF = normal(0.0, 0.5)

#: prior of the log-OR difference per unit of the covariate (see module docstring)
DEFAULT_EXTRAPOLATION_PRIORS: dict[str, Prior] = {
    "asian_fraction": _HALF,
    "class_v_fraction": _HALF,
    "class_iii_iv_fraction": _HALF,
    "female_fraction": _HALF,
    "pediatric": _HALF,
    "refractory": _HALF,
    "mean_age": normal(0.0, 0.025),
    "year": normal(0.0, 0.02),
    "phase": _HALF,
    "regimen": _HALF,
    "comparator": _HALF,
}

#: prior of the shift of the comparator-arm log odds per unit of the covariate
DEFAULT_BASELINE_EXTRAPOLATION_PRIORS: dict[str, Prior] = {
    k: v for k, v in DEFAULT_EXTRAPOLATION_PRIORS.items() if k not in ("regimen", "comparator")
} | {"phase": normal(0.0, 1.5)}

#: what one unit of each covariate is
UNITS: dict[str, str] = {
    "asian_fraction": "all vs no patients Asian",
    "class_v_fraction": "all vs no patients class V",
    "class_iii_iv_fraction": "all vs no patients class III/IV",
    "female_fraction": "all vs no patients female",
    "pediatric": "paediatric vs adult population",
    "refractory": "refractory vs not refractory",
    "mean_age": "per year of mean age",
    "year": "per calendar year",
    "phase": "maintenance vs induction",
    "regimen": "triple vs duo TAC regimen",
    "comparator": "a comparator no trial used vs the trials' comparators",
}

#: default clinically relevant risk-difference margin: P(RD > margin) is reported
DEFAULT_MARGIN: dict[str, float] = {"benefit": 0.10, "harm": 0.05}


def _robust_parts(p: Prior) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(weight, mean, sd) of the informed and of the vague component of a robust_normal."""
    q = p.params
    w = float(q["weight"])
    return (1.0 - w, float(q["mu"]), float(q["sigma"])), (w, float(q["vague_mu"]), float(q["vague_sigma"]))


def prior_sd(p: Prior) -> float:
    """Standard deviation of a location prior (normal, student_t with nu > 2, or the
    two-component mixture robust_normal)."""
    q = p.params
    if p.dist == "normal":
        return float(q["sigma"])
    if p.dist == "student_t":
        nu = float(q["nu"])
        return float(q["sigma"]) * (nu / (nu - 2)) ** 0.5 if nu > 2 else float("inf")
    if p.dist == "robust_normal":
        parts = _robust_parts(p)
        mean = sum(w * m for w, m, _ in parts)
        return max(sum(w * (s * s + m * m) for w, m, s in parts) - mean * mean, 0.0) ** 0.5
    raise ValueError(f"{p} is not a location prior")


def prior_mean(p: Prior) -> float:
    if p.dist == "robust_normal":
        return sum(w * m for w, m, _ in _robust_parts(p))
    return float(p.params["mu"])


def prior_quantile(p: Prior, u):
    """The prior's quantile function at probabilities ``u`` (an array in (0, 1)): how the
    engine turns its standard-normal streams into draws of any extrapolation prior
    (``Phi(z)`` -> quantile), so every prior of a term uses the same random numbers and
    the sensitivity table compares like with like. robust_normal: the mixture's CDF
    inverted by bisection to 1e-12."""
    import numpy as np
    from scipy import stats

    u = np.asarray(u, dtype=float)
    q = p.params
    if p.dist == "normal":
        return stats.norm.ppf(u, q["mu"], q["sigma"])
    if p.dist == "student_t":
        return q["mu"] + q["sigma"] * stats.t.ppf(u, q["nu"])
    if p.dist == "robust_normal":
        parts = _robust_parts(p)

        def cdf(x):
            return sum(w * stats.norm.cdf(x, m, s) for w, m, s in parts if w > 0)

        lo = np.full(u.shape, min(m - 40 * s for _, m, s in parts))
        hi = np.full(u.shape, max(m + 40 * s for _, m, s in parts))
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            below = cdf(mid) < u
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
            if np.max(hi - lo) < 1e-12:
                break
        return 0.5 * (lo + hi)
    raise ValueError(f"{p} is not a location prior")
