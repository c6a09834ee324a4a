"""The per-study likelihood with the study's own parameters integrated out.

For posterior draw s of the population parameters theta_s (``d``, ``tau``, ``beta``;
``m``, ``sigma_mu``, ``gamma`` for exchangeable baselines) the *integrated* likelihood of
study i is::

    p(y_i | theta_s) = integral of  prod_j Binomial(y_ij | n_ij, inv_logit(mu + t_ij delta + A_ij . beta_s))
                        x p(mu | theta_s) x Normal(delta | d_s, tau_s)   d mu d delta

with ``p(mu | theta_s)`` the baseline prior (independent baselines: the fixed
``Priors.baseline``, e.g. Normal(0, 2.5); exchangeable: Normal(m_s + z_i . gamma_s,
sigma_mu_s)) and ``delta = d_s`` under a common effect. This is the likelihood of study i
as a *new* study of the model, i.e. what leave-one-study-out predicts.

The integral is computed per draw by importance sampling with a defensive mixture
proposal (Hesterberg 1995): ``mu`` and ``delta`` are drawn half from their prior and half
from a normal centred at the study's own estimate (control-arm logit, observed log odds
ratio; 0.5 added to the cells, SD 1.5 x the standard error), so the estimate is unbiased
whatever the proposal's quality and efficient when the study's likelihood is much
narrower than the prior. ``inner`` draws per posterior draw (default 256); the inner
random numbers are seeded from the fit's seed.

Binomial log-pmfs include the binomial coefficient, as in the fit's ``study_loglik``.

The fit's exported InferenceData carries these values as ``log_likelihood`` /
``study_integrated`` (:func:`integrated_loglik_dataarray`, used by ``fit_core`` and
``fit_joint``): the same function, ``inner`` = :data:`INNER` and the seeds derived from the
fit's seed, so ``az.loo`` on a run's ``idata.nc`` scores exactly the draws that
:func:`bayesln.checks.loo.study_loo` scores; ``study_loo`` reads them back
(:func:`stored_integrated_loglik`) instead of integrating again when they were made with
its settings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln, log_expit, logsumexp

from bayesln.checks.refit import derive_seed, fit_priors, is_core_fit

__all__ = ["INNER", "integrated_loglik_dataarray", "integrated_study_loglik", "is_joint_fit",
           "joint_integrated_study_loglik", "stored_integrated_loglik"]

#: weight of the prior component of the proposal, and the inflation of the Laplace SDs
W_PRIOR, INFLATE = 0.1, 1.5
#: inner importance-sampling draws per posterior draw (the default of study_loo and of the export)
INNER = 256
#: names the estimator of the stored values; stored values with another are not reused
METHOD = f"bayesln integrated importance sampling v1 (defensive mixture, w_prior={W_PRIOR}, inflate={INFLATE})"


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _norm_logpdf(x, loc, scale):
    z = (x - loc) / scale
    return -0.5 * z * z - np.log(scale) - 0.5 * np.log(2 * np.pi)


def _flat(post, name):
    if name not in post:
        return None
    a = np.asarray(post[name].values, dtype=float)
    return a.reshape((-1,) + a.shape[2:])


def _baseline_prior(result, post, i):
    """(kind, params) of mu_i's prior: per-draw arrays for exchangeable baselines."""
    des = result.design
    if des.baseline == "exchangeable":
        m = _flat(post, "m")
        sig = _flat(post, "sigma_mu")
        loc = m.copy()
        if des.baseline_names:
            gamma = _flat(post, "gamma")
            loc = loc + gamma @ des.Z_baseline[i]
        return "normal", (loc, sig)
    p = fit_priors(result).baseline
    if p.dist == "normal":
        return "normal", (float(p.params["mu"]), float(p.params["sigma"]))
    return "student_t", (float(p.params["nu"]), float(p.params["mu"]), float(p.params["sigma"]))


