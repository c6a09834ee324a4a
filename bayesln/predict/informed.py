"""Evidence-informed priors for effect modifiers the TAC trials cannot estimate.

Every TAC trial enrolled Asian patients, and none enrolled only class V patients: the
model cannot estimate how ethnicity or class modifies TAC's effect, and a prediction for
non-Asian or pure class V patients needs a prior for that modifier
(:mod:`bayesln.predict.priors`: Normal(0, 0.5) per full switch of the population by
default). This module derives the prior from external evidence given as data instead:
subgroup-by-arm counts from trials of related drugs (``data/external_ln``,
:func:`bayesln.data.external.load_external_evidence`), as a **robust meta-analytic-
predictive (MAP) prior** (Neuenschwander et al. 2010, Clin Trials 7:5; Schmidli et al.
2014, Biometrics 70:1023; RBesT's ``gMAP`` + ``robustify``):

1. **Per contrast** (one source, ``modifiers.toml``): the log odds ratio of the treated vs
   the control arm in subgroup A and in subgroup B (Woolf: ``log(ad / bc)``, variance
   ``1/a + 1/b + 1/c + 1/d``, 0.5 added to every cell of a subgroup with a zero cell),
   and the modifier per unit of the covariate

       y_j = (logOR_A - logOR_B) / (x_A - x_B),   s_j^2 = (v_A + v_B) / (x_A - x_B)^2

   (the subgroups must be disjoint; ``"A - B"`` is trial A without its subgroup B, by
   subtraction of the counts).
2. **MAP**: the sources' true modifiers ``theta_j ~ Normal(theta, omega)`` (between-source
   heterogeneity: other drugs, other populations, other endpoints), ``y_j ~ Normal(theta_j,
   s_j)``, a flat prior on ``theta`` and ``omega ~ HalfNormal(0.5)`` by default (the
   "substantial" heterogeneity class of the MAP literature on the log-odds scale: other
   drugs are not TAC); the prior for TAC's modifier is the predictive distribution of a
   new source, ``theta_new | y``: for each omega a normal with mean ``theta_hat(omega)``
   (inverse-variance weighted) and variance ``V(omega) + omega^2``, mixed over the
   posterior of omega, computed by quadrature on a fine grid (exact up to the grid; tests
   check it against scipy's adaptive quadrature). With one source omega is not learned
   (its posterior is its prior) and the predictive variance is ``s^2 + 2 E[omega^2]``: one
   indirect source informs the *direction* far more than the *size*. The predictive
   (a scale mixture of normals) is summarised by its mean and SD (RBesT fits a mixture by
   EM; one normal keeps the robust prior two components).
3. **Robust**: ``(1 - w) Normal(m_MAP, s_MAP) + w Normal(0, 0.5)``, the vague component
   the default extrapolation prior of the covariate, ``w = 0.2`` by default (RBesT's
   usual choice): if TAC's modifier turns out unlike the other drugs', the data of a
   future trial can move away from the informed component (prior-data conflict).

The result is a :class:`~bayesln.hierarchy.priors.Prior` ``robust_normal`` that
``predict(..., extrapolation_priors={cov: prior})`` uses like any other extrapolation
prior (the engine draws it by its quantile function from the same random numbers);
:func:`compare_priors` reports a prediction under the default and under the informed prior
side by side, with the source rows and each contrast's stated assumption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesln.data.external import Contrast, ExternalEvidence, load_external_evidence
from bayesln.hierarchy.priors import Prior, half_normal
from bayesln.predict.priors import DEFAULT_EXTRAPOLATION_PRIORS, UNITS

__all__ = ["InformedPrior", "PriorComparison", "compare_priors", "informed_prior", "map_predictive",
           "modifier_estimate"]

#: default weight of the vague component of the robust mixture
ROBUST_WEIGHT = 0.2
#: default prior of the between-source SD of the modifier
HETEROGENEITY = half_normal(0.5)


# ------------------------------------------------------------------------------- contrasts
def _woolf(a: float, n1: float, c: float, n2: float) -> tuple[float, float]:
    """Log odds ratio and its Woolf variance (metafor's escalc, 1/2 added to every cell of a
    table with a zero cell)."""
    from bayesln.frequentist.effects import escalc_arrays

    y, v = escalc_arrays([a], [n1], [c], [n2], "OR")
    return float(y[0]), float(v[0])


def _arm_counts(ev: ExternalEvidence, study: str, arm: str, outcome: str) -> dict:
    rows = ev.rows(study)
    r = rows[rows["arm"] == arm]
    if r.empty:
        raise ValueError(f"{ev.name}: study {study!r} has no arm {arm!r}; arms: {', '.join(rows['arm'])}")
    r = r.iloc[0]
    n = r["n_analysed"] if pd.notna(r["n_analysed"]) else r["n_randomized"]
    if pd.isna(r[outcome]) or pd.isna(n):
        raise ValueError(f"{ev.name}: {study} / {arm}: {outcome} or its denominator is unknown (blank)")
    return {"study": study, "arm": arm, "treatment": r["treatment"], "design": r["design"], "events": int(r[outcome]),
            "n": int(n), "row": r}


def _subgroup(ev: ExternalEvidence, expr: str, arm: str, outcome: str) -> dict:
    """Counts of one arm of a subgroup: a study id, or ``"A - B"`` (A's counts minus B's)."""
    parts = [p.strip() for p in expr.split(" - ")]
    first = _arm_counts(ev, parts[0], arm, outcome)
    out = {**first, "subgroup": expr, "derived": ""}
    for p in parts[1:]:
        other = _arm_counts(ev, p, arm, outcome)
        out["events"] -= other["events"]
        out["n"] -= other["n"]
        out["derived"] = f"{parts[0]} minus {p}: {first['events']} - {other['events']} of {first['n']} - {other['n']}"
    if not 0 <= out["events"] <= out["n"] or out["n"] <= 0:
        raise ValueError(f"{ev.name}: subgroup {expr!r} / {arm}: {out['events']} of {out['n']} is not a count")
    return out


def _x(ev: ExternalEvidence, con: Contrast, which: str) -> float:
    x = getattr(con, f"x_{which}")
    if x != "data":
        return float(x)
    expr = getattr(con, f"subgroup_{which}")
    rows = ev.rows(expr)
    vals = rows[con.covariate].dropna().unique() if con.covariate in rows else []
    if len(vals) != 1:
        raise ValueError(f"{ev.name}: contrast {con.id}: {con.covariate} of {expr} must be known and one value in "
                         f"evidence.csv to use x_{which} = \"data\" (found {list(vals)})")
    return float(vals[0])


@dataclass(frozen=True)
class ModifierEstimate:
    """One contrast's estimate of the modifier per unit of the covariate."""

    contrast: Contrast
    estimate: float
    se: float
    x_a: float
    x_b: float
    arms: pd.DataFrame  # the counts used: subgroup, arm, treatment, events, n, log OR per subgroup


