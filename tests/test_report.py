"""``bayesln report`` and the Summary-of-Findings table.

References: the numbers on the page are those of the run's own files (summary.csv,
summary_of_findings.csv), compared through the exact values the page carries in its
``data-value`` attributes, and through what a real headless Chromium (Debian's package)
renders; the Summary-of-Findings risks are recomputed here from the posterior draws of
``d`` in idata.nc and the trials' comparator arms in data.csv (GRADE Handbook 5.2.2: the
assumed comparator risk is the median comparator-arm risk of the trials; the intervention
risk is that risk with the pooled odds ratio applied).

The browser test runs wherever Chromium is installed (``apt-get install chromium``); CI
installs it and sets ``BAYESLN_REQUIRE_BROWSER=1``, which turns a missing browser into a
failure instead of a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from typer.testing import CliRunner

from bayesln.analysis import run_analysis, save_analysis
from bayesln.cli import app
from bayesln.report import build_report, write_report

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"

pytestmark = pytest.mark.slow


class Cells(HTMLParser):
    """Every element with a data-value attribute: (attributes, text)."""

    def __init__(self):
        super().__init__()
        self.cells: list[tuple[dict, str]] = []
        self._open: list[dict] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._open.append(a if "data-value" in a else None)
        if "data-value" in a:
            self.cells.append((a, ""))

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._open and self._open[-1] is not None and self.cells and self.cells[-1][0] is self._open[-1]:
            a, t = self.cells[-1]
            self.cells[-1] = (a, t + data)


def cells_of(html_text: str) -> Cells:
    p = Cells()
    p.feed(html_text)
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The main analysis and the severe-infection spec, fitted with their own settings."""
    out = tmp_path_factory.mktemp("runs")
    paths = {}
    for name in ("total_response", "severe_infection"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            paths[name] = save_analysis(run_analysis(MODELS / f"{name}.toml", progressbar=False), out)
    return paths


def summary_cells(html_text: str) -> dict[tuple[str, str], tuple[float, str]]:
    return {(a["data-quantity"], a["data-stat"]): (float(a["data-value"]), t.strip())
            for a, t in cells_of(html_text).cells if "data-quantity" in a}


def check_against_summary(found: dict, run: Path) -> None:
    s = pd.read_csv(run / "summary.csv")
    for _, r in s.iterrows():
        if pd.isna(r["median"]):
            v, shown = found[(r["quantity"], "mean")]
            assert v == pytest.approx(float(r["mean"]), rel=1e-12) and shown == f"{r['mean']:.3f}"
            continue
        for stat in ("median", "q2.5", "q97.5"):
            v, shown = found[(r["quantity"], stat)]
            assert v == pytest.approx(float(r[stat]), rel=1e-12), (r["quantity"], stat)
            assert shown == f"{float(r[stat]):.2f}"


def test_report_numbers_are_the_run_files(runs):
    run = runs["total_response"]
    text = build_report([run])
    found = summary_cells(text)
    check_against_summary(found, run)
    assert ("pooled OR", "median") in found and ("tau", "median") in found
    for section in ("Question and data", "Pooled results", "Forest plot", "Bayesian vs frequentist vs published",
                    "Small-study effects", "Summary of Findings", "Diagnostics", "Exact spec and versions"):
        assert f">{section}</h3>" in text, section
    # self-contained: no script, nothing loaded from anywhere (xmlns URIs are names, not links)
    low = text.lower()
    assert "<script" not in low and "src=" not in low and "<link" not in low and "@import" not in low
    assert 'href="http' not in low and "href='http" not in low and "url(http" not in low
    assert "<svg" in text  # the forest plot inlined
    assert "Cochrane Handbook" in text  # 6 trials < 10: the small-study warning is shown


def test_summary_of_findings_recomputed_from_the_draws(runs):
    """summary_of_findings.csv: trial-population row recomputed from idata.nc and data.csv."""
    from bayesln import _arviz
    from bayesln.data import read_trials

    run = runs["total_response"]
    sof = pd.read_csv(run / "summary_of_findings.csv")
    row = sof[sof["population"] == "trial_population"].iloc[0]
    td = read_trials(run / "data.csv")
    con = td.contrasts("total_response", treat=("tac",)).dropna(subset=["events_t", "n_t", "events_c", "n_c"])
    pc = float(np.median(con["events_c"] / con["n_c"]))
    d = _arviz.from_netcdf(run / "idata.nc").posterior["d"].values.reshape(-1)
    pt = expit(logit(pc) + d)
    assert row["n_trials"] == len(con) == 6
    assert row["n_participants"] == int(con[["n_t", "n_c"]].sum().sum())
    assert row["comparator_risk_per_1000"] == pytest.approx(1000 * pc, rel=1e-5)
    for col, q in (("tac_risk_per_1000", 0.5), ("tac_low_per_1000", 0.025), ("tac_high_per_1000", 0.975)):
        assert row[col] == pytest.approx(1000 * np.quantile(pt, q), rel=1e-5), col
    assert row["difference_per_1000"] == pytest.approx(1000 * np.quantile(pt - pc, 0.5), rel=1e-5)
    summ = pd.read_csv(run / "summary.csv").set_index("quantity")
    assert row["relative_median"] == pytest.approx(summ.loc["pooled OR", "median"], rel=1e-3)
    assert row["relative_low"] == pytest.approx(summ.loc["pooled OR", "q2.5"], rel=1e-3)
    assert row["fit_status"] == "ok" and pd.isna(row["certainty_signals"])


def test_summary_of_findings_of_a_prediction_run_has_every_target(tmp_path):
    """Target rows are the population-level predictions (predictions.csv), with their
    extrapolation status and prior share as the indirectness signal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = run_analysis(MODELS / "predict_total_response.toml", draws=300, tune=300, chains=2, progressbar=False)
    run = save_analysis(a, tmp_path, figures=False)
    sof = pd.read_csv(run / "summary_of_findings.csv", keep_default_na=False, na_values=[""])
    pred = pd.read_csv(run / "predictions.csv", keep_default_na=False, na_values=[""])
    targets = sof[sof["population"] != "trial_population"]
    assert set(targets["population"]) == set(a.spec.targets)
    pop = pred[pred["level"] == "population"].set_index(["target", "quantity"])
    for _, r in targets.iterrows():
        assert r["tac_risk_per_1000"] == pytest.approx(1000 * pop.loc[(r["population"], "p_tac"), "median"], rel=1e-5)
        assert r["comparator_low_per_1000"] == pytest.approx(1000 * pop.loc[(r["population"], "p_comparator"), "lower"],
                                                             rel=1e-5)
        assert r["prior_share"] == pytest.approx(pop.loc[(r["population"], "or"), "prior_share"], rel=1e-5)
    na = targets.set_index("population").loc["non_asian_class_iii_iv"]
    assert "asian_fraction" in na["outside_data"] and "outside the trials' data" in na["certainty_signals"]
    if a.status != "ok":  # the tiny fit: its warning reaches the table
        assert (sof["fit_status"] == "failed_gate").all()
        assert sof["certainty_signals"].str.contains("failed its diagnostics gate").all()


def test_several_runs_in_one_report_with_a_combined_summary_of_findings(runs, tmp_path):
    out = write_report([runs["total_response"], runs["severe_infection"]], tmp_path / "both.html")
    text = out.read_text(encoding="utf-8")
    assert "Summary of Findings, all runs" in text
    assert text.count("<h2 id=\"run") == 2
    assert ">total_response<" in text and ">severe_infection<" in text
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # readable like any file the user writes


def test_report_command_line(runs, tmp_path):
    r = CliRunner().invoke(app, ["report", str(runs["total_response"]), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r.html").is_file()
    # an edited run is refused with both hashes; a folder as --out is refused
    bad = tmp_path / "bad"
    shutil.copytree(runs["total_response"], bad)
    (bad / "summary.csv").write_text((bad / "summary.csv").read_text().replace("0.", "9.", 1))
    r = CliRunner().invoke(app, ["report", str(bad), "--out", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "summary.csv: changed since the run was written" in r.stderr
    assert not (tmp_path / "x.html").exists()
    r = CliRunner().invoke(app, ["report", str(runs["total_response"]), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "is a folder" in r.stderr


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_report_renders_in_headless_chromium(runs, tmp_path):
    """A real browser: the page loads (exit 0), a screenshot is taken, and the numbers in
    the rendered DOM equal summary.csv (pooled OR, its interval, tau, ...)."""
    exe = _chromium()
    if exe is None:
        if os.environ.get("BAYESLN_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required here (BAYESLN_REQUIRE_BROWSER=1) but was not found")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    run = runs["total_response"]
    page = write_report([run], tmp_path / "report.html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400"]
    url = page.resolve().as_uri()
    shot = tmp_path / "report.png"
    p = subprocess.run([exe, *flags, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a rendered page, not a blank
    p = subprocess.run([exe, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout
    found = summary_cells(dom)
    check_against_summary(found, run)
    rendered = "".join(cells_of(dom).text)
    assert "Diagnostics gate:" in rendered and "passed" in rendered
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "ok"
