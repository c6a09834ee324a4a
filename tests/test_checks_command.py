"""``check_command`` on a run folder written by ``bayesln fit`` (run_analysis + save_analysis)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from bayesln.checks import check_command, run_checks
from bayesln.checks.command import CheckInputError

pytestmark = pytest.mark.slow

SPEC = Path(__file__).resolve().parents[1] / "models" / "total_response.toml"
# the run is a small fit that may fail its gate: the checks are asked for anyway (a failed
# run is refused without allow_failed_gate; tests/test_malformed_inputs.py tests that)
OPTS = dict(draws=300, tune=300, chains=2, tau_priors=["half_normal(1)"], d_priors=["normal(0, 10)"],
            allow_failed_gate=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from bayesln.analysis import run_analysis, save_analysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a = run_analysis(SPEC, draws=300, tune=300, chains=2, progressbar=False)
        return save_analysis(a, tmp_path_factory.mktemp("runs"), figures=False)


def test_fit_writes_published_and_recomputed_rows(run_dir):
    """comparison.csv of `bayesln fit` holds the published figures of the outcome with
    their recomputation (triple therapy: published 1.37 (1.21-1.56), reproduced)."""
    c = pd.read_csv(run_dir / "comparison.csv")
    assert {"published", "recomputed", "frequentist", "bayesian"} <= set(c["source"])
    tri = c[(c["subgroup"] == "triple") & (c["source"].isin(["published", "recomputed"]))]
    assert len(tri) == 2 and tri["reproduced"].all()
    assert tri["estimate"].round(2).tolist() == [1.37, 1.37]
    pub_all = c[(c["subgroup"] == "all") & (c["source"] == "published")].iloc[0]
    assert not pub_all["reproduced"] and pub_all["flag"] and "chen2011" in pub_all["reason"]


def test_check_command_table(run_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        text = check_command(str(run_dir), **OPTS)
    for section in ("Frequentist comparison", "Posterior predictive checks", "Leave-one-study-out",
                    "Influence", "Prior sensitivity", "Model comparison"):
        assert section in text
    assert "bundled dataset 'tacrolimus_ln'" in text
    assert "triple" in text and "1.37 (1.21-1.56)" in text
    assert "common effect" in text


def test_check_command_json_and_save(run_dir, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = json.loads(check_command(str(run_dir), fmt="json", **{**OPTS, "models": False}))
        rep = run_checks(run_dir, **{**OPTS, "sensitivity": False, "models": False, "comparison": False})
    assert out["outcome"] == "total_response" and out["info"]["seed"] == 20261122
    assert {"comparison", "ppc", "loo", "loo_summary", "influence", "sensitivity"} <= set(out)
    assert "models" not in out
    assert len(out["ppc"]) == 13  # arms of the six induction RCTs (one three-arm)
    assert {r["study"] for r in out["loo"]} == {r["study"] for r in out["influence"]} - {"(none)"}
    # every refit's gate is in its row, and the summary counts them: recounted here from the rows
    subgroups = {r["subgroup"]: r["reason"] for r in out["comparison"]
                 if r["source"] == "bayesian" and r["subgroup"] != "all"}
    infl = [r["refit_gate"] for r in out["influence"] if r["study"] != "(none)"]
    sens = [r["gate"] for r in out["sensitivity"] if r["changed"] != "reference" and "no refit" not in r["reason"]]
    verdicts = ["fail" if "diagnostics gate failed" in why else "pass" for why in subgroups.values()] + infl + sens
    assert set(verdicts) <= {"pass", "fail"} and len(infl) == 6 and len(subgroups) >= 2
    assert out["info"]["refits"]["total"] == len(verdicts)
    assert out["info"]["refits"]["failed"] == verdicts.count("fail")
    assert ("failed their diagnostics gate (" in " ".join(out["notes"])) == ("fail" in verdicts)
    folder = rep.save(tmp_path / "checks")
    written = {p.name for p in folder.iterdir()}
    assert {"ppc.csv", "loo.csv", "influence.csv", "checks.json", "ppc.png", "influence.png"} <= written


def test_check_command_rejects_bad_input(run_dir, tmp_path):
    with pytest.raises(CheckInputError, match="format"):
        check_command(str(run_dir), fmt="xml")
    with pytest.raises(CheckInputError, match="alpha"):
        check_command(str(run_dir), alpha=2.0)
    with pytest.raises(ValueError, match="not a bayesln run folder"):
        check_command(str(tmp_path))


def test_check_progress_is_one_labelled_line_per_refit_and_quiet_is_silent(run_dir, tmp_path):
    """Piped (not a terminal), `bayesln check` prints one line per refit, "refit i of n:
    label", numbered within each batch of known size (the six leave-one-out refits:
    "refit 1 of 6: leave out liu2015" ...); --quiet prints nothing on stderr. The small-study
    table equals bayesln.frequentist.small_study_effects on the run's trials (whose numbers
    are pinned to metafor in tests/test_frequentist_bias.py)."""
    import re

    from typer.testing import CliRunner

    from bayesln.cli import app
    from bayesln.data import read_trials
    from bayesln.frequentist import small_study_effects

    args = ["check", str(run_dir), "--draws", "150", "--tune", "150", "--chains", "2", "--no-models",
            "--allow-failed-gate", "--format", "json"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines and all(re.fullmatch(r"refit \d+( of \d+)?: .+", x) for x in lines), lines
    loo = [x for x in lines if ": leave out " in x]
    studies = ["liu2015", "bao2008", "zheng2022", "zhang2006_iv", "zhang_v_iv", "amudalapalli2025"]
    assert loo == [f"refit {i} of 6: leave out {s}" for i, s in enumerate(studies, start=1)]
    assert any(re.fullmatch(r"refit \d+: subgroup \w+", x) for x in lines)  # batch size not known in advance
    assert any(re.fullmatch(r"refit \d+ of \d+: prior .+", x) for x in lines)
    doc = json.loads(r.stdout)
    sse = pd.DataFrame(doc["small_study_effects"])
    con = read_trials(run_dir / "data.csv").contrasts("total_response", treat=("tac",))
    ref = small_study_effects(con.dropna(subset=["events_t", "n_t", "events_c", "n_c"]), "RR").to_dict()
    assert sse.loc[0, "pvalue"] == pytest.approx(ref["egger"]["pvalue"], rel=1e-9)
    assert sse.loc[1, "statistic"] == pytest.approx(ref["begg"]["tau"], rel=1e-9)
    assert sse.loc[2, "estimate"] == pytest.approx(ref["trimfill"]["estimate"], rel=1e-9)
    assert "Cochrane Handbook" in sse.loc[0, "caution"]  # six trials
    q = CliRunner().invoke(app, [*args, "--quiet", "--no-sensitivity"])
    assert q.exit_code == 0 and q.stderr == ""
