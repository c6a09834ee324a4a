"""Predictions from the ordinal CR / PR / NR model (bayesln.predict.ordinal, issue 6 on
the issue-5 ordinal model).

Fast tests (no MCMC): the posterior is built by hand (an OrdinalResult with known draws on
the design of the bundled induction RCTs), so every probability has a closed form::

    sequential logit (the model's parameterisation: step 1 response, step 2 CR | response)
        P(CR or PR) = expit(b1 + d),  P(CR) = expit(b1 + d) * expit(b2 + d),  P(PR) = difference
    cumulative logit
        P(CR or PR) = expit(b1 + d),  P(CR) = expit(b1 + d - exp(b2))

with (b1, b2) the model's reference baseline (independent baselines: the mean over the
trials reporting CR, PR and NR). Coherence P(CR) <= P(CR or PR) is checked in every draw,
for every shipped target, at both levels; RD / RR / OR / NNT against the probabilities
draw by draw; unidentified modifiers against their priors (Phi(d / sd) for P(TAC better)).

Slow tests: a tiny fit of the bundled data (coherence for every shipped target, equality
with the fit's own P_cr / P_resp targets) and ``bayesln fit`` + ``bayesln predict RUN`` of
models/ordinal_response.toml through the command line.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from scipy.special import expit, logit

import bayesln
from bayesln import _arviz
from bayesln.hierarchy.diagnostics import Diagnostics, GateThresholds
from bayesln.hierarchy.ordinal import OrdinalPriors, OrdinalResult, build_ordinal_design
from bayesln.hierarchy.priors import resolve_tau_prior
from bayesln.predict import OrdinalPrediction, PredictionSet, Target, load_targets, predict, study_covariates
from bayesln.predict.command import format_predictions
from bayesln.predict.engine import LEVELS, engine_for
from bayesln.predict.ordinal import OrdinalEngine

ROOT = Path(__file__).resolve().parents[1]
S = 20000
CATS = ("cr", "pr", "resp", "nr")
OUTCOMES = ("complete_response", "total_response")


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def td():
    return bayesln.load_dataset("tacrolimus_ln")


def _dims(name: str, shape: tuple) -> tuple[str, ...]:
    extra = shape[1:]
    if not extra:
        return ()
    if name == "alpha":
        return ("study", "stage")
    if name in ("a", "kappa"):
        return ("study",)
    if name in ("beta", "psi_beta"):
        return ("covariate",) if len(extra) == 1 else ("covariate", "stage")
    return ("stage",)


def fake_ordinal_fit(data, post: dict, *, link="sequential", baseline="independent", cutpoint_specific=False,
                     reference_baseline="auto", designs=("rct",), seed=0) -> OrdinalResult:
    """An OrdinalResult whose posterior draws are ``post`` (one chain) on the ordinal
    design of ``data``."""
    des = build_ordinal_design(data, link=link, baseline=baseline, cutpoint_specific=cutpoint_specific,
                               designs=designs)
    n = len(np.asarray(next(iter(post.values()))))
    dv = {}
    for k, v in post.items():
        v = np.asarray(v, float)
        dv[k] = (("chain", "draw") + _dims(k, v.shape), v[None])
    coords = {"chain": [0], "draw": np.arange(n), "study": des.study_ids, "stage": list(des.stages),
              "arm": des.arm_ids}
    if des.effect_names:
        coords["covariate"] = des.effect_names
    idata = _arviz.make_inference_data({"posterior": xr.Dataset(dv, coords=coords)})
    pr = OrdinalPriors()
    priors = pr.model_dump(mode="json")
    priors["tau"] = resolve_tau_prior(pr.tau, "total_response").model_dump(mode="json")
    config = {"family": "ordinal", "link": link, "baseline": baseline, "cutpoint_specific": cutpoint_specific,
              "reference_baseline": reference_baseline, "priors": priors}
    diag = Diagnostics(table=pd.DataFrame(columns=["parameter", "r_hat", "ess_bulk", "ess_tail", "ok"]), divergences=0,
                       bfmi=np.array([1.0]), thresholds=GateThresholds())
    return OrdinalResult(idata=idata, design=des, diagnostics=diag, config=config, seed=seed, backend="fake")


def const(v, n=S):
    return np.full(n, float(v))


D0, TAU0, BREG, BMMF = 0.7, 0.4, 0.3, -0.2
#: study baselines (step 1, step 2) of the 7 induction RCTs of the design
ALPHA0 = np.array([[0.8, -0.6], [0.2, -1.2], [0.5, -0.4], [0.9, -0.3], [1.1, 0.1], [0.4, -1.0], [0.3, -0.5]])


def degenerate_alpha(n=S):
    return np.broadcast_to(ALPHA0, (n,) + ALPHA0.shape).copy()


@pytest.fixture(scope="module")
def seq(td):
    """Sequential logit, independent baselines, posterior concentrated at known values."""
    return fake_ordinal_fit(td, {"alpha": degenerate_alpha(), "d": const(D0), "tau": const(TAU0),
                                 "beta": np.tile([BMMF, BREG], (S, 1))})


@pytest.fixture(scope="module")
def spread(td):
    """Sequential logit with posterior spread in every parameter (for widths, coherence)."""
    rng = np.random.default_rng(1)
    return fake_ordinal_fit(td, {
        "alpha": ALPHA0[None] + 0.3 * rng.standard_normal((S,) + ALPHA0.shape), "d": rng.normal(D0, 0.25, S),
        "tau": np.abs(rng.normal(0, 0.3, S)), "beta": np.column_stack([rng.normal(BMMF, 0.3, S), rng.normal(BREG, 0.3, S)])})


def reference_baseline(fit):
    refs = fit.design.reference_studies
    return ALPHA0[refs["stage1"], 0].mean(), ALPHA0[refs["stage2"], 1].mean()


PLAIN = Target(name="plain", regimen="duo", comparator="ivcy", phase="induction")
NON_ASIAN = Target(name="nonasian", asian_fraction=0.0, regimen="duo", comparator="ivcy", phase="induction")


def mc_tol(p, n=S, k=4.5):
    return k * math.sqrt(p * (1 - p) / n) + 1e-9


def assert_coherent(pred: OrdinalPrediction, label=""):
    for level in LEVELS:
        for arm in ("tac", "comparator"):
            pr = pred.probabilities[level][arm]
            assert np.all(pr["cr"] <= pr["resp"]), (label, level, arm)
            assert np.all(pr["pr"] >= 0) and np.all(pr["cr"] >= 0) and np.all(pr["resp"] <= 1), (label, level, arm)
            np.testing.assert_allclose(pr["cr"] + pr["pr"], pr["resp"], rtol=0, atol=1e-15)
            np.testing.assert_allclose(pr["resp"] + pr["nr"], 1.0, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- closed forms
def test_engine_is_chosen_by_the_fit_family(seq):
    assert isinstance(engine_for(seq, seed=1), OrdinalEngine)
    p = predict(seq, PLAIN, seed=1)
    assert isinstance(p, OrdinalPrediction) and p.outcomes == OUTCOMES
    assert {p[o].outcome for o in OUTCOMES} == set(OUTCOMES)


def test_sequential_population_closed_form(seq):
    """P(CR or PR) = expit(b1 + d), P(CR) = P(CR or PR) * expit(b2 + d); triple adds
    beta[regimen:triple] to both steps, an MMF comparator arm has -beta[comparator:mmf]."""
    b1, b2 = reference_baseline(seq)
    cases = [(PLAIN, 0.0, 0.0),
             (Target(name="tri", regimen="triple", comparator="ivcy", phase="induction"), BREG, 0.0),
             (Target(name="mmf", regimen="duo", comparator="mmf", phase="induction"), 0.0, -BMMF)]
    for t, shift_t, shift_c in cases:
        pop = predict(seq, t, seed=1).probabilities["population"]
        for arm, eta1, eta2 in (("tac", b1 + D0 + shift_t, b2 + D0 + shift_t), ("comparator", b1 + shift_c, b2 + shift_c)):
            pr = pop[arm]
            np.testing.assert_allclose(pr["resp"], expit(eta1), rtol=0, atol=1e-15)
            np.testing.assert_allclose(pr["cr"], expit(eta1) * expit(eta2), rtol=0, atol=1e-15)
            np.testing.assert_allclose(pr["pr"], expit(eta1) * (1 - expit(eta2)), rtol=0, atol=1e-15)
            np.testing.assert_allclose(pr["nr"], 1 - expit(eta1), rtol=0, atol=1e-15)
    p = predict(seq, PLAIN, seed=1)
    assert p.extrapolation.outside_data == [] and not p.extrapolation.prior_driven


def test_cumulative_population_closed_form(td):
    a0, k0 = ALPHA0[:, 0], ALPHA0[:, 1]
    fit = fake_ordinal_fit(td, {"a": np.broadcast_to(a0, (S, 7)).copy(), "kappa": np.broadcast_to(k0, (S, 7)).copy(),
                                "d": const(D0), "tau": const(TAU0), "beta": np.tile([BMMF, BREG], (S, 1))},
                           link="cumulative")
    refs = fit.design.reference_studies
    r1, r2 = a0[refs["stage1"]].mean(), k0[refs["stage2"]].mean()
    pop = predict(fit, PLAIN, seed=1).probabilities["population"]
    np.testing.assert_allclose(pop["tac"]["resp"], expit(r1 + D0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(pop["tac"]["cr"], expit(r1 + D0 - math.exp(r2)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(pop["comparator"]["cr"], expit(r1 - math.exp(r2)), rtol=0, atol=1e-15)
    assert_coherent(predict(fit, NON_ASIAN, seed=2))


def test_new_trial_shares_one_random_effect_across_steps(seq):
    """A new trial's log-OR is d + tau * e on both steps: P(TAC better) = Phi(d / tau)
    for CR-or-PR and for CR, and the response log-OR has SD tau."""
    p = predict(seq, PLAIN, seed=3)
    ref = stats.norm.cdf(D0 / TAU0)
    for o in OUTCOMES:
        assert abs(p[o].draws["new_trial"]["tac_better"].mean() - ref) < mc_tol(ref), o
    new = p.probabilities["new_trial"]
    lor1 = logit(new["tac"]["resp"]) - logit(new["comparator"]["resp"])
    lor2 = logit(new["tac"]["cr"] / new["tac"]["resp"]) - logit(new["comparator"]["cr"] / new["comparator"]["resp"])
    np.testing.assert_allclose(lor1, lor2, atol=1e-9)  # the same delta on both steps, draw by draw
    assert abs(lor1.std() - TAU0) < 0.01 and abs(lor1.mean() - D0) < 4.5 * TAU0 / math.sqrt(S)


def test_new_trial_independent_baselines_take_one_trial_both_steps(td):
    """Independent baselines: a new trial has the baselines of one reference trial drawn
    at random - both steps from the same trial."""
    fit = fake_ordinal_fit(td, {"alpha": degenerate_alpha(), "d": const(D0), "tau": const(0.0),
                                "beta": np.tile([BMMF, BREG], (S, 1))})
    refs = fit.design.reference_studies["stage1"]
    comp = predict(fit, PLAIN, seed=4).probabilities["new_trial"]["comparator"]
    resp_ref, cr_ref = expit(ALPHA0[refs, 0]), expit(ALPHA0[refs, 0]) * expit(ALPHA0[refs, 1])
    which = np.abs(comp["resp"][:, None] - resp_ref[None, :]).argmin(axis=1)
    np.testing.assert_allclose(comp["resp"], resp_ref[which], rtol=0, atol=1e-15)
    np.testing.assert_allclose(comp["cr"], cr_ref[which], rtol=0, atol=1e-15)
    share = np.bincount(which, minlength=len(refs)) / S
    assert np.all(np.abs(share - 1 / len(refs)) < 4.5 * math.sqrt(0.2 * 0.8 / S))


def test_exchangeable_baselines(td):
    """Exchangeable baselines: population = the typical trial m (per step); a new trial
    adds sigma_mu per step (independent steps, as alpha_raw in the model)."""
    m, s = np.array([0.6, -0.5]), np.array([0.4, 0.3])
    fit = fake_ordinal_fit(td, {"alpha": degenerate_alpha(), "m": np.tile(m, (S, 1)), "sigma_mu": np.tile(s, (S, 1)),
                                "d": const(D0), "tau": const(TAU0), "beta": np.tile([BMMF, BREG], (S, 1))},
                           baseline="exchangeable")
    p = predict(fit, PLAIN, seed=5)
    pop = p.probabilities["population"]["comparator"]
    np.testing.assert_allclose(pop["resp"], expit(m[0]), atol=1e-15)
    np.testing.assert_allclose(pop["cr"], expit(m[0]) * expit(m[1]), atol=1e-15)
    new = p.probabilities["new_trial"]["comparator"]
    l1, l2 = logit(new["resp"]), logit(new["cr"] / new["resp"])
    for lx, mu, sd in ((l1, m[0], s[0]), (l2, m[1], s[1])):
        assert abs(lx.mean() - mu) < 4.5 * sd / math.sqrt(S) and abs(lx.std() - sd) < 0.01
    assert abs(np.corrcoef(l1, l2)[0, 1]) < 0.03
    assert "exchangeable baseline model" in p.extrapolation.baseline
    assert p.extrapolation.contraction["parameter"].tolist()[:6] == [
        "d", "tau", "m[response]", "m[complete_given_response]", "sigma_mu[response]", "sigma_mu[complete_given_response]"]


def test_target_baseline_risk_is_the_comparators_total_response(seq):
    """baseline_risk = the comparator's P(CR or PR); its P(CR | response) still from the fit."""
    _, b2 = reference_baseline(seq)
    p = predict(seq, Target(name="b", regimen="duo", comparator="ivcy", phase="induction", baseline_risk=0.4), seed=6)
    for level in LEVELS:
        comp = p.probabilities[level]["comparator"]
        np.testing.assert_allclose(comp["resp"], 0.4, rtol=0, atol=1e-14)
    np.testing.assert_allclose(p.probabilities["population"]["comparator"]["cr"], 0.4 * expit(b2), atol=1e-14)
    assert p.extrapolation.baseline.startswith("comparator-arm P(CR or PR) given by the target")


