"""Predictions from the network meta-analysis (bayesln.predict.network).

Fast tests (no MCMC): NetworkResults whose posterior is written by hand, on the network
design of the bundled induction RCTs (models/network_total_response.toml: IVCY (reference),
MMF, TAC duo, TAC triple; every trial has IVCY as its baseline arm) and on a small simulated
network written here whose trials S3 (MMF vs TAC duo) and S5 (MMF vs TAC triple) have MMF as
their baseline arm. The references are closed forms written in this file, not the engine's
code::

    reference log odds of study i = mu_i - d[b(i)]     (consistency: theta_ik = mu_i + d_k - d_b(i))
    P_k (population, tau = 0)     = expit(mean_i(mu_i - d[b(i)]) + d_k)
    new trial: delta = d + tau L e, L L' = 1 on the diagonal, 1/2 off (SD tau, correlation 1/2)

Monte-Carlo tolerances (S = 20,000 draws, 4.5 standard errors): a proportion p,
sqrt(p (1 - p) / S); a mean, sd / sqrt(S); an SD s, s / sqrt(2 S); a correlation r,
(1 - r^2) / sqrt(S). Ranks are checked against scipy.stats.rankdata of the probability draws
(an independent ranking) and against the identity SUCRA = (T - mean rank) / (T - 1); the
unidentified modifiers' prior is the documented normal(0, 0.5) per full switch of the
population (bayesln.predict.priors), so P(k better than the reference) = Phi(d_k / 0.5).

Slow test: ``bayesln fit`` of the shipped network spec with tiny settings (a failed gate is
expected; in the bundled data no comparison can be node-split, so it is one fit) and
``bayesln predict RUN``; at the trials' covariates the population log odds ratios equal the
fit's own NetworkResult.effect_draws() draw by draw and the ranks its rank_probabilities().
"""

from __future__ import annotations

import io
import itertools
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
from bayesln.hierarchy.network import NetworkResult, build_network_design
from bayesln.hierarchy.priors import Priors, resolve_tau_prior
from bayesln.predict import PredictionSet, Target, load_targets, predict
from bayesln.predict.command import format_predictions
from bayesln.predict.engine import LEVELS, engine_for
from bayesln.predict.extrapolation import contraction_table
from bayesln.predict.network import NetworkEngine, NetworkPrediction

ROOT = Path(__file__).resolve().parents[1]
S = 20000
TREATMENTS = ("ivcy", "mmf", "tac_duo", "tac_triple")  # reference first, then by label
PAIRS = tuple(f"{k} vs {l}" for k, l in itertools.permutations(TREATMENTS, 2))
D0 = np.array([0.3, 0.8, 1.1])  # d[mmf], d[tac_duo], d[tac_triple]: log-OR vs IVCY
FULL = np.concatenate([[0.0], D0])
#: bundled network (total_response, induction RCTs): each trial's baseline log odds (its IVCY arm)
MU_BUNDLED = {"liu2015": 0.5, "bao2008": -0.2, "zheng2022": 1.0, "zhang2006_iv": 1.4, "zhang_v_iv": 0.1,
              "amudalapalli2025": 0.2}
#: the simulated network: (study, phase, [(treatment, regimen, events, n)]); baseline arm = first in
#: the treatment order: S3 and S5 have MMF as their baseline
SIM = [("s1", "induction", [("ivcy", None, 30, 60), ("tac", "duo", 40, 60)]),
       ("s2", "induction", [("ivcy", None, 25, 50), ("tac", "triple", 35, 50)]),
       ("s3", "induction", [("mmf", None, 28, 50), ("tac", "duo", 33, 50)]),
       ("s4", "induction", [("ivcy", None, 20, 40), ("mmf", None, 22, 40), ("tac", "duo", 27, 40)]),
       ("s5", "induction", [("mmf", None, 30, 55), ("tac", "triple", 38, 55)]),
       ("s6", "maintenance", [("ivcy", None, 20, 45), ("tac", "duo", 30, 45)])]
MU_SIM = {"s1": 0.1, "s2": -0.3, "s3": 0.6, "s4": 0.0, "s5": 0.9}
BASE_SIM = {"s1": "ivcy", "s2": "ivcy", "s3": "mmf", "s4": "ivcy", "s5": "mmf"}  # by hand from SIM


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def td():
    return bayesln.load_dataset("tacrolimus_ln")


