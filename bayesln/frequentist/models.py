"""Pooling models on arrays: Mantel-Haenszel, Peto, inverse-variance common effect and
random effects (DerSimonian-Laird, REML, Paule-Mandel), each computed the way R's
metafor (3.8) computes it. The DataFrame-level API is in :mod:`.analysis`.

Conventions (all on the analysis scale: log RR, log OR, or RD):

* ``beta`` is the pooled estimate, ``se`` its standard error, ``ci_lb``/``ci_ub`` the
  ``level``% confidence limits; ``statistic`` is the z (or, under Knapp-Hartung, t)
  statistic and ``df`` its degrees of freedom (NaN for z).
* Common-effect fits (``mh``, ``peto``, ``iv``) have ``tau2 = 0`` (assumed, not
  estimated); ``q`` is Cochran's Q about the pooled estimate; ``i2 = max(0, (Q-df)/Q)``
  (percent) and ``h2 = Q/df`` (metafor's definitions for common-effect models).
* Random-effects fits have ``i2 = 100 tau2 / (vt + tau2)`` and ``h2 = (vt + tau2)/vt``
  with the "typical" within-study variance ``vt = (k-1) / (sum w - sum w^2 / sum w)``,
  ``w = 1/vi`` (metafor's definitions; for DL these equal the Q-based values).
* Q always uses inverse-variance weights ``1/vi`` (Q test of ``rma.uni``); ``rma.mh`` uses
  the same Q about the MH estimate with yi/vi from ``escalc(add=1/2, to="only0",
  drop00=TRUE)``; ``rma.peto`` uses Peto's own Q.

Algorithms that iterate copy metafor's iteration, so converged values agree to rounding:

* REML: Fisher scoring from the Hedges (HE) estimate truncated at 0, step-halving to
  stay >= 0, stop when the change in tau^2 is <= 1e-5, at most 100 iterations; then
  metafor's "ll0check" (tau^2 is set to 0 when the REML log-likelihood at 0 is larger
  by more than ``eps^0.25``).
* PM and the Q-profile CI: R's ``uniroot()`` (Brent's ``zeroin``, :mod:`._zeroin`) with
  metafor's tolerance ``eps^0.25`` and search interval (PM: ``[0, max(100, 10 mad(yi)^2)]``;
  Q-profile: ``[0, max(100, 10 tau2)]``). Pass ``tol=1e-12`` for (nearly) exact roots.
* Knapp-Hartung / HKSJ (``test="knha"``): ``se^2`` multiplied by
  ``sum w*(yi-beta)^2 / (k-1)`` with ``w = 1/(vi+tau2)``, no truncation at 1, t with k-1 df.
* Prediction interval (metafor ``predict``): ``beta +/- crit * sqrt(se^2 + tau2)`` with
  ``crit`` the t quantile with k-1 df under ``knha`` and the normal quantile otherwise
  (``se`` is the Knapp-Hartung SE under ``knha``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats

from ._zeroin import R_UNIROOT_TOL, uniroot
from .effects import check_measure, corrected_tables, escalc_arrays
from .errors import FrequentistInputError, NotEstimableError

#: Method codes used throughout bayesln (CLI ``--method``) and their metafor equivalents.
METHODS = {
    "mh": "rma.mh",
    "peto": "rma.peto",
    "iv": 'rma(method="EE")',
    "dl": 'rma(method="DL")',
    "reml": 'rma(method="REML")',
    "pm": 'rma(method="PM")',
}
COMMON_METHODS = ("mh", "peto", "iv")
RANDOM_METHODS = ("dl", "reml", "pm")
TESTS = ("z", "knha")

REML_THRESHOLD = 1e-5
REML_MAXITER = 100


def fisher_step(tau2: float, adj: float) -> float:
    """One step of metafor's REML Fisher scoring for tau^2: a NaN step is 0, a negative
    step from 0 stays at 0 (R halves it until it underflows to -0: the same result), and a
    step below 0 is halved until tau^2 stays non-negative."""
    if math.isnan(adj):
        adj = 0.0
    if tau2 == 0.0 and adj < 0:
        adj = 0.0
    while tau2 + adj < 0:
        adj /= 2
    return tau2 + adj


def check_method(method: str) -> str:
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise FrequentistInputError(
            f"unknown method {method!r}; expected one of {', '.join(METHODS)}"
        )
    return method.lower()


def _crit_alpha(level: float) -> float:
    if not (0 < level < 100):
        raise FrequentistInputError(f"level must be a percentage in (0, 100), got {level!r}")
    return 1 - level / 100


@dataclass(frozen=True)
class PooledEstimate:
    """One pooled result on the analysis scale (see module docstring for conventions)."""

    measure: str
    method: str  # mh | peto | iv | dl | reml | pm
    test: str  # z | knha
    level: float
    k: int  # studies in the model
    beta: float
    se: float
    statistic: float
    df: float  # t degrees of freedom (knha), NaN for z
    pvalue: float
    ci_lb: float
    ci_ub: float
    tau2: float
    se_tau2: float
    q: float
    q_df: int
    q_pvalue: float
    i2: float
    h2: float
    vt: float = math.nan  # typical within-study variance (random effects)
    s2w: float = 1.0  # Knapp-Hartung scale factor
    pi_lb: float = math.nan
    pi_ub: float = math.nan
    tau2_ci_lb: float = math.nan
    tau2_ci_ub: float = math.nan
    i2_ci_lb: float = math.nan
    i2_ci_ub: float = math.nan
    h2_ci_lb: float = math.nan
    h2_ci_ub: float = math.nan
    weights: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)  # percent
    yi: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    vi: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    iterations: int = 0
    notes: tuple[str, ...] = ()

    @property
    def model(self) -> str:
        return "random" if self.method in RANDOM_METHODS else "common"


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _wald(beta: float, se: float, level: float, df: float | None = None):
    """statistic, pvalue, ci_lb, ci_ub (normal, or t with df)."""
    alpha = _crit_alpha(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = beta / se if se > 0 else (math.nan if beta == 0 or se != se else math.copysign(math.inf, beta))
    if df is None:
        crit = stats.norm.isf(alpha / 2)
        p = 2 * stats.norm.sf(abs(stat)) if stat == stat else math.nan
    elif df > 0:
        crit = stats.t.isf(alpha / 2, df)
        p = 2 * stats.t.sf(abs(stat), df) if stat == stat else math.nan
    else:
        crit = math.nan
        p = math.nan
    return float(stat), float(p), float(beta - crit * se), float(beta + crit * se)


def _q_stats(yi: np.ndarray, vi: np.ndarray):
    """Cochran's Q (inverse-variance, about the IV common-effect mean), df, p, trace(P)."""
    w = 1.0 / vi
    sw = w.sum()
    mu = (w * yi).sum() / sw
    q = max(0.0, float((w * (yi - mu) ** 2).sum()))
    k = yi.size
    trp = float(sw - (w**2).sum() / sw)
    p = float(stats.chi2.sf(q, k - 1)) if k > 1 else 1.0
    return q, k - 1, p, trp


