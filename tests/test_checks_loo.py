"""Leave-one-study-out influence against metafor's leave1out (pinned reference), and the
held-out refit (counts set to 0) against a fit without the study."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from bayesln.checks import influence_table, study_loo
from bayesln.checks.refit import refit, zero_counts

REF = Path(__file__).resolve().parents[1] / "validation" / "checks" / "leave1out_reference.json"


def reference(case: str, treat: str = "tac", control: str = "ivcy") -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """(arm table, full REML fit, leave1out table) of a pinned metafor case."""
    doc = json.loads(REF.read_text())
    c = next(x for x in doc["cases"] if x["id"] == case)
    d = pd.DataFrame(c["data"])
    rows = []
    for _, r in d.iterrows():
        rows += [dict(study=r["study"], arm="t", treatment=treat, events=int(r["ai"]), n=int(r["n1i"])),
                 dict(study=r["study"], arm="c", treatment=control, events=int(r["ci"]), n=int(r["n2i"]))]
    return pd.DataFrame(rows), c["full"], pd.DataFrame(c["leave1out"])


def test_reference_fixture_is_complete():
    doc = json.loads(REF.read_text())
    assert doc["metafor_version"] == "3.8.1" and doc["generated_by"] == "validation/checks/leave1out_reference.R"
    for c in doc["cases"]:
        assert c["calls"]["rma"] == 'rma(yi, vi, data = dat, method = "REML")'
        assert c["calls"]["leave1out"] == "leave1out(fit)"
        assert len(c["leave1out"]["omitted"]) == len(c["data"]["study"]) == c["full"]["k"]


def test_frequentist_columns_reproduce_metafor_leave1out():
    """The REML columns of the influence table come from bayesln.frequentist.leave_one_out:
    they equal metafor's leave1out (REML, OR) numbers pinned in the fixture."""
    from bayesln.frequentist import leave_one_out

    arms, full, l1o = reference("bcg")
    c = arms.pivot(index="study", columns="arm", values=["events", "n"])
    con = pd.DataFrame({"study": c.index, "events_t": c[("events", "t")].to_numpy(), "n_t": c[("n", "t")].to_numpy(),
                        "events_c": c[("events", "c")].to_numpy(), "n_c": c[("n", "c")].to_numpy()})
    out = leave_one_out(con, "OR", "reml").set_index("omitted").loc[l1o["omitted"]]
    np.testing.assert_allclose(out["log_estimate"], l1o["estimate"], rtol=1e-5)
    np.testing.assert_allclose(out["tau2"], l1o["tau2"], rtol=1e-4)


@pytest.fixture(scope="module")
def bcg_influence():
    from bayesln.hierarchy import fit_core

    arms, full, l1o = reference("bcg", treat="bcg", control="unvaccinated")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fit = fit_core(arms, "tuberculosis", treat=("bcg",), direction="harm", seed=7, draws=1000, tune=1000, chains=2,
                       progressbar=False,
                       prior_predictive=False)
        lo = study_loo(fit)
        inf = influence_table(fit, loo=lo)
    return fit, lo, inf, full, l1o