def _prior_sample(kind, params, size, rng):
    if kind == "normal":
        loc, sc = params
        return loc + sc * rng.standard_normal(size)
    nu, loc, sc = params
    return loc + sc * rng.standard_t(nu, size=size)


def _prior_logpdf(kind, params, x):
    if kind == "normal":
        loc, sc = params
        return _norm_logpdf(x, loc, sc)
    nu, loc, sc = params
    return stats.t.logpdf(x, df=nu, loc=loc, scale=sc)


def _laplace(y, n, t, off, d, tau, loc0, sc0, iters: int = 50):
    """Per draw, the mode and inverse negative Hessian of
    log L(mu, delta) + log N(delta | d, tau) + log N(mu | loc0, sc0) (damped Newton; the
    two normal terms make it strictly concave). ``tau=None``: delta = d fixed (1-D).
    Returns mode (m, 2) and covariance (m, 2, 2) (delta entries unused in 1-D)."""
    m = d.shape[0]
    ctl = t == 0
    if ctl.any():
        start = _logit((y[ctl].sum() + 0.5) / (n[ctl].sum() + 1.0))
        mu = np.full(m, float(start)) - off[:, ctl].mean(axis=1)
    else:
        start = _logit((y.sum() + 0.5) / (n.sum() + 1.0))
        mu = np.full(m, float(start)) - d - off.mean(axis=1)
    dl = d.copy()

    def curv(mu, dl):
        eta = mu[:, None] + t[None, :] * dl[:, None] + off
        p = np.exp(log_expit(eta))
        return y[None, :] - n[None, :] * p, n[None, :] * p * (1 - p)

    for _ in range(iters):
        r, w = curv(mu, dl)
        g1 = r.sum(1) - (mu - loc0) / sc0**2
        h11 = w.sum(1) + 1 / sc0**2
        if tau is None:
            s1 = np.clip(g1 / h11, -2, 2)
            mu = mu + s1
            if np.abs(s1).max() < 1e-9:
                break
            continue
        g2 = (r * t).sum(1) - (dl - d) / tau**2
        h12 = (w * t).sum(1)
        h22 = h12 + 1 / tau**2
        det = h11 * h22 - h12**2
        s1 = np.clip((h22 * g1 - h12 * g2) / det, -2, 2)
        s2 = np.clip((h11 * g2 - h12 * g1) / det, -2, 2)
        mu, dl = mu + s1, dl + s2
        if max(np.abs(s1).max(), np.abs(s2).max()) < 1e-9:
            break
    _, w = curv(mu, dl)
    h11 = w.sum(1) + 1 / sc0**2
    cov = np.zeros((m, 2, 2))
    if tau is None:
        cov[:, 0, 0] = 1 / h11
        cov[:, 1, 1] = 1.0
    else:
        h12 = (w * t).sum(1)
        h22 = h12 + 1 / tau**2
        det = h11 * h22 - h12**2
        cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 0], cov[:, 1, 1] = h22 / det, -h12 / det, -h12 / det, h11 / det
    return np.stack([mu, dl], axis=1), cov


def _binom_const(y, n):
    return gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)


