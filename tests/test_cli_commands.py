"""``bayesln fit`` on the ordinal / joint / network specs, ``bayesln check RUN`` and
``bayesln predict RUN|SPEC``: exit codes, run-folder contents, and that what the
commands print is what the Python API computes.

Bad input (fast, in process) must exit 2 with one paragraph. The MCMC tests use tiny fits
(100-200 draws, 2 chains, ``--allow-failed-gate``: the gate is not the point here) and
are marked ``slow``.

Reference: the command-line contract of issues 5-8 (family specs selectable from
``models/``; ``bayesln check RUN [--format table|json]``; ``bayesln predict RUN
[--target NAME] [--format table|csv|json]`` with one JSON record per target and
quantity), the exit codes documented in README.md (0 ok, 1 failed gate, 2 bad input).
"""

from __future__ import annotations

import io

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import pymc  # noqa: F401  (PyMC's log handler binds to the real stderr, not CliRunner's)
from bayesln.cli import app

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
TINY = ["--draws", "150", "--tune", "150", "--chains", "2", "--quiet", "--allow-failed-gate"]

runner = CliRunner()


def allow_failed(run) -> list[str]:
    """--allow-failed-gate for a tiny run that failed its gate (these tests check the
    commands' arithmetic and files, not trust: a failed run is refused without it)."""
    return [] if json.loads((Path(run) / "run.json").read_text())["status"] == "ok" else ["--allow-failed-gate"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_paragraph(text: str) -> bool:
    t = text.strip()
    return t != "" and "\n\n" not in t and "Traceback" not in t


# =========================================================================== bad input (fast)
@pytest.mark.parametrize(
    "args,needles",
    [
        (["check", "{tmp}/nope"], ["no such run folder"]),
        (["check", "{tmp}", "--format", "xml"], ["--format", "table or json"]),
        (["check", "{tmp}", "--draws", "0"], ["--draws", "positive"]),
        (["check", "{tmp}"], ["not a bayesln run folder"]),
        (["predict", "{tmp}/nope"], ["nope"]),
        (["predict", str(MODELS / "predict_total_response.toml"), "--format", "xml"], ["--format"]),
        (["predict", str(MODELS / "predict_total_response.toml"), "--ci", "1.5"], ["--ci", "(0, 1)"]),
        (["predict", str(MODELS / "predict_total_response.toml"), "--draws", "0"], ["--draws", "positive"]),
        (["predict", str(MODELS / "predict_total_response.toml"), "--target", "martians"], ["martians", "paediatric"]),
        (["frequentist", "tacrolimus_ln", "--outcome", "total_response", "--phase", "remission"], ["remission"]),
    ],
    ids=["check-missing-run", "check-format", "check-draws", "check-not-a-run", "predict-missing",
         "predict-format", "predict-ci", "predict-draws", "predict-unknown-target", "frequentist-phase"],
)
def test_bad_input_exits_2_with_one_paragraph(tmp_path, args, needles):
    r = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 2, (r.exit_code, r.output)
    msg = r.stderr if r.stderr else r.output
    assert one_paragraph(msg), msg
    for n in needles:
        assert n in msg, (n, msg)


# =========================================================================== family fits (slow)
FAMILY_FILES = {
    "ordinal_response": ["arm_probabilities.csv", "summary.csv", "usage.csv", "idata.nc", "figures/trace.png"],
    "joint_efficacy_safety": ["correlation.csv", "summary.csv", "usage.csv", "idata.nc", "figures/trace.png"],
    "network_total_response": ["relative_effects.csv", "rank_probabilities.csv", "node_split.csv",
                               "node_split_not_splittable.csv", "summary.csv", "usage.csv", "idata.nc"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILY_FILES))
def test_family_spec_fits_from_the_command_line(tmp_path, name):
    """Issue 5: 'all of it selectable from an analysis spec'. The run folder holds the
    family's tables, ``summarize`` reads it back, ``check`` refuses it with a clear message
    (it needs a core-model run) and ``predict`` reads it (every family predicts)."""
    r = invoke("fit", MODELS / f"{name}.toml", "--out", tmp_path, *TINY)
    assert r.exit_code == 0, r.output
    run = tmp_path / name
    for f in FAMILY_FILES[name] + ["comparison.csv", "diagnostics.json", "run.json", "spec.json"]:
        assert (run / f).is_file(), f
    summary = pd.read_csv(run / "summary.csv")
    s = invoke("summarize", run)
    assert s.exit_code == 0 and summary["quantity"].iloc[0] in s.output
    usage = pd.read_csv(run / "usage.csv")
    assert usage["study"].nunique() >= 5  # which studies informed the fit, excluded ones with a reason
    if name == "ordinal_response":
        probs = pd.read_csv(run / "arm_probabilities.csv")
        assert {"P(CR)", "P(CR or PR)"} <= set(probs["quantity"])
    r2 = invoke("check", run)
    assert r2.exit_code == 2 and "core" in (r2.stderr or r2.output), r2.output
    if name == "ordinal_response":  # its spec lists targets: the fit wrote its predictions
        assert (run / "predictions.csv").is_file()
    r3 = invoke("predict", run, "--target", "non_asian_class_iii_iv", "--format", "csv", *allow_failed(run))
    assert r3.exit_code == 0, r3.output
    outcomes = set(pd.read_csv(io.StringIO(r3.stdout))["outcome"])
    expected = {"ordinal_response": {"complete_response", "partial_response", "total_response"},
                "joint_efficacy_safety": {"total_response", "severe_infection", "total_response~severe_infection"},
                "network_total_response": {"total_response", "total_response:tac_duo", "total_response:ivcy"}}[name]
    assert expected <= outcomes, outcomes


# =========================================================================== check / predict (slow)
@pytest.fixture(scope="module")
def predict_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    r = invoke("fit", MODELS / "predict_total_response.toml", "--out", out, "--draws", "200", "--tune", "200",
               "--chains", "2", "--quiet", "--allow-failed-gate")
    assert r.exit_code == 0, r.output
    return out / "predict_total_response"


@pytest.mark.slow
def test_fit_with_targets_writes_predictions_and_predict_reproduces_them(predict_run):
    """``bayesln fit`` writes predictions.csv for the spec's targets; ``bayesln predict RUN``
    recomputes the same numbers with the spec's seed (reproducible with a seed)."""
    written = pd.read_csv(predict_run / "predictions.csv")
    assert set(written["target"]) >= {"non_asian_class_iii_iv", "asian_class_iii_iv", "paediatric"}
    r = invoke("predict", predict_run, "--format", "csv", *allow_failed(predict_run))
    assert r.exit_code == 0, r.output
    from io import StringIO

    again = pd.read_csv(StringIO(r.stdout))
    key = ["target", "quantity", "level"]
    a = written.set_index(key).sort_index()["median"]
    b = again.set_index(key).sort_index()["median"]
    pd.testing.assert_series_equal(a, b.loc[a.index], check_exact=False, rtol=1e-4)


@pytest.mark.slow
def test_predict_json_has_one_record_per_target_and_quantity(predict_run):
    r = invoke("predict", predict_run, "--target", "non_asian_class_iii_iv", "--format", "json", *allow_failed(predict_run))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    recs = doc["predictions"]
    assert {x["target"] for x in recs} == {"non_asian_class_iii_iv"}
    keys = [(x["quantity"], x["level"]) for x in recs]
    assert len(keys) == len(set(keys))
    for x in recs:
        assert {"target", "quantity", "median", "lower", "upper"} <= set(x)
    # the extrapolation report flags ethnicity as outside the data
    report = json.dumps(doc["extrapolation"])
    assert "asian_fraction" in report
    t = invoke("predict", predict_run, "--target", "non_asian_class_iii_iv", *allow_failed(predict_run))
    assert "DRIVEN BY THE PRIOR" in t.stdout or "prior" in t.stdout.lower()


@pytest.mark.slow
def test_check_prints_the_comparison_and_saves_tables(predict_run, tmp_path):
    """``bayesln check RUN --format json`` holds the comparison table with the published
    triple-therapy total-response RR 1.37 (1.21-1.56) (Kraaij et al., bundled
    published_pooled.csv) and a Bayesian RR whose interval overlaps it."""
    r = invoke("check", predict_run, "--format", "json", "--draws", "150", "--tune", "150", "--chains", "2",
               "--no-sensitivity", "--no-models", "--out", tmp_path / "checks", "--quiet", *allow_failed(predict_run))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    comp = pd.DataFrame(doc["comparison"])
    tri = comp[(comp["subgroup"] == "triple") & (comp["measure"] == "RR")]
    pub = tri[tri["source"] == "published"].iloc[0]
    assert (round(pub["estimate"], 2), round(pub["ci_low"], 2), round(pub["ci_high"], 2)) == (1.37, 1.21, 1.56)
    bay = tri[tri["source"] == "bayesian"].iloc[0]
    assert bay["ci_low"] < pub["ci_high"] and bay["ci_high"] > pub["ci_low"]
    assert (tmp_path / "checks" / "comparison.csv").is_file() and (tmp_path / "checks" / "ppc.csv").is_file()
    assert np.isfinite(pd.read_csv(tmp_path / "checks" / "loo.csv").select_dtypes("number").to_numpy(dtype=float)).any()
