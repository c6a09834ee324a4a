"""Predictions from the joint efficacy-safety model (bayesln.predict.joint).

Fast tests (no MCMC): a JointResult whose posterior is written by hand on the joint design
of the bundled induction RCTs (models/joint_efficacy_safety.toml: total_response,
severe_infection, serious_adverse_event, death; leucopenia has no induction trial), so the
references are closed forms written here, not the engine's code::

    P_C(o) = expit(mean of mu over the trials reporting o)      (independent baselines)
    P_T(o) = expit(that + d_o)                                   (tau = 0: population = new trial effect)
    P(e without h) = P(e) (1 - P(h))      net benefit = RD(e) - RD(h)

The trials reporting each outcome are listed by hand from the bundled data (Table of
outcomes in data/; e.g. serious_adverse_event: Zheng 2022 only). New-trial effects: the
sample correlation of the per-outcome log odds ratios across 20,000 draws is checked
against the posterior rho with the large-sample SE of a correlation, (1 - rho^2) / sqrt(n);
their SD against tau with SE tau / sqrt(2 n). Unidentified modifiers: normal(0, 0.5) per
full switch of the population (bayesln.predict.priors), so P(TAC better) = Phi(d / 0.5)
for a benefit and Phi(-d / 0.5) for a harm, and the per-outcome terms are uncorrelated.

Slow test: ``bayesln fit`` of the shipped joint spec with tiny settings (a failed gate is
expected) and ``bayesln predict RUN`` on the run folder; the new-trial ORs of a target at
the trials' covariates equal the fit's own exported ``or_new`` draws.
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
from bayesln.gates import GateFailedError
from bayesln.hierarchy.diagnostics import Diagnostics, GateThresholds
from bayesln.hierarchy.joint import JointResult, build_joint_design
from bayesln.hierarchy.priors import Priors, resolve_tau_prior
from bayesln.predict import PredictionSet, Target, load_targets, predict
from bayesln.predict.command import format_predictions
from bayesln.predict.engine import LEVELS, engine_for
from bayesln.predict.extrapolation import contraction_table
from bayesln.predict.joint import INDEPENDENCE_NOTE, JointEngine, JointPrediction, joint_study_covariates

ROOT = Path(__file__).resolve().parents[1]
S = 20000
OUTCOMES = ("total_response", "severe_infection", "serious_adverse_event", "death")
HARMS = OUTCOMES[1:]
PAIRS = tuple(f"total_response~{h}" for h in HARMS)
#: the trials reporting each outcome with a control arm (bundled data, induction RCTs)
REPORTING = {
    "total_response": ("liu2015", "bao2008", "zheng2022", "zhang2006_iv", "zhang_v_iv", "amudalapalli2025"),
    "severe_infection": ("mok2016", "zheng2022"),
    "serious_adverse_event": ("zheng2022",),
    "death": ("bao2008", "amudalapalli2025"),
}
D0 = np.array([0.8, -0.5, -0.3, -0.9])
#: study baselines (log odds on the comparator) of each (study, outcome) cell
MU0 = {("liu2015", "total_response"): 0.2, ("bao2008", "total_response"): 0.6, ("zheng2022", "total_response"): -0.1,
       ("zhang2006_iv", "total_response"): 0.9, ("zhang_v_iv", "total_response"): 0.4,
       ("amudalapalli2025", "total_response"): 0.0, ("mok2016", "severe_infection"): -2.2,
       ("zheng2022", "severe_infection"): -1.6, ("zheng2022", "serious_adverse_event"): -1.2,
       ("bao2008", "death"): -3.5, ("amudalapalli2025", "death"): -2.9}
TAU1 = np.array([0.5, 0.4, 0.3, 0.6])
#: a correlation matrix (positive definite) in the order of the outcome pairs (0,1), (0,2), (0,3), (1,2), (1,3), (2,3)
RHO1 = np.array([0.6, -0.3, 0.2, -0.4, 0.1, 0.3])


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def td():
    return bayesln.load_dataset("tacrolimus_ln")


def _design(data, baseline="independent"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # leucopenia: no induction trial, left out
        # (with exchangeable baselines a single-arm trial's leucopenia would keep that outcome in)
        return build_joint_design(data, OUTCOMES + (("leucopenia",) if baseline == "independent" else ()),
                                  baseline=baseline, phases=("induction",), designs=("rct",))


def _dims(name: str) -> tuple[str, ...]:
    return {"mu": ("so",), "mu_raw": ("so",), "rho": ("outcome_pair",)}.get(name, ("outcome",))


def fake_joint_fit(data, post: dict, *, baseline="independent", seed=0, problems=(), tau_per_outcome=False,
                   design=None) -> JointResult:
    """A JointResult whose posterior draws are ``post`` (one chain) on the joint design of
    ``data`` (or on ``design``). Its config's tau prior is one prior (``tau_per_outcome=True``:
    one per outcome, the shape fit_joint writes)."""
    des = design if design is not None else _design(data, baseline)
    n = len(np.asarray(next(iter(post.values()))))
    dv = {k: (("chain", "draw") + _dims(k), np.asarray(v, float)[None]) for k, v in post.items()}
    coords = {"chain": [0], "draw": np.arange(n), "outcome": des.outcomes, "outcome_pair": des.pair_names,
              "so": des.so["so_id"].tolist()}
    idata = _arviz.make_inference_data({"posterior": xr.Dataset(dv, coords=coords)})
    pr = Priors()
    priors = pr.model_dump(mode="json")
    priors["tau"] = ({o: resolve_tau_prior(pr.tau, o).model_dump(mode="json") for o in des.outcomes}
                     if tau_per_outcome else resolve_tau_prior(pr.tau, "total_response").model_dump(mode="json"))
    config = {"family": "joint", "lkj_eta": 2.0, "baseline": baseline, "priors": priors}
    diag = Diagnostics(table=pd.DataFrame(columns=["parameter", "r_hat", "ess_bulk", "ess_tail", "ok"]), divergences=0,
                       bfmi=np.array([1.0]), thresholds=GateThresholds(), problems=list(problems))
    return JointResult(idata=idata, design=des, diagnostics=diag, config=config, seed=seed, backend="fake")


def mu_draws(des, n=S):
    return np.tile([MU0[(s, o)] for s, o in zip(des.so["study"], des.so["outcome"])], (n, 1))


def degenerate(data, tau=np.zeros(4), rho=RHO1, **kw):
    des = _design(data)
    return fake_joint_fit(data, {"mu": mu_draws(des), "d": np.tile(D0, (S, 1)), "tau": np.tile(tau, (S, 1)),
                                 "rho": np.tile(rho, (S, 1))}, **kw)


@pytest.fixture(scope="module")
def fixed(td):
    """tau = 0 and every other parameter at a known value."""
    return degenerate(td)


@pytest.fixture(scope="module")
def hetero(td):
    """Known d, tau, rho: the new trial's log odds ratios are MVN(d, diag(tau) R diag(tau))."""
    return degenerate(td, tau=TAU1)


