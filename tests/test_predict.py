"""Predictions for targets (bayesln.predict) without MCMC: the posterior is built by hand
(a FitResult with known draws), so every number has a closed-form or simulation
reference with known truth. The MCMC end-to-end checks are in test_predict_slow.py."""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from scipy.special import expit, logit

from bayesln import _arviz
from bayesln.hierarchy import build_design
from bayesln.hierarchy.diagnostics import Diagnostics, GateThresholds
from bayesln.hierarchy.priors import Priors
from bayesln.hierarchy.result import FitResult
from bayesln.predict import (
    BaselineRisk,
    PredictionSet,
    Target,
    TargetError,
    default_targets_path,
    load_targets,
    predict,
    quantities_from_eta,
    resolve_target,
)
from bayesln.predict.command import format_predictions
from bayesln.predict.targets import resolve_targets
from bayesln.predict.validation import score_trial

S = 20000  # draws of the hand-made posteriors


# ----------------------------------------------------------------------------- fixtures
def arm_table(asian=1.0, regimens=("duo", "duo", "duo", "triple", "triple"), ages=(25, 28, 30, 33, 35)):
    rows = []
    for i, (reg, age) in enumerate(zip(regimens, ages)):
        s = f"s{i + 1}"
        for arm, treat, r in (("tac", "tac", reg), ("ivcy", "ivcy", "control")):
            rows.append({"study": s, "arm": arm, "treatment": treat, "regimen": r, "events": 10 + i, "n": 30,
                         "asian_fraction": asian, "mean_age": float(age), "pediatric": False, "refractory": False,
                         "class_v_fraction": 0.0, "class_iii_iv_fraction": 1.0, "phase": "induction", "year": 2010 + i})
    return pd.DataFrame(rows)


def fake_fit(post: dict, *, data=None, baseline="exchangeable", effect_modifiers=(), baseline_covariates=(),
             priors=None, seed=0) -> FitResult:
    """A FitResult whose posterior draws are ``post`` (one chain)."""
    data = arm_table() if data is None else data
    des = build_design(data, "total_response", baseline=baseline, effect_modifiers=effect_modifiers,
                       baseline_covariates=baseline_covariates, warn=False)
    n = len(next(iter(post.values())))
    dv = {}
    for k, v in post.items():
        v = np.asarray(v, float)
        if v.ndim == 1:
            dv[k] = (("chain", "draw"), v[None, :])
        elif k in ("mu", "delta"):
            dv[k] = (("chain", "draw", "study"), v[None])
        elif k == "beta":
            dv[k] = (("chain", "draw", "covariate"), v[None])
        elif k == "gamma":
            dv[k] = (("chain", "draw", "baseline_covariate"), v[None])
    dv["eta"] = (("chain", "draw", "arm"), np.zeros((1, n, des.n_arms)))
    coords = {"chain": [0], "draw": np.arange(n), "study": des.study_ids, "arm": des.arm_ids}
    if des.effect_names:
        coords["covariate"] = des.effect_names
    if des.baseline_names:
        coords["baseline_covariate"] = des.baseline_names
    idata = _arviz.make_inference_data({"posterior": xr.Dataset(dv, coords=coords)})
    pri = priors or Priors()
    diag = Diagnostics(table=pd.DataFrame(columns=["parameter", "r_hat", "ess_bulk", "ess_tail", "ok"]), divergences=0,
                       bfmi=np.array([1.0]), thresholds=GateThresholds())
    return FitResult(idata=idata, design=des, diagnostics=diag, config={"priors": pri.to_json_dict()}, seed=seed,
                     backend="fake")


def const(v, n=S):
    return np.full(n, float(v))


D0, TAU0, M0, SMU0 = 0.8, 0.4, 0.2, 0.5


@pytest.fixture(scope="module")
def degenerate():
    """Posterior concentrated at known values: every prediction has a closed form."""
    return fake_fit({"d": const(D0), "tau": const(TAU0), "m": const(M0), "sigma_mu": const(SMU0)})


PLAIN = Target(name="plain", comparator="ivcy")
NON_ASIAN = Target(name="nonasian", asian_fraction=0.0, comparator="ivcy")


def mc_tol(p, n=S, k=4.5):
    return k * math.sqrt(p * (1 - p) / n) + 1e-9


