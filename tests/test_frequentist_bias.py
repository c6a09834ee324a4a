"""bayesln.frequentist.bias (Egger, Begg, trim-and-fill, funnel plot) against R metafor 3.8-1.

Every expected number in this file comes from validation/fixtures/metafor_bias.json,
written by validation/metafor/bias_reference.R (R 4.2.2, metafor 3.8-1). Each fixture case
stores the R call of the model fit (``res <- rma(measure=..., ai=ai, n1i=n1i, ci=ci,
n2i=n2i, data=d, method=...)``) and, next to every number, the call that produced it
(``regtest(res, model=..., predictor=...)``, ``ranktest(res)``, ``trimfill(res,
estimator=..., side=...)``). CI never runs R. Data sets: metafor's dat.bcg, dat.egger2001,
dat.hine1989, the bundled tacrolimus contrasts (validation/metafor/bias_tacrolimus_contrasts.csv,
pinned below to what bayesln builds), simulated sets with zero cells (k = 20), ties
(k = 18) and k = 60, and effect sizes typed in (``rma(yi, vi)``) where the REML Fisher
scoring of Egger's meta-regression needs metafor's ll0check.

Tolerance: relative 1e-6 (absolute 1e-9 for numbers at or near 0), as in
tests/test_frequentist_metafor.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesln
from bayesln.frequentist import FrequentistInputError, escalc
from bayesln.frequentist.bias import (
    BeggTest,
    EggerTest,
    SmallStudyEffects,
    TrimFill,
    funnel_plot,
    pkendall,
    ranktest,
    regtest,
    small_study_effects,
    small_study_warning,
    trimfill,
)
from bayesln.frequentist.bias_command import bias_command

pytestmark = pytest.mark.r_reference

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "validation" / "fixtures" / "metafor_bias.json"
TAC_CSV = ROOT / "validation" / "metafor" / "bias_tacrolimus_contrasts.csv"
REF = json.loads(FIXTURE.read_text())
CASES = {c["id"]: c for c in REF["cases"]}

RTOL = 1e-6
ATOL = 1e-9
METHOD = {"REML": "reml", "DL": "dl", "EE": "iv"}
COCHRANE = "tests for funnel plot asymmetry should be used only when there are at least 10 studies"


def arr(x) -> np.ndarray:
    """JSON value (scalar, list, null) -> float array with NaN for null."""
    if x is None:
        return np.array([np.nan])
    a = np.atleast_1d(np.array(x, dtype=object))
    return np.array([np.nan if v is None else float(v) for v in a], dtype=float)


def close(actual, expected, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    a = np.atleast_1d(np.asarray(actual, dtype=float))
    e = arr(expected) if not (isinstance(expected, list) and len(expected) == 0) else np.empty(0)
    assert a.shape == e.shape, f"{what}: shape {a.shape} vs R {e.shape}"
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{what}: NaN pattern differs from R")
    m = ~np.isnan(e)
    np.testing.assert_allclose(a[m], e[m], rtol=rtol, atol=atol, err_msg=what)


def effects(case: dict):
    """yi, vi, ni computed by bayesln from the case's counts (given directly for measure GEN)."""
    d = case["data"]
    if case["measure"] == "GEN":
        return np.asarray(d["yi"], float), np.asarray(d["vi"], float), None
    es = escalc(d["ai"], d["n1i"], d["ci"], d["n2i"], case["measure"])
    return es.yi, es.vi, np.add(d["n1i"], d["n2i"]).astype(float)


def frame(case: dict) -> pd.DataFrame:
    d = case["data"]
    return pd.DataFrame({"study": d["study"], "events_t": d["ai"], "n_t": d["n1i"],
                         "events_c": d["ci"], "n_c": d["n2i"]})


def fit_options(case: dict) -> dict:
    return {"method": METHOD[case["method"]], "hksj": case["test"] == "knha"}


