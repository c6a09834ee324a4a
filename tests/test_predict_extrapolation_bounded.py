"""Bounded extrapolation of in-model covariates, natural-unit priors and the prior share
of a prediction (bayesln.predict; bayesln.hierarchy.design).

Fast tests: fits built by hand from arrays (as tests/test_predict.py does), so every
number has a closed form:

* a continuous covariate in the model is used up to the fitted range and the rest gets
  the extrapolation prior: ``log-OR = d + beta (clip(x) - c) + Delta (x - clip(x))``,
  checked draw by draw with the same standard normals (the engine's seeded streams);
* the prior share of a prediction counts the prior part ``(1 - kappa) Var_post`` of each
  fitted coefficient: a coefficient whose posterior equals its prior gives share 1, one
  the data pin down share ~0, and with independent (sample-orthogonal) draws the share
  is exactly ``(1 - kappa) a^2 V_beta / (V_d + a^2 V_beta)``;
* a coefficient carried by one trial is reported "data-thin: one trial" (core and ordinal
  engines).

Slow tests (MCMC, 2 x 300 draws, the relaxed SANITY_GATE): the class V modifier fit of the
bundled RCTs predicting a pure class V population, and the maintenance target of
models/predict_total_response.toml's model.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _mcmc import SANITY_GATE
from scipy.special import logit

import bayesln
from bayesln import _arviz
from bayesln.hierarchy import build_design
from bayesln.hierarchy.diagnostics import Diagnostics, GateThresholds
from bayesln.hierarchy.priors import Priors
from bayesln.hierarchy.result import FitResult
from bayesln.predict import Target, load_targets, predict
from bayesln.predict.engine import coefficient_support, stream

ROOT = Path(__file__).resolve().parents[1]
S = 20000
D0, M0 = 0.8, 0.2
CLASS_V = (0.0, 0.05, 0.10, 0.15, 0.20)  # mean 0.10, range [0, 0.20]


# ----------------------------------------------------------------------------- fixtures
def arm_table(class_v=CLASS_V, phases=None, ages=(25, 28, 30, 33, 35), extra_controls=()):
    """Two-arm trials s1..s5 (TAC duo vs IVCY); ``extra_controls``: (study, class_v)
    single-arm control studies (they inform exchangeable baselines only)."""
    phases = phases or ("induction",) * len(class_v)
    rows = []
    for i, (cv, ph, age) in enumerate(zip(class_v, phases, ages)):
        s = f"s{i + 1}"
        for arm, treat, reg in (("tac", "tac", "duo"), ("ivcy", "ivcy", "control")):
            rows.append({"study": s, "arm": arm, "treatment": treat, "regimen": reg, "events": 10 + i, "n": 30,
                         "class_v_fraction": cv, "asian_fraction": 1.0, "mean_age": float(age), "phase": ph})
    for s, cv in extra_controls:
        rows.append({"study": s, "arm": "ivcy", "treatment": "ivcy", "regimen": "control", "events": 12, "n": 30,
                     "class_v_fraction": cv, "asian_fraction": 1.0, "mean_age": 30.0, "phase": "induction"})
    return pd.DataFrame(rows)


def fake_fit(post: dict, *, data=None, baseline="exchangeable", effect_modifiers=(), baseline_covariates=(),
             priors=None) -> FitResult:
    """A core FitResult whose posterior draws are ``post`` (one chain)."""
    data = arm_table() if data is None else data
    des = build_design(data, "total_response", baseline=baseline, effect_modifiers=effect_modifiers,
                       baseline_covariates=baseline_covariates, warn=False)
    n = len(np.asarray(next(iter(post.values()))))
    dims = {"mu": ("study",), "beta": ("covariate",), "gamma": ("baseline_covariate",)}
    dv = {k: (("chain", "draw") + dims.get(k, ())[: np.ndim(v) - 1], np.asarray(v, float)[None]) for k, v in post.items()}
    dv["eta"] = (("chain", "draw", "arm"), np.zeros((1, n, des.n_arms)))
    coords = {"chain": [0], "draw": np.arange(n), "study": des.study_ids, "arm": des.arm_ids}
    if des.effect_names:
        coords["covariate"] = des.effect_names
    if des.baseline_names:
        coords["baseline_covariate"] = des.baseline_names
    idata = _arviz.make_inference_data({"posterior": xr.Dataset(dv, coords=coords)})
    idata.posterior.attrs["covariate_transforms"] = des.transforms_json()
    diag = Diagnostics(table=pd.DataFrame(columns=["parameter", "r_hat", "ess_bulk", "ess_tail", "ok"]), divergences=0,
                       bfmi=np.array([1.0]), thresholds=GateThresholds())
    return FitResult(idata=idata, design=des, diagnostics=diag, config={"priors": (priors or Priors()).to_json_dict()},
                     seed=0, backend="fake")


def const(v, n=S):
    return np.full(n, float(v))


def exact_normals(k, seed=0, n=S):
    """k columns of draws with sample mean 0, sample SD 1 (ddof=1) and sample correlation
    exactly 0 (Gram-Schmidt): variances and covariances of combinations are closed forms."""
    z = np.random.default_rng(seed).standard_normal((n, k))
    q, _ = np.linalg.qr(z - z.mean(axis=0))
    return q * math.sqrt(n - 1)


def base_post(n=S):
    return {"d": const(D0, n), "tau": const(0.3, n), "m": const(M0, n), "sigma_mu": const(0.4, n)}


def term_normals(target_name, key, seed, n=S, outcome="total_response"):
    """The standard normals of an extrapolation term: the engine's seeded stream."""
    return stream(seed, target_name, outcome, "extrapolation", key).standard_normal(n)