# ----------------------------------------------------------------------------- closed forms
def test_population_probabilities_are_the_posterior_point(degenerate):
    p = predict(degenerate, PLAIN, seed=1)
    pop = p.draws["population"]
    assert np.allclose(pop["p_tac"], expit(M0 + D0), rtol=0, atol=1e-15)
    assert np.allclose(pop["p_comparator"], expit(M0), rtol=0, atol=1e-15)
    assert p.extrapolation.outside_data == [] and not p.extrapolation.prior_driven


def test_new_trial_adds_tau_and_sigma_mu(degenerate):
    p = predict(degenerate, PLAIN, seed=2)
    new = p.draws["new_trial"]
    # logit-OR of a new trial ~ N(d, tau): P(TAC better) = Phi(d / tau) (benefit outcome)
    ref = stats.norm.cdf(D0 / TAU0)
    assert abs(new["tac_better"].mean() - ref) < mc_tol(ref)
    # comparator-arm log odds ~ N(m, sigma_mu)
    lc = logit(new["p_comparator"])
    assert abs(lc.mean() - M0) < 4.5 * SMU0 / math.sqrt(S)
    assert abs(lc.std() - SMU0) < 0.02
    assert np.allclose(new["log_or"].std(), TAU0, rtol=0.03)


def test_unidentified_modifier_adds_exactly_its_prior(degenerate):
    # every trial has asian_fraction 1; the target 0: distance -1, Delta ~ N(0, 0.5)
    p = predict(degenerate, NON_ASIAN, seed=3)
    pop, new = p.draws["population"], p.draws["new_trial"]
    ref_pop = stats.norm.cdf(D0 / 0.5)
    ref_new = stats.norm.cdf(D0 / math.sqrt(TAU0**2 + 0.5**2))
    assert abs(pop["tac_better"].mean() - ref_pop) < mc_tol(ref_pop)
    assert abs(new["tac_better"].mean() - ref_new) < mc_tol(ref_new)
    assert np.allclose(pop["log_or"].std(), 0.5, rtol=0.03)
    # the baseline moves by Gamma * (-1), Gamma ~ N(0, 0.5)
    assert np.allclose(logit(pop["p_comparator"]).std(), 0.5, rtol=0.03)
    rep = p.extrapolation
    assert rep.outside_data == ["asian_fraction"] and rep.unidentified == ["asian_fraction"]
    assert rep.prior_driven  # the posterior here has no spread: the prior is all of the width
    assert rep.prior_share["population"]["log_or"] == pytest.approx(1.0)
    assert "The data contain no non-Asian patients" in rep.text and "not evidence" in rep.text


def test_prior_sign_and_override(degenerate):
    # shifted prior: the log-OR difference non-Asian minus Asian ~ N(-0.3, 0.5), i.e. the
    # coefficient per unit of asian_fraction ~ N(0.3, 0.5) times distance -1
    p = predict(degenerate, NON_ASIAN, seed=4, extrapolation_priors={"asian_fraction": "normal(0.3, 0.5)"})
    ref = stats.norm.cdf((D0 - 0.3) / 0.5)
    assert abs(p.draws["population"]["tac_better"].mean() - ref) < mc_tol(ref)
    # a wider prior widens; a prior on the target itself is used too
    t = NON_ASIAN.model_copy(update={"extrapolation_priors": {"asian_fraction": Target.model_validate(
        {"name": "x", "extrapolation_priors": {"asian_fraction": "normal(0, 1)"}}).extrapolation_priors["asian_fraction"]}})
    w = predict(degenerate, t, seed=4)
    assert np.allclose(w.draws["population"]["log_or"].std(), 1.0, rtol=0.03)


def test_target_baseline_risk_pins_the_comparator_arm(degenerate):
    t = Target(name="b", comparator="ivcy", baseline_risk=0.4, asian_fraction=0.0)
    p = predict(degenerate, t, seed=5)
    for level in ("population", "new_trial"):
        assert np.allclose(p.draws[level]["p_comparator"], 0.4, rtol=0, atol=1e-14)
    # no baseline extrapolation with the target's own baseline; the effect term remains
    assert not (p.extrapolation.covariates["role"] == "baseline").any()
    ref = stats.norm.cdf(D0 / 0.5)
    assert abs(p.draws["population"]["tac_better"].mean() - ref) < mc_tol(ref)
    tb = predict(degenerate, Target(name="b2", comparator="ivcy", baseline_risk="beta(40, 60)"), seed=5)
    pc = tb.draws["population"]["p_comparator"]
    assert abs(pc.mean() - 0.4) < 0.004 and abs(pc.std() - stats.beta(40, 60).std()) < 0.003