def _common_i2_h2(q: float, df: int) -> tuple[float, float]:
    if df < 1:
        return 0.0, 1.0
    i2 = 0.0 if q <= 0 else max(0.0, 100 * (q - df) / q)
    return i2, q / df


def _mad(x: np.ndarray) -> float:
    """R's mad(): 1.4826 * median(|x - median(x)|)."""
    med = np.median(x)
    return 1.4826 * float(np.median(np.abs(x - med)))


def _qe_at(tau2: float, yi: np.ndarray, vi: np.ndarray) -> float:
    """Generalised Q statistic at tau2 (metafor .QE.func)."""
    w = 1.0 / (vi + tau2)
    mu = (w * yi).sum() / w.sum()
    return float((w * (yi - mu) ** 2).sum())


def _check_yi_vi(yi, vi, labels=None):
    yi = np.asarray(yi, dtype=float).reshape(-1)
    vi = np.asarray(vi, dtype=float).reshape(-1)
    if yi.shape != vi.shape:
        raise FrequentistInputError("yi and vi differ in length")
    bad = ~np.isfinite(yi) | ~np.isfinite(vi) | (vi <= 0)
    if bad.any():
        idx = np.flatnonzero(bad)
        names = [str(labels[i]) if labels is not None else f"#{i + 1}" for i in idx]
        raise FrequentistInputError(
            "effect size or sampling variance is not finite and positive for "
            + ", ".join(names)
            + " (a zero cell without continuity correction? use to='only0' or 'all')"
        )
    if yi.size == 0:
        raise FrequentistInputError("no studies to pool")
    return yi, vi