REGTEST_IDS = [(cid, i) for cid, c in CASES.items() for i in range(len(c["regtest"]))]
RANKTEST_IDS = [cid for cid, c in CASES.items() if "ranktest" in c]
TRIMFILL_IDS = [(cid, i) for cid, c in CASES.items() for i in range(len(c["trimfill"]))]


# ---------------------------------------------------------------------------------------
# the fixture itself
# ---------------------------------------------------------------------------------------


def test_fixture_provenance_and_coverage():
    assert REF["metafor_version"] == "3.8.1"
    assert REF["r_version"].startswith("R version 4.2.2")
    assert REF["script"] == "validation/metafor/bias_reference.R"
    assert (ROOT / REF["script"]).is_file()
    datasets = {c["dataset"] for c in REF["cases"]}
    assert {"bcg", "egger2001", "hine1989", "tac_total", "tac_all_total", "sim_zero", "sim_ties",
            "sim_large", "ll0check"} <= datasets
    for c in REF["cases"]:
        assert c["call"].startswith("rma(")
        assert all(r["call"].startswith("regtest(res") for r in c["regtest"])
        assert all(t["call"].startswith("trimfill(res") for t in c["trimfill"])
    # what the cases exercise: zero cells, both Kendall branches, both sides, k0 > 0 for both
    # estimators, the forced sides and the default rule
    sim = CASES["sim_zero_RR_REML_z"]["data"]
    assert any(a == 0 and c == 0 for a, c in zip(sim["ai"], sim["ci"]))
    exact = {CASES[i]["ranktest"]["result"]["exact"] for i in RANKTEST_IDS}
    assert exact == {True, False}
    assert CASES["sim_large_RR_REML_z"]["ranktest"]["result"]["exact"] is True  # k = 60 >= 50
    tfs = [t for c in REF["cases"] for t in c["trimfill"] if "result" in t]
    assert {t["result"]["side"] for t in tfs if t["side"] is None} == {"left", "right"}
    assert {t["estimator"] for t in tfs if t["result"]["k0"] > 0} == {"L0", "R0"}
    assert not [t for c in REF["cases"] for t in c["trimfill"] if "error" in t]
    # metafor's ll0check resets the Egger meta-regression's REML tau^2 to 0 here
    ll0 = CASES["ll0check_GEN_REML_z"]
    assert ll0["fit"]["tau2"] > 0 and ll0["regtest"][0]["result"]["tau2"] == 0


def test_tacrolimus_csv_is_what_bayesln_builds():
    """The fixture's tacrolimus counts (CSV read by bias_reference.R) are bayesln's contrasts."""
    td = bayesln.load_dataset("tacrolimus_ln")
    csv = pd.read_csv(TAC_CSV)
    cols = ["study", "events_t", "n_t", "events_c", "n_c"]
    con = td.contrasts("total_response", treat=("tac",), control=("ivcy", "mmf"), multi_arm="pool")
    con = con[con["phase"].astype("string") == "induction"]
    built = {"tac_total": con, "tac_all_total": td.contrasts("total_response", treat=("tac",), multi_arm="pool")}
    for name, c in built.items():
        c = pd.DataFrame(c[cols].to_dict("list"))  # without the data layer's attrs
        got = c.astype({k: int for k in cols[1:]})
        exp = csv[csv["dataset"] == name][cols].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, exp, check_dtype=False)
        case = CASES[f"{name}_RR_REML_z"]["data"]
        assert case["study"] == exp["study"].tolist()
        assert case["ai"] == exp["events_t"].tolist() and case["n2i"] == exp["n_c"].tolist()


@pytest.mark.parametrize("cid", list(CASES))
def test_effect_sizes_match_metafor(cid):
    case = CASES[cid]
    yi, vi, ni = effects(case)
    close(yi, case["fit"]["yi"], f"{cid} yi")
    close(vi, case["fit"]["vi"], f"{cid} vi")
    if ni is not None:
        close(ni, case["fit"]["ni"], f"{cid} ni")


