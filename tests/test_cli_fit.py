"""``bayesln fit`` / ``bayesln summarize``: bad specs and bad data exit 2 with one
paragraph naming the file and the key (or line); a fit writes a complete run folder whose
numbers ``summarize`` reproduces; runs are tied to their spec and data; the same spec and
seed give byte-identical summaries.

Bad-input cases go through typer's CliRunner (in process) and a few through the
installed console script (a real subprocess). The MCMC tests use tiny fits (200 draws,
200 tuning steps, 2 chains, ``--allow-failed-gate``: the diagnostics gate is not the
point here) and are marked ``slow``.

Reference: the exit-code contract (0 ok, 1 failed gate, 2 bad input) in cli.py and
ARCHITECTURE.md; the run-folder layout documented in bayesln/runs.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import bayesln
import pymc  # noqa: F401  (PyMC's log handler binds to the real stderr, not CliRunner's)
from bayesln.analysis import load_run
from bayesln.cli import app
from bayesln.runs import RunError
from bayesln.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "models" / "total_response.toml"
BASE = SPEC.read_text(encoding="utf-8")
TINY = ["--draws", "200", "--tune", "200", "--chains", "2"]
SEED = 20261122  # the seed in models/total_response.toml

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_paragraph(text: str) -> bool:
    t = text.strip()
    return t != "" and "\n\n" not in t and "Traceback" not in t


def installed_script() -> Path:
    exe = Path(sys.executable).parent / ("bayesln.exe" if os.name == "nt" else "bayesln")
    if exe.exists():
        return exe
    found = shutil.which("bayesln")
    assert found, "the bayesln console script is not installed"
    return Path(found)


def no_runs_in(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


# =========================================================================== bad input
SEMICOLON = "study;arm;treatment;outcome;events;n\ns1;tac;tac;total_response;3;10\ns1;ivcy;ivcy;total_response;2;10\n"
EVENTS_GT_N = ("study,arm,treatment,outcome,events,n\n"
               "s1,tac,tac,total_response,13,10\n"  # line 2
               "s1,ivcy,ivcy,total_response,2,10\n")

#: id -> (spec text or None for models/total_response.toml, extra arguments, substrings
#: the message must contain). "{spec}", "{csv}" and "{out}" are filled in per test.
BAD_CASES = {
    "unknown-key-top-level": ("foo = 1\n" + BASE, [],
                              ["{spec}", "unknown key 'foo'", "top level", "allowed keys", "analysis", "sampler"]),
    "unknown-key-in-section": (BASE.replace("chains = 4", "chains = 4\nthin = 2"), [],
                               ["{spec}", "unknown key 'thin'", "[sampler]", "allowed keys", "draws", "target_accept"]),
    "unknown-key-in-priors": (BASE.replace("[priors]", '[priors]\nrho = "normal(0, 1)"'), [],
                              ["{spec}", "unknown key 'rho'", "[priors]", "allowed keys", "tau"]),
    "wrong-type": (BASE.replace("draws = 2000", 'draws = "many"'), [], ["{spec}", "sampler.draws", "'many'", "integer"]),
    "unknown-outcome": (BASE.replace('outcome = "total_response"', 'outcome = "remission"'), [],
                        ["{spec}", "data.outcome", "'remission'", "allowed", "complete_response", "death"]),
    "unknown-effect-modifier": (BASE.replace('baseline = "independent"', 'baseline = "independent"\neffect_modifiers = ["shoe_size"]'), [],
                                ["{spec}", "model.effect_modifiers", "'shoe_size'", "asian_fraction", "regimen"]),
    "unknown-treatment": (BASE.replace('treat = ["tac"]', 'treat = ["tacx"]'), [],
                          ["{spec}", "model.treat", "'tacx'", "ivcy", "tac"]),
    "one-unknown-treatment": (BASE.replace('treat = ["tac"]', 'treat = ["tac", "tacx"]'), [],
                              ["{spec}", "model.treat", "'tacx'"]),
    "negative-draws": (None, ["--draws", "-5"], ["--draws", "-5", "positive"]),
    "negative-tune": (None, ["--tune", "-1"], ["--tune", "-1"]),
    "negative-seed": (None, ["--seed", "-3"], ["--seed", "-3"]),
    "too-many-draws": (None, ["--draws", "2000000"], ["--draws", "1,000,000"]),
    "zero-chains-in-spec": (BASE.replace("chains = 4", "chains = 0"), [], ["{spec}", "sampler.chains", "1"]),
    "missing-spec": ("MISSING", [], ["{spec}", "not found"]),
    "invalid-toml": (BASE + "\n[sampler\n", [], ["{spec}", "not valid TOML", "line"]),
    "semicolon-csv": (None, ["--data", "{csv}"], ["{csv}", "line 1", "semicolon"]),
    "events-exceed-n": (None, ["--data", "{csv}"], ["{csv}", "line 2", "events", "exceed"]),
    "missing-csv": (None, ["--data", "{out}/nope.csv"], ["--data", "nope.csv"]),
    "unknown-dataset": (None, ["--data", "no_such_dataset"], ["--data", "'no_such_dataset'", "tacrolimus_ln"]),
    "spec-source-unknown": (BASE.replace('source = "tacrolimus_ln"', 'source = "nope.csv"'), [],
                            ["{spec}", "data.source", "nope.csv"]),
    "prior-bad-parameter": (BASE.replace('tau = "half_normal(0.5)"', 'tau = "half_normal(-1)"'), [],
                            ["{spec}", "priors.tau", "half_normal(-1)", "> 0"]),
    "prior-unknown-family": (BASE.replace('tau = "half_normal(0.5)"', 'tau = "gaussian(0,1)"'), [],
                             ["{spec}", "priors.tau", "'gaussian'", "half_normal", "student_t"]),
    "name-escapes-out": (None, ["--name", "../x"], ["--name", "'../x'", "--out"]),
    "name-with-slash": (None, ["--name", "a/b"], ["--name", "'a/b'"]),
    "unknown-phase": (BASE.replace('phases = ["induction"]', 'phases = ["remission"]'), [],
                      ["{spec}", "data.phases", "'remission'", "induction", "maintenance"]),
    "unknown-study": (BASE.replace('designs = ["rct"]', 'designs = ["rct"]\nexclude_studies = ["nobody2020"]'), [],
                      ["{spec}", "data", "'nobody2020'", "liu2015"]),
    "unknown-backend": (BASE.replace("seed = 20261122", 'seed = 20261122\nbackend = "stan"'), [],
                        ["{spec}", "sampler.backend", "'stan'", "nutpie"]),
}


def _materialise(case: str, tmp_path: Path):
    text, extra, needles = BAD_CASES[case]
    out = tmp_path / "runs"
    csv = tmp_path / "trials.csv"
    if case == "semicolon-csv":
        csv.write_text(SEMICOLON, encoding="utf-8")
    elif case == "events-exceed-n":
        csv.write_text(EVENTS_GT_N, encoding="utf-8")
    if text is None:
        spec = SPEC
    elif text == "MISSING":
        spec = tmp_path / "nope.toml"
    else:
        spec = tmp_path / f"{case}.toml"
        spec.write_text(text, encoding="utf-8")
    fill = {"spec": str(spec), "csv": str(csv), "out": str(out)}
    extra = [e.format(**fill) for e in extra]
    needles = [n.format(**fill) for n in needles]
    # tiny sampler settings so that a regression (a fit that should not start) stays cheap
    given = set(extra)
    args = ["fit", str(spec), "--out", str(out), "--quiet"]
    for flag, v in (("--draws", "5"), ("--tune", "5"), ("--chains", "1")):
        if flag not in given:
            args += [flag, v]
    return args + extra, needles, out


def test_at_least_twelve_bad_input_cases():
    assert len(BAD_CASES) >= 12


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_with_one_paragraph(tmp_path, case):
    args, needles, out = _materialise(case, tmp_path)
    r = invoke(*args)
    assert r.exit_code == 2, (r.exit_code, r.stderr, r.exception)
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), r.exception
    err = r.stderr
    assert err.startswith("error: "), err
    assert one_paragraph(err), err
    for n in needles:
        assert n in err, (n, err)
    assert r.stdout == ""
    assert no_runs_in(out), list(out.iterdir())


@pytest.mark.parametrize("case", ["unknown-key-in-section", "events-exceed-n", "name-escapes-out", "prior-unknown-family"])
def test_bad_input_through_the_console_script(tmp_path, case):
    """The installed ``bayesln`` entry point, in a subprocess: exit 2, one paragraph on
    stderr, nothing on stdout, no traceback, no run folder."""
    args, needles, out = _materialise(case, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([str(installed_script()), *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    assert one_paragraph(res.stderr), res.stderr
    for n in needles:
        assert n in res.stderr, (n, res.stderr)
    assert no_runs_in(out)


def test_out_must_be_a_folder(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = invoke("fit", SPEC, "--out", f, "--draws", "5", "--tune", "5", "--chains", "1", "--quiet")
    assert r.exit_code == 2 and one_paragraph(r.stderr) and "--out" in r.stderr


def test_summarize_bad_input(tmp_path):
    r = invoke("summarize", tmp_path / "nothing-here")
    assert r.exit_code == 2 and one_paragraph(r.stderr) and "no such run folder" in r.stderr
    (tmp_path / "x").mkdir()
    r = invoke("summarize", tmp_path / "x", "--format", "xml")
    assert r.exit_code == 2 and one_paragraph(r.stderr) and "--format" in r.stderr


# =========================================================================== run folders
EXPECTED_FILES = [
    "idata.nc", "summary.csv", "summary.json", "diagnostics.json", "comparison.csv", "usage.csv",
    "study_effects.csv", "spec.json", "data.csv", "run.json",
    "figures/forest.png", "figures/forest.svg", "figures/comparison.png", "figures/comparison.svg",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One fit through the console script (subprocess), then in process: the same fit on
    ``--data tacrolimus_ln`` and on ``--data <the bundled data written as CSV>``, and one
    with another seed. Returns {label: run folder} and the CLI results."""
    out = tmp_path_factory.mktemp("runs")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    main = subprocess.run([str(installed_script()), "fit", str(SPEC), "--out", str(out), *TINY, "--allow-failed-gate"],
                          cwd=out, env=env, capture_output=True, text=True, timeout=900)
    assert main.returncode == 0, main.stderr
    csv = out / "trials.csv"
    shown = invoke("data", "show", "tacrolimus_ln", "--format", "csv")
    assert shown.exit_code == 0, shown.stderr
    csv.write_text(shown.stdout, encoding="utf-8")
    results = {"main": main}
    for label, extra in (("by_name", ["--data", "tacrolimus_ln"]), ("by_csv", ["--data", str(csv)]),
                         ("other_seed", ["--seed", "7"])):
        r = invoke("fit", SPEC, "--out", out, "--name", label, *TINY, "--allow-failed-gate", *extra)
        assert r.exit_code == 0, (r.stderr, r.exception)
        results[label] = r
    folders = {"main": out / "total_response", **{k: out / k for k in ("by_name", "by_csv", "other_seed")}}
    return folders, results, out