# ---------------------------------------------------------------------------------------
# tau^2 estimators (intercept-only models)
# ---------------------------------------------------------------------------------------


def tau2_dl(yi, vi) -> float:
    """DerSimonian-Laird: max(0, (Q - (k-1)) / (sum w - sum w^2/sum w))."""
    yi, vi = np.asarray(yi, float), np.asarray(vi, float)
    if yi.size < 2:
        return 0.0
    q, df, _, trp = _q_stats(yi, vi)
    return max(0.0, (q - df) / trp)


def _reml_ll(tau2: float, yi: np.ndarray, vi: np.ndarray) -> float:
    w = 1.0 / (vi + tau2)
    sw = w.sum()
    mu = (w * yi).sum() / sw
    rss = (w * (yi - mu) ** 2).sum()
    k = yi.size
    return float(-0.5 * (k - 1) * math.log(2 * math.pi) - 0.5 * np.log(vi + tau2).sum()
                 - 0.5 * math.log(sw) - 0.5 * rss)


def tau2_reml(yi, vi, *, threshold: float = REML_THRESHOLD, maxiter: int = REML_MAXITER,
              stepadj: float = 1.0, ll0check: bool = True) -> tuple[float, int, bool]:
    """REML tau^2 by metafor's Fisher scoring; returns ``(tau2, iterations, reset)``
    where ``reset`` is True when metafor's ll0check set tau^2 to 0.

    Start: Hedges' estimator ``(sum (y - ybar)^2 - (1 - 1/k) sum vi) / (k-1)`` truncated at
    0. Step: ``adj = (y'PPy - tr P) / tr(PP)`` with ``P = W - w w'/sum w``, halved while
    ``tau2 + adj < 0``. Stop when ``|change| <= threshold``. Raises
    :class:`NotEstimableError` after ``maxiter`` iterations (metafor stops with an error);
    as in metafor, ``stepadj < 1`` (e.g. 0.5) damps the steps and usually fixes that.
    """
    yi, vi = np.asarray(yi, float), np.asarray(vi, float)
    k = yi.size
    if k < 2:
        return 0.0, 0, False
    ybar = yi.mean()
    rss = ((yi - ybar) ** 2).sum()
    tr_pv = vi.sum() - vi.sum() / k
    tau2 = max(0.0, float((rss - tr_pv) / (k - 1)))
    change = threshold + 1
    it = 0
    while change > threshold:
        it += 1
        old = tau2
        w = 1.0 / (vi + tau2)
        sw = w.sum()
        sw2 = (w**2).sum()
        mu = (w * yi).sum() / sw
        py = w * (yi - mu)
        yppy = (py**2).sum()
        trp = sw - sw2 / sw
        trpp = sw2 - 2 * (w**3).sum() / sw + sw2**2 / sw**2
        tau2 = fisher_step(tau2, float((yppy - trp) / trpp) * stepadj)
        change = abs(old - tau2)
        if it > maxiter:
            raise NotEstimableError(
                f"REML Fisher scoring did not converge in {maxiter} iterations (metafor stops here as "
                "well); damp the steps with reml_control={'stepadj': 0.5} or use method='dl' or 'pm'"
            )
    reset = False
    if ll0check and tau2 > threshold:
        if _reml_ll(0.0, yi, vi) - _reml_ll(tau2, yi, vi) > R_UNIROOT_TOL:
            tau2 = 0.0
            reset = True
    return max(0.0, tau2), it, reset