@pytest.fixture(scope="module")
def spread(td):
    """Posterior spread in every parameter (for the draw-by-draw arithmetic)."""
    rng = np.random.default_rng(1)
    des = _design(td)
    return fake_joint_fit(td, {"mu": mu_draws(des) + 0.4 * rng.standard_normal((S, len(des.so))),
                               "d": D0 + 0.4 * rng.standard_normal((S, 4)), "tau": np.abs(rng.normal(0, 0.3, (S, 4))),
                               "rho": np.tile(RHO1, (S, 1))})


PLAIN = Target(name="plain")
NON_ASIAN = Target(name="nonasian", asian_fraction=0.0)


def base(o):
    return float(np.mean([MU0[(s, o)] for s in REPORTING[o]]))


def mc_tol(p, n=S, k=4.5):
    return k * math.sqrt(p * (1 - p) / n) + 1e-9


def corr_matrix(rho):
    R = np.eye(4)
    R[np.triu_indices(4, 1)] = rho
    return R + np.triu(R, 1).T


# ----------------------------------------------------------------------------- closed forms
def test_engine_is_chosen_by_the_fit_family(fixed):
    assert isinstance(engine_for(fixed, seed=1), JointEngine)
    p = predict(fixed, PLAIN, seed=1)
    assert isinstance(p, JointPrediction) and p.outcomes == OUTCOMES and p.pairs == PAIRS
    assert {p[o].outcome for o in OUTCOMES} == set(OUTCOMES)
    assert [p[o].direction for o in OUTCOMES] == ["benefit", "harm", "harm", "harm"]
    assert PredictionSet([p])[("plain", "death")].outcome == "death"
    assert p.outcome == "efficacy_safety" and "JointPrediction plain" in repr(p)