# ---------------------------------------------------------------------------------------
# Egger's regression test (metafor regtest)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid,i", REGTEST_IDS, ids=[f"{c}-{CASES[c]['regtest'][i]['model']}-"
                                                     f"{CASES[c]['regtest'][i]['predictor']}" for c, i in REGTEST_IDS])
def test_regtest_matches_metafor(cid, i):
    case = CASES[cid]
    spec = case["regtest"][i]
    r = spec["result"]
    yi, vi, ni = effects(case)
    opts = fit_options(case) if spec["model"] == "rma" else {}
    res = regtest(yi, vi, model=spec["model"], predictor=spec["predictor"], ni=ni, **opts)
    what = f"{cid}: {spec['call']}"
    assert isinstance(res, EggerTest)
    close(res.statistic, r["zval"], what + " zval")
    close(res.pvalue, r["pval"], what + " pval")
    close(res.df, r["dfs"], what + " dfs")
    close(res.limit_estimate, r["est"], what + " est")
    close(res.limit_ci_low, r["ci.lb"], what + " ci.lb")
    close(res.limit_ci_high, r["ci.ub"], what + " ci.ub")
    close([res.limit_estimate, res.slope], r["beta"], what + " coefficients")
    close(res.slope_se, r["se"][1], what + " se of the predictor")
    if spec["model"] == "rma":
        close(res.tau2, r["tau2"], what + " tau2")
        assert res.statistic_type == ("t" if case["test"] == "knha" else "z")
    else:
        assert res.statistic_type == "t" and res.df == case["fit"]["k"] - 2
    d = res.to_dict()
    assert set(d) == {"model", "predictor", "statistic", "statistic_type", "df", "pvalue", "limit_estimate",
                      "limit_ci_low", "limit_ci_high"}
    json.dumps(d, allow_nan=False)


# ---------------------------------------------------------------------------------------
# Begg and Mazumdar's rank correlation test (metafor ranktest)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", RANKTEST_IDS)
def test_ranktest_matches_metafor(cid):
    case = CASES[cid]
    r = case["ranktest"]["result"]
    yi, vi, _ = effects(case)
    res = ranktest(yi, vi)
    assert isinstance(res, BeggTest)
    close(res.tau, r["tau"], f"{cid} ranktest(res) tau")
    close(res.pvalue, r["pval"], f"{cid} ranktest(res) pval")
    assert res.exact is r["exact"], f"{cid}: {case['ranktest']['exact_call']}"
    assert res.to_dict() == {"tau": res.tau, "pvalue": res.pvalue, "exact": r["exact"]}


def test_ranktest_exact_distribution_and_large_k():
    # P(T <= q) for n = 4: 1, 3, 5, 6, 5, 3, 1 permutations with 0..6 inversions out of 24
    np.testing.assert_allclose([pkendall(q, 4) for q in range(-1, 8)],
                               np.array([0, 1, 4, 9, 15, 20, 23, 24, 24]) / 24, rtol=1e-15)
    # k > 170: R's exact p-value is NaN (k! overflows); the normal approximation is used
    rng = np.random.default_rng(3)
    vi = rng.uniform(0.01, 0.5, 180)
    yi = rng.normal(0, np.sqrt(vi))
    res = ranktest(yi, vi)
    assert res.exact is False and 0 < res.pvalue <= 1


# ---------------------------------------------------------------------------------------
# trim-and-fill (metafor trimfill)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid,i", TRIMFILL_IDS,
                         ids=[f"{c}-{CASES[c]['trimfill'][i]['estimator']}-{CASES[c]['trimfill'][i]['side'] or 'auto'}"
                              for c, i in TRIMFILL_IDS])
