"""The hand-written Numba kernel of the core model (bayesln.hierarchy.fastcore).

References, all independent of the kernel:
* the log density written out here with scipy.stats (each prior's logpdf, the log
  Jacobian of the log / interval transform, scipy.stats.binom.logpmf for the arms);
* PyMC's own log density and gradient of the same model (model.compile_logp /
  compile_dlogp of model_from_design), for the gradient to 1e-8 and the log density to
  1e-6 (PyTensor stores Python constants such as 2.5 as float32 when exact, so its
  log(2.5) is off by ~2e-8 per prior term; scipy agrees with the kernel to 1e-9);
* central finite differences of the scipy log density;
* posterior draws of the PyTensor-generated route (BAYESLN_FAST_KERNEL=0) of the same
  model and data (slow test).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

import bayesln
from bayesln.hierarchy import build_core_model, fastcore, fit_core
from bayesln.hierarchy.priors import Priors, resolve_tau_prior

OUTCOME = "total_response"

CASES = [
    ({}, {}),
    ({"common_effect": True}, {}),
    ({"parameterization": "centered"}, {}),
    ({}, {"tau": "half_cauchy(0.5)", "d": "student_t(3, 0.2, 2)", "baseline": "student_t(4, 0.5, 3)"}),
    ({}, {"tau": "uniform(0, 4)"}),
    ({}, {"tau": "exponential(2)"}),
    ({}, {"tau": "half_student_t(3, 1)"}),
    ({}, {"tau": "turner()"}),
    ({"baseline": "exchangeable"}, {"m": "normal(-0.3, 2)", "sigma_mu": "half_normal(1.5)"}),
    ({"baseline": "exchangeable", "baseline_parameterization": "noncentered"}, {"sigma_mu": "uniform(0.1, 5)"}),
    ({"baseline": "exchangeable", "effect_modifiers": ["regimen", "phase"], "baseline_covariates": ["phase"]},
     {"beta": "student_t(3, 0, 1)", "gamma": "normal(0.1, 0.7)"}),
    ({"effect_modifiers": ["regimen"], "parameterization": "centered"}, {"sigma_mu": "lognormal_tau2(-1, 1)"}),
    ({"baseline": "exchangeable", "common_effect": True, "baseline_parameterization": "noncentered"},
     {"sigma_mu": "lognormal_tau2(-1, 1.2)"}),
    # per-study (mixed) centring, as parameterization="auto" may choose: "alternate" = studies
    # 0, 2, 4, ... centred, the others non-centred (a list of flags, built in _setup)
    ({"parameterization": "alternate"}, {}),
    ({"parameterization": "alternate", "baseline": "exchangeable", "effect_modifiers": ["regimen"]},
     {"tau": "half_cauchy(0.5)"}),
    # per-study centring of exchangeable baselines (baseline_parameterization="auto" may choose it):
    # studies 1, 3, 5, ... centred
    ({"baseline": "exchangeable", "baseline_parameterization": "alternate"}, {}),
    ({"baseline": "exchangeable", "baseline_parameterization": "alternate", "parameterization": "alternate",
      "baseline_covariates": ["phase"]}, {"sigma_mu": "half_cauchy(1)"}),
    ({"baseline": "exchangeable", "baseline_parameterization": "alternate", "common_effect": True}, {}),
]


@pytest.fixture(scope="module")
def data():
    return bayesln.load_dataset("tacrolimus_ln").select(phases=["induction", "maintenance"], designs=["rct"])


def _setup(data, opts, prior_kw):
    opts = dict(opts)
    priors = Priors.model_validate(prior_kw)
    model_opts = {k: opts.pop(k) for k in ("common_effect", "parameterization", "baseline_parameterization") if k in opts}
    # a case that names no form means the fixed defaults of model_from_design, not "auto"
    model_opts.setdefault("parameterization", "noncentered")
    model_opts.setdefault("baseline_parameterization", "centered")
    if "alternate" in (model_opts.get("parameterization"), model_opts.get("baseline_parameterization")):
        n_studies = build_core_model(data, OUTCOME, priors=priors, **opts)[1].n_studies
        if model_opts.get("parameterization") == "alternate":
            model_opts["parameterization"] = [i % 2 == 0 for i in range(n_studies)]
        if model_opts.get("baseline_parameterization") == "alternate":
            model_opts["baseline_parameterization"] = [i % 2 == 1 for i in range(n_studies)]
    model, design = build_core_model(data, OUTCOME, priors=priors, **model_opts, **opts)
    tau = resolve_tau_prior(priors.tau, OUTCOME)
    kw = dict(common_effect=model_opts.get("common_effect", False),
              parameterization=model_opts.get("parameterization", "noncentered"),
              baseline_parameterization=model_opts.get("baseline_parameterization", "centered"))
    u, lay = fastcore._pack(design, priors, tau, **kw)
    return model, design, priors, tau, kw, u, lay


def _split(x, lay):
    out, c = {}, 0
    for name, shape in zip(lay.names, lay.shapes):
        if c >= lay.n_dim:
            break
        k = int(np.prod(shape))
        out[name] = x[c:c + k].reshape(shape)
        c += k
    return out


def _loc_logpdf(prior, v):
    p = prior.params
    if prior.dist == "normal":
        return stats.norm(p["mu"], p["sigma"]).logpdf(v)
    return stats.t(p["nu"], p["mu"], p["sigma"]).logpdf(v)


def _scale_from_unconstrained(prior, name, pt):
    """(value, log prior density of the value + log Jacobian) with scipy."""
    p = prior.params
    if prior.dist == "uniform":
        y = float(pt[f"{name}_interval__"])
        lo, hi = p["lower"], p["upper"]
        t = lo + (hi - lo) * expit(y)
        return t, stats.uniform(lo, hi - lo).logpdf(t) + np.log(hi - lo) + np.log(expit(y)) + np.log(expit(-y))
    y = float(pt[f"{name}_log__"])
    t = np.exp(y)
    if prior.dist == "half_normal":
        lp = stats.halfnorm(scale=p["scale"]).logpdf(t)
    elif prior.dist == "half_cauchy":
        lp = stats.halfcauchy(scale=p["scale"]).logpdf(t)
    elif prior.dist == "half_student_t":
        lp = np.log(2) + stats.t(p["nu"], 0, p["scale"]).logpdf(t)
    elif prior.dist == "exponential":
        lp = stats.expon(scale=1 / p["rate"]).logpdf(t)
    else:  # lognormal_tau2: log(tau^2) ~ N(mu, sigma)
        lp = stats.lognorm(s=p["sigma"] / 2, scale=np.exp(p["mu"] / 2)).logpdf(t)
    return t, lp + y


def _hierarchical(centered, pt, name, raw_name, loc, scale):
    """Values ~ N(loc, scale), sampled directly (centred) or as loc + scale * N(0, 1) raw
    values: (values, their log density)."""
    if centered:
        v = pt[name]
        return v, stats.norm(loc, scale).logpdf(v).sum()
    raw = pt[raw_name]
    return loc + scale * raw, stats.norm().logpdf(raw).sum()


def _per_study(flags, raw, loc, scale):
    """Values ~ N(loc, scale) with one sampled vector ``raw``: the value itself where a
    study is centred (flag True), (value - loc) / scale elsewhere: (values, log density)."""
    c = np.asarray(flags, dtype=bool)
    loc = np.broadcast_to(loc, raw.shape)
    values = np.where(c, raw, loc + scale * raw)
    return values, stats.norm(loc[c], scale).logpdf(raw[c]).sum() + stats.norm().logpdf(raw[~c]).sum()


def scipy_logp(x, design, priors, tau_prior, kw, lay):
    """The core model's log density at the unconstrained point x, from scipy.stats."""
    pt = _split(x, lay)
    S = design.n_studies
    lp = 0.0
    if design.baseline == "independent":
        mu = pt["mu"]
        lp += _loc_logpdf(priors.baseline, mu).sum()
    else:
        m = float(pt["m"])
        lp += _loc_logpdf(priors.m, m)
        sig, lps = _scale_from_unconstrained(priors.sigma_mu, "sigma_mu", pt)
        lp += lps
        loc = np.full(S, m)
        if design.baseline_names:
            g = pt["gamma"]
            lp += sum(_loc_logpdf(priors.gamma_for(c), g[j]) for j, c in enumerate(design.baseline_names))
            loc = loc + design.Z_baseline @ g
        bpar = kw["baseline_parameterization"]
        if isinstance(bpar, str):
            mu, lpm = _hierarchical(bpar == "centered", pt, "mu", "mu_raw", loc, sig)
        else:  # per study: mu_raw is mu where centred, (mu - loc) / sigma_mu elsewhere
            mu, lpm = _per_study(bpar, pt["mu_raw"], loc, sig)
        lp += lpm
    d = float(pt["d"])
    lp += _loc_logpdf(priors.d, d)
    if kw["common_effect"]:
        delta = np.full(S, d)
    else:
        tau, lpt = _scale_from_unconstrained(tau_prior, "tau", pt)
        lp += lpt
        par = kw["parameterization"]
        if isinstance(par, str):
            delta, lpd = _hierarchical(par == "centered", pt, "delta", "z", d, tau)
        else:  # per study: delta_raw is delta where centred, (delta - d) / tau elsewhere
            delta, lpd = _per_study(par, pt["delta_raw"], d, tau)
        lp += lpd
    eta = mu[design.arm_study] + design.treated * delta[design.arm_study]
    if design.effect_names:
        b = pt["beta"]
        lp += sum(_loc_logpdf(priors.beta_for(c), b[j]) for j, c in enumerate(design.effect_names))
        eta = eta + design.X_effect @ b
    lp += stats.binom(design.n.astype(int), expit(eta)).logpmf(design.events.astype(int)).sum()
    return lp, {"mu": mu, "delta": delta, "eta": eta}