def test_population_closed_form_and_tau_zero(fixed):
    """P_C(o) = expit(mean mu over the trials reporting o), P_T(o) = expit(that + d_o);
    with tau = 0 the new trial's log odds ratio is d_o in every draw."""
    p = predict(fixed, PLAIN, seed=1)
    for k, o in enumerate(OUTCOMES):
        pop = p[o].draws["population"]
        np.testing.assert_allclose(pop["p_comparator"], expit(base(o)), rtol=0, atol=1e-15)
        np.testing.assert_allclose(pop["p_tac"], expit(base(o) + D0[k]), rtol=0, atol=1e-15)
        np.testing.assert_allclose(pop["log_or"], D0[k], rtol=0, atol=1e-12)
        # tradeoff_draws factors diag(tau) R diag(tau) + 1e-12 I: with tau = 0 a new trial's
        # effect is d + 1e-6 * N(0, 1)
        np.testing.assert_allclose(p[o].draws["new_trial"]["log_or"], D0[k], rtol=0, atol=1e-5)
    rep = p.extrapolation
    assert rep.outside_data == [] and not rep.prior_driven and rep.status == "none"
    assert "6 trials" in rep.baseline and "serious_adverse_event: 1 trial" in rep.baseline


def test_new_trial_independent_baselines_take_one_reporting_trial_per_outcome(fixed):
    """Independent baselines: a new trial's comparator log odds of outcome o is the
    baseline of one trial reporting o, drawn uniformly, independently across outcomes."""
    p = predict(fixed, PLAIN, seed=2)
    picks = {}
    for o in OUTCOMES:
        b = logit(p[o].draws["new_trial"]["p_comparator"])
        ref = np.array([MU0[(s, o)] for s in REPORTING[o]])
        which = np.abs(b[:, None] - ref[None, :]).argmin(axis=1)
        np.testing.assert_allclose(b, ref[which], rtol=0, atol=1e-9)
        share = np.bincount(which, minlength=len(ref)) / S
        q = 1 / len(ref)
        assert np.all(np.abs(share - q) < mc_tol(q)), o
        picks[o] = which
    # independent picks: total_response and death are both reported by Bao 2008 and Amudalapalli 2025
    tr = np.isin(picks["total_response"], [1, 5])  # bao2008, amudalapalli2025 among the six
    dth = picks["death"] == 0
    assert abs(np.mean(tr & dth) - np.mean(tr) * np.mean(dth)) < mc_tol(np.mean(tr) * np.mean(dth))