@pytest.mark.slow
def test_run_folder_has_every_file(runs):
    folders, results, out = runs
    run = folders["main"]
    for f in EXPECTED_FILES:
        assert (run / f).is_file(), f
        assert (run / f).stat().st_size > 0, f
    info = json.loads((run / "run.json").read_text())
    assert set(EXPECTED_FILES) <= set(info["files"])
    assert info["status"] in ("ok", "failed_gate")
    assert info["seed"] == SEED
    # nothing but the run folders (and the CSV written for --data) is left in --out
    assert sorted(p.name for p in out.iterdir()) == sorted(["total_response", "by_name", "by_csv", "other_seed", "trials.csv"])
    assert f"results written to {run}" in results["main"].stdout


@pytest.mark.slow
def test_diagnostics_per_parameter_and_verdict(runs):
    run = runs[0]["main"]
    diag = json.loads((run / "diagnostics.json").read_text())
    assert diag["verdict"] in ("pass", "fail")
    params = pd.DataFrame(diag["parameters"])
    assert {"parameter", "r_hat", "ess_bulk", "ess_tail", "ok"} <= set(params.columns)
    assert {"d", "tau"} <= set(params["parameter"])
    assert params[["r_hat", "ess_bulk", "ess_tail"]].notna().all().all()
    assert (params["r_hat"] > 0.9).all() and (params["ess_bulk"] > 0).all()
    # the chains asked for, plus those the automatic retry added (each batch recorded)
    more = [r for r in diag["retries"] if r["kind"] == "more_chains"]
    assert diag["chains"] == 2 * (1 + len(more)) and diag["draws_per_chain"] == 200
    # the verdict follows the table: a parameter outside the thresholds fails the gate
    th = diag["thresholds"]
    bad = ((params["r_hat"] > th["r_hat_max"]) | (params["ess_bulk"] < th["ess_bulk_min"])
           | (params["ess_tail"] < th["ess_tail_min"]))
    assert (bad == ~params["ok"].astype(bool)).all()
    if bad.any() or diag["divergences"] > th["divergences_max"]:
        assert diag["verdict"] == "fail" and diag["problems"]
    status = json.loads((run / "run.json").read_text())["status"]
    assert (status == "ok") == (diag["verdict"] == "pass")