def sim_data() -> pd.DataFrame:
    rows = [{"study": s, "arm": f"{t}_{r or ''}", "treatment": t, "regimen": r, "phase": ph, "design": "rct",
             "outcome": "total_response", "events": e, "n": n} for s, ph, arms in SIM for t, r, e, n in arms]
    return pd.DataFrame(rows)


def bundled_design(td, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # beta_phase not identified (phase_effect)
        return build_network_design(td, "total_response", reference="ivcy", designs=("rct",),
                                    **({"phases": ("induction",)} if not kw.get("phase_effect") else {}), **kw)


def sim_design(**kw):
    return build_network_design(sim_data(), "total_response", reference="ivcy", **kw)


def fake_network_fit(des, post: dict, *, problems=(), seed=0) -> NetworkResult:
    """A NetworkResult whose posterior draws are ``post`` (one chain) on the design ``des``,
    with the config priors fit_network writes (resolved tau prior, beta_phase's prior)."""
    n = len(np.asarray(next(iter(post.values()))))
    dims = {"mu": ("study",), "d": ("treatment",), "d_extra": ("comparison",), "tau": (), "beta_phase": ()}
    coords = {"chain": [0], "draw": np.arange(n), "study": des.study_ids}
    if des.model != "ume":
        coords["treatment"] = des.nonref
    if des.extra_names:
        coords["comparison"] = des.extra_names
    dv = {k: (("chain", "draw") + dims[k], np.asarray(v, float)[None]) for k, v in post.items()}
    idata = _arviz.make_inference_data({"posterior": xr.Dataset(dv, coords=coords)})
    pr = Priors()
    priors = pr.model_dump(mode="json")
    priors["tau"] = resolve_tau_prior(pr.tau, "total_response").model_dump(mode="json")
    priors["beta_phase"] = pr.beta_for("phase:maintenance").model_dump(mode="json")
    config = {"family": "network", "model": des.model, "priors": priors}
    diag = Diagnostics(table=pd.DataFrame(columns=["parameter", "r_hat", "ess_bulk", "ess_tail", "ok"]), divergences=0,
                       bfmi=np.array([1.0]), thresholds=GateThresholds(), problems=list(problems))
    return NetworkResult(idata=idata, design=des, diagnostics=diag, config=config, seed=seed, backend="fake")


def fixed_post(des, mu: dict, tau=0.0, n=S, **extra):
    return {"mu": np.tile([mu[s] for s in des.study_ids], (n, 1)), "d": np.tile(D0, (n, 1)), "tau": np.full(n, tau),
            **extra}


@pytest.fixture(scope="module")
def fixed(td):
    """Bundled design, tau = 0, every parameter at a known value."""
    return fake_network_fit(bundled_design(td), fixed_post(bundled_design(td), MU_BUNDLED))


@pytest.fixture(scope="module")
def sim_fixed():
    des = sim_design()
    return fake_network_fit(des, fixed_post(des, MU_SIM))


@pytest.fixture(scope="module")
def spread(td):
    """Posterior spread in every parameter (for the draw-by-draw arithmetic and the ranks)."""
    rng = np.random.default_rng(1)
    des = bundled_design(td)
    mu = np.array([MU_BUNDLED[s] for s in des.study_ids])
    return fake_network_fit(des, {"mu": mu + 0.3 * rng.standard_normal((S, len(mu))),
                                  "d": D0 + 0.5 * rng.standard_normal((S, 3)), "tau": np.abs(rng.normal(0, 0.3, S))})


PLAIN = Target(name="plain")
NON_ASIAN = Target(name="nonasian", asian_fraction=0.0)


def mc_tol(p, n=S, k=4.5):
    return k * math.sqrt(p * (1 - p) / n) + 1e-9


def close_sd(x, sd, n=S):
    return abs(np.std(x) - sd) < 4.5 * sd / math.sqrt(2 * n)


def close_mean(x, mean, sd, n=S):
    return abs(np.mean(x) - mean) < 4.5 * sd / math.sqrt(n) + 1e-12


# ----------------------------------------------------------------------------- engine and closed forms
def test_engine_is_chosen_by_the_fit_family(fixed):
    assert isinstance(engine_for(fixed, seed=1), NetworkEngine)
    p = predict(fixed, PLAIN, seed=1)
    assert isinstance(p, NetworkPrediction) and p.treatments == TREATMENTS and p.pairs == PAIRS
    assert p.main_pair == ("tac_duo", "ivcy") and p.outcome == "total_response" and p.direction == "benefit"
    assert p.regimen == "TAC duo (the target sets no regimen)" and p.comparator == "ivcy"
    assert PredictionSet([p])[("plain", "tac_duo vs mmf")].regimen == "TAC duo"
    assert "NetworkPrediction plain / total_response: 4 treatments" in repr(p)
    assert bayesln.predict.NetworkPrediction is NetworkPrediction and bayesln.predict.NetworkEngine is NetworkEngine


def test_population_closed_form_and_tau_zero(fixed):
    """P_k = expit(mean of the trials' IVCY log odds + d_k) (every bundled trial has IVCY as its
    baseline arm); with tau = 0 a new trial's log-OR vs IVCY is d_k in every draw, and its
    baseline is one trial's, drawn uniformly."""
    p = predict(fixed, PLAIN, seed=1)
    b = np.mean(list(MU_BUNDLED.values()))
    for k, t in enumerate(TREATMENTS):
        np.testing.assert_allclose(p.probabilities["population"][t], expit(b + FULL[k]), rtol=0, atol=1e-15)
        if k:
            np.testing.assert_allclose(p[f"{t} vs ivcy"].draws["new_trial"]["log_or"], FULL[k], rtol=0, atol=1e-12)
    main = p.main.draws["population"]
    np.testing.assert_allclose(main["p_tac"], expit(b + D0[1]), atol=1e-15)
    np.testing.assert_allclose(main["p_comparator"], expit(b), atol=1e-15)
    base = logit(p.probabilities["new_trial"]["ivcy"])
    ref = np.array(list(MU_BUNDLED.values()))
    which = np.abs(base[:, None] - ref[None, :]).argmin(axis=1)
    np.testing.assert_allclose(base, ref[which], rtol=0, atol=1e-9)
    share = np.bincount(which, minlength=len(ref)) / S
    assert np.all(np.abs(share - 1 / 6) < mc_tol(1 / 6))
    rep = p.extrapolation
    assert rep.outside_data == [] and not rep.prior_driven and rep.status == "none"
    assert "6 included trials" in rep.baseline and "mu_i - d[b(i)]" in rep.baseline


def test_reference_baseline_of_trials_with_another_baseline_arm(sim_fixed):
    """Simulated network: S3 and S5 have MMF as their baseline arm, so their IVCY log odds is
    mu_i - d[mmf]; the reference baseline is the mean over the trials of mu_i - d[b(i)]."""
    des = sim_fixed.design
    got = dict(zip(des.arms.loc[des.arms["is_base"], "study"], des.arms.loc[des.arms["is_base"], "node"]))
    assert got == BASE_SIM and list(des.treatments) == list(TREATMENTS)
    ref = np.array([MU_SIM[s] - FULL[TREATMENTS.index(BASE_SIM[s])] for s in des.study_ids])
    p = predict(sim_fixed, PLAIN, seed=2)
    for k, t in enumerate(TREATMENTS):
        np.testing.assert_allclose(p.probabilities["population"][t], expit(ref.mean() + FULL[k]), atol=1e-15)
        nt = logit(p.probabilities["new_trial"][t]) - FULL[k]  # tau = 0: one trial's reference baseline
        assert np.all(np.min(np.abs(nt[:, None] - ref[None, :]), axis=1) < 1e-9)
    share = np.bincount(np.abs(nt[:, None] - ref[None, :]).argmin(axis=1), minlength=5) / S
    assert np.all(np.abs(share - 0.2) < mc_tol(0.2))


def test_new_trial_effects_have_sd_tau_and_correlation_one_half(td):
    """New trial: log-OR vs IVCY = d_k + tau e_k with SD tau and correlation 1/2 between
    treatments (the model's multi-arm covariance), so a contrast of two non-reference
    treatments also has SD tau; the population level has none of it."""
    tau = 0.6
    des = bundled_design(td)
    p = predict(fake_network_fit(des, fixed_post(des, MU_BUNDLED, tau=tau)), PLAIN, seed=3)
    lor = np.column_stack([p[f"{t} vs ivcy"].draws["new_trial"]["log_or"] for t in TREATMENTS[1:]])
    for k in range(3):
        assert close_mean(lor[:, k], D0[k], tau) and close_sd(lor[:, k], tau)
        np.testing.assert_allclose(p[f"{TREATMENTS[k + 1]} vs ivcy"].draws["population"]["log_or"], D0[k], atol=1e-12)
    C = np.corrcoef(lor.T)
    assert np.all(np.abs(C[np.triu_indices(3, 1)] - 0.5) < 4.5 * (1 - 0.25) / math.sqrt(S))
    for a, b in (("tac_duo", "mmf"), ("tac_triple", "tac_duo")):
        assert close_sd(p[f"{a} vs {b}"].draws["new_trial"]["log_or"], tau)


def test_rank_probabilities_equal_a_direct_ranking(spread, td):
    """P(rank r) per treatment = the share of draws in which scipy.stats.rankdata of the
    probability draws (highest = 1) gives rank r; each row and column sums to 1; SUCRA =
    (T - mean rank) / (T - 1); at the population level (no terms, all draws) they are the
    fit's own NetworkResult.rank_probabilities(); a harm outcome reverses the ranks."""
    p = predict(spread, PLAIN, seed=4)
    T = len(TREATMENTS)
    for level in LEVELS:
        P = np.column_stack([p.probabilities[level][t] for t in TREATMENTS])
        ranks = stats.rankdata(-P, axis=1, method="ordinal")
        rk = p.ranks[level]
        assert list(rk["node"]) == list(TREATMENTS)
        for r in range(1, T + 1):
            np.testing.assert_allclose(rk[f"P(rank {r})"], (ranks == r).mean(axis=0), rtol=0, atol=1e-12)
        M = rk[[f"P(rank {r})" for r in range(1, T + 1)]].to_numpy()
        np.testing.assert_allclose(M.sum(axis=0), 1.0, atol=1e-12)
        np.testing.assert_allclose(M.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(rk["mean_rank"], ranks.mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(rk["SUCRA"], (T - ranks.mean(axis=0)) / (T - 1), atol=1e-12)
    own = spread.rank_probabilities()
    cols = [f"P(rank {r})" for r in range(1, T + 1)] + ["SUCRA"]
    np.testing.assert_allclose(p.ranks["population"][cols].to_numpy(), own[cols].to_numpy(), atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        harm_des = build_network_design(td, "total_response", phases=("induction",), designs=("rct",), direction="harm")
    post = {k: np.asarray(spread.idata.posterior[k].values)[0] for k in ("mu", "d", "tau")}
    h = predict(fake_network_fit(harm_des, post), PLAIN, seed=4)
    for r in range(1, T + 1):
        np.testing.assert_allclose(h.ranks["new_trial"][f"P(rank {r})"], p.ranks["new_trial"][f"P(rank {T + 1 - r})"],
                                   atol=1e-12)
    assert "rank 1 = the lowest P(total_response)" in h.text()


def test_every_pair_draw_by_draw(spread):
    """Every treatment k vs every other l: p_tac = P_k, p_comparator = P_l, RD, RR, OR, NNT,
    P(k better) from those draws; the main prediction is the cell (regimen, comparator)."""
    p = predict(spread, NON_ASIAN, seed=5)
    for level in LEVELS:
        for k, l in itertools.permutations(TREATMENTS, 2):
            d = p[f"{k} vs {l}"].draws[level]
            pk, pl = p.probabilities[level][k], p.probabilities[level][l]
            assert np.array_equal(d["p_tac"], pk) and np.array_equal(d["p_comparator"], pl)
            assert np.array_equal(d["rd"], pk - pl) and np.array_equal(d["rr"], pk / pl)
            assert np.array_equal(d["nnt"], 1.0 / (pk - pl))
            np.testing.assert_allclose(d["or"], (pk / (1 - pk)) / (pl / (1 - pl)), rtol=1e-9)
            np.testing.assert_allclose(d["log_or"], logit(pk) - logit(pl), rtol=0, atol=1e-9)
            assert np.array_equal(d["tac_better"], (pk > pl).astype(float))
            assert np.array_equal(d["rd_above_margin"], (pk - pl > p.margin).astype(float))
            assert np.array_equal(p[f"{l} vs {k}"].draws[level]["rd"], pl - pk)
        for q, v in p.main.draws[level].items():
            assert np.array_equal(v, p["tac_duo vs ivcy"].draws[level][q]), q
    assert p.margin == 0.10
    m = p.matrix("rd", "new_trial")
    assert m.loc["tac_triple", "mmf"] == pytest.approx(np.median(p["tac_triple vs mmf"].draws["new_trial"]["rd"]))
    assert np.isnan(m.loc["mmf", "mmf"])
    t = p.table()
    cell = t[t["outcome"] == "total_response:tac_duo vs mmf"].set_index(["level", "quantity"])
    assert len(cell) == 16 and cell.loc[("population", "rd"), "label"] == "risk difference (TAC duo - MMF)"
    assert cell.loc[("population", "tac_better"), "mean"] == pytest.approx(
        np.mean(p.probabilities["population"]["tac_duo"] > p.probabilities["population"]["mmf"]))
    assert cell.loc[("population", "rd"), "prior_share"] > 0  # the asian_fraction terms
    assert set(t["outcome"]) == {"total_response"} | {f"total_response:{x}" for x in TREATMENTS + PAIRS}
    for comp, reg in (("mmf", None), (None, "triple")):
        q = predict(spread, Target(name="c", comparator=comp, regimen=reg), seed=5)
        key = f"{'tac_' + reg if reg else 'tac_duo'} vs {comp or 'ivcy'}"
        assert np.array_equal(q.main.draws["new_trial"]["or"], q[key].draws["new_trial"]["or"])
    smp = p.samples("new_trial")
    assert np.array_equal(smp["p_mmf"], p.probabilities["new_trial"]["mmf"]) and len(smp) == S


def test_baseline_risk_is_the_target_comparators(fixed):
    """baseline_risk gives the comparator's risk (the reference when the target names none)
    at both levels; every other treatment follows from its log-OR vs that comparator."""
    p = predict(fixed, Target(name="b", baseline_risk=0.4), seed=6)
    for level in LEVELS:
        for k, t in enumerate(TREATMENTS):
            np.testing.assert_allclose(p.probabilities[level][t], expit(logit(0.4) + FULL[k]), atol=1e-12)
    assert p.extrapolation.baseline.startswith("IVCY-arm P(total_response) given by the target")
    q = predict(fixed, Target(name="m", comparator="mmf", baseline_risk=0.4), seed=6)
    for level in LEVELS:
        for k, t in enumerate(TREATMENTS):
            np.testing.assert_allclose(q.probabilities[level][t], expit(logit(0.4) + FULL[k] - D0[0]), atol=1e-12)
        np.testing.assert_allclose(q.main.draws[level]["p_comparator"], 0.4, atol=1e-12)
    assert q.main_pair == ("tac_duo", "mmf") and q.extrapolation.baseline.startswith("MMF-arm")


# ----------------------------------------------------------------------------- extrapolation
def test_unidentified_modifier_per_treatment_correlated_one_half(fixed):
    """asian_fraction = 0 (every trial reporting it has 1): Delta_k ~ N(0, 0.5) on each
    treatment's log-OR vs IVCY, correlation 1/2 between treatments (so every contrast also
    has SD 0.5), and one Gamma ~ N(0, 0.5) on the IVCY log odds, independent of them;
    P(k better than IVCY) = Phi(d_k / 0.5)."""
    p = predict(fixed, NON_ASIAN, seed=7)
    pop = p.probabilities["population"]
    delta = np.column_stack([logit(pop[t]) - logit(pop["ivcy"]) - FULL[k] for k, t in enumerate(TREATMENTS) if k])
    gamma = logit(pop["ivcy"]) - np.mean(list(MU_BUNDLED.values()))
    for x in list(delta.T) + [gamma]:
        assert close_mean(x, 0.0, 0.5) and close_sd(x, 0.5)
    C = np.corrcoef(np.column_stack([delta, gamma]).T)
    assert np.all(np.abs(C[:3, :3][np.triu_indices(3, 1)] - 0.5) < 4.5 * 0.75 / math.sqrt(S))
    assert np.all(np.abs(C[3, :3]) < 4.5 / math.sqrt(S))
    for a, b in ((1, 0), (2, 1), (2, 0)):
        assert close_sd(delta[:, a] - delta[:, b], 0.5)
    for k, t in enumerate(TREATMENTS[1:]):
        ref = stats.norm.cdf(D0[k] / 0.5)
        assert abs(p[f"{t} vs ivcy"].draws["population"]["tac_better"].mean() - ref) < mc_tol(ref)
    rep = p.extrapolation
    assert rep.outside_data == ["asian_fraction"] and rep.prior_driven and "correlated 1/2" in rep.text
    c = rep.contraction.set_index("parameter")
    assert c.loc["extrapolation[effect:asian_fraction]", "contraction"] == 0.0
    s = rep.sensitivity
    z = s[(s["scenario"] == "sd 0 (transportable)") & (s["level"] == "population") & (s["quantity"] == "or")
          & (s["term"] == "effect:asian_fraction")]
    assert z["median"].iloc[0] == pytest.approx(math.exp(D0[1]), rel=1e-9)  # TAC duo vs IVCY, transported


def test_unseen_comparator_and_unstudied_phase(fixed):
    """Maintenance vs AZA on the induction network: no trial used AZA or studied maintenance.
    The AZA arm is IVCY shifted by a comparator term ~ N(0, 0.5); the network treatments (and
    so TAC duo) are those of the same target with IVCY; AZA is not ranked."""
    t = load_targets()["maintenance_after_induction"]
    p = predict(fixed, t, seed=8)
    assert p.extrapolation.outside_data == ["comparator", "phase"]
    assert p.main_pair == ("tac_duo", "aza") and "aza" not in p.probabilities["population"]
    seen = predict(fixed, t.model_copy(update={"comparator": "ivcy"}), seed=8)
    for level in LEVELS:
        for x in TREATMENTS:
            assert np.array_equal(p.probabilities[level][x], seen.probabilities[level][x])
        assert np.array_equal(p.main.draws[level]["p_tac"], seen.main.draws[level]["p_tac"])
        shift = logit(p.probabilities[level]["ivcy"]) - logit(p.main.draws[level]["p_comparator"])
        assert close_mean(shift, 0.0, 0.5) and close_sd(shift, 0.5)
    assert "aza is not in the network" in p.text()


def test_phase_effect_fit_uses_its_maintenance_shift(td):
    """phase_effect: a maintenance target's log-OR vs IVCY is d_k + beta_phase (tau = 0); the
    trials' IVCY log odds of Chen 2012 (maintenance, AZA baseline) is mu - d[aza] - beta_phase.
    In the bundled data beta_phase is not identified (Chen 2012 compares TAC duo with AZA):
    reported as resting on no trial; in the simulated network S6 (IVCY vs TAC duo) informs it."""
    des = bundled_design(td, phase_effect=True)
    assert not des.phase_identified and list(des.treatments) == ["ivcy", "aza", "mmf", "tac_duo", "tac_triple"]
    d, b = np.array([-0.2, 0.3, 0.8, 1.1]), -0.4
    mu = {**MU_BUNDLED, "chen2012": 1.5}
    post = {"mu": np.tile([mu[s] for s in des.study_ids], (S, 1)), "d": np.tile(d, (S, 1)), "tau": np.zeros(S),
            "beta_phase": np.full(S, b)}
    fit = fake_network_fit(des, post)
    full = np.concatenate([[0.0], d])
    ref = np.mean([mu[s] - (full[1] + b if s == "chen2012" else 0.0) for s in des.study_ids])
    p = predict(fit, PLAIN, seed=1)  # no phase set: no term; the trials' reference baselines as they are
    for k, t in enumerate(des.treatments):
        np.testing.assert_allclose(p.probabilities["population"][t], expit(ref + full[k]), atol=1e-12)
    for phase, shift in (("induction", 0.0), ("maintenance", b)):
        # (a phase moves the baseline by an unidentified term: the trials mix both phases)
        p = predict(fit, Target(name=phase, phase=phase, comparator="ivcy"), seed=1)
        pop = p.probabilities["population"]
        for k, t in enumerate(des.treatments[1:], start=1):
            np.testing.assert_allclose(logit(pop[t]) - logit(pop["ivcy"]), full[k] + shift, atol=1e-9)
    m = p.extrapolation.modifiers.set_index("parameter")
    assert m.loc["beta_phase[maintenance]", "status"] == "data-thin: no trial"
    assert "beta_phase[maintenance]" in p.extrapolation.text and p.extrapolation.outside_data == []
    c = contraction_table(fit).set_index("parameter")
    assert c.loc["beta_phase[maintenance]", "prior_sd"] == pytest.approx(1.0)  # normal(0, 1), Priors.beta_for
    sdes = sim_design(phase_effect=True)
    assert sdes.phase_identified
    sfit = fake_network_fit(sdes, {**fixed_post(sdes, {**MU_SIM, "s6": 0.0}), "beta_phase": np.full(S, b)})
    sp = predict(sfit, Target(name="m", phase="maintenance"), seed=1)
    sm = sp.extrapolation.modifiers.set_index("parameter")
    assert sm.loc["beta_phase[maintenance]", "status"] == "data-thin: one trial"
    assert sm.loc["beta_phase[maintenance]", "trials"] == "s6"


def test_contraction_rows_per_treatment(spread):
    """One row per treatment d[k] (prior normal(0, 2.5): SD 2.5) and tau (half_normal(s): SD
    s sqrt(1 - 2 / pi)); contraction = 1 - posterior variance / prior variance."""
    tab = contraction_table(spread).set_index("parameter")
    d = np.asarray(spread.idata.posterior["d"].values)[0]
    for k, t in enumerate(TREATMENTS[1:]):
        assert tab.loc[f"d[{t}]", "prior_sd"] == pytest.approx(2.5)
        assert tab.loc[f"d[{t}]", "contraction"] == pytest.approx(1 - np.var(d[:, k], ddof=1) / 2.5**2, rel=1e-12)
    scale = spread.config["priors"]["tau"]["params"]["scale"]
    assert tab.loc["tau", "prior_sd"] == pytest.approx(scale * math.sqrt(1 - 2 / math.pi), rel=1e-12)
    assert not any(p.startswith("mu") for p in tab.index)


# ----------------------------------------------------------------------------- refusals, gate, outputs
def test_ume_fit_is_refused():
    des = sim_design(model="ume")
    fit = fake_network_fit(des, {"mu": np.zeros((10, 5)), "d_extra": np.zeros((10, len(des.extra_names))),
                                 "tau": np.full(10, 0.2)})
    with pytest.raises(ValueError, match="need the consistency model.*unrelated-mean-effects"):
        predict(fit, PLAIN, seed=1)


def test_failed_gate_is_refused_unless_allowed(td):
    des = bundled_design(td)
    bad = fake_network_fit(des, fixed_post(des, MU_BUNDLED, n=200), problems=["R-hat > 1.01: d[tac_duo] (1.2)"])
    with pytest.raises(GateFailedError, match="predictions refused"):
        predict(bad, PLAIN, seed=1)
    p = predict(bad, NON_ASIAN, seed=1, allow_failed_gate=True)
    assert p.fit_status == "failed_gate" and p.warning.startswith("WARNING")
    assert all(x.warning == p.warning for x in p.predictions.values())
    t = p.table()
    assert (t["warning"] == p.warning).all() and (t["fit_status"] == "failed_gate").all()
    assert {"sucra", "p_rank_1", "p"} <= set(t["quantity"]) and len(t) == 16 + 2 * 4 * 7 + 12 * 16
    assert p.text().startswith(p.warning)
    d = PredictionSet([p]).to_dict()
    assert d["warnings"] == [p.warning] and all(r["warning"] == p.warning for r in d["predictions"])


def test_outputs_are_strict_and_reproducible(spread):
    ps = PredictionSet([predict(spread, t, seed=9, draws=2000) for t in (PLAIN, NON_ASIAN)])

    def no_nan(x):
        raise ValueError(f"non-standard JSON constant {x}")

    d = json.loads(format_predictions(ps, "json"), parse_constant=no_nan)
    assert len(d["predictions"]) == 2 * (16 + 2 * 4 * 7 + 12 * 16)
    assert set(d["extrapolation"]) == {"plain/total_response", "nonasian/total_response"}
    csv = pd.read_csv(io.StringIO(format_predictions(ps, "csv")))
    assert "total_response:tac_duo vs mmf" in set(csv["outcome"]) and "sucra" in set(csv["quantity"])
    table = format_predictions(ps, "table")
    assert "P(best) / SUCRA" in table and "total_response:tac_triple" in table
    a = predict(spread, NON_ASIAN, seed=9, draws=2000)
    pd.testing.assert_frame_equal(a.table(), ps["nonasian"].table())
    assert a.text() == ps["nonasian"].text() and a.n_draws == 2000
    c = predict(spread, NON_ASIAN, seed=10, draws=2000)
    assert not np.array_equal(a.probabilities["new_trial"]["mmf"], c.probabilities["new_trial"]["mmf"])


# ============================================================================= MCMC (slow)
@pytest.fixture(scope="module")
def network_run(tmp_path_factory):
    from typer.testing import CliRunner

    from bayesln.cli import app

    out = tmp_path_factory.mktemp("network_run")
    r = CliRunner().invoke(app, ["fit", str(ROOT / "models" / "network_total_response.toml"), "--draws", "100",
                                 "--tune", "100", "--chains", "2", "--out", str(out), "--quiet", "--allow-failed-gate"])
    assert r.exit_code == 0, (r.stderr, r.exception)
    return out / "network_total_response"


@pytest.mark.slow
def test_cli_predict_on_a_network_run_folder(network_run):
    from typer.testing import CliRunner

    from bayesln.cli import app
    from bayesln.predict.command import load_run_result

    runner = CliRunner()
    status = json.loads((network_run / "run.json").read_text())["status"]
    res, spec = load_run_result(network_run)
    assert isinstance(res, NetworkResult) and res.status == status  # the same gate as the fit
    assert list(res.design.treatments) == list(TREATMENTS) and res.seed == spec.sampler.seed
    allow = [] if status == "ok" else ["--allow-failed-gate"]
    if allow:  # tiny settings: the gate fails; without the flag the command refuses (exit 1)
        assert runner.invoke(app, ["predict", str(network_run), "--target", "asian_class_iii_iv"]).exit_code == 1
    target = ["--target", "non_asian_class_iii_iv"]
    r = runner.invoke(app, ["predict", str(network_run), *target, "--format", "csv", *allow])
    assert r.exit_code == 0, (r.stderr, r.exception)
    printed = pd.read_csv(io.StringIO(r.stdout))
    assert {"total_response", "total_response:tac_triple vs mmf"} <= set(printed["outcome"])
    if allow:
        assert (printed["fit_status"] == "failed_gate").all() and printed["warning"].str.startswith("WARNING").all()
    p = predict(res, "non_asian_class_iii_iv", seed=spec.sampler.seed, allow_failed_gate=bool(allow))
    np.testing.assert_allclose(printed["median"].to_numpy(float), p.table()["median"].to_numpy(float), rtol=1e-5,
                               equal_nan=True)
    d = json.loads(runner.invoke(app, ["predict", str(network_run), *target, "--format", "json", *allow]).stdout)
    rep = d["extrapolation"]["non_asian_class_iii_iv/total_response"]
    assert "asian_fraction" in rep["outside_data"] and "from the run folder's data.csv" in rep["text"]
    assert d["warnings"] == ([p.warning] if allow else [])
    text = runner.invoke(app, ["predict", str(network_run), *target, *allow])
    assert text.exit_code == 0 and "P(best) / SUCRA" in text.stdout
    # at the trials' covariates: the fit's own relative effects and ranks, draw by draw
    plain = predict(res, PLAIN, seed=1, allow_failed_gate=True)
    eff = res.effect_draws()
    for k, t in enumerate(TREATMENTS[1:], start=1):
        np.testing.assert_allclose(plain[f"{t} vs ivcy"].draws["population"]["log_or"], eff[:, k], rtol=0, atol=1e-9)
    cols = [f"P(rank {r})" for r in range(1, 5)] + ["SUCRA"]
    np.testing.assert_allclose(plain.ranks["population"][cols].to_numpy(), res.rank_probabilities()[cols].to_numpy(),
                               atol=1e-12)