# ----------------------------------------------------------------------------- unidentified modifiers
def test_unidentified_modifier_is_its_prior_on_every_step(seq):
    """asian_fraction = 0 (every trial with it reported has 1): one Delta ~ N(0, 0.5) per
    draw on the log-OR of both steps, and a baseline Gamma ~ N(0, 0.5) on both steps."""
    p = predict(seq, NON_ASIAN, seed=7)
    pop = p.probabilities["population"]
    lor1 = logit(pop["tac"]["resp"]) - logit(pop["comparator"]["resp"])
    lor2 = logit(pop["tac"]["cr"] / pop["tac"]["resp"]) - logit(pop["comparator"]["cr"] / pop["comparator"]["resp"])
    np.testing.assert_allclose(lor1, lor2, atol=1e-9)
    # class_v / class_iii_iv add tiny terms (distance 0.0475 from the trials' mean)
    sd = math.sqrt(0.5**2 + 2 * (0.5 * 0.0475) ** 2)
    assert abs(lor1.std() - sd) < 0.01
    ref = stats.norm.cdf(D0 / sd)
    for o in OUTCOMES:
        assert abs(p[o].draws["population"]["tac_better"].mean() - ref) < mc_tol(ref), o
    b1c = logit(pop["comparator"]["resp"])
    b2c = logit(pop["comparator"]["cr"] / pop["comparator"]["resp"])
    np.testing.assert_allclose(b1c - b1c.mean(), b2c - b2c.mean(), atol=1e-9)  # the same Gamma on both steps
    assert abs(b1c.std() - sd) < 0.01
    rep = p.extrapolation
    assert rep.outside_data == ["asian_fraction"] and "asian_fraction" in rep.unidentified
    assert rep.prior_driven and "DRIVEN BY THE PRIOR" in rep.text and "not evidence" in rep.text
    assert "The data contain no non-Asian patients" in rep.text and "both steps of the sequential logit" in rep.text
    t = p.table()
    assert t["prior_driven"].any() and (t["outside_data"] == "asian_fraction").all()
    assert_coherent(p)


