"""The comparison table: published, recomputed, frequentist and Bayesian RRs."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import bayesln
from bayesln.checks import COLUMNS, comparison_table, full_comparison, plot_comparison, published_rows

METAFOR = Path(__file__).resolve().parents[1] / "validation" / "fixtures" / "metafor_reference.json"
SAMPLER = dict(draws=500, tune=500, chains=2)


@pytest.fixture(scope="module")
def td():
    return bayesln.load_dataset("tacrolimus_ln")


def metafor_case(case_id: str) -> dict:
    doc = json.loads(METAFOR.read_text())
    return next(c for c in doc["cases"] if c["id"] == case_id)


# =========================================================================== fast
def test_published_rows_triple_total_response_reproduces(td):
    """Published: Kraaij et al. triple-therapy total response RR 1.37 (1.21-1.56)
    (data/tacrolimus_ln/published_pooled.csv). Recomputed: metafor 3.8-1
    rma.mh(measure="RR") on Liu 2015 + Bao 2008, pinned as tac_triple_total_RR_MH_z in
    validation/fixtures/metafor_reference.json."""
    rows = published_rows(td, "total_response")
    tri = rows[rows["subgroup"] == "triple"].set_index("source")
    pub, rec = tri.loc["published"], tri.loc["recomputed"]
    assert (pub["estimate"], pub["ci_low"], pub["ci_high"]) == (1.37, 1.21, 1.56)
    assert bool(pub["reproduced"]) and not pub["flag"]
    mh = metafor_case("tac_triple_total_RR_MH_z")["result"]
    assert rec["estimate"] == pytest.approx(math.exp(mh["beta"]), rel=1e-6)
    assert rec["ci_low"] == pytest.approx(math.exp(mh["ci.lb"]), rel=1e-6)
    assert rec["ci_high"] == pytest.approx(math.exp(mh["ci.ub"]), rel=1e-6)
    assert rec["trials"] == "liu2015;bao2008" and bool(rec["reproduced"])


def test_published_rows_say_why_figures_are_not_recomputed(td):
    rows = published_rows(td)
    # every published figure is listed, with its recomputation (or why there is none)
    assert len(rows[rows["source"] == "published"]) == len(td.published)
    allr = rows[(rows["outcome"] == "total_response") & (rows["subgroup"] == "all")].set_index("source")
    assert not bool(allr.loc["published", "reproduced"]) and allr.loc["published", "flag"]
    for s in ("chen2011", "li2012", "mok2016"):
        assert s in allr.loc["published", "reason"]
    leu = rows[(rows["outcome"] == "leucopenia") & (rows["source"] == "recomputed")].iloc[0]
    assert np.isnan(leu["estimate"]) and leu["reason"].startswith("could not be recomputed")


def test_comparison_table_frequentist_rows_and_agreement(td):
    c = td.contrasts("total_response", treat="tac_triple", control=("ivcy", "mmf", "aza", "placebo", "msc"))
    c = c[c["phase"] == "induction"]
    pub = published_rows(td, "total_response")
    tab = comparison_table(None, c, outcome="total_response", subgroup="triple", published=pub)
    assert list(tab.columns) == COLUMNS
    mh = tab[(tab["source"] == "frequentist") & (tab["method"] == "mantel_haenszel_fixed")].iloc[0]
    ref = metafor_case("tac_triple_total_RR_MH_z")["result"]
    assert mh["estimate"] == pytest.approx(math.exp(ref["beta"]), rel=1e-6)
    # the published triple row matches MH on the same trials: ratio 1.00, overlapping, not flagged
    p = tab[(tab["source"] == "published") & (tab["subgroup"] == "triple")].iloc[0]
    assert p["ratio_to_mh"] == pytest.approx(1.37 / mh["estimate"]) and bool(p["overlaps_mh"]) and not p["flag"]
    # the published "all" row is another subgroup: no ratio, flagged as not reproduced
    a = tab[(tab["source"] == "published") & (tab["subgroup"] == "all")].iloc[0]
    assert np.isnan(a["ratio_to_mh"]) and a["flag"] and "not reproduced" in a["reason"]


def test_published_row_with_another_trial_set_is_flagged(td):
    c = td.contrasts("total_response", treat="tac")
    c = c[c["phase"] == "induction"].reset_index(drop=True)
    pub = published_rows(td, "total_response")
    tab = comparison_table(None, c, outcome="total_response", subgroup="all", published=pub)
    p = tab[(tab["source"] == "published") & (tab["subgroup"] == "all")].iloc[0]
    assert p["flag"] and "different trial set" in p["reason"] and "chen2011" in p["reason"]


# =========================================================================== slow
@pytest.fixture(scope="module")
def bundled_table(td):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return full_comparison(td, seed=20261122, **SAMPLER)


@pytest.mark.slow
def test_full_comparison_covers_every_outcome_with_two_trials(td, bundled_table):
    tab = bundled_table
    assert list(tab.columns) == COLUMNS
    # outcomes with >= 2 informative TAC-vs-control trials in the bundled data
    expected = set()
    for oc in sorted(set(td.outcomes["outcome"])):
        c = td.contrasts(oc, treat="tac")
        info = ~(((c.events_t == 0) & (c.events_c == 0)) | ((c.events_t == c.n_t) & (c.events_c == c.n_c)))
        if info.sum() >= 2:
            expected.add(oc)
    assert expected == {"complete_response", "partial_response", "total_response", "severe_infection"}
    bayes_all = tab[(tab["source"] == "bayesian") & (tab["subgroup"] == "all")]
    assert set(bayes_all["outcome"]) == expected
    for oc in expected:
        sub = tab[(tab["outcome"] == oc) & (tab["subgroup"] == "all")]
        assert {"mantel_haenszel_fixed", "dersimonian_laird_random", "reml_random",
                "binomial_normal_bayes_marginal", "binomial_normal_bayes_pooled_baseline"} <= set(sub["method"])
    # every published figure is in the table, and those not recomputed say why
    pub = tab[tab["source"] == "published"]
    assert len(pub) == len(td.published)
    rec = tab[tab["source"] == "recomputed"]
    assert rec.loc[rec["estimate"].isna(), "reason"].str.startswith("could not be recomputed").all()
    # maintenance has one trial (chen2012): skipped with the reason
    sk = tab[(tab["outcome"] == "total_response") & (tab["subgroup"] == "maintenance")].iloc[0]
    assert sk["source"] == "skipped" and "chen2012" in sk["reason"]
    assert isinstance(plot_comparison(tab, outcome="total_response"), matplotlib.figure.Figure)


@pytest.mark.slow
def test_triple_total_response_published_recomputed_and_bayesian(bundled_table):
    """Published 1.37 (1.21-1.56) (Kraaij et al.); recomputed MH 1.37 (1.21-1.56) from
    Liu 2015 + Bao 2008 (metafor rma.mh, pinned tac_triple_total_RR_MH_z); the Bayesian
    RR of the separate triple-therapy fit overlaps both."""
    t = bundled_table
    tri = t[(t["outcome"] == "total_response") & (t["subgroup"] == "triple")]
    pub = tri[tri["source"] == "published"].iloc[0]
    assert (round(pub["estimate"], 2), round(pub["ci_low"], 2), round(pub["ci_high"], 2)) == (1.37, 1.21, 1.56)
    assert bool(pub["reproduced"])
    ref = metafor_case("tac_triple_total_RR_MH_z")["result"]
    for src in ("recomputed", "frequentist"):
        r = tri[(tri["source"] == src) & (tri["method"] == "mantel_haenszel_fixed")].iloc[0]
        assert r["estimate"] == pytest.approx(math.exp(ref["beta"]), rel=1e-6)
        assert (round(r["estimate"], 2), round(r["ci_low"], 2), round(r["ci_high"], 2)) == (1.37, 1.21, 1.56)
        assert r["trials"] == "liu2015;bao2008"
    for m in ("binomial_normal_bayes_marginal", "binomial_normal_bayes_pooled_baseline"):
        b = tri[tri["method"] == m].iloc[0]
        assert b["k"] == 2 and b["ci_low"] <= 1.56 and b["ci_high"] >= 1.21 and bool(b["overlaps_mh"])
        assert 1.1 < b["estimate"] < 1.8


def _simulated(tau: float, n: int, k: int, seed: int) -> bayesln.TrialData:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(k):
        pc = 0.3 if tau == 0 else rng.uniform(0.2, 0.5)
        lor = np.log(1.5) + tau * rng.standard_normal()
        pt = expit(np.log(pc / (1 - pc)) + lor)
        for arm, p in (("tac", pt), ("ivcy", pc)):
            rows.append({"study": f"sim{i}", "arm": arm, "treatment": arm, "outcome": "total_response",
                         "events": int(rng.binomial(n, p)), "n": n})
    return bayesln.read_trials(pd.DataFrame(rows))


@pytest.mark.slow
def test_no_heterogeneity_large_trials_bayes_agrees_with_mh():
    """Eight trials of 2000 per arm, common OR 1.5 and common baseline 0.3 (so a common RR
    too): the Bayesian marginal RR is within 2% of Mantel-Haenszel (the frequentist
    engine, itself pinned to metafor)."""
    td = _simulated(tau=0.0, n=2000, k=8, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tab = full_comparison(td, outcomes=["total_response"], subgroups=["all"], seed=2, **SAMPLER)
    mh = tab[tab["method"] == "mantel_haenszel_fixed"].iloc[0]
    for m in ("binomial_normal_bayes_marginal", "binomial_normal_bayes_pooled_baseline"):
        b = tab[tab["method"] == m].iloc[0]
        assert abs(b["estimate"] / mh["estimate"] - 1) < 0.02, (m, b["estimate"], mh["estimate"])
        assert not b["flag"]


@pytest.mark.slow
def test_strong_heterogeneity_bayes_interval_wider_than_fixed_effect():
    """Eight trials with log ORs spread with SD 0.8: the random-effects Bayesian interval
    is wider than the fixed-effect MH interval (on the log scale)."""
    td = _simulated(tau=0.8, n=150, k=8, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tab = full_comparison(td, outcomes=["total_response"], subgroups=["all"], seed=4, **SAMPLER)
    mh = tab[tab["method"] == "mantel_haenszel_fixed"].iloc[0]
    w_mh = np.log(mh["ci_high"]) - np.log(mh["ci_low"])
    for m in ("binomial_normal_bayes_marginal", "binomial_normal_bayes_pooled_baseline"):
        b = tab[tab["method"] == m].iloc[0]
        assert np.log(b["ci_high"]) - np.log(b["ci_low"]) > 1.3 * w_mh
    dl = tab[tab["method"] == "dersimonian_laird_random"].iloc[0]
    assert "tau2" in dl["reason"]