# ----------------------------------------------------------------------------- coherence
def test_rr_rd_nnt_or_come_from_the_probabilities(degenerate):
    p = predict(degenerate, NON_ASIAN, seed=6)
    for level in ("population", "new_trial"):
        d = p.draws[level]
        assert np.array_equal(d["rr"], d["p_tac"] / d["p_comparator"])
        assert np.array_equal(d["rd"], d["p_tac"] - d["p_comparator"])
        assert np.array_equal(d["nnt"], 1.0 / d["rd"])
        odds = (d["p_tac"] / (1 - d["p_tac"])) / (d["p_comparator"] / (1 - d["p_comparator"]))
        assert np.allclose(d["or"], odds, rtol=1e-9)
        assert np.array_equal(d["tac_better"], (d["p_tac"] > d["p_comparator"]).astype(float))
        assert np.array_equal(d["rd_above_margin"], (d["rd"] > p.margin).astype(float))
    t = p.table()
    for level in ("population", "new_trial"):
        tt = t[t["level"] == level].set_index("quantity")
        assert tt.loc["nnt", "median"] == pytest.approx(1 / tt.loc["rd", "median"], rel=1e-12)
        assert tt.loc["nnt", "lower"] == pytest.approx(1 / tt.loc["rd", "upper"], rel=1e-12)
        assert tt.loc["nnt", "upper"] == pytest.approx(1 / tt.loc["rd", "lower"], rel=1e-12)
        d = p.draws[level]
        assert tt.loc["rr", "median"] == pytest.approx(np.median(d["p_tac"] / d["p_comparator"]), rel=1e-12)
        assert tt.loc["tac_better", "mean"] == pytest.approx(np.mean(d["p_tac"] > d["p_comparator"]))


def test_quantities_from_eta_harm_direction():
    q = quantities_from_eta(np.array([-1.0, 0.0]), np.array([0.0, -1.0]), "harm", 0.05)
    assert q["tac_better"].tolist() == [1.0, 0.0]  # fewer adverse events on TAC is better
    assert np.array_equal(q["nnt"], 1 / q["rd"])


def test_reproducible_with_a_seed(degenerate):
    a = predict(degenerate, NON_ASIAN, seed=11)
    b = predict(degenerate, NON_ASIAN, seed=11)
    c = predict(degenerate, NON_ASIAN, seed=12)
    for level in ("population", "new_trial"):
        for k in a.draws[level]:
            assert np.array_equal(a.draws[level][k], b.draws[level][k])
    pd.testing.assert_frame_equal(a.table(), b.table())
    assert not np.array_equal(a.draws["new_trial"]["p_tac"], c.draws["new_trial"]["p_tac"])
    # draws of one target do not depend on which other targets are predicted
    s1 = PredictionSet([predict(degenerate, t, seed=11) for t in (PLAIN, NON_ASIAN)])
    assert np.array_equal(s1["nonasian"].draws["new_trial"]["p_tac"], a.draws["new_trial"]["p_tac"])
    sub = predict(degenerate, PLAIN, seed=11, draws=500)
    assert sub.n_draws == 500
    with pytest.raises(ValueError, match="draws"):
        predict(degenerate, PLAIN, seed=11, draws=S + 1)
    with pytest.raises(TypeError, match="seed"):
        predict(degenerate, PLAIN, seed=None)


# ----------------------------------------------------------------------------- modifiers
@pytest.fixture(scope="module")
def with_modifiers():
    rng = np.random.default_rng(0)
    post = {"d": rng.normal(D0, 0.25, S), "tau": np.abs(rng.normal(0, 0.3, S)), "m": rng.normal(M0, 0.2, S),
            "sigma_mu": np.abs(rng.normal(0, 0.4, S)),
            # beta[regimen:triple] well informed; beta[mean_age] equal to its N(0, 1) prior
            "beta": np.column_stack([rng.normal(0.5, 0.1, S), rng.normal(0.0, 1.0, S)])}
    return fake_fit(post, effect_modifiers=("regimen", "mean_age"))


