"""``bayesln frequentist`` through the real command line, checked against R metafor.

Every expected number comes from validation/fixtures/metafor_reference.json, written by
validation/metafor/reference.R (R 4.2.2, metafor 3.8-1); each fixture case stores the
exact R call next to its numbers (key "call"). The CLI is invoked with typer's CliRunner
on ``bayesln.cli.app``, as in tests/test_cli_data.py; CI never runs R.

The fixture's tacrolimus data sets were typed into reference.R by hand, so the first
tests pin them to the bundled dataset (``bayesln.load_dataset("tacrolimus_ln")``): the
CLI numbers below are only a check of the CLI if the CLI analyses the same counts.

Tolerance: relative 1e-6 (absolute 1e-9 for numbers at or near 0), as in
tests/test_frequentist_metafor.py.
"""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayesln
from bayesln.cli import app

pytestmark = pytest.mark.r_reference

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "validation" / "fixtures" / "metafor_reference.json"
R_SCRIPT = ROOT / "validation" / "metafor" / "reference.R"
REF = json.loads(FIXTURE.read_text())
CASES = {c["id"]: c for c in REF["cases"]}

RTOL = 1e-6
ATOL = 1e-9
METHOD = {"MH": "mh", "PETO": "peto", "EE": "iv", "DL": "dl", "REML": "reml", "PM": "pm"}

runner = CliRunner()

# How each tacrolimus data set of the fixture is defined in reference.R, in terms of the
# bundled data (its comments: induction phase, TAC arm vs all non-TAC arms pooled;
# tac_triple_total = the triple-therapy TAC trials of tac_total) ...
TAC_SETS = {
    "tac_total": {"outcome": "total_response", "regimen": None},
    "tac_complete": {"outcome": "complete_response", "regimen": None},
    "tac_triple_total": {"outcome": "total_response", "regimen": "triple"},
}
# ... and the command line that analyses exactly those counts (checked below).
CLI_DATA = {
    "tac_total": ["tacrolimus_ln", "--outcome", "total_response", "--treat", "tac",
                  "--control", "ivcy,mmf", "--phase", "induction"],
    "tac_complete": ["tacrolimus_ln", "--outcome", "complete_response", "--treat", "tac",
                     "--control", "ivcy,mmf", "--phase", "induction"],
    # treat = the TAC triple-therapy arms (network node tac_triple), control = every other arm
    "tac_triple_total": ["tacrolimus_ln", "--outcome", "total_response", "--treat", "tac_triple"],
}


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def invoke(*args):
    return runner.invoke(app, ["frequentist", *[str(a) for a in args]])


def ok(r) -> str:
    assert r.exit_code == 0, (r.exit_code, r.stderr, r.exception)
    assert r.stderr == "", r.stderr
    return r.stdout


def one_paragraph(text: str) -> bool:
    return text.strip() != "" and "\n\n" not in text.strip() and "Traceback" not in text


def num(x) -> float:
    return math.nan if x is None else float(x)