def test_prior_override_and_sensitivity(seq):
    wide = predict(seq, NON_ASIAN, seed=8, extrapolation_priors={"asian_fraction": "normal(0, 1)"})
    base = predict(seq, NON_ASIAN, seed=8)
    for o in OUTCOMES:
        assert wide[o].draws["population"]["log_or"].std() > 1.5 * base[o].draws["population"]["log_or"].std()
    s = base.extrapolation.sensitivity
    assert set(s["outcome"]) == set(OUTCOMES)
    z = s[(s["scenario"] == "all sd 0 (transportable)") & (s["level"] == "population") & (s["quantity"] == "or")]
    plain = predict(seq, PLAIN, seed=8)
    for o in OUTCOMES:  # transportability (prior sd 0) = the in-data prediction
        row = z[z["outcome"] == o].iloc[0]
        assert row["median"] == pytest.approx(np.median(plain[o].draws["population"]["or"]), rel=1e-9)
    c = base.extrapolation.contraction.set_index("parameter")
    assert {"d", "tau", "beta[comparator:mmf]", "beta[regimen:triple]", "extrapolation[effect:asian_fraction]"} <= set(c.index)
    assert c.loc["extrapolation[effect:asian_fraction]", "contraction"] == 0.0
    assert c.loc["d", "contraction"] == pytest.approx(1.0)  # degenerate posterior