def contraction_of(p, name):
    return float(p.extrapolation.contraction.set_index("parameter").loc[name, "contraction"])


# ----------------------------------------------------------------------------- natural units
def test_default_prior_is_per_natural_unit_of_the_covariate():
    """The design column of a fraction is x - mean (per full switch 0 -> 1), of mean_age
    (x - mean) / 10: with the default beta ~ Normal(0, 1) the prior of the log-OR change
    for a full switch of class V is Normal(0, 1), whatever the trials' spread (reference:
    the definition; before, the unit was the SD 0.079 of these five values)."""
    des = build_design(arm_table(), "total_response", effect_modifiers=("class_v_fraction", "mean_age"), warn=False)
    x = pd.DataFrame(des.X_effect, index=des.arm_ids, columns=des.effect_names)
    assert x.loc["s5:tac", "class_v_fraction"] - x.loc["s1:tac", "class_v_fraction"] == pytest.approx(0.2)
    assert x.loc["s5:tac", "mean_age"] - x.loc["s1:tac", "mean_age"] == pytest.approx(1.0)  # 35 - 25 years = 1 unit
    assert des.transforms["beta:class_v_fraction"].describe().startswith(
        "per a full switch of the population (0 -> 1) of class_v_fraction")


def test_fit_with_old_per_sd_transforms_is_refused():
    """A fit whose stored transforms are per SD (no scaling key, as an earlier bayesln
    wrote them) is refused by predict with a message saying to refit."""
    fit = fake_fit({**base_post(200), "beta": np.zeros((200, 1))}, effect_modifiers=("class_v_fraction",))
    old = json.loads(fit.idata.posterior.attrs["covariate_transforms"])
    for v in old.values():
        v.pop("scaling"), v.pop("lower"), v.pop("upper")
        v["scale"] = float(np.std(CLASS_V, ddof=1))
    fit.idata.posterior.attrs["covariate_transforms"] = json.dumps(old)
    with pytest.raises(ValueError, match="earlier bayesln .*class_v_fraction.*Refit"):
        predict(fit, Target(name="x", class_v_fraction=0.1, comparator="ivcy"), seed=1)


# ----------------------------------------------------------------------------- bounded extrapolation
B_PINNED = 3.0  # a steep fitted slope: linear extrapolation to x = 1 would add 2.7 to the log-OR


@pytest.fixture(scope="module")
def pinned():
    """class_v_fraction in the model with a slope the data pin at 3.0 (no posterior spread)."""
    return fake_fit({**base_post(), "beta": np.full((S, 1), B_PINNED)}, effect_modifiers=("class_v_fraction",))