def test_in_model_modifiers_enter_with_their_transforms(with_modifiers):
    res = with_modifiers
    duo = predict(res, Target(name="duo", regimen="duo", comparator="ivcy", mean_age=30.0), seed=1)
    tri = predict(res, Target(name="tri", regimen="triple", comparator="ivcy", mean_age=30.0), seed=1)
    d = res.draws("d")
    beta = res.draws("beta")
    tr_age = res.design.transforms["beta:mean_age"]
    x = float(tr_age.apply(30.0))
    assert np.allclose(duo.draws["population"]["log_or"], d + x * beta[:, 1], atol=1e-12)
    assert np.allclose(tri.draws["population"]["log_or"], d + beta[:, 0] + x * beta[:, 1], atol=1e-12)
    inv = duo.extrapolation.covariates.set_index(["covariate", "role"])
    assert bool(inv.loc[("regimen", "effect"), "in_model"]) and not bool(inv.loc[("regimen", "effect"), "outside_data"])


def test_contraction_and_bounded_extrapolation_flag(with_modifiers):
    """mean_age 12 is below the trials' 25-35: the fitted coefficient is used down to 25
    and the remaining -13 years get the extrapolation prior Normal(0, 0.025) per year
    (before natural units and bounds: linear extrapolation of the fitted modifier)."""
    from bayesln.predict.engine import stream

    p = predict(with_modifiers, Target(name="kids", mean_age=12.0, comparator="ivcy"), seed=2)
    c = p.extrapolation.contraction.set_index("parameter")
    assert c.loc["beta[mean_age]", "contraction"] == pytest.approx(0.0, abs=0.05)  # posterior = prior N(0, 1)
    assert c.loc["beta[regimen:triple]", "contraction"] == pytest.approx(1 - 0.1**2, abs=0.01)
    assert c.loc["d", "contraction"] == pytest.approx(1 - 0.25**2 / 2.5**2, abs=0.002)
    assert c.loc["tau", "contraction"] == pytest.approx(1 - 0.3**2 / 0.5**2, abs=0.02)  # both half-normal
    assert c.loc["extrapolation[effect:mean_age]", "contraction"] == 0.0
    inv = p.extrapolation.covariates.set_index(["covariate", "role"])
    assert bool(inv.loc[("mean_age", "effect"), "outside_data"])
    assert "used up to 25" in inv.loc[("mean_age", "effect"), "status"]
    assert inv.loc[("mean_age", "effect"), "distance"] == pytest.approx(-13.0)
    assert p.extrapolation.outside_data == ["mean_age"] and p.extrapolation.extrapolated == ["mean_age"]
    assert "Data-thin: beta[mean_age]" in p.extrapolation.text
    # draw by draw: d + beta_age (25 - 30.2) / 10 + Delta (12 - 25), Delta ~ N(0, 0.025)
    z = stream(2, "kids", "total_response", "extrapolation", "effect:mean_age").standard_normal(S)
    ref = with_modifiers.draws("d") + with_modifiers.draws("beta")[:, 1] * (25 - 30.2) / 10 + 0.025 * z * (-13.0)
    np.testing.assert_allclose(p.draws["population"]["log_or"], ref, rtol=0, atol=1e-12)


def test_unseen_comparator_moves_only_the_comparator_arm(degenerate):
    seen = predict(degenerate, Target(name="a", comparator="ivcy"), seed=3)
    unseen = predict(degenerate, Target(name="a", comparator="rituximab"), seed=3)
    assert np.array_equal(seen.draws["population"]["p_tac"], unseen.draws["population"]["p_tac"])
    assert np.allclose(unseen.draws["population"]["log_or"].std(), 0.5, rtol=0.03)
    assert unseen.extrapolation.outside_data == ["comparator"]
    # with the target's own comparator-arm risk the same term moves the TAC arm instead
    pinned = predict(degenerate, Target(name="a", comparator="rituximab", baseline_risk=0.5), seed=3)
    assert np.allclose(pinned.draws["population"]["p_comparator"], 0.5)
    assert np.allclose(pinned.draws["population"]["log_or"].std(), 0.5, rtol=0.03)