def test_unseen_comparator_and_unstudied_phase(seq):
    """Maintenance vs AZA: no trial of the ordinal fit used AZA or studied maintenance:
    both get prior terms (phase also on the baseline, Normal(0, 1.5))."""
    p = predict(seq, load_targets()["maintenance_after_induction"], seed=9)
    rep = p.extrapolation
    assert rep.outside_data == ["comparator", "phase"]
    assert "fitted range [nan" not in rep.text and "no trial used aza" in rep.text
    keys = {r for r in rep.contraction["parameter"] if r.startswith("extrapolation[")}
    assert keys == {"extrapolation[effect:phase]", "extrapolation[baseline:phase]", "extrapolation[effect:comparator]"}
    # the unseen comparator's term moves the comparator arm only (on both steps): TAC's draws are those of
    # the same target with a comparator the trials used
    seen = predict(seq, load_targets()["maintenance_after_induction"].model_copy(update={"comparator": "ivcy"}), seed=9)
    for level in LEVELS:
        np.testing.assert_array_equal(p.probabilities[level]["tac"]["cr"], seen.probabilities[level]["tac"]["cr"])
    assert_coherent(p)


# ----------------------------------------------------------------------------- coherence and arithmetic
def test_coherent_in_every_draw_for_every_shipped_target(spread, td):
    cum = fake_ordinal_fit(td, {
        "a": ALPHA0[None, :, 0] + 0.5 * np.random.default_rng(2).standard_normal((S, 7)),
        "kappa": np.random.default_rng(3).normal(-3, 2, (S, 7)),  # gaps down to ~exp(-9): cut-points nearly tied
        "d": np.random.default_rng(4).normal(D0, 1.0, S), "tau": np.abs(np.random.default_rng(5).normal(0, 1, S)),
        "psi": np.random.default_rng(6).normal(0, 1, S), "psi_beta": np.random.default_rng(7).normal(0, 1, (S, 2)),
        "beta": np.random.default_rng(8).normal(0, 1, (S, 2))}, link="cumulative", cutpoint_specific=True)
    wild = fake_ordinal_fit(td, {  # step-specific effects of opposite sign, extreme baselines
        "alpha": np.random.default_rng(9).normal(0, 4, (S, 7, 2)), "d": np.random.default_rng(10).normal([2, -2], 1.5, (S, 2)),
        "tau": np.abs(np.random.default_rng(11).normal(0, 1, (S, 2))),
        "beta": np.random.default_rng(12).normal(0, 1, (S, 2, 2))}, cutpoint_specific=True)
    for fit in (spread, cum, wild):
        for name, t in load_targets().items():
            for extra in ({}, {"extrapolation_priors": {"asian_fraction": "normal(1, 3)"}}):
                assert_coherent(predict(fit, t, seed=10, sensitivity=False, **extra), (fit.design.link, name))


