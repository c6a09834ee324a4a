"""Small-study effects (funnel plot asymmetry) exactly as R's metafor (3.8) computes them.

For a contrast table of binary outcomes (log RR or log OR, metafor ``escalc`` effect sizes
with its zero-cell rule ``add=1/2, to="only0"``):

=============================  ===========================================================
:func:`regtest`                Egger's regression test (metafor ``regtest``): the effect
                               regressed on a predictor of precision; ``model="rma"``
                               (default: random-effects meta-regression, REML, z test)
                               or ``"lm"`` (classical Egger: weighted least squares
                               ``lm(yi ~ X, weights = 1/vi)``, t test with k-2 df);
                               predictor ``"sei"`` (standard error, default) or
                               ``"ninv"`` (1 / total sample size). The *limit estimate*
                               is the intercept: the effect expected as the predictor
                               goes to 0 (an infinitely large study), with its CI.
:func:`ranktest`               Begg and Mazumdar's rank correlation test (metafor
                               ``ranktest``): Kendall's tau between the standardised
                               effects and their variances.
:func:`trimfill`               Duval and Tweedie's trim-and-fill (metafor ``trimfill``):
                               estimators ``"L0"`` (default) and ``"R0"``.
:func:`small_study_effects`    all three from a contrast table (+ the Cochrane warning)
:func:`funnel_plot`            contour-enhanced funnel plot (matplotlib Figure)
=============================  ===========================================================

How metafor's choices are replicated (metafor 3.8-1 sources, ``R/regtest.r``,
``R/ranktest.r``, ``R/trimfill.rma.uni.r``, ``R/rma.uni.r``):

* **regtest, model "rma"**: ``rma.uni(yi, vi, mods = cbind(1, predictor), method)`` with
  the method and test of the fitted model (``rma()``'s defaults: REML, z). The REML fit is
  metafor's Fisher scoring for a meta-regression: start at the Hedges (HE) estimate
  ``(y'P0 y - tr(P0 V)) / (k - p)`` truncated at 0, step ``(y'PPy - tr P) / tr(PP)``
  halved while it would make tau^2 negative, stop when the change is <= 1e-5 (at most 100
  steps), then metafor's ll0check (tau^2 set to 0 when the restricted log-likelihood at
  0 is larger by more than ``eps^0.25``). DL uses ``(y'Py - (k-p)) / tr P`` with
  ``W = 1/vi``; ``iv`` (metafor ``EE``) fixes tau^2 = 0. With ``hksj=True`` (a model fitted
  with ``test="knha"``) the covariance is scaled by ``RSS/(k-p)`` and the test is t with
  k-2 df. The statistic is the z (t) of the predictor's coefficient; the limit estimate
  and its CI are the intercept's.
* **regtest, model "lm"**: the weighted least-squares fit's t statistic of the
  predictor (residual variance estimated, k-2 df); the limit CI is
  ``intercept -/+ qt(1 - alpha/2, k-2) * se(intercept)``.
* **ranktest**: ``theta`` = inverse-variance weighted mean, ``vi* = vi - 1/sum(1/vi)``,
  ``yi* = (yi - theta)/sqrt(vi*)``, then R's ``cor.test(yi*, vi, method="kendall",
  exact=TRUE)``: tau is Kendall's tau-b; the p-value uses the **exact** null
  distribution of Kendall's statistic whenever neither vector has ties (whatever k:
  metafor passes ``exact=TRUE``, so R's usual "exact only when n < 50" rule does not
  apply), otherwise the normal approximation with R's tie-corrected variance and no
  continuity correction. One deviation: for k > 170 R's exact p-value is NaN (k! overflows
  a double); there the normal approximation is used, as metafor >= 4.0 does
  (``exact=False`` then).
* **trimfill**: the side is metafor's default rule: fit ``rma.uni(yi, vi, mods = sei,
  method)``; side ``"right"`` (studies missing on the right) when the slope of ``sei`` is
  negative, else ``"left"``. Data are flipped for the right side, sorted by effect
  (stable order), and iterated: intercept-only fit (the input model's method) to the
  ``k - k0`` smallest effects, signed ranks (``rank(|yi - beta|, ties="first")``) of
  the centred effects, ``L0 = (4 Sr - k(k+1)) / (2k - 1)`` or ``R0 = k - (largest
  negative rank) - 1``, rounded and truncated at 0, until k0 stops changing (at most 100
  iterations). The k0 most extreme studies are mirrored about the last truncated
  estimate and the model is refitted to the k + k0 effects (method of the input model,
  Wald z test). When k0 = 0 metafor returns the input fit itself (so its test, e.g.
  Knapp-Hartung, is kept); so does :func:`trimfill`.

Cochrane Handbook (version 6, section 13.3.5.4): tests for funnel plot asymmetry should be
used only when there are at least 10 studies; :func:`small_study_warning` gives the warning
used by :func:`small_study_effects` and ``bayesln bias``.

Every number is checked against metafor in ``tests/test_frequentist_bias.py``
(fixture ``validation/fixtures/metafor_bias.json`` from ``validation/metafor/bias_reference.R``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from ._zeroin import R_UNIROOT_TOL
from .analysis import prepare_contrasts
from .models import fisher_step
from .effects import check_measure, escalc
from .errors import FrequentistInputError, NotEstimableError
from .models import REML_MAXITER, REML_THRESHOLD, PooledEstimate, rma_uni

#: measures the small-study methods accept (ratio measures, analysed on the log scale)
BIAS_MEASURES = ("RR", "OR")
#: ``regtest`` models and predictors
REGTEST_MODELS = ("rma", "lm")
REGTEST_PREDICTORS = ("sei", "ninv")
#: tau^2 estimators available for the moderator model and trim-and-fill
BIAS_METHODS = ("reml", "dl", "iv")
TRIMFILL_ESTIMATORS = ("L0", "R0")
TRIMFILL_SIDES = ("left", "right")
#: Cochrane Handbook 13.3.5.4: at least 10 studies for tests of funnel plot asymmetry
MIN_STUDIES_ASYMMETRY = 10
MIN_STUDIES = 3
#: largest k with an exact Kendall p-value in R (k! must be a finite double)
KENDALL_EXACT_MAX = 170

def small_study_warning(k: int) -> str | None:
    """The Cochrane Handbook warning for fewer than 10 studies (``None`` from 10 on)."""
    if k >= MIN_STUDIES_ASYMMETRY:
        return None
    return (f"only {k} studies: tests for funnel plot asymmetry should be used only when there are at "
            f"least {MIN_STUDIES_ASYMMETRY} studies (Cochrane Handbook 13.3.5.4); with fewer they cannot "
            "tell chance from real asymmetry")


def _num(x) -> float | None:
    """JSON-safe float (None for NaN / inf)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------