def test_new_trial_effects_correlated_as_rho(hetero):
    """New trial: log OR ~ MVN(d, diag(tau) R diag(tau)) across outcomes (one vector per
    draw): means d, SDs tau, correlations rho within Monte-Carlo error; and they are the
    fit's own predictive draws (JointResult.tradeoff_draws(predictive=True))."""
    R = corr_matrix(RHO1)
    assert np.all(np.linalg.eigvalsh(R) > 0)
    p = predict(hetero, PLAIN, seed=3)
    lor = np.column_stack([p[o].draws["new_trial"]["log_or"] for o in OUTCOMES])
    for k in range(4):
        assert abs(lor[:, k].mean() - D0[k]) < 4.5 * TAU1[k] / math.sqrt(S)
        assert abs(lor[:, k].std() - TAU1[k]) < 4.5 * TAU1[k] / math.sqrt(2 * S)
    C = np.corrcoef(lor.T)
    for (i, j), r in zip(zip(*np.triu_indices(4, 1)), RHO1):
        assert abs(C[i, j] - r) < 4.5 * (1 - r**2) / math.sqrt(S), (i, j)
    own, _ = hetero.tradeoff_draws(predictive=True)
    np.testing.assert_allclose(lor, own, rtol=0, atol=1e-12)
    for k, o in enumerate(OUTCOMES):  # the population level has no heterogeneity
        np.testing.assert_allclose(p[o].draws["population"]["log_or"], D0[k], atol=1e-12)


def test_exchangeable_baselines(td):
    """Exchangeable: population comparator = expit(m_o); a new trial adds sigma_mu_o e'_o,
    e' independent across outcomes."""
    m, s = np.array([0.5, -1.8, -1.1, -3.0]), np.array([0.4, 0.3, 0.5, 0.6])
    des = _design(td, "exchangeable")
    fit = fake_joint_fit(td, {"mu": np.zeros((S, len(des.so))), "m": np.tile(m, (S, 1)), "sigma_mu": np.tile(s, (S, 1)),
                              "d": np.tile(D0, (S, 1)), "tau": np.zeros((S, 4)), "rho": np.tile(RHO1, (S, 1))},
                         baseline="exchangeable")
    p = predict(fit, PLAIN, seed=4)
    new = []
    for k, o in enumerate(OUTCOMES):
        np.testing.assert_allclose(p[o].draws["population"]["p_comparator"], expit(m[k]), atol=1e-15)
        b = logit(p[o].draws["new_trial"]["p_comparator"])
        assert abs(b.mean() - m[k]) < 4.5 * s[k] / math.sqrt(S) and abs(b.std() - s[k]) < 4.5 * s[k] / math.sqrt(2 * S)
        new.append(b)
    assert np.all(np.abs(np.corrcoef(new)[np.triu_indices(4, 1)]) < 4.5 / math.sqrt(S))
    assert "exchangeable baseline model" in p.extrapolation.baseline


def test_target_baseline_risk_is_the_benefit_outcomes_only(fixed):
    """baseline_risk fixes the comparator's P(total_response); the harms' comparator risks
    still come from the trials."""
    p = predict(fixed, Target(name="b", baseline_risk=0.4), seed=5)
    for level in LEVELS:
        np.testing.assert_allclose(p["total_response"].draws[level]["p_comparator"], 0.4, atol=1e-14)
        np.testing.assert_allclose(p["total_response"].draws[level]["log_or"], D0[0], atol=1e-5)
    for o in HARMS:
        np.testing.assert_allclose(p[o].draws["population"]["p_comparator"], expit(base(o)), atol=1e-15)
    assert p.extrapolation.baseline.startswith("comparator-arm P(total_response) given by the target")