def close(actual, expected, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    a, e = num(actual), num(expected)
    assert math.isnan(a) == math.isnan(e), f"{what}: {a} vs R {e}"
    if not math.isnan(e):
        assert a == pytest.approx(e, rel=rtol, abs=atol), f"{what}: {a} vs R {e}"


def natural(measure: str):
    return math.exp if measure in ("RR", "OR") else (lambda x: x)


def bundled_contrasts(dataset: str) -> pd.DataFrame:
    spec = TAC_SETS[dataset]
    con = bayesln.load_dataset("tacrolimus_ln").contrasts(spec["outcome"], treat="tac")
    keep = (con["phase"] == "induction").fillna(False).to_numpy(bool, copy=True)
    if spec["regimen"]:
        keep = keep & (con["regimen"] == spec["regimen"]).fillna(False).to_numpy(bool)
    return con[keep].reset_index(drop=True)


def check_record(rec: dict, case: dict, what: str) -> None:
    """One JSON/CSV result object against a metafor fit (rma.mh / rma.peto / rma)."""
    r = case["result"]
    measure = case["measure"]
    tr = natural(measure)
    assert rec["measure"] == measure and rec["method"] == METHOD[case["method"]]
    assert rec["test"] == case["test"]
    assert int(rec["k"]) == r["k"]
    close(rec["estimate"], tr(r["beta"]), f"{what} estimate")
    close(rec["ci_low"], tr(r["ci.lb"]), f"{what} ci_low")
    close(rec["ci_high"], tr(r["ci.ub"]), f"{what} ci_high")
    close(rec["log_estimate"], r["beta"], f"{what} log_estimate")
    close(rec["se"], r["se"], f"{what} se")
    close(rec["statistic"], r["zval"], f"{what} z/t")
    close(rec["pvalue"], r["pval"], f"{what} p")
    close(rec["df"], r["ddf"], f"{what} df")  # k - 1 for knha, NA (null) for z
    close(rec["q"], r["QE"], f"{what} Q")
    close(rec["q_pvalue"], r["QEp"], f"{what} Q p")
    assert int(rec["q_df"]) == r.get("k.yi", r["k"]) - 1
    close(rec["i2"], r["I2"], f"{what} I2")
    close(rec["h2"], r["H2"], f"{what} H2")
    if case["method"] in ("DL", "REML", "PM"):
        close(rec["tau2"], r["tau2"], f"{what} tau2")
        if "predict" in case:  # metafor predict(res)
            p = case["predict"]["value"]
            close(rec["pi_low"], tr(p["pi.lb"]), f"{what} pi_low")
            close(rec["pi_high"], tr(p["pi.ub"]), f"{what} pi_high")
        if "confint" in case:  # metafor confint(res), Q-profile, default uniroot tol
            ci = case["confint"]["value"]
            close(rec["tau2_ci_low"], ci["tau2"][1], f"{what} tau2 ci_low")
            close(rec["tau2_ci_high"], ci["tau2"][2], f"{what} tau2 ci_high")
            close(rec["i2_ci_low"], ci["I2"][1], f"{what} I2 ci_low")
            close(rec["i2_ci_high"], ci["I2"][2], f"{what} I2 ci_high")


def fit_ids(datasets) -> list[str]:
    return [cid for cid, c in CASES.items()
            if c["dataset"] in datasets and c["kind"] in ("rma.mh", "rma.peto", "rma.uni")
            and "error" not in c and not c.get("options")]


def cli_args(case: dict) -> list[str]:
    args = [*CLI_DATA[case["dataset"]], "--measure", case["measure"], "--method", METHOD[case["method"]]]
    return args + (["--hksj"] if case["test"] == "knha" else [])


# ---------------------------------------------------------------------------------------
# 1. the fixture's hand-typed tacrolimus counts are the bundled counts
# ---------------------------------------------------------------------------------------


def test_fixture_covers_exactly_the_known_tacrolimus_sets():
    # a new tac_* set in reference.R must be added to TAC_SETS (and so be checked below)
    tac = {c["dataset"] for c in REF["cases"] if c["dataset"].startswith("tac")}
    assert tac == set(TAC_SETS)


@pytest.mark.parametrize("dataset", sorted(TAC_SETS))
def test_fixture_tacrolimus_counts_equal_bundled_contrasts(dataset):
    # reference: the bundled dataset itself (bayesln.load_dataset("tacrolimus_ln").contrasts);
    # every fixture case of the set (escalc, fits, subgroups) carries its own copy of the data
    con = bundled_contrasts(dataset)
    cases = [c for c in REF["cases"] if c["dataset"] == dataset]
    assert cases
    for case in cases:
        d = case["data"]
        where = f"{case['id']} (fixture) vs tacrolimus_ln {TAC_SETS[dataset]}"
        assert d["study"] == con["study"].tolist(), where
        for r_col, col in (("ai", "events_t"), ("n1i", "n_t"), ("ci", "events_c"), ("n2i", "n_c")):
            assert [float(v) for v in d[r_col]] == con[col].astype(float).tolist(), f"{where}: {r_col} / {col}"
        # the subgroup column is the TAC arm's regimen
        assert d["subgroup"] == con["regimen"].astype(str).tolist(), f"{where}: subgroup / regimen"
        # years (used for cumul()): equal where the bundled year is known; reference.R
        # documents 2006 for zhang_v_iv, which has no known year
        for study, y_fix, y in zip(d["study"], d["year"], con["year"]):
            if pd.isna(y):
                assert study == "zhang_v_iv" and y_fix == 2006, where
            else:
                assert float(y_fix) == float(y), f"{where}: year of {study}"


def _r_vector(block: str, name: str) -> list[str]:
    m = re.search(rf"\b{name}\s*=\s*c\(([^)]*)\)", block)
    assert m, f"{name} = c(...) not found in reference.R"
    return [v.strip().strip('"') for v in m.group(1).split(",")]


@pytest.mark.parametrize("dataset", ["tac_total", "tac_complete"])
def test_reference_script_counts_equal_fixture(dataset):
    # reference: the literal vectors in validation/metafor/reference.R, so an edit of the
    # script that was not followed by re-running it (re-pinning the JSON) is noticed
    text = R_SCRIPT.read_text()
    start = text.index(f"datasets${dataset} <- mk(")
    block = text[start:text.index(f"sources${dataset}", start)]
    d = CASES[f"{dataset}_RR_MH_z"]["data"]
    assert _r_vector(block, "study") == d["study"]
    for col in ("ai", "n1i", "ci", "n2i"):
        assert [float(v) for v in _r_vector(block, col)] == [float(v) for v in d[col]], col


@pytest.mark.parametrize("dataset", sorted(CLI_DATA))
def test_cli_analyses_the_fixture_counts(dataset):
    # reference: the fixture's data (== the bundled contrasts, test above); the table output
    # lists each study's counts as events/n
    out = ok(invoke(*CLI_DATA[dataset]))
    d = CASES[f"{dataset}_RR_MH_z"]["data"]
    rows = re.findall(r"^(\S+)\s+(\d+)/(\d+)\s+(\d+)/(\d+)\s", out, flags=re.M)
    assert [r[0] for r in rows] == d["study"]
    for (study, a, n1, c, n2), ai, n1i, ci, n2i in zip(rows, d["ai"], d["n1i"], d["ci"], d["n2i"]):
        assert (int(a), int(n1), int(c), int(n2)) == (ai, n1i, ci, n2i), study


# ---------------------------------------------------------------------------------------
# 2. every measure, method and --hksj through the CLI, JSON output vs metafor
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", fit_ids(set(CLI_DATA)))
def test_cli_json_matches_metafor(cid):
    # reference: the fixture case cid, i.e. metafor rma.mh(measure=...), rma.peto(),
    # rma(measure=..., method="EE"|"DL"|"REML"|"PM", test="z"|"knha") with predict(res)
    # and confint(res) (calls stored in the case); covers --measure RR/OR/RD,
    # --method mh/peto/iv/dl/reml/pm and --hksj on three data sets
    case = CASES[cid]
    recs = json.loads(ok(invoke(*cli_args(case), "--format", "json")))
    assert isinstance(recs, list) and len(recs) == 1
    rec = recs[0]
    check_record(rec, case, cid)
    assert rec["subgroup"] == "all" and rec["outcome"] == TAC_SETS[case["dataset"]]["outcome"]
    random_keys = {"tau2", "tau2_ci_low", "tau2_ci_high", "i2_ci_low", "i2_ci_high", "pi_low", "pi_high"}
    if case["method"] in ("DL", "REML", "PM"):
        assert random_keys <= set(rec)
    else:
        assert not random_keys & set(rec)


def test_cli_covers_every_measure_and_method():
    # the parametrisation above really spans the command-line choices
    cases = [CASES[c] for c in fit_ids(set(CLI_DATA))]
    assert {c["measure"] for c in cases} == {"RR", "OR", "RD"}
    assert {METHOD[c["method"]] for c in cases} == {"mh", "peto", "iv", "dl", "reml", "pm"}
    assert {(METHOD[c["method"]], c["test"]) for c in cases} >= {
        (m, "knha") for m in ("iv", "dl", "reml", "pm")}


CSV_CASES = ["tac_total_RR_MH_z", "tac_total_OR_PETO_z", "tac_complete_RD_REML_knha",
             "tac_total_RR_PM_z", "tac_triple_total_OR_DL_knha", "tac_complete_RR_EE_z"]


@pytest.mark.parametrize("cid", CSV_CASES)
def test_cli_csv_matches_metafor(cid):
    # reference: fixture case cid (metafor call stored in the case)
    case = CASES[cid]
    out = ok(invoke(*cli_args(case), "--format", "csv"))
    tab = pd.read_csv(io.StringIO(out))
    assert len(tab) == 1
    rec = {k: (None if pd.isna(v) else v) for k, v in tab.iloc[0].to_dict().items()}
    check_record(rec, case, f"{cid} csv")


def test_omitted_control_means_every_other_arm():
    # reference: fixture tac_total_RR_MH_z (TAC vs all non-TAC arms, Amudalapalli's MMF and
    # IVCY arms pooled); without --control the command pools the same arms
    args = [a for a in CLI_DATA["tac_total"]]
    i = args.index("--control")
    del args[i:i + 2]
    rec = json.loads(ok(invoke(*args, "--format", "json")))[0]
    check_record(rec, CASES["tac_total_RR_MH_z"], "no --control")


def test_csv_file_as_data(tmp_path):
    # DATA may be a CSV in the arm-level format: the bundled data written by
    # `bayesln data show --format csv` gives the metafor numbers too (fixture tac_total_RR_REML_z)
    r = runner.invoke(app, ["data", "show", "tacrolimus_ln", "--format", "csv"])
    path = tmp_path / "trials.csv"
    path.write_text(ok(r), encoding="utf-8")
    args = [str(path), *CLI_DATA["tac_total"][1:], "--method", "reml", "--format", "json"]
    check_record(json.loads(ok(invoke(*args)))[0], CASES["tac_total_RR_REML_z"], "csv DATA")


# ---------------------------------------------------------------------------------------
# --subgroup regimen
# ---------------------------------------------------------------------------------------

SUBGROUP_IDS = [cid for cid, c in CASES.items()
                if c["kind"] == "subgroup" and c["dataset"] in ("tac_total", "tac_complete")]


@pytest.mark.parametrize("cid", SUBGROUP_IDS)
def test_cli_subgroup_regimen_matches_metafor(cid):
    # reference: fixture case cid: separate metafor fits per regimen
    # (rma.mh / rma(..., subset=subgroup==g, method, test)) and the test of subgroup
    # differences rma(yi=estimate, sei=se, mods=~factor(subgroup), method="FE") QM;
    # the overall row against the all-studies fit of the same method (fixture case
    # <dataset>_<measure>_<method>_<test>)
    case = CASES[cid]
    measure, method, test = case["measure"], case["method"], case["test"]
    args = [*CLI_DATA[case["dataset"]], "--measure", measure, "--method", METHOD[method],
            "--subgroup", "regimen", "--format", "json"] + (["--hksj"] if test == "knha" else [])
    recs = json.loads(ok(invoke(*args)))
    by = {r["subgroup"]: r for r in recs}
    assert list(by) == [*case["groups"], "all"]
    tr = natural(measure)
    for g, r in case["result"]["subgroups"].items():
        rec = by[g]
        assert rec["k"] == r["k"]
        close(rec["estimate"], tr(r["beta"]), f"{cid} {g} estimate")
        close(rec["ci_low"], tr(r["ci.lb"]), f"{cid} {g} ci_low")
        close(rec["ci_high"], tr(r["ci.ub"]), f"{cid} {g} ci_high")
        close(rec["se"], r["se"], f"{cid} {g} se")
        close(rec["statistic"], r["zval"], f"{cid} {g} z/t")
        close(rec["pvalue"], r["pval"], f"{cid} {g} p")
        close(rec["q"], r["QE"], f"{cid} {g} Q")
        close(rec["q_pvalue"], r["QEp"], f"{cid} {g} Q p")
        close(rec["i2"], r["I2"], f"{cid} {g} I2")
        if method in ("DL", "REML", "PM"):
            close(rec["tau2"], r["tau2"], f"{cid} {g} tau2")
    for rec in recs:  # the test of subgroup differences is repeated on every object
        close(rec["q_between"], case["result"]["QM"], f"{cid} Q between")
        assert rec["q_between_df"] == case["result"]["QMdf"]
        close(rec["q_between_pvalue"], case["result"]["QMp"], f"{cid} Q between p")
    check_record(by["all"], CASES[f"{case['dataset']}_{measure}_{method}_{test}"], f"{cid} all")


def test_cli_subgroup_csv_and_table():
    # reference: fixture tac_total_RR_subgroup_REML_z (per-regimen REML fits and QM)
    case = CASES["tac_total_RR_subgroup_REML_z"]
    args = [*CLI_DATA["tac_total"], "--method", "reml", "--subgroup", "regimen"]
    tab = pd.read_csv(io.StringIO(ok(invoke(*args, "--format", "csv"))))
    assert tab["subgroup"].tolist() == ["triple", "duo", "all"]
    for g, r in case["result"]["subgroups"].items():
        row = tab.set_index("subgroup").loc[g]
        close(row["estimate"], math.exp(r["beta"]), f"csv {g} estimate")
        close(row["tau2"], r["tau2"], f"csv {g} tau2")
    close(tab["q_between"].iloc[0], case["result"]["QM"], "csv Q between")
    text = ok(invoke(*args))
    # the table rounds to 2 decimals; R's values rounded the same way
    qm, qmp = case["result"]["QM"], case["result"]["QMp"]
    assert (f"test of subgroup differences: Q = {qm:.2f} (df = {int(case['result']['QMdf'])}, "
            f"p = {qmp:.4f})") in text
    for g, r in case["result"]["subgroups"].items():
        assert f"[subgroup {g}]" in text
        assert (f"RR = {math.exp(r['beta']):.2f} [{math.exp(r['ci.lb']):.2f}, "
                f"{math.exp(r['ci.ub']):.2f}]") in text


# ---------------------------------------------------------------------------------------
# table format
# ---------------------------------------------------------------------------------------


def test_cli_table_numbers_match_metafor():
    # reference: fixture tac_total_RR_REML_knha (rma(..., method="REML", test="knha"),
    # weights(res), predict(res), confint(res)); study rows: the closed form
    # exp(yi -/+ z_0.975 sqrt(vi)) from the fixture's yi/vi (metafor escalc)
    from statistics import NormalDist

    case = CASES["tac_total_RR_REML_knha"]
    r = case["result"]
    text = ok(invoke(*CLI_DATA["tac_total"], "--method", "reml", "--hksj"))
    z = NormalDist().inv_cdf(0.975)
    for study, yi, vi, w in zip(case["data"]["study"], r["yi"], r["vi"], case["weights"]["value"]):
        eff = f"{math.exp(yi):.2f} [{math.exp(yi - z * math.sqrt(vi)):.2f}, {math.exp(yi + z * math.sqrt(vi)):.2f}]"
        line = next(ln for ln in text.splitlines() if ln.startswith(study + " "))
        assert eff in line and line.rstrip().endswith(f"{w:.1f}%"), (line, eff, w)
    assert f"RR = {math.exp(r['beta']):.2f} [{math.exp(r['ci.lb']):.2f}, {math.exp(r['ci.ub']):.2f}], " \
           f"t = {r['zval']:.2f}, p = {r['pval']:.4f}" in text
    assert f"Q = {r['QE']:.2f} (df = {r['k'] - 1}, p = {r['QEp']:.4f}), I2 = {r['I2']:.1f}%, H2 = {r['H2']:.2f}" in text
    ci = case["confint"]["value"]["tau2"]
    p = case["predict"]["value"]
    assert (f"tau2 = {r['tau2']:.4f} [{ci[1]:.4f}, {ci[2]:.4f}], prediction interval "
            f"[{math.exp(p['pi.lb']):.2f}, {math.exp(p['pi.ub']):.2f}]") in text
    assert "(HKSJ)" in text
    excluded = next(ln for ln in text.splitlines() if ln.strip().startswith("excluded:"))
    assert "chen2012 (" in excluded and "mok2016 (total_response not reported)" in excluded


# ---------------------------------------------------------------------------------------
# bad input through the CLI: exit 2, one paragraph on stderr naming the bad value
# ---------------------------------------------------------------------------------------

BASE = ["tacrolimus_ln", "--outcome", "total_response"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["tacrolimus_ln", "--outcome", "total_responze"], ["total_responze", "unknown outcome"]),
        ([*BASE, "--method", "bayes"], ["'bayes'", "unknown method", "reml"]),
        ([*BASE, "--treat", "tacc"], ["'tacc'", "unknown treatment"]),
        ([*BASE, "--control", "ivcy,mmff"], ["'mmff'", "unknown treatment"]),
        ([*BASE, "--measure", "HR"], ["'HR'", "unknown measure"]),
        ([*BASE, "--format", "xml"], ["'xml'", "format"]),
        ([*BASE, "--subgroup", "regimn"], ["'regimn'", "subgroup column"]),
        ([*BASE, "--method", "mh", "--hksj"], ["'mh'", "Hartung-Knapp"]),
        ([*BASE, "--method", "peto"], ["Peto", "measure='OR'"]),
        (["tacrolimus_lm", "--outcome", "total_response"], ["'tacrolimus_lm'", "bundled dataset"]),
    ],
    ids=["outcome", "method", "treat", "control", "measure", "format", "subgroup", "hksj-mh",
         "peto-rr", "data"],
)
def test_bad_input_exits_2_with_one_paragraph(args, needles):
    r = invoke(*args)
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.stdout == ""
    assert one_paragraph(r.stderr), r.stderr
    assert r.stderr.startswith("error: ")
    for n in needles:
        assert n in r.stderr, (n, r.stderr)
    assert r.exception is None or isinstance(r.exception, SystemExit)