def test_outside_the_range_the_fitted_slope_stops_at_the_bound(pinned):
    """Target class_v_fraction = 1, fitted on [0, 0.2] centred at 0.1: per draw
    log-OR = d + 3.0 (0.2 - 0.1) + Delta * 0.8 with Delta ~ Normal(0, 0.5) drawn from the
    term's stream - not d + 3.0 * 0.9 (the unbounded line)."""
    t = Target(name="pure_v", class_v_fraction=1.0, comparator="ivcy")
    p = predict(pinned, t, seed=7)
    z = term_normals("pure_v", "effect:class_v_fraction", 7)
    ref = D0 + B_PINNED * (0.2 - 0.1) + 0.5 * z * 0.8
    np.testing.assert_allclose(p.draws["population"]["log_or"], ref, rtol=0, atol=1e-12)
    # the comparator arm: class V is not a baseline covariate, so its whole shift from the
    # trials' mean 0.1 is the baseline prior Normal(0, 0.5) x 0.9
    zb = term_normals("pure_v", "baseline:class_v_fraction", 7)
    np.testing.assert_allclose(logit(p.draws["population"]["p_comparator"]), M0 + 0.5 * zb * 0.9, rtol=0, atol=1e-9)
    rep = p.extrapolation
    assert rep.outside_data == ["class_v_fraction"] and rep.status == "outside the data"
    assert rep.extrapolated == ["class_v_fraction"] and rep.unidentified == ["class_v_fraction"]  # baseline part
    inv = rep.covariates.set_index(["covariate", "role"])
    row = inv.loc[("class_v_fraction", "effect")]
    assert bool(row["in_model"]) and bool(row["outside_data"]) and row["distance"] == pytest.approx(0.8)
    assert "used up to 0.2" in row["status"] and "normal(mu=0, sigma=0.5)" in row["status"]
    assert "the fitted slope is not extrapolated" in rep.text
    # the whole spread of the log-OR is the extrapolation prior's: share 1
    assert rep.prior_share["population"]["log_or"] == pytest.approx(1.0)
    # the term is in the contraction table (posterior = prior) and in the sensitivity table
    assert contraction_of(p, "extrapolation[effect:class_v_fraction]") == 0.0
    s = rep.sensitivity
    z0 = s[(s["term"] == "effect:class_v_fraction") & (s["scenario"] == "sd 0 (transportable)")
           & (s["level"] == "population") & (s["quantity"] == "or")].iloc[0]
    assert z0["median"] == pytest.approx(math.exp(D0 + B_PINNED * 0.1))  # held at the bound


def test_user_extrapolation_prior_replaces_the_default_beyond_the_range(pinned):
    t = Target(name="pure_v", class_v_fraction=1.0, comparator="ivcy")
    p = predict(pinned, t, seed=7, extrapolation_priors={"class_v_fraction": "normal(0.2, 1)"})
    z = term_normals("pure_v", "effect:class_v_fraction", 7)
    np.testing.assert_allclose(p.draws["population"]["log_or"], D0 + B_PINNED * 0.1 + (0.2 + 1.0 * z) * 0.8,
                               rtol=0, atol=1e-12)


def test_below_the_range_clips_at_the_lower_bound():
    """A range [0.1, 0.3] and a target at 0: the coefficient is used down to 0.1 and the
    remaining -0.1 gets the prior (distance negative)."""
    data = arm_table(class_v=(0.1, 0.15, 0.2, 0.25, 0.3))
    fit = fake_fit({**base_post(), "beta": np.full((S, 1), B_PINNED)}, data=data, effect_modifiers=("class_v_fraction",))
    p = predict(fit, Target(name="no_v", class_v_fraction=0.0, comparator="ivcy"), seed=3)
    z = term_normals("no_v", "effect:class_v_fraction", 3)
    np.testing.assert_allclose(p.draws["population"]["log_or"], D0 + B_PINNED * (0.1 - 0.2) + 0.5 * z * (-0.1),
                               rtol=0, atol=1e-12)
    assert "class_v_fraction" in p.extrapolation.outside_data


def test_inside_the_range_is_not_flagged_and_is_the_linear_prediction():
    """Inside [0, 0.2] (and at its bound) no term is added and the log-OR is exactly the
    meta-regression's d + beta (x - 0.1), draw by draw, with a beta that has spread."""
    rng = np.random.default_rng(4)
    beta = rng.normal(1.5, 0.7, S)
    fit = fake_fit({**base_post(), "d": rng.normal(D0, 0.2, S), "beta": beta[:, None]},
                   effect_modifiers=("class_v_fraction",))
    for x in (0.15, 0.2, 0.0):
        p = predict(fit, Target(name="in", class_v_fraction=x, comparator="ivcy"), seed=5)
        np.testing.assert_allclose(p.draws["population"]["log_or"], fit.draws("d") + beta * (x - 0.1), rtol=0, atol=1e-12)
        rep = p.extrapolation
        assert "class_v_fraction" not in rep.outside_data and rep.extrapolated == []
        assert not any(r.startswith("extrapolation[effect:") for r in rep.contraction["parameter"])
        assert "within the fitted range" in rep.covariates.set_index(["covariate", "role"]).loc[
            ("class_v_fraction", "effect"), "status"]