def tau2_pm(yi, vi, *, tol: float = R_UNIROOT_TOL, maxiter: int = 100) -> float:
    """Paule-Mandel: the tau^2 where the generalised Q equals k-1 (0 when Q(0) < k-1).

    Root found by R's ``uniroot`` on ``[0, max(100, 10 * mad(yi)^2)]`` with metafor's
    tolerance (``tol``) so the result matches metafor to rounding.
    """
    yi, vi = np.asarray(yi, float), np.asarray(vi, float)
    k = yi.size
    if k < 2:
        return 0.0
    target = k - 1
    tau2_max = max(100.0, 10 * _mad(yi) ** 2)
    if _qe_at(0.0, yi, vi) < target:
        return 0.0
    if _qe_at(tau2_max, yi, vi) > target:
        raise NotEstimableError("Paule-Mandel: tau^2 exceeds the search limit (metafor's 'tau2.max too low')")
    return float(uniroot(lambda t: _qe_at(t, yi, vi) - target, 0.0, tau2_max, tol=tol, maxiter=maxiter))


def tau2_qprofile_ci(yi, vi, tau2: float, *, level: float = 95.0, tol: float = R_UNIROOT_TOL,
                     maxiter: int = 1000) -> tuple[float, float]:
    """Q-profile confidence interval for tau^2 (metafor ``confint.rma.uni``, type "QP").

    Limits are where the generalised Q statistic ``Q(tau2)`` equals the upper/lower
    ``level`` chi^2(k-1) quantiles, searched in ``[0, max(100, 10 tau2)]``. A limit below 0
    is reported as 0; both limits are 0 when ``Q(0)`` is below the lower quantile; a limit
    beyond the search interval is reported as the interval's end (metafor marks it ">").
    """
    yi, vi = np.asarray(yi, float), np.asarray(vi, float)
    k = yi.size
    if k < 2:
        return math.nan, math.nan
    alpha = _crit_alpha(level)
    tmin = min(0.0, tau2)
    tmax = max(100.0, tau2 * 10, tmin * 10)
    crit_u = float(stats.chi2.isf(alpha / 2, k - 1))
    crit_l = float(stats.chi2.ppf(alpha / 2, k - 1))
    q_max = _qe_at(tmax, yi, vi)
    q_min = _qe_at(tmin, yi, vi)
    lb = ub = math.nan
    if q_min < crit_l:
        lb = ub = tmin
    else:
        if q_max > crit_l:
            ub = tmax
        else:
            ub = uniroot(lambda t: _qe_at(t, yi, vi) - crit_l, tmin, tmax, tol=tol, maxiter=maxiter)
    if q_max > crit_u:
        lb = ub = tmax
    else:
        if q_min < crit_u:
            lb = tmin
        else:
            lb = uniroot(lambda t: _qe_at(t, yi, vi) - crit_u, tmin, tmax, tol=tol, maxiter=maxiter)
    return float(lb), float(ub)


# ---------------------------------------------------------------------------------------
# inverse-variance models (metafor rma.uni, intercept only)
# ---------------------------------------------------------------------------------------