def test_sensitivity_table(degenerate):
    na = predict(degenerate, NON_ASIAN, seed=7)
    asian = predict(degenerate, Target(name="asian", asian_fraction=1.0, comparator="ivcy"), seed=7)
    s = na.extrapolation.sensitivity
    pop = s[(s["level"] == "population") & (s["term"] == "effect:asian_fraction")].set_index(["scenario", "quantity"])
    # prior sd 0 = transportability: the Asian prediction's odds ratio
    assert pop.loc[("sd 0 (transportable)", "or"), "median"] == pytest.approx(math.exp(D0))
    assert pop.loc[("sd 0 (transportable)", "or"), "upper"] == pytest.approx(
        np.quantile(asian.draws["population"]["or"], 0.975))
    widths = [pop.loc[(k, "or"), "upper"] / pop.loc[(k, "or"), "lower"] for k in ("sd x0.5", "default", "sd x2")]
    assert widths[0] < widths[1] < widths[2]
    assert pop.loc[("shift +1 sd", "or"), "median"] < pop.loc[("default", "or"), "median"] < pop.loc[("shift -1 sd", "or"), "median"]
    assert pop.loc[("default", "tac_better"), "mean"] == pytest.approx(na.draws["population"]["tac_better"].mean())
    assert set(s["scenario"]) >= {"all sd 0 (transportable)", "all default", "all sd x2"}


def test_non_asian_wider_than_asian_and_flagged(with_modifiers):
    t = load_targets()
    a = predict(with_modifiers, t["asian_class_iii_iv"], seed=8)
    n = predict(with_modifiers, t["non_asian_class_iii_iv"], seed=8)
    ta, tn = (x.table().set_index(["quantity", "level"]) for x in (a, n))
    for q in ("rd", "or", "p_tac"):
        wa = ta.loc[(q, "population"), "upper"] - ta.loc[(q, "population"), "lower"]
        wn = tn.loc[(q, "population"), "upper"] - tn.loc[(q, "population"), "lower"]
        assert wn > 1.3 * wa, q
    assert "asian_fraction" in n.extrapolation.outside_data
    assert (tn["outside_data"].str.contains("asian_fraction")).all()
    assert "asian_fraction" not in a.extrapolation.outside_data


# ----------------------------------------------------------------------------- calibration (oracle)
def test_new_trial_predictive_is_calibrated_when_the_posterior_is_the_truth():
    """Known truth: posterior draws = the true hyperparameters, held-out trials simulated
    from the same model. The randomised PIT must be Uniform(0, 1) and the 90% intervals
    must cover 90% (Czado et al. 2009)."""
    n_draws = 1000
    res = fake_fit({"d": const(D0, n_draws), "tau": const(TAU0, n_draws), "m": const(M0, n_draws),
                    "sigma_mu": const(SMU0, n_draws)})
    rng = np.random.default_rng(2024)
    pits, cov, covered_int = [], [], []
    for r in range(300):
        mu = M0 + SMU0 * rng.standard_normal()
        delta = D0 + TAU0 * rng.standard_normal()
        n_t, n_c = rng.integers(20, 60, size=2)
        arms = pd.DataFrame({"study": "new", "arm": ["tac", "ivcy"], "treatment": ["tac", "ivcy"],
                             "regimen": ["duo", "control"],
                             "events": [rng.binomial(n_t, expit(mu + delta)), rng.binomial(n_c, expit(mu))],
                             "n": [n_t, n_c]})
        a, _ = score_trial(res, arms, Target(name=f"t{r}", comparator="ivcy"), seed=r, ci=0.9)
        pits += a["pit"].tolist()
        cov += a["pit_covered"].tolist()
        covered_int += a["covered"].tolist()
    pits = np.array(pits)
    assert stats.kstest(pits, "uniform").pvalue > 0.001
    assert abs(np.mean(cov) - 0.9) < 0.04  # 600 PITs from 300 trials: SD of the coverage about 0.012
    assert np.mean(covered_int) >= 0.9 - 0.04  # count intervals are conservative


# ----------------------------------------------------------------------------- targets
def test_shipped_targets_load_and_the_packaged_copy_matches():
    from pathlib import Path

    import bayesln.predict as P

    t = load_targets()
    assert {"non_asian_class_iii_iv", "asian_class_v", "paediatric", "cyc_refractory",
            "maintenance_after_induction", "asian_class_iii_iv"} <= set(t)
    assert t["non_asian_class_iii_iv"].asian_fraction == 0.0
    assert t["maintenance_after_induction"].phase == "maintenance"
    assert t["paediatric"].pediatric is True and t["cyc_refractory"].refractory is True
    packaged = Path(P.__file__).parent / "targets.toml"
    assert tomllib.loads(packaged.read_text()) == tomllib.loads(default_targets_path().read_text())