def test_the_range_is_that_of_the_trials_informing_the_coefficient():
    """A single-arm control study with class V 0.9 informs the exchangeable baselines (so
    the baseline coefficient gamma is fitted on [0, 0.9]) but not the effect modifier
    (fitted on the TAC trials' [0, 0.2]): a target at 0.5 is beyond the effect range only."""
    data = arm_table(extra_controls=(("c1", 0.9),))
    fit = fake_fit({**base_post(), "mu": np.zeros((S, 6)), "beta": np.full((S, 1), 1.0), "gamma": np.full((S, 1), -1.0)},
                   data=data, effect_modifiers=("class_v_fraction",), baseline_covariates=("class_v_fraction",))
    trb, trg = fit.design.transforms["beta:class_v_fraction"], fit.design.transforms["gamma:class_v_fraction"]
    assert (trb.lower, trb.upper) == (0.0, 0.2) and (trg.lower, trg.upper) == (0.0, 0.9)
    p = predict(fit, Target(name="half_v", class_v_fraction=0.5, comparator="ivcy"), seed=2)
    inv = p.extrapolation.covariates.set_index(["covariate", "role"])
    assert bool(inv.loc[("class_v_fraction", "effect"), "outside_data"])
    assert not bool(inv.loc[("class_v_fraction", "baseline"), "outside_data"])
    assert [t for t in p.extrapolation.contraction["parameter"] if t.startswith("extrapolation[")] == [
        "extrapolation[effect:class_v_fraction]"]
    # comparator arm: the plain linear baseline m + gamma (0.5 - c), c = the mean class V of the six studies
    cg = float(np.mean([*CLASS_V, 0.9]))
    np.testing.assert_allclose(logit(p.draws["population"]["p_comparator"]), M0 - 1.0 * (0.5 - cg), atol=1e-9)


# ----------------------------------------------------------------------------- the prior share
def _age_fit(beta, d=None):
    post = {**base_post(), "beta": np.asarray(beta, float)[:, None]}
    if d is not None:
        post["d"] = d
    return fake_fit(post, effect_modifiers=("mean_age",))


# the lower bound of the ages 25-35 (centre 30.2): a = (25 - 30.2) / 10; the target's own comparator-arm risk
# keeps baseline extrapolation terms out, so only the coefficient varies
AGE_TARGET = Target(name="young", mean_age=25.0, comparator="ivcy", baseline_risk=0.4)
A_AGE = (25.0 - 30.2) / 10


def test_share_is_one_when_the_coefficient_posterior_is_its_prior():
    """beta[mean_age] has exactly its prior's variance (Normal(0, 1): contraction 0) and
    nothing else varies: all of the log-OR's variance is prior."""
    fit = _age_fit(exact_normals(1, seed=1)[:, 0])
    p = predict(fit, AGE_TARGET, seed=1)
    assert contraction_of(p, "beta[mean_age]") == pytest.approx(0.0, abs=1e-9)
    sh = p.extrapolation.prior_share["population"]
    assert sh["log_or"] == pytest.approx(1.0) and sh["p_tac"] == pytest.approx(1.0) and sh["rd"] == pytest.approx(1.0)
    assert sh["p_comparator"] == 0.0  # the target's fixed comparator-arm risk has no variance
    assert p.extrapolation.prior_driven and "DRIVEN BY THE PRIOR" in p.extrapolation.text
    m = p.extrapolation.modifiers.set_index("parameter").loc["beta[mean_age]"]
    assert m["prior_share"] == pytest.approx(1.0) and m["status"] == "data-thin: weakly informed"
    assert p.extrapolation.status == "data-thin: weakly informed" and "Extrapolation: none" not in p.extrapolation.text
    assert p.extrapolation.outside_data == []  # inside the range: weakly informed, not outside
    t = p.table()
    assert t.loc[(t["level"] == "population") & (t["quantity"] == "or"), "prior_driven"].all()


