"""The figures a guideline panel reads (bayesln.plots), checked against independent
computations - never against pixels.

References used below:

* weights: Mantel-Haenszel weights written out by hand from the 2x2 tables of
  ``TrialData.contrasts`` (OR: b c / N; RR: c n_t / N; Cochrane Handbook 10.4.1 /
  Greenland & Robins 1985), and REML weights 1 / (v_i + tau^2) with v_i from the textbook
  formulas (1/2 added to every cell of a table with a zero cell, metafor's escalc default)
  and tau^2 from the package's REML engine ``bayesln.frequentist.rma_uni`` (itself pinned
  to metafor in test_frequentist_metafor.py); the pooled estimates of those weights
  (sum w y / sum w; MH sum(a d / N) / sum(b c / N)) locate the diamonds;
* the Bayesian pooled OR, tau and prediction interval: the run folder's ``summary.csv``;
  pooled shrunken ORs: the posterior draws of eta (n-weighted arm probabilities);
* labels: ``first_author`` and ``year`` read from ``data/tacrolimus_ln/trials.csv`` with the
  csv module;
* target titles: ``models/targets.toml`` read with tomllib; medians: the prediction draws;
* R-hat in the trace plot: ArviZ's ``rhat`` on the posterior;
* comparison notes: the comparison table's ``reason`` column.

Legibility: every drawn text (tick labels inside the view only) is rendered with Agg and its
bounding box must lie inside the figure and overlap no other text; fonts are >= 7 pt.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text
from scipy.special import expit, logit
from scipy.stats import norm

import bayesln
import bayesln.plots
from bayesln.frequentist import rma_uni

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "models" / "total_response.toml"
Z = norm.ppf(0.975)


# =========================================================================== helpers
def drawn_texts(fig) -> list[Text]:
    """Every visible non-empty text the figure draws; tick labels only for ticks inside the
    axis view (matplotlib keeps label objects for ticks outside it, which are not drawn)."""
    tick_ids, out = set(), []
    for ax in fig.findobj(lambda a: hasattr(a, "xaxis") and hasattr(a, "get_xlim")):
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            tol = 1e-9 * abs(hi - lo)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                for lab in (tick.label1, tick.label2):
                    tick_ids.add(id(lab))
                    loc = tick.get_loc()
                    if lab.get_visible() and lab.get_text().strip() and loc is not None and lo - tol <= loc <= hi + tol:
                        out.append(lab)
    out += [t for t in fig.findobj(Text) if id(t) not in tick_ids and t.get_visible() and t.get_text().strip()]
    return out


def assert_legible(fig, *, max_width: float | None = None) -> None:
    """Rendered: no two texts overlap, none leaves the figure, no font under 7 pt."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = drawn_texts(fig)
    assert texts
    boxes = [(t, t.get_window_extent(r)) for t in texts]
    fb = fig.bbox
    for t, b in boxes:
        assert b.x0 >= fb.x0 - 0.01 and b.x1 <= fb.x1 + 0.01 and b.y0 >= fb.y0 - 0.01 and b.y1 <= fb.y1 + 0.01, \
            f"clipped: {t.get_text()!r} {b.extents} outside {fb.extents}"
        assert t.get_fontsize() >= 7, (t.get_text(), t.get_fontsize())
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i][1], boxes[j][1]
            overlap = a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1
            assert not overlap, f"overlap: {boxes[i][0].get_text()!r} / {boxes[j][0].get_text()!r}"
    if max_width is not None:
        assert fig.get_figwidth() <= max_width + 1e-9


