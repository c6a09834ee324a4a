"""Many meta-analyses at once (simulation studies, bootstrap, sensitivity grids).

:func:`batch_meta_analysis` takes 2-D arrays of arm counts, one meta-analysis per row and
one study per column (rows may have different numbers of studies: pad with NaN), and
computes Mantel-Haenszel, DerSimonian-Laird and REML fits with numpy operations over the
whole array - no Python loop over studies or meta-analyses. REML runs metafor's Fisher
scoring on all rows together (each row stops at its own convergence), so the results
agree with the scalar path (:func:`bayesln.frequentist.meta_analysis`) to rounding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ._zeroin import R_UNIROOT_TOL
from .effects import COUNT_MAX, check_measure, corrected_tables, double_zero, escalc_arrays
from .errors import FrequentistInputError
from .models import REML_MAXITER, REML_THRESHOLD, mh_estimate_arrays


def _as_2d(x, name):
    try:
        a = np.array(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise FrequentistInputError(f"{name}: counts must be numeric ({exc})") from None
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise FrequentistInputError(f"{name}: expected a 2-D array (meta-analyses x studies), got {a.ndim}-D")
    return a


def _validate(ai, n1i, ci, n2i):
    shapes = {a.shape for a in (ai, n1i, ci, n2i)}
    if len(shapes) != 1:
        raise FrequentistInputError(f"ai, n1i, ci, n2i differ in shape: {sorted(shapes)}")
    nan = np.isnan(ai) | np.isnan(n1i) | np.isnan(ci) | np.isnan(n2i)
    partial = nan & ~(np.isnan(ai) & np.isnan(n1i) & np.isnan(ci) & np.isnan(n2i))
    problems = []
    if partial.any():
        problems.append(("some but not all of ai, n1i, ci, n2i are NaN (padding must be NaN in all four)",
                         np.argwhere(partial)))
    with np.errstate(invalid="ignore"):
        present = ~nan
        checks = [
            ("non-finite count", present & ~(np.isfinite(ai) & np.isfinite(n1i) & np.isfinite(ci) & np.isfinite(n2i))),
            ("negative count", present & ((ai < 0) | (ci < 0) | (n1i < 0) | (n2i < 0))),
            ("empty arm (n = 0)", present & ((n1i == 0) | (n2i == 0))),
            ("events exceed n", present & ((ai > n1i) | (ci > n2i))),
            (f"count above {COUNT_MAX:,}", present & ((ai > COUNT_MAX) | (ci > COUNT_MAX) | (n1i > COUNT_MAX)
                                                      | (n2i > COUNT_MAX))),
        ]
    for msg, bad in checks:
        if bad.any():
            problems.append((msg, np.argwhere(bad)))
    if problems:
        lines = []
        for msg, where in problems:
            cells = ", ".join(f"[{r},{c}]" for r, c in where[:10]) + (" ..." if len(where) > 10 else "")
            lines.append(f"{msg} at (row, study) {cells}")
        raise FrequentistInputError("invalid counts:\n  " + "\n  ".join(lines))
    return ~nan


def _rowsum(x, mask):
    return np.where(mask, x, 0.0).sum(axis=1)


def _reml_batch(y, v, mask, k, threshold=REML_THRESHOLD, maxiter=REML_MAXITER):
    """Vectorised metafor Fisher scoring (see models.tau2_reml). Returns tau2, iterations,
    converged, reset (ll0check)."""
    n = y.shape[0]
    tau2 = np.zeros(n)
    it = np.zeros(n, dtype=int)
    conv = np.ones(n, dtype=bool)
    reset = np.zeros(n, dtype=bool)
    active = k >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        kk = np.where(active, k, np.nan)
        ybar = _rowsum(y, mask) / kk
        rss = _rowsum((y - ybar[:, None]) ** 2, mask)
        sv = _rowsum(v, mask)
        tr_pv = sv - sv / kk
        he = (rss - tr_pv) / (kk - 1)
    tau2[active] = np.maximum(0.0, he[active])
    while active.any():
        idx = np.flatnonzero(active)
        yy, vv, mm, t = y[idx], v[idx], mask[idx], tau2[idx]
        it[idx] += 1
        w = np.where(mm, 1.0 / (vv + t[:, None]), 0.0)
        yz = np.where(mm, yy, 0.0)
        sw = w.sum(axis=1)
        sw2 = (w**2).sum(axis=1)
        mu = (w * yz).sum(axis=1) / sw
        py = w * (yz - mu[:, None])
        yppy = (py**2).sum(axis=1)
        trp = sw - sw2 / sw
        trpp = sw2 - 2 * (w**3).sum(axis=1) / sw + sw2**2 / sw**2
        with np.errstate(invalid="ignore", divide="ignore"):
            adj = (yppy - trp) / trpp
        adj[np.isnan(adj)] = 0.0
        adj[(t == 0.0) & (adj < 0)] = 0.0
        neg = t + adj < 0
        while neg.any():
            adj[neg] /= 2
            neg = t + adj < 0
        new = t + adj
        change = np.abs(t - new)
        tau2[idx] = new
        still = change > threshold
        over = it[idx] > maxiter
        conv[idx[still & over]] = False
        active[idx] = still & ~over
    # metafor's ll0check (REML log-likelihood at 0 vs at the estimate)
    chk = conv & (k >= 2) & (tau2 > threshold)
    if chk.any():
        idx = np.flatnonzero(chk)
        yy, vv, mm = y[idx], v[idx], mask[idx]

        def ll(t):
            w = np.where(mm, 1.0 / (vv + t[:, None]), 0.0)
            sw = w.sum(axis=1)
            mu = (w * np.where(mm, yy, 0.0)).sum(axis=1) / sw
            r = (w * (np.where(mm, yy, 0.0) - mu[:, None]) ** 2).sum(axis=1)
            logv = np.where(mm, np.log(np.where(mm, vv, 1.0) + t[:, None]), 0.0).sum(axis=1)
            return -0.5 * (k[idx] - 1) * np.log(2 * np.pi) - 0.5 * logv - 0.5 * np.log(sw) - 0.5 * r

        bad = ll(np.zeros(idx.size)) - ll(tau2[idx]) > R_UNIROOT_TOL
        tau2[idx[bad]] = 0.0
        reset[idx[bad]] = True
    tau2 = np.maximum(0.0, tau2)
    tau2[~conv] = np.nan
    return tau2, it, conv, reset


def _iv_fit(y, v, mask, k, tau2, crit):
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(mask, 1.0 / (v + np.nan_to_num(tau2, nan=0.0)[:, None]), 0.0)
        sw = w.sum(axis=1)
        beta = (w * np.where(mask, y, 0.0)).sum(axis=1) / sw
        se = np.sqrt(1.0 / sw)
        bad = (k == 0) | np.isnan(tau2)
        beta[bad] = np.nan
        se[bad] = np.nan
        z = beta / se
        p = 2 * stats.norm.sf(np.abs(z))
    return beta, se, beta - crit * se, beta + crit * se, p


def batch_meta_analysis(ai, n1i, ci, n2i, measure: str = "RR", *, add: float = 0.5, to: str = "only0",
                        drop00: bool = False, level: float = 95.0) -> pd.DataFrame:
    """MH, DL and REML for many meta-analyses at once.

    Parameters
    ----------
    ai, n1i, ci, n2i : array-like, shape (n_meta, k_max)
        Treatment events / patients and control events / patients; one meta-analysis per
        row. Pad shorter rows with NaN (all four arrays NaN in the same cells). A 1-D input
        is one meta-analysis.
    measure : ``"RR"`` | ``"OR"`` | ``"RD"``
    add, to, drop00 : zero-cell handling of the inverse-variance (DL, REML) effect sizes,
        metafor ``escalc`` semantics and defaults. The MH estimate uses raw counts; its Q
        test uses yi/vi with ``add``/``to`` and double-zero studies dropped (metafor
        ``rma.mh`` defaults), as :func:`~bayesln.frequentist.meta_analysis` does.

    Returns
    -------
    DataFrame with one row per meta-analysis and columns
    ``k`` (studies), ``mh_*``, ``dl_*``, ``reml_*`` each with ``estimate, ci_low, ci_high``
    (natural scale: ratio for RR/OR), ``log_estimate, se`` (analysis scale), ``pvalue``;
    ``dl_tau2, dl_i2, dl_h2``, ``reml_tau2, reml_i2, reml_h2, reml_iterations,
    reml_converged``; ``q, q_df, q_pvalue`` (inverse-variance Q used by DL/REML),
    ``mh_q, mh_q_df, mh_q_pvalue`` (Q about the MH estimate) and ``status`` ("ok" or what
    is missing and why). Rows that cannot be estimated (no studies, MH 0/infinite, REML not
    converged) have NaN in the affected columns and say so in ``status``; invalid counts
    raise :class:`~bayesln.frequentist.errors.FrequentistInputError`.
    """
    measure = check_measure(measure)
    ai, n1i, ci, n2i = (_as_2d(x, nm) for x, nm in zip((ai, n1i, ci, n2i), ("ai", "n1i", "ci", "n2i")))
    present = _validate(ai, n1i, ci, n2i)
    n = ai.shape[0]
    crit = stats.norm.isf((1 - level / 100) / 2)
    nat = np.exp if measure in ("RR", "OR") else (lambda x: x)
    out: dict[str, np.ndarray] = {}

    # --- Mantel-Haenszel (raw counts)
    a, b, c, d = corrected_tables(ai, n1i, ci, n2i, add=0.0, to="none", drop00=False)
    mh_beta, mh_se = mh_estimate_arrays(a, b, c, d, measure)
    mh_beta = np.asarray(mh_beta, float)
    mh_se = np.asarray(mh_se, float)
    yq, vq = escalc_arrays(ai, n1i, ci, n2i, measure, add=add, to=to, drop00=True)
    mq = present & np.isfinite(yq) & np.isfinite(vq)
    kq = mq.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        wq = np.where(mq, 1.0 / np.where(mq, vq, 1.0), 0.0)
        mh_q = np.maximum(0.0, (wq * (np.where(mq, yq, 0.0) - mh_beta[:, None]) ** 2).sum(axis=1))
        mh_q = np.where(kq > 1, mh_q, 0.0)
        mh_q[np.isnan(mh_beta) & (kq > 1)] = np.nan
        mh_qp = np.where(kq > 1, stats.chi2.sf(mh_q, np.maximum(kq - 1, 1)), 1.0)
        mh_z = mh_beta / mh_se
        mh_p = 2 * stats.norm.sf(np.abs(mh_z))

    # --- inverse-variance effect sizes
    y, v = escalc_arrays(ai, n1i, ci, n2i, measure, add=add, to=to, drop00=drop00)
    mask = present & np.isfinite(y) & np.isfinite(v) & (v > 0)
    if (present & ~np.isnan(y) & ~mask).any():
        raise FrequentistInputError(
            "non-finite effect size or variance (a zero cell without continuity correction?); use to='only0' or 'all'"
        )
    k = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w0 = np.where(mask, 1.0 / np.where(mask, v, 1.0), 0.0)
        sw0 = w0.sum(axis=1)
        mu0 = (w0 * np.where(mask, y, 0.0)).sum(axis=1) / sw0
        q = np.maximum(0.0, (w0 * (np.where(mask, y, 0.0) - mu0[:, None]) ** 2).sum(axis=1))
        trp = sw0 - (w0**2).sum(axis=1) / sw0
        q = np.where(k > 1, q, np.where(k == 1, 0.0, np.nan))
        q_df = np.maximum(k - 1, 0)
        q_p = np.where(k > 1, stats.chi2.sf(q, np.maximum(k - 1, 1)), np.where(k == 1, 1.0, np.nan))
        vt = np.where(k > 1, (k - 1) / trp, 0.0)
        tau2_dl = np.where(k > 1, np.maximum(0.0, (q - (k - 1)) / trp), 0.0)
    tau2_dl[k == 0] = np.nan
    tau2_reml, it, conv, _reset = _reml_batch(y, v, mask, k)
    tau2_reml[k == 0] = np.nan

    # every study double-zero: nothing is estimable (the scalar path raises NotEstimableError)
    all00 = (present.sum(axis=1) > 0) & ~(present & ~double_zero(ai, n1i, ci, n2i)).any(axis=1)
    if all00.any():
        for arr in (mh_beta, mh_se, mh_p, mh_q, mh_qp, tau2_dl, tau2_reml, q, q_p):
            arr[all00] = np.nan

    out["k"] = k
    cols = {}
    for name, beta, se, p in (("mh", mh_beta, mh_se, mh_p),):
        cols[name] = (beta, se, beta - crit * se, beta + crit * se, p)
    for name, t2 in (("dl", tau2_dl), ("reml", tau2_reml)):
        beta, se, lo, hi, p = _iv_fit(y, v, mask, k, t2, crit)
        cols[name] = (beta, se, lo, hi, p)
    with np.errstate(over="ignore", invalid="ignore"):
        for name, (beta, se, lo, hi, p) in cols.items():
            out[f"{name}_estimate"] = nat(beta)
            out[f"{name}_ci_low"] = nat(lo)
            out[f"{name}_ci_high"] = nat(hi)
            out[f"{name}_log_estimate"] = beta
            out[f"{name}_se"] = se
            out[f"{name}_pvalue"] = p
    out["mh_q"] = mh_q
    out["mh_q_df"] = np.maximum(kq - 1, 0)
    out["mh_q_pvalue"] = mh_qp
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, t2 in (("dl", tau2_dl), ("reml", tau2_reml)):
            out[f"{name}_tau2"] = t2
            out[f"{name}_i2"] = np.where(k > 1, 100 * t2 / (vt + t2), np.where(k == 1, 0.0, np.nan))
            out[f"{name}_h2"] = np.where(k > 1, t2 / vt + 1, np.where(k == 1, 1.0, np.nan))
    out["reml_iterations"] = it
    out["reml_converged"] = conv
    out["q"] = q
    out["q_df"] = q_df
    out["q_pvalue"] = q_p
    status = np.full(n, "ok", dtype=object)
    status[np.isnan(mh_beta)] = f"MH {measure} not estimable (zero total events on a side, or all double-zero)"
    status[~conv] = "REML did not converge"
    status[k == 0] = "no studies"
    status[all00] = "every study double-zero: not estimable"
    out["status"] = status
    return pd.DataFrame(out)
