"""Prior configuration and the PyMC model's structure and log density. No MCMC here."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import stats
from scipy.special import expit

from bayesln.hierarchy import Prior, Priors, build_core_model
from bayesln.hierarchy import priors as P

ROOT = Path(__file__).resolve().parents[1]

DATA = pd.DataFrame(
    {
        "study": ["s1", "s1", "s2", "s2", "s3", "s3", "s3"],
        "arm": ["tac", "ivcy", "tac", "ivcy", "tac", "mmf", "ivcy"],
        "treatment": ["tac", "ivcy", "tac", "ivcy", "tac", "mmf", "ivcy"],
        "regimen": ["triple", "control", "duo", "control", "duo", "control", "control"],
        "events": [151, 114, 0, 3, 17, 18, 15],
        "n": [181, 181, 25, 25, 27, 27, 28],
        "mean_age": [30.0, 30.0, 25.0, 25.0, 35.0, 35.0, 35.0],
    }
)


# ----------------------------------------------------------------------------- config
def test_defaults_equal_brms_reference():
    """The defaults must equal the brms reference priors pinned in
    validation/brms/reference_core.R (prior(normal(0, 2.5), class = b) on the study
    intercepts and treat; prior(normal(0, 0.5), class = sd), half-normal in brms)."""
    pr = Priors()
    script = (ROOT / "validation" / "brms" / "reference_core.R").read_text()
    b = re.search(r'"prior\(normal\(([-\d.]+), ([\d.]+)\), class = b\)"', script)
    sd = re.search(r'"prior\(normal\(([-\d.]+), ([\d.]+)\), class = sd\)"', script)
    assert b and sd
    for p in (pr.baseline, pr.d):
        assert p.dist == "normal" and p.params == {"mu": float(b.group(1)), "sigma": float(b.group(2))}
    assert pr.tau.dist == "half_normal" and pr.tau.params == {"scale": float(sd.group(2))}
    assert pr.m == P.normal(0, 2.5) and pr.sigma_mu == P.half_normal(1) and pr.beta == P.normal(0, 1)


def test_parse_and_str_roundtrip():
    assert Prior.parse("half_normal(0.5)") == P.half_normal(0.5)
    assert Prior.parse("normal(mu=0, sigma=2.5)") == P.normal(0, 2.5)
    assert Prior.parse("half_student_t(3, 0.5)") == P.half_student_t(3, 0.5)
    assert Prior.parse("turner(comparison_type='pharma_vs_placebo')").params["comparison_type"] == "pharma_vs_placebo"
    for p in (P.uniform(0, 2), P.lognormal_tau2(-2.29, 1.58), P.exponential(2.0), P.half_cauchy(0.5)):
        assert Prior.parse(str(p)) == p
    assert Prior.parse({"dist": "half_normal", "params": {"scale": 1}}) == P.half_normal(1)


@pytest.mark.parametrize(
    "text, msg",
    [
        ("half_normal()", "missing parameter"),
        ("half_normal(-1)", "must be > 0"),
        ("gamma(2, 1)", "unknown prior distribution"),
        ("uniform(2, 1)", "lower .* must be < upper"),
        ("normal(0, 1, 2)", "at most 2 positional"),
        ("normal(0, sd=1)", "unknown parameter"),
        ("half normal 0.5", "cannot read prior"),
    ],
)
def test_parse_errors(text, msg):
    with pytest.raises(ValueError, match=msg):
        Prior.parse(text)


def test_priors_validation_and_overrides():
    pr = Priors(tau="half_cauchy(0.3)", d={"dist": "student_t", "params": {"nu": 3, "mu": 0, "sigma": 1}},
                beta_overrides={"mean_age": "normal(0, 0.5)"})
    assert pr.tau == P.half_cauchy(0.3) and pr.d.dist == "student_t"
    assert pr.beta_for("mean_age") == P.normal(0, 0.5) and pr.beta_for("other") == P.normal(0, 1)
    with pytest.raises(ValueError, match="prior for tau must be one of"):
        Priors(tau="normal(0, 1)")
    with pytest.raises(ValueError, match="prior for d must be one of"):
        Priors(d="half_normal(1)")
    with pytest.raises(ValueError, match="needs lower >= 0"):
        Priors(tau="uniform(-1, 2)")
    assert Priors.model_validate(pr.to_json_dict()) == pr
    v = Priors.vague()
    assert v.d == P.normal(0, 100) and v.baseline == P.normal(0, 100)


def test_turner_prior_resolves():
    # Turner et al. (2015) Table IV, "signs/symptoms reflecting continuation/end of
    # condition", pharmacological vs pharmacological: log(tau^2) ~ N(-2.29, 1.58^2)
    # (the value quoted in bayesln.hierarchy.turner's docstring and in bayesmeta).
    r = P.resolve_tau_prior(P.turner(), "total_response")
    assert r.dist == "lognormal_tau2" and r.params["mu"] == pytest.approx(-2.29) and r.params["sigma"] == pytest.approx(1.58)
    r = P.resolve_tau_prior(P.turner("signs_symptoms", "pharma_vs_pharma"), None)
    assert r.params["mu"] == pytest.approx(-2.29)
    with pytest.raises(ValueError, match="no default Turner outcome type"):
        P.resolve_tau_prior(P.turner(), "my_outcome")


# ----------------------------------------------------------------------------- model
def logp_at(model, rv_name, value):
    rv = model[rv_name]
    return float(pm.logp(rv, value).eval())


@pytest.mark.parametrize(
    "prior, ref",
    [
        (P.half_normal(0.5), lambda t: stats.halfnorm(scale=0.5).logpdf(t)),
        (P.half_cauchy(0.5), lambda t: stats.halfcauchy(scale=0.5).logpdf(t)),
        (P.half_student_t(3, 0.5), lambda t: np.log(2) + stats.t(3, scale=0.5).logpdf(t)),
        (P.uniform(0, 2), lambda t: stats.uniform(0, 2).logpdf(t)),
        (P.exponential(2.0), lambda t: stats.expon(scale=0.5).logpdf(t)),
        # log(tau^2) ~ N(mu, sigma): density of tau by change of variables, d log(tau^2)/d tau = 2/tau
        (P.lognormal_tau2(-2.29, 1.58), lambda t: stats.norm(-2.29, 1.58).logpdf(np.log(t**2)) + np.log(2 / t)),
    ],
)
def test_tau_prior_densities(prior, ref):
    model, _ = build_core_model(DATA, "total_response", priors=Priors(tau=prior))
    for t in (0.05, 0.3, 1.2):
        assert logp_at(model, "tau", t) == pytest.approx(ref(t), rel=1e-6, abs=1e-9)


def test_model_variables_and_dims():
    m, d = build_core_model(DATA, "total_response")
    names = {v.name for v in m.free_RVs}
    assert names == {"mu", "d", "tau", "z"}
    assert {v.name for v in m.deterministics} == {"delta", "eta"}
    assert m.named_vars_to_dims["mu"] == ("study",) and m.named_vars_to_dims["eta"] == ("arm",)
    assert list(m.coords["arm"]) == d.arm_ids
    m, _ = build_core_model(DATA, "total_response", parameterization="centered")
    assert {v.name for v in m.free_RVs} == {"mu", "d", "tau", "delta"}
    m, _ = build_core_model(DATA, "total_response", common_effect=True)
    assert {v.name for v in m.free_RVs} == {"mu", "d"}
    m, d = build_core_model(DATA, "total_response", baseline="exchangeable", baseline_covariates=["mean_age"],
                            effect_modifiers=["mean_age"], baseline_parameterization="centered")
    assert {v.name for v in m.free_RVs} == {"m", "sigma_mu", "mu", "gamma", "d", "tau", "z", "beta"}
    assert list(m.coords["covariate"]) == ["mean_age"] and list(m.coords["baseline_covariate"]) == ["mean_age"]
    m, _ = build_core_model(DATA, "total_response", baseline="exchangeable", baseline_parameterization="noncentered")
    assert "mu_raw" in {v.name for v in m.free_RVs}
    with pytest.raises(ValueError, match="beta_overrides name covariate"):
        build_core_model(DATA, "total_response", priors=Priors(beta_overrides={"age": "normal(0,1)"}))
    with pytest.raises(ValueError, match="parameterization must be"):
        build_core_model(DATA, "total_response", parameterization="funnel")


def test_model_log_density_matches_scipy():
    """The joint log density at a point equals a hand-written scipy version of the model
    (independent check of the likelihood, the arm-to-study mapping and the priors)."""
    m, d = build_core_model(DATA, "total_response", effect_modifiers=["mean_age"])
    rng = np.random.default_rng(3)
    pt = {"mu": rng.normal(size=3), "d": 0.7, "tau_log__": np.log(0.4), "z": rng.normal(size=3), "beta": np.array([0.2])}
    logp = m.compile_logp(jacobian=False)(pt)
    tau = 0.4
    delta = pt["d"] + tau * pt["z"]
    age = np.array([30.0, 25.0, 35.0])
    xa = (age - age.mean()) / 10.0  # centred, per 10 years (the natural unit of mean_age)
    study = np.array([0, 0, 1, 1, 2, 2, 2])
    treated = np.array([1, 0, 1, 0, 1, 0, 0])
    eta = pt["mu"][study] + treated * (delta[study] + 0.2 * xa[study])
    ref = stats.binom.logpmf(DATA["events"], DATA["n"], expit(eta)).sum()
    ref += stats.norm(0, 2.5).logpdf(pt["mu"]).sum() + stats.norm(0, 2.5).logpdf(0.7)
    ref += stats.halfnorm(scale=0.5).logpdf(tau) + stats.norm().logpdf(pt["z"]).sum() + stats.norm(0, 1).logpdf(0.2)
    assert logp == pytest.approx(ref, rel=1e-7)


def test_prior_predictive_tau_quantiles():
    m, _ = build_core_model(DATA, "total_response")
    with m:
        pp = pm.sample_prior_predictive(draws=4000, random_seed=1)
    tau = pp.prior["tau"].values.ravel()
    # median of HalfNormal(0.5) = 0.5 * Phi^-1(0.75) = 0.3372
    assert np.median(tau) == pytest.approx(0.5 * stats.norm.ppf(0.75), abs=0.02)
    assert pp.prior_predictive["events"].shape[-1] == len(DATA)


# ----------------------------------------------------------------------------- sampling options
def test_backend_resolution_and_progressbar(monkeypatch):
    from bayesln.hierarchy import sampling

    assert sampling.resolve_backend("auto") in ("nutpie", "pymc")
    assert sampling.resolve_backend("pymc") == "pymc"
    with pytest.raises(ValueError, match="backend must be one of"):
        sampling.resolve_backend("stan")
    monkeypatch.setattr(sampling, "_has", lambda mod: mod not in ("jax", "numpyro"))
    with pytest.raises(ImportError, match="needs jax and numpyro"):
        sampling.resolve_backend("numpyro")
    monkeypatch.setattr(sampling, "_has", lambda mod: False)
    assert sampling.resolve_backend("auto") == "pymc"
    monkeypatch.setattr(sampling.sys, "stderr", type("S", (), {"isatty": lambda self: False})())
    assert sampling.default_progressbar(None) is False
    monkeypatch.setattr(sampling.sys, "stderr", type("S", (), {"isatty": lambda self: True})())
    assert sampling.default_progressbar(None) is True
    assert sampling.default_progressbar(False) is False
    with pytest.raises(TypeError, match="seed must be an integer"):
        sampling.check_seed(1.5)
    with pytest.raises(ValueError, match="target_accept"):
        sampling.SamplerSettings(target_accept=1.2)
