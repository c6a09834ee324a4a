"""Every analysis spec shipped in models/ fits the bundled data with its own sampler
settings (no overrides) and passes the default diagnostics gate: R-hat <= 1.01, bulk and
tail ESS >= 400, no divergences, E-BFMI >= 0.3 (issue 4: "default fits on the bundled data,
each renal and adverse-event outcome, pass the diagnostics gate"; issue 5: the ordinal,
joint and network specs).

These are the fits a user gets from ``bayesln fit models/<spec>.toml``; the README's main
command is ``models/total_response.toml`` and is also run here as a subprocess, exactly as
written, so its exit code (0 = gate passed) is checked, not only the Python API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from bayesln.analysis import run_analysis
from bayesln.spec import load_spec

pytestmark = pytest.mark.slow

MODELS = Path(__file__).resolve().parents[1] / "models"
SPECS = sorted(p.stem for p in MODELS.glob("*.toml") if p.stem != "targets")


def test_every_outcome_of_the_bundled_data_has_a_spec():
    import bayesln

    td = bayesln.load_dataset("tacrolimus_ln")
    counted = set(td.outcomes.dropna(subset=["events", "n"])["outcome"])
    covered = set()
    for name in SPECS:
        d = load_spec(MODELS / f"{name}.toml").data
        covered |= {d.outcome} if d.outcome else set()
        covered |= set(d.outcomes or ())
    if "renal_response" in covered:  # the ordinal composite
        covered |= {"complete_response", "partial_response", "total_response"}
    # an outcome with counts in at least one TAC trial has a spec (efficacy or adverse event)
    with_tac = set()
    for outcome in counted:
        c = td.contrasts(outcome, treat="tac")
        if len(c):
            with_tac.add(outcome)
    assert with_tac <= covered, sorted(with_tac - covered)


@pytest.mark.parametrize("name", SPECS)
def test_shipped_spec_passes_the_gate(name):
    spec = load_spec(MODELS / f"{name}.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the status is asserted instead
        analysis = run_analysis(spec, progressbar=False)
    diag = analysis.result.diagnostics
    assert analysis.status == "ok", f"{name}: {diag.problems}"
    assert diag.divergences == 0
    if spec.targets:  # what `bayesln fit` writes as predictions.csv: every target, every level
        from bayesln.analysis import predictions_for_spec

        table = predictions_for_spec(analysis)
        assert set(table["target"]) == set(spec.targets)
        assert set(table["level"]) == {"population", "new_trial"}
        assert table["outside_data"].notna().any() or table["prior_driven"].any()


def test_readme_main_command_exits_zero(tmp_path):
    readme = (MODELS.parent / "README.md").read_text()
    line = readme.split("<!-- main-command -->", 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip()
    fit_cmd = line.split("&&")[-1].strip()
    assert fit_cmd == "bayesln fit models/total_response.toml --out runs", fit_cmd
    exe = Path(sys.executable).with_name("bayesln")
    args = [str(exe) if exe.exists() else "bayesln", *fit_cmd.split()[1:]]
    args[args.index("models/total_response.toml")] = str(MODELS / "total_response.toml")
    args[args.index("runs")] = str(tmp_path / "runs")
    proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=900,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = tmp_path / "runs" / "total_response"
    diag = json.loads((run / "diagnostics.json").read_text())
    assert diag["verdict"] == "pass" and diag["divergences"] == 0, diag
    assert "pooled" in proc.stdout.lower()