@pytest.mark.slow
def test_idata_attrs_hold_spec_hash_fingerprint_versions_seed(runs):
    from bayesln import _arviz
    from bayesln.analysis import select_for_spec

    run = runs[0]["main"]
    idata = _arviz.from_netcdf(str(run / "idata.nc"))
    attrs = dict(idata.attrs)
    spec = load_spec(SPEC).with_overrides(draws=200, tune=200, chains=2)
    assert json.loads(attrs["spec"]) == spec.canonical() == json.loads((run / "spec.json").read_text())
    assert attrs["spec_hash"] == spec.hash() == json.loads((run / "run.json").read_text())["spec_hash"]
    td = bayesln.load_dataset("tacrolimus_ln")
    fp = select_for_spec(td, spec).fingerprint()
    assert attrs["data_fingerprint"] == fp == json.loads((run / "run.json").read_text())["data_fingerprint"]
    versions = json.loads(attrs["bayesln_versions"])
    for pkg in ("bayesln", "pymc", "arviz", "numpy"):
        assert versions[pkg], pkg
    assert int(attrs["seed"]) == SEED
    # the draws are the ones asked for, plus the chains the automatic retry added (recorded)
    more = [r for r in json.loads((run / "diagnostics.json").read_text())["retries"] if r["kind"] == "more_chains"]
    assert idata.posterior.sizes["chain"] == 2 * (1 + len(more)) and idata.posterior.sizes["draw"] == 200
    # data.csv is the data the run used: it reads back to the same fingerprint
    back = bayesln.read_trials(run / "data.csv")
    assert back.fingerprint() == fp