def modifier_estimate(ev: ExternalEvidence, con: Contrast) -> ModifierEstimate:
    """``(logOR_A - logOR_B) / (x_A - x_B)`` with its SE from one contrast's counts."""
    xa, xb = _x(ev, con, "a"), _x(ev, con, "b")
    if xa == xb:
        raise ValueError(f"{ev.name}: contrast {con.id}: both subgroups have {con.covariate} = {xa:g}")
    recs, lor = [], {}
    for which, expr in (("a", con.subgroup_a), ("b", con.subgroup_b)):
        t = _subgroup(ev, expr, con.treated, con.outcome)
        c = _subgroup(ev, expr, con.control, con.outcome)
        y, v = _woolf(t["events"], t["n"], c["events"], c["n"])
        lor[which] = (y, v)
        for arm in (t, c):
            recs.append({"contrast": con.id, "subgroup": expr, con.covariate: xa if which == "a" else xb,
                         "arm": arm["arm"], "treatment": arm["treatment"], "design": arm["design"],
                         "outcome": con.outcome, "events": arm["events"], "n": arm["n"], "log_or": y, "var_log_or": v,
                         "derived": arm["derived"]})
    dx = xa - xb
    est = (lor["a"][0] - lor["b"][0]) / dx
    se = math.sqrt(lor["a"][1] + lor["b"][1]) / abs(dx)
    return ModifierEstimate(con, est, se, xa, xb, pd.DataFrame(recs))


# ------------------------------------------------------------------------------------ MAP
def _omega_grid(heterogeneity: Prior, n: int = 4001) -> tuple[np.ndarray, np.ndarray]:
    """(grid of omega, log prior density) up to the prior's 1 - 1e-9 quantile."""
    from scipy import stats

    p = heterogeneity.params
    if heterogeneity.dist == "half_normal":
        dist = stats.halfnorm(scale=p["scale"])
    elif heterogeneity.dist == "half_cauchy":
        dist = stats.halfcauchy(scale=p["scale"])
    elif heterogeneity.dist == "half_student_t":
        dist = stats.halft(p["nu"], scale=p["scale"])
    elif heterogeneity.dist == "exponential":
        dist = stats.expon(scale=1 / p["rate"])
    elif heterogeneity.dist == "uniform":
        dist = stats.uniform(p["lower"], p["upper"] - p["lower"])
    else:
        raise ValueError(f"heterogeneity prior must be a scale prior (half_normal, half_cauchy, half_student_t, "
                         f"exponential, uniform), not {heterogeneity}")
    hi = float(min(dist.ppf(1 - 1e-9), 50.0))
    lo = float(dist.ppf(0.0))
    w = np.linspace(lo, hi, n)
    with np.errstate(divide="ignore"):
        return w, dist.logpdf(w)