def test_derived_quantities_agree_with_the_probabilities(spread):
    p = predict(spread, NON_ASIAN, seed=11)
    for level in LEVELS:
        for o, cat in (("complete_response", "cr"), ("total_response", "resp")):
            d = p[o].draws[level]
            assert np.array_equal(d["p_tac"], p.probabilities[level]["tac"][cat])
            assert np.array_equal(d["p_comparator"], p.probabilities[level]["comparator"][cat])
            assert np.array_equal(d["rd"], d["p_tac"] - d["p_comparator"])
            assert np.array_equal(d["rr"], d["p_tac"] / d["p_comparator"])
            assert np.array_equal(d["nnt"], 1.0 / d["rd"])
            odds = (d["p_tac"] / (1 - d["p_tac"])) / (d["p_comparator"] / (1 - d["p_comparator"]))
            np.testing.assert_allclose(d["or"], odds, rtol=1e-9)
            assert np.array_equal(d["tac_better"], (d["p_tac"] > d["p_comparator"]).astype(float))
            assert np.array_equal(d["rd_above_margin"], (d["rd"] > p.margin).astype(float))
    t = p.table()
    for o in OUTCOMES:
        for level in LEVELS:
            tt = t[(t["outcome"] == o) & (t["level"] == level)].set_index("quantity")
            assert tt.loc["nnt", "median"] == pytest.approx(1 / tt.loc["rd", "median"], rel=1e-12)
            assert tt.loc["nnt", "lower"] == pytest.approx(1 / tt.loc["rd", "upper"], rel=1e-12)
            assert tt.loc["tac_better", "mean"] == pytest.approx(np.mean(p[o].draws[level]["tac_better"]))
    pr = t[t["outcome"] == "partial_response"]
    assert len(pr) == 4 and set(pr["quantity"]) == {"p_tac", "p_comparator"}
    for level in LEVELS:
        r = pr[(pr["level"] == level) & (pr["quantity"] == "p_tac")].iloc[0]
        assert r["median"] == pytest.approx(np.median(p.probabilities[level]["tac"]["pr"]))
    samp = p.samples("new_trial")
    assert np.array_equal(samp["p_cr_tac"] + samp["p_pr_tac"], p.probabilities["new_trial"]["tac"]["cr"]
                          + p.probabilities["new_trial"]["tac"]["pr"])