class Table:
    """The text table of a forest plot's first axes: columns by header, rows by label."""

    def __init__(self, fig, axes_index: int = 0):
        self.fig = fig
        self.ax = fig.axes[axes_index]
        from matplotlib.text import Annotation

        # the cells (the favours labels are annotations placed in points under the axis)
        self.texts = [(t.get_position()[0], t.get_position()[1], t.get_text()) for t in self.ax.texts
                      if not isinstance(t, Annotation)]

    def column(self, header: str) -> float:
        xs = [x for x, _, s in self.texts if s == header]
        assert len(xs) == 1, (header, xs)
        return xs[0]

    def study_x(self) -> float:
        return min(x for x, _, _ in self.texts)

    def row(self, label: str) -> float:
        ys = [y for x, y, s in self.texts if s == label and x == self.study_x()]
        assert len(ys) == 1, (label, ys)
        return ys[0]

    def at(self, x: float, y: float) -> str | None:
        hits = [s for xx, yy, s in self.texts if xx == x and yy == y]
        assert len(hits) <= 1
        return hits[0] if hits else None

    def labels_between(self, y_top: float, y_bottom: float) -> list[str]:
        x0 = self.study_x()
        return [s for x, y, s in sorted(self.texts, key=lambda t: -t[1]) if x == x0 and y_bottom <= y <= y_top]

    def diamond(self, y: float) -> np.ndarray:
        found = [np.asarray(p.get_xy(), float)[:4, 0] for p in self.ax.patches
                 if np.allclose(np.asarray(p.get_xy(), float)[:4, 1], [y, y + 0.3, y, y - 0.3])]
        assert len(found) == 1, found
        return found[0]

    def segments(self, y: float, linestyle: str = "-") -> list[np.ndarray]:
        return [np.asarray(ln.get_xdata(), float) for ln in self.ax.lines
                if len(ln.get_ydata()) == 2 and np.allclose(ln.get_ydata(), [y, y]) and ln.get_linestyle() == linestyle]


def hand_or_tables(con: pd.DataFrame):
    a, n1, c, n2 = (con[k].to_numpy(float) for k in ("events_t", "n_t", "events_c", "n_c"))
    return a, n1 - a, c, n2 - c, n1, n2


def reml_weights(yi, vi):
    """REML weights (percent), pooled estimate and SE: tau^2 from the REML engine, the rest
    written out."""
    tau2 = rma_uni(yi, vi, "reml").tau2
    w = 1 / (vi + tau2)
    mu = float(np.sum(w * yi) / np.sum(w))
    return 100 * w / w.sum(), mu, math.sqrt(1 / w.sum()), tau2


def or_effects(con):
    """log OR and variance by hand, 1/2 added to every cell of a table with a zero cell."""
    a, b, c, d, _, _ = hand_or_tables(con)
    cc = np.where((a == 0) | (b == 0) | (c == 0) | (d == 0), 0.5, 0.0)
    a, b, c, d = a + cc, b + cc, c + cc, d + cc
    return np.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d


def rr_effects(con):
    a, b, c, d, n1, n2 = hand_or_tables(con)
    cc = np.where((a == 0) | (b == 0) | (c == 0) | (d == 0), 0.5, 0.0)
    a, c, n1, n2 = a + cc, c + cc, n1 + 2 * cc, n2 + 2 * cc
    return np.log((a / n1) / (c / n2)), 1 / a - 1 / n1 + 1 / c - 1 / n2