def test_share_is_near_zero_when_the_data_pin_the_coefficient():
    """beta[mean_age] with posterior SD 0.01 (contraction 1 - 1e-4) and d with SD 0.25,
    sample-uncorrelated: share = 1e-4 a^2 0.01^2 / (0.25^2 + a^2 0.01^2), about 1e-8."""
    z = exact_normals(2, seed=2)
    fit = _age_fit(0.5 + 0.01 * z[:, 0], d=D0 + 0.25 * z[:, 1])
    p = predict(fit, AGE_TARGET, seed=1)
    kap = contraction_of(p, "beta[mean_age]")
    assert kap == pytest.approx(1 - 1e-4, abs=1e-9)
    ref = (1 - kap) * A_AGE**2 * 1e-4 / (0.25**2 + A_AGE**2 * 1e-4)
    assert p.extrapolation.prior_share["population"]["log_or"] == pytest.approx(ref, abs=1e-9)
    assert not p.extrapolation.prior_driven
    assert p.extrapolation.modifiers.set_index("parameter").loc["beta[mean_age]", "status"] == "informed"
    assert p.extrapolation.status == "none" and "Extrapolation: none" in p.extrapolation.text


def test_share_matches_the_closed_form_for_a_partly_informed_coefficient():
    """Posterior SD of beta 0.5 under its Normal(0, 1) prior: contraction 0.75, so a
    quarter of its variance is prior. With d and beta sample-uncorrelated the population
    log-OR share is exactly 0.25 a^2 0.25 / (0.2^2 + a^2 0.25)."""
    z = exact_normals(2, seed=3)
    fit = _age_fit(0.3 + 0.5 * z[:, 0], d=D0 + 0.2 * z[:, 1])
    p = predict(fit, AGE_TARGET, seed=1)
    assert contraction_of(p, "beta[mean_age]") == pytest.approx(0.75, abs=1e-12)
    ref = 0.25 * A_AGE**2 * 0.25 / (0.2**2 + A_AGE**2 * 0.25)
    assert p.extrapolation.prior_share["population"]["log_or"] == pytest.approx(ref, rel=1e-9)
    parts = p.extrapolation.prior_share_parts["total_response"]["population"]
    assert parts["coefficients"]["log_or"] == pytest.approx(ref, rel=1e-9) and parts["terms"]["log_or"] == 0.0
    assert parts["by_parameter"]["beta[mean_age]"]["log_or"] == pytest.approx(ref, rel=1e-9)