def test_non_asian_is_flagged_and_wider_than_the_in_data_target(spread):
    t = load_targets()
    a = predict(spread, t["asian_class_iii_iv"], seed=12)
    n = predict(spread, t["non_asian_class_iii_iv"], seed=12)
    ta, tn = (x.table().set_index(["outcome", "quantity", "level"]) for x in (a, n))
    for o in OUTCOMES:
        for q in ("rd", "or", "p_tac"):
            for level in LEVELS:
                wa = ta.loc[(o, q, level), "upper"] - ta.loc[(o, q, level), "lower"]
                wn = tn.loc[(o, q, level), "upper"] - tn.loc[(o, q, level), "lower"]
                assert wn > (1.3 if level == "population" else 1.05) * wa, (o, q, level)
    assert "asian_fraction" in n.extrapolation.outside_data and n.extrapolation.prior_driven
    assert "asian_fraction" not in a.extrapolation.outside_data and not a.extrapolation.prior_driven


def test_reproducible_with_a_seed(spread):
    a = predict(spread, NON_ASIAN, seed=13)
    b = predict(spread, NON_ASIAN, seed=13)
    c = predict(spread, NON_ASIAN, seed=14)
    for level in LEVELS:
        for arm in ("tac", "comparator"):
            for k in CATS:
                assert np.array_equal(a.probabilities[level][arm][k], b.probabilities[level][arm][k])
    pd.testing.assert_frame_equal(a.table(), b.table())
    assert a.extrapolation.text == b.extrapolation.text
    assert not np.array_equal(a.probabilities["new_trial"]["tac"]["cr"], c.probabilities["new_trial"]["tac"]["cr"])
    s1 = PredictionSet([predict(spread, t, seed=13) for t in (PLAIN, NON_ASIAN)])
    assert np.array_equal(s1["nonasian"].probabilities["new_trial"]["tac"]["cr"], a.probabilities["new_trial"]["tac"]["cr"])
    sub = predict(spread, PLAIN, seed=13, draws=500)
    assert sub.n_draws == 500
    with pytest.raises(ValueError, match="draws"):
        predict(spread, PLAIN, seed=13, draws=S + 1)


# ----------------------------------------------------------------------------- trial covariates
def test_study_covariates_come_from_the_matching_data(seq, td):
    st, src = study_covariates(seq)
    assert "bundled dataset 'tacrolimus_ln'" in src and list(st.index) == seq.design.study_ids
    assert st.loc["liu2015", "asian_fraction"] == 1.0
    st2, src2 = study_covariates(seq, td)
    assert src2 == "the data given to predict"
    with pytest.raises(ValueError, match="lacks the fitted trial"):
        study_covariates(seq, td.select(studies=["liu2015", "bao2008"]))
    # data the bundled dataset does not match (counts changed): covariates unknown, said so
    long = td.outcomes.merge(td.arms[["study", "arm", "treatment", "regimen"]], on=["study", "arm"])
    long = long.merge(td.studies[["design", "phase"]], left_on="study", right_index=True)
    long.loc[long["study"] == "liu2015", "n"] = long.loc[long["study"] == "liu2015", "n"] + 1
    fit = fake_ordinal_fit(long, {"alpha": degenerate_alpha(200), "d": const(D0, 200), "tau": const(TAU0, 200),
                                  "beta": np.tile([BMMF, BREG], (200, 1))})
    assert study_covariates(fit)[0] is None
    p = predict(fit, NON_ASIAN, seed=1)
    assert "study covariates unknown" in p.extrapolation.text
    inv = p.extrapolation.covariates.set_index(["covariate", "role"])
    assert "not reported by any trial" in inv.loc[("asian_fraction", "effect"), "status"]
    assert inv.loc[("asian_fraction", "effect"), "distance"] == 1.0  # worst case