def expected_labels() -> dict[str, str]:
    """'Surname Year' for every study of the bundled data, read from trials.csv directly;
    the study id when the author or year is blank."""
    out = {}
    with open(ROOT / "data" / "tacrolimus_ln" / "trials.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            s = row["study"]
            if s in out:
                continue
            author, year = row["first_author"].strip(), row["year"].strip()
            out[s] = f"{author.split()[0]} {year}" if author and year else s
    return out


def induction_rct_contrasts():
    td = bayesln.load_dataset("tacrolimus_ln")
    return td, td.select(phases="induction", designs="rct").contrasts("total_response", treat="tac")


# =========================================================================== no MCMC
def test_one_plotting_namespace_without_pymc():
    """bayesln.plots holds every figure, imports no PyMC (and bayesln.frequentist no
    matplotlib), and the old import paths are the same functions (thin re-exports)."""
    code = ("import sys, bayesln.frequentist; assert 'matplotlib' not in sys.modules; "
            "import bayesln.plots; assert 'pymc' not in sys.modules and 'arviz' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    import bayesln.checks
    import bayesln.checks.plots
    import bayesln.frequentist
    import bayesln.frequentist.forest
    import bayesln.plots as P
    import bayesln.predict.plots

    assert bayesln.frequentist.forest_plot is P.forest_plot is bayesln.frequentist.forest.forest_plot
    assert bayesln.checks.plot_comparison is P.comparison_plot is P.plot_comparison
    assert bayesln.checks.plots.ppc_figure is P.ppc_figure
    assert bayesln.predict.plots.plot_targets is P.plot_targets
    assert not (ROOT / "bayesln" / "plots.py").exists()


def test_frequentist_forest_weights_labels_favours():
    # weights: by hand (MH) and REML weights around the engine's tau^2 (module docstring)
    td, con = induction_rct_contrasts()
    fig = bayesln.plots.forest_plot(con, "RR", fixed="mh", random="reml", studies=td, outcome="total_response")
    t = Table(fig)
    labels = expected_labels()
    # one row per trial of the contrast table, author-year labels, in the table's order
    y_first, y_last = t.row(labels[con["study"].iloc[0]]), t.row(labels[con["study"].iloc[-1]])
    assert t.labels_between(y_first, y_last) == [labels[s] for s in con["study"]]
    assert "Amudalapalli 2025" in t.labels_between(y_first, y_last)
    a, _, c, _, n1, n2 = hand_or_tables(con)
    N = n1 + n2
    w_mh = c * n1 / N
    mh_pct = 100 * w_mh / w_mh.sum()
    yi, vi = rr_effects(con)
    reml_pct, mu, se, _ = reml_weights(yi, vi)
    for hdr, ref in (("Weight\n(MH)", mh_pct), ("Weight\n(REML)", reml_pct)):
        x = t.column(hdr)
        printed = [t.at(x, t.row(labels[s])) for s in con["study"]]
        assert printed == [f"{v:.1f}%" for v in ref], hdr
        assert abs(sum(float(p.rstrip("%")) for p in printed) - 100) <= 0.05 * len(printed)
    # the diamonds of those weights
    mh_est = np.sum(a * n2 / N) / np.sum(w_mh)
    np.testing.assert_allclose(t.diamond(t.row("Mantel-Haenszel (common effect)"))[1], mh_est, rtol=1e-9)
    np.testing.assert_allclose(t.diamond(t.row("REML (random effect)")),
                               np.exp([mu - Z * se, mu, mu + Z * se, mu]), rtol=1e-6)
    # treatment labels from the data, favours sides from the outcome's direction (benefit)
    texts = [s.get_text() for s in drawn_texts(fig)]
    assert "TAC\nevents/n" in texts and "IVCY/MMF\nevents/n" in texts
    assert "\u2190 Favours IVCY/MMF" in texts and "Favours TAC \u2192" in texts
    assert_legible(fig, max_width=7.0)


def test_favours_labels_follow_the_direction_and_the_given_names():
    td, con = induction_rct_contrasts()
    for kw, left, right in (({"outcome": "total_response"}, "Standard care", "Tacrolimus"),
                            ({"outcome": "death"}, "Tacrolimus", "Standard care"),
                            ({"direction": "harm"}, "Tacrolimus", "Standard care")):
        fig = bayesln.plots.forest_plot(con, "OR", studies=td, treat_label="Tacrolimus",
                                        control_label="Standard care", title="Renal response", **kw)
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        ax = fig.axes[0]
        x_null = ax.transData.transform((1.0, 0.0))[0]
        by_text = {t.get_text(): t for t in drawn_texts(fig)}
        lt, rt = by_text[f"\u2190 Favours {left}"], by_text[f"Favours {right} \u2192"]
        assert lt.get_window_extent(r).x1 <= x_null <= rt.get_window_extent(r).x0
        assert not any("TAC" in s for s in by_text), [s for s in by_text if "TAC" in s]
        headers = {" ".join(s.split()) for s in by_text}  # long names may wrap over "events/n"
        assert "Tacrolimus events/n" in headers and "Standard care events/n" in headers


def test_trace_selects_every_hyperparameter_of_any_family():
    # a hand-made posterior with the variables of the network / joint / core families:
    # the population-level ones are drawn component by component, per-study / per-arm /
    # per-row ones never, and a constant component (a fixed reference) is skipped
    import xarray as xr

    rng = np.random.default_rng(1)
    ch, dr = 2, 50

    def v(*shape):
        return rng.normal(size=(ch, dr, *shape))

    d = v(3)
    d[..., 0] = 0.0  # the reference treatment
    post = xr.Dataset({
        "d": (("chain", "draw", "treatment"), d), "d_extra": (("chain", "draw", "comparison"), v(1)),
        "tau": (("chain", "draw"), np.abs(v())), "beta_phase": (("chain", "draw"), v()),
        "m": (("chain", "draw", "outcome"), v(2)), "sigma_mu": (("chain", "draw", "outcome"), np.abs(v(2))),
        "rho": (("chain", "draw", "outcome_pair"), v(1)), "gamma": (("chain", "draw", "baseline_covariate"), v(1)),
        "mu": (("chain", "draw", "study"), v(4)), "z": (("chain", "draw", "nonbase_arm"), v(5)),
        "theta": (("chain", "draw", "arm"), v(9)), "delta": (("chain", "draw", "study"), v(4)),
    }, coords={"treatment": ["ivcy", "mmf", "tac"], "comparison": ["mmf:tac"], "outcome": ["resp", "inf"],
               "outcome_pair": ["resp~inf"], "baseline_covariate": ["phase:maintenance"]})
    from bayesln.plots import hyperparameters, trace_plot

    names = [n for n, _ in hyperparameters(post)]
    assert names == ["d[mmf]", "d[tac]", "d_extra[mmf:tac]", "tau", "m[resp]", "m[inf]", "sigma_mu[resp]",
                     "sigma_mu[inf]", "gamma[phase:maintenance]", "beta_phase", "rho[resp~inf]"]
    from bayesln import _arviz

    fig = trace_plot(_arviz.make_inference_data({"posterior": post}))
    assert fig.bayesln_parameters == names
    titles = [sf.texts[0].get_text() for sf in fig.subfigs]
    assert titles == names
    assert_legible(fig)


def test_comparison_plot_legend_and_flag_notes_on_a_multi_outcome_table():
    # a table as full_comparison writes it: several outcomes and subgroups, a skipped
    # subgroup and a figure that could not be recomputed (no estimate), flagged rows
    rows = [
        ("total_response", "all", "frequentist", "mantel_haenszel_fixed", 6, 1.25, 1.15, 1.36, False, ""),
        ("total_response", "all", "bayesian", "binomial_normal_bayes_marginal", 6, 1.26, 1.11, 1.45, True,
         "random vs fixed effects (REML tau2 = 0.0113)"),
        ("total_response", "all", "published", "mantel_haenszel_fixed", 5, 1.23, 1.12, 1.34, True,
         "Kraaij et al.; not reproduced: 2 of 5 listed trials have counts"),
        ("total_response", "duo", "recomputed", "mantel_haenszel_fixed", 0, np.nan, np.nan, np.nan, True,
         "could not be recomputed: no listed trial has counts"),
        ("total_response", "maintenance", "skipped", "none", 1, np.nan, np.nan, np.nan, False,
         "1 informative trial(s) (chen2012); pooling needs at least 2"),
        ("leucopenia", "all", "frequentist", "reml_random", 3, 0.55, 0.31, 0.98, True,
         "random vs fixed effects (REML tau2 = 0.2)"),
    ]
    cols = ["outcome", "subgroup", "source", "method", "k", "estimate", "ci_low", "ci_high", "flag", "reason"]
    tab = pd.DataFrame(rows, columns=cols).assign(measure="RR")
    fig = bayesln.plots.comparison_plot(tab)
    legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"Bayesian", "Frequentist", "Published", "Recomputed"} <= set(legend_texts)
    assert any(s.startswith("Flagged") for s in legend_texts)
    foot = " ".join(t.get_text().replace("\n", " ") for t in fig.texts)
    numbered = {}
    for _, r in tab.iterrows():
        if r["reason"]:
            m = re.search(r"\[(\d+)\] " + re.escape(r["reason"]), foot)
            assert m, r["reason"]
            numbered[r["reason"]] = m.group(1)
    t = Table(fig)
    labels = [s for _, _, s in t.texts]
    for _, r in tab[tab["flag"]].iterrows():
        tagged = [s for s in labels if s.endswith(f"[{numbered[r['reason']]}]")]
        assert len(tagged) == 1, r["reason"]
        txt = next(x for x in t.ax.texts if x.get_text() == tagged[0])
        assert matplotlib.colors.same_color(txt.get_color(), bayesln.plots._style.FLAG)
    # rows without an estimate are listed, not drawn
    assert sum(s == "not estimated" for s in labels) == 2
    assert_legible(fig, max_width=7.0)


def test_checks_figures_are_legible():
    from bayesln.plots import plot_influence, plot_model_comparison, plot_sensitivity

    k = 8
    infl = pd.DataFrame({"study": ["(none)"] + [f"study_{i}" for i in range(k)],
                         "or_median": np.linspace(2, 3, k + 1), "or_low": 1.2, "or_high": 5.0,
                         "tau_median": 0.4, "tau_low": 0.05, "tau_high": 1.1, "flag": [False] * k + [True],
                         "reml_log_or": np.log(np.linspace(2, 3, k + 1))})
    sens = pd.DataFrame({"changed": ["reference", "tau", "tau", "d"], "prior": ["half_normal(0.5)", "half_normal(1)",
                                                                                "turner()", "normal(0, 10)"],
                         "or_median": [2.7, 2.9, 2.6, 2.8], "or_low": 1.5, "or_high": 8.0,
                         "p_or_gt_1": [0.99, 0.98, 0.99, 0.99], "tau_median": [0.4, 0.6, 0.3, 0.4],
                         "flag": [False, False, False, True]})
    models = pd.DataFrame({"model": ["random effects", "common effect", "no covariates"], "elpd_loo": [-30.1, -31.5, -30.8],
                           "se": [3.0, 3.2, 3.1], "elpd_diff": [0.0, -1.4, -0.7], "se_diff": [0.0, 1.1, 0.5],
                           "n_high_k": [0, 1, 0], "kind": ["integrated"] * 3})
    for fig in (plot_influence(infl, title="total_response: leave one study out"),
                plot_sensitivity(sens, title="total_response: prior sensitivity"), plot_model_comparison(models)):
        assert_legible(fig, max_width=7.0)


# =========================================================================== one core run
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The main spec fitted small (the figures, not the posterior, are the subject) and
    written as a run folder, SVG text kept as text so the files can be read back."""
    from bayesln.analysis import run_analysis, save_analysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a = run_analysis(SPEC, draws=200, tune=200, chains=2, progressbar=False)
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        path = save_analysis(a, tmp_path_factory.mktemp("runs"))
    return a, path


@pytest.mark.slow
def test_every_core_run_folder_has_the_forest_png_and_svg(run):
    _, path = run
    info = json.loads((path / "run.json").read_text())
    for stem in ("forest", "forest_frequentist", "comparison", "trace"):
        png, svg = path / "figures" / f"{stem}.png", path / "figures" / f"{stem}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert "<svg" in svg.read_text(encoding="utf-8")[:3000], svg
        assert {f"figures/{stem}.png", f"figures/{stem}.svg"} <= set(info["files"])


def _fraction(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+\.\d+", text)]


@pytest.mark.slow
def test_forest_prediction_interval_is_the_summary_csv_row(run):
    # reference: the run folder's summary.csv (the same draws as the run's summary, never
    # simulated again by the plot)
    a, path = run
    summ = pd.read_csv(path / "summary.csv").set_index("quantity")
    pi = summ.loc["predictive OR (new study)"]
    po, tau = summ.loc["pooled OR"], summ.loc["tau"]
    fig = bayesln.plots.forest_plot(a)
    t = Table(fig)
    x_est = t.column("OR [95% CI]")
    y = t.row("Prediction interval (Bayesian)")
    printed = t.at(x_est, y)
    assert printed == f"PI [{pi['q2.5']:.2f}, {pi['q97.5']:.2f}]"
    (seg,) = t.segments(y, "--")
    np.testing.assert_allclose(seg, [pi["q2.5"], pi["q97.5"]], rtol=1e-5)
    y_b = t.row("Bayesian random effect")
    np.testing.assert_allclose(t.diamond(y_b), [po["q2.5"], po["median"], po["q97.5"], po["median"]], rtol=1e-5)
    assert t.at(x_est, y_b) == f"{po['median']:.2f} [{po['q2.5']:.2f}, {po['q97.5']:.2f}]"
    het = [s for _, _, s in t.texts if s.startswith("Heterogeneity (Bayesian)")]
    assert het == [(f"Heterogeneity (Bayesian): \u03c4 = {tau['median']:.2f} [95% CrI {tau['q2.5']:.2f}, "
                    f"{tau['q97.5']:.2f}]")]
    # the figure written into the run folder prints the same interval
    svg = (path / "figures" / "forest.svg").read_text(encoding="utf-8")
    assert printed in svg
    # and the frequentist heterogeneity line of the REML fit: tau2, I2, Q, df, p
    assert any(re.fullmatch(r"Heterogeneity \(REML\): Q = [\d.]+ \(df = 5, p = [\d.e-]+\), I\u00b2 = \d+%, "
                            r"\u03c4\u00b2 = [\d.e-]+", s) for _, _, s in t.texts)


@pytest.mark.slow
def test_bayesian_forest_weights_each_trial_once_and_are_the_diamonds_models(run):
    # reference: MH / REML weights by hand on TrialData.contrasts of the spec's trials
    # (induction RCTs, multi-arm trials pooled), module docstring
    a, _ = run
    _, con = induction_rct_contrasts()
    fig = bayesln.plots.forest_plot(a)
    t = Table(fig)
    labels = expected_labels()
    y_first, y_last = t.row(labels[con["study"].iloc[0]]), t.row(labels[con["study"].iloc[-1]])
    rows = t.labels_between(y_first, y_last)
    assert rows == [labels[s] for s in con["study"]]  # one row per trial, author-year
    assert len(set(rows)) == len(rows) and rows.count("Amudalapalli 2025") == 1
    a_, b, c, d, n1, n2 = hand_or_tables(con)
    N = n1 + n2
    w_mh = b * c / N
    yi, vi = or_effects(con)
    reml_pct, mu, se, _ = reml_weights(yi, vi)
    for hdr, ref in (("Weight\n(MH)", 100 * w_mh / w_mh.sum()), ("Weight\n(REML)", reml_pct)):
        x = t.column(hdr)
        printed = [t.at(x, t.row(labels[s])) for s in con["study"]]
        assert printed == [f"{v:.1f}%" for v in ref], hdr
        assert abs(sum(float(p.rstrip("%")) for p in printed) - 100) <= 0.05 * len(printed)
        # the pooled row of that model carries the column's 100%
    assert t.at(t.column("Weight\n(MH)"), t.row("Mantel-Haenszel (common effect)")) == "100.0%"
    assert t.at(t.column("Weight\n(REML)"), t.row("REML (random effect)")) == "100.0%"
    np.testing.assert_allclose(t.diamond(t.row("REML (random effect)")),
                               np.exp([mu - Z * se, mu, mu + Z * se, mu]), rtol=1e-6)
    np.testing.assert_allclose(t.diamond(t.row("Mantel-Haenszel (common effect)"))[1],
                               np.sum(a_ * d / N) / np.sum(w_mh), rtol=1e-9)
    # the three-arm trial's weight is that of its pooled contrast (not two pairwise rows)
    i = int(np.flatnonzero(con["study"].to_numpy() == "amudalapalli2025")[0])
    assert (con.loc[i, "events_c"], con.loc[i, "n_c"]) == (33, 55)
    # shrunken ORs: the n-weighted arm probabilities of each trial's posterior eta draws
    res = a.result
    eta = res.draws("eta")
    des = res.design
    for s in con["study"]:
        J = np.flatnonzero((des.arm_study == des.study_ids.index(s)) & (des.n > 0))
        tr = des.treated[J] == 1
        n = des.n[J].astype(float)
        p = expit(eta[:, J])
        lor = logit(p[:, tr] @ (n[tr] / n[tr].sum())) - logit(p[:, ~tr] @ (n[~tr] / n[~tr].sum()))
        ref = np.exp(np.quantile(lor, [0.025, 0.5, 0.975]))
        y = t.row(labels[s])
        segs = t.segments(y - 0.2)
        assert any(np.allclose(sg, ref[[0, 2]], rtol=1e-9) for sg in segs), s
        if len(J) == 2:  # a two-arm trial: the package's study_effects (eta_t - eta_c) agrees
            se = res.study_effects().set_index("study").loc[s]
            assert any(np.allclose(sg, [se["or_q2.5"], se["or_q97.5"]], rtol=1e-9) for sg in segs), s
    # the RR panel: the published Kraaij et al. RR marked, as in the published table
    t2 = Table(fig, 1)
    pub = a.comparison[(a.comparison["source"] == "published") & (a.comparison["subgroup"] == "all")].iloc[0]
    assert (pub["estimate"], pub["ci_low"], pub["ci_high"]) == (1.23, 1.12, 1.34)
    y = t2.row(f"Kraaij et al. (published, k = {int(pub['k'])})")
    assert t2.at(t2.column("RR [95% CI]"), y) == "1.23 [1.12, 1.34]"
    (seg,) = t2.segments(y)
    np.testing.assert_allclose(seg, [1.12, 1.34])
    marks = [(off, coll.get_paths()[0]) for coll in t2.ax.collections for off in np.asarray(coll.get_offsets())
             if np.isclose(off[1], y)]
    assert len(marks) == 1 and np.isclose(marks[0][0][0], 1.23)


@pytest.mark.slow
def test_run_figures_are_legible_at_journal_width(run):
    a, _ = run
    forest = bayesln.plots.forest_plot(a)
    assert_legible(forest, max_width=7.0)
    texts = [t.get_text() for t in drawn_texts(forest)]
    assert "\u2190 Favours IVCY/MMF" in texts and "Favours TAC \u2192" in texts  # benefit: TAC on the right
    custom = bayesln.plots.forest_plot(a, treat_label="Tacrolimus", control_label="Cyclophosphamide or MMF",
                                       title="Renal response")
    assert_legible(custom, max_width=7.0)
    ct = [t.get_text() for t in drawn_texts(custom)]
    assert "Favours Tacrolimus \u2192" in ct and not any("TAC" in s for s in ct)
    assert_legible(bayesln.plots.comparison_plot(a.comparison, outcome="total_response"), max_width=7.0)
    assert_legible(bayesln.plots.trace_plot(a.result, title="total_response"), max_width=7.0)


# =========================================================================== a prediction fit
@pytest.fixture(scope="module")
def pred_fit():
    from _mcmc import SANITY_GATE

    from bayesln.hierarchy import fit_core

    td = bayesln.load_dataset("tacrolimus_ln").select(designs="rct")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fit = fit_core(td, "total_response", baseline="exchangeable", effect_modifiers=("regimen", "phase"),
                       baseline_covariates=("phase",), draws=400, tune=400, chains=2, seed=11,
                       progressbar=False, gate=SANITY_GATE)
    assert fit.status == "ok", fit.diagnostics.problems  # predictions need a fit that passes its gate
    return fit


@pytest.mark.slow
def test_trace_has_every_hyperparameter_with_its_rhat(pred_fit):
    # reference: the model's parameters (d, tau, m, sigma_mu, one beta per effect modifier,
    # one gamma per baseline covariate) and ArviZ's R-hat of each
    import arviz as az

    fig = bayesln.plots.trace_plot(pred_fit)
    des = pred_fit.design
    expected = (["d", "tau", "m", "sigma_mu"] + [f"beta[{n}]" for n in des.effect_names]
                + [f"gamma[{n}]" for n in des.baseline_names])
    assert len(des.effect_names) == 2 and len(des.baseline_names) == 1
    assert fig.bayesln_parameters == expected
    post = pred_fit.idata.posterior
    for sf, name in zip(fig.subfigs, expected):
        title = sf.texts[0].get_text()
        assert title.startswith(name + " ")
        var, _, coord = name.partition("[")
        if coord:
            dim = next(d for d in post[var].dims if d not in ("chain", "draw"))
            da = post[var].sel({dim: coord.rstrip("]")})
        else:
            da = post[var]
        rhat = float(az.rhat(da.to_dataset(name="x"))["x"])
        printed = float(re.search(r"R-hat ([\d.]+)", title).group(1))
        assert abs(printed - rhat) <= 5e-4 + 1e-9, (name, printed, rhat)
    assert_legible(fig, max_width=7.0)


@pytest.mark.slow
def test_predictions_figure_uses_target_titles_and_two_encodings(pred_fit):
    from matplotlib.lines import Line2D

    from bayesln.predict import PredictionSet, predict

    names = ["asian_class_iii_iv", "non_asian_class_iii_iv", "paediatric"]
    toml = tomllib.loads((ROOT / "models" / "targets.toml").read_text(encoding="utf-8"))
    ps = PredictionSet([predict(pred_fit, n, seed=3) for n in names])
    fig = bayesln.plots.plot_targets(ps)
    ax = fig.axes[0]
    ys = np.asarray(ax.get_yticks(), float)
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert list(ys) == sorted(ys, reverse=True)  # first target on top
    for name, lab in zip(names, ticks):
        title_lines = lab.split("\n")[:-1]
        assert " ".join(title_lines) == toml[name]["title"], (name, lab)
        assert name not in lab
    # arms: colour and marker (circle treatment, square comparator); medians at the draws'
    for p, y in zip(ps, ys):
        for q, marker, dy in (("p_tac", "o", 0.14), ("p_comparator", "s", -0.14)):
            ln = [l for l in ax.lines if isinstance(l, Line2D) and l.get_marker() == marker
                  and np.allclose(l.get_ydata(), [y + dy])]
            assert len(ln) == 1, (p.name, q)
            assert np.isclose(ln[0].get_xdata()[0], np.median(p.draws["population"][q]), rtol=1e-12)
    leg = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "treatment arm" in leg and "comparator arm" in leg
    assert_legible(fig, max_width=7.0)


@pytest.mark.slow
def test_ppc_figure_is_legible(pred_fit):
    from bayesln.checks.ppc import ppc_table

    assert_legible(bayesln.plots.ppc_figure(ppc_table(pred_fit), title="posterior predictive check"),
                   max_width=7.0)