def test_share_inside_the_range_vs_far_outside():
    """beta pinned (no spread), d with SD 0.25: inside the range nothing is prior (share
    0); at mean_age 65 (30 years beyond 35) the term Normal(0, 0.025) x 30 adds variance
    0.75^2, share 0.75^2 / (0.25^2 + 0.75^2) = 0.9 up to the Monte Carlo covariance of the
    independent streams (|error| < 0.02 at 20,000 draws)."""
    fit = _age_fit(np.full(S, 0.4), d=D0 + 0.25 * exact_normals(1, seed=4)[:, 0])
    inside = predict(fit, Target(name="in", mean_age=33.0, comparator="ivcy", baseline_risk=0.4), seed=6)
    far = predict(fit, Target(name="old", mean_age=65.0, comparator="ivcy", baseline_risk=0.4), seed=6)
    assert inside.extrapolation.prior_share["population"]["log_or"] == pytest.approx(0.0, abs=1e-12)
    assert inside.extrapolation.outside_data == [] and not inside.extrapolation.prior_driven
    assert far.extrapolation.prior_share["population"]["log_or"] == pytest.approx(0.9, abs=0.02)
    assert far.extrapolation.outside_data == ["mean_age"] and far.extrapolation.prior_driven
    z = term_normals("old", "effect:mean_age", 6)
    np.testing.assert_allclose(far.draws["population"]["log_or"], fit.draws("d") + 0.4 * (35 - 30.2) / 10 + 0.025 * z * 30,
                               rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- data-thin: one trial
def test_core_coefficient_carried_by_one_trial_is_data_thin():
    """phase in the model with one maintenance trial (s5) among five: a maintenance target
    is inside the data but rests on s5; its coefficient at its prior gives share 1."""
    data = arm_table(phases=("induction",) * 4 + ("maintenance",))
    fit = fake_fit({**base_post(), "beta": exact_normals(1, seed=5)}, data=data, effect_modifiers=("phase",))
    p = predict(fit, Target(name="maint", phase="maintenance", comparator="ivcy"), seed=1)
    rep = p.extrapolation
    assert rep.outside_data == [] and rep.status == "data-thin: one trial"
    m = rep.modifiers.set_index("parameter").loc["beta[phase:maintenance]"]
    assert (m["n_trials"], m["trials"], m["n_regression"]) == (1, "s5", 5)
    assert m["contraction"] == pytest.approx(0.0, abs=1e-9) and m["prior_share"] == pytest.approx(1.0)
    assert "Extrapolation: none" not in rep.text and "Extrapolation: data-thin: one trial" in rep.text
    assert "Data-thin: beta[phase:maintenance]" in rep.text and "rests on one trial (s5) of 5" in rep.text
    assert rep.compact()["data_thin"] == ["beta[phase:maintenance]"] and rep.compact()["status"] == "data-thin: one trial"
    # the same fit, a target that uses no coefficient: nothing to report
    plain = predict(fit, Target(name="plain", comparator="ivcy"), seed=1)
    assert plain.extrapolation.status == "none" and len(plain.extrapolation.modifiers) == 0
    assert "Extrapolation: none" in plain.extrapolation.text


def test_coefficient_support_counts_the_smaller_group():
    """Reference: counting by hand. A 0/1 contrast is as informed as its smaller group; a
    continuous covariate by the trials away from its most common value."""
    s = pd.Series
    assert coefficient_support(s([0, 0, 0, 1.0], index=list("abcd"))) == {"n_trials": 1, "n_regression": 4, "trials": "d"}
    assert coefficient_support(s([1, 1, 0, 1.0], index=list("abcd")))["trials"] == "c"
    assert coefficient_support(s([0, 1, 0, 1.0], index=list("abcd")))["trials"] == "b, d"  # tie: 0 is the reference
    assert coefficient_support(s([0, 0, 0.19, np.nan], index=list("abcd"))) == {"n_trials": 1, "n_regression": 3,
                                                                                 "trials": "c"}
    assert coefficient_support(s([25, 28, 30.0], index=list("abc")))["n_trials"] == 2


def test_ordinal_coefficient_carried_by_one_trial_is_data_thin():
    """Ordinal model of the bundled induction RCTs without Mok 2016: MMF is the comparator
    of one trial (Amudalapalli 2025), so an MMF target leans on beta[comparator:mmf]
    alone; with that coefficient at its Normal(0, 1) prior and everything else fixed the
    prior share of both outcomes' log-OR is 1 (the ordinal engine's data part)."""
    from bayesln.hierarchy.ordinal import (
        OrdinalPriors,
        OrdinalResult,
        build_ordinal_design,
    )
    from bayesln.hierarchy.priors import resolve_tau_prior

    td = bayesln.load_dataset("tacrolimus_ln").select(exclude_studies=["mok2016"])
    des = build_ordinal_design(td, designs=("rct",))
    assert des.effect_names == ["comparator:mmf", "regimen:triple"]
    mmf = td.arms[(td.arms["treatment"] == "mmf") & td.arms["study"].isin(des.study_ids)]["study"].unique().tolist()
    assert mmf == ["amudalapalli2025"]  # independent count from the arm table
    n, k = 4000, len(des.study_ids)
    post = {"alpha": np.tile(np.linspace(-0.5, 0.8, 2 * k).reshape(k, 2), (n, 1, 1)), "d": const(0.7, n),
            "tau": const(0.3, n), "beta": np.column_stack([exact_normals(1, seed=6, n=n)[:, 0], np.full(n, 0.3)])}
    dims = {"alpha": ("study", "stage"), "beta": ("covariate",)}
    dv = {kk: (("chain", "draw") + dims.get(kk, ()), v[None]) for kk, v in post.items()}
    coords = {"chain": [0], "draw": np.arange(n), "study": des.study_ids, "stage": list(des.stages),
              "covariate": des.effect_names}
    idata = _arviz.make_inference_data({"posterior": xr.Dataset(dv, coords=coords)})
    pr = OrdinalPriors()
    priors = pr.model_dump(mode="json") | {"tau": resolve_tau_prior(pr.tau, "total_response").model_dump(mode="json")}
    fit = OrdinalResult(idata=idata, design=des, config={"family": "ordinal", "link": "sequential", "priors": priors,
                                                         "baseline": "independent", "reference_baseline": "auto"},
                        diagnostics=Diagnostics(table=pd.DataFrame(columns=["parameter", "r_hat", "ess_bulk", "ess_tail",
                                                                           "ok"]), divergences=0, bfmi=np.array([1.0]),
                                                thresholds=GateThresholds()), seed=0, backend="fake")
    p = predict(fit, Target(name="mmf", regimen="duo", comparator="mmf", phase="induction"), seed=2, data=td)
    rep = p.extrapolation
    m = rep.modifiers.set_index("parameter").loc["beta[comparator:mmf]"]
    assert (m["n_trials"], m["trials"]) == (1, "amudalapalli2025") and m["status"] == "data-thin: one trial"
    assert m["contraction"] == pytest.approx(0.0, abs=1e-9)
    for o in ("complete_response", "total_response"):
        assert p.predictions[o].shares["population"]["log_or"] == pytest.approx(1.0)
    assert rep.status == "data-thin: one trial" and "rests on one trial (amudalapalli2025)" in rep.text
    # an IVCY target uses no coefficient: no share, status none
    q = predict(fit, Target(name="ivcy", regimen="duo", comparator="ivcy", phase="induction"), seed=2, data=td)
    assert q.extrapolation.status == "none" and q.predictions["total_response"].shares["population"]["log_or"] == 0.0


# ============================================================================= MCMC (slow)
TINY = {"draws": 300, "tune": 300, "chains": 2}
#: the class V fit: 4 trials, ~1 s for 4 x 10,000 draws. Its population log-OR prior share
#: is about 0.52 (measured: 0.515 at 4 x 5,000 draws; 0.512-0.546 over 12 seeds at 4 x 2,500,
#: SD 0.01), so small runs (SD 0.025 at 2 x 300) would cross the 0.5 line by chance
CLASS_V_MCMC = {"draws": 10000, "tune": 1000, "chains": 4}


@pytest.mark.slow
def test_class_v_modifier_fit_pure_class_v_target_is_bounded_and_prior_driven():
    """complete_response, bundled RCTs, exchangeable baselines, class_v_fraction as effect
    modifier (4 trials, class V 0-0.19): the pure class V target (asian_class_v). Before:
    P(CR on TAC) 0%, OR 0.01 (0.00-7.7), 'the data still dominate'. Now the fitted slope
    stops at 0.19 (checked draw by draw against d + beta (0.19 - c) + Delta 0.81), no
    probability median leaves [1%, 99%], the target is flagged outside the data and its
    prior share is at least 0.5."""
    from bayesln.hierarchy import fit_core

    td = bayesln.load_dataset("tacrolimus_ln").select(designs="rct")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fit = fit_core(td, "complete_response", baseline="exchangeable", effect_modifiers=("class_v_fraction",), seed=11,
                       gate=SANITY_GATE, progressbar=False, prior_predictive=False, **CLASS_V_MCMC)
    tr = fit.design.transforms["beta:class_v_fraction"]
    # independent reference: the class V fractions of the trials in the regression
    vals = td.studies.loc[fit.design.study_ids, "class_v_fraction"].astype(float)
    assert (tr.lower, tr.upper, tr.scale) == (vals.min(), vals.max(), 1.0) and tr.center == pytest.approx(vals.mean())
    target = load_targets()["asian_class_v"]
    p = predict(fit, target, seed=3, allow_failed_gate=True)
    n = len(fit.draws("d"))
    z = term_normals("asian_class_v", "effect:class_v_fraction", 3, n=n, outcome="complete_response")
    zr = term_normals("asian_class_v", "effect:regimen", 3, n=n, outcome="complete_response")
    assert {t for t in p.extrapolation.contraction["parameter"] if t.startswith("extrapolation[effect:")} == {
        "extrapolation[effect:class_v_fraction]", "extrapolation[effect:regimen]"}
    reg = p.extrapolation.covariates.set_index(["covariate", "role"]).loc[("regimen", "effect"), "distance"]
    ref = fit.draws("d") + fit.draws("beta")[:, 0] * (tr.upper - tr.center) + 0.5 * z * (1 - tr.upper) + 0.5 * zr * reg
    np.testing.assert_allclose(p.draws["population"]["log_or"], ref, rtol=0, atol=1e-9)
    for level in ("population", "new_trial"):
        d = p.draws[level]
        for q in ("p_tac", "p_comparator"):
            assert 0.01 <= float(np.median(d[q])) <= 0.99, (level, q)
        assert 0.01 <= float(np.mean(d["tac_better"])) <= 0.99
        assert 0.01 <= float(np.median(d["or"])) <= 100
    rep = p.extrapolation
    assert "class_v_fraction" in rep.outside_data and "class_v_fraction" in rep.extrapolated
    share = rep.prior_share["population"]
    assert share["log_or"] >= 0.5 and rep.prior_driven
    # the decomposition's reference, from the draws: the data part of the log-OR is d +
    # beta's data part at the bound; the two terms' variance is their priors' (0.5 x 0.81,
    # 0.5 x 0.25) - closed form instead of the draws' sample variance
    kap = min(max(1 - np.var(fit.draws("beta")[:, 0], ddof=1), 0.0), 1.0)
    b = fit.draws("beta")[:, 0]
    data_part = fit.draws("d") + (b.mean() + math.sqrt(kap) * (b - b.mean())) * (tr.upper - tr.center)
    v_terms = (0.5 * (1 - tr.upper)) ** 2 + (0.5 * reg) ** 2
    v_all = np.var(fit.draws("d") + b * (tr.upper - tr.center)) + v_terms
    assert share["log_or"] == pytest.approx(1 - np.var(data_part) / v_all, abs=0.01)  # MC covariances, 40,000 draws
    assert "DRIVEN BY THE PRIOR" in rep.text and "data still dominate" not in rep.text
    t = p.table()
    assert t["prior_share"].notna().all() and (t["outside_data"].str.contains("class_v_fraction")).all()
    m = rep.modifiers.set_index("parameter").loc["beta[class_v_fraction]"]
    assert (m["n_trials"], m["trials"]) == (1, "mok2016")  # the one trial away from class V 0


@pytest.mark.slow
def test_maintenance_target_reports_its_one_trial_phase_coefficient():
    """models/predict_total_response.toml's model: the phase coefficient rests on Chen
    2012 alone. The report names it with its contraction (= 1 - Var(beta draws) / 1, the
    Normal(0, 1) prior) and its prior share (recomputed here from the draws: the
    population log-OR of this duo target is d + beta_phase), and the verdict is not
    'Extrapolation: none'."""
    from bayesln.hierarchy import fit_core
    from bayesln.predict.validation import spec_settings

    sel, outcome, kw = spec_settings(ROOT / "models" / "predict_total_response.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fit = fit_core(sel, outcome, seed=20261122, gate=SANITY_GATE, progressbar=False, prior_predictive=False, **kw,
                       **TINY)
    p = predict(fit, "maintenance_after_induction", seed=1, allow_failed_gate=True)
    rep = p.extrapolation
    maint = sel.studies.index[sel.studies["phase"] == "maintenance"].tolist()
    assert maint == ["chen2012"]
    m = rep.modifiers.set_index("parameter")
    row = m.loc["beta[phase:maintenance]"]
    assert (row["n_trials"], row["trials"]) == (1, "chen2012") and row["status"] == "data-thin: one trial"
    k = fit.design.effect_names.index("phase:maintenance")
    b = fit.draws("beta")[:, k]
    kap = 1 - np.var(b, ddof=1) / 1.0
    assert row["contraction"] == pytest.approx(kap, rel=1e-9)
    d = fit.draws("d")
    lor = d + b
    np.testing.assert_allclose(p.draws["population"]["log_or"], lor, rtol=0, atol=1e-12)
    kc = min(max(kap, 0.0), 1.0)
    ref = 1 - np.var(d + b.mean() + math.sqrt(kc) * (b - b.mean())) / np.var(lor)
    assert row["prior_share"] == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert rep.prior_share["population"]["log_or"] >= row["prior_share"] - 1e-12
    assert "gamma[phase:maintenance]" in m.index and m.loc["gamma[phase:maintenance]", "n_trials"] == 1
    assert rep.status == "data-thin: one trial" and rep.outside_data == []
    assert "Extrapolation: none" not in rep.text
    assert "beta[phase:maintenance] (" in rep.text and "rests on one trial (chen2012)" in rep.text
    assert f"contraction {max(kap, 0):.2f}" in rep.text