def _check_choice(value, allowed, name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise FrequentistInputError(f"{name}: unknown value {value!r}; expected one of {', '.join(allowed)}")
    return value


def _check_method(method: str, name: str = "method") -> str:
    if not isinstance(method, str) or method.lower() not in BIAS_METHODS:
        raise FrequentistInputError(
            f"{name}: unknown value {method!r} for the small-study methods; expected one of {', '.join(BIAS_METHODS)}"
        )
    return method.lower()


def _check_level(level: float) -> float:
    try:
        lv = float(level)
    except (TypeError, ValueError):
        raise FrequentistInputError(f"level: expected a percentage in (0, 100), got {level!r}") from None
    if not 0 < lv < 100:
        raise FrequentistInputError(f"level: expected a percentage in (0, 100), got {level!r}")
    return lv


def _check_yi_vi(yi, vi) -> tuple[np.ndarray, np.ndarray]:
    try:
        y = np.asarray(yi, dtype=float).reshape(-1)
        v = np.asarray(vi, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise FrequentistInputError(f"yi and vi must be numeric ({exc})") from None
    if y.shape != v.shape:
        raise FrequentistInputError(f"yi and vi differ in length ({y.size} vs {v.size})")
    bad = ~np.isfinite(y) | ~np.isfinite(v) | (v <= 0)
    if bad.any():
        raise FrequentistInputError(
            "effect sizes must be finite with positive finite variances; not so for study #"
            + ", #".join(str(i + 1) for i in np.flatnonzero(bad))
        )
    if y.size < MIN_STUDIES:
        raise FrequentistInputError(
            f"k = {y.size}: small-study methods need at least {MIN_STUDIES} studies (and tests of funnel plot "
            f"asymmetry at least {MIN_STUDIES_ASYMMETRY}, Cochrane Handbook 13.3.5.4)"
        )
    return y, v


# ---------------------------------------------------------------------------------------
# meta-regression (metafor rma.uni with moderators)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeratorFit:
    """A fitted ``rma.uni(yi, vi, mods=X, intercept=FALSE)`` (coefficients in X's order)."""

    method: str
    test: str
    beta: np.ndarray
    se: np.ndarray
    statistic: np.ndarray
    pvalue: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    df: float  # k - p under knha, NaN for z
    tau2: float
    iterations: int = 0


def _invcalc(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(X' W X)^{-1}`` via the QR decomposition of ``sqrt(W) X`` (metafor ``.invcalc``)."""
    _, r = np.linalg.qr(np.sqrt(w)[:, None] * X)
    rinv = np.linalg.solve(r, np.eye(r.shape[0]))
    return rinv @ rinv.T


def _proj(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``P = W - W X (X'WX)^{-1} X' W``."""
    wx = w[:, None] * X
    return np.diag(w) - wx @ _invcalc(X, w) @ wx.T


def qe_mods(tau2: float, yi: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    """Generalised Q of the meta-regression on ``X`` (intercept column included) at
    ``tau2``: the weighted residual sum of squares ``y' P y`` (metafor's QE with moderators),
    without forming the k x k matrix P."""
    w = 1.0 / (vi + tau2)
    beta = _invcalc(X, w) @ (X.T @ (w * yi))
    return float((w * (yi - X @ beta) ** 2).sum())


def _reml_ll_mods(tau2: float, ymc: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    k, p = X.shape
    w = 1.0 / (vi + tau2)
    rss = qe_mods(tau2, ymc, vi, X)
    _, logdet = np.linalg.slogdet((X.T * w) @ X)
    return float(-0.5 * (k - p) * math.log(2 * math.pi) - 0.5 * np.log(vi + tau2).sum() - 0.5 * logdet - 0.5 * rss)


def _tau2_reml_mods(yi: np.ndarray, vi: np.ndarray, X: np.ndarray, *, threshold: float = REML_THRESHOLD,
                    maxiter: int = REML_MAXITER, stepadj: float = 1.0) -> tuple[float, int]:
    """metafor's REML Fisher scoring for ``rma.uni(yi, vi, mods=X)`` (see module docstring)."""
    k, p = X.shape
    ymc = yi - yi.mean()
    # Hedges (HE) starting value
    p0 = np.eye(k) - X @ _invcalc(X, np.ones(k)) @ X.T
    rss0 = float(ymc @ p0 @ ymc)
    tau2 = max(0.0, (rss0 - float((np.diag(p0) * vi).sum())) / (k - p))
    change = threshold + 1
    it = 0
    while change > threshold:
        it += 1
        old = tau2
        P = _proj(X, 1.0 / (vi + tau2))
        py = P @ ymc
        tau2 = fisher_step(tau2, float((py @ py - np.trace(P)) / (P * P).sum()) * stepadj)
        change = abs(old - tau2)
        if it > maxiter:
            raise NotEstimableError(
                f"REML Fisher scoring of the meta-regression did not converge in {maxiter} iterations "
                "(metafor stops here as well); use method='dl'"
            )
    # metafor's ll0check
    if tau2 > threshold and _reml_ll_mods(0.0, ymc, vi, X) - _reml_ll_mods(tau2, ymc, vi, X) > R_UNIROOT_TOL:
        tau2 = 0.0
    return max(0.0, tau2), it


def rma_mods(yi, vi, X, method: str = "reml", *, hksj: bool = False, level: float = 95.0) -> ModeratorFit:
    """Meta-regression ``rma.uni(yi, vi, mods=X, intercept=FALSE, method, test)``.

    ``X`` is the full design matrix (include the column of ones); ``method``: ``"reml"``,
    ``"dl"`` or ``"iv"`` (metafor ``EE``); ``hksj``: metafor ``test="knha"``.
    """
    method = _check_method(method)
    yi = np.asarray(yi, float).reshape(-1)
    vi = np.asarray(vi, float).reshape(-1)
    X = np.asarray(X, float)
    if X.ndim == 1:
        X = X[:, None]
    k, p = X.shape
    if X.shape[0] != yi.size:
        raise FrequentistInputError("the design matrix needs one row per study")
    if p + (method != "iv") > k:
        raise FrequentistInputError(
            f"k = {k}: too few studies for a model with {p} coefficients{' and tau^2' if method != 'iv' else ''}"
        )
    if np.any(np.linalg.eigvalsh(X.T @ X) <= 1e-7):  # metafor's check (evtol = 1e-7)
        raise FrequentistInputError(
            "the moderator hardly varies across studies: the design matrix is not of full rank as metafor's "
            "rma.uni judges it (an eigenvalue of X'X <= 1e-7), so the model cannot be fitted"
            + ("; try model='lm' or predictor='sei'" if p == 2 else "")
        )
    it = 0
    if method == "iv":
        tau2 = 0.0
    elif method == "dl":
        ymc = yi - yi.mean()
        P = _proj(X, 1.0 / vi)
        tau2 = max(0.0, float((ymc @ P @ ymc - (k - p)) / np.trace(P)))
    else:
        tau2, it = _tau2_reml_mods(yi, vi, X)
    w = 1.0 / (vi + tau2)
    vb = _invcalc(X, w)
    beta = vb @ (X.T @ (w * yi))
    alpha = 1 - level / 100
    if hksj:
        rss = float((w * (yi - X @ beta) ** 2).sum())
        s2w = 0.0 if rss <= np.finfo(float).eps else rss / (k - p)
        vb = s2w * vb
        df = float(k - p)
        se = np.sqrt(np.diag(vb))
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = beta / se
        pval = 2 * stats.t.sf(np.abs(stat), df)
        crit = stats.t.isf(alpha / 2, df)
    else:
        df = math.nan
        se = np.sqrt(np.diag(vb))
        stat = beta / se
        pval = 2 * stats.norm.sf(np.abs(stat))
        crit = stats.norm.isf(alpha / 2)
    return ModeratorFit(method=method, test="knha" if hksj else "z", beta=beta, se=se, statistic=stat,
                        pvalue=pval, ci_lb=beta - crit * se, ci_ub=beta + crit * se, df=df, tau2=float(tau2),
                        iterations=it)


# ---------------------------------------------------------------------------------------
# Egger's regression test (metafor regtest)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EggerTest:
    """Egger's regression test for funnel plot asymmetry (metafor ``regtest``).

    ``statistic`` is the z (``statistic_type="z"``) or t (``"t"``, with ``df``) statistic
    of the predictor's coefficient ``slope``; ``limit_estimate`` (with its ``level``% CI) is
    the intercept, the effect (log scale) as the predictor goes to 0.
    """

    model: str
    predictor: str
    method: str | None  # tau^2 estimator of the moderator model (None for lm)
    statistic: float
    statistic_type: str
    df: float
    pvalue: float
    limit_estimate: float
    limit_ci_low: float
    limit_ci_high: float
    slope: float
    slope_se: float
    tau2: float  # residual heterogeneity of the moderator model (NaN for lm)
    k: int
    level: float = 95.0

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "predictor": self.predictor,
            "statistic": _num(self.statistic),
            "statistic_type": self.statistic_type,
            "df": None if not math.isfinite(self.df) else round(self.df),
            "pvalue": _num(self.pvalue),
            "limit_estimate": _num(self.limit_estimate),
            "limit_ci_low": _num(self.limit_ci_low),
            "limit_ci_high": _num(self.limit_ci_high),
        }


def regtest(yi, vi, *, model: str = "rma", predictor: str = "sei", ni=None, method: str = "reml",
            hksj: bool = False, level: float = 95.0) -> EggerTest:
    """Egger's regression test, metafor ``regtest(rma(yi, vi, method), model, predictor)``.

    Parameters
    ----------
    yi, vi : array-like
        Effect sizes (log scale) and sampling variances.
    model : ``"rma"`` | ``"lm"``
        Random-effects meta-regression with the predictor as moderator (z test; t with
        k-2 df when ``hksj``) or weighted least squares ``lm(yi ~ X, weights = 1/vi)``
        (classical Egger test, t with k-2 df).
    predictor : ``"sei"`` | ``"ninv"``
        Standard error ``sqrt(vi)`` or ``1/ni`` (``ni`` = total sample size per study,
        required for ``"ninv"``).
    method : ``"reml"`` | ``"dl"`` | ``"iv"``
        tau^2 estimator of the ``rma`` model (the method of the fit that metafor's
        ``regtest`` is given; ``rma()``'s default is REML).
    """
    model = _check_choice(model, REGTEST_MODELS, "model")
    predictor = _check_choice(predictor, REGTEST_PREDICTORS, "predictor")
    method = _check_method(method)
    level = _check_level(level)
    yi, vi = _check_yi_vi(yi, vi)
    k = yi.size
    if predictor == "sei":
        x = np.sqrt(vi)
    else:
        if ni is None:
            raise FrequentistInputError("predictor 'ninv' needs the sample sizes ni (n_t + n_c of each study)")
        n = np.asarray(ni, dtype=float).reshape(-1)
        if n.shape != yi.shape or not np.all(np.isfinite(n)) or np.any(n <= 0):
            raise FrequentistInputError("ni must give one positive finite sample size per study")
        x = 1.0 / n
    X = np.column_stack([np.ones(k), x])
    # regtest() first fits lm(yi ~ 0 + X): R's QR (tolerance 1e-7) must find X of full rank,
    # i.e. the predictor, once the intercept is projected out, keeps > 1e-7 of its norm
    if math.sqrt(((x - x.mean()) ** 2).sum()) < 1e-7 * math.sqrt((x**2).sum()):
        raise FrequentistInputError(
            f"the predictor {predictor!r} is (nearly) constant across studies, so the regression test cannot be "
            "fitted (metafor: 'Model matrix no longer of full rank after addition of predictor')"
        )
    alpha = 1 - level / 100
    if model == "rma":
        fit = rma_mods(yi, vi, X, method, hksj=hksj, level=level)
        return EggerTest(
            model=model, predictor=predictor, method=method, statistic=float(fit.statistic[1]),
            statistic_type="t" if hksj else "z", df=fit.df, pvalue=float(fit.pvalue[1]),
            limit_estimate=float(fit.beta[0]), limit_ci_low=float(fit.ci_lb[0]), limit_ci_high=float(fit.ci_ub[0]),
            slope=float(fit.beta[1]), slope_se=float(fit.se[1]), tau2=fit.tau2, k=k, level=level,
        )
    w = 1.0 / vi
    inv = _invcalc(X, w)
    beta = inv @ (X.T @ (w * yi))
    df = k - 2
    sigma2 = float((w * (yi - X @ beta) ** 2).sum()) / df
    se = np.sqrt(sigma2 * np.diag(inv))
    tval = beta / se
    pval = 2 * stats.t.sf(np.abs(tval), df)
    crit = stats.t.isf(alpha / 2, df)
    return EggerTest(
        model=model, predictor=predictor, method=None, statistic=float(tval[1]), statistic_type="t",
        df=float(df), pvalue=float(pval[1]), limit_estimate=float(beta[0]),
        limit_ci_low=float(beta[0] - crit * se[0]), limit_ci_high=float(beta[0] + crit * se[0]),
        slope=float(beta[1]), slope_se=float(se[1]), tau2=math.nan, k=k, level=level,
    )


# ---------------------------------------------------------------------------------------
# Begg and Mazumdar's rank correlation test (metafor ranktest)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeggTest:
    """Begg and Mazumdar's rank correlation test (metafor ``ranktest``).

    ``tau``: Kendall's tau-b between standardised effects and variances; ``exact``: the
    p-value comes from the exact null distribution (no ties), else from the normal
    approximation.
    """

    tau: float
    pvalue: float
    exact: bool
    k: int
    statistic: float  # Kendall's T (number of concordant pairs) when exact, else z

    def to_dict(self) -> dict:
        return {"tau": _num(self.tau), "pvalue": _num(self.pvalue), "exact": bool(self.exact)}


def kendall_tau(x, y) -> float:
    """Kendall's tau-b as R's ``cor(x, y, method="kendall")`` (NaN when x or y is constant)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    num = xsd = ysd = 0.0
    for start in range(0, x.size, 512):  # pairs in blocks of rows: memory stays O(512 k)
        sx = np.sign(x[start:start + 512, None] - x[None, :])
        sy = np.sign(y[start:start + 512, None] - y[None, :])
        num += float((sx * sy).sum())
        xsd += float((sx * sx).sum())
        ysd += float((sy * sy).sum())
    if xsd == 0 or ysd == 0:
        return math.nan
    return num / (math.sqrt(xsd) * math.sqrt(ysd))


@lru_cache(maxsize=64)
def _kendall_counts(n: int) -> np.ndarray:
    """Number of permutations of n items with j inversions, j = 0..n(n-1)/2 (R's ckendall)."""
    c = np.array([1.0])
    for m in range(2, n + 1):
        c = np.convolve(c, np.ones(m))
    c.setflags(write=False)
    return c


def pkendall(q: float, n: int) -> float:
    """P(T <= q) for Kendall's statistic T under independence (R's ``pkendall``)."""
    q = math.floor(q + 1e-7)
    if q < 0:
        return 0.0
    if q > n * (n - 1) / 2:
        return 1.0
    return float(_kendall_counts(n)[: q + 1].sum() / math.gamma(n + 1))


def _kendall_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, bool, float]:
    """R's ``cor.test(x, y, method="kendall", exact=TRUE)`` (two-sided): tau, p, exact, statistic."""
    n = x.size
    r = kendall_tau(x, y)
    if not math.isfinite(r):
        return math.nan, math.nan, False, math.nan
    ties = min(np.unique(x).size, np.unique(y).size) < n
    if not ties and n <= KENDALL_EXACT_MAX:
        q = round((r + 1) * n * (n - 1) / 4)
        if q > n * (n - 1) / 4:
            p = 1 - pkendall(q - 1, n)
        else:
            p = pkendall(q, n)
        return r, min(2 * p, 1.0), True, float(q)
    _, xt = np.unique(x, return_counts=True)
    _, yt = np.unique(y, return_counts=True)
    xt = xt[xt > 1].astype(float)
    yt = yt[yt > 1].astype(float)
    t0 = n * (n - 1) / 2
    t1 = (xt * (xt - 1)).sum() / 2
    t2 = (yt * (yt - 1)).sum() / 2
    s = r * math.sqrt((t0 - t1) * (t0 - t2))
    v0 = n * (n - 1) * (2 * n + 5)
    vt = (xt * (xt - 1) * (2 * xt + 5)).sum()
    vu = (yt * (yt - 1) * (2 * yt + 5)).sum()
    v1 = (xt * (xt - 1)).sum() * (yt * (yt - 1)).sum()
    v2 = (xt * (xt - 1) * (xt - 2)).sum() * (yt * (yt - 1) * (yt - 2)).sum()
    var_s = (v0 - vt - vu) / 18 + v1 / (2 * n * (n - 1)) + v2 / (9 * n * (n - 1) * (n - 2))
    z = s / math.sqrt(var_s)
    p = 2 * min(stats.norm.cdf(z), stats.norm.sf(z))
    return r, float(p), False, float(z)


def ranktest(yi, vi) -> BeggTest:
    """Begg and Mazumdar's rank correlation test, metafor ``ranktest(yi, vi)``."""
    yi, vi = _check_yi_vi(yi, vi)
    wi = 1.0 / vi
    theta = (yi * wi).sum() / wi.sum()
    vb = 1.0 / wi.sum()
    ystar = (yi - theta) / np.sqrt(vi - vb)
    tau, p, exact, stat = _kendall_test(ystar, vi)
    return BeggTest(tau=tau, pvalue=p, exact=exact, k=yi.size, statistic=stat)


# ---------------------------------------------------------------------------------------
# trim-and-fill (metafor trimfill.rma.uni)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrimFill:
    """Trim-and-fill result (metafor ``trimfill``), log scale.

    ``k0`` studies imputed on ``side``; ``estimate``/``se``/``ci_*``/``pvalue``/``tau2``:
    the model refitted to the ``k + k0`` effects (the input fit when ``k0 = 0``);
    ``filled_yi``/``filled_vi``: the imputed studies in metafor's order; ``se_k0``:
    metafor's standard error of k0.
    """

    k0: int
    side: str
    estimator: str
    method: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    pvalue: float
    tau2: float
    se_k0: float
    k: int  # observed studies
    level: float
    filled_yi: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    filled_vi: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    iterations: int = 0
    side_rule: str = ""

    def to_dict(self) -> dict:
        return {
            "k0": int(self.k0),
            "side": self.side,
            "estimator": self.estimator,
            "estimate": _num(self.estimate),
            "ci_low": _num(self.ci_low),
            "ci_high": _num(self.ci_high),
            "se": _num(self.se),
        }


def _intercept_fit(yi, vi, method: str, hksj: bool = False, level: float = 95.0):
    return rma_uni(yi, vi, method, test="knha" if hksj else "z", level=level, confint=False)


def trimfill(yi, vi, *, estimator: str = "L0", side: str | None = None, method: str = "reml",
             hksj: bool = False, level: float = 95.0, maxiter: int = 100) -> TrimFill:
    """Trim-and-fill, metafor ``trimfill(rma(yi, vi, method), estimator, side)``.

    ``side=None`` applies metafor's rule (sign of the Egger-type slope of ``sei`` in
    ``rma.uni(yi, vi, mods=sqrt(vi), method)``: negative -> ``"right"``, else ``"left"``).
    ``method`` / ``hksj`` describe the input fit: its tau^2 estimator is used for every
    refit; its test only matters when ``k0 = 0`` (metafor then returns the input fit).
    """
    estimator = _check_choice(estimator, TRIMFILL_ESTIMATORS, "estimator")
    if side is not None:
        side = _check_choice(side, TRIMFILL_SIDES, "side")
    method = _check_method(method)
    level = _check_level(level)
    yi, vi = _check_yi_vi(yi, vi)
    k = yi.size
    if side is None:
        slope = rma_mods(yi, vi, np.column_stack([np.ones(k), np.sqrt(vi)]), method).beta[1]
        side = "right" if slope < 0 else "left"
        rule = f"metafor's default: slope of sei in rma(yi, vi, mods=sei) = {slope:.4g}"
    else:
        rule = "given"
    y = -yi if side == "right" else yi.copy()
    ix = np.argsort(y, kind="stable")
    y, v = y[ix], vi[ix]
    k0, k0_sav, it = 0, -1, 0
    beta = math.nan
    se_k0 = math.nan
    yc = np.empty(0)
    while k0 != k0_sav:
        k0_sav = k0
        it += 1
        if it > maxiter:
            raise NotEstimableError("trim-and-fill did not converge (metafor stops here as well)")
        beta = _intercept_fit(y[: k - k0], v[: k - k0], method).beta
        yc = y - beta
        rank = np.empty(k)
        rank[np.argsort(np.abs(yc), kind="stable")] = np.arange(1, k + 1)  # rank(ties="first")
        srank = np.sign(yc) * rank
        if estimator == "R0":
            neg = srank[srank < 0]
            if neg.size == 0:
                raise NotEstimableError("trim-and-fill (R0): no effect below the centre; k0 is not defined")
            k0_raw = (k - np.max(-neg)) - 1
            se_k0 = math.sqrt(2 * max(0.0, k0_raw) + 2)
        else:
            sr = srank[srank > 0].sum()
            k0_raw = (4 * sr - k * (k + 1)) / (2 * k - 1)
            var_sr = (k * (k + 1) * (2 * k + 1) + 10 * k0_raw**3 + 27 * k0_raw**2 + 17 * k0_raw
                      - 18 * k * k0_raw**2 - 18 * k * k0_raw + 6 * k**2 * k0_raw) / 24
            se_k0 = 4 * math.sqrt(var_sr) / (2 * k - 1) if var_sr >= 0 else math.nan
        k0 = int(max(0, np.round(k0_raw)))
        se_k0 = max(0.0, se_k0) if math.isfinite(se_k0) else se_k0
        if k0 >= k:
            raise NotEstimableError(f"trim-and-fill: {k0} missing studies estimated for k = {k}; not estimable")
    if k0 > 0:
        # mirror the k0 most extreme studies about the last truncated estimate
        fill_y = 2 * beta - y[k - k0:]
        if side == "right":
            fill_y = -fill_y
        fill_v = v[k - k0:].copy()
        fit = _intercept_fit(np.concatenate([yi, fill_y]), np.concatenate([vi, fill_v]), method, level=level)
    else:
        fill_y = np.empty(0)
        fill_v = np.empty(0)
        fit = _intercept_fit(yi, vi, method, hksj=hksj, level=level)
    return TrimFill(
        k0=k0, side=side, estimator=estimator, method=method, estimate=fit.beta, se=fit.se, ci_low=fit.ci_lb,
        ci_high=fit.ci_ub, pvalue=fit.pvalue, tau2=fit.tau2, se_k0=float(se_k0), k=k, level=level,
        filled_yi=fill_y, filled_vi=fill_v, iterations=it, side_rule=rule,
    )


# ---------------------------------------------------------------------------------------
# contrast-table level
# ---------------------------------------------------------------------------------------


@dataclass
class SmallStudyEffects:
    """Egger, Begg and trim-and-fill for one contrast table (log scale throughout).

    ``studies``: study, yi, vi, sei, ni (the effect sizes the tests used);
    ``excluded``: study, reason; ``pooled``: the random-effects fit of the observed studies
    (method ``method``), drawn by :func:`funnel_plot`; ``warning``: the Cochrane warning
    when k < 10 (else None).
    """

    measure: str
    method: str
    egger: EggerTest
    begg: BeggTest
    trimfill: TrimFill
    studies: pd.DataFrame
    excluded: pd.DataFrame
    pooled: PooledEstimate
    warning: str | None

    @property
    def k(self) -> int:
        return len(self.studies)

    def to_dict(self) -> dict:
        return {"egger": self.egger.to_dict(), "begg": self.begg.to_dict(), "trimfill": self.trimfill.to_dict(),
                "k": int(self.k), "warning": self.warning}


def small_study_effects(contrasts: pd.DataFrame, measure: str = "RR", *, model: str = "rma",
                        predictor: str = "sei", method: str = "reml", estimator: str = "L0",
                        side: str | None = None, level: float = 95.0) -> SmallStudyEffects:
    """Egger's test, Begg's test and trim-and-fill for a contrast table.

    Effect sizes are metafor's ``escalc`` (log RR / log OR; 1/2 added to every cell of a
    study with a zero cell; double-zero studies kept), i.e. what ``rma(measure, ai, n1i,
    ci, n2i)`` analyses; ``ninv`` uses ``n_t + n_c``. Studies with missing counts are
    excluded with a reason (``.excluded``). Raises :class:`FrequentistInputError` for an
    unknown option or fewer than 3 studies.
    """
    measure = check_measure(measure, BIAS_MEASURES)
    model = _check_choice(model, REGTEST_MODELS, "model")
    predictor = _check_choice(predictor, REGTEST_PREDICTORS, "predictor")
    method = _check_method(method)
    estimator = _check_choice(estimator, TRIMFILL_ESTIMATORS, "estimator")
    if side is not None:
        side = _check_choice(side, TRIMFILL_SIDES, "side")
    level = _check_level(level)
    df, excluded = prepare_contrasts(contrasts)
    if len(df) < MIN_STUDIES:
        raise FrequentistInputError(
            f"k = {len(df)}: small-study methods need at least {MIN_STUDIES} studies with complete counts "
            f"(tests of funnel plot asymmetry at least {MIN_STUDIES_ASYMMETRY}, Cochrane Handbook 13.3.5.4)"
        )
    es = escalc(df["events_t"], df["n_t"], df["events_c"], df["n_c"], measure, studies=df["study"].tolist())
    yi, vi = es.yi, es.vi
    ni = (df["n_t"] + df["n_c"]).to_numpy(float)
    egger = regtest(yi, vi, model=model, predictor=predictor, ni=ni, method=method, level=level)
    begg = ranktest(yi, vi)
    tf = trimfill(yi, vi, estimator=estimator, side=side, method=method, level=level)
    pooled = _intercept_fit(yi, vi, method, level=level)
    studies = pd.DataFrame({"study": df["study"].to_numpy(), "yi": yi, "vi": vi, "sei": np.sqrt(vi), "ni": ni})
    return SmallStudyEffects(measure=measure, method=method, egger=egger, begg=begg, trimfill=tf,
                             studies=studies, excluded=excluded, pooled=pooled, warning=small_study_warning(len(df)))


# ---------------------------------------------------------------------------------------
# contour-enhanced funnel plot
# ---------------------------------------------------------------------------------------

MEASURE_AXIS = {"RR": "log risk ratio", "OR": "log odds ratio"}
CONTOUR_SHADES = ("0.93", "0.80", "0.65")  # 0.05 < p < 0.10, 0.01 < p < 0.05, p < 0.01


def funnel_plot(x, vi=None, *, measure: str | None = None, estimate: float | None = None,
                trimfill: TrimFill | None = None, contours=(0.10, 0.05, 0.01), title: str | None = None,
                ax=None, figsize=(9.0, 5.2)):
    """Contour-enhanced funnel plot; returns the matplotlib ``Figure`` (nothing is saved).

    ``x``: a :class:`SmallStudyEffects` (its studies, pooled estimate, trim-and-fill and
    measure are used) or the effect sizes ``yi`` with ``vi``. The x axis is the effect on
    the log scale, the y axis the standard error (inverted: large studies at the top).
    Shaded regions around 0 (no effect) mark where a study's two-sided p-value is below
    ``contours`` (default 0.10, 0.05, 0.01; Peters et al. 2008); the vertical line is the
    pooled estimate; studies imputed by trim-and-fill are drawn as open markers, with the
    adjusted estimate as a dashed line.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if isinstance(x, SmallStudyEffects):
        yi = x.studies["yi"].to_numpy(float)
        vi_ = x.studies["vi"].to_numpy(float)
        measure = measure or x.measure
        estimate = x.pooled.beta if estimate is None else estimate
        trimfill = x.trimfill if trimfill is None else trimfill
    else:
        if vi is None:
            raise FrequentistInputError("funnel_plot needs a SmallStudyEffects result or yi with vi")
        yi, vi_ = _check_yi_vi(x, vi)
    try:
        levels = sorted({float(c) for c in contours}, reverse=True)
    except (TypeError, ValueError):
        raise FrequentistInputError(f"contours: expected p-values in (0, 1), got {contours!r}") from None
    if not levels or any(not 0 < c < 1 for c in levels):
        raise FrequentistInputError(f"contours: expected p-values in (0, 1), got {contours!r}")
    sei = np.sqrt(vi_)
    fill_y = trimfill.filled_yi if trimfill is not None else np.empty(0)
    fill_se = np.sqrt(trimfill.filled_vi) if trimfill is not None else np.empty(0)
    se_max = float(max(sei.max(), fill_se.max() if fill_se.size else 0.0)) * 1.08
    own_figure = ax is None
    if own_figure:
        fig = Figure(figsize=figsize)
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    grid = np.linspace(0.0, se_max, 200)
    crit = [float(stats.norm.isf(p / 2)) for p in levels]
    all_y = np.concatenate([yi, fill_y])
    half = max(float(np.abs(all_y).max()), crit[-1] * se_max) * 1.05
    ax.set_facecolor("white")
    handles = [Patch(facecolor="white", edgecolor="0.5", label=f"p > {levels[0]:g}")]
    bounds = crit + [math.inf]
    for i, p in enumerate(levels):
        lo = bounds[i]
        hi = bounds[i + 1]
        inner = lo * grid
        outer = np.minimum(hi * grid, half) if math.isfinite(hi) else np.full_like(grid, half)
        shade = CONTOUR_SHADES[min(i, len(CONTOUR_SHADES) - 1)]
        nxt = levels[i + 1] if i + 1 < len(levels) else None
        label = f"{nxt:g} < p < {p:g}" if nxt is not None else f"p < {p:g}"
        for sign in (1, -1):
            ax.fill_betweenx(grid, sign * inner, sign * outer, color=shade, linewidth=0, zorder=0,
                             gid=f"contour p<{p:g}")
        handles.append(Patch(facecolor=shade, edgecolor="0.5", label=label))
    ax.axvline(0.0, color="0.35", linewidth=0.8, zorder=1, gid="no effect")
    obs = ax.scatter(yi, sei, s=28, color="black", zorder=3, label="studies", gid="studies")
    handles.append(obs)
    if fill_y.size:
        filled = ax.scatter(fill_y, fill_se, s=28, facecolors="none", edgecolors="black", zorder=3,
                            label=f"filled studies (trim-and-fill {trimfill.estimator})", gid="filled studies")
        handles.append(filled)
    if estimate is not None and math.isfinite(float(estimate)):
        line = ax.axvline(float(estimate), color="black", linewidth=1.2, zorder=2, label="pooled estimate",
                          gid="pooled estimate")
        handles.append(line)
    if trimfill is not None and trimfill.k0 > 0:
        adj = ax.axvline(trimfill.estimate, color="black", linestyle="--", linewidth=1.0, zorder=2,
                         label="adjusted estimate (trim-and-fill)", gid="adjusted estimate")
        handles.append(adj)
    ax.set_xlim(-half, half)
    ax.set_ylim(se_max, 0.0)  # inverted: precise studies at the top
    ax.set_xlabel(MEASURE_AXIS.get(measure, "effect (log scale)") if measure else "effect (log scale)")
    ax.set_ylabel("standard error")
    if title:
        ax.set_title(title)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    if own_figure:
        fig.subplots_adjust(left=0.1, right=0.66)
    return fig
