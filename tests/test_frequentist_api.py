"""bayesln.frequentist: input checking, tidy outputs, forest plot, published-figure
reproduction and the CLI-facing command.

Reference numbers here come from R metafor 3.8-1 via
validation/fixtures/metafor_reference.json (validation/metafor/reference.R); each test that
checks a number says which fixture case (and hence which R call) it uses.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesln
from bayesln.frequentist import (
    SUMMARY_COLUMNS,
    DuplicateStudyError,
    FrequentistInputError,
    NotEstimableError,
    cumulative,
    escalc,
    forest_plot,
    frequentist_command,
    leave_one_out,
    mantel_haenszel,
    meta_analysis,
    pool,
    reproduce_published,
    subgroup_analysis,
)

FIXTURE = Path(__file__).resolve().parents[1] / "validation" / "fixtures" / "metafor_reference.json"
REF = {c["id"]: c for c in json.loads(FIXTURE.read_text())["cases"]}


def frame(case_id: str) -> pd.DataFrame:
    d = REF[case_id]["data"]
    out = pd.DataFrame({"study": d["study"], "events_t": d["ai"], "n_t": d["n1i"],
                        "events_c": d["ci"], "n_c": d["n2i"]})
    for extra in ("year", "subgroup"):
        if extra in d:
            out[extra] = d[extra]
    return out


# TAC vs control, induction, total response (counts from the project brief; the same
# table is fixture dataset tac_total).
TAC_TOTAL = frame("tac_total_RR_MH_z")


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------


def test_duplicate_study_is_refused():
    df = pd.concat([TAC_TOTAL, TAC_TOTAL.iloc[[0]]], ignore_index=True)
    with pytest.raises(DuplicateStudyError, match="liu2015"):
        meta_analysis(df)
    assert issubclass(DuplicateStudyError, ValueError)


def test_one_arm_study_is_refused():
    df = TAC_TOTAL.copy()
    df.loc[1, ["events_c", "n_c"]] = 0
    with pytest.raises(FrequentistInputError, match=r"bao2008: empty control arm"):
        meta_analysis(df)


def test_events_above_n_are_refused_with_every_problem_listed():
    df = TAC_TOTAL.copy()
    df.loc[0, "events_t"] = 200
    df.loc[2, "events_c"] = -1
    with pytest.raises(FrequentistInputError) as exc:
        meta_analysis(df, method="reml")
    msg = str(exc.value)
    assert "liu2015: events_t = 200 exceeds n_t = 181" in msg
    assert "zheng2022: negative events_c" in msg


@pytest.mark.parametrize("method", ["mh", "iv", "dl", "reml", "pm", "peto"])
def test_all_double_zero_is_not_estimable(method):
    df = pd.DataFrame({"study": ["a", "b"], "events_t": [0, 0], "n_t": [10, 12], "events_c": [0, 0], "n_c": [9, 11]})
    with pytest.raises(NotEstimableError, match="double-zero"):
        meta_analysis(df, "OR", method)


def test_infinite_count_is_refused_but_missing_count_is_excluded_and_reported():
    df = TAC_TOTAL.copy().astype({"events_t": float})
    df.loc[3, "events_t"] = np.inf
    with pytest.raises(FrequentistInputError, match="zhang2006_iv: non-finite"):
        meta_analysis(df)
    df.loc[3, "events_t"] = np.nan
    res = meta_analysis(df)
    assert res.fit.k == 5
    assert res.excluded.to_dict("records") == [{"study": "zhang2006_iv", "reason": "missing count(s): events_t"}]
    assert "zhang2006_iv (missing count(s): events_t)" in res.summary["excluded"].iloc[0]
    # the reduced analysis equals the analysis of the five complete studies
    ref = meta_analysis(TAC_TOTAL.drop(index=3))
    assert res.fit.beta == pytest.approx(ref.fit.beta, rel=1e-12)


def test_all_missing_is_an_error():
    df = TAC_TOTAL.copy().astype({"n_c": float})
    df["n_c"] = np.nan
    with pytest.raises(FrequentistInputError, match="no study has complete counts"):
        meta_analysis(df)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"measure": "HR"}, "unknown measure"),
        ({"method": "bayes"}, "unknown method"),
        ({"measure": "RR", "method": "peto"}, "Peto's method estimates odds ratios"),
        ({"method": "mh", "hksj": True}, "inverse-variance"),
        ({"to": "sometimes"}, "unknown to="),
        ({"level": 120}, "level"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(FrequentistInputError, match=match):
        meta_analysis(TAC_TOTAL, **kwargs)


def test_missing_columns_and_wrong_type():
    with pytest.raises(FrequentistInputError, match="lacks column"):
        meta_analysis(TAC_TOTAL.drop(columns="n_c"))
    with pytest.raises(FrequentistInputError, match="DataFrame"):
        meta_analysis(TAC_TOTAL.to_dict("list"))


def test_zero_cell_without_correction_is_a_clear_error():
    df = frame("nielweise2007_RR_DL_z")
    with pytest.raises(FrequentistInputError, match="continuity correction"):
        meta_analysis(df, "RR", "dl", add=0, to="none")


def test_reml_nonconvergence_is_reported_and_stepadj_rescues_it():
    # reference: fixture reml_hard_RR_REML_z_default_TRUE (metafor rma(method="REML") stops:
    # "Fisher scoring algorithm did not converge") and reml_hard_RR_REML_z_reml_control_stepadj_0_5
    # (rma(..., control=list(stepadj=0.5)))
    df = frame("reml_hard_RR_REML_z_default_TRUE")
    with pytest.raises(NotEstimableError, match="stepadj"):
        meta_analysis(df, "RR", "reml")
    res = meta_analysis(df, "RR", "reml", reml_control={"stepadj": 0.5})
    ref = REF["reml_hard_RR_REML_z_reml_control_stepadj_0_5"]["result"]
    assert res.fit.tau2 == pytest.approx(ref["tau2"], rel=1e-6)
    assert res.fit.beta == pytest.approx(ref["beta"], rel=1e-6)


# ---------------------------------------------------------------------------------------
# zero cells and the per-study table
# ---------------------------------------------------------------------------------------


def test_zero_cell_defaults_and_options_are_reported():
    # reference: metafor escalc(measure="RR", ...) on dat.nielweise2007 (fixture
    # nielweise2007_RR_escalc_default / _drop00): Yucel 2004 is double-zero
    df = frame("nielweise2007_RR_DL_z")
    es = escalc(df["events_t"], df["n_t"], df["events_c"], df["n_c"], "RR")
    np.testing.assert_allclose(es.yi, REF["nielweise2007_RR_escalc_default"]["result"]["yi"], rtol=1e-6)
    yucel = df.index[df["study"] == "Yucel 2004"][0]
    assert es.double_zero[yucel] and es.corrected[yucel] and np.isfinite(es.yi[yucel])
    res = meta_analysis(df, "RR", "dl", drop00=True)
    assert res.excluded["study"].tolist() == ["Yucel 2004"]
    assert not res.studies.loc[yucel, "included"]
    assert "double-zero" in res.studies.loc[yucel, "note"]
    mh = meta_analysis(df, "RR", "mh")
    # MH: double-zero studies carry MH weight 0 and are left out of Q (metafor drop00)
    assert mh.studies.loc[yucel, "weight"] == 0.0
    assert "double-zero" in mh.studies.loc[yucel, "note"]
    assert mh.fit.q_df == len(df) - 2


def test_summary_has_the_documented_columns_and_no_unexplained_nan():
    df = frame("nielweise2007_OR_MH_z")  # single-zero studies and one double-zero study
    rows = pool(df, "OR", ["mh", "peto", "iv", "dl", "reml", "pm"], outcome="crbsi")
    assert list(rows.columns) == list(SUMMARY_COLUMNS)
    assert rows["method"].tolist() == ["mh", "peto", "iv", "dl", "reml", "pm"]
    always = ["k", "estimate", "ci_low", "ci_high", "log_estimate", "se", "statistic", "pvalue",
              "i2", "h2", "q", "q_df", "q_pvalue"]
    assert rows[always].notna().all().all()
    random = rows[rows["model"] == "random"]
    assert random[["tau2", "tau2_ci_low", "tau2_ci_high", "pi_low", "pi_high"]].notna().all().all()
    common = rows[rows["model"] == "common"]
    assert common[["tau2", "pi_low", "pi_high"]].isna().all().all()  # not applicable: documented


def test_k1_is_explained():
    res = meta_analysis(TAC_TOTAL.iloc[[0]], "RR", "reml", hksj=True)
    assert res.fit.k == 1 and res.fit.test == "z" and res.fit.tau2 == 0
    assert "k = 1" in res.summary["note"].iloc[0]


def test_ratio_scale_and_log_scale_columns():
    # reference: fixture tac_total_RR_REML_z (metafor rma(measure="RR", method="REML"))
    r = REF["tac_total_RR_REML_z"]["result"]
    row = meta_analysis(TAC_TOTAL, "RR", "reml").summary.iloc[0]
    assert row["log_estimate"] == pytest.approx(r["beta"], rel=1e-6)
    assert row["estimate"] == pytest.approx(math.exp(r["beta"]), rel=1e-6)
    assert row["ci_low"] == pytest.approx(math.exp(r["ci.lb"]), rel=1e-6)
    assert row["se"] == pytest.approx(r["se"], rel=1e-6)


# ---------------------------------------------------------------------------------------
# subgroups, leave-one-out, cumulative
# ---------------------------------------------------------------------------------------


def test_subgroup_analysis_duo_vs_triple():
    # reference: fixture tac_total_RR_subgroup_MH_z (separate rma.mh fits, then
    # rma(estimate, sei=se, mods=~factor(subgroup), method="FE") QM)
    case = REF["tac_total_RR_subgroup_MH_z"]
    sa = subgroup_analysis(TAC_TOTAL, "subgroup", "RR", "mh", outcome="total_response")
    assert sa.summary["subgroup"].tolist() == ["triple", "duo", "all"]
    assert sa.test["q_between"] == pytest.approx(case["result"]["QM"], rel=1e-6)
    assert sa.summary["q_between_pvalue"].iloc[0] == pytest.approx(case["result"]["QMp"], rel=1e-6)
    # weights are within subgroup
    assert sa.studies.groupby("subgroup")["weight"].sum().to_numpy() == pytest.approx([100, 100])
    with pytest.raises(FrequentistInputError, match="subgroup column"):
        subgroup_analysis(TAC_TOTAL, "regimen")


def test_leave_one_out_and_cumulative_shapes():
    l1o = leave_one_out(TAC_TOTAL, "RR", "dl")
    assert l1o["omitted"].tolist() == TAC_TOTAL["study"].tolist()
    assert (l1o["k"] == 5).all()
    cu = cumulative(TAC_TOTAL, "RR", "mh")
    assert cu["added"].tolist() == ["zhang2006_iv", "zhang_v_iv", "bao2008", "liu2015", "zheng2022",
                                    "amudalapalli2025"]  # by year, ties in table order
    assert cu["k"].tolist() == [1, 2, 3, 4, 5, 6]
    # the last cumulative row is the full analysis
    full = meta_analysis(TAC_TOTAL, "RR", "mh").summary.iloc[0]
    assert cu["estimate"].iloc[-1] == pytest.approx(full["estimate"], rel=1e-12)


def test_cumulative_with_missing_year_puts_it_last():
    df = TAC_TOTAL.copy()
    df.loc[4, "year"] = np.nan
    cu = cumulative(df, "RR", "mh")
    assert cu["added"].iloc[-1] == "zhang_v_iv"


def test_leave_one_out_reports_not_estimable_refits():
    df = pd.DataFrame({"study": ["a", "b"], "events_t": [0, 3], "n_t": [10, 10], "events_c": [0, 1], "n_c": [10, 10]})
    l1o = leave_one_out(df, "RR", "mh")
    assert np.isfinite(l1o.loc[0, "estimate"])  # without a: b alone
    assert math.isnan(l1o.loc[1, "estimate"]) and "not estimable" in l1o.loc[1, "note"]  # a alone


# ---------------------------------------------------------------------------------------
# array-level functions
# ---------------------------------------------------------------------------------------


def test_mh_pairs_follow_metafor_semantics():
    # reference: fixture yusuf1985_t6_OR_MH_z_drop00_FALSE (metafor rma.mh(..., drop00=FALSE)):
    # one drop00 value applies to the yi/vi only; the MH estimate is unchanged
    case = REF["yusuf1985_t6_OR_MH_z_drop00_FALSE"]
    d = case["data"]
    fit = mantel_haenszel(d["ai"], d["n1i"], d["ci"], d["n2i"], "OR", drop00=False)
    assert fit.beta == pytest.approx(case["result"]["beta"], rel=1e-6)
    assert fit.q == pytest.approx(case["result"]["QE"], rel=1e-6)
    same = mantel_haenszel(d["ai"], d["n1i"], d["ci"], d["n2i"], "OR", drop00=(True, False))
    assert same.beta == pytest.approx(fit.beta, rel=1e-12)


@pytest.mark.parametrize(("measure", "cells"), [
    # closed form, one study: RD (Sato) variance numerator
    #   beta*(c(n1/N)^2 - a(n2/N)^2 + (n1/N)(n2/N)(n2-n1)/2) + (a(n2-c)/N + c(n1-a)/N)/2
    #   = 1*(0 - 5/36 - 10/36) + (5/6)/2 = 0 for 5/5 vs 0/1
    ("RD", (5, 5, 0, 1)), ("RD", (0, 1, 5, 5)),
    # RR (Greenland-Robins) numerator n1 n2 (a+c)/N^2 - a c/N = 3*7*10/100 - 21/10 = 0 for 3/3 vs 7/7
    ("RR", (3, 3, 7, 7)), ("RR", (7, 7, 3, 3)),
])
def test_mh_variance_that_is_exactly_zero_is_zero_either_way_round(measure, cells):
    # found by hypothesis (test_swapping_arms_inverts_the_effect[RD-mh]): the variance is a
    # cancellation of O(1) terms, and rounding left +-1e-17, i.e. se 0 one way round and 9e-9 (or NaN)
    # the other. Exact arithmetic says 0 both ways.
    a, n1, c, n2 = cells
    fit = mantel_haenszel([a], [n1], [c], [n2], measure)
    assert fit.se == 0.0
    assert abs(fit.beta) == pytest.approx(1.0 if measure == "RD" else 0.0, abs=1e-12)


# ---------------------------------------------------------------------------------------
# forest plot
# ---------------------------------------------------------------------------------------


def test_forest_plot_returns_figure(tmp_path):
    from matplotlib.figure import Figure

    fig = forest_plot(TAC_TOTAL, "RR", fixed="mh", random="reml", title="Total response",
                      published={"estimate": 1.23, "ci_low": 1.12, "ci_high": 1.34, "label": "Kraaij"})
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    texts = [t.get_text() for t in ax.texts]
    assert "liu2015" in texts and any("published" in t for t in texts)
    assert any(t.startswith("PI [") for t in texts)
    assert len(ax.patches) == 2  # fixed and random diamonds
    fig.savefig(tmp_path / "forest.png")
    assert (tmp_path / "forest.png").stat().st_size > 1000


def test_forest_plot_rd_uses_linear_axis():
    fig = forest_plot(TAC_TOTAL, "RD", fixed="iv", random=None)
    assert fig.axes[0].get_xscale() == "linear"
    assert len(fig.axes[0].patches) == 1


# ---------------------------------------------------------------------------------------
# bundled data: published figures and the command
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tac():
    return bayesln.load_dataset("tacrolimus_ln")


def test_reproduce_published_triple_total_response(tac):
    # published (Kraaij meta-analysis, bundled published_pooled.csv): 1.37 (1.21-1.56);
    # recomputed with metafor rma.mh(measure="RR") = fixture tac_triple_total_RR_MH_z
    out = reproduce_published(tac)
    row = out[(out["outcome"] == "total_response") & (out["subgroup"] == "triple")].iloc[0]
    assert row["reproduced"]
    assert (round(row["estimate"], 2), round(row["ci_low"], 2), round(row["ci_high"], 2)) == (1.37, 1.21, 1.56)
    assert math.log(row["estimate"]) == pytest.approx(REF["tac_triple_total_RR_MH_z"]["result"]["beta"], rel=1e-6)
    assert row["trials_with_counts"] == "liu2015;bao2008" and row["trials_missing"] == ""
    assert row["method"] == "mh"
    # every published row is accounted for, with a reason whenever it is not reproduced
    assert len(out) == len(tac.published)
    assert (out["reason"].str.len() > 0).all()
    partial = out[(out["outcome"] == "total_response") & (out["subgroup"] == "all")].iloc[0]
    assert not partial["reproduced"]
    assert set(partial["trials_missing"].split(";")) >= {"chen2011", "li2012"}
    assert "missing" in partial["reason"]


def test_command_formats(tac, tmp_path):
    table = frequentist_command("tacrolimus_ln", "total_response", ["tac"], [], method="reml")
    assert "REML random effect" in table and "liu2015" in table
    rows = json.loads(frequentist_command("tacrolimus_ln", "total_response", ["tac"], ["ivcy", "mmf"],
                                          method="dl", hksj=True, fmt="json"))
    assert isinstance(rows, list) and len(rows) == 1
    need = {"estimate", "ci_low", "ci_high", "se", "method", "measure", "k", "outcome", "subgroup",
            "tau2", "i2", "q", "q_pvalue", "pi_low", "pi_high"}
    assert need <= set(rows[0])
    assert rows[0]["test"] == "knha"
    mh = json.loads(frequentist_command("tacrolimus_ln", "total_response", ["tac"], [], fmt="json"))
    assert "tau2" not in mh[0] and mh[0]["method"] == "mh"
    sub = json.loads(frequentist_command("tacrolimus_ln", "total_response", ["tac"], [], subgroup="regimen",
                                         fmt="json"))
    assert [r["subgroup"] for r in sub][-1] == "all" and "q_between" in sub[0]
    csv = frequentist_command("tacrolimus_ln", "total_response", ["tac"], [], fmt="csv")
    assert csv.splitlines()[0].split(",") == list(SUMMARY_COLUMNS)
    # --phase keeps one phase and reports the others (chen2012 is a maintenance trial)
    ind = json.loads(frequentist_command("tacrolimus_ln", "total_response", ["tac"], [], fmt="json",
                                         phase="induction"))
    assert "chen2012 (phase maintenance, not induction)" in ind[0]["excluded"]
    assert ind[0]["k"] == mh[0]["k"] - 1
    # a CSV path works too
    path = tac.to_csv(tmp_path / "tac.csv")
    again = json.loads(frequentist_command(str(path), "total_response", ["tac"], [], fmt="json"))
    assert again[0]["estimate"] == pytest.approx(mh[0]["estimate"], rel=1e-12)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ({"data": "no_such_dataset"}, "neither a bundled dataset"),
        ({"fmt": "xml"}, "unknown format"),
        ({"measure": "HR"}, "unknown measure"),
        ({"method": "mh", "hksj": True}, "inverse-variance"),
        ({"outcome": "happiness"}, "unknown outcome"),
        ({"treat": []}, "at least one"),
        ({"subgroup": "nonexistent"}, "subgroup column"),
    ],
)
def test_command_bad_input_raises_value_error(args, match):
    kw = {"data": "tacrolimus_ln", "outcome": "total_response", "treat": ["tac"], "control": []}
    kw.update(args)
    with pytest.raises(ValueError, match=match):
        frequentist_command(**kw)