def map_predictive(y, s, *, heterogeneity: Prior | str = HETEROGENEITY) -> dict:
    """Mean and SD of the meta-analytic-predictive distribution of a new source's
    modifier from estimates ``y`` with standard errors ``s`` (model in the module
    docstring), by quadrature over the between-source SD omega; also the posterior mean
    of omega."""
    heterogeneity = Prior.parse(heterogeneity)
    y = np.atleast_1d(np.asarray(y, float))
    s = np.atleast_1d(np.asarray(s, float))
    if y.size == 0 or y.shape != s.shape or not np.all(np.isfinite(y)) or not np.all(s > 0):
        raise ValueError("map_predictive: one finite estimate and one positive standard error per source")
    om, logprior = _omega_grid(heterogeneity)
    var = s[None, :] ** 2 + om[:, None] ** 2
    w = 1.0 / var
    V = 1.0 / w.sum(axis=1)
    mean = V * (w * y[None, :]).sum(axis=1)
    loglik = 0.5 * np.log(V) - 0.5 * np.log(var).sum(axis=1) - 0.5 * (w * (y[None, :] - mean[:, None]) ** 2).sum(axis=1)
    logpost = logprior + loglik
    ok = np.isfinite(logpost)
    post = np.zeros_like(om)
    post[ok] = np.exp(logpost[ok] - logpost[ok].max())
    post /= np.trapezoid(post, om)
    pv = V + om**2  # predictive variance of a new source given omega
    m = float(np.trapezoid(post * mean, om))
    second = float(np.trapezoid(post * (pv + mean**2), om))
    return {"mean": m, "sd": math.sqrt(max(second - m * m, 0.0)), "omega_mean": float(np.trapezoid(post * om, om)),
            "n_sources": int(y.size)}


# --------------------------------------------------------------------------- the prior
@dataclass
class InformedPrior:
    """An evidence-informed robust prior for one covariate's modifier, with its evidence."""

    covariate: str
    prior: Prior
    default: Prior
    estimates: list[ModifierEstimate]
    map: dict
    robust_weight: float
    heterogeneity: Prior

    def table(self) -> pd.DataFrame:
        """The source rows: every arm count used, its subgroup and log OR."""
        return pd.concat([e.arms for e in self.estimates], ignore_index=True)

    def contrasts(self) -> pd.DataFrame:
        return pd.DataFrame([{"contrast": e.contrast.id, "drug": e.contrast.drug, "outcome": e.contrast.outcome,
                              "subgroup_a": e.contrast.subgroup_a, "x_a": e.x_a, "subgroup_b": e.contrast.subgroup_b,
                              "x_b": e.x_b, "estimate_per_unit": e.estimate, "se": e.se,
                              "assumption": e.contrast.assumption} for e in self.estimates])

    def text(self) -> str:
        lines = [f"Evidence-informed prior for {self.covariate} ({UNITS.get(self.covariate, self.covariate)}):",
                 f"  {self.prior}",
                 f"  = {1 - self.robust_weight:g} x MAP normal({self.map['mean']:.3g}, {self.map['sd']:.3g}) + "
                 f"{self.robust_weight:g} x the default {self.default} (robust mixture); between-source SD "
                 f"~ {self.heterogeneity}, posterior mean {self.map['omega_mean']:.2f}"]
        for e in self.estimates:
            lines.append(f"  source {e.contrast.id} ({e.contrast.drug}, {e.contrast.outcome}): "
                         f"{e.estimate:+.2f} (SE {e.se:.2f}) per unit")
            for _, r in e.arms.iterrows():
                extra = f"; {r['derived']}" if r["derived"] else ""
                lines.append(f"    {r['subgroup']} / {r['arm']} ({r['treatment']}, {r['design']}): "
                             f"{r['events']}/{r['n']}{extra}")
            lines.append(f"    assumption: {e.contrast.assumption}")
        return "\n".join(lines)