# ----------------------------------------------------------------------------- outputs
def test_outputs_are_strict_and_name_the_outcomes(seq):
    ps = PredictionSet([predict(seq, t, seed=1) for t in (PLAIN, NON_ASIAN)])

    def no_nan(x):
        raise ValueError(f"non-standard JSON constant {x}")

    d = json.loads(format_predictions(ps, "json"), parse_constant=no_nan)
    assert len(d["predictions"]) == 2 * (2 * 16 + 4)
    assert {r["outcome"] for r in d["predictions"]} == {"complete_response", "total_response", "partial_response"}
    assert set(d["extrapolation"]) == {"plain/renal_response", "nonasian/renal_response"}
    na = [r for r in d["predictions"] if r["target"] == "nonasian"]
    assert all(r["extrapolation"]["outside_data"] == ["asian_fraction"] for r in na)
    table = format_predictions(ps, "table")
    assert "complete_response" in table and "partial_response" in table and "not evidence" in table
    csv = pd.read_csv(io.StringIO(format_predictions(ps, "csv")))
    assert set(csv["outcome"]) == {"complete_response", "total_response", "partial_response"}
    assert ps[("nonasian", "complete_response")].outcome == "complete_response"
    assert "OrdinalPrediction nonasian" in repr(ps["nonasian"])


def test_plots(seq):
    import matplotlib.pyplot as plt

    from bayesln.predict.plots import plot_targets

    ps = PredictionSet([predict(seq, t, seed=1) for t in (PLAIN, NON_ASIAN)])
    assert ps[1].plot().axes and plot_targets(ps).axes and plot_targets(ps, outcome="complete_response").axes
    plt.close("all")


def test_other_families_are_refused_with_a_message(monkeypatch, tmp_path):
    """``predict RUN`` on a run of a family without a prediction engine: a RunError naming
    the families it takes."""
    import types

    import bayesln.analysis
    from bayesln.predict.command import load_run_result
    from bayesln.runs import RunError

    fake = types.SimpleNamespace(spec=types.SimpleNamespace(model=types.SimpleNamespace(family="other")))
    monkeypatch.setattr(bayesln.analysis, "load_run", lambda p: fake)
    with pytest.raises(RunError, match="core-model, ordinal, joint or network run .*'other'"):
        load_run_result(tmp_path)


# ============================================================================= MCMC (slow)
@pytest.fixture(scope="module")
def tiny_fit(td):
    from bayesln.hierarchy.ordinal import fit_ordinal

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 2 x 150 draws fail the gate: the predictions below are asked for anyway
        # (allow_failed_gate=True) - coherence, not trust, is what these tests check
        return fit_ordinal(td, designs=("rct",), seed=20261123, draws=150, tune=150, chains=2, progressbar=False,
                           posterior_predictive=False, prior_draws=200)


@pytest.mark.slow
def test_tiny_fit_every_shipped_target_coherent_and_flagged(tiny_fit):
    targets = load_targets()
    preds = {name: predict(tiny_fit, t, seed=5, allow_failed_gate=True) for name, t in targets.items()}
    for name, p in preds.items():
        assert_coherent(p, name)
        for o in OUTCOMES:
            for level in LEVELS:
                d = p[o].draws[level]
                assert np.array_equal(d["rr"], d["p_tac"] / d["p_comparator"])
                assert np.array_equal(d["nnt"], 1.0 / d["rd"])
    n, a = preds["non_asian_class_iii_iv"], preds["asian_class_iii_iv"]
    assert "asian_fraction" in n.extrapolation.outside_data and n.extrapolation.prior_driven
    for o in OUTCOMES:
        wa = np.subtract(*np.quantile(a[o].draws["population"]["rd"], [0.975, 0.025]))
        wn = np.subtract(*np.quantile(n[o].draws["population"]["rd"], [0.975, 0.025]))
        assert wn > 1.3 * wa, o
    assert preds["maintenance_after_induction"].extrapolation.outside_data == ["comparator", "phase"]
    # reproducible with a seed on a real fit
    again = predict(tiny_fit, targets["non_asian_class_iii_iv"], seed=5, allow_failed_gate=True)
    pd.testing.assert_frame_equal(again.table(), n.table())