def test_trimfill_matches_metafor(cid, i):
    case = CASES[cid]
    spec = case["trimfill"][i]
    r = spec["result"]
    yi, vi, _ = effects(case)
    res = trimfill(yi, vi, estimator=spec["estimator"], side=spec["side"], **fit_options(case))
    what = f"{cid}: {spec['call']}"
    assert isinstance(res, TrimFill)
    assert res.k0 == r["k0"], what
    assert res.side == r["side"], what
    assert res.estimator == r["estimator"]
    close(res.se_k0, r["se.k0"], what + " se.k0")
    close(res.estimate, r["beta"], what + " beta")
    close(res.se, r["se"], what + " se")
    close(res.ci_low, r["ci.lb"], what + " ci.lb")
    close(res.ci_high, r["ci.ub"], what + " ci.ub")
    close(res.pvalue, r["pval"], what + " pval")
    close(res.tau2, r["tau2"], what + " tau2")
    close(res.filled_yi, r["fill_yi"] if r["k0"] else [], what + " filled yi")
    close(res.filled_vi, r["fill_vi"] if r["k0"] else [], what + " filled vi")
    d = res.to_dict()
    assert set(d) == {"k0", "side", "estimator", "estimate", "ci_low", "ci_high", "se"}
    json.dumps(d, allow_nan=False)


def test_trimfill_without_missing_studies_returns_the_input_fit():
    """metafor returns the input fit itself when k0 = 0 (so a Knapp-Hartung CI is kept)."""
    case = CASES["bcg_OR_REML_knha"]
    r = case["trimfill"][0]["result"]
    assert r["k0"] == 0
    yi, vi, _ = effects(case)
    z = trimfill(yi, vi)
    knha = trimfill(yi, vi, hksj=True)
    close(knha.ci_low, r["ci.lb"], "knha ci.lb")
    assert knha.ci_low < z.ci_low and knha.estimate == pytest.approx(z.estimate, rel=1e-12)


# ---------------------------------------------------------------------------------------
# contrast-table level and the Cochrane warning
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", ["bcg_RR_REML_z", "egger2001_OR_REML_z", "tac_total_RR_REML_z",
                                 "sim_zero_OR_REML_z"])
def test_small_study_effects_on_a_contrast_table(cid):
    case = CASES[cid]
    res = small_study_effects(frame(case), case["measure"])
    assert isinstance(res, SmallStudyEffects)
    eg = next(r for r in case["regtest"] if r["model"] == "rma" and r["predictor"] == "sei")["result"]
    tf = next(t for t in case["trimfill"] if t["estimator"] == "L0" and t["side"] is None)["result"]
    rk = case["ranktest"]["result"]
    d = res.to_dict()
    assert set(d) == {"egger", "begg", "trimfill", "k", "warning"}
    assert d["k"] == case["fit"]["k"]
    close(d["egger"]["statistic"], eg["zval"], cid + " egger")
    close(d["egger"]["pvalue"], eg["pval"], cid + " egger p")
    close(d["egger"]["limit_estimate"], eg["est"], cid + " limit estimate")
    close(d["begg"]["pvalue"], rk["pval"], cid + " begg p")
    assert d["trimfill"]["k0"] == tf["k0"] and d["trimfill"]["side"] == tf["side"]
    close(d["trimfill"]["estimate"], tf["beta"], cid + " trimfill")
    close(res.pooled.beta, case["fit"]["beta"], cid + " pooled REML estimate")
    close(res.pooled.ci_lb, case["fit"]["ci.lb"], cid + " pooled ci.lb")
    if case["fit"]["k"] < 10:
        assert COCHRANE in d["warning"] and "13.3.5.4" in d["warning"]
    else:
        assert d["warning"] is None
    json.dumps(d, allow_nan=False)


def test_cochrane_warning_threshold():
    for k in (3, 6, 9):
        w = small_study_warning(k)
        assert COCHRANE in w and f"only {k} studies" in w
    assert small_study_warning(10) is None and small_study_warning(60) is None


def test_missing_counts_are_excluded_with_a_reason():
    df = frame(CASES["bcg_RR_REML_z"])
    df.loc[0, "events_t"] = np.nan
    res = small_study_effects(df, "RR")
    assert res.k == 12
    assert res.excluded["study"].tolist() == [df.loc[0, "study"]]
    assert "missing" in res.excluded["reason"].iloc[0]


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------