@pytest.mark.slow
def test_summarize_reproduces_summary_csv(runs):
    run = runs[0]["main"]
    stored = pd.read_csv(run / "summary.csv")
    r = invoke("summarize", run, "--format", "csv")
    assert r.exit_code == 0, r.stderr
    printed = pd.read_csv(io.StringIO(r.stdout))
    pd.testing.assert_frame_equal(printed, stored)
    r = invoke("summarize", run, "--format", "json")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == json.loads((run / "summary.json").read_text())
    r = invoke("summarize", run)
    assert r.exit_code == 0
    row = stored.set_index("quantity").loc["pooled OR"]
    assert f"{row['median']:.2f} (q2.5 {row['q2.5']:.2f}, q97.5 {row['q97.5']:.2f})" in r.stdout
    diag = json.loads((run / "diagnostics.json").read_text())
    assert f"diagnostics gate: {diag['verdict']}" in r.stdout


@pytest.mark.slow
def test_load_run_refuses_other_data_and_other_spec(runs):
    run = runs[0]["main"]
    spec = load_spec(SPEC).with_overrides(draws=200, tune=200, chains=2)
    # the run's own spec and data are accepted
    ok = load_run(run, spec=spec, data="tacrolimus_ln")
    assert ok.spec.hash() == spec.hash()
    assert ok.idata.posterior.sizes["draw"] == 200
    # one count of the analysed outcome changed
    long = bayesln.load_dataset("tacrolimus_ln").long()
    row = (long["study"] == "amudalapalli2025") & (long["arm"] == "tac") & (long["outcome"] == "total_response")
    assert row.sum() == 1
    long.loc[row, "events"] = long.loc[row, "events"] - 1
    modified = bayesln.read_trials(long)
    with pytest.raises(RunError, match="different data") as ei:
        load_run(run, data=modified)
    assert str(run) in str(ei.value) and "bayesln fit" in str(ei.value)
    # another spec, and the same spec with other sampler settings
    with pytest.raises(RunError, match="different spec") as ei:
        load_run(run, spec=ROOT / "models" / "complete_response.toml")
    assert str(run) in str(ei.value)
    with pytest.raises(RunError, match="different spec"):
        load_run(run, spec=spec.with_overrides(seed=1))


