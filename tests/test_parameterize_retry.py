"""The data-driven parameterisation of the study effects and the automatic retry (issue 21).

References: the Woolf variance of a log odds ratio written out by hand (1/a + 1/b + 1/c +
1/d, 0.5 added to every cell of a study with a zero cell, as metafor's escalc(measure="OR")
with its default add=1/2, to="only0"); the Q-profile interval of tau^2 from
bayesln.frequentist.models.tau2_qprofile_ci (pinned to metafor's confint() in
tests/test_frequentist_metafor.py); the retry rules of bayesln.hierarchy.retry exercised with
a stand-in sampler whose gate verdicts are scripted, so every branch is reached without MCMC;
and two small real fits (the chains the retry adds, the gate it applies to them).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesln.hierarchy import fit_core
from bayesln.hierarchy.design import build_design
from bayesln.hierarchy.diagnostics import Diagnostics, GateThresholds
from bayesln.hierarchy.model import model_from_design
from bayesln.hierarchy.parameterize import (
    baseline_log_odds_variance,
    choose,
    choose_baseline,
    reference_tau,
    resolve,
    resolve_baseline,
    study_log_or_variance,
)
from bayesln.hierarchy.retry import MAX_EXTRA_BATCHES, derive_seed, higher_target_accept, sample_gated
from bayesln.hierarchy.sampling import SamplerSettings


def _df(rows) -> pd.DataFrame:
    out = []
    for i, (a, n1, c, n2) in enumerate(rows):
        out.append({"study": f"s{i}", "arm": f"s{i}t", "treatment": "tac", "outcome": "event", "events": a, "n": n1})
        out.append({"study": f"s{i}", "arm": f"s{i}c", "treatment": "control", "outcome": "event", "events": c,
                    "n": n2})
    return pd.DataFrame(out)


def _design(rows):
    return build_design(_df(rows), "event", direction="benefit", warn=False)


# ---------------------------------------------------------------------------- the rule
def test_study_variance_is_woolfs_with_half_added_to_zero_cells():
    des = _design([(10, 40, 5, 42), (0, 30, 4, 31)])
    y, v = study_log_or_variance(des)
    assert v[0] == pytest.approx(1 / 10 + 1 / 30 + 1 / 5 + 1 / 37, rel=1e-12)
    assert y[0] == pytest.approx(math.log((10 / 30) / (5 / 37)), rel=1e-12)
    # a zero cell: 0.5 added to all four cells of that study only
    assert v[1] == pytest.approx(1 / 0.5 + 1 / 30.5 + 1 / 4.5 + 1 / 27.5, rel=1e-12)


def test_no_heterogeneity_means_every_study_non_centred():
    # identical large trials: Q(0) is below the lower chi-square quantile -> tau_lo = 0
    des = _design([(300, 1000, 200, 1000)] * 8)
    flags, record = choose(des)
    assert not any(flags) and record["tau_ref"] == 0.0
    form, rec = resolve(des, "auto")
    assert form == "noncentered" and rec["form"] == "noncentered"


def test_precise_studies_are_centred_when_heterogeneity_is_clear():
    from bayesln.frequentist.models import tau2_qprofile_ci

    # large trials with log ORs far apart, and two small ones
    rows = [(500, 1000, 200, 1000), (200, 1000, 500, 1000), (450, 1000, 300, 1000), (250, 1000, 350, 1000),
            (6, 12, 5, 12), (3, 10, 4, 10)]
    des = _design(rows)
    y, v = study_log_or_variance(des)
    w = 1 / v
    q = (w * (y - (w * y).sum() / w.sum()) ** 2).sum()
    tau2_dl = max(0.0, (q - (len(y) - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    lo = tau2_qprofile_ci(y, v, tau2_dl)[0]
    assert reference_tau(y, v) == pytest.approx(math.sqrt(lo), rel=1e-12)
    flags, record = choose(des)
    assert flags == tuple(bool(x) for x in v < lo)
    assert flags[:4] == (True,) * 4 and flags[4:] == (False, False)
    form, _ = resolve(des, "auto")
    assert form == flags  # mixed: the flags themselves
    model = model_from_design(des, parameterization=form)
    assert "delta_raw" in model.named_vars and "centered_study" in model.named_vars
    np.testing.assert_array_equal(model["centered_study"].get_value(), np.asarray(flags, float))


def test_single_arm_studies_and_common_effect_are_non_centred():
    df = _df([(500, 1000, 200, 1000), (200, 1000, 500, 1000), (450, 1000, 300, 1000)])
    df = pd.concat([df, pd.DataFrame([{"study": "single", "arm": "single_t", "treatment": "tac", "outcome": "event",
                                       "events": 30, "n": 60}])], ignore_index=True)
    des = build_design(df, "event", direction="benefit", baseline="exchangeable", warn=False)
    y, v = study_log_or_variance(des)
    i = des.study_ids.index("single")
    assert np.isnan(v[i])
    flags, _ = choose(des)
    assert flags[i] is False
    assert resolve(des, "auto", common_effect=True) == ("noncentered", None)
    assert resolve(des, "centered") == ("centered", None)


def test_auto_on_the_bundled_main_analysis_is_the_shipped_noncentred_model():
    # heterogeneity among the six induction RCTs is not significant (tau_lo = 0), so "auto"
    # is the non-centred model the shipped specs were measured with (same variables)
    import bayesln

    data = bayesln.load_dataset("tacrolimus_ln").select(phases=["induction"], designs=["rct"])
    des = build_design(data, "total_response")
    form, rec = resolve(des, "auto")
    assert form == "noncentered" and rec["tau_ref"] == 0.0


def test_flags_of_the_wrong_length_are_refused():
    des = _design([(10, 40, 5, 42), (3, 30, 4, 31)])
    with pytest.raises(ValueError, match="one flag"):
        model_from_design(des, parameterization=[True])
    with pytest.raises(ValueError, match="auto"):
        model_from_design(des, parameterization="sideways")


# ---------------------------------------------------------------------------- baselines
def _exch(rows, **kw):
    return build_design(_df(rows), "event", direction="benefit", baseline="exchangeable", warn=False, **kw)


def test_baseline_variance_is_the_control_log_odds_variance():
    des = _exch([(10, 40, 5, 42), (3, 30, 0, 31)])
    y, v = baseline_log_odds_variance(des)
    assert y[0] == pytest.approx(math.log(5 / 37), rel=1e-12)
    assert v[0] == pytest.approx(1 / 5 + 1 / 37, rel=1e-12)
    # zero events in the control arm: 0.5 added to both of its cells
    assert v[1] == pytest.approx(1 / 0.5 + 1 / 31.5, rel=1e-12)


def test_baselines_centred_where_control_arms_are_precise_and_baselines_spread():
    from bayesln.frequentist.models import tau2_dl, tau2_qprofile_ci

    # control risks 10%-70% in large trials (clear spread of baselines), two tiny trials
    rows = [(120, 1000, 100, 1000), (400, 1000, 300, 1000), (600, 1000, 500, 1000), (800, 1000, 700, 1000),
            (2, 6, 1, 5), (1, 4, 2, 4)]
    des = _exch(rows)
    y, v = baseline_log_odds_variance(des)
    lo = tau2_qprofile_ci(y, v, tau2_dl(y, v))[0]
    flags, record = choose_baseline(des)
    assert record["sigma_ref"] == pytest.approx(math.sqrt(lo), rel=1e-12)
    assert flags == tuple(bool(x) for x in v < lo) == (True,) * 4 + (False, False)
    form, rec = resolve_baseline(des, "auto")
    assert form == flags and rec["form"] == "mixed"
    model = model_from_design(des, baseline_parameterization=form)
    assert "mu_raw" in model.named_vars and "centered_baseline" in model.named_vars
    # identical control arms: no spread of baselines -> every baseline non-centred
    same = _exch([(300, 1000, 200, 1000)] * 6)
    assert resolve_baseline(same, "auto")[0] == "noncentered"
    # independent baselines: nothing to parameterise
    assert resolve_baseline(_design(rows), "auto") == ("centered", None)


def test_baseline_reference_with_covariates_is_the_residual_q_profile_limit():
    # closed form of metafor's Q_E with moderators: Q_E(t) = y' P y, P = W - W X (X' W X)^-1 X' W,
    # W = diag(1 / (v + t)); the lower limit solves Q_E(t) = chi2_{0.975}(k - p)
    from scipy import stats

    rng = np.random.default_rng(4)
    k = 12
    x = np.linspace(-1, 1, k)
    v = rng.uniform(0.01, 0.05, k)
    y = -0.5 + 1.5 * x + rng.normal(0, 0.4, k)
    lo = reference_tau(y, v, X=x[:, None])

    def qe(t):
        W = np.diag(1 / (v + t))
        X = np.column_stack([np.ones(k), x])
        P = W - W @ X @ np.linalg.inv(X.T @ W @ X) @ X.T @ W
        return y @ P @ y

    assert qe(lo**2) == pytest.approx(stats.chi2.isf(0.025, k - 2), rel=1e-8)
    # the covariate explains most of the spread: without it the limit is far higher
    assert reference_tau(y, v) > 2 * lo > 0


def test_baseline_auto_is_recorded_and_refused_when_misspelt():
    des = _exch([(10, 40, 5, 42), (3, 30, 4, 31)])
    with pytest.raises(ValueError, match="baseline_parameterization"):
        model_from_design(des, baseline_parameterization="sideways")
    with pytest.raises(ValueError, match="baseline_parameterization: one flag"):
        model_from_design(des, baseline_parameterization=[True])


# ---------------------------------------------------------------------------- the retry rules
def _posterior(chains, seed):
    rng = np.random.default_rng(seed)
    return xr.Dataset({"d": (("chain", "draw"), rng.normal(size=(chains, 10)))},
                      coords={"chain": np.arange(chains), "draw": np.arange(10)})


def _diag(*, divergences=0, ess=False, passed=False):
    problems = [] if passed else ([f"{divergences} divergent transitions (allowed 0)"] if divergences else []) + (
        ["bulk ESS < 400: d (100)"] if ess else [])
    return Diagnostics(table=pd.DataFrame(), divergences=divergences, bfmi=np.array([1.0]),
                       thresholds=GateThresholds(), problems=problems)


class Scripted:
    """A stand-in sampler: returns fresh chains and records its calls; the gate returns
    the scripted verdicts in order."""

    def __init__(self, verdicts):
        self.verdicts = list(verdicts)
        self.calls = []

    def sample(self, settings, seed, alternative):
        self.calls.append((settings, seed, alternative))
        return _posterior(settings.chains, seed % 1000), _posterior(settings.chains, seed % 1000 + 1), "stub"

    def gate(self, posterior, stats):
        return self.verdicts.pop(0)


def test_divergences_refit_once_with_higher_target_accept_and_the_other_form():
    s = Scripted([_diag(divergences=3), _diag(passed=True)])
    post, _, _, diag, final, alt = sample_gated(s.sample, s.gate, settings=SamplerSettings(chains=4, target_accept=0.99),
                                                seed=7, alternative=lambda: "every study non-centred")
    assert [c[2] for c in s.calls] == [False, True]
    assert final.target_accept == pytest.approx(0.999) and alt
    assert post.sizes["chain"] == 4  # the first attempt's draws are discarded
    assert len(diag.retries) == 1 and diag.retries[0]["kind"] == "refit"
    assert "target_accept 0.999" in diag.retries[0]["action"] and "non-centred" in diag.retries[0]["action"]
    assert "3 divergent" in diag.retries[0]["reason"]


def test_ess_shortfall_adds_chains_within_the_budget():
    s = Scripted([_diag(ess=True)] * (MAX_EXTRA_BATCHES + 1))
    post, stats, _, diag, _, alt = sample_gated(s.sample, s.gate, settings=SamplerSettings(chains=2), seed=11)
    assert len(s.calls) == 1 + MAX_EXTRA_BATCHES and not alt
    assert [c[1] for c in s.calls[1:]] == [derive_seed(11, "chains", k) for k in range(1, MAX_EXTRA_BATCHES + 1)]
    assert post.sizes["chain"] == 2 * (1 + MAX_EXTRA_BATCHES)
    np.testing.assert_array_equal(post["chain"].values, np.arange(post.sizes["chain"]))
    assert stats.sizes["chain"] == post.sizes["chain"]
    assert [r["kind"] for r in diag.retries] == ["more_chains"] * MAX_EXTRA_BATCHES
    assert not diag.passed  # still failing after the budget: reported as failed


def test_a_passing_fit_and_retry_off_sample_once():
    s = Scripted([_diag(passed=True)])
    *_, diag, _, _ = sample_gated(s.sample, s.gate, settings=SamplerSettings(), seed=1)
    assert len(s.calls) == 1 and diag.retries == []
    s = Scripted([_diag(divergences=5)])
    *_, diag, _, _ = sample_gated(s.sample, s.gate, settings=SamplerSettings(), seed=1, retry=False)
    assert len(s.calls) == 1 and diag.retries == [] and not diag.passed


def test_higher_target_accept_is_capped():
    assert higher_target_accept(0.8) == pytest.approx(0.98)
    assert higher_target_accept(0.995) == pytest.approx(0.9995)
    assert higher_target_accept(0.99999) == 0.9999


# ---------------------------------------------------------------------------- real fits
@pytest.fixture(scope="module")
def tac():
    import bayesln

    return bayesln.load_dataset("tacrolimus_ln").select(phases=["induction"], designs=["rct"])


def test_a_short_fit_gets_more_chains_and_says_so(tac):
    # 2 chains x 60 draws cannot reach 400 effective draws of tau: the retry adds chains
    # (each batch 2 x 60 with its own derived seed) and reports every step; same seed, same result
    kw = dict(seed=5, draws=60, tune=300, chains=2, prior_predictive=False)
    with pytest.warns(UserWarning, match="gate failed"):
        r = fit_core(tac, "total_response", **kw)
    kinds = [x["kind"] for x in r.diagnostics.retries]
    assert kinds and set(kinds) <= {"refit", "more_chains"}
    n_more = kinds.count("more_chains")
    assert r.idata.posterior.sizes["chain"] == 2 * (1 + n_more)
    assert r.config["retries"] == r.diagnostics.retries
    assert r.diagnostics.to_dict()["retries"] == r.diagnostics.retries
    assert r.config["sampler"]["chains_final"] == r.idata.posterior.sizes["chain"]
    with pytest.warns(UserWarning, match="gate failed"):
        again = fit_core(tac, "total_response", **kw)
    np.testing.assert_array_equal(again.idata.posterior["d"].values, r.idata.posterior["d"].values)
    with pytest.warns(UserWarning, match="gate failed"):
        once = fit_core(tac, "total_response", retry=False, **kw)
    assert once.diagnostics.retries == [] and once.idata.posterior.sizes["chain"] == 2
    np.testing.assert_array_equal(once.idata.posterior["d"].values,
                                  r.idata.posterior["d"].values[:2] if kinds[0] == "more_chains" else
                                  once.idata.posterior["d"].values)


def test_the_printed_summary_names_each_retry():
    from bayesln.analysis import summary_text

    summ = pd.DataFrame({"quantity": ["pooled OR"], "mean": [2.0], "median": [2.0], "q2.5": [1.0], "q97.5": [4.0]})
    diag = {"verdict": "pass", "retries": [{"kind": "refit", "seed": 1, "reason": "3 divergent transitions (allowed 0)",
                                            "action": "refitted with target_accept 0.999"}]}
    text = summary_text("x", "event", summ, diag, pd.DataFrame())
    assert "automatic retry: refitted with target_accept 0.999 after: 3 divergent transitions" in text
