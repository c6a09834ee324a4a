"""``bayesln predict SPEC``: the spec path of the predict command (issues 6 and 8).

Given a SPEC, ``bayesln predict`` fits it first, as ``bayesln fit`` does: the common
options of the commands that fit (``--draws``, ``--tune``, ``--chains``, ``--seed``,
``--quiet``, ``--out DIR``), the same progress display, the same atomic run folder (made
by the same functions: byte-identical to ``bayesln fit``'s), and exit 1 on a failed
diagnostics gate unless ``--allow-failed-gate``. ``--pred-draws`` is the number of
posterior draws the predictions use (formerly ``--draws``, still accepted on a RUN with a
deprecation warning).

Also here (run-folder contract of issue 8): the summary of a run is recomputed from its
``idata.nc`` alone (plus the spec and data the file itself identifies) and matches
``summary.csv``; a core run folder with targets has its trace and predictions figures.

Fast tests (in process, no MCMC): option checks and the progress/sampler plumbing, with
``run_analysis`` replaced by a recorder. Slow tests: tiny fits (200 draws, 200 tuning
steps, 2 chains; gate tests 60/60) - the gate verdict of the main fit is not the point
(``--allow-failed-gate``); the gate tests force it with a spec whose gate cannot pass
or cannot fail.

Reference: README.md and ``bayesln predict --help`` (options, exit codes 0 / 1 / 2);
the run-folder layout in bayesln/runs.py.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import pymc  # noqa: F401  (PyMC's log handler binds to the real stderr, not CliRunner's)
from bayesln.cli import app

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SPEC = MODELS / "predict_total_response.toml"
NAME = "predict_total_response"
SEED = 20261122  # the seed in the spec
TINY = ["--draws", "200", "--tune", "200", "--chains", "2"]
GATE_TINY = ["--draws", "60", "--tune", "60", "--chains", "2"]

runner = CliRunner()


def allow_failed(run) -> list[str]:
    """--allow-failed-gate for a tiny run that failed its gate (these tests check the
    arithmetic and the files, not the trust: a failed run is refused without it)."""
    return [] if json.loads((Path(run) / "run.json").read_text())["status"] == "ok" else ["--allow-failed-gate"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_paragraph(text: str) -> bool:
    t = text.strip()
    return t != "" and "\n\n" not in t and "Traceback" not in t


def spec_with_gate(tmp_path: Path, gate: dict[str, float]) -> Path:
    """The shipped spec with another [gate] (targets come from models/targets.toml)."""
    text = SPEC.read_text(encoding="utf-8")
    assert "[gate]" not in text
    lines = "\n".join(f"{k} = {v}" for k, v in gate.items())
    path = tmp_path / "gate.toml"
    path.write_text(text + f"\n[gate]\n{lines}\n", encoding="utf-8")
    return path


STRICT = {"ess_bulk": 1e12}  # no fit passes
LENIENT = {"r_hat": 100.0, "ess_bulk": 0, "ess_tail": 0, "max_divergences": 1_000_000, "bfmi": 0}  # every fit passes


# =========================================================================== options (fast)
@pytest.mark.parametrize(
    "args,needles",
    [
        (["{spec}", "--pred-draws", "0"], ["--pred-draws", "positive"]),
        (["{spec}", "--tune", "-1"], ["--tune"]),
        (["{spec}", "--chains", "0"], ["--chains", "positive"]),
        (["{spec}", "--seed", "-3"], ["--seed"]),
        (["{spec}", "--out", "{tmp}/afile"], ["--out", "not a folder"]),
        (["{tmp}", "--tune", "10"], ["run folder", "--tune", "SPEC"]),
        (["{tmp}", "--chains", "2"], ["run folder", "--chains", "SPEC"]),
        (["{tmp}", "--out", "{tmp}/o"], ["run folder", "--out", "SPEC"]),
        (["{tmp}", "--draws", "10", "--pred-draws", "10"], ["run folder", "--pred-draws"]),
    ],
    ids=["pred-draws", "tune", "chains", "seed", "out-file", "run-tune", "run-chains", "run-out", "run-both-draws"],
)
def test_bad_options_exit_2_with_one_paragraph(tmp_path, monkeypatch, args, needles):
    """Refused before anything is fitted (``run_analysis`` must not be reached)."""
    import bayesln.analysis

    def no_fit(*a, **k):
        raise AssertionError("run_analysis reached")

    monkeypatch.setattr(bayesln.analysis, "run_analysis", no_fit)
    (tmp_path / "afile").write_text("x")
    r = invoke("predict", *[a.replace("{spec}", str(SPEC)).replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert one_paragraph(r.stderr), r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def test_draws_on_a_run_folder_is_the_deprecated_pred_draws(tmp_path):
    """Backward compatibility: ``predict RUN --draws N`` still sets the prediction draws,
    with a warning naming --pred-draws (here the folder is not a run: exit 2 after it)."""
    r = invoke("predict", tmp_path, "--draws", "10")
    assert r.exit_code == 2
    assert "deprecated" in r.stderr and "--pred-draws" in r.stderr
    assert "not a bayesln run folder" in r.stderr


class Recorded(Exception):
    pass


@pytest.fixture
def recorder(monkeypatch):
    """``bayesln.analysis.run_analysis`` replaced: records its keyword arguments, then stops
    the command (a ValueError -> exit 2) before any sampling."""
    import bayesln.analysis

    calls = []

    def record(spec, **kw):
        calls.append(kw)
        raise ValueError("recorded, not fitted")

    monkeypatch.setattr(bayesln.analysis, "run_analysis", record)
    return calls


@pytest.mark.parametrize("quiet", [False, True], ids=["progress", "quiet"])
def test_progress_display_and_sampler_options_as_bayesln_fit(tmp_path, recorder, quiet):
    """``predict SPEC`` hands the fit the same progress setting as ``bayesln fit`` (None:
    a progress display whenever stderr is a terminal; False with --quiet) and the same
    sampler overrides; ``--quiet`` also drops the "fitting ..." line."""
    opts = ["--draws", "123", "--tune", "45", "--chains", "3", "--seed", "9"] + (["--quiet"] if quiet else [])
    p = invoke("predict", SPEC, *opts)
    f = invoke("fit", SPEC, "--out", tmp_path / "runs", *opts)
    assert p.exit_code == 2 and f.exit_code == 2, (p.output, f.output)
    assert len(recorder) == 2
    pk, fk = recorder
    assert pk["progressbar"] is fk["progressbar"] is (False if quiet else None)
    assert {k: pk[k] for k in ("draws", "tune", "chains", "seed")} == {"draws": 123, "tune": 45, "chains": 3, "seed": 9}
    assert {k: fk[k] for k in ("draws", "tune", "chains", "seed")} == {k: pk[k] for k in ("draws", "tune", "chains", "seed")}
    assert ("fitting predict_total_response" in p.stderr) is (not quiet)
    assert not (tmp_path / "runs").exists()


def test_pred_draws_are_not_fit_draws(recorder):
    """--pred-draws is for the predictions only: the fit keeps the spec's draws."""
    r = invoke("predict", SPEC, "--pred-draws", "50", "--quiet")
    assert r.exit_code == 2
    assert recorder[0]["draws"] is None