def test_too_few_studies():
    df = frame(CASES["bcg_RR_REML_z"]).head(2)
    with pytest.raises(FrequentistInputError, match=r"k = 2: .*at least 3 studies"):
        small_study_effects(df, "RR")
    yi, vi, _ = effects(CASES["bcg_RR_REML_z"])
    for fn in (regtest, ranktest, trimfill):
        with pytest.raises(FrequentistInputError, match="at least 3 studies"):
            fn(yi[:2], vi[:2])


@pytest.mark.parametrize("kwargs,pattern", [
    ({"measure": "RD"}, r"unknown measure 'RD'; expected one of RR, OR"),
    ({"measure": "hazard"}, r"unknown measure 'hazard'; expected one of RR, OR"),
    ({"model": "glm"}, r"model: unknown value 'glm'; expected one of rma, lm"),
    ({"predictor": "vi"}, r"predictor: unknown value 'vi'; expected one of sei, ninv"),
    ({"method": "pm"}, r"method: unknown value 'pm' .*expected one of reml, dl, iv"),
    ({"estimator": "Q0"}, r"estimator: unknown value 'Q0'; expected one of L0, R0"),
    ({"side": "up"}, r"side: unknown value 'up'; expected one of left, right"),
    ({"level": 120}, r"level: expected a percentage"),
])
def test_bad_options(kwargs, pattern):
    kw = {"measure": "RR", **kwargs}
    with pytest.raises(FrequentistInputError, match=pattern):
        small_study_effects(frame(CASES["bcg_RR_REML_z"]), **kw)


def test_bad_arrays():
    yi, vi, _ = effects(CASES["bcg_RR_REML_z"])
    with pytest.raises(FrequentistInputError, match="needs the sample sizes"):
        regtest(yi, vi, predictor="ninv")
    with pytest.raises(FrequentistInputError, match="positive finite variances"):
        ranktest(yi, np.where(np.arange(yi.size) == 2, -1.0, vi))
    with pytest.raises(FrequentistInputError, match="differ in length"):
        trimfill(yi, vi[:-1])
    with pytest.raises(FrequentistInputError, match="constant"):
        regtest(yi, np.full(yi.size, 0.1))
    with pytest.raises(FrequentistInputError, match="constant"):
        regtest(yi, np.full(yi.size, 0.1), model="lm")
    # a standard error that varies by 1e-5 only: metafor's rma.uni refuses the design
    # ("Model matrix not of full rank", X'X has an eigenvalue <= 1e-7) while lm() fits it
    vi_flat = (0.3 + np.linspace(0, 1e-5, yi.size)) ** 2
    with pytest.raises(FrequentistInputError, match="hardly varies"):
        regtest(yi, vi_flat)
    assert 0 <= regtest(yi, vi_flat, model="lm").pvalue <= 1


# ---------------------------------------------------------------------------------------
# funnel plot (artists, no pixels)
# ---------------------------------------------------------------------------------------


def _by_gid(fig, gid):
    ax = fig.axes[0]
    return [a for a in [*ax.collections, *ax.lines] if a.get_gid() == gid]


def test_funnel_plot_artists():
    from matplotlib.figure import Figure

    case = CASES["egger2001_RR_REML_z"]
    res = small_study_effects(frame(case), "RR")
    assert res.trimfill.k0 == 7
    fig = funnel_plot(res, title="magnesium")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo > hi == 0.0  # standard error axis inverted
    assert ax.get_xlabel() == "log risk ratio" and ax.get_ylabel() == "standard error"
    (obs,) = _by_gid(fig, "studies")
    np.testing.assert_allclose(obs.get_offsets(), np.column_stack([res.studies["yi"], res.studies["sei"]]))
    (filled,) = _by_gid(fig, "filled studies")
    np.testing.assert_allclose(filled.get_offsets(),
                               np.column_stack([res.trimfill.filled_yi, np.sqrt(res.trimfill.filled_vi)]))
    assert len(filled.get_facecolors()) == 0 or np.all(filled.get_facecolors()[:, 3] == 0)  # open markers
    (pooled,) = _by_gid(fig, "pooled estimate")
    assert pooled.get_xdata()[0] == pytest.approx(case["fit"]["beta"], rel=1e-6)
    (adjusted,) = _by_gid(fig, "adjusted estimate")
    assert adjusted.get_xdata()[0] == pytest.approx(res.trimfill.estimate)
    for p in ("0.1", "0.05", "0.01"):
        assert len(_by_gid(fig, f"contour p<{p}")) == 2  # both sides of 0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:4] == ["p > 0.1", "0.05 < p < 0.1", "0.01 < p < 0.05", "p < 0.01"]
    assert "filled studies (trim-and-fill L0)" in labels and "pooled estimate" in labels