def integrated_study_loglik(
    result,
    *,
    events: np.ndarray | None = None,
    n: np.ndarray | None = None,
    posterior=None,
    studies=None,
    inner: int = INNER,
    seed: int | None = None,
    chunk: int = 500,
) -> tuple[list[str], np.ndarray]:
    """log p(y_i | theta_s) for every posterior draw s and study i (see module docstring).

    ``events`` / ``n`` are the counts to evaluate (default: the design's); ``posterior``
    the draws to use (default: the fit's; a refit's posterior for exact leave-one-out).
    Returns (study ids, array of shape (n_draws, n_studies)). Studies whose arms all have
    n = 0 get 0.
    """
    if not is_core_fit(result):
        raise ValueError("integrated_study_loglik needs a core-model fit (bayesln.hierarchy.fit_core)")
    des = result.design
    post = result.idata.posterior if posterior is None else posterior
    y_all = np.asarray(des.events if events is None else events, dtype=float)
    n_all = np.asarray(des.n if n is None else n, dtype=float)
    studies = list(des.study_ids) if studies is None else list(studies)
    d = _flat(post, "d")
    S = d.shape[0]
    common = "tau" not in post
    tau = None if common else np.maximum(_flat(post, "tau"), 1e-12)
    beta = _flat(post, "beta") if des.effect_names else None
    base_seed = int(result.seed if seed is None else seed)
    out = np.zeros((S, len(studies)))
    for col, s in enumerate(studies):
        i = des.study_ids.index(s)
        J = np.flatnonzero(des.arm_study == i)
        y, nn, t = y_all[J], n_all[J], des.treated[J].astype(float)
        keep = nn > 0
        if not keep.any():
            continue
        y, nn, t, J = y[keep], nn[keep], t[keep], J[keep]
        const = _binom_const(y, nn).sum()
        off = np.zeros((S, len(J))) if beta is None else beta @ des.X_effect[J].T  # (S, arms)
        kind, prm = _baseline_prior(result, post, i)
        active = (not common) and bool((t == 1).any())  # does delta enter this study's likelihood?
        rng = np.random.default_rng(derive_seed(base_seed, "integrated", s))
        for a in range(0, S, chunk):
            b = min(S, a + chunk)
            m = b - a
            sl = slice(a, b)
            if kind == "normal" and np.ndim(prm[0]) > 0:
                prm_s = (prm[0][sl, None], prm[1][sl, None])
            else:
                prm_s = prm
            loc0, sc0 = (prm_s[0], prm_s[1]) if kind == "normal" else (prm_s[1], prm_s[2])
            loc0 = np.broadcast_to(np.asarray(loc0, float).reshape(-1), (m,)) if np.ndim(loc0) else np.full(m, float(loc0))
            sc0 = np.broadcast_to(np.asarray(sc0, float).reshape(-1), (m,)) if np.ndim(sc0) else np.full(m, float(sc0))
            dd = d[sl]
            tt = tau[sl] if active else None
            mode, cov = _laplace(y, nn, t, off[sl], dd, tt, loc0, sc0)
            shape = (m, inner)
            from_prior = rng.random(shape) < W_PRIOR
            z1, z2 = rng.standard_normal(shape), rng.standard_normal(shape)
            # Laplace component N(mode, INFLATE^2 cov), sampled with its 2x2 Cholesky factor
            c11 = INFLATE * np.sqrt(cov[:, 0, 0])[:, None]
            mu = np.where(from_prior, _prior_sample(kind, prm_s, shape, rng), mode[:, 0, None] + c11 * z1)
            lp_mu = _prior_logpdf(kind, prm_s, mu)
            if active:
                c21 = (INFLATE**2 * cov[:, 0, 1])[:, None] / c11
                c22 = np.sqrt(np.maximum(INFLATE**2 * cov[:, 1, 1][:, None] - c21**2, 1e-300))
                delta = np.where(from_prior, dd[:, None] + tt[:, None] * rng.standard_normal(shape),
                                 mode[:, 1, None] + c21 * z1 + c22 * z2)
                lp = lp_mu + _norm_logpdf(delta, dd[:, None], tt[:, None])
                e1 = (mu - mode[:, 0, None]) / c11
                e2 = (delta - mode[:, 1, None] - c21 * e1) / c22
                lq_l = -0.5 * (e1**2 + e2**2) - np.log(c11) - np.log(c22) - np.log(2 * np.pi)
            else:
                delta = np.broadcast_to(dd[:, None], shape)
                lp = lp_mu
                lq_l = _norm_logpdf(mu, mode[:, 0, None], c11)
            lq = np.logaddexp(np.log(W_PRIOR) + lp, np.log1p(-W_PRIOR) + lq_l)
            ll = np.zeros(shape)
            for j in range(len(J)):
                eta = mu + t[j] * delta + off[sl, j, None]
                # y log(expit(eta)) + (n - y) log(expit(-eta)) = y eta - n softplus(eta): one
                # transcendental per element instead of two (equal to 1e-13)
                ll += y[j] * eta - nn[j] * np.logaddexp(0.0, eta)
            out[sl, col] = const + logsumexp(ll + lp - lq, axis=1) - np.log(inner)
    return studies, out


