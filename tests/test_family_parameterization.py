"""Centred, non-centred and mixed study effects in the ordinal, joint and network families.

References (closed forms, no fitted numbers):
* the change of variables: with ``delta = loc + S w`` (S = diag(tau) chol(Omega) for a joint
  study, tau * chol(C) for a network study with C = 1 on the diagonal and 1/2 elsewhere, tau
  for a scalar effect), the density of the centred ``delta`` is the density of the
  non-centred ``w`` divided by |det S|. So at corresponding points the models' log
  densities differ by exactly ``-sum log |det S|`` over the centred studies, with S built
  here in NumPy (np.linalg.cholesky) from the model's own tau and rho;
* the rule: Woolf variances by hand against the Q-profile lower limit of tau
  (bayesln.frequentist.models.tau2_qprofile_ci, pinned to metafor in
  tests/test_frequentist_metafor.py), on simulated reviews whose large arms and large tau
  make the answer known (precise studies centred, small ones not);
* the bundled data: no clear heterogeneity (tau_lo = 0), so "auto" is the non-centred model
  every shipped spec has sampled until now.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import bayesln
from bayesln.frequentist.models import tau2_dl, tau2_qprofile_ci
from bayesln.hierarchy.joint import build_joint_design, build_joint_model, choose_joint, fit_joint
from bayesln.hierarchy.network import build_network_design, build_network_model, choose_network, fit_network
from bayesln.hierarchy.ordinal import (
    build_ordinal_design,
    build_ordinal_model,
    choose_ordinal,
    effect_mask,
    family_form,
    fit_ordinal,
    ordinal_effect_cells,
)

from _mcmc import SANITY_GATE


def _woolf(a, n1, c, n2):
    b, d = n1 - a, n2 - c
    if 0 in (a, b, c, d):
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    return np.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d


def _tau_lo(y, v):
    lo, _ = tau2_qprofile_ci(np.asarray(y), np.asarray(v), tau2_dl(np.asarray(y), np.asarray(v)), level=95.0)
    return np.sqrt(lo) if lo > 0 else 0.0


# ----------------------------------------------------------------------------- simulated reviews
SIZES = [2000, 2000, 2000, 2000, 2000, 2000, 12, 12]  # six precise studies, two tiny ones


def _ordinal_df(seed=1, tau=0.8, base_sd=0.3):
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate(SIZES):
        a1, a2 = rng.normal(0.3, base_sd), rng.normal(-0.2, base_sd)
        dl = rng.normal(0.5, tau)
        for arm, t in (("tac", 1), ("ivcy", 0)):
            p1, p2 = expit(a1 + t * dl), expit(a2 + t * dl)
            y = rng.multinomial(n, [p1 * p2, p1 * (1 - p2), 1 - p1])
            base = {"study": f"s{i}", "arm": arm, "treatment": arm, "regimen": "duo" if t else "control",
                    "phase": "induction", "design": "rct", "n": n}
            rows += [{**base, "outcome": "complete_response", "events": int(y[0])},
                     {**base, "outcome": "partial_response", "events": int(y[1])}]
    return pd.DataFrame(rows)


def _joint_df(seed=2, tau=1.0):
    rng = np.random.default_rng(seed)
    outs = ["total_response", "severe_infection", "leucopenia"]
    rows = []
    for i, n in enumerate(SIZES + [2000, 2000]):
        rep = outs if i < 6 else (outs[:2] if i < 8 else outs[1:])  # three reporting patterns
        delta = rng.multivariate_normal([0.6, -0.4, 0.2], tau**2 * (0.5 * np.eye(3) + 0.5))
        for k, o in enumerate(outs):
            if o not in rep:
                continue
            mu = rng.normal(-0.5, 0.5)
            for arm, t in (("tac", 1), ("ivcy", 0)):
                rows.append({"study": f"s{i}", "arm": arm, "treatment": arm, "regimen": "duo" if t else "control",
                             "phase": "induction", "design": "rct", "outcome": o, "n": n,
                             "events": int(rng.binomial(n, expit(mu + t * delta[k])))})
    return pd.DataFrame(rows), outs


NET = [("A", "B"), ("A", "B"), ("A", "C"), ("A", "C"), ("B", "C"), ("A", "B", "C"), ("A", "B"), ("B", "C")]


def _network_df(seed=3, tau=1.0):
    rng = np.random.default_rng(seed)
    d = {"A": 0.0, "B": 0.5, "C": 0.9}
    rows = []
    for i, (trts, n) in enumerate(zip(NET, SIZES)):
        mu = rng.normal(-0.3, 0.5)
        k = len(trts) - 1
        dl = rng.multivariate_normal([d[t] - d[trts[0]] for t in trts[1:]], tau**2 * (0.5 * np.eye(k) + 0.5))
        for j, t in enumerate(trts):
            eff = 0.0 if j == 0 else dl[j - 1]
            rows.append({"study": f"s{i}", "arm": t, "treatment": t, "regimen": pd.NA, "node": t, "phase": "induction",
                         "design": "rct", "outcome": "total_response", "n": n,
                         "events": int(rng.binomial(n, expit(mu + eff)))})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the rule
def test_ordinal_rule_is_woolf_against_the_q_profile_limit():
    df = _ordinal_df()
    des = build_ordinal_design(df, link="sequential", cutpoint_specific=True)
    # step 1 (CR or PR out of n) and step 2 (CR among responders), by hand per study
    y1, v1, y2, v2 = [], [], [], []
    for s in des.study_ids:
        g = df[df["study"] == s].pivot(index="arm", columns="outcome", values="events")
        n = int(df[df["study"] == s]["n"].iloc[0])
        tot = g["complete_response"] + g["partial_response"]
        a, b = _woolf(tot["tac"], n, tot["ivcy"], n)
        y1.append(a), v1.append(b)
        a, b = _woolf(g.loc["tac", "complete_response"], tot["tac"], g.loc["ivcy", "complete_response"], tot["ivcy"])
        y2.append(a), v2.append(b)
    (cy1, cv1), (cy2, cv2) = ordinal_effect_cells(des)
    np.testing.assert_allclose(cv1, v1, rtol=1e-12)
    np.testing.assert_allclose(cv2, v2, rtol=1e-12)
    form, rec = choose_ordinal(des)
    t1, t2 = _tau_lo(y1, v1), _tau_lo(y2, v2)
    assert rec["tau_ref"]["response"] == pytest.approx(t1, rel=1e-6) and t1 > 0.3
    want = np.column_stack([np.array(v1) < t1**2, np.array(v2) < t2**2])
    np.testing.assert_array_equal(effect_mask(form, (des.n_studies, 2)), want)
    assert want[:6, 0].all() and not want[6:, 0].any()  # precise studies centred, the tiny ones not
    # shared effect: both steps combined by inverse variance
    shared = build_ordinal_design(df, link="sequential")
    (y, v), = ordinal_effect_cells(shared)
    np.testing.assert_allclose(v, 1 / (1 / np.array(v1) + 1 / np.array(v2)), rtol=1e-12)
    np.testing.assert_allclose(y, (np.array(y1) / v1 + np.array(y2) / v2) * v, rtol=1e-12)


def test_joint_study_is_centred_only_when_every_outcome_is():
    df, outs = _joint_df()
    des = build_joint_design(df, outs, warn=False)
    form, rec = choose_joint(des)
    flags = effect_mask(form, des.n_studies)
    by_study = {}
    for o in outs:
        ys, vs, ss = [], [], []
        for s in des.study_ids:
            g = df[(df["study"] == s) & (df["outcome"] == o)].set_index("arm")
            if len(g):
                a, b = _woolf(g.loc["tac", "events"], g.loc["tac", "n"], g.loc["ivcy", "events"], g.loc["ivcy", "n"])
                ys.append(a), vs.append(b), ss.append(s)
        lo = _tau_lo(ys, vs)
        assert rec["tau_ref"][o] == pytest.approx(lo, rel=1e-6)
        for s, v in zip(ss, vs):
            by_study.setdefault(s, []).append(v < lo**2)
    want = [all(by_study[s]) for s in des.study_ids]
    assert list(flags) == want and any(want) and not all(want)
    assert rec["centered"] == [s for s, w in zip(des.study_ids, want) if w]


def test_network_rule_reads_comparisons_as_moderators():
    df = _network_df()
    des = build_network_design(df, "total_response", reference="A", treatments=["A", "B", "C"])
    form, rec = choose_network(des)
    flags = effect_mask(form, des.n_studies)
    assert flags[:6].all() and not flags[6:].any(), rec
    assert rec["tau_ref"]["tau"] > 0.3
    # no heterogeneity: nothing centred
    flat = _network_df(tau=0.0)
    assert choose_network(build_network_design(flat, "total_response", reference="A"))[0] == "noncentered"


def test_bundled_data_keep_the_shipped_non_centred_models():
    td = bayesln.load_dataset("tacrolimus_ln")
    for link, cs in [("sequential", False), ("sequential", True), ("cumulative", False)]:
        assert choose_ordinal(build_ordinal_design(td, link=link, cutpoint_specific=cs))[0] == "noncentered"
    jd = build_joint_design(td, ["total_response", "severe_infection", "serious_adverse_event", "leucopenia", "death"],
                            designs=["rct"], warn=False)
    assert choose_joint(jd)[0] == "noncentered"
    assert choose_network(build_network_design(td, "total_response", designs=["rct"]))[0] == "noncentered"


def test_forms_are_validated():
    with pytest.raises(ValueError, match="parameterization must be one of"):
        family_form("centred", lambda: None)
    with pytest.raises(ValueError, match="shape"):
        effect_mask((True, False), 3)
    assert family_form("auto", lambda: ("x", {}), random_effects=False) == ("noncentered", None)


# ----------------------------------------------------------------------------- same model, other variables
def _values(model, names, point):
    outs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    return dict(zip(names, (np.asarray(x) for x in fn(point))))


def _random_point(model, seed):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, 0.6, size=np.shape(v)) for k, v in model.initial_point().items()}


def _logp(model, point):
    return float(model.compile_logp()(point))


@pytest.mark.parametrize(("link", "cs"), [("sequential", False), ("sequential", True), ("cumulative", False)])
def test_ordinal_forms_differ_by_the_jacobian_only(link, cs):
    des = build_ordinal_design(_ordinal_df(), link=link, cutpoint_specific=cs)
    shape = (des.n_studies, 2) if cs and link == "sequential" else (des.n_studies,)
    mask = np.zeros(shape, bool)
    mask[::2] = True
    nc = build_ordinal_model(des)
    p = _random_point(nc, 5)
    v = _values(nc, ["d", "tau", "p_cr", "p_pr"], p)
    z = p["z"]
    delta = v["d"] + v["tau"] * z
    for form, free in (("centered", "delta"), (tuple(map(tuple, mask)) if mask.ndim == 2 else tuple(mask), "delta_raw")):
        m = build_ordinal_model(des, parameterization=form)
        q = {k: x for k, x in p.items() if k != "z"}
        cm = np.ones(shape, bool) if form == "centered" else mask
        q[free] = np.where(cm, delta, z)
        got = _values(m, ["z", "p_cr", "p_pr"], q)
        np.testing.assert_allclose(got["z"], z, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got["p_cr"], v["p_cr"], rtol=1e-10)
        tau_cells = np.broadcast_to(v["tau"], shape)
        assert _logp(m, q) == pytest.approx(_logp(nc, p) - np.log(tau_cells[cm]).sum(), rel=1e-10, abs=1e-8)


def test_joint_forms_differ_by_the_jacobian_only():
    df, outs = _joint_df()
    des = build_joint_design(df, outs, warn=False)
    nc = build_joint_model(des)
    p = _random_point(nc, 6)
    v = _values(nc, ["delta", "tau", "rho"], p)
    K = len(outs)
    R = np.eye(K)
    R[np.triu_indices(K, 1)] = v["rho"]
    R = R + np.triu(R, 1).T
    so = des.so
    flags = np.zeros(des.n_studies, bool)
    flags[[0, 2, 6, 9]] = True  # one study of each reporting pattern, and more
    mx = build_joint_model(des, parameterization=tuple(flags))
    q = {k: x for k, x in p.items() if k != "z"}
    c_so = flags[so["study_index"].to_numpy()]
    q["z_nc"] = p["z"][~c_so]
    logdet = 0.0
    for pat, grp in so.groupby("pattern", sort=False):
        idx = [int(k) for k in pat.split(",")]
        cidx = np.array([list(g.sort_values("outcome_index").index) for _, g in grp.groupby("study_index", sort=False)])
        cidx = cidx[c_so[cidx[:, 0]]]
        if not len(cidx):
            continue
        val = v["delta"][cidx]
        name = "delta_c" + pat.replace(",", "_")
        if len(idx) == 1:
            q[name] = val[:, 0]
        else:  # the chain of conditional normals: one free vector per outcome of the pattern
            q.update({f"{name}_k{j}": val[:, j] for j in range(len(idx))})
        S = np.diag(v["tau"][idx]) @ np.linalg.cholesky(R[np.ix_(idx, idx)])
        logdet += len(cidx) * np.log(abs(np.linalg.det(S)))
    got = _values(mx, ["z", "delta"], q)
    np.testing.assert_allclose(got["delta"], v["delta"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["z"], p["z"], rtol=1e-8, atol=1e-10)
    assert _logp(mx, q) == pytest.approx(_logp(nc, p) - logdet, rel=1e-10, abs=1e-8)


def test_network_forms_differ_by_the_jacobian_only():
    df = _network_df()
    des = build_network_design(df, "total_response", reference="A", treatments=["A", "B", "C"])
    nc = build_network_model(des)
    p = _random_point(nc, 7)
    v = _values(nc, ["theta", "tau", "mu"], p)
    arms = des.arms
    rel = v["theta"] - v["mu"][arms["study_index"].to_numpy()]
    nonbase = des.nonbase_arm
    si = arms.loc[nonbase, "study_index"].to_numpy()
    flags = np.zeros(des.n_studies, bool)
    flags[[0, 5, 6]] = True  # two two-arm studies and the three-arm study
    mx = build_network_model(des, parameterization=tuple(flags))
    q = {k: x for k, x in p.items() if k != "z"}
    cen = flags[si]
    q["z_nc"] = p["z"][~cen]
    blocks = {}
    for s in np.flatnonzero(flags):
        pos = np.flatnonzero(si == s)
        blocks.setdefault(len(pos), []).append(rel[nonbase][pos])
    logdet = 0.0
    for k, vals in blocks.items():
        q.update({f"delta_c{k}_k{j}": np.array(vals)[:, j] for j in range(k)})
        C = np.full((k, k), 0.5) + 0.5 * np.eye(k)
        logdet += len(vals) * np.log(np.linalg.det(v["tau"] * np.linalg.cholesky(C)))
    got = _values(mx, ["z", "theta"], q)
    np.testing.assert_allclose(got["theta"], v["theta"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["z"], p["z"], rtol=1e-8, atol=1e-10)
    assert _logp(mx, q) == pytest.approx(_logp(nc, p) - logdet, rel=1e-10, abs=1e-8)


# ----------------------------------------------------------------------------- fits
FIT = dict(draws=300, tune=400, chains=2, seed=11, progressbar=False, prior_predictive=False,
           posterior_predictive=False, gate=SANITY_GATE)


@pytest.mark.slow
def test_auto_fits_record_the_choice_and_sample_the_mixed_models():
    o = fit_ordinal(_ordinal_df(), **FIT)
    df, outs = _joint_df()
    j = fit_joint(df, outs, **FIT)
    n = fit_network(_network_df(), "total_response", reference="A", treatments=["A", "B", "C"], **FIT)
    for r, free in ((o, "delta_raw"), (j, None), (n, None)):
        ch = r.config["parameterization_chosen"]
        assert r.config["parameterization"] == "auto"
        assert ch["form"] == "mixed" and 0 < ch["n_centered"] < ch["n_studies"], ch
        assert "z" in r.idata.posterior
        assert np.isfinite(r.idata.posterior["z"].values).all()
    assert "delta_raw" in o.idata.posterior
    # exchangeable baselines far apart, arms of 2000: baselines chosen per study and step too
    ob = fit_ordinal(_spread_ordinal_df(), baseline="exchangeable", **FIT)
    bch = ob.config["baseline_parameterization_chosen"]
    assert ob.config["baseline_parameterization"] == "auto" and bch["form"] == "mixed", bch
    assert "alpha_mixed" in ob.idata.posterior and np.isfinite(ob.idata.posterior["alpha_raw"].values).all()
    # a fixed form is recorded as given, without a choice
    f = fit_network(_network_df(), "total_response", reference="A", parameterization="noncentered", **FIT)
    assert f.config["parameterization"] == "noncentered" and "parameterization_chosen" not in f.config


def test_a_spec_fixes_the_form_of_any_family(tmp_path):
    from bayesln.spec import load_spec

    models = bayesln.__path__[0] + "/../models"
    for name, anchor in (("ordinal_response", 'link = "sequential"'), ("joint_efficacy_safety", "lkj_eta = 2.0"),
                         ("network_total_response", 'reference = "ivcy"')):
        text = open(f"{models}/{name}.toml", encoding="utf-8").read()
        assert anchor in text
        p = tmp_path / f"{name}.toml"
        p.write_text(text.replace(anchor, anchor + '\nparameterization = "centered"', 1), encoding="utf-8")
        assert load_spec(p).model.family_kwargs()["parameterization"] == "centered"
        p.write_text(text.replace(anchor, anchor + '\nparameterization = "centred"', 1), encoding="utf-8")
        with pytest.raises(ValueError, match="parameterization"):
            load_spec(p)


# ----------------------------------------------------------------------------- exchangeable baselines
def _spread_ordinal_df(seed=4):
    """Exchangeable baselines far apart (SD 1.5 per step) and no heterogeneity of the effect."""
    return _ordinal_df(seed, tau=0.0, base_sd=1.5)


def _log_odds(e, n):
    if e in (0, n):
        e, n = e + 0.5, n + 1.0
    return np.log(e / (n - e)), 1 / e + 1 / (n - e)


def test_ordinal_baselines_centred_where_control_arms_are_precise():
    from bayesln.hierarchy.ordinal import choose_ordinal_baselines

    df = _spread_ordinal_df()
    des = build_ordinal_design(df, baseline="exchangeable")
    want = []
    for step in (0, 1):
        ys, vs = [], []
        for s in des.study_ids:
            c = df[(df["study"] == s) & (df["arm"] == "ivcy")].set_index("outcome")
            n, cr, pr = int(c["n"].iloc[0]), int(c.loc["complete_response", "events"]), int(c.loc["partial_response", "events"])
            y, v = _log_odds(cr + pr, n) if step == 0 else _log_odds(cr, cr + pr)
            ys.append(y), vs.append(v)
        lo = _tau_lo(ys, vs)
        assert lo > 0.5
        want.append(np.array(vs) < lo**2)
    want = np.column_stack(want)
    form, rec = choose_ordinal_baselines(des)
    np.testing.assert_array_equal(effect_mask(form, (des.n_studies, 2)), want)
    assert want[:6].all() and (~want[6:]).any() and rec["n_centered"] == want.sum()  # precise centred, not all tiny


def test_ordinal_baseline_forms_differ_by_the_jacobian_only():
    des = build_ordinal_design(_spread_ordinal_df(), baseline="exchangeable")
    nc = build_ordinal_model(des)
    p = _random_point(nc, 8)
    v = _values(nc, ["alpha", "sigma_mu", "p_cr"], p)
    mask = np.zeros((des.n_studies, 2), bool)
    mask[:5, 0] = mask[3:, 1] = True
    mx = build_ordinal_model(des, baseline_parameterization=tuple(map(tuple, mask)))
    q = {k: x for k, x in p.items() if k != "alpha_raw"}
    q["alpha_mixed"] = np.where(mask, v["alpha"], p["alpha_raw"])
    got = _values(mx, ["alpha_raw", "p_cr"], q)
    np.testing.assert_allclose(got["alpha_raw"], p["alpha_raw"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["p_cr"], v["p_cr"], rtol=1e-10)
    sig = np.broadcast_to(v["sigma_mu"][None, :], mask.shape)
    assert _logp(mx, q) == pytest.approx(_logp(nc, p) - np.log(sig[mask]).sum(), rel=1e-10, abs=1e-8)


def test_joint_baseline_cells_and_forms():
    from bayesln.hierarchy.joint import choose_joint_baselines

    df, outs = _joint_df()
    des = build_joint_design(df, outs, baseline="exchangeable", warn=False)
    form, rec = choose_joint_baselines(des)
    # the cells' control log odds spread little here (sd 0.5 around -0.5) against arms of 2000
    so = des.so
    for k, o in enumerate(outs):
        ys, vs = [], []
        for s in so.loc[so["outcome_index"] == k, "study"]:
            c = df[(df["study"] == s) & (df["outcome"] == o) & (df["arm"] == "ivcy")]
            y, v = _log_odds(int(c["events"].iloc[0]), int(c["n"].iloc[0]))
            ys.append(y), vs.append(v)
        assert rec["sigma_ref"][o] == pytest.approx(_tau_lo(ys, vs), rel=1e-6)
    nc = build_joint_model(des)
    p = _random_point(nc, 9)
    v = _values(nc, ["mu", "sigma_mu", "delta"], p)
    mask = np.zeros(len(so), bool)
    mask[::3] = True
    mx = build_joint_model(des, baseline_parameterization=tuple(mask))
    q = {k: x for k, x in p.items() if k != "mu_raw"}
    q["mu_mixed"] = np.where(mask, v["mu"], p["mu_raw"])
    got = _values(mx, ["mu_raw", "mu"], q)
    np.testing.assert_allclose(got["mu"], v["mu"], rtol=1e-10, atol=1e-12)
    sig = v["sigma_mu"][so["outcome_index"].to_numpy()]
    assert _logp(mx, q) == pytest.approx(_logp(nc, p) - np.log(sig[mask]).sum(), rel=1e-10, abs=1e-8)