@pytest.mark.slow
def test_data_by_name_and_by_csv_give_the_same_fingerprint(runs):
    folders = runs[0]
    fps = {k: json.loads((folders[k] / "run.json").read_text())["data_fingerprint"] for k in ("main", "by_name", "by_csv")}
    assert len(set(fps.values())) == 1, fps
    # and the CSV run's data is the bundled data
    from bayesln import _arviz

    idata = _arviz.from_netcdf(str(folders["by_csv"] / "idata.nc"))
    assert idata.attrs["data_fingerprint"] == fps["main"]


@pytest.mark.slow
def test_same_spec_and_seed_give_byte_identical_summaries(runs):
    """The console-script run (fresh process) and the in-process runs with the same spec,
    seed and data write identical summary.csv files; another seed does not."""
    folders = runs[0]
    main = (folders["main"] / "summary.csv").read_bytes()
    assert (folders["by_name"] / "summary.csv").read_bytes() == main
    assert (folders["by_csv"] / "summary.csv").read_bytes() == main
    assert (folders["by_name"] / "study_effects.csv").read_bytes() == (folders["main"] / "study_effects.csv").read_bytes()
    other = (folders["other_seed"] / "summary.csv").read_bytes()
    assert other != main
    assert json.loads((folders["other_seed"] / "run.json").read_text())["seed"] == 7


@pytest.mark.slow
def test_failed_gate_exits_1_unless_allowed(tmp_path, runs):
    """A fit far too short to pass the gate: exit 1 with a warning; the run folder is
    still written (status failed_gate) so it can be inspected."""
    out = tmp_path / "runs"
    r = invoke("fit", SPEC, "--out", out, "--draws", "30", "--tune", "30", "--chains", "1", "--quiet")
    assert r.exit_code == 1, (r.stderr, r.exception)
    assert "diagnostics gate failed" in r.stderr
    info = json.loads((out / "total_response" / "run.json").read_text())
    assert info["status"] == "failed_gate"


@pytest.mark.parametrize("args, needle", [
    (["fit", "--bogus", "x.toml"], "No such option: --bogus"),
    (["fit", "--draws", "abc", "x.toml"], "'--draws'"),
    (["fit"], "Missing argument"),
    (["nosuch"], "No such command 'nosuch'"),
])
def test_usage_errors_through_the_console_script_are_one_paragraph(tmp_path, args, needle):
    """Errors the argument parser finds (click's, normally drawn in a box) are reported like
    every other bad input: exit 2, one paragraph naming the command and the option."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([str(installed_script()), *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    assert one_paragraph(res.stderr) and res.stderr.startswith("error: bayesln") and needle in res.stderr, res.stderr
    assert "╭" not in res.stderr and "Traceback" not in res.stderr
