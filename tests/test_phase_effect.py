"""Phase covariate of the joint and network families (issue 5: "induction and maintenance
kept apart by default (different estimands) with an option to share information through a
phase covariate").

* joint: ``phase_effect=True`` gives each outcome's study effect a maintenance shift,
  ``delta_io = d_o + beta_phase_o x_i + tau_o (L z_i)_o`` with ``x_i = 1`` for a maintenance
  trial, ``beta_phase_o ~ Normal(0, 1)``;
* network: the "common interaction" meta-regression of NICE DSU TSD3 (Dias et al. 2011,
  §2.2): in a maintenance trial every basic parameter vs the reference gets the same shift,
  ``delta_i,bk`` has mean ``(d_k + beta x_i 1[k != ref]) - (d_b + beta x_i 1[b != ref])``.

Independent references: the log density at a point is written out here with scipy (the
multi-arm Cholesky factor and the LKJ(2) Cholesky for K = 2 by hand); recovery of a known
shift on simulated data (slow tier, tiny sampler settings); the spec / command line path
with ``bayesln fit`` (CliRunner), as in tests/test_cli_commands.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit
from typer.testing import CliRunner

import bayesln
from bayesln.hierarchy.joint import build_joint_design, build_joint_model, fit_joint
from bayesln.hierarchy.network import build_network_design, build_network_model, fit_network
from bayesln.spec import FAMILY_MODEL_KEYS, SpecError, spec_from_dict

#: tiny fits. PyMC's NUTS, not nutpie: its C kernels are cached in PyTensor's compiledir,
#: while nutpie recompiles its numba wrappers in every process (family fits are not in the
#: in-process compiled-model cache), which dominates fits this small
FAST = dict(draws=300, tune=300, chains=2, backend="pymc", cores=1, progressbar=False, prior_predictive=False,
            posterior_predictive=False)
TINY_CLI = ["--draws", "100", "--tune", "100", "--chains", "2", "--quiet", "--allow-failed-gate"]
JOINT_OUTS = ("total_response", "leucopenia")


@pytest.fixture(scope="module")
def td():
    return bayesln.load_dataset("tacrolimus_ln")


def free_names(model) -> list[str]:
    return [v.name for v in model.free_RVs]


# ============================================================================ simulated data
def sim_joint(seed: int = 11, n_per_phase: int = 6, n: int = 250):
    """Two outcomes, every study reports both; maintenance trials shift the log-ORs."""
    rng = np.random.default_rng(seed)
    truth = {"d": np.array([0.5, -0.4]), "beta": np.array([0.9, -0.8]), "tau": np.array([0.1, 0.1]), "rho": 0.3}
    outs = ("total_response", "severe_infection")
    R = np.array([[1.0, truth["rho"]], [truth["rho"], 1.0]])
    S = R * np.outer(truth["tau"], truth["tau"])
    rows = []
    for i in range(2 * n_per_phase):
        maint = i >= n_per_phase
        delta = rng.multivariate_normal(truth["d"] + maint * truth["beta"], S)
        mu = rng.normal([0.3, -1.5], 0.3)
        for k, o in enumerate(outs):
            for arm, t in (("tac", 1), ("ivcy", 0)):
                p = expit(mu[k] + t * delta[k])
                rows.append({"study": f"s{i:02d}", "arm": arm, "treatment": arm, "outcome": o,
                             "events": int(rng.binomial(n, p)), "n": n, "regimen": "duo" if t else "control",
                             "phase": "maintenance" if maint else "induction", "design": "rct"})
    return pd.DataFrame(rows), truth, outs


#: network of IVCY (reference), MMF, TAC duo; a 3-arm trial in each phase
NET_TRIALS = (
    [("induction", ("ivcy", "mmf"))] * 3 + [("induction", ("ivcy", "tac_duo"))] * 3
    + [("induction", ("mmf", "tac_duo"))] * 2 + [("induction", ("ivcy", "mmf", "tac_duo"))]
    + [("maintenance", ("ivcy", "mmf"))] * 2 + [("maintenance", ("ivcy", "tac_duo"))] * 2
    + [("maintenance", ("ivcy", "mmf", "tac_duo")), ("maintenance", ("mmf", "tac_duo"))]
)
NET_TRUTH = {"d": {"ivcy": 0.0, "mmf": 0.4, "tac_duo": 0.9}, "beta": -0.8}


def sim_network(seed: int = 5, n: int = 300, tau: float = 0.05, outcome: str = "total_response") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i, (phase, nodes) in enumerate(NET_TRIALS):
        x = phase == "maintenance"
        eff = {k: NET_TRUTH["d"][k] + (NET_TRUTH["beta"] * x if k != "ivcy" else 0.0) for k in nodes}
        mu = rng.normal(0.0, 0.4)
        base = nodes[0]
        for k in nodes:
            lo = 0.0 if k == base else eff[k] - eff[base] + rng.normal(0, tau)
            rows.append({"study": f"t{i:02d}", "arm": k, "treatment": k.split("_")[0], "node": k,
                         "regimen": "duo" if k == "tac_duo" else "control", "outcome": outcome,
                         "events": int(rng.binomial(n, expit(mu + lo))), "n": n, "phase": phase, "design": "rct"})
    return pd.DataFrame(rows)


# ============================================================================ design level
def test_joint_indicator_is_one_exactly_for_maintenance_trials(td):
    with pytest.warns(UserWarning, match="leucopenia"):  # reported by the maintenance trial only
        des = build_joint_design(td, JOINT_OUTS, designs=("rct",), phase_effect=True)
    assert des.phases == ("induction", "maintenance")  # default phases with phase_effect
    assert "chen2012" in des.study_ids
    rows = des.rows
    np.testing.assert_array_equal(rows["maintenance"].to_numpy(), (rows["phase"] == "maintenance").to_numpy().astype(float))
    assert set(rows.loc[rows["maintenance"] == 1, "study"]) == {"chen2012"}
    assert [s for s, x in zip(des.study_ids, des.maintenance) if x == 1] == ["chen2012"]
    assert des.phase_support["total_response"] == {"induction": 6, "maintenance": 1}
    assert des.phase_support["leucopenia"] == {"induction": 0, "maintenance": 1}
    u = des.usage.set_index("study")
    assert u.loc["chen2012", "phase"].startswith("maintenance") and "beta_phase" in u.loc["chen2012", "phase"]
    assert u.loc["liu2015", "phase"] == "induction"
    m = build_joint_model(des)
    assert "beta_phase" in free_names(m)
    assert list(m.coords["outcome"]) == list(JOINT_OUTS) and m.named_vars_to_dims["beta_phase"] == ("outcome",)


def test_joint_default_is_the_old_model(td):
    """phase_effect=False: induction only, the same free variables as before the option."""
    des = build_joint_design(td, ("total_response", "severe_infection"))
    assert not des.phase_effect and des.phases == ("induction",) and "chen2012" not in des.study_ids
    assert "phase" not in des.usage.columns
    assert free_names(build_joint_model(des)) == ["mu", "d", "tau_0", "tau_1", "cpc", "z"]
    ex = build_joint_design(td, ("total_response", "severe_infection"), baseline="exchangeable")
    assert free_names(build_joint_model(ex)) == ["m", "sigma_mu_0", "sigma_mu_1", "mu_raw", "d", "tau_0", "tau_1", "cpc", "z"]
    # both phases selected but no phase covariate: still no shift (the phases are simply pooled)
    both = build_joint_design(td, ("total_response", "severe_infection"), phases=("induction", "maintenance"))
    assert "beta_phase" not in free_names(build_joint_model(both))
    ex_pe = build_joint_design(td, ("total_response", "severe_infection"), baseline="exchangeable", phase_effect=True,
                               warn=False)
    assert {"beta_phase", "gamma_phase"} <= set(free_names(build_joint_model(ex_pe)))


def test_network_shift_is_per_arm_contrast_with_the_reference():
    des = build_network_design(sim_network(), "total_response", reference="ivcy", phase_effect=True)
    assert des.phase_identified and des.treatments == ["ivcy", "mmf", "tac_duo"]
    a = des.arms.assign(g=des.phase_shift)
    np.testing.assert_array_equal(a["maintenance"].to_numpy(), (a["phase"] == "maintenance").to_numpy().astype(int))
    # the indicator enters only maintenance trials' non-baseline arms ...
    assert (a.loc[(a["maintenance"] == 0) | a["is_base"], "g"] == 0).all()
    # ... as 1[k != ref] - 1[b != ref]: 1 vs the reference, 0 (cancels) between non-reference treatments
    expect = ((a["node"] != "ivcy").astype(float) - (a["base_node"] != "ivcy").astype(float)) * a["maintenance"] * ~a["is_base"]
    np.testing.assert_array_equal(a["g"].to_numpy(), expect.to_numpy())
    three = a[(a["maintenance"] == 1) & (a.groupby("study")["arm"].transform("size") == 3)]
    assert three["g"].tolist() == [0.0, 1.0, 1.0]  # both arms of the 3-arm trial vs IVCY: consistent shift
    mt = a[(a["maintenance"] == 1) & (a["base_node"] == "mmf")]
    assert mt["g"].tolist() == [0.0, 0.0]
    assert "beta_phase" in free_names(build_network_model(des))
    assert set(des.usage.columns) >= {"phase"}


def test_network_default_is_the_old_model_and_bundled_shift_is_prior_only(td):
    des = build_network_design(td, "total_response")
    assert not des.phase_effect and des.phases == ("induction",) and not des.phase_shift.any()
    assert "phase" not in des.usage.columns
    assert free_names(build_network_model(des)) == ["mu", "d", "tau", "z"]
    assert free_names(build_network_model(build_network_design(td, "total_response", phases=None))) == ["mu", "d", "tau", "z"]
    # bundled: the only maintenance RCT (Chen 2012) is TAC duo vs AZA, so with IVCY as the
    # reference its shift cancels; the fit says that beta_phase is its prior
    with pytest.warns(UserWarning, match="prior only"):
        pe = build_network_design(td, "total_response", designs=("rct",), phase_effect=True)
    assert not pe.phase_identified and "chen2012" in pe.study_ids and not pe.phase_shift.any()
    assert "beta_phase cancels" in pe.usage.set_index("study").loc["chen2012", "usage"]


@pytest.mark.parametrize("family", ["joint", "network"])
def test_phase_effect_needs_both_phases(td, family):
    for phases in (("induction",), ("maintenance",)):
        with pytest.raises(ValueError, match="phase_effect needs induction and maintenance studies"):
            if family == "joint":
                build_joint_design(td, ("total_response", "severe_infection", "leucopenia"), phases=phases,
                                   phase_effect=True, warn=False)
            else:  # TAC duo: in the network of either phase
                build_network_design(td, "total_response", reference="tac_duo", phases=phases, phase_effect=True)


def test_phase_shift_priors_can_be_overridden():
    df, _, outs = sim_joint()
    des = build_joint_design(df, outs, phase_effect=True)
    pr = {"beta_overrides": {"phase:maintenance": "normal(0, 0.5)", "phase:maintenance:severe_infection": "normal(0.2, 2)"}}
    m = build_joint_model(des, priors=pr)
    val = np.array([0.3, -0.7])
    lp = m.compile_logp(vars=[m["beta_phase"]], jacobian=False)({**m.initial_point(), "beta_phase": val})
    assert lp == pytest.approx(stats.norm(0, 0.5).logpdf(0.3) + stats.norm(0.2, 2).logpdf(-0.7))
    m0 = build_joint_model(des)  # default: Normal(0, 1)
    lp0 = m0.compile_logp(vars=[m0["beta_phase"]], jacobian=False)({**m0.initial_point(), "beta_phase": val})
    assert lp0 == pytest.approx(stats.norm(0, 1).logpdf(val).sum())
    nd = build_network_design(sim_network(), "total_response", phase_effect=True)
    mn = build_network_model(nd, priors={"beta_overrides": {"phase:maintenance": "student_t(3, 0, 0.7)"}})
    lpn = mn.compile_logp(vars=[mn["beta_phase"]], jacobian=False)({**mn.initial_point(), "beta_phase": 0.4})
    assert lpn == pytest.approx(stats.t(3, 0, 0.7).logpdf(0.4))


# ============================================================================ log density
def test_joint_log_density_matches_scipy():
    """Full joint log density at a point, hand-written: binomial likelihood, the K = 2 LKJ
    Cholesky, the maintenance shift and all priors."""
    rows = []
    data = {  # study: (phase, {outcome: ((tac events, n), (ivcy events, n))})
        "s1": ("induction", {"total_response": ((30, 40), (20, 40)), "severe_infection": ((5, 40), (8, 40))}),
        "s2": ("maintenance", {"total_response": ((25, 30), (22, 31)), "severe_infection": ((2, 30), (6, 31))}),
        "s3": ("maintenance", {"total_response": ((14, 20), (9, 21))}),
    }
    for s, (ph, outs) in data.items():
        for o, ((et, nt), (ec, nc)) in outs.items():
            rows += [{"study": s, "arm": "tac", "treatment": "tac", "outcome": o, "events": et, "n": nt, "phase": ph},
                     {"study": s, "arm": "ivcy", "treatment": "ivcy", "outcome": o, "events": ec, "n": nc, "phase": ph}]
    des = build_joint_design(pd.DataFrame(rows), ("total_response", "severe_infection"), phase_effect=True)
    cells = [("s1", "total_response"), ("s2", "total_response"), ("s3", "total_response"),
             ("s1", "severe_infection"), ("s2", "severe_infection")]
    assert list(zip(des.so["study"], des.so["outcome"])) == cells
    m = build_joint_model(des)
    rng = np.random.default_rng(4)
    tau, cpc_u = np.array([0.3, 0.6]), 0.7
    pt_ = {"mu": rng.normal(size=5), "d": np.array([0.4, -0.3]), "tau_0_log__": np.log(tau[0]),
           "tau_1_log__": np.log(tau[1]), "cpc_logodds__": np.array([np.log(cpc_u / (1 - cpc_u))]),
           "z": rng.normal(size=5), "beta_phase": np.array([0.8, -0.5])}
    logp = m.compile_logp(jacobian=False)(pt_)

    c = 2 * cpc_u - 1
    z, d, b = pt_["z"], pt_["d"], pt_["beta_phase"]
    x = {"s1": 0.0, "s2": 1.0, "s3": 1.0}
    delta = {  # s1, s2 report both outcomes: (d + tau L z); s3 only total_response: d + tau z
        ("s1", "total_response"): d[0] + tau[0] * z[0],
        ("s1", "severe_infection"): d[1] + tau[1] * (c * z[0] + np.sqrt(1 - c**2) * z[3]),
        ("s2", "total_response"): d[0] + b[0] * x["s2"] + tau[0] * z[1],
        ("s2", "severe_infection"): d[1] + b[1] * x["s2"] + tau[1] * (c * z[1] + np.sqrt(1 - c**2) * z[4]),
        ("s3", "total_response"): d[0] + b[0] * x["s3"] + tau[0] * z[2],
    }
    ref = 0.0
    for k, (s, o) in enumerate(cells):
        (et, nt), (ec, nc) = data[s][1][o]
        mu = pt_["mu"][k]
        ref += stats.binom.logpmf(et, nt, expit(mu + delta[(s, o)])) + stats.binom.logpmf(ec, nc, expit(mu))
    ref += stats.norm(0, 2.5).logpdf(pt_["mu"]).sum() + stats.norm(0, 2.5).logpdf(d).sum()
    ref += stats.halfnorm(scale=0.5).logpdf(tau).sum() + stats.beta(2, 2).logpdf(cpc_u)  # LKJ(2), K = 2
    ref += stats.norm().logpdf(z).sum() + stats.norm(0, 1).logpdf(b).sum()
    assert logp == pytest.approx(ref, rel=1e-8)


def test_network_log_density_matches_scipy():
    """Network with a maintenance 3-arm trial and a maintenance trial of two non-reference
    treatments: the TSD3 common interaction, the multi-arm covariance tau^2/2, all priors."""
    arms = [  # study, phase, node, events, n   (order ivcy < mmf < tac_duo: baseline first)
        ("s1", "induction", "ivcy", 20, 50), ("s1", "induction", "mmf", 26, 50),
        ("s2", "maintenance", "ivcy", 30, 60), ("s2", "maintenance", "mmf", 33, 60), ("s2", "maintenance", "tac_duo", 41, 62),
        ("s3", "maintenance", "mmf", 18, 40), ("s3", "maintenance", "tac_duo", 25, 41),
        ("s4", "induction", "ivcy", 15, 45), ("s4", "induction", "tac_duo", 27, 44),
    ]
    df = pd.DataFrame([{"study": s, "arm": k, "treatment": k, "node": k, "outcome": "total_response", "events": e,
                        "n": n, "phase": ph, "design": "rct"} for s, ph, k, e, n in arms])
    des = build_network_design(df, "total_response", reference="ivcy", phase_effect=True)
    assert des.arm_ids == [f"{s}:{k}" for s, _, k, _, _ in arms]
    m = build_network_model(des)
    rng = np.random.default_rng(8)
    tau = 0.35
    pt_ = {"mu": rng.normal(size=4), "d": np.array([0.3, 0.9]), "beta_phase": np.array(-0.6),
           "tau_log__": np.log(tau), "z": rng.normal(size=5)}
    logp = m.compile_logp(jacobian=False)(pt_)

    dm, dt = pt_["d"]
    b, z, mu = float(pt_["beta_phase"]), pt_["z"], pt_["mu"]
    # z order: nonbase arms s1:mmf, s2:mmf, s2:tac_duo, s3:tac_duo, s4:tac_duo
    rel = [0.0, dm + tau * z[0],                                               # s1 induction
           0.0, dm + b + tau * z[1], dt + b + tau * (0.5 * z[1] + np.sqrt(0.75) * z[2]),  # s2 maintenance, 3 arms
           0.0, (dt + b) - (dm + b) + tau * z[3],                              # s3 maintenance: the shift cancels
           0.0, dt + tau * z[4]]                                               # s4 induction
    st = [0, 0, 1, 1, 1, 2, 2, 3, 3]
    ev = np.array([a[3] for a in arms])
    nn = np.array([a[4] for a in arms])
    ref = stats.binom.logpmf(ev, nn, expit(mu[st] + np.array(rel))).sum()
    ref += stats.norm(0, 2.5).logpdf(mu).sum() + stats.norm(0, 2.5).logpdf([dm, dt]).sum()
    ref += stats.norm(0, 1).logpdf(b) + stats.halfnorm(scale=0.5).logpdf(tau) + stats.norm().logpdf(z).sum()
    assert logp == pytest.approx(ref, rel=1e-8)


# ============================================================================ spec
def test_spec_accepts_phase_effect_for_joint_and_network():
    assert "phase_effect" in FAMILY_MODEL_KEYS["joint"] and "phase_effect" in FAMILY_MODEL_KEYS["network"]
    j = spec_from_dict({"analysis": {"name": "j"}, "data": {"outcomes": list(JOINT_OUTS)},
                        "model": {"family": "joint", "phase_effect": True}})
    assert j.model.family_kwargs()["phase_effect"] is True
    n = spec_from_dict({"analysis": {"name": "n"}, "data": {"outcome": "total_response"},
                        "model": {"family": "network", "phase_effect": True}})
    assert n.model.family_kwargs()["phase_effect"] is True
    assert "phase_effect" not in spec_from_dict({"analysis": {"name": "n"}, "data": {"outcome": "total_response"},
                                                 "model": {"family": "network"}}).model.family_kwargs()
    with pytest.raises(SpecError, match="phase_effect"):  # the core family has its `phase` effect modifier
        spec_from_dict({"analysis": {"name": "c"}, "data": {"outcome": "total_response"},
                        "model": {"family": "core", "phase_effect": True}})


JOINT_SPEC = """
[analysis]
name = "joint_phase"
[data]
source = "tacrolimus_ln"
outcomes = {outcomes}
phases = {phases}
designs = ["rct"]
[model]
family = "joint"
phase_effect = true
[sampler]
seed = 7
backend = "pymc"
"""

NETWORK_SPEC = """
[analysis]
name = "network_phase"
[data]
source = "trials.csv"
outcome = "total_response"
phases = ["induction", "maintenance"]
[model]
family = "network"
reference = "ivcy"
phase_effect = true
inconsistency = "none"
[sampler]
seed = 7
backend = "pymc"
"""


def _invoke(*args):
    from bayesln.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_refuses_phase_effect_on_one_phase(tmp_path):
    spec = tmp_path / "joint_phase.toml"
    # leucopenia (maintenance only) is left out, the other two outcomes are induction only
    spec.write_text(JOINT_SPEC.format(outcomes='["total_response", "severe_infection", "leucopenia"]',
                                      phases='["induction"]'), encoding="utf-8")
    r = _invoke("fit", spec, "--out", tmp_path / "runs", *TINY_CLI)
    assert r.exit_code == 2, r.output
    msg = r.stderr or r.output
    assert "phase_effect needs induction and maintenance studies" in msg and "Traceback" not in msg


@pytest.mark.slow
def test_cli_fits_joint_and_network_specs_with_phase_effect(tmp_path):
    """Joint on the bundled data (Chen 2012: TAC duo vs AZA maintenance, with total response
    and leucopenia); network on a small CSV (the bundled maintenance trial has no reference
    arm, so its shift would be prior-only)."""
    js = tmp_path / "joint_phase.toml"
    js.write_text(JOINT_SPEC.format(outcomes=f"{list(JOINT_OUTS)}".replace("'", '"'), phases='["induction", "maintenance"]'),
                  encoding="utf-8")
    r = _invoke("fit", js, "--out", tmp_path / "runs", *TINY_CLI)
    assert r.exit_code == 0, r.output
    run = tmp_path / "runs" / "joint_phase"
    summ = pd.read_csv(run / "summary.csv").set_index("quantity")
    for o in JOINT_OUTS:
        assert summ.loc[f"maintenance shift (log-OR ratio): {o}", "parameter"] == f"beta_phase[{o}]"
        assert f"pooled OR at maintenance: {o}" in summ.index
    notes = summ["note"]
    assert "only maintenance studies report leucopenia" in notes["maintenance shift (log-OR ratio): leucopenia"]
    assert "6 induction and 1 maintenance study" in notes["maintenance shift (log-OR ratio): total_response"]
    usage = pd.read_csv(run / "usage.csv").set_index("study")
    assert usage.loc["chen2012", "included"] and usage.loc["chen2012", "phase"].startswith("maintenance")

    df = sim_network(n=120).drop(columns="node")  # the node comes from treatment + regimen
    df.to_csv(tmp_path / "trials.csv", index=False)
    ns = tmp_path / "network_phase.toml"
    ns.write_text(NETWORK_SPEC, encoding="utf-8")
    r = _invoke("fit", ns, "--out", tmp_path / "runs", *TINY_CLI)
    assert r.exit_code == 0, r.output
    run = tmp_path / "runs" / "network_phase"
    rel = pd.read_csv(run / "relative_effects.csv")
    assert set(rel["phase"]) == {"induction", "maintenance"} and len(rel) == 6
    assert (run / "rank_probabilities_maintenance.csv").is_file()
    summ = pd.read_csv(run / "summary.csv").set_index("quantity")
    assert summ.loc["maintenance shift (log-OR ratio)", "parameter"] == "beta_phase"
    assert "log-OR at maintenance: TAC duo vs IVCY" in summ.index
    assert pd.read_csv(run / "usage.csv").set_index("study").loc["t09", "phase"] == "maintenance"


# ============================================================================ recovery (slow)
def _covers(x: np.ndarray, truth: float, ci: float = 0.95) -> bool:
    lo, hi = np.quantile(x, [(1 - ci) / 2, (1 + ci) / 2])
    return bool(lo <= truth <= hi)


@pytest.mark.slow
def test_joint_recovers_the_maintenance_shift():
    df, truth, outs = sim_joint()
    res = fit_joint(df, outs, phase_effect=True, seed=3, **FAST)
    assert res.config["phase_effect"] and res.config["phases"] == ["induction", "maintenance"]
    b, d = res.draws("beta_phase"), res.draws("d")
    for k in range(2):
        assert _covers(b[:, k], truth["beta"][k]), (k, np.quantile(b[:, k], [0.025, 0.5, 0.975]))
        assert np.sign(np.median(b[:, k])) == np.sign(truth["beta"][k])
        assert _covers(d[:, k], truth["d"][k])
    s = res.summary()
    row = s.loc["maintenance shift (log-OR ratio): total_response"]
    assert row["median"] == pytest.approx(np.median(b[:, 0]))
    assert s.loc["pooled log-OR at maintenance: severe_infection", "median"] == pytest.approx(np.median(d[:, 1] + b[:, 1]))


@pytest.mark.slow
def test_network_recovers_the_maintenance_shift():
    res = fit_network(sim_network(), "total_response", reference="ivcy", phase_effect=True, seed=3, **FAST)
    b = res.draws("beta_phase")
    assert _covers(b, NET_TRUTH["beta"]), np.quantile(b, [0.025, 0.5, 0.975])
    assert np.median(b) < 0
    ind = res.relative_effects().set_index(["treatment", "versus"])
    mai = res.relative_effects(phase="maintenance").set_index(["treatment", "versus"])
    assert set(ind["phase"]) == {"induction"} and set(mai["phase"]) == {"maintenance"}
    dm, dt = NET_TRUTH["d"]["mmf"], NET_TRUTH["d"]["tac_duo"]
    for (k, l), t_ind, t_mai in ((("mmf", "ivcy"), dm, dm + NET_TRUTH["beta"]),
                                 (("tac_duo", "ivcy"), dt, dt + NET_TRUTH["beta"]),
                                 (("tac_duo", "mmf"), dt - dm, dt - dm)):
        assert ind.loc[(k, l), "log_or_q2.5"] <= t_ind <= ind.loc[(k, l), "log_or_q97.5"], (k, l)
        assert mai.loc[(k, l), "log_or_q2.5"] <= t_mai <= mai.loc[(k, l), "log_or_q97.5"], (k, l)
    # between non-reference treatments the common interaction cancels: same draws in both phases
    assert mai.loc[("tac_duo", "mmf"), "log_or_median"] == pytest.approx(ind.loc[("tac_duo", "mmf"), "log_or_median"])
    s = res.summary()
    assert s.loc["maintenance shift (log-OR ratio)", "median"] == pytest.approx(np.median(b))
    assert "at induction" in s.loc["log-OR: TAC duo vs IVCY", "note"]
    rp = res.rank_probabilities(phase="maintenance")
    assert rp["P(rank 1)"].sum() == pytest.approx(1.0)