# --------------------------------------------------------------------------- joint model
def is_joint_fit(result) -> bool:
    """True for a :func:`~bayesln.hierarchy.joint.fit_joint` result (a joint design with
    per-(study, outcome, arm) rows and (study, outcome) baselines)."""
    d = getattr(result, "design", None)
    return (getattr(d, "family", None) == "joint" and isinstance(getattr(d, "rows", None), pd.DataFrame)
            and hasattr(d, "so") and hasattr(d, "outcomes"))


def _joint_baseline_prior(result):
    from bayesln.hierarchy.priors import Prior, Priors

    raw = (getattr(result, "config", None) or {}).get("priors", {}).get("baseline")
    p = Prior.model_validate(raw) if isinstance(raw, dict) else Priors().baseline
    if p.dist == "normal":
        return "normal", (float(p.params["mu"]), float(p.params["sigma"]))
    return "student_t", (float(p.params["nu"]), float(p.params["mu"]), float(p.params["sigma"]))


def _mvn_logpdf(x, mean, chol):
    """log N(x | mean, L L^T) for x (m, r, k), mean (m, 1, k), chol (m, k, k)."""
    k = x.shape[-1]
    diff = x - mean
    # solve L z = diff for every draw
    z = np.linalg.solve(chol[:, None, :, :], diff[..., None])[..., 0]
    logdet = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)[:, None]
    return -0.5 * (z**2).sum(-1) - logdet - 0.5 * k * np.log(2 * np.pi)


