"""Your own trials: any binary outcome and any treatment labels, the long and the wide
2x2 layouts, and the one-line fit.

Reference: the BCG vaccine trials as metafor ships them (``dat.bcg``; REML log RR -0.7145,
tau^2 0.3132, pinned with the rest of metafor's output in
``validation/fixtures/metafor_reference.json``, case ``bcg_RR_REML_z``). The same numbers
must come out of a long file with the user's own labels ("BCG", "control", outcome "tb"),
of the wide layout (``study, events_t, n_t, events_c, n_c`` and metafor's ``ai, n1i, ci,
n2i``), through the command line, and the Bayesian fit must be the same from both layouts.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayesln
from bayesln.cli import app
from bayesln.data import DataValidationError, read_trials

ROOT = Path(__file__).resolve().parents[1]
REF = json.loads((ROOT / "validation" / "fixtures" / "metafor_reference.json").read_text())
BCG = next(c for c in REF["cases"] if c["id"] == "bcg_RR_REML_z")


def bcg_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    d = BCG["data"]
    k = len(d["study"])
    studies = [f"s{i + 1:02d}" for i in range(k)]
    wide = pd.DataFrame({"study": studies, "outcome": "tb", "events_t": d["ai"], "n_t": d["n1i"],
                         "events_c": d["ci"], "n_c": d["n2i"], "year": d["year"]})
    metafor = pd.DataFrame({"study": studies, "ai": d["ai"], "n1i": d["n1i"], "ci": d["ci"], "n2i": d["n2i"],
                            "year": d["year"]})
    long = pd.DataFrame([row for i in range(k) for row in (
        {"study": studies[i], "arm": "BCG", "treatment": "BCG", "outcome": "tb", "events": d["ai"][i],
         "n": d["n1i"][i], "year": d["year"][i]},
        {"study": studies[i], "arm": "control", "treatment": "control", "outcome": "tb", "events": d["ci"][i],
         "n": d["n2i"][i], "year": d["year"][i]})])
    return long, wide, metafor


@pytest.fixture
def files(tmp_path):
    long, wide, metafor = bcg_frames()
    paths = {"long": tmp_path / "bcg_long.csv", "wide": tmp_path / "bcg_wide.csv", "metafor": tmp_path / "bcg_ai.csv"}
    long.to_csv(paths["long"], index=False)
    wide.to_csv(paths["wide"], index=False)
    metafor.to_csv(paths["metafor"], index=False)
    return paths


def freq_json(*args) -> dict:
    r = CliRunner().invoke(app, ["frequentist", *map(str, args), "--format", "json"])
    assert r.exit_code == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout)


def test_own_labels_long_and_wide_give_metafors_numbers(files):
    opts = ["--outcome", "tb", "--treat", "BCG", "--control", "control", "--measure", "RR", "--method", "reml"]
    results = [freq_json(files["long"], *opts), freq_json(files["wide"], *opts), freq_json(files["metafor"], *opts)]
    for doc in results:
        s = doc["summary"] if "summary" in doc else doc
        row = s[0] if isinstance(s, list) else s
        assert row["log_estimate"] == pytest.approx(BCG["result"]["beta"], abs=1e-6)
        assert row["tau2"] == pytest.approx(BCG["result"]["tau2"], abs=1e-6)
    assert results[0] == results[1] == results[2]  # identical output from the three layouts


def test_wide_reads_as_the_same_trialdata(files):
    long = read_trials(files["long"])
    wide = read_trials(files["wide"], treat="BCG", control="control")
    metafor = read_trials(files["metafor"], outcome="tb", treat="BCG", control="control")
    assert long.equals(wide) and long.equals(metafor)
    # and the wide output of `data show` is valid input giving the same data again
    text = long.to_wide_csv_text(treat="BCG")
    back = read_trials(pd.read_csv(__import__("io").StringIO(text)))
    assert back.equals(long)


def test_wide_problems_name_the_files_own_columns(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("study,outcome,events_t,n_t,events_c,n_c\na,tb,5,4,1e3,10\nb,tb,1,2,3,4\n")
    with pytest.raises(DataValidationError) as ei:
        read_trials(p)
    found = {(x.line, x.column) for x in ei.value.problems}
    assert found == {(2, "events_c"), (2, "events_t")}
    p.write_text("study,events_t,n_t,events_c,n_c\na,1,2,3,4\n")
    with pytest.raises(DataValidationError, match="needs the outcome"):
        read_trials(p)


def test_a_near_miss_of_a_bundled_label_is_taken_with_a_warning(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("study,treatment,outcome,events,n\na,tac,totl_response,5,10\na,ivcy,totl_response,3,10\n")
    with pytest.warns(UserWarning, match="did you mean 'total_response'"):
        td = read_trials(p)
    assert set(td.outcomes["outcome"]) == {"totl_response"}
    # the bundled dataset keeps its closed vocabulary
    with pytest.raises(ValueError, match="unknown outcome"):
        bayesln.load_dataset("tacrolimus_ln").arm_table("totl_response")


def test_labels_must_be_labels(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('study,treatment,outcome,events,n\na,"drug, new",tb,5,10\na,control,tb,3,10\n')
    with pytest.raises(DataValidationError, match="not a treatment label"):
        read_trials(p)


@pytest.mark.slow
def test_fit_from_the_command_line_with_own_labels_long_and_wide(files, tmp_path):
    """`bayesln fit` with a spec over the user's own outcome: both layouts give the same
    posterior draw for draw (same data, same seed); an outcome without a declared direction
    is refused naming the key to set."""
    spec = tmp_path / "bcg.toml"
    base = ('[analysis]\nname = "bcg"\n[data]\nsource = "{src}"\noutcome = "tb"\n{dirs}'
            '[model]\nfamily = "core"\ntreat = ["BCG"]\n[sampler]\ndraws = 300\ntune = 300\nchains = 2\nseed = 7\n')
    spec.write_text(base.format(src=files["long"].as_posix(), dirs=""))
    r = CliRunner().invoke(app, ["fit", str(spec), "--out", str(tmp_path / "r"), "--quiet"])
    assert r.exit_code == 2 and "data.directions" in r.stderr and "harm" in r.stderr, r.stderr
    draws = {}
    for layout in ("long", "wide"):
        spec.write_text(base.format(src=files[layout].as_posix(), dirs='directions = {tb = "harm"}\n'))
        r = CliRunner().invoke(app, ["fit", str(spec), "--out", str(tmp_path / layout), "--quiet",
                                     "--allow-failed-gate"])
        assert r.exit_code == 0, r.stderr
        from bayesln import _arviz

        draws[layout] = _arviz.from_netcdf(tmp_path / layout / "bcg" / "idata.nc").posterior["d"].values
    np.testing.assert_array_equal(draws["long"], draws["wide"])
    # BCG prevents tuberculosis: pooled log OR clearly below 0 (metafor REML log RR -0.71)
    assert np.median(draws["long"]) < -0.4


@pytest.mark.slow
def test_one_line_fit_is_the_main_analysis_draw_for_draw():
    """bayesln.fit with the main spec's selection and seed gives the draws of
    `bayesln fit models/total_response.toml` (run_analysis), and works on a DataFrame of
    one's own with a declared direction."""
    from bayesln.analysis import run_analysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = run_analysis(ROOT / "models" / "total_response.toml", progressbar=False)
        res = bayesln.fit("tacrolimus_ln", "total_response", phases="induction", designs="rct", seed=20261122,
                          progressbar=False)
    np.testing.assert_array_equal(a.result.idata.posterior["d"].values, res.idata.posterior["d"].values)
    pd.testing.assert_frame_equal(a.summary(), res.summary().reset_index())
    # the result predicts and plots itself (the same functions as bayesln.predict / bayesln.plots)
    from bayesln.predict import predict

    p = res.predict("asian_class_iii_iv", seed=1)
    pd.testing.assert_frame_equal(p.table(), predict(res, "asian_class_iii_iv", seed=1).table())
    assert type(res.plot_forest()).__name__ == "Figure"
    long, wide, _ = bcg_frames()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        own = bayesln.fit(wide, treat="BCG", direction="harm", draws=300, tune=300, chains=2, seed=3,
                          progressbar=False)
    assert own.design.outcome == "tb" and own.design.n_studies == 13
    with pytest.raises(ValueError, match="direction"):
        bayesln.fit(long, treat="BCG", draws=50, tune=50, chains=1, seed=3, progressbar=False)