def test_help_documents_the_options():
    r = invoke("predict", "--help")
    assert r.exit_code == 0
    for opt in ("--pred-draws", "--draws", "--tune", "--chains", "--seed", "--quiet", "--out", "--allow-failed-gate"):
        assert opt in r.stdout, opt
    assert "deprecat" in r.stdout


# =========================================================================== spec fits (slow)
@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """``predict SPEC --out`` (CSV to stdout) and, for comparison, ``bayesln fit`` of the
    same spec with the same settings into another folder."""
    base = tmp_path_factory.mktemp("predict_spec")
    out, fit_out = base / "from_predict", base / "from_fit"
    r = invoke("predict", SPEC, *TINY, "--out", out, "--format", "csv", "--allow-failed-gate")
    assert r.exit_code == 0, (r.stderr, r.exception)
    f = invoke("fit", SPEC, *TINY, "--out", fit_out, "--quiet", "--allow-failed-gate")
    assert f.exit_code == 0, (f.stderr, f.exception)
    return r, out / NAME, fit_out / NAME, out


RUN_FILES = [
    "idata.nc", "summary.csv", "summary.json", "diagnostics.json", "comparison.csv", "usage.csv",
    "study_effects.csv", "predictions.csv", "spec.json", "data.csv", "run.json",
    "figures/forest.png", "figures/forest.svg", "figures/comparison.png", "figures/comparison.svg",
    "figures/trace.png", "figures/trace.svg", "figures/predictions.png", "figures/predictions.svg",
]


