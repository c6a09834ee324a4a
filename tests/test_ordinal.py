"""Ordinal renal response model (bayesln.hierarchy.ordinal).

Independent references used here:

* the likelihood: ``scipy.stats.multinomial`` / ``scipy.stats.binom`` log-pmfs of the
  observed counts at the model's own probabilities (the model factorises the multinomial
  into two binomials; scipy does not);
* coherence P(CR) <= P(CR or PR): the inequality itself, checked in every prior draw
  (wide N(0, 2.5) priors reach extreme parameter values) and in every posterior draw;
* the pooled log-OR: on total-response-only data the sequential model's first step is the
  core arm-based binomial-normal model, so its ``d`` must match the brms fit of the core
  model (validation/fixtures/brms_core.json, ``total_response``, produced by
  validation/brms/reference_core.R) within Monte-Carlo error.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from scipy import stats

import bayesln
from bayesln.spec import load_spec
from bayesln import _arviz
from bayesln.hierarchy.ordinal import (
    OrdinalPriors,
    _resolve_arm,
    build_ordinal_design,
    build_ordinal_model,
    fit_ordinal,
)

from _mcmc import SANITY_GATE, assert_sane  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(draws=500, tune=500, chains=2, progressbar=False, prior_predictive=False, posterior_predictive=False)
#: MCMC tests use 2 x 500 draws: gate relaxed on ESS (the full gate, 4 x 1000 draws, is run by the spec)
SMALL_GATE = SANITY_GATE  # these tests compare posteriors; see tests/_mcmc.py
CONFIGS = [(link, cs) for link in ("sequential", "cumulative") for cs in (False, True)]


@pytest.fixture(scope="module")
def td():
    return bayesln.load_dataset("tacrolimus_ln")


# ----------------------------------------------------------------------------- design
def test_design_uses_every_study_for_what_it_reports(td):
    des = build_ordinal_design(td)
    pat = dict(zip(des.arms["study"] + ":" + des.arms["arm"], des.arms["pattern"]))
    assert pat["liu2015:tac"] == "full" and pat["liu2015:ivcy"] == "full"
    assert pat["mok2016:tac"] == "cr_only" and pat["mok2016:mmf"] == "cr_only"
    assert {pat[f"amudalapalli2025:{a}"] for a in ("tac", "mmf", "ivcy")} == {"total_only"}
    assert des.study_ids == ["liu2015", "bao2008", "mok2016", "zheng2022", "zhang2006_iv", "zhang_v_iv", "amudalapalli2025"]
    u = des.usage.set_index("study")
    assert not u.loc["chen2012", "included"] and "phase maintenance" in u.loc["chen2012", "notes"]
    assert not u.loc["deng2017", "included"] and "no tac arm" in u.loc["deng2017", "notes"]
    assert not u.loc["fei2013", "included"] and "single-arm" in u.loc["fei2013", "notes"]
    assert "CR only" in u.loc["mok2016", "data"] and "CR-or-PR only" in u.loc["amudalapalli2025", "data"]
    # likelihood rows: liu2015 TAC 151 of 181 respond, 83 of the 151 responders are CR
    r = des.rows.set_index("row_id")
    assert (r.loc["liu2015:tac:CR or PR of n", ["events", "n", "kind"]].tolist()) == [151, 181, 0]
    assert (r.loc["liu2015:tac:CR of CR-or-PR", ["events", "n", "kind"]].tolist()) == [83, 151, 1]
    assert (r.loc["mok2016:mmf:CR of n", ["events", "n", "kind"]].tolist()) == [45, 76, 2]
    assert (r.loc["amudalapalli2025:ivcy:CR or PR of n", ["events", "n", "kind"]].tolist()) == [15, 28, 0]
    # default modifiers: comparator (MMF vs the reference IVCY) and regimen (triple vs duo)
    assert des.effect_names == ["comparator:mmf", "regimen:triple"]
    assert des.reference_comparator == "ivcy"
    assert des.targets["target"].tolist() == ["IVCY", "MMF", "TAC duo", "TAC triple"]


def test_arm_patterns_derive_and_check_counts():
    assert _resolve_arm("s", "a", {"complete_response": (3, 10), "total_response": (7, 10)}) == (
        "full", {"cr": 3, "pr": 4, "total": 7, "n": 10})
    assert _resolve_arm("s", "a", {"partial_response": (4, 10), "total_response": (7, 10)})[1]["cr"] == 3
    assert _resolve_arm("s", "a", {"partial_response": (4, 10)})[0] == "pr_only"
    with pytest.raises(ValueError, match="inconsistent"):
        _resolve_arm("s", "a", {"complete_response": (3, 10), "partial_response": (5, 10), "total_response": (7, 10)})
    with pytest.raises(ValueError, match="different denominators"):
        _resolve_arm("s", "a", {"complete_response": (3, 10), "total_response": (7, 12)})


def test_phase_effect_adds_maintenance_and_warns_about_collinearity(td):
    with pytest.warns(UserWarning, match="collinear"):
        des = build_ordinal_design(td, phase_effect=True)
    assert "chen2012" in des.study_ids
    assert "phase:maintenance" in des.effect_names and "comparator:aza" in des.effect_names
    assert "TAC duo (maintenance)" in des.targets["target"].tolist()
    with pytest.raises(ValueError, match="phase effect needs"):
        build_ordinal_design(td, effect_modifiers=("phase",))


def test_unknown_options_raise(td):
    with pytest.raises(ValueError, match="link"):
        build_ordinal_design(td, link="probit")
    with pytest.raises(ValueError, match="unknown effect modifier"):
        build_ordinal_design(td, effect_modifiers=("mean_age",))
    with pytest.raises(ValueError, match="constant"):
        build_ordinal_design(td.select(studies=["zheng2022", "liu2015"]), effect_modifiers=("comparator",))


# ----------------------------------------------------------------------------- likelihood
def _point_values(model, names, point):
    """Deterministics evaluated at a point of the value variables."""
    outs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    return dict(zip(names, fn(point)))


@pytest.mark.parametrize(("link", "cs"), CONFIGS)
def test_likelihood_equals_scipy_multinomial_and_binomials(td, link, cs):
    des = build_ordinal_design(td, link=link, cutpoint_specific=cs)
    model = build_ordinal_model(des)
    rng = np.random.default_rng(3)
    point = {k: np.asarray(rng.normal(0, 0.7, size=np.shape(model.initial_point()[k]))) for k in model.initial_point()}
    logp_y = model.compile_fn(model.logp(vars=[model["y"]], jacobian=False), inputs=model.value_vars)(point)
    p = _point_values(model, ["p_cr", "p_pr", "p_resp"], point)
    ref = 0.0
    for j, a in des.arms.iterrows():
        pc, pp, pr = p["p_cr"][j], p["p_pr"][j], p["p_resp"][j]
        if a["pattern"] == "full":
            ref += stats.multinomial.logpmf([a["cr"], a["pr"], a["n"] - a["total"]], a["n"], [pc, pp, 1 - pr])
        elif a["pattern"] == "cr_only":
            ref += stats.binom.logpmf(a["cr"], a["n"], pc)
        elif a["pattern"] == "total_only":
            ref += stats.binom.logpmf(a["total"], a["n"], pr)
    assert float(logp_y) == pytest.approx(ref, rel=1e-9, abs=1e-8)


# ----------------------------------------------------------------------------- coherence (prior draws)
@pytest.mark.parametrize(("link", "cs"), CONFIGS)
@pytest.mark.parametrize("baseline", ["independent", "exchangeable"])
def test_coherent_in_every_prior_draw(td, link, cs, baseline):
    """P(CR) <= P(CR or PR) for every arm and target in 2000 prior draws (the priors reach
    extreme cut-points and effects); categories sum to one."""
    des = build_ordinal_design(td, link=link, cutpoint_specific=cs, baseline=baseline)
    model = build_ordinal_model(des, priors=OrdinalPriors(d="normal(0, 3)", beta="normal(0, 2)", psi="normal(0, 2)"))
    names = ["p_cr", "p_pr", "p_resp", "P_cr", "P_pr", "P_resp", "P_nr"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dr = pm.draw([model[n] for n in names], draws=2000, random_seed=11)
    d = dict(zip(names, dr))
    assert np.all(d["p_cr"] <= d["p_resp"]) and np.all(d["P_cr"] <= d["P_resp"])
    assert np.all(d["p_pr"] >= 0) and np.all(d["P_pr"] >= 0)
    np.testing.assert_allclose(d["p_cr"] + d["p_pr"], d["p_resp"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d["P_cr"] + d["P_pr"] + d["P_nr"], 1.0, rtol=1e-9)


def test_fixed_reference_baseline_reproduces_given_probabilities(td):
    """With a fixed reference baseline the reference comparator's P(CR) and P(CR or PR)
    are exactly the given numbers (both links)."""
    for link in ("sequential", "cumulative"):
        des = build_ordinal_design(td, link=link)
        model = build_ordinal_model(des, reference_baseline={"complete_response": 0.25, "total_response": 0.65})
        pc, pr = pm.draw([model["P_cr"], model["P_resp"]], draws=5, random_seed=1)
        np.testing.assert_allclose(pc[:, 0], 0.25, rtol=1e-9)
        np.testing.assert_allclose(pr[:, 0], 0.65, rtol=1e-9)


# ----------------------------------------------------------------------------- spec
def test_spec_file_keys_are_accepted(td):
    # the one spec reader (bayesln.spec); its refusals of other families' keys: tests/test_spec.py
    sp = load_spec(REPO / "models" / "ordinal_response.toml")
    assert sp.data.outcome == "renal_response"
    kw = sp.model.family_kwargs()
    assert isinstance(sp.priors_obj(), OrdinalPriors)
    des = build_ordinal_design(td, phases=sp.data.phases, designs=sp.data.designs,
                               **{k: v for k, v in kw.items() if k in ("treat", "link", "cutpoint_specific", "baseline", "phase_effect")})
    assert des.n_studies == 7


# ============================================================================= MCMC (slow)
def _mcse_ok(x: np.ndarray, chains: int, ref_mean: float, ref_mcse: float, k: float = 4.0):
    da = xr.Dataset({"x": (("chain", "draw"), x.reshape(chains, -1))})
    mc = float(_arviz.mcse(da)["x"])
    assert abs(float(x.mean()) - ref_mean) <= k * np.sqrt(mc**2 + ref_mcse**2), (float(x.mean()), ref_mean, mc, ref_mcse)


@pytest.mark.slow
def test_bundled_default_fit_is_coherent_and_reports_every_treatment(td, tmp_path):
    res = fit_ordinal(td, seed=2024, gate=SMALL_GATE, **{**SMALL, "chains": 4})
    # A short run is not held to the gate here (tests/test_specs_gate.py runs the spec's
    # full settings through it): the trajectories depend on the CPU's floating point, and
    # at 4 x 500 draws 1 of 6 seeds has one divergent transition on this machine (at
    # 2 x 500, 3 of 4 seeds fail the relaxed gate on R-hat or a divergence). A broken
    # sampler still fails the sanity bounds (tests/_mcmc.py).
    assert_sane(res)
    for level in ("arm", "target"):
        P = res.probability_draws(level)
        assert np.all(P["cr"] <= P["resp"]), level  # every posterior draw
    s = res.summary()
    for t in ("TAC duo", "TAC triple", "IVCY", "MMF"):
        for q in ("P(CR)", "P(PR)", "P(NR)", "P(CR or PR)"):
            row = s.loc[f"{q}: {t}"]
            assert 0 <= row["q2.5"] <= row["median"] <= row["q97.5"] <= 1
    assert {"median", "q2.5", "q97.5", "ci_level"} <= set(s.columns)
    assert s.loc["P(OR > 1)", "mean"] > 0.9
    # the idata carries named dims, the per-study log-likelihood and the configuration
    post = res.idata.posterior
    assert post["P_cr"].dims == ("chain", "draw", "target") and post["p_cr"].dims == ("chain", "draw", "arm")
    assert list(res.idata.log_likelihood["study_loglik"].coords["study"].values) == res.design.study_ids
    assert json.loads(res.idata.attrs["model_config"])["link"] == "sequential"
    arm = res.arm_probabilities()
    assert set(arm["quantity"]) == {"P(CR)", "P(PR)", "P(CR or PR)"}
    assert res.usage.set_index("study").loc["mok2016", "included"]
    d = json.loads(json.dumps(res.to_dict()))
    assert d["status"] == res.status and d["config"]["targets"] == ["IVCY", "MMF", "TAC duo", "TAC triple"]
    res.to_netcdf(tmp_path / "ordinal.nc")
    assert (tmp_path / "ordinal.nc").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("link", ["sequential", "cumulative"])
def test_cutpoint_specific_fit_coherent_in_every_draw(td, link):
    res = fit_ordinal(td, link=link, cutpoint_specific=True, seed=7, gate=SMALL_GATE, **SMALL)
    for level in ("arm", "target"):
        P = res.probability_draws(level)
        assert np.all(P["cr"] <= P["resp"])
        assert np.all(P["pr"] >= 0)
    s = res.summary()
    if link == "sequential":
        assert "log-OR: response (CR or PR vs NR)" in s.index
        assert "log-OR: complete | response (CR vs PR among responders)" in s.index
    else:
        assert "gap ratio (treated / control)" in s.index


@pytest.mark.slow
@pytest.mark.r_reference
def test_total_only_data_reproduces_brms_core_fit(td):
    """Reference: brms fit of the core model (validation/fixtures/brms_core.json,
    total_response). On total-response-only data the sequential model's first step is
    the core model with the same priors; d must agree within Monte-Carlo error."""
    ref = json.loads((REPO / "validation" / "fixtures" / "brms_core.json").read_text())["datasets"]["total_response"]
    sub = td.select(outcomes="total_response")
    res = fit_ordinal(sub, effect_modifiers=(), designs=("rct",), seed=99, gate=SMALL_GATE,
                      draws=500, tune=500, chains=2, progressbar=False, prior_predictive=False, posterior_predictive=False)
    assert res.design.study_ids == ["liu2015", "bao2008", "zheng2022", "zhang2006_iv", "zhang_v_iv", "amudalapalli2025"]
    d = res.idata.posterior["d"].values
    _mcse_ok(d.reshape(-1), 2, ref["d"]["mean"], ref["d"]["mcse_mean"])
    tau = res.idata.posterior["tau"].values
    _mcse_ok(tau.reshape(-1), 2, ref["tau"]["mean"], ref["tau"]["mcse_mean"])


@pytest.mark.slow
def test_small_ordinal_recovery():
    """Small version of benchmarks/recovery_issue5.py (ordinal case: known cut-points
    and effect, every data pattern)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("rec5", REPO / "benchmarks" / "recovery_issue5.py")
    rec = importlib.util.module_from_spec(spec)
    sys.modules["rec5"] = rec
    spec.loader.exec_module(rec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = rec.run_case(rec.ordinal_case(), n_rep=4, seed=9, draws=300, tune=300, chains=2)
    cov95 = [v["coverage"]["95%"] for v in out["parameters"].values()]
    assert np.mean(cov95) >= 0.75  # 24 intervals; 95 % nominal