def test_phase_effect_fit_uses_its_maintenance_shift(td):
    """phase_effect: a maintenance target's log OR is d + beta_phase (tau = 0); the shift
    of total response rests on one maintenance trial (Chen 2012) and is reported so."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        des = build_joint_design(td, ("total_response", "leucopenia"), designs=("rct",), phase_effect=True)
    d, b = np.array([0.7, 0.2]), np.array([-0.4, 0.3])
    fit = fake_joint_fit(td, {"mu": np.full((S, len(des.so)), -0.5), "d": np.tile(d, (S, 1)),
                              "beta_phase": np.tile(b, (S, 1)), "tau": np.zeros((S, 2)), "rho": np.zeros((S, 1))},
                         design=des)
    for phase, shift in (("induction", 0.0), ("maintenance", 1.0)):
        p = predict(fit, Target(name=phase, phase=phase), seed=1)
        for k, o in enumerate(des.outcomes):
            np.testing.assert_allclose(p[o].draws["population"]["log_or"], d[k] + shift * b[k], atol=1e-12)
    m = p.extrapolation.modifiers.set_index("parameter")
    assert m.loc["beta_phase[total_response]", "status"] == "data-thin: one trial"
    assert m.loc["beta_phase[total_response]", "trials"] == "chen2012"
    assert "beta_phase[total_response]" in p.extrapolation.text
    assert p.pairs == ("total_response~leucopenia",)


# ----------------------------------------------------------------------------- joint quantities
def test_joint_quantities_are_products_and_rd_differences(spread):
    """P(e without h) = P(e) (1 - P(h)) per arm, its RD, net benefit = RD(e) - RD(h), draw
    by draw; every per-outcome quantity from the same probability draws."""
    p = predict(spread, NON_ASIAN, seed=6)
    for level in LEVELS:
        e = p["total_response"].draws[level]
        for h, pair in zip(HARMS, PAIRS):
            x = p[h].draws[level]
            j = p.joint[level][pair]
            assert np.array_equal(j["p_tac"], e["p_tac"] * (1 - x["p_tac"]))
            assert np.array_equal(j["p_comparator"], e["p_comparator"] * (1 - x["p_comparator"]))
            assert np.array_equal(j["rd"], j["p_tac"] - j["p_comparator"])
            rd_e, rd_h = e["p_tac"] - e["p_comparator"], x["p_tac"] - x["p_comparator"]
            np.testing.assert_allclose(j["net_benefit"], rd_e - rd_h, rtol=0, atol=1e-15)
            assert np.array_equal(j["net_benefit_positive"], (j["net_benefit"] > 0).astype(float))
        for o in OUTCOMES:
            d = p[o].draws[level]
            assert np.array_equal(d["rd"], d["p_tac"] - d["p_comparator"])
            assert np.array_equal(d["rr"], d["p_tac"] / d["p_comparator"])
            assert np.array_equal(d["nnt"], 1.0 / d["rd"])
            odds = (d["p_tac"] / (1 - d["p_tac"])) / (d["p_comparator"] / (1 - d["p_comparator"]))
            np.testing.assert_allclose(d["or"], odds, rtol=1e-9)
            better = d["p_tac"] > d["p_comparator"] if o == "total_response" else d["p_tac"] < d["p_comparator"]
            assert np.array_equal(d["tac_better"], better.astype(float))
            assert np.array_equal(d["rd_above_margin"], (d["rd"] > p.margin).astype(float))
    assert p.margin == 0.10  # one margin: the benefit's default
    t = p.table()
    for level in LEVELS:
        for pair in PAIRS:
            tt = t[(t["outcome"] == pair) & (t["level"] == level)].set_index("quantity")
            assert list(tt.index) == ["p_tac", "p_comparator", "rd", "net_benefit", "net_benefit_positive"]
            nb = p.joint[level][pair]["net_benefit"]
            assert tt.loc["net_benefit", "median"] == pytest.approx(np.median(nb))
            assert tt.loc["net_benefit", "lower"] == pytest.approx(np.quantile(nb, 0.025))
            assert tt.loc["net_benefit_positive", "mean"] == pytest.approx(np.mean(nb > 0))
            assert tt.loc["p_tac", "note"] == INDEPENDENCE_NOTE and "independent" in tt.loc["p_tac", "note"]
            assert tt.loc["net_benefit", "prior_share"] > 0  # the asian_fraction terms
    assert "assumes response and the adverse event are independent" in p.text()
    samp = p.samples("new_trial")
    nb = p.joint["new_trial"]["total_response~death"]["net_benefit"]
    assert np.array_equal(samp["net_benefit_total_response~death"], nb)


def test_unidentified_modifier_is_drawn_independently_per_outcome(fixed):
    """asian_fraction = 0 (every trial reporting it has 1): per outcome one Delta ~ N(0,
    0.5) on the log OR and one Gamma ~ N(0, 0.5) on the comparator's log odds, independent
    across outcomes; P(TAC better) = Phi(d / 0.5) (benefit) or Phi(-d / 0.5) (harm)."""
    p = predict(fixed, NON_ASIAN, seed=7)
    eff, bas = [], []
    for k, o in enumerate(OUTCOMES):
        pop = p[o].draws["population"]
        x = pop["log_or"] - D0[k]
        g = logit(pop["p_comparator"]) - base(o)
        for v in (x, g):
            assert abs(v.mean()) < 4.5 * 0.5 / math.sqrt(S) and abs(v.std() - 0.5) < 4.5 * 0.5 / math.sqrt(2 * S)
        ref = stats.norm.cdf((D0[k] if k == 0 else -D0[k]) / 0.5)
        assert abs(pop["tac_better"].mean() - ref) < mc_tol(ref), o
        eff.append(x)
        bas.append(g)
    C = np.corrcoef(np.vstack(eff + bas))
    assert np.all(np.abs(C[np.triu_indices(8, 1)]) < 4.5 / math.sqrt(S))
    rep = p.extrapolation
    assert rep.outside_data == ["asian_fraction"] and "asian_fraction" in rep.unidentified
    assert rep.prior_driven and "not evidence" in rep.text and "drawn independently for every outcome" in rep.text
    c = rep.contraction.set_index("parameter")
    assert c.loc["extrapolation[effect:asian_fraction]", "contraction"] == 0.0
    sh = rep.prior_share["population"]
    assert sh["log_or"] > 0.5  # tau = 0, d fixed: the terms carry (nearly) all the variance
    s = rep.sensitivity
    assert set(s["outcome"]) == set(OUTCOMES)
    z = s[(s["scenario"] == "sd 0 (transportable)") & (s["level"] == "population") & (s["quantity"] == "or")]
    for k, o in enumerate(OUTCOMES):  # transportability (prior sd 0) = the in-data OR
        assert z[z["outcome"] == o]["median"].iloc[0] == pytest.approx(math.exp(D0[k]), rel=1e-9)


def test_unseen_comparator_and_unstudied_phase(fixed):
    """Maintenance vs AZA: no trial of the joint fit used AZA or studied maintenance; the
    comparator term moves the comparator arm only."""
    t = load_targets()["maintenance_after_induction"]
    p = predict(fixed, t, seed=8)
    assert p.extrapolation.outside_data == ["comparator", "phase"]
    seen = predict(fixed, t.model_copy(update={"comparator": "ivcy"}), seed=8)
    for o in OUTCOMES:
        for level in LEVELS:
            assert np.array_equal(p[o].draws[level]["p_tac"], seen[o].draws[level]["p_tac"])
            assert not np.array_equal(p[o].draws[level]["p_comparator"], seen[o].draws[level]["p_comparator"])


def test_study_covariates_come_from_the_matching_data(td):
    """The trials' covariate ranges: the bundled dataset whose rows have the fit's counts
    (also when its fingerprint differs: a selection of it); none when the counts differ."""
    sel = td.select(designs="rct")
    assert sel.fingerprint() != td.fingerprint()
    fit = degenerate(sel)
    st, src = joint_study_covariates(fit)
    assert "bundled dataset 'tacrolimus_ln'" in src and list(st.index) == list(fit.design.study_ids)
    assert st.loc["liu2015", "asian_fraction"] == 1.0
    assert joint_study_covariates(fit, td)[1] == "the data given to predict"
    long = td.outcomes.merge(td.arms[["study", "arm", "treatment", "regimen"]], on=["study", "arm"])
    long = long.merge(td.studies[["design", "phase"]], left_on="study", right_index=True)
    long.loc[long["study"] == "liu2015", "n"] += 1
    other = degenerate(long)
    assert joint_study_covariates(other)[0] is None
    p = predict(other, NON_ASIAN, seed=1)
    assert "study covariates unknown" in p.extrapolation.text
    inv = p.extrapolation.covariates.set_index(["covariate", "role"])
    assert inv.loc[("asian_fraction", "effect"), "distance"] == 1.0  # worst case: no trial reports it


# ----------------------------------------------------------------------------- gate, outputs
def test_failed_gate_is_refused_unless_allowed(td):
    bad = degenerate(td, problems=["R-hat > 1.01: d[total_response] (1.2)"])
    with pytest.raises(GateFailedError, match="predictions refused"):
        predict(bad, PLAIN, seed=1)
    p = predict(bad, PLAIN, seed=1, allow_failed_gate=True)
    assert p.fit_status == "failed_gate" and p.warning.startswith("WARNING")
    assert all(p[o].warning == p.warning for o in OUTCOMES)
    t = p.table()
    assert (t["warning"] == p.warning).all() and (t["fit_status"] == "failed_gate").all()
    assert set(t["outcome"]) == set(OUTCOMES) | set(PAIRS)
    assert p.text().startswith(p.warning)
    d = PredictionSet([p]).to_dict()
    assert d["warnings"] == [p.warning] and all(r["warning"] == p.warning for r in d["predictions"])


def test_outputs_are_strict_and_reproducible(spread):
    ps = PredictionSet([predict(spread, t, seed=9) for t in (PLAIN, NON_ASIAN)])

    def no_nan(x):
        raise ValueError(f"non-standard JSON constant {x}")

    d = json.loads(format_predictions(ps, "json"), parse_constant=no_nan)
    assert len(d["predictions"]) == 2 * (2 * 4 * 8 + 2 * 3 * 5)
    assert {r["outcome"] for r in d["predictions"]} == set(OUTCOMES) | set(PAIRS)
    assert set(d["extrapolation"]) == {"plain/efficacy_safety", "nonasian/efficacy_safety"}
    csv = pd.read_csv(io.StringIO(format_predictions(ps, "csv")))
    assert set(csv["outcome"]) == set(OUTCOMES) | set(PAIRS) and "net_benefit" in set(csv["quantity"])
    table = format_predictions(ps, "table")
    assert "total_response~death" in table and "net_benefit" in table and "independent within a patient" in table
    a = predict(spread, NON_ASIAN, seed=9)
    pd.testing.assert_frame_equal(a.table(), ps["nonasian"].table())
    assert a.text() == ps["nonasian"].text()
    c = predict(spread, NON_ASIAN, seed=10)
    assert not np.array_equal(a["death"].draws["new_trial"]["p_tac"], c["death"].draws["new_trial"]["p_tac"])
    sub = predict(spread, PLAIN, seed=9, draws=500)
    assert sub.n_draws == 500 and len(sub.samples()) == 500


def test_contraction_rows_are_per_outcome_with_each_outcomes_tau_prior(td):
    """fit_joint stores one tau prior per outcome (config["priors"]["tau"] = {outcome: prior});
    the contraction table has one row per outcome with that outcome's prior. References:
    the SD of half_normal(s) is s * sqrt(1 - 2 / pi) and of normal(mu, s) is s (closed
    forms); contraction = 1 - posterior variance / prior variance of the hand-made draws."""
    rng = np.random.default_rng(3)
    des = _design(td)
    tau = np.abs(rng.normal(0, [0.1, 0.2, 0.3, 0.4], (S, 4)))
    d = D0 + rng.normal(0, [0.2, 0.3, 0.4, 0.5], (S, 4))
    fit = fake_joint_fit(td, {"mu": mu_draws(des), "d": d, "tau": tau, "rho": np.tile(RHO1, (S, 1))},
                         tau_per_outcome=True)
    fit.config["priors"]["tau"]["death"] = {"dist": "half_normal", "params": {"scale": 1.0}}
    tab = contraction_table(fit).set_index("parameter")
    hn = math.sqrt(1 - 2 / math.pi)
    for k, o in enumerate(OUTCOMES):
        scale = 1.0 if o == "death" else fit.config["priors"]["tau"][o]["params"]["scale"]
        assert tab.loc[f"tau[{o}]", "prior_sd"] == pytest.approx(scale * hn, rel=1e-12)
        assert tab.loc[f"tau[{o}]", "contraction"] == pytest.approx(1 - np.var(tau[:, k], ddof=1) / (scale * hn) ** 2,
                                                                   rel=1e-12)
        sd_d = fit.config["priors"]["d"]["params"]["sigma"]
        assert tab.loc[f"d[{o}]", "prior_sd"] == pytest.approx(sd_d, rel=1e-12)
        assert tab.loc[f"d[{o}]", "contraction"] == pytest.approx(1 - np.var(d[:, k], ddof=1) / sd_d**2, rel=1e-12)
    assert not any(p.startswith("mu") for p in tab.index)  # independent baselines: nuisance, not listed


# ============================================================================= MCMC (slow)
@pytest.fixture(scope="module")
def joint_run(tmp_path_factory):
    from typer.testing import CliRunner

    from bayesln.cli import app

    out = tmp_path_factory.mktemp("joint_run")
    r = CliRunner().invoke(app, ["fit", str(ROOT / "models" / "joint_efficacy_safety.toml"), "--draws", "100",
                                 "--tune", "100", "--chains", "2", "--out", str(out), "--quiet", "--allow-failed-gate"])
    assert r.exit_code == 0, (r.stderr, r.exception)
    return out / "joint_efficacy_safety"


@pytest.mark.slow
def test_cli_predict_on_a_joint_run_folder(joint_run):
    from typer.testing import CliRunner

    from bayesln.cli import app
    from bayesln.predict.command import load_run_result

    runner = CliRunner()
    status = json.loads((joint_run / "run.json").read_text())["status"]
    res, spec = load_run_result(joint_run)
    assert isinstance(res, JointResult) and res.status == status  # the same gate as the fit
    assert list(res.design.outcomes) == list(OUTCOMES) and res.seed == spec.sampler.seed
    allow = [] if status == "ok" else ["--allow-failed-gate"]
    if allow:  # tiny settings: the gate fails; without the flag the command refuses (exit 1)
        refused = runner.invoke(app, ["predict", str(joint_run), "--target", "asian_class_v"])
        assert refused.exit_code == 1
    r = runner.invoke(app, ["predict", str(joint_run), "--target", "non_asian_class_iii_iv", "--format", "csv", *allow])
    assert r.exit_code == 0, (r.stderr, r.exception)
    printed = pd.read_csv(io.StringIO(r.stdout))
    assert set(printed["outcome"]) == set(OUTCOMES) | set(PAIRS)
    if allow:
        assert (printed["fit_status"] == "failed_gate").all() and printed["warning"].str.startswith("WARNING").all()
    p = predict(res, "non_asian_class_iii_iv", seed=spec.sampler.seed, allow_failed_gate=bool(allow))
    np.testing.assert_allclose(printed["median"].to_numpy(float), p.table()["median"].to_numpy(float), rtol=1e-5,
                               equal_nan=True)
    target = ["--target", "non_asian_class_iii_iv"]
    js = runner.invoke(app, ["predict", str(joint_run), *target, "--format", "json", *allow])
    d = json.loads(js.stdout)
    rep = d["extrapolation"]["non_asian_class_iii_iv/efficacy_safety"]
    assert "asian_fraction" in rep["outside_data"] and "from the run folder's data.csv" in rep["text"]
    assert d["warnings"] == ([p.warning] if allow else [])
    text = runner.invoke(app, ["predict", str(joint_run), "--target", "non_asian_class_iii_iv", *allow])
    assert text.exit_code == 0 and "Joint efficacy-safety" in text.stdout and "net_benefit" in text.stdout
    # at the trials' covariates the new-trial ORs are the fit's exported or_new, draw by draw
    plain = predict(res, PLAIN, seed=1, allow_failed_gate=True)
    or_new = np.asarray(res.idata.posterior_derived["or_new"].values).reshape(-1, 4)
    for k, o in enumerate(OUTCOMES):
        np.testing.assert_allclose(plain[o].draws["new_trial"]["or"], or_new[:, k], rtol=1e-9)