@pytest.mark.slow
def test_predict_spec_succeeds_and_prints_the_spec_targets(predicted):
    r, run, _, _ = predicted
    printed = pd.read_csv(io.StringIO(r.stdout))
    spec_targets = {"asian_class_iii_iv", "non_asian_class_iii_iv", "asian_class_v", "paediatric", "cyc_refractory",
                    "maintenance_after_induction"}
    assert set(printed["target"]) == spec_targets
    assert {"population", "new_trial"} <= set(printed["level"])
    assert printed["median"].notna().any()
    # status lines on stderr (not --quiet), never in the CSV on stdout
    assert "fitting predict_total_response" in r.stderr
    assert f"run folder written to {run}" in r.stderr


@pytest.mark.slow
def test_predict_spec_out_writes_the_run_folder_bayesln_fit_writes(predicted):
    """Same functions, same files: the run folder of ``predict SPEC --out`` is the one
    ``bayesln fit`` writes (byte-identical summaries, predictions, spec and data)."""
    _, run, fit_run, out = predicted
    for f in RUN_FILES:
        assert (run / f).is_file() and (run / f).stat().st_size > 0, f
    info = json.loads((run / "run.json").read_text())
    assert set(RUN_FILES) <= set(info["files"])
    assert info["seed"] == SEED
    fit_info = json.loads((fit_run / "run.json").read_text())
    same = ("summary.csv", "summary.json", "study_effects.csv", "predictions.csv", "comparison.csv",
            "diagnostics.json", "spec.json", "data.csv", "usage.csv")
    # idata.nc and the figures embed their creation time, so only their hashes differ
    assert {k: v for k, v in info.items() if k not in ("timings_s", "sha256")} == \
        {k: v for k, v in fit_info.items() if k not in ("timings_s", "sha256")}
    assert {f: info["sha256"][f] for f in same} == {f: fit_info["sha256"][f] for f in same}
    for f in same:
        assert (run / f).read_bytes() == (fit_run / f).read_bytes(), f
    # written atomically: nothing else (no temporary folder) is left in --out
    assert [p.name for p in out.iterdir()] == [NAME]


@pytest.mark.slow
def test_printed_predictions_match_the_run_folder_and_predict_run(predicted):
    """What ``predict SPEC`` prints equals the predictions.csv of its run folder and what
    ``predict RUN`` recomputes from that folder (same fit, same seed)."""
    r, run, _, _ = predicted
    key = ["target", "quantity", "level"]
    printed = pd.read_csv(io.StringIO(r.stdout)).set_index(key).sort_index()
    stored = pd.read_csv(run / "predictions.csv").set_index(key).sort_index()
    again = invoke("predict", run, "--format", "csv", *allow_failed(run))
    assert again.exit_code == 0, again.stderr
    rerun = pd.read_csv(io.StringIO(again.stdout)).set_index(key).sort_index()
    for other in (stored, rerun):
        assert list(other.index) == list(printed.index)
        for col in ("median", "lower", "upper", "mean"):
            np.testing.assert_allclose(other[col].to_numpy(float), printed[col].to_numpy(float), rtol=1e-5, equal_nan=True)


@pytest.mark.slow
def test_pred_draws_subsample_the_posterior(predicted):
    """--pred-draws N uses N posterior draws (another number than all 400), the same on a
    run with the deprecated --draws."""
    _, run, _, _ = predicted
    allow = allow_failed(run)
    full = invoke("predict", run, "--target", "paediatric", "--format", "csv", *allow)
    sub = invoke("predict", run, "--target", "paediatric", "--format", "csv", "--pred-draws", "100", *allow)
    old = invoke("predict", run, "--target", "paediatric", "--format", "csv", "--draws", "100", *allow)
    assert full.exit_code == sub.exit_code == old.exit_code == 0
    assert "deprecated" in old.stderr and "deprecated" not in sub.stderr
    assert sub.stdout == old.stdout
    assert sub.stdout != full.stdout


@pytest.mark.slow
def test_core_run_folder_has_trace_and_predictions_figures(predicted):
    """Issue 8 'figures (PNG and SVG)': trace/rank plots of every run, the predictive
    distributions of the targets when the spec lists targets."""
    _, run, _, _ = predicted
    for stem in ("trace", "predictions", "forest", "comparison"):
        png, svg = run / "figures" / f"{stem}.png", run / "figures" / f"{stem}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        head = svg.read_text(encoding="utf-8", errors="replace")[:2000]
        assert "<svg" in head, svg