def rma_uni(yi, vi, method: str = "reml", *, test: str = "z", level: float = 95.0,
            tol: float = R_UNIROOT_TOL, confint: bool = True, measure: str = "GEN",
            labels=None, reml_control: dict | None = None) -> PooledEstimate:
    """Inverse-variance pooling of ``yi`` with sampling variances ``vi``.

    ``method``: ``"iv"`` (common effect, metafor ``method="EE"``), ``"dl"``, ``"reml"``,
    ``"pm"``. ``test``: ``"z"`` (Wald, normal) or ``"knha"`` (Hartung-Knapp-Sidik-Jonkman,
    t with k-1 df). With ``k = 1`` tau^2 is 0, Q = 0 and ``test`` falls back to ``"z"``
    (metafor does the same, with a warning) - noted in ``notes``.
    ``confint=True`` adds the Q-profile CI of tau^2, I^2 and H^2 (random effects, k >= 2).
    ``reml_control``: ``threshold``, ``maxiter``, ``stepadj`` of the REML iteration
    (metafor's ``control`` names and defaults: 1e-5, 100, 1).
    """
    method = check_method(method)
    if method in ("mh", "peto"):
        raise FrequentistInputError(f"rma_uni() fits inverse-variance models; {method!r} needs arm counts")
    if test not in TESTS:
        raise FrequentistInputError(f"unknown test {test!r}; expected 'z' or 'knha'")
    yi, vi = _check_yi_vi(yi, vi, labels)
    k = yi.size
    notes: list[str] = []
    it = 0
    if k == 1 and test != "z":
        test = "z"
        notes.append("k = 1: Knapp-Hartung not possible, Wald z test used (as metafor)")
    if k == 1:
        tau2 = 0.0
        notes.append("k = 1: tau^2 not estimable (set to 0), no heterogeneity test")
    elif method == "iv":
        tau2 = 0.0
    elif method == "dl":
        tau2 = tau2_dl(yi, vi)
    elif method == "reml":
        ctrl = dict(reml_control or {})
        unknown = set(ctrl) - {"threshold", "maxiter", "stepadj"}
        if unknown:
            raise FrequentistInputError(f"unknown reml_control key(s): {', '.join(sorted(unknown))}")
        tau2, it, reset = tau2_reml(yi, vi, **ctrl)
        if reset:
            notes.append("REML Fisher scoring stopped where the likelihood is below its value at "
                         "tau^2 = 0; tau^2 set to 0 (metafor's ll0check)")
    else:
        tau2 = tau2_pm(yi, vi, tol=tol)

    w = 1.0 / (vi + tau2)
    sw = w.sum()
    beta = float((w * yi).sum() / sw)
    vb = 1.0 / sw
    s2w = 1.0
    df = None
    if test == "knha":
        if method == "iv":
            notes.append("Knapp-Hartung adjustment applied to a common-effect model (metafor warns)")
        rss = float((w * (yi - beta) ** 2).sum())
        s2w = 0.0 if rss <= np.finfo(float).eps else rss / (k - 1)
        df = k - 1
    vb *= s2w
    se = math.sqrt(vb)
    stat, p, lb, ub = _wald(beta, se, level, df)

    # heterogeneity (FE weights)
    if k > 1:
        q, q_df, q_p, trp = _q_stats(yi, vi)
        vt = q_df / trp
        if method == "iv":
            i2, h2 = _common_i2_h2(q, q_df)
        else:
            i2 = 100 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1
    else:
        q, q_df, q_p, vt, i2, h2 = 0.0, 0, 1.0, 0.0, 0.0, 1.0

    # SE of tau^2 (metafor's formulas per estimator)
    se_tau2 = math.nan
    if k > 1 and method in RANDOM_METHODS:
        if method == "dl":
            w0 = 1.0 / vi
            sw0 = w0.sum()
            trp0 = sw0 - (w0**2).sum() / sw0
            sum_pp0 = (w0**2).sum() - 2 * (w0**3).sum() / sw0 + ((w0**2).sum()) ** 2 / sw0**2
            se_tau2 = math.sqrt(1 / trp0**2 * (2 * (k - 1) + 4 * max(tau2, 0) * trp0 + 2 * max(tau2, 0) ** 2 * sum_pp0))
        elif method == "reml":
            sw2 = (w**2).sum()
            sum_pp = sw2 - 2 * (w**3).sum() / sw + sw2**2 / sw**2
            se_tau2 = math.sqrt(2 / sum_pp)
        else:
            se_tau2 = math.sqrt(2 * k**2 / (k - 1) / sw**2)

    # prediction interval (metafor predict.rma)
    pi_lb = pi_ub = math.nan
    if method in RANDOM_METHODS:
        alpha = _crit_alpha(level)
        if test == "knha":
            crit = stats.t.isf(alpha / 2, k - 1) if k > 1 else math.nan
        else:
            crit = stats.norm.isf(alpha / 2)
        half = crit * math.sqrt(vb + tau2)
        pi_lb, pi_ub = beta - half, beta + half

    res = PooledEstimate(
        measure=measure, method=method, test=test, level=level, k=k, beta=beta, se=se,
        statistic=stat, df=float(df) if df is not None else math.nan, pvalue=p, ci_lb=lb, ci_ub=ub,
        tau2=float(tau2), se_tau2=se_tau2, q=q, q_df=q_df, q_pvalue=q_p, i2=float(i2), h2=float(h2),
        vt=float(vt), s2w=float(s2w), pi_lb=float(pi_lb), pi_ub=float(pi_ub),
        weights=100 * w / sw, yi=yi, vi=vi, iterations=it, notes=tuple(notes),
    )
    if confint and method in RANDOM_METHODS and k > 1:
        lo, hi = tau2_qprofile_ci(yi, vi, tau2, level=level, tol=tol)
        res = replace(
            res, tau2_ci_lb=lo, tau2_ci_ub=hi,
            i2_ci_lb=100 * lo / (vt + lo), i2_ci_ub=100 * hi / (vt + hi),
            h2_ci_lb=lo / vt + 1, h2_ci_ub=hi / vt + 1,
        )
    return res