def joint_integrated_study_loglik(result, *, posterior=None, studies=None, inner: int = INNER, seed: int | None = None,
                                  chunk: int = 250) -> tuple[list[str], np.ndarray]:
    """log p(y_i | theta_s) of the joint efficacy-safety model (:mod:`bayesln.hierarchy.joint`)
    for every posterior draw s and study i, with the study's own parameters integrated
    out: its baselines mu_io (one per reported outcome; the fixed baseline prior for
    independent baselines, N(m_o, sigma_mu_o) for exchangeable ones) and its effects
    delta_iS ~ MVN(d_S, diag(tau_S) Omega_SS diag(tau_S)) on the outcomes S it reports
    with a treated and a control arm (an effect component that no arm informs is
    integrated out exactly by dropping it from the normal)::

        p(y_i | theta) = integral of prod_o prod_j Binomial(y_ijo | n_ijo, inv_logit(mu_io + t_ij delta_io))
                          x prod_o p(mu_io | theta) x MVN(delta_iS | d_S, Sigma_SS)

    Importance sampling as :func:`integrated_study_loglik`, with a defensive mixture
    proposal: with probability 0.1 everything from its prior (delta from the correlated
    normal), else the product over outcomes of the per-outcome Laplace approximations
    (inflated by 1.5; correlation ignored in the proposal only, so the estimate stays
    unbiased). The study's elements are the same as the fit's ``study_loglik`` (the sum
    over its rows, binomial coefficients included). Returns (study ids, (n_draws,
    n_studies))."""
    if not is_joint_fit(result):
        raise ValueError("joint_integrated_study_loglik needs a joint-model fit (bayesln.hierarchy.joint.fit_joint)")
    des = result.design
    post = result.idata.posterior if posterior is None else posterior
    K = len(des.outcomes)
    d_all = _flat(post, "d")  # (S, K)
    S = d_all.shape[0]
    tau_all = np.maximum(_flat(post, "tau"), 1e-8)  # (S, K)
    R = np.broadcast_to(np.eye(K), (S, K, K)).copy()
    if K > 1:
        rho = _flat(post, "rho")
        iu = np.triu_indices(K, 1)
        R[:, iu[0], iu[1]] = rho
        R[:, iu[1], iu[0]] = rho
    exch = des.baseline == "exchangeable"
    if exch:
        m_all, sig_all = _flat(post, "m"), _flat(post, "sigma_mu")
    else:
        kind, prm = _joint_baseline_prior(result)
    rows = des.rows
    studies = list(des.study_ids) if studies is None else list(studies)
    base_seed = int(result.seed if seed is None else seed)
    out = np.zeros((S, len(studies)))
    for col, s in enumerate(studies):
        sub = rows[(rows["study"] == s) & (rows["n"] > 0)]
        if sub.empty:
            continue
        outs = sorted(set(sub["outcome_index"].astype(int)))
        blocks = []  # per outcome: (o, y, n, t, active)
        for o in outs:
            r = sub[sub["outcome_index"] == o]
            t = r["treated"].to_numpy(float)
            blocks.append((o, r["events"].to_numpy(float), r["n"].to_numpy(float), t, bool((t == 1).any())))
        const = sum(_binom_const(y, n).sum() for _, y, n, _, _ in blocks)
        act = [b[0] for b in blocks if b[4]]  # outcomes whose effect enters the likelihood
        pos = {o: k for k, o in enumerate(act)}
        rng = np.random.default_rng(derive_seed(base_seed, "integrated-joint", s))
        for a in range(0, S, chunk):
            b = min(S, a + chunk)
            m = b - a
            sl = slice(a, b)
            shape = (m, inner)
            from_prior = rng.random(shape) < W_PRIOR
            # the correlated prior of the active effects, per draw
            if act:
                dS = d_all[sl][:, act]
                tS = tau_all[sl][:, act]
                cov = tS[:, :, None] * R[sl][:, act][:, :, act] * tS[:, None, :]
                chol = np.linalg.cholesky(cov + 1e-14 * np.eye(len(act)))
                e = rng.standard_normal((m, inner, len(act)))
                delta_prior = dS[:, None, :] + np.einsum("mkl,mrl->mrk", chol, e)
            lp_prior = np.zeros(shape)  # log p(mu) + log MVN(delta)
            lq_lap = np.zeros(shape)  # log of the product of the Laplace components
            ll = np.zeros(shape)
            delta = np.zeros((m, inner, len(act)))
            for o, y, n, t, active in blocks:
                if exch:
                    k0, p0 = "normal", (m_all[sl, o][:, None], sig_all[sl, o][:, None])
                    loc0, sc0 = m_all[sl, o], sig_all[sl, o]
                else:
                    k0, p0 = kind, prm
                    loc0 = np.full(m, prm[0] if kind == "normal" else prm[1])
                    sc0 = np.full(m, prm[1] if kind == "normal" else prm[2])
                dd = d_all[sl, o]
                tt = tau_all[sl, o] if active else None
                mode, cv = _laplace(y, n, t, np.zeros((m, len(y))), dd, tt, loc0, sc0)
                z1, z2 = rng.standard_normal(shape), rng.standard_normal(shape)
                c11 = INFLATE * np.sqrt(cv[:, 0, 0])[:, None]
                mu = np.where(from_prior, _prior_sample(k0, p0, shape, rng), mode[:, 0, None] + c11 * z1)
                lp_prior += _prior_logpdf(k0, p0, mu)
                if active:
                    c21 = (INFLATE**2 * cv[:, 0, 1])[:, None] / c11
                    c22 = np.sqrt(np.maximum(INFLATE**2 * cv[:, 1, 1][:, None] - c21**2, 1e-300))
                    dl = np.where(from_prior, delta_prior[:, :, pos[o]], mode[:, 1, None] + c21 * z1 + c22 * z2)
                    delta[:, :, pos[o]] = dl
                    e1 = (mu - mode[:, 0, None]) / c11
                    e2 = (dl - mode[:, 1, None] - c21 * e1) / c22
                    lq_lap += -0.5 * (e1**2 + e2**2) - np.log(c11) - np.log(c22) - np.log(2 * np.pi)
                else:
                    dl = np.zeros(shape)
                    lq_lap += _norm_logpdf(mu, mode[:, 0, None], c11)
                for j in range(len(y)):
                    eta = mu + t[j] * dl
                    ll += y[j] * log_expit(eta) + (n[j] - y[j]) * log_expit(-eta)
            if act:
                lp_prior += _mvn_logpdf(delta, dS[:, None, :], chol)
            lq = np.logaddexp(np.log(W_PRIOR) + lp_prior, np.log1p(-W_PRIOR) + lq_lap)
            out[sl, col] = const + logsumexp(ll + lp_prior - lq, axis=1) - np.log(inner)
    return studies, out