@pytest.mark.slow
def test_summary_is_recomputed_from_idata_nc_alone(predicted, tmp_path):
    """'Loading a run back reproduces the same summaries', not circularly: a folder holding
    the run's idata.nc and nothing else from the run - the spec and data are the ones the
    NetCDF itself identifies (its ``spec`` attribute; the bundled data whose fingerprint
    it stores), the stored summary is replaced by garbage - is loaded by the package
    (``load_run_result``: FitResult from the InferenceData) and its summary, study effects
    and gate table are recomputed; they equal the original summary.csv, study_effects.csv
    and diagnostics.json."""
    from bayesln import _arviz
    from bayesln.analysis import load_data_source, select_for_spec
    from bayesln.predict.command import load_run_result
    from bayesln.runs import folder_hashes
    from bayesln.spec import spec_from_dict

    _, run, _, _ = predicted
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copyfile(run / "idata.nc", alone / "idata.nc")
    idata = _arviz.from_netcdf(str(alone / "idata.nc"))
    spec = spec_from_dict(json.loads(idata.attrs["spec"]), label="idata.nc")
    sel = select_for_spec(load_data_source(spec.data_source()), spec)
    assert sel.fingerprint() == idata.attrs["data_fingerprint"]
    (alone / "spec.json").write_text(json.dumps(spec.canonical()), encoding="utf-8")
    (alone / "data.csv").write_text(sel.to_csv_text(), encoding="utf-8")
    (alone / "summary.csv").write_text("quantity,median\nnot the summary,0\n")
    (alone / "diagnostics.json").write_text("{}")
    (alone / "comparison.csv").write_text("source\n")
    # sealed with its own hashes (every read verifies them), as save_analysis does
    (alone / "run.json").write_text(json.dumps({"spec_hash": spec.hash(), "data_fingerprint": sel.fingerprint(),
                                                "sha256": folder_hashes(alone)}))

    result, _ = load_run_result(alone)
    recomputed = result.summary().reset_index()
    stored = pd.read_csv(run / "summary.csv")
    assert {"pooled OR", "tau", "predictive OR (new study)", "P(OR > 1)"} <= set(stored["quantity"])
    assert list(recomputed.columns) == list(stored.columns)
    assert list(recomputed["quantity"]) == list(stored["quantity"])
    # numerically, to the 6 significant digits summary.csv keeps ...
    for col in stored.select_dtypes("number").columns:
        np.testing.assert_allclose(recomputed[col].to_numpy(float), stored[col].to_numpy(float), rtol=5e-6,
                                   atol=1e-12, equal_nan=True, err_msg=col)
    # ... and written as the run folder writes it, byte for byte
    assert recomputed.to_csv(index=False, float_format="%.6g") == (run / "summary.csv").read_text(encoding="utf-8")

    effects = pd.read_csv(run / "study_effects.csv")
    again = result.study_effects()
    assert list(again.columns) == list(effects.columns) and len(again) == len(effects)
    for col in effects.select_dtypes("number").columns:
        np.testing.assert_allclose(again[col].to_numpy(float), effects[col].to_numpy(float), rtol=5e-6, atol=1e-12,
                                   equal_nan=True, err_msg=col)
    assert again.to_csv(index=False, float_format="%.6g") == (run / "study_effects.csv").read_text(encoding="utf-8")

    diag = json.loads((run / "diagnostics.json").read_text())
    assert ("pass" if result.status == "ok" else "fail") == diag["verdict"]
    params = pd.DataFrame(diag["parameters"]).set_index("parameter")
    table = result.diagnostics.table.set_index("parameter").loc[params.index]
    for col in ("r_hat", "ess_bulk", "ess_tail"):
        np.testing.assert_allclose(table[col].to_numpy(float), params[col].to_numpy(float), rtol=1e-9, err_msg=col)