def test_target_validation_messages(tmp_path):
    with pytest.raises(TargetError, match="unknown key 'asian'"):
        resolve_target({"name": "x", "asian": 0.0})
    with pytest.raises(TargetError, match="comparator cannot be tacrolimus"):
        resolve_target({"name": "x", "comparator": "tac"})
    with pytest.raises(TargetError, match="strictly between 0 and 1"):
        resolve_target({"name": "x", "baseline_risk": 1.2})
    with pytest.raises(TargetError, match="known targets: .*paediatric"):
        resolve_target("no_such_target")
    with pytest.raises(TargetError, match="extrapolation_priors: unknown covariate 'ethnicity'"):
        resolve_target({"name": "x", "extrapolation_priors": {"ethnicity": "normal(0, 1)"}})
    with pytest.raises(TargetError, match="must be one of normal, student_t"):
        resolve_target({"name": "x", "extrapolation_priors": {"asian_fraction": "half_normal(1)"}})
    f = tmp_path / "targets.toml"
    f.write_text('[mine]\nasian_fraction = 0.5\nbaseline_risk = "beta(30, 70)"\nbaseline_risk_source = "cohort X"\n')
    t = resolve_target("mine", search=[tmp_path])
    assert t.asian_fraction == 0.5 and t.baseline_risk.dist == "beta" and t.baseline_risk.source == "cohort X"
    assert [x.name for x in resolve_targets(["mine", {"name": "inline", "pediatric": True}], search=[tmp_path])] == ["mine", "inline"]
    with pytest.raises(TargetError, match="given twice"):
        resolve_targets(["paediatric", "paediatric"])


@pytest.mark.parametrize("text, dist, params", [
    (0.3, "fixed", {"p": 0.3}), ("0.3", "fixed", {"p": 0.3}), ("beta(3, 7)", "beta", {"a": 3, "b": 7}),
    ("logit_normal(0.1, 0.4)", "logit_normal", {"mu": 0.1, "sigma": 0.4}), ({"beta": [2, 5]}, "beta", {"a": 2, "b": 5}),
])
def test_baseline_risk_parsing(text, dist, params):
    b = BaselineRisk.parse(text)
    assert b.dist == dist and b.params == params
    assert BaselineRisk.parse(str(b)) == b


def test_json_and_csv_outputs_are_strict(degenerate):
    ps = PredictionSet([predict(degenerate, t, seed=1) for t in (PLAIN, NON_ASIAN)])

    def no_nan(x):
        raise ValueError(f"non-standard JSON constant {x}")

    d = json.loads(format_predictions(ps, "json"), parse_constant=no_nan)
    assert len(d["predictions"]) == 2 * 16
    rec = d["predictions"][0]
    assert {"target", "quantity", "level", "median", "lower", "upper", "extrapolation"} <= set(rec)
    na = [r for r in d["predictions"] if r["target"] == "nonasian"]
    assert all(r["extrapolation"]["outside_data"] == ["asian_fraction"] for r in na)
    assert set(d["extrapolation"]) == {"plain/total_response", "nonasian/total_response"}
    csv = format_predictions(ps, "csv")
    assert csv.splitlines()[0].startswith("target,outcome,quantity,label,level,median,lower,upper")
    assert "not evidence" in format_predictions(ps, "table")


def test_plots(degenerate):
    from bayesln.predict.plots import plot_prediction, plot_targets

    ps = PredictionSet([predict(degenerate, t, seed=1) for t in (PLAIN, NON_ASIAN)])
    f1 = ps[1].plot()
    f2 = plot_targets(ps)
    assert f1.axes and f2.axes
    import matplotlib.pyplot as plt

    plt.close("all")
    del plot_prediction


def test_predictions_for_spec_none_without_targets():
    from bayesln.analysis import Analysis, predictions_for_spec
    from bayesln.spec import spec_from_dict

    spec = spec_from_dict({"analysis": {"name": "x"}, "data": {"outcome": "total_response"}})
    assert predictions_for_spec(Analysis(spec=spec, data=None, result=None, contrasts=None, comparison=None)) is None


# ----------------------------------------------------------------------------- scoring a held-out trial
def _held_out(y_t=20, y_c=12, n=30):
    return pd.DataFrame([
        {"study": "new", "arm": "tac", "treatment": "tac", "regimen": "duo", "events": y_t, "n": n},
        {"study": "new", "arm": "ivcy", "treatment": "ivcy", "regimen": "control", "events": y_c, "n": n},
    ])