# --------------------------------------------------------------------------- export
def _export_values(result, joint: bool) -> np.ndarray:
    """(chain, draw, study) array of the integrated log-likelihood of the fit's own draws."""
    post = result.idata.posterior
    fn = joint_integrated_study_loglik if joint else integrated_study_loglik
    studies, L = fn(result, inner=INNER)
    return L.reshape(int(post.sizes["chain"]), int(post.sizes["draw"]), len(studies))


def integrated_loglik_dataarray(result):
    """``log_likelihood["study_integrated"]`` of a core or joint fit: a (chain, draw,
    study) DataArray of :func:`integrated_study_loglik` / :func:`joint_integrated_study_loglik`
    at ``inner`` = :data:`INNER` and the fit's seed, computed when first read."""
    import functools

    from bayesln import _arviz

    joint = is_joint_fit(result)
    if not (joint or is_core_fit(result)):
        raise ValueError("the integrated log-likelihood needs a core or joint fit")
    post = result.idata.posterior
    coords = {"chain": post["chain"].values, "draw": post["draw"].values,
              "study": [str(s) for s in result.design.study_ids]}
    attrs = {"description": "log-likelihood of each study with its own parameters integrated out "
                            "(bayesln.checks.marginal)", "method": METHOD, "inner": INNER, "seed": int(result.seed)}
    return _arviz.lazy_dataarray(("chain", "draw", "study"), coords, functools.partial(_export_values, result, joint),
                                 attrs)


def stored_integrated_loglik(result, *, inner: int = INNER, seed: int | None = None):
    """``(study ids, (n_draws, n_studies) array)`` of the fit's ``log_likelihood`` /
    ``study_integrated`` when it was made by this estimator with ``inner`` and ``seed``
    (default: the fit's) for the fit's studies; else None. Equal to what
    :func:`integrated_study_loglik` / :func:`joint_integrated_study_loglik` compute on
    the fit's own posterior with these settings (they are deterministic)."""
    idata = getattr(result, "idata", None)
    if idata is None or "log_likelihood" not in idata.groups():
        return None
    ll = idata.log_likelihood
    if "study_integrated" not in ll.data_vars:
        return None
    da = ll["study_integrated"]
    a = da.attrs
    want_seed = int(result.seed if seed is None else seed)
    if a.get("method") != METHOD or int(a.get("inner", -1)) != int(inner) or int(a.get("seed", -1)) != want_seed:
        return None
    studies = [str(s) for s in da["study"].values]
    if studies != [str(s) for s in result.design.study_ids]:
        return None
    vals = np.asarray(da.transpose("chain", "draw", "study").values, dtype=float)
    return studies, vals.reshape(-1, len(studies))