@pytest.mark.parametrize("opts,prior_kw", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_log_density_and_gradient_match_scipy_and_pymc(data, opts, prior_kw):
    model, design, priors, tau, kw, u, lay = _setup(data, opts, prior_kw)
    rng = np.random.default_rng(7)
    f = model.compile_logp(mode="FAST_COMPILE")
    df = model.compile_dlogp(mode="FAST_COMPILE")
    vv = [v.name for v in model.value_vars]
    assert sorted(vv) == sorted(_split(np.zeros(lay.n_dim), lay)), "parameters named as PyMC's value variables"
    for _ in range(3):
        x = rng.normal(size=lay.n_dim) * 0.8
        lp, g = fastcore.logp_and_grad(x, u)
        ref, _ = scipy_logp(x, design, priors, tau, kw, lay)
        assert lp == pytest.approx(ref, abs=1e-9, rel=1e-12)
        pt = _split(x, lay)
        assert lp == pytest.approx(float(f(pt)), abs=1e-6)
        gp = df(pt)
        gmap, c = {}, 0
        for v in model.value_vars:
            k = int(np.prod(pt[v.name].shape))
            gmap[v.name] = gp[c:c + k]
            c += k
        g_pymc = np.concatenate([np.atleast_1d(gmap[n]) for n in _split(x, lay)])
        np.testing.assert_allclose(g, g_pymc, rtol=1e-9, atol=1e-8)
        # finite differences of the scipy density, a few coordinates
        for i in rng.choice(lay.n_dim, size=min(4, lay.n_dim), replace=False):
            h = 1e-5
            e = np.zeros(lay.n_dim)
            e[i] = h
            fd = (scipy_logp(x + e, design, priors, tau, kw, lay)[0] - scipy_logp(x - e, design, priors, tau, kw, lay)[0]) / (2 * h)
            assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-5)


