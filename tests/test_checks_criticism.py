"""Model criticism: posterior predictive checks, leave-one-study-out, prior sensitivity,
model comparison (bayesln.checks).

The contrived dataset: eight homogeneous trials (true OR 2, 100 patients per arm, counts
at their expectation) and one outlying trial with 10/100 vs 50/100 (observed OR 0.11).
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import integrate
from scipy.special import expit

from bayesln.checks import (
    StudyLoo,
    check_command,
    compare_models,
    integrated_study_loglik,
    mid_p,
    model_variants,
    plot_influence,
    plot_model_comparison,
    plot_ppc,
    plot_sensitivity,
    ppc_table,
    prior_sensitivity,
    study_loo,
)
from bayesln.checks.command import CheckInputError
from bayesln.hierarchy.design import build_design
from bayesln.hierarchy.priors import Priors

SAMPLER = dict(draws=500, tune=500, chains=2, progressbar=False)


def outlier_arms() -> pd.DataFrame:
    rows = []
    for i, pc in enumerate([0.3, 0.35, 0.4, 0.45, 0.3, 0.5, 0.4, 0.35]):
        pt = expit(np.log(pc / (1 - pc)) + np.log(2.0))
        rows += [dict(study=f"s{i}", arm="tac", treatment="tac", events=int(round(pt * 100)), n=100),
                 dict(study=f"s{i}", arm="ctl", treatment="ivcy", events=int(round(pc * 100)), n=100)]
    rows += [dict(study="outlier", arm="tac", treatment="tac", events=10, n=100),
             dict(study="outlier", arm="ctl", treatment="ivcy", events=50, n=100)]
    return pd.DataFrame(rows)


# =========================================================================== fast
def test_mid_p_against_hand_computation():
    # y_rep uniform on 0..10 (each value once): for y = 5, P(>5) = 5/11, P(=5) = 1/11,
    # p_hi = 5/11 + 0.5/11 = 0.5 -> two-sided 1; for y = 0: p_hi = 10/11 + 0.5/11,
    # two-sided 2 * (1 - p_hi) = 1/11.
    y_rep = np.arange(11)[:, None].repeat(3, axis=1)
    p, p_hi = mid_p(y_rep, np.array([5, 0, 10]))
    np.testing.assert_allclose(p_hi, [0.5, 10.5 / 11, 0.5 / 11])
    np.testing.assert_allclose(p, [1.0, 1 / 11, 1 / 11])


def test_mid_p_is_calibrated_for_a_discrete_predictive():
    # y ~ Binomial(20, 0.3) and y_rep from the same distribution: mid-p values are
    # (nearly) uniform, so P(p < 0.05) is close to 0.05 (not 0, as the plain p-value
    # P(y_rep >= y) of a discrete statistic would tend to be conservative).
    rng = np.random.default_rng(1)
    y_rep = rng.binomial(20, 0.3, size=(20000, 1))
    ys = rng.binomial(20, 0.3, size=4000)
    ps = np.array([mid_p(y_rep, np.array([y]))[0][0] for y in ys])
    assert 0.02 < np.mean(ps < 0.05) < 0.08
    assert abs(np.mean(ps) - 0.5) < 0.05


def _fake_result(arms: pd.DataFrame, draws: dict, common: bool = False, baseline: str = "independent"):
    des = build_design(arms, "total_response", baseline=baseline, warn=False)
    post = xr.Dataset({k: (("chain", "draw") + (("study",) if np.ndim(v) == 2 else ()), np.asarray(v)[None])
                       for k, v in draws.items()},
                      coords={"study": des.study_ids})
    return SimpleNamespace(design=des, idata=SimpleNamespace(posterior=post), seed=3,
                           config={"priors": Priors().to_json_dict(), "common_effect": common})


def _quadrature(y, n, t, d, tau, prior_sd=2.5, common=False):
    """log of the integral of prod_j Bin(y_j | n_j, expit(mu + t_j delta)) N(mu; 0, prior_sd)
    N(delta; d, tau) by scipy's adaptive quadrature (independent numerical reference;
    plain-math integrand for speed)."""
    y, n, t = [float(v) for v in y], [float(v) for v in n], [float(v) for v in t]
    const = sum(math.lgamma(nj + 1) - math.lgamma(yj + 1) - math.lgamma(nj - yj + 1) for yj, nj in zip(y, n))

    def npdf(x, m, s):
        return math.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))

    def lik(mu, delta):
        ll = const
        for yj, nj, tj in zip(y, n, t):
            eta = mu + tj * delta
            ll += -yj * math.log1p(math.exp(-eta)) - (nj - yj) * math.log1p(math.exp(eta))
        return math.exp(ll)

    if common:
        val, _ = integrate.quad(lambda mu: lik(mu, d) * npdf(mu, 0, prior_sd), -12, 12, points=[-d, 0],
                                limit=400, epsabs=0, epsrel=1e-10)
        return math.log(val)
    f = lambda delta, mu: lik(mu, delta) * npdf(mu, 0, prior_sd) * npdf(delta, d, tau)  # noqa: E731
    val, _ = integrate.dblquad(f, -8, 8, lambda mu: d - 8 * tau, lambda mu: d + 8 * tau, epsabs=0, epsrel=1e-6)
    return math.log(val)


def test_integrated_study_loglik_matches_quadrature():
    """The importance-sampling integral over (mu_i, delta_i) against scipy's dblquad
    (independent numerical reference), for three hyperparameter draws."""
    arms = pd.DataFrame([
        dict(study="a", arm="tac", treatment="tac", events=30, n=50),
        dict(study="a", arm="ctl", treatment="ivcy", events=18, n=50),
        dict(study="b", arm="tac", treatment="tac", events=3, n=12),
        dict(study="b", arm="ctl", treatment="ivcy", events=0, n=11),
    ])
    d = np.array([0.4, 0.9, -0.2])
    tau = np.array([0.3, 0.05, 1.2])
    fake = _fake_result(arms, {"d": d, "tau": tau, "mu": np.zeros((3, 2))})
    studies, L = integrated_study_loglik(fake, inner=4096, seed=11)
    assert studies == ["a", "b"]
    for s, (y, n) in enumerate([([30, 18], [50, 50]), ([3, 0], [12, 11])]):
        for k in range(3):
            ref = _quadrature(np.array(y), np.array(n), [1, 0], d[k], tau[k])
            # both include the binomial coefficient (as the fit's study_loglik does)
            assert L[k, s] == pytest.approx(ref, abs=0.03), (s, k)


def test_integrated_study_loglik_common_effect_matches_quadrature():
    arms = pd.DataFrame([
        dict(study="a", arm="tac", treatment="tac", events=10, n=100),
        dict(study="a", arm="ctl", treatment="ivcy", events=50, n=100),
    ])
    d = np.array([0.7, -1.0])
    fake = _fake_result(arms, {"d": d, "mu": np.zeros((2, 1))}, common=True)
    _, L = integrated_study_loglik(fake, inner=4096, seed=2)
    for k in range(2):
        assert L[k, 0] == pytest.approx(_quadrature(np.array([10, 50]), np.array([100, 100]), [1, 0], d[k], None,
                                                     common=True), abs=0.03)


def _loo(elpd: dict, kind="integrated") -> StudyLoo:
    pw = pd.DataFrame({"study": list(elpd), "elpd_loo": list(elpd.values()), "pareto_k": 0.1, "method": "psis",
                       "p_loo": 0.5})
    e = pw["elpd_loo"].to_numpy()
    return StudyLoo(pointwise=pw, elpd=float(e.sum()), se=float(np.sqrt(len(e) * np.var(e))), p_loo=0.5 * len(e),
                    lppd=float(e.sum()) + 0.5 * len(e), k_threshold=0.7, kind=kind)


def test_compare_models_differences_and_se_by_hand():
    a = _loo({"s1": -5.0, "s2": -6.0, "s3": -4.0})
    b = _loo({"s1": -5.5, "s2": -6.0, "s3": -6.5})
    out = compare_models({"A": a, "B": b})
    assert list(out["model"]) == ["A", "B"]
    diff = np.array([-0.5, 0.0, -2.5])  # B - A per study
    # Vehtari, Gelman & Gabry (2017) eq. 24: se_diff = sqrt(n * var(diff)) (population var)
    assert out.loc[1, "elpd_diff"] == pytest.approx(diff.sum())
    assert out.loc[1, "se_diff"] == pytest.approx(np.sqrt(3 * np.var(diff)))
    assert out.loc[0, "elpd_diff"] == 0 and out.loc[0, "se_diff"] == 0
    # separate models (a list) are added study by study
    c1 = _loo({"s1": -2.0, "s2": -3.0, "s3": -2.0})
    c2 = _loo({"s1": -3.0, "s2": -3.5, "s3": -2.5})
    out2 = compare_models({"joint": a, "separate": [c1, c2]})
    assert out2.set_index("model").loc["separate", "elpd_loo"] == pytest.approx(-16.0)


def test_compare_models_refuses_different_studies():
    with pytest.raises(ValueError, match="different studies"):
        compare_models({"A": _loo({"s1": -1.0, "s2": -2.0}), "B": _loo({"s1": -1.0, "s3": -2.0})})
    with pytest.raises(ValueError, match="at least two"):
        compare_models({"A": _loo({"s1": -1.0})})


def test_check_command_input_errors(tmp_path):
    with pytest.raises(CheckInputError):
        check_command(str(tmp_path), fmt="yaml")
    with pytest.raises(ValueError):
        check_command(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="not a bayesln run folder"):
        check_command(str(tmp_path))


# =========================================================================== slow
@pytest.fixture(scope="module")
def outlier_fit():
    from bayesln.hierarchy import fit_core

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fit_core(outlier_arms(), "total_response", seed=20261122, prior_predictive=False, **SAMPLER)


@pytest.fixture(scope="module")
def outlier_loo(outlier_fit):
    return study_loo(outlier_fit, draws=500, tune=500, chains=2)


@pytest.mark.slow
def test_ppc_flags_the_outlying_trial(outlier_fit):
    tab = ppc_table(outlier_fit)
    assert len(tab) == 18 and set(tab.columns) >= {"p_posterior", "p_mixed", "flag", "reason"}
    flagged = set(tab.loc[tab["flag"], "arm_id"])
    # the outlier's TAC arm (10/100 where the other trials predict about 55/100) and nothing else
    assert flagged == {"outlier:tac"}
    r = tab.set_index("arm_id").loc["outlier:tac"]
    assert r["p_mixed"] < 0.05 and "fewer events" in r["reason"]
    # the posterior predictive (own delta_i) is conservative and does not flag it
    assert r["p_posterior"] > 0.05
    assert (tab.loc[tab["study"] != "outlier", "p_mixed"] > 0.2).all()
    fig = plot_ppc(outlier_fit, table=tab)
    assert isinstance(fig, matplotlib.figure.Figure)


@pytest.mark.slow
def test_pareto_k_flags_the_outlying_trial_and_refits_it(outlier_loo):
    pw = outlier_loo.pointwise.set_index("study")
    # integrated PSIS: only the outlier exceeds 0.7 ...
    assert pw.loc["outlier", "pareto_k"] > 0.7
    assert (pw.drop(index="outlier")["pareto_k"] < 0.5).all()
    assert list(pw.index[pw["flag"]]) == ["outlier"]
    # ... so it (and only it) was refitted, and its exact elpd replaces the PSIS value
    assert pw.loc["outlier", "method"] == "exact" and np.isfinite(pw.loc["outlier", "elpd_exact"])
    assert pw.loc["outlier", "elpd_loo"] == pw.loc["outlier", "elpd_exact"]
    assert set(outlier_loo.refits) == {"outlier"}
    # the outlier is badly predicted by the others: its elpd is far below the rest
    assert pw.loc["outlier", "elpd_loo"] < pw.drop(index="outlier")["elpd_loo"].min() - 5
    assert outlier_loo.elpd == pytest.approx(pw["elpd_loo"].sum())


@pytest.mark.slow
def test_exact_refit_agrees_with_psis_where_k_is_low(outlier_fit):
    """Self-consistency: for a well-behaved study the PSIS estimate of elpd_i and the
    exact refit (the study's counts set to 0, its log predictive density averaged over the
    refit's draws) estimate the same quantity."""
    lo = study_loo(outlier_fit, refit="all", draws=500, tune=500, chains=2)
    pw = lo.pointwise.set_index("study")
    ok = pw.drop(index="outlier")
    np.testing.assert_allclose(ok["elpd_exact"], ok["elpd_psis"], atol=0.15)
    # the held-out refit leaves the outlier's own parameters at their prior
    post = lo.refits["outlier"].idata.posterior
    assert float(post["mu"].sel(study="outlier").std()) == pytest.approx(2.5, rel=0.15)


@pytest.mark.slow
def test_influence_of_the_outlier(outlier_fit, outlier_loo):
    from bayesln.checks import influence_table

    inf = influence_table(outlier_fit, loo=outlier_loo, draws=500, tune=500, chains=2)
    assert inf["study"].iloc[0] == "(none)" and len(inf) == 10
    r = inf.set_index("study").loc["outlier"]
    # without the outlier the pooled log OR rises towards log 2 and tau collapses (as REML)
    assert r["d_change"] > 0.2 and r["reml_change"] > 0.2
    assert r["tau_change"] < -0.4 and r["reml_tau2_change"] < 0
    assert r["flag"]
    assert not inf.set_index("study").drop(index=["(none)", "outlier"])["d_change"].abs().gt(0.15).any()
    assert isinstance(plot_influence(inf), matplotlib.figure.Figure)


@pytest.mark.slow
def test_model_comparison_random_vs_common(outlier_fit, outlier_loo):
    variants = model_variants(outlier_fit, draws=500, tune=500, chains=2)
    assert list(variants) == ["random effects (fitted)", "common effect"]
    variants["random effects (fitted)"] = outlier_loo
    out = compare_models(variants, draws=500, tune=500, chains=2)
    # with a clear outlier the random-effects model predicts the studies better
    assert out.loc[0, "model"] == "random effects (fitted)"
    assert out.loc[1, "elpd_diff"] < 0 and out.loc[1, "se_diff"] > 0
    assert isinstance(plot_model_comparison(out), matplotlib.figure.Figure)


@pytest.mark.slow
def test_prior_sensitivity_flags_a_changed_conclusion():
    """Three large trials with a clear benefit: the reference interval excludes 1 and
    P(OR > 1) > 0.95. A prior that pins d at 0 (normal(0, 0.02)) must flag the change; a
    prior equal to the fitted one must reuse the fit."""
    from bayesln.hierarchy import fit_core

    rows = []
    for i, (t, c) in enumerate([(120, 80), (110, 75), (130, 90)]):
        rows += [dict(study=f"t{i}", arm="tac", treatment="tac", events=t, n=200),
                 dict(study=f"t{i}", arm="ctl", treatment="ivcy", events=c, n=200)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fit = fit_core(pd.DataFrame(rows), "total_response", seed=5, prior_predictive=False, **SAMPLER)
        tab = prior_sensitivity(fit, tau_priors=["half_normal(0.5)"], d_priors=["normal(0, 0.02)"])
    ref = tab.iloc[0]
    assert ref["changed"] == "reference" and ref["excludes_1"] and ref["p_or_gt_1"] > 0.95
    same = tab.iloc[1]
    assert same["or_median"] == ref["or_median"] and "no refit" in same["reason"] and not same["flag"]
    pinned = tab.iloc[2]
    assert pinned["changed"] == "d" and pinned["flag"]
    assert "crosses 0.95" in pinned["reason"] and "no longer excludes 1" in pinned["reason"]
    assert isinstance(plot_sensitivity(tab), matplotlib.figure.Figure)


@pytest.mark.slow
def test_model_comparison_covariates_and_joint_vs_separate():
    """With vs without covariates (model_variants of a regimen meta-regression) and the
    joint efficacy-safety model vs separate core fits (per-study elpds of the separate
    fits added), on the bundled induction RCTs. Scored on the same studies; the joint
    model has its own integrated estimator (study baselines and correlated effects
    integrated out), so that comparison is scored by the integrated PSIS-LOO too."""
    import bayesln
    from bayesln.hierarchy import fit_core
    from bayesln.hierarchy.joint import fit_joint

    td = bayesln.load_dataset("tacrolimus_ln").select(phases="induction", designs="rct")
    kw = dict(draws=300, tune=300, chains=2, progressbar=False, prior_predictive=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reg = fit_core(td, "total_response", effect_modifiers=("regimen",), seed=1, **kw)
        variants = model_variants(reg, draws=300, tune=300, chains=2)
        assert list(variants) == ["random effects + regimen:triple (fitted)", "common effect + regimen:triple",
                                  "random effects (no covariates)"]
        assert variants["random effects (no covariates)"].design.effect_names == []
        out = compare_models(variants, draws=300, tune=300, chains=2)
        assert set(out["kind"]) == {"integrated"} and (out["n_studies"] == 6).all()
        assert out.loc[0, "elpd_diff"] == 0 and (out["elpd_diff"] <= 0).all()

        joint = fit_joint(td, ("total_response", "severe_infection"), seed=2, **kw)
        sep = [fit_core(td, "total_response", seed=3, **kw), fit_core(td, "severe_infection", seed=4, **kw)]
        jt = compare_models({"joint": joint, "separate": sep})
    assert set(jt["kind"]) == {"integrated"} and (jt["n_studies"] == 7).all()  # mok2016 reports severe infection only
    assert np.isfinite(jt["elpd_loo"]).all() and np.isfinite(jt["se_diff"]).all()