@pytest.mark.slow
@pytest.mark.r_reference
def test_bcg_influence_matches_metafor_leave1out(bcg_influence):
    """Reference: metafor 3.8-1 ``leave1out(rma(yi, vi, method = "REML"))`` on dat.bcg
    (log OR), pinned in validation/checks/leave1out_reference.json by
    validation/checks/leave1out_reference.R.

    The Bayesian model differs (exact binomial likelihood, independent baselines,
    tau ~ HalfNormal(0.5)), so the numbers are not equal; what must agree is the direction
    of the change of the pooled log OR when each trial is left out, their rank order and
    their rough size."""
    fit, lo, inf, full, l1o = bcg_influence
    m = inf[inf["study"] != "(none)"].merge(l1o, left_on="study", right_on="omitted")
    assert len(m) == 13
    # the all-study pooled log OR is close to REML's -0.745 (tau^2 0.338)
    assert inf["d_median"].iloc[0] == pytest.approx(full["b"], abs=0.1)
    assert inf["tau_median"].iloc[0] ** 2 == pytest.approx(full["tau2"], rel=0.35)
    # direction of the change of the pooled log OR: every study
    assert (np.sign(m["d_change"]) == np.sign(m["change"])).all(), m[["study", "d_change", "change"]]
    # rank order and rough size
    assert spearmanr(m["d_change"], m["change"]).statistic > 0.8
    big = m["change"].abs() > 0.04
    ratio = (m.loc[big, "d_change"] / m.loc[big, "change"]).to_numpy()
    assert ((ratio > 0.5) & (ratio < 2.0)).all(), ratio
    # tau: the big moves go the same way (the prior keeps small changes in tau^2 noisy)
    tb = m["tau2_change"].abs() > 0.03
    assert (np.sign(m.loc[tb, "tau_change"]) == np.sign(m.loc[tb, "tau2_change"])).all()
    assert spearmanr(m["tau_change"], m["tau2_change"]).statistic > 0.6
    # the REML columns of the table are the reference numbers themselves
    np.testing.assert_allclose(m["reml_change"], m["change"], rtol=1e-5, atol=1e-8)
    # no trial of dat.bcg is an outlier for the integrated PSIS-LOO
    assert (lo.pointwise["pareto_k"] < 0.7).all()


@pytest.mark.slow
@pytest.mark.r_reference
def test_bundled_total_response_influence_ranks_like_metafor():
    """The bundled total-response induction RCTs against the pinned metafor leave1out:
    the same rank order of the changes. (Not the same direction for every trial: leaving
    out Liu 2015, the largest trial, raises REML's tau^2 from 0.27 to 0.68 and so shifts
    weight to the small trials with large ORs; the Bayesian tau is held by its
    HalfNormal(0.5) prior, so there the pooled log OR falls slightly.)"""
    import bayesln
    from bayesln.hierarchy import fit_core

    _, full, l1o = reference("total_response")
    td = bayesln.load_dataset("tacrolimus_ln").select(phases="induction", designs="rct")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fit = fit_core(td, "total_response", seed=11, draws=1000, tune=1000, chains=2, progressbar=False,
                       prior_predictive=False)
        inf = influence_table(fit, draws=1000, tune=1000, chains=2)
    m = inf[inf["study"] != "(none)"].merge(l1o, left_on="study", right_on="omitted")
    assert len(m) == 6
    assert spearmanr(m["d_change"], m["change"]).statistic >= 0.7
    big = m["change"].abs() > 0.15
    assert (np.sign(m.loc[big, "d_change"]) == np.sign(m.loc[big, "change"])).all()


@pytest.mark.slow
def test_held_out_refit_equals_a_fit_without_the_study():
    """Setting a study's counts to 0 gives the same posterior of d and tau as fitting the
    data without it (the reason the held-out refits can reuse the compiled model)."""
    import bayesln
    from bayesln.hierarchy import fit_core

    td = bayesln.load_dataset("tacrolimus_ln").select(phases="induction", designs="rct")
    kw = dict(draws=1000, tune=1000, chains=2, progressbar=False, prior_predictive=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fit = fit_core(td, "total_response", seed=3, **kw)
        ev, n = zero_counts(fit, ["bao2008"])
        held = refit(fit, events=ev, n=n, seed=4, draws=1000, tune=1000, chains=2)
        without = fit_core(td.select(exclude_studies=["bao2008"]), "total_response", seed=5, **kw)
    for v in ("d", "tau"):
        a = np.asarray(held.idata.posterior[v]).reshape(-1)
        b = np.asarray(without.idata.posterior[v]).reshape(-1)
        # Monte Carlo tolerance: medians and SDs of ~2000 draws (ESS several hundred)
        assert np.median(a) == pytest.approx(np.median(b), abs=0.08), v
        assert np.std(a) == pytest.approx(np.std(b), rel=0.2), v
    assert held.config["refit"]["held_out_studies"] == ["bao2008"]