def test_funnel_plot_from_arrays_without_trimfill():
    yi, vi, _ = effects(CASES["bcg_RR_REML_z"])
    fig = funnel_plot(yi, vi, contours=(0.05,))
    assert _by_gid(fig, "filled studies") == [] and _by_gid(fig, "pooled estimate") == []
    assert len(_by_gid(fig, "contour p<0.05")) == 2
    with pytest.raises(FrequentistInputError, match="contours"):
        funnel_plot(yi, vi, contours=(5,))


# ---------------------------------------------------------------------------------------
# the `bayesln bias` command text
# ---------------------------------------------------------------------------------------

TAC_ARGS = ("tacrolimus_ln", "total_response", "tac", "ivcy,mmf")


def test_bias_command_json_matches_metafor():
    out = json.loads(bias_command(*TAC_ARGS, phase="induction", fmt="json"))
    case = CASES["tac_total_RR_REML_z"]
    assert set(out) == {"egger", "begg", "trimfill", "k", "warning"}
    assert out["k"] == 6 and COCHRANE in out["warning"]
    eg = case["regtest"][0]
    assert (eg["model"], eg["predictor"]) == ("rma", "sei")
    close(out["egger"]["statistic"], eg["result"]["zval"], "egger zval")
    close(out["egger"]["pvalue"], eg["result"]["pval"], "egger pval")
    close([out["egger"]["limit_ci_low"], out["egger"]["limit_ci_high"]],
          [eg["result"]["ci.lb"], eg["result"]["ci.ub"]], "egger limit CI")
    assert out["egger"]["statistic_type"] == "z" and out["egger"]["df"] is None
    close(out["begg"]["tau"], case["ranktest"]["result"]["tau"], "begg tau")
    close(out["begg"]["pvalue"], case["ranktest"]["result"]["pval"], "begg pval")
    assert out["begg"]["exact"] is True
    tf = case["trimfill"][0]
    assert (tf["estimator"], tf["side"]) == ("L0", None)
    assert out["trimfill"]["k0"] == tf["result"]["k0"] == 1 and out["trimfill"]["side"] == "left"
    for key, rkey in (("estimate", "beta"), ("ci_low", "ci.lb"), ("ci_high", "ci.ub"), ("se", "se")):
        close(out["trimfill"][key], tf["result"][rkey], f"trimfill {key}")


def test_bias_command_options_match_metafor():
    """Every other arm as control (7 studies, chen2012 with a zero cell), OR, classical Egger on 1/n, R0."""
    out = json.loads(bias_command("tacrolimus_ln", "total_response", ["tac"], None, measure="OR", fmt="json",
                                  model="lm", predictor="ninv", estimator="R0"))
    case = CASES["tac_all_total_OR_REML_z"]
    eg = next(r for r in case["regtest"] if (r["model"], r["predictor"]) == ("lm", "ninv"))["result"]
    assert out["k"] == 7 and out["egger"]["statistic_type"] == "t" and out["egger"]["df"] == 5
    close(out["egger"]["statistic"], eg["zval"], "lm ninv t")
    close(out["egger"]["limit_estimate"], eg["est"], "lm ninv limit estimate")
    tf = next(t for t in case["trimfill"] if t["estimator"] == "R0" and t["side"] is None)["result"]
    assert out["trimfill"]["k0"] == tf["k0"] and out["trimfill"]["estimator"] == "R0"
    close(out["trimfill"]["estimate"], tf["beta"], "R0 estimate")