# ---------------------------------------------------------------------------------------
# 4. ``import bayesln; bayesln.frequentist``
# ---------------------------------------------------------------------------------------


def test_frequentist_is_an_attribute_of_the_package_and_lazy():
    # a fresh interpreter: in this process other tests have imported bayesln.frequentist
    code = (
        "import sys, bayesln\n"
        "assert 'bayesln.frequentist' not in sys.modules, 'import bayesln imported the engine'\n"
        "assert 'matplotlib' not in sys.modules\n"
        "f = bayesln.frequentist\n"
        "import bayesln.frequentist as g\n"
        "assert f is g is sys.modules['bayesln.frequentist']\n"
        "assert f.meta_analysis is bayesln.meta_analysis\n"
        "assert 'frequentist' in dir(bayesln)\n"
        "try:\n"
        "    bayesln.no_such_thing\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_thing' in str(e)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_frequentist_attribute_gives_working_engine():
    # reference: fixture tac_total_RR_MH_z (metafor rma.mh), through bayesln.frequentist.*
    case = CASES["tac_total_RR_MH_z"]
    res = bayesln.frequentist.meta_analysis(bundled_contrasts("tac_total"), "RR", "mh")
    close(res.fit.beta, case["result"]["beta"], "bayesln.frequentist.meta_analysis beta")
    np.testing.assert_allclose(res.studies["weight"], case["weights"]["value"], rtol=RTOL)


def test_predict_is_an_attribute_of_the_package_and_lazy():
    # as bayesln.frequentist above: reached from a plain `import bayesln`, imported on first use, without PyMC
    code = (
        "import sys, bayesln\n"
        "assert 'bayesln.predict' not in sys.modules\n"
        "p = bayesln.predict\n"
        "import bayesln.predict as q\n"
        "assert p is q is sys.modules['bayesln.predict']\n"
        "assert callable(p.predict) and p.Target is bayesln.Target\n"
        "assert 'predict' in dir(bayesln) and 'pymc' not in sys.modules\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