# ---------------------------------------------------------------------------------------
# Mantel-Haenszel and Peto (metafor rma.mh / rma.peto)
# ---------------------------------------------------------------------------------------


def _pair(x, second):
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise FrequentistInputError(f"expected one value or two values, got {x!r}")
        return x[0], x[1]
    return x, second


def _variance(v, scale):
    """A variance ``v`` (>= 0 in exact arithmetic) computed as a sum of terms whose absolute
    values add up to ``scale``: 0 where ``|v|`` is within rounding of that cancellation
    (relative ``64 eps``). E.g. the MH RD variance of one study 5/5 vs 0/1 is
    ``-15/36 + 15/36``; the sum leaves ``+-1e-17``, whose square root (``1e-8``, or NaN)
    would depend on which arm is called treatment."""
    return np.where(np.abs(v) <= 64 * np.finfo(float).eps * scale, 0.0, v)


def mh_estimate_arrays(a, b, c, d, measure: str):
    """MH estimate and SE from (corrected) cell arrays (last axis = studies, NaN ignored).

    RR: ``R/S`` with ``R = sum a n2/N``, ``S = sum c n1/N``, Greenland-Robins variance.
    OR: ``sum(a d/N) / sum(b c/N)``, Robins-Breslow-Greenland variance.
    RD: ``sum(a n2/N - c n1/N) / sum(n1 n2/N)``, metafor's (Greenland-Robins/Sato) variance.
    Returns ``(beta, se)`` (log scale for RR/OR); NaN where not estimable.
    """
    n1, n2 = a + b, c + d
    n = n1 + n2
    s = lambda x: np.nansum(x, axis=-1)  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "RR":
            r = s(a * (n2 / n))
            sv = s(c * (n1 / n))
            ok = (s(a) != 0) & (s(c) != 0)
            beta = np.log(r / sv)
            pos, neg = s((n1 / n) * (n2 / n) * (a + c)), s((a / n) * c)
            se = np.sqrt(_variance(pos - neg, pos + neg) / (r * sv))
        elif measure == "OR":
            pi_, qi = a / n + d / n, b / n + c / n
            ri, si = (a / n) * d, (b / n) * c
            r, sv = s(ri), s(si)
            ok = (r != 0) & (sv != 0)
            beta = np.log(r / sv)
            se = np.sqrt(0.5 * (s(pi_ * ri) / r**2 + s(pi_ * si + qi * ri) / (r * sv) + s(qi * si) / sv**2))
        elif measure == "RD":
            denom = s(n1 * (n2 / n))
            beta = s(a * (n2 / n) - c * (n1 / n)) / denom
            t1 = beta * s(c * (n1 / n) ** 2 - a * (n2 / n) ** 2 + (n1 / n) * (n2 / n) * (n2 - n1) / 2)
            t2 = s(a * (n2 - c) / n + c * (n1 - a) / n) / 2
            se = np.sqrt(_variance(t1 + t2, np.abs(t1) + np.abs(t2)) / denom**2)
            ok = np.isfinite(beta) & (s(a + c) > 0) & (s(b + d) > 0)
        else:
            raise FrequentistInputError(f"Mantel-Haenszel needs RR, OR or RD, got {measure!r}")
    beta = np.where(ok, beta, np.nan)
    se = np.where(ok, se, np.nan)
    return beta, se