# =========================================================================== gate (slow)
@pytest.mark.slow
def test_failed_gate_exits_1_and_still_prints_and_writes(tmp_path):
    """A fit that fails its gate: exit 1 with the reason, no predictions printed (a failed
    fit never feeds a prediction silently), the run folder still written (--out) with status
    failed_gate and the warning in every row of its predictions.csv; then `predict RUN` on
    that folder is refused the same way, and with --allow-failed-gate every output (CSV
    rows, JSON) carries the warning."""
    spec = spec_with_gate(tmp_path, STRICT)
    out = tmp_path / "runs"
    r = invoke("predict", spec, *GATE_TINY, "--target", "paediatric", "--format", "json", "--out", out, "--quiet")
    assert r.exit_code == 1, (r.exit_code, r.stderr, r.exception)
    assert "predictions refused: the fit failed its diagnostics gate" in r.stderr and "bulk ESS" in r.stderr
    assert "--allow-failed-gate" in r.stderr and r.stdout == ""
    assert json.loads((out / NAME / "run.json").read_text())["status"] == "failed_gate"
    stored = pd.read_csv(out / NAME / "predictions.csv")
    assert (stored["fit_status"] == "failed_gate").all() and stored["warning"].str.contains("failed its diagnostics").all()
    assert "fitting" not in r.stderr and "run folder written" not in r.stderr  # --quiet
    # the run folder: refused too, then allowed with the warning everywhere
    r = invoke("predict", out / NAME, "--target", "paediatric", "--format", "csv")
    assert r.exit_code == 1 and "predictions refused" in r.stderr and r.stdout == "", (r.exit_code, r.stderr)
    r = invoke("predict", out / NAME, "--target", "paediatric", "--format", "csv", "--allow-failed-gate")
    assert r.exit_code == 0, r.stderr
    rows = pd.read_csv(io.StringIO(r.stdout))
    assert (rows["fit_status"] == "failed_gate").all() and rows["warning"].str.startswith("WARNING").all()
    r = invoke("predict", out / NAME, "--target", "paediatric", "--format", "json", "--allow-failed-gate")
    doc = json.loads(r.stdout)
    assert doc["fit_status"] == "failed_gate" and doc["warnings"] and all(x["warning"] for x in doc["predictions"])


@pytest.mark.slow
def test_failed_gate_allowed_exits_0(tmp_path):
    spec = spec_with_gate(tmp_path, STRICT)
    r = invoke("predict", spec, *GATE_TINY, "--target", "paediatric", "--quiet", "--allow-failed-gate")
    assert r.exit_code == 0, (r.stderr, r.exception)
    assert "diagnostics gate failed" in r.stderr  # still said
    assert "WARNING: the fit failed its diagnostics gate" in r.stdout


@pytest.mark.slow
def test_passed_gate_exits_0(tmp_path):
    spec = spec_with_gate(tmp_path, LENIENT)
    r = invoke("predict", spec, *GATE_TINY, "--target", "paediatric", "--format", "json", "--quiet")
    assert r.exit_code == 0, (r.stderr, r.exception)
    assert json.loads(r.stdout)["fit_status"] == "ok"
    assert "gate failed" not in r.stderr


@pytest.mark.slow
def test_predict_run_with_evidence_shows_default_and_informed_priors(predicted, tmp_path):
    """--evidence external_ln: each target also under the evidence-informed priors
    (bayesln.predict.informed), beside the default; the default rows are the plain
    predictions; a bad bundle exits 2 naming the file."""
    _, run, _, _ = predicted
    allow = allow_failed(run)
    plain = invoke("predict", run, "--target", "non_asian_class_iii_iv", "--format", "csv", *allow)
    both = invoke("predict", run, "--target", "non_asian_class_iii_iv", "--format", "csv", "--evidence", "external_ln",
                  *allow)
    assert plain.exit_code == both.exit_code == 0, both.stderr
    t = pd.read_csv(io.StringIO(both.stdout))
    assert set(t["prior_set"]) == {"default", "evidence-informed"}
    key = ["quantity", "level"]
    default = t[t["prior_set"] == "default"].drop(columns="prior_set").set_index(key).sort_index()
    ref = pd.read_csv(io.StringIO(plain.stdout)).set_index(key).sort_index()
    np.testing.assert_allclose(default["median"].to_numpy(float), ref["median"].to_numpy(float), rtol=1e-9,
                               equal_nan=True)
    text = invoke("predict", run, "--target", "non_asian_class_iii_iv", "--evidence", "external_ln", *allow)
    assert text.exit_code == 0
    assert "Evidence-informed prior for asian_fraction" in text.stdout and "12/26" in text.stdout
    js = invoke("predict", run, "--target", "non_asian_class_iii_iv", "--format", "json", "--evidence", "external_ln",
                *allow)
    d = json.loads(js.stdout)
    assert d["evidence_informed"]["non_asian_class_iii_iv"]["priors"]["asian_fraction"]["prior"].startswith(
        "robust_normal(")
    bad = tmp_path / "bundle"
    bad.mkdir()
    (bad / "evidence.csv").write_text("study,arm\nx,y\n")
    (bad / "sources.csv").write_text("source_id\nx\n")
    r = invoke("predict", run, "--evidence", bad, *allow)
    assert r.exit_code == 2 and "bundle/evidence.csv" in r.stderr and "Traceback" not in r.stderr
