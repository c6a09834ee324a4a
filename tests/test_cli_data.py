"""``bayesln data validate`` / ``bayesln data show``: exit codes (0 ok, 2 bad input),
every problem on stderr, no tracebacks, and the CSV output is valid input that
round-trips. Mostly through typer's CliRunner; one test runs the installed console
script in a subprocess.

Reference: the exit-code contract in ARCHITECTURE.md / README ("exit 0 when valid; 2
with every problem on stderr") and the bundled data loaded through the Python API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bayesln
from bayesln.cli import app

runner = CliRunner()

BAD = ("study,arm,treatment,outcome,events,n\n"
       "s1,tac,tac,total_response,2.5,10\n"  # line 2
       "s1,ivcy,ivcy,remission!,3,10\n"  # line 3: not an outcome label (users' own labels are fine)
       "s1,ivcy,ivcy,death,12,10\n")  # line 4


def invoke(*args):
    return runner.invoke(app, list(args))


def one_paragraph(text: str) -> bool:
    return text.strip() != "" and "\n\n" not in text.strip() and "Traceback" not in text


def test_validate_bundled_dataset():
    r = invoke("data", "validate", "tacrolimus_ln")
    assert r.exit_code == 0, r.stderr
    assert "16 studies" in r.stdout and "30 arms" in r.stdout
    assert r.stderr == ""


def test_validate_bundled_csv_file():
    path = bayesln.data.dataset_path("tacrolimus_ln") / "trials.csv"
    r = invoke("data", "validate", str(path))
    assert r.exit_code == 0, r.stderr


def test_show_csv_is_valid_input_and_round_trips(tmp_path):
    r = invoke("data", "show", "tacrolimus_ln", "--format", "csv")
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "trials.csv"
    out.write_text(r.stdout, encoding="utf-8")
    v = invoke("data", "validate", str(out))
    assert v.exit_code == 0, v.stderr
    again = bayesln.read_trials(out)
    assert again.equals(bayesln.load_dataset("tacrolimus_ln"))
    # and showing the written file gives the same CSV again
    r2 = invoke("data", "show", str(out), "--format", "csv")
    assert r2.exit_code == 0 and r2.stdout == r.stdout


def test_validate_bad_file_reports_every_problem(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD, encoding="utf-8")
    r = invoke("data", "validate", str(path))
    assert r.exit_code == 2
    assert r.stdout == ""
    assert "3 problems" in r.stderr
    for line, col in ((2, "events"), (3, "outcome"), (4, "events")):
        assert f"{path}, line {line}, column '{col}'" in r.stderr
    assert one_paragraph(r.stderr)


def test_validate_require_contrast(tmp_path):
    path = tmp_path / "single.csv"
    path.write_text("study,treatment,outcome,events,n\ns1,tac,death,0,10\n", encoding="utf-8")
    assert invoke("data", "validate", str(path)).exit_code == 0
    r = invoke("data", "validate", str(path), "--require-contrast")
    assert r.exit_code == 2 and "one arm" in r.stderr


def test_show_json_parses():
    r = invoke("data", "show", "tacrolimus_ln", "--format", "json")
    assert r.exit_code == 0, r.stderr
    recs = json.loads(r.stdout)
    td = bayesln.load_dataset("tacrolimus_ln")
    assert len(recs) == len(td.long())
    liu = [x for x in recs if x["study"] == "liu2015" and x["arm"] == "tac" and x["outcome"] == "total_response"]
    assert len(liu) == 1 and liu[0]["events"] == 151 and liu[0]["n"] == 181
    # blank stays blank (null), not zero
    chen = [x for x in recs if x["study"] == "chen2011"]
    assert chen and all(x["events"] is None and x["n"] is None and x["outcome"] is None for x in chen)


def test_show_table():
    r = invoke("data", "show", "tacrolimus_ln")
    assert r.exit_code == 0, r.stderr
    assert "amudalapalli2025" in r.stdout and "(none known)" in r.stdout


@pytest.mark.parametrize("command", ["show", "validate"])
def test_unknown_dataset_name(command):
    r = invoke("data", command, "tacrolimus_lm")
    assert r.exit_code == 2
    assert "tacrolimus_lm" in r.stderr
    assert one_paragraph(r.stderr)
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_show_bad_format():
    r = invoke("data", "show", "tacrolimus_ln", "--format", "xml")
    assert r.exit_code == 2 and one_paragraph(r.stderr)


def _installed_script() -> Path:
    exe = Path(sys.executable).parent / ("bayesln.exe" if os.name == "nt" else "bayesln")
    if exe.exists():
        return exe
    found = shutil.which("bayesln")
    assert found, "the bayesln console script is not installed"
    return Path(found)


def test_installed_console_script(tmp_path):
    script = _installed_script()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ok = subprocess.run([str(script), "data", "validate", "tacrolimus_ln"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "16 studies" in ok.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD, encoding="utf-8")
    res = subprocess.run([str(script), "data", "validate", str(bad)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stdout == ""
    assert "3 problems" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([str(script), "data", "show", "nosuchdata"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and one_paragraph(res.stderr)