def mh_weights_arrays(a, b, c, d, measure: str):
    """metafor ``weights.rma.mh`` (unnormalised): RR ``c n1/N``, OR ``b c/N``, RD ``n1 n2/N``."""
    n1, n2 = a + b, c + d
    n = n1 + n2
    if measure == "OR":
        return (b / n) * c
    if measure == "RR":
        return (c / n) * (a + b)
    return ((a + b) / n) * (c + d)


def _not_estimable_mh(measure, a, b, c, d, labels) -> str:
    if np.all(((a == 0) & (c == 0)) | ((b == 0) & (d == 0))):
        return (f"MH {measure}: every study is double-zero (no events, or only events, in both arms); "
                "the pooled effect is not estimable")
    if measure == "RR":
        side = "treatment" if np.nansum(a) == 0 else "control"
        return f"MH RR: no events in the {side} arm of any study; the risk ratio is 0 or infinite"
    if measure == "OR":
        return "MH OR: sum(a*d/N) or sum(b*c/N) is 0 (no discordant information); the odds ratio is 0 or infinite"
    return f"MH {measure}: not estimable"


def mantel_haenszel(ai, n1i, ci, n2i, measure: str = "RR", *, add=0.5, to="only0", drop00=True,
                    level: float = 95.0, labels=None) -> PooledEstimate:
    """Mantel-Haenszel common-effect estimate (metafor ``rma.mh``).

    Zero cells follow metafor: ``add``, ``to``, ``drop00`` may be one value (applied to the
    per-study ``yi``/``vi`` used for the Q test and display, while the MH estimate itself
    uses the **raw counts**: metafor's ``add=c(1/2, 0), to=c("only0", "none"),
    drop00=c(TRUE, FALSE)``) or a pair ``(for yi/vi, for the MH estimate)``.
    Double-zero studies get MH weight 0 for RR and OR (they carry no information) and
    a ``NaN`` ``yi`` (dropped from Q) by default.

    Raises :class:`NotEstimableError` when the estimate is 0 or infinite (e.g. every study
    double-zero); metafor returns NA there.
    """
    measure = check_measure(measure)
    add1, add2 = _pair(add, 0.0)
    to1, to2 = _pair(to, "none")
    d1, d2 = _pair(drop00, False)
    yi_all, vi_all = escalc_arrays(ai, n1i, ci, n2i, measure, add=add1, to=to1, drop00=d1)
    a, b, c, d = corrected_tables(ai, n1i, ci, n2i, add=add2, to=to2, drop00=d2)
    keep = ~np.isnan(a)
    if not keep.any():
        raise NotEstimableError(f"MH {measure}: no study left after dropping double-zero studies")
    beta, se = mh_estimate_arrays(a[keep], b[keep], c[keep], d[keep], measure)
    beta, se = float(beta), float(se)
    if not np.isfinite(beta) or not np.isfinite(se):
        raise NotEstimableError(_not_estimable_mh(measure, a[keep], b[keep], c[keep], d[keep], labels))
    stat, p, lb, ub = _wald(beta, se, level)
    ok = np.isfinite(yi_all) & np.isfinite(vi_all)
    yi, vi = yi_all[ok], vi_all[ok]
    k_yi = int(ok.sum())
    if k_yi > 1:
        w = 1.0 / vi
        q = max(0.0, float((w * (yi - beta) ** 2).sum()))
        q_p = float(stats.chi2.sf(q, k_yi - 1))
        i2, h2 = _common_i2_h2(q, k_yi - 1)
    else:
        q, q_p, i2, h2 = 0.0, 1.0, 0.0, 1.0
    wts = np.full(a.shape, np.nan)
    wm = mh_weights_arrays(a[keep], b[keep], c[keep], d[keep], measure)
    wts[keep] = 100 * wm / wm.sum()
    notes = []
    n_dz = int((~ok & keep).sum())
    if n_dz:
        notes.append(f"{n_dz} double-zero stud{'y' if n_dz == 1 else 'ies'} not in the Q test (metafor drop00)")
    return PooledEstimate(
        measure=measure, method="mh", test="z", level=level, k=int(keep.sum()), beta=beta, se=se,
        statistic=stat, df=math.nan, pvalue=p, ci_lb=lb, ci_ub=ub, tau2=0.0, se_tau2=math.nan,
        q=q, q_df=max(k_yi - 1, 0), q_pvalue=q_p, i2=i2, h2=h2, weights=wts, yi=yi_all, vi=vi_all,
        notes=tuple(notes),
    )