def test_likelihood_is_exact_far_in_the_tails(data):
    # the kernel computes softplus(eta) = max(eta, 0) + log(1 + exp(-|eta|)) (log, not log1p:
    # 30% faster per gradient); reference: numpy's logaddexp(0, eta) and gammaln, written out
    # here, at linear predictors up to +-800 where exp(eta) overflows and 1 + exp(-|eta|) == 1
    from scipy.special import gammaln

    model, design, priors, tau, kw, u, lay = _setup(data, {"common_effect": True}, {})
    S = design.n_studies
    for eta0 in (-800.0, -40.0, -18.0, -1e-3, 0.0, 2.5, 18.0, 40.0, 800.0):
        x = np.zeros(lay.n_dim)
        pt = _split(x, lay)
        assert set(pt) == {"mu", "d"}
        x[:S] = eta0  # mu_s = eta0, d = 0: every arm has eta = eta0
        lp, g = fastcore.logp_and_grad(x, u)
        k, n = design.events, design.n
        eta = np.full(k.shape, eta0)
        loglik = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + k * eta - n * np.logaddexp(0.0, eta)
        prior = stats.norm(priors.baseline.params["mu"], priors.baseline.params["sigma"]).logpdf(np.full(S, eta0)).sum()
        prior += stats.norm(priors.d.params["mu"], priors.d.params["sigma"]).logpdf(0.0)
        ref = loglik.sum() + prior
        assert np.isfinite(lp)
        assert lp == pytest.approx(ref, rel=1e-12, abs=1e-9), eta0
        # gradient in the mu_s: sum over the study's arms of k - n * expit(eta), plus the prior's
        ge = k - n * expit(eta)
        gmu = np.bincount(design.arm_study, weights=ge, minlength=S)
        gmu += -(eta0 - priors.baseline.params["mu"]) / priors.baseline.params["sigma"] ** 2
        np.testing.assert_allclose(g[:S], gmu, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("opts,prior_kw", CASES[:3] + CASES[8:11] + CASES[15:18],
                         ids=["c0", "c1", "c2", "c8", "c9", "c10", "c15", "c16", "c17"])
def test_trace_values_are_the_models_derived_variables(data, opts, prior_kw):
    model, design, priors, tau, kw, u, lay = _setup(data, opts, prior_kw)
    x = np.random.default_rng(3).normal(size=lay.n_dim)
    out = fastcore.expand(x, u)
    _, ref = scipy_logp(x, design, priors, tau, kw, lay)
    got, c = {}, 0
    for name, shape in zip(lay.names, lay.shapes):
        k = int(np.prod(shape))
        got[name] = out[c:c + k]
        c += k
    np.testing.assert_allclose(out[: lay.n_dim], x)
    np.testing.assert_allclose(got["eta"], ref["eta"], rtol=1e-12)
    if "delta" in got and "delta" not in _split(x, lay):
        np.testing.assert_allclose(got["delta"], ref["delta"], rtol=1e-12)
    if "mu_raw" in _split(x, lay):  # non-centred or per-study baselines: mu is a derived variable
        np.testing.assert_allclose(got["mu"], ref["mu"], rtol=1e-12)
    # every trace variable is one of the PyMC model's variables, with its dims
    named = set(model.named_vars)
    for name in lay.names:
        assert name in named or name.endswith("__"), name


def test_with_data_repacks_counts_and_covariates(data):
    model, design, priors, tau, kw, u, lay = _setup(data, {"effect_modifiers": ["regimen"]}, {})
    compiled = fastcore.compile_fast_core(model, design, priors, tau, **kw)
    ev = design.events.copy()
    ev[0] = max(ev[0] - 1, 0)
    X = design.X_effect * 0.5
    new = compiled.with_data(events_data=ev, n_data=design.n, X_effect=X)
    u_ref, _ = fastcore._pack(design, priors, tau, events=ev, X=X, **kw)
    np.testing.assert_array_equal(new.user_data, u_ref)
    x = np.random.default_rng(0).normal(size=lay.n_dim)
    assert fastcore.logp_and_grad(x, new.user_data)[0] != fastcore.logp_and_grad(x, compiled.user_data)[0]
    with pytest.raises(ValueError, match="shape"):
        compiled.with_data(events_data=ev[:-1], n_data=design.n[:-1])
    with pytest.raises(KeyError):
        compiled.with_data(Z_baseline=np.zeros((design.n_studies, 1)))


def test_supports_falls_back_for_mixed_coefficient_families(data):
    model, design = build_core_model(data, OUTCOME, effect_modifiers=["regimen", "phase"])
    assert fastcore.supports(design, Priors())
    mixed = Priors(beta_overrides={design.effect_names[0]: "student_t(3, 0, 1)"})
    assert not fastcore.supports(design, mixed)


def _fit(data, seed, **kw):
    # one attempt (retry=False): these tests compare the kernel with PyTensor, not the retry
    return fit_core(data, OUTCOME, seed=seed, draws=600, tune=600, chains=2, prior_predictive=False, retry=False, **kw)


@pytest.mark.filterwarnings("ignore:.*diagnostics gate failed")
def test_fit_core_uses_the_kernel_and_records_it(data, monkeypatch):
    res = _fit(data, 1, effect_modifiers=["regimen"], priors={"beta_overrides": {}})
    assert res.config["sampler"]["log_density"].startswith("bayesln fastcore")
    assert set(res.idata.posterior.data_vars) >= {"d", "tau", "mu", "z", "delta", "eta", "beta"}
    assert res.idata.posterior["beta"].dims == ("chain", "draw", "covariate")
    assert res.idata.posterior["eta"].dims == ("chain", "draw", "arm")
    same = _fit(data, 1, effect_modifiers=["regimen"])
    np.testing.assert_array_equal(res.idata.posterior["d"].values, same.idata.posterior["d"].values)
    monkeypatch.setenv("BAYESLN_FAST_KERNEL", "0")
    off = _fit(data, 1, effect_modifiers=["regimen"])
    assert off.config["sampler"]["log_density"] == "PyTensor (Numba)"


@pytest.mark.slow
@pytest.mark.parametrize("kw", [{}, {"baseline": "exchangeable", "priors": {"tau": "half_cauchy(0.3)"}}], ids=["default", "exch"])
def test_posterior_matches_the_pytensor_route(data, monkeypatch, kw):
    """Same model and data, both routes: pooled d, tau and study baselines agree within
    4 Monte Carlo standard errors of their difference."""
    import arviz as az

    fast = fit_core(data, OUTCOME, seed=11, prior_predictive=False, **kw)
    monkeypatch.setenv("BAYESLN_FAST_KERNEL", "0")
    ref = fit_core(data, OUTCOME, seed=12, prior_predictive=False, **kw)
    assert fast.config["sampler"]["log_density"] != ref.config["sampler"]["log_density"]
    for v in ("d", "tau", "mu"):
        a, b = fast.idata.posterior[v], ref.idata.posterior[v]
        se = np.sqrt(az.mcse(a.to_dataset())[v].values ** 2 + az.mcse(b.to_dataset())[v].values ** 2)
        diff = np.abs(a.mean(("chain", "draw")).values - b.mean(("chain", "draw")).values)
        assert np.all(diff < 4 * se), (v, diff, se)


@pytest.mark.filterwarnings("ignore:.*diagnostics gate failed")
def test_a_kernel_that_cannot_load_falls_back_to_pytensor(data, monkeypatch):
    import sys

    import bayesln.hierarchy as hierarchy

    monkeypatch.delattr(hierarchy, "fastcore")
    monkeypatch.setitem(sys.modules, "bayesln.hierarchy.fastcore", None)  # import raises ImportError
    with pytest.warns(RuntimeWarning, match="kernel could not be loaded"):
        res = _fit(data, 2)
    assert res.config["sampler"]["log_density"] == "PyTensor (Numba)"
    assert res.idata.posterior["d"].shape == (2, 600)