def test_bias_command_table():
    text = bias_command(*TAC_ARGS, phase="induction")
    case = CASES["tac_total_RR_REML_z"]
    eg = case["regtest"][0]["result"]
    tf = case["trimfill"][0]["result"]
    assert text.splitlines()[0].startswith("tacrolimus_ln: total_response, tac vs ivcy,mmf (induction)")
    assert "warning: only 6 studies: " + COCHRANE in text
    assert f"z = {eg['zval']:.2f}, p = {eg['pval']:.4f}" in text
    assert f"Kendall's tau = {case['ranktest']['result']['tau']:.3f}" in text and "(exact)" in text
    assert "1 study filled on the left" in text
    assert (f"RR {math.exp(tf['beta']):.2f} [{math.exp(tf['ci.lb']):.2f}, {math.exp(tf['ci.ub']):.2f}]") in text
    assert "chen2012 (no control arm)" in text  # excluded studies are listed


@pytest.mark.parametrize("kwargs,pattern", [
    ({"fmt": "csv"}, r"--format: unknown value 'csv'; expected one of table, json"),
    ({"measure": "RD"}, r"unknown measure 'RD'; expected one of RR, OR"),
    ({"model": "x"}, r"--model: unknown value 'x'; expected one of rma, lm"),
    ({"predictor": "ni"}, r"--predictor: unknown value 'ni'; expected one of sei, ninv"),
    ({"method": "mh"}, r"--method: unknown value 'mh' .*expected one of reml, dl, iv"),
    ({"estimator": "l0"}, r"--estimator: unknown value 'l0'; expected one of L0, R0"),
    ({"side": "both"}, r"--side: unknown value 'both'; expected one of left, right"),
])
def test_bias_command_bad_options(kwargs, pattern):
    with pytest.raises(FrequentistInputError, match=pattern):
        bias_command(*TAC_ARGS, **kwargs)


def test_bias_command_bad_data():
    with pytest.raises(FrequentistInputError, match="unknown outcome"):
        bias_command("tacrolimus_ln", "nope", "tac", None)
    with pytest.raises(FrequentistInputError, match="--treat needs at least one"):
        bias_command("tacrolimus_ln", "total_response", "", None)
    with pytest.raises(FrequentistInputError, match="neither a bundled dataset"):
        bias_command("no_such_dataset", "total_response", "tac", None)
    with pytest.raises(FrequentistInputError, match="at least 3 studies"):  # two triple-therapy trials
        bias_command("tacrolimus_ln", "total_response", "tac_triple", "ivcy", phase="induction")
    with pytest.raises(FrequentistInputError, match="no study gives"):
        bias_command("tacrolimus_ln", "total_response", "tac", None, phase="no_such_phase")


# ----------------------------------------------------------------------------- the command line
def test_bias_command_line_prints_what_the_function_computes():
    """`bayesln bias ... --format json` through the real command (typer app) equals
    bias_command's JSON (whose numbers are checked against metafor above); bad input exits 2."""
    from typer.testing import CliRunner

    from bayesln.cli import app
    from bayesln.frequentist.bias_command import bias_command

    args = ["tacrolimus_ln", "--outcome", "total_response", "--treat", "tac", "--control", "ivcy,mmf",
            "--phase", "induction"]
    r = CliRunner().invoke(app, ["bias", *args, "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == json.loads(bias_command("tacrolimus_ln", "total_response", ["tac"], ["ivcy", "mmf"],
                                                            phase="induction", fmt="json"))
    r = CliRunner().invoke(app, ["bias", *args, "--measure", "RD"])
    assert r.exit_code == 2 and "measure" in r.stderr and "Traceback" not in r.stderr