def peto(ai, n1i, ci, n2i, *, add=0.5, to="only0", drop00=True, level: float = 95.0,
         labels=None) -> PooledEstimate:
    """Peto's one-step odds ratio (metafor ``rma.peto``), log scale.

    ``beta = sum(a - E) / sum V`` and ``se = 1/sqrt(sum V)`` with ``E`` and ``V`` the
    hypergeometric mean and variance of ``a``; Q is Peto's ``sum (a-E)^2/V - (sum(a-E))^2 /
    sum V`` over studies with ``V > 0``. ``add``/``to``/``drop00`` as in
    :func:`mantel_haenszel` (the estimate uses raw counts).
    """
    add1, add2 = _pair(add, 0.0)
    to1, to2 = _pair(to, "none")
    d1, d2 = _pair(drop00, False)
    yi_all, vi_all = escalc_arrays(ai, n1i, ci, n2i, "PETO", add=add1, to=to1, drop00=d1)
    a, b, c, d = corrected_tables(ai, n1i, ci, n2i, add=add2, to=to2, drop00=d2)
    keep = ~np.isnan(a)
    a, b, c, d = a[keep], b[keep], c[keep], d[keep]
    n1, n2 = a + b, c + d
    n = n1 + n2
    xt, yt = a + c, b + d
    e = xt * n1 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        v = xt * yt * (n1 / n) * (n2 / n) / (n - 1)
    v = np.where(np.isfinite(v), v, 0.0)
    sv = v.sum()
    if sv == 0:
        raise NotEstimableError(
            "Peto OR: one of the two outcomes never occurred in any study (every study double-zero); "
            "not estimable"
        )
    beta = float((a - e).sum() / sv)
    se = float(math.sqrt(1 / sv))
    stat, p, lb, ub = _wald(beta, se, level)
    ok = np.isfinite(yi_all) & np.isfinite(vi_all)
    k_yi = int(ok.sum())
    pos = v > 0
    q = max(0.0, float(((a - e)[pos] ** 2 / v[pos]).sum() - (a - e).sum() ** 2 / v[pos].sum()))
    if int(pos.sum()) > 1:
        q_p = float(stats.chi2.sf(q, k_yi - 1))
        i2, h2 = _common_i2_h2(q, k_yi - 1)
    else:
        q_p, i2, h2 = 1.0, 0.0, 1.0
    wts = np.full(keep.shape, np.nan)
    wts[keep] = 100 * v / sv
    return PooledEstimate(
        measure="OR", method="peto", test="z", level=level, k=int(keep.sum()), beta=beta, se=se,
        statistic=stat, df=math.nan, pvalue=p, ci_lb=lb, ci_ub=ub, tau2=0.0, se_tau2=math.nan,
        q=q, q_df=max(k_yi - 1, 0), q_pvalue=q_p, i2=i2, h2=h2, weights=wts, yi=yi_all, vi=vi_all,
    )
