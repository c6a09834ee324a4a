"""bayesln.frequentist against R metafor 3.8-1.

Every expected number in this file comes from validation/fixtures/metafor_reference.json,
written by validation/metafor/reference.R (R 4.2.2, metafor 3.8-1; the exact R call of each
case is stored next to its numbers in the JSON, under "call"). CI never runs R.
Tolerance: relative 1e-6 (absolute 1e-9 for numbers that are 0 or nearly so).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesln.frequentist import (
    NotEstimableError,
    cumulative,
    escalc,
    leave_one_out,
    meta_analysis,
    subgroup_analysis,
)

pytestmark = pytest.mark.r_reference

FIXTURE = Path(__file__).resolve().parents[1] / "validation" / "fixtures" / "metafor_reference.json"
REF = json.loads(FIXTURE.read_text())
CASES = {c["id"]: c for c in REF["cases"]}

RTOL = 1e-6
ATOL = 1e-9
METHOD = {"MH": "mh", "PETO": "peto", "EE": "iv", "DL": "dl", "REML": "reml", "PM": "pm"}


def arr(x) -> np.ndarray:
    """JSON value (scalar, list, null) -> float array with NaN for null."""
    if x is None:
        return np.array([np.nan])
    a = np.atleast_1d(np.array(x, dtype=object))
    return np.array([np.nan if v is None else float(v) for v in a], dtype=float)


def close(actual, expected, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    a = np.atleast_1d(np.asarray(actual, dtype=float))
    e = arr(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} vs R {e.shape}"
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{what}: NaN pattern differs from R")
    m = ~np.isnan(e)
    np.testing.assert_allclose(a[m], e[m], rtol=rtol, atol=atol, err_msg=what)


def frame(case: dict) -> pd.DataFrame:
    d = case["data"]
    out = pd.DataFrame({
        "study": d["study"], "events_t": arr(d["ai"]), "n_t": arr(d["n1i"]),
        "events_c": arr(d["ci"]), "n_c": arr(d["n2i"]),
    })
    if "year" in d:
        out["year"] = arr(d["year"])
    if "subgroup" in d:
        out["subgroup"] = d["subgroup"]
    return out


def ids(kind: str) -> list[str]:
    return [cid for cid, c in CASES.items() if c["kind"] == kind]


def test_fixture_provenance():
    # the pinned versions are stated in the fixture (validation/metafor/reference.R)
    assert REF["metafor_version"].startswith("3.8")
    assert REF["r_version"].startswith("R version 4.2")
    datasets = {c["dataset"] for c in REF["cases"]}
    assert {"bcg", "egger2001", "nielweise2007", "collins1985a", "yusuf1985_t6",
            "tac_total", "tac_complete", "tac_triple_total"} <= datasets


# ---------------------------------------------------------------------------------------
# escalc
# ---------------------------------------------------------------------------------------

ESCALC_OPTS = {
    "default": {},
    "toall": {"to": "all"},
    "drop00": {"drop00": True},
    "add0": {"add": 0.0, "to": "none"},
}


@pytest.mark.parametrize("cid", ids("escalc"))
def test_escalc_matches_metafor(cid):
    # reference: metafor escalc(), call stored in the fixture case
    case = CASES[cid]
    d = case["data"]
    es = escalc(d["ai"], d["n1i"], d["ci"], d["n2i"], case["measure"], **ESCALC_OPTS[case["options"]])
    close(es.yi, case["result"]["yi"], f"{cid} yi")
    close(es.vi, case["result"]["vi"], f"{cid} vi")


# ---------------------------------------------------------------------------------------
# rma.mh / rma.peto / rma (EE, DL, REML, PM; z and knha)
# ---------------------------------------------------------------------------------------


def _check_table(tab: pd.DataFrame, ref: dict, cid: str, measure: str, random: bool) -> None:
    close(tab["log_estimate"], ref["estimate"], f"{cid} estimate")
    close(tab["se"], ref["se"], f"{cid} se")
    close(tab["statistic"], ref["zval"], f"{cid} z/t")
    close(tab["pvalue"], ref["pval"], f"{cid} p")
    tr = np.log if measure in ("RR", "OR") else (lambda x: x)
    with np.errstate(divide="ignore", invalid="ignore"):
        close(tr(tab["ci_low"].to_numpy(float)), ref["ci.lb"], f"{cid} ci.lb")
        close(tr(tab["ci_high"].to_numpy(float)), ref["ci.ub"], f"{cid} ci.ub")
    close(tab["q"], ref["Q"], f"{cid} Q")
    close(tab["q_pvalue"], ref["Qp"], f"{cid} Qp")
    close(tab["i2"], ref["I2"], f"{cid} I2")
    close(tab["h2"], ref["H2"], f"{cid} H2")
    if random:
        close(tab["tau2"], ref["tau2"], f"{cid} tau2")


FIT_IDS = [cid for cid in ids("rma.mh") + ids("rma.peto") + ids("rma.uni") if "error" not in CASES[cid]]
ERROR_IDS = [cid for cid in ids("rma.mh") + ids("rma.peto") + ids("rma.uni") if "error" in CASES[cid]]


@pytest.mark.parametrize("cid", ERROR_IDS)
def test_metafor_errors_are_errors_here(cid):
    # reference: metafor stops with the message stored in the fixture (e.g. REML "Fisher
    # scoring algorithm did not converge"); we raise a ValueError subclass instead of a NaN
    case = CASES[cid]
    with pytest.raises(NotEstimableError, match="did not converge"):
        meta_analysis(frame(case), case["measure"], METHOD[case["method"]], **(case.get("options") or {}))


@pytest.mark.parametrize("cid", FIT_IDS)
def test_fit_matches_metafor(cid):
    # reference: metafor rma.mh / rma.peto / rma(method=..., test=...), weights(), predict(),
    # confint() - each call string is stored in the fixture case
    case = CASES[cid]
    method = METHOD[case["method"]]
    measure = case["measure"]
    opts = case.get("options") or {}
    res = meta_analysis(frame(case), measure, method, hksj=case["test"] == "knha", **opts)
    r = case["result"]
    fit = res.fit
    close(fit.beta, r["beta"], f"{cid} beta")
    close(fit.se, r["se"], f"{cid} se")
    close(fit.statistic, r["zval"], f"{cid} zval")
    close(fit.pvalue, r["pval"], f"{cid} pval")
    close(fit.ci_lb, r["ci.lb"], f"{cid} ci.lb")
    close(fit.ci_ub, r["ci.ub"], f"{cid} ci.ub")
    close(fit.q, r["QE"], f"{cid} QE")
    close(fit.q_pvalue, r["QEp"], f"{cid} QEp")
    close(fit.i2, r["I2"], f"{cid} I2")
    close(fit.h2, r["H2"], f"{cid} H2")
    close(fit.tau2, r["tau2"], f"{cid} tau2")
    assert fit.k == r["k"]
    close(fit.yi, r["yi"], f"{cid} yi")
    close(fit.vi, r["vi"], f"{cid} vi")
    w_ref = arr(case["weights"]["value"])
    w = fit.weights if w_ref.size == fit.weights.size else fit.weights[~np.isnan(fit.weights)]
    close(w, w_ref, f"{cid} weights")  # weights(res) omits studies dropped by drop00=TRUE
    if w_ref.size == len(res.studies):
        close(res.studies["weight"], w_ref, f"{cid} study-table weights")
    if opts.get("drop00") and method not in ("mh", "peto"):
        assert len(res.excluded) == int(np.isnan(fit.weights).sum()) > 0
    if "k.yi" in r:
        assert fit.q_df == max(r["k.yi"] - 1, 0)
    if case["kind"] == "rma.uni":
        if "se.tau2" in r and method != "iv":
            close(fit.se_tau2, r["se.tau2"], f"{cid} se.tau2")
        close(fit.vt, r["vt"], f"{cid} vt")
        close(fit.s2w, r["s2w"], f"{cid} s2w")
        close(fit.df, r["ddf"], f"{cid} ddf")
        if method != "iv":
            p = case["predict"]["value"]
            close(fit.pi_lb, p["pi.lb"], f"{cid} pi.lb")
            close(fit.pi_ub, p["pi.ub"], f"{cid} pi.ub")
            close(res.summary["pi_low"].iloc[0], math.exp(p["pi.lb"]) if measure != "RD" else p["pi.lb"],
                  f"{cid} summary pi_low")
    # tidy row: natural scale
    row = res.summary.iloc[0]
    tr = math.exp if measure in ("RR", "OR") else (lambda x: x)
    close(row["estimate"], tr(r["beta"]), f"{cid} summary estimate")
    close(row["ci_low"], tr(r["ci.lb"]), f"{cid} summary ci_low")
    close(row["ci_high"], tr(r["ci.ub"]), f"{cid} summary ci_high")


CONFINT_IDS = [cid for cid in ids("rma.uni") if "confint" in CASES[cid]]


@pytest.mark.parametrize("cid", CONFINT_IDS)
def test_qprofile_confint_matches_metafor(cid):
    # reference: metafor confint(res) (default uniroot tol = eps^0.25, reproduced by our
    # zeroin port) and confint(res, control=list(tol=1e-12)) (exact roots)
    case = CASES[cid]
    method = METHOD[case["method"]]
    df = frame(case)
    res = meta_analysis(df, case["measure"], method, hksj=case["test"] == "knha")
    ci = case["confint"]["value"]
    close([res.fit.tau2, res.fit.tau2_ci_lb, res.fit.tau2_ci_ub], ci["tau2"], f"{cid} tau2 CI")
    close([res.fit.i2, res.fit.i2_ci_lb, res.fit.i2_ci_ub], ci["I2"], f"{cid} I2 CI")
    close([res.fit.h2, res.fit.h2_ci_lb, res.fit.h2_ci_ub], ci["H2"], f"{cid} H2 CI")
    precise = meta_analysis(df, case["measure"], method, hksj=case["test"] == "knha", tol=1e-12)
    cp = case["confint_precise"]["value"]
    if method == "pm":
        # the PM tau^2 itself moves with tol: compare with metafor's tol=1e-12 fit
        close(precise.fit.tau2, case["tau2_precise"]["value"], f"{cid} PM tau2 (tol=1e-12)")
        close([precise.fit.tau2_ci_lb, precise.fit.tau2_ci_ub], cp["tau2"][1:], f"{cid} tau2 CI exact",
              rtol=1e-6, atol=1e-8)
    else:
        close([precise.fit.tau2, precise.fit.tau2_ci_lb, precise.fit.tau2_ci_ub], cp["tau2"],
              f"{cid} tau2 CI exact", atol=1e-8)


L1O_IDS = [cid for cid in FIT_IDS if "leave1out" in CASES[cid]]
CUMUL_IDS = [cid for cid in FIT_IDS if "cumul" in CASES[cid]]


@pytest.mark.parametrize("cid", L1O_IDS)
def test_leave1out_matches_metafor(cid):
    # reference: metafor leave1out(res), stored per case in the fixture
    case = CASES[cid]
    method = METHOD[case["method"]]
    tab = leave_one_out(frame(case), case["measure"], method, hksj=case["test"] == "knha")
    ref = case["leave1out"]["value"]
    assert tab["omitted"].tolist() == list(np.atleast_1d(ref["slab"]))
    _check_table(tab, ref, f"{cid} leave1out", case["measure"], method in ("dl", "reml", "pm"))


@pytest.mark.parametrize("cid", CUMUL_IDS)
def test_cumul_matches_metafor(cid):
    # reference: metafor cumul(res, order=d$year), stored per case in the fixture
    case = CASES[cid]
    method = METHOD[case["method"]]
    tab = cumulative(frame(case), case["measure"], method, order="year", hksj=case["test"] == "knha")
    ref = case["cumul"]["value"]
    assert tab["added"].tolist() == list(np.atleast_1d(ref["slab"]))
    _check_table(tab, ref, f"{cid} cumul", case["measure"], method in ("dl", "reml", "pm"))


def test_bcg_leave1out_pinned():
    # reference: metafor leave1out(rma(measure="RR", ai=tpos, ... dat.bcg, method="REML")),
    # fixture case bcg_RR_REML_z (reused by the checks layer)
    case = CASES["bcg_RR_REML_z"]
    tab = leave_one_out(frame(case), "RR", "reml")
    ref = case["leave1out"]["value"]
    close(tab["log_estimate"], ref["estimate"], "bcg leave1out estimate")
    close(tab["tau2"], ref["tau2"], "bcg leave1out tau2")
    assert len(tab) == 13


# ---------------------------------------------------------------------------------------
# subgroups
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", ids("subgroup"))
def test_subgroups_match_metafor(cid):
    # reference: separate metafor fits per subgroup, then
    # rma(yi=estimate, sei=se, mods=~factor(subgroup), method="FE") QM (fixture "call")
    case = CASES[cid]
    method = METHOD[case["method"]]
    sa = subgroup_analysis(frame(case), "subgroup", case["measure"], method, hksj=case["test"] == "knha")
    for g, r in case["result"]["subgroups"].items():
        fit = sa.fits[g].fit
        close(fit.beta, r["beta"], f"{cid} {g} beta")
        close(fit.se, r["se"], f"{cid} {g} se")
        close(fit.ci_lb, r["ci.lb"], f"{cid} {g} ci.lb")
        close(fit.ci_ub, r["ci.ub"], f"{cid} {g} ci.ub")
        close(fit.tau2, r["tau2"], f"{cid} {g} tau2")
        close(fit.q, r["QE"], f"{cid} {g} QE")
        close(fit.i2, r["I2"], f"{cid} {g} I2")
    close(sa.test["q_between"], case["result"]["QM"], f"{cid} Q_between")
    assert sa.test["df"] == case["result"]["QMdf"]
    close(sa.test["pvalue"], case["result"]["QMp"], f"{cid} Q_between p")
    if "moderator_test" in case:
        # for IV common effect the separate-fit test equals the moderator QM
        close(sa.test["q_between"], case["moderator_test"]["QM"], f"{cid} moderator QM")


def test_triple_total_response_reproduces_published_value():
    # reference: metafor rma.mh(measure="RR") on Liu 2015 151/181 vs 114/181 and
    # Bao 2008 18/20 vs 9/20 (fixture case tac_triple_total_RR_MH_z); published 1.37 (1.21-1.56)
    case = CASES["tac_triple_total_RR_MH_z"]
    res = meta_analysis(frame(case), "RR", "mh")
    row = res.summary.iloc[0]
    assert (round(row["estimate"], 2), round(row["ci_low"], 2), round(row["ci_high"], 2)) == (1.37, 1.21, 1.56)
    close(row["log_estimate"], case["result"]["beta"], "triple MH logRR")