def informed_prior(covariate: str, evidence: ExternalEvidence | str | None = None, *,
                   robust_weight: float = ROBUST_WEIGHT, heterogeneity: Prior | str = HETEROGENEITY,
                   default: Prior | str | None = None) -> InformedPrior:
    """The robust MAP prior of ``covariate``'s modifier from the contrasts of
    ``evidence`` (an :class:`ExternalEvidence`, a bundle name, default ``external_ln``)."""
    if covariate not in UNITS:
        raise ValueError(f"unknown covariate {covariate!r}; known: {', '.join(UNITS)}")
    if not 0 <= robust_weight <= 1:
        raise ValueError(f"robust_weight must be in [0, 1], got {robust_weight}")
    ev = evidence if isinstance(evidence, ExternalEvidence) else load_external_evidence(evidence or "external_ln")
    cons = ev.contrasts_for(covariate)
    if not cons:
        have = sorted({c.covariate for c in ev.contrasts})
        raise ValueError(f"{ev.name} has no modifier contrast for {covariate!r} (it has: {', '.join(have) or 'none'})")
    ests = [modifier_estimate(ev, c) for c in cons]
    heterogeneity = Prior.parse(heterogeneity)
    mp = map_predictive([e.estimate for e in ests], [e.se for e in ests], heterogeneity=heterogeneity)
    vague = Prior.parse(default) if default is not None else DEFAULT_EXTRAPOLATION_PRIORS[covariate]
    if vague.dist != "normal":
        raise ValueError(f"the vague component must be a normal prior, not {vague}")
    src = "; ".join(f"{e.contrast.id}: {e.estimate:+.3f} (SE {e.se:.3f})" for e in ests)
    prior = Prior(dist="robust_normal", params={
        "weight": float(robust_weight), "mu": round(mp["mean"], 6), "sigma": round(mp["sd"], 6),
        "vague_mu": vague.params["mu"], "vague_sigma": vague.params["sigma"],
        "source": f"{ev.name} MAP ({src})"[:500]})
    return InformedPrior(covariate, prior, vague, ests, mp, float(robust_weight), heterogeneity)


# --------------------------------------------------------------------- side by side
@dataclass
class PriorComparison:
    """One target's prediction under the default and under evidence-informed priors."""

    target: str
    default: object  # Prediction
    informed: object | None  # Prediction (None when the target uses no informed covariate)
    priors: dict[str, InformedPrior] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        parts = []
        for label, pred in (("default", self.default), ("evidence-informed", self.informed)):
            if pred is None:
                continue
            t = pred.table().copy()
            t.insert(0, "prior_set", label)
            parts.append(t)
        return pd.concat(parts, ignore_index=True)

    def text(self) -> str:
        lines = [f"{self.target}: default vs evidence-informed extrapolation priors"]
        if self.informed is None:
            lines.append("  this target uses none of the covariates with external evidence "
                         f"({', '.join(self.unused)}): the two predictions are the same")
            return "\n".join(lines)
        t = self.table()
        keep = t[t["level"] == "population"]
        with pd.option_context("display.width", 160):
            body = keep[["prior_set", "outcome", "quantity", "median", "lower", "upper", "prior_share"]].to_string(
                index=False, float_format=lambda x: f"{x:.3g}")
        lines += ["    " + s for s in body.splitlines()]
        for ip in self.priors.values():
            lines.append(ip.text())
        return "\n".join(lines)


def compare_priors(result, target, *, seed: int, evidence: ExternalEvidence | str | None = None,
                   robust_weight: float = ROBUST_WEIGHT, heterogeneity: Prior | str = HETEROGENEITY,
                   **predict_kw) -> PriorComparison:
    """``predict(result, target)`` under the default extrapolation priors and under the
    evidence-informed priors of every covariate that has external evidence and that the
    target's prediction extrapolates (an extrapolation term), same seed and draws."""
    from bayesln.predict.prediction import predict

    ev = evidence if isinstance(evidence, ExternalEvidence) else load_external_evidence(evidence or "external_ln")
    base = predict(result, target, seed=seed, **predict_kw)
    cov = base.extrapolation.covariates
    used = set(cov.loc[(cov["role"] == "effect") & (cov["prior"].astype(str) != ""), "covariate"])
    available = sorted({c.covariate for c in ev.contrasts})
    priors = {c: informed_prior(c, ev, robust_weight=robust_weight, heterogeneity=heterogeneity)
              for c in available if c in used}
    if not priors:
        return PriorComparison(base.name, base, None, {}, available)
    given = dict(predict_kw.pop("extrapolation_priors", None) or {})
    informed = predict(result, target, seed=seed, extrapolation_priors=given | {c: p.prior for c, p in priors.items()},
                       **predict_kw)
    return PriorComparison(base.name, base, informed, priors, [c for c in available if c not in priors])