def test_score_trial_lpd_and_pit_match_closed_forms_without_heterogeneity():
    """tau = sigma_mu = 0 at a point posterior: the new-trial predictive of each arm is one
    binomial (reference: scipy), the trial's lpd is the sum of the two log pmfs, and the
    randomised PIT is F(y - 1) + u f(y) with the u of the seeded stream."""
    from bayesln.predict.engine import stream

    fit = fake_fit({"d": const(D0), "tau": const(0.0), "m": const(M0), "sigma_mu": const(0.0)})
    held = _held_out()
    arms, trial = score_trial(fit, held, PLAIN, seed=3, ci=0.9)
    p_c, p_t = expit(M0), expit(M0 + D0)
    ref_t, ref_c = stats.binom(30, p_t), stats.binom(30, p_c)
    assert trial["lpd"] == pytest.approx(ref_t.logpmf(20) + ref_c.logpmf(12), rel=1e-9)
    a = arms.set_index("arm")
    assert a.loc["tac", "lpd_arm"] == pytest.approx(ref_t.logpmf(20), rel=1e-9)
    u = stream(3, PLAIN.name, "pit").uniform(size=2)
    assert a.loc["tac", "pit"] == pytest.approx(ref_t.cdf(19) + u[0] * ref_t.pmf(20), rel=1e-9)
    assert a.loc["ivcy", "pit"] == pytest.approx(ref_c.cdf(11) + u[1] * ref_c.pmf(12), rel=1e-9)
    assert (a.loc["tac", "lower"], a.loc["tac", "upper"]) == (ref_t.ppf(0.05), ref_t.ppf(0.95))
    # arms independent here: conditioning on the control arm changes nothing
    assert a.loc["tac", "pit_conditional"] == pytest.approx(a.loc["tac", "pit"], rel=1e-9)


def test_score_trial_with_heterogeneity_matches_quadrature():
    """tau, sigma_mu > 0: p_c = expit(m + sigma_mu e1), p_t = expit(m + sigma_mu e1 + d +
    tau e2) with e1, e2 ~ N(0, 1). Reference by Gauss-Hermite quadrature (60 x 60 nodes):
    the trial's lpd = log E[f_t(y_t) f_c(y_c)], and the TAC arm's PIT given its control arm
    uses the predictive of y_t weighted by f_c(y_c). Tolerances: Monte Carlo over 20,000
    posterior draws."""
    from bayesln.predict.engine import stream

    fit = fake_fit({"d": const(D0), "tau": const(TAU0), "m": const(M0), "sigma_mu": const(SMU0)})
    y_t, y_c, n = 22, 12, 30
    arms, trial = score_trial(fit, _held_out(y_t, y_c, n), PLAIN, seed=5, ci=0.9)
    x, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    e1, e2 = np.meshgrid(x, x, indexing="ij")
    ww = np.outer(w, w)
    pc = expit(M0 + SMU0 * e1)
    pt_ = expit(M0 + SMU0 * e1 + D0 + TAU0 * e2)
    fc = stats.binom.pmf(y_c, n, pc)
    ref_lpd = np.log(np.sum(ww * stats.binom.pmf(y_t, n, pt_) * fc))
    assert trial["lpd"] == pytest.approx(ref_lpd, abs=0.02)
    k = np.arange(n + 1)
    cond = np.array([np.sum(ww * fc * stats.binom.pmf(j, n, pt_)) for j in k]) / np.sum(ww * fc)
    u = stream(5, PLAIN.name, "pit").uniform(size=2)[0]
    ref_pit = cond[:y_t].sum() + u * cond[y_t]
    a = arms.set_index("arm")
    assert a.loc["tac", "pit_conditional"] == pytest.approx(ref_pit, abs=0.01)
    marg = np.array([np.sum(ww * stats.binom.pmf(j, n, pt_)) for j in k])
    assert a.loc["tac", "pit"] == pytest.approx(marg[:y_t].sum() + u * marg[y_t], abs=0.01)
    # conditioning on a low control count pulls the TAC arm's predictive down: the PIT of
    # the same y_t is higher given the control arm than marginally
    assert a.loc["tac", "pit_conditional"] > a.loc["tac", "pit"]