@pytest.mark.slow
def test_tiny_fit_population_level_is_the_fits_own_targets(tiny_fit):
    """At the reference covariates the population level is the model's reference-baseline
    target: P(CR), P(CR or PR) equal the fit's P_cr / P_resp draw by draw."""
    P = tiny_fit.probability_draws("target")
    tg = tiny_fit.design.targets["target"].tolist()
    for reg, comp, t_name, c_name in (("duo", "ivcy", "TAC duo", "IVCY"), ("triple", "mmf", "TAC triple", "MMF")):
        p = predict(tiny_fit, {"name": "ref", "regimen": reg, "comparator": comp}, seed=1, allow_failed_gate=True)
        pop = p.probabilities["population"]
        for arm, name in (("tac", t_name), ("comparator", c_name)):
            k = tg.index(name)
            np.testing.assert_allclose(pop[arm]["cr"], P["cr"][:, k], rtol=0, atol=1e-12)
            np.testing.assert_allclose(pop[arm]["resp"], P["resp"][:, k], rtol=0, atol=1e-12)
            np.testing.assert_allclose(pop[arm]["pr"], P["pr"][:, k], rtol=0, atol=1e-12)
    c = predict(tiny_fit, NON_ASIAN, seed=1, allow_failed_gate=True).extrapolation.contraction.set_index("parameter")
    assert c.loc["d", "contraction"] > 0.5 and "tau" in c.index


@pytest.fixture(scope="module")
def ordinal_run(tmp_path_factory):
    from typer.testing import CliRunner

    from bayesln.cli import app

    out = tmp_path_factory.mktemp("ordinal_run")
    r = CliRunner().invoke(app, ["fit", str(ROOT / "models" / "ordinal_response.toml"), "--draws", "100", "--tune", "100",
                                 "--chains", "2", "--out", str(out), "--quiet", "--allow-failed-gate"])
    assert r.exit_code == 0, (r.stderr, r.exception)
    return out / "ordinal_response"


@pytest.mark.slow
def test_cli_predict_on_an_ordinal_run_folder(ordinal_run):
    from typer.testing import CliRunner

    from bayesln.cli import app
    from bayesln.predict.command import load_run_result

    runner = CliRunner()
    allow = [] if json.loads((ordinal_run / "run.json").read_text())["status"] == "ok" else ["--allow-failed-gate"]
    r = runner.invoke(app, ["predict", str(ordinal_run), "--format", "json", *allow])
    assert r.exit_code == 0, (r.stderr, r.exception)
    d = json.loads(r.stdout)
    recs = pd.DataFrame(d["predictions"])
    assert set(recs["target"]) == set(load_targets())
    assert set(recs["outcome"]) == {"complete_response", "total_response", "partial_response"}
    assert {"population", "new_trial"} == set(recs["level"])
    na = recs[recs["target"] == "non_asian_class_iii_iv"]
    assert all("asian_fraction" in e["outside_data"] for e in na["extrapolation"])
    assert "from the run folder's data.csv" in d["extrapolation"]["non_asian_class_iii_iv/renal_response"]["text"]
    # medians of P(CR) below those of P(CR or PR), per target, arm and level
    med = recs[recs["quantity"].isin(["p_tac", "p_comparator"])].pivot_table(
        index=["target", "quantity", "level"], columns="outcome", values="median")
    assert (med["complete_response"] <= med["total_response"]).all()
    # the command is the Python API on the loaded run, reproducibly
    res, spec = load_run_result(ordinal_run)
    assert isinstance(res, OrdinalResult)
    assert res.status == json.loads((ordinal_run / "run.json").read_text())["status"]  # same gate as the fit
    one = runner.invoke(app, ["predict", str(ordinal_run), "--target", "asian_class_v", "--format", "csv", *allow])
    assert one.exit_code == 0, one.stderr
    printed = pd.read_csv(io.StringIO(one.stdout))
    p = predict(res, "asian_class_v", seed=spec.sampler.seed, allow_failed_gate=bool(allow))
    assert_coherent(p)
    ref = p.table()
    np.testing.assert_allclose(printed["median"].to_numpy(float), ref["median"].to_numpy(float), rtol=1e-5,
                               equal_nan=True)
    table = runner.invoke(app, ["predict", str(ordinal_run), "--target", "asian_class_v", *allow])
    assert table.exit_code == 0 and "CR or PR" in table.stdout and "class_v_fraction" in table.stdout
