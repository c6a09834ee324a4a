"""What ``bayesln.frequentist.forest_plot`` (= ``bayesln.plots.forest_plot`` on a contrast
table) draws, checked artist by artist.

References:

* study rows: the effect sizes of metafor ``escalc`` as returned in the fits of
  validation/fixtures/metafor_reference.json (``yi``, ``vi``; R 4.2.2, metafor 3.8-1, exact
  R call stored in each case), drawn as ``exp(yi)`` with the CI
  ``exp(yi -/+ z sqrt(vi))``, z = the 0.975 normal quantile (1.959964; closed form, Python's
  ``statistics.NormalDist``); no exp for RD;
* weight columns "Weight (MH)", "Weight (REML)", ...: metafor ``weights(res)`` of the fit
  that drew the diamond of that name (percent);
* diamonds, prediction interval, pooled text and heterogeneity line: metafor ``beta``,
  ``ci.lb``, ``ci.ub``, ``predict(res)$pi.lb/pi.ub``, ``QE``, ``QEp``, ``I2``, ``tau2``;
* published marker: the Kraaij et al. figure bundled in ``TrialData.published``
  (1.37 [1.21, 1.56], triple-therapy total response).

The tacrolimus data are the bundled contrasts (equal to the fixture's counts, see
tests/test_frequentist_cli.py); the other sets are the fixture's own data.
Tolerance: relative 1e-6 (absolute 1e-9 near 0).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

import bayesln
from bayesln.frequentist import forest_plot

pytestmark = pytest.mark.r_reference

FIXTURE = Path(__file__).resolve().parents[1] / "validation" / "fixtures" / "metafor_reference.json"
CASES = {c["id"]: c for c in json.loads(FIXTURE.read_text())["cases"]}
RTOL, ATOL = 1e-6, 1e-9
Z = NormalDist().inv_cdf(0.975)
LABEL = {"mh": "Mantel-Haenszel", "peto": "Peto", "iv": "Inverse variance",
         "dl": "DerSimonian-Laird", "reml": "REML", "pm": "Paule-Mandel"}
SHORT = {"mh": "MH", "peto": "Peto", "iv": "IV", "dl": "DL", "reml": "REML", "pm": "PM"}
TAC = {"tac_total": ("total_response", None), "tac_complete": ("complete_response", None),
       "tac_triple_total": ("total_response", "triple")}


def data_for(dataset: str) -> pd.DataFrame:
    if dataset in TAC:  # the bundled data, as reference.R defines the set
        outcome, regimen = TAC[dataset]
        con = bayesln.load_dataset("tacrolimus_ln").contrasts(outcome, treat="tac")
        keep = (con["phase"] == "induction").fillna(False).to_numpy(bool, copy=True)
        if regimen:
            keep = keep & (con["regimen"] == regimen).fillna(False).to_numpy(bool)
        return con[keep].reset_index(drop=True)
    d = next(c["data"] for c in CASES.values() if c["dataset"] == dataset)
    return pd.DataFrame({"study": d["study"], "events_t": d["ai"], "n_t": d["n1i"],
                         "events_c": d["ci"], "n_c": d["n2i"]})


def vals(x) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in np.atleast_1d(np.array(x, dtype=object))])


def close(a, e, what: str) -> None:
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(e, float), rtol=RTOL, atol=ATOL, err_msg=what)


class Drawn:
    """The artists of a forest plot, indexed by row (data y) and text column."""

    def __init__(self, fig):
        self.fig = fig
        self.ax = fig.axes[0]
        self.texts = [(t.get_position()[0], t.get_position()[1], t.get_text()) for t in self.ax.texts]

    def column(self, header: str) -> float:
        xs = [x for x, _, s in self.texts if s == header]
        assert len(xs) == 1, f"header {header!r}: {xs}"
        return xs[0]

    def row(self, label: str) -> float:
        ys = [y for x, y, s in self.texts if s == label and x == self.column("Study")]
        assert len(ys) == 1, f"row {label!r}: {ys}"
        return ys[0]

    def text_at(self, x: float, y: float) -> str | None:
        hits = [s for xx, yy, s in self.texts if xx == x and yy == y]
        assert len(hits) <= 1
        return hits[0] if hits else None

    def segments(self, y: float, linestyle: str = "-") -> list[np.ndarray]:
        out = []
        for ln in self.ax.lines:
            xd, yd = np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)
            if len(yd) == 2 and yd[0] == yd[1] == y and ln.get_linestyle() == linestyle:
                out.append(xd)
        return out

    def markers(self, y: float) -> list[tuple[float, float]]:
        """(x, size) of scatter markers on row y."""
        out = []
        for coll in self.ax.collections:
            offs, sizes = coll.get_offsets(), coll.get_sizes()
            for j, (x, yy) in enumerate(np.asarray(offs, float)):
                if yy == y:
                    out.append((x, float(sizes[j if len(sizes) > 1 else 0])))
        return out

    def diamond(self, y: float) -> np.ndarray:
        """x of the diamond vertices (low, top, high, bottom) on row y."""
        found = []
        for p in self.ax.patches:
            xy = np.asarray(p.get_xy(), float)[:4]
            if np.allclose(xy[:, 1], [y, y + 0.3, y, y - 0.3]):
                found.append(xy[:, 0])
        assert len(found) == 1, f"diamonds on row {y}: {found}"
        return found[0]


# (dataset, measure, fixed, random, hksj, fixture case of the fixed fit, of the random fit)
PLOTS = {
    "tac_total-RR-mh-reml": ("tac_total", "RR", "mh", "reml", False, "tac_total_RR_MH_z", "tac_total_RR_REML_z"),
    "tac_complete-OR-peto-dl-hksj": ("tac_complete", "OR", "peto", "dl", True,
                                     "tac_complete_OR_PETO_z", "tac_complete_OR_DL_knha"),
    # hksj applies to a fixed iv fit too (metafor rma(method="EE", test="knha"))
    "tac_total-RD-iv-pm-hksj": ("tac_total", "RD", "iv", "pm", True, "tac_total_RD_EE_knha", "tac_total_RD_PM_knha"),
    # zero cells and a double-zero study (Yucel 2004): metafor rma.mh has no yi for it and
    # weight 0, rma(method="REML") keeps it with 1/2 added (escalc default)
    "nielweise-RR-mh-reml": ("nielweise2007", "RR", "mh", "reml", False,
                             "nielweise2007_RR_MH_z", "nielweise2007_RR_REML_z"),
    # Peto alone: the rows are the study Peto log ORs (metafor rma.peto yi); with a random
    # fit they are the escalc log ORs that fit pools (the case above)
    "tac_complete-OR-peto-only": ("tac_complete", "OR", "peto", None, False, "tac_complete_OR_PETO_z", None),
    "nielweise-RR-mh-only": ("nielweise2007", "RR", "mh", None, False, "nielweise2007_RR_MH_z", None),
    "triple-OR-mh-only": ("tac_triple_total", "OR", "mh", None, False, "tac_triple_total_OR_MH_z", None),
    "bcg-RR-reml-only": ("bcg", "RR", None, "reml", False, None, "bcg_RR_REML_z"),
}


def draw(key: str, **kw):
    dataset, measure, fixed, random, hksj, _, _ = PLOTS[key]
    kw = {"treat_label": "Treatment", "control_label": "Control", **kw}
    return forest_plot(data_for(dataset), measure, fixed=fixed, random=random, hksj=hksj, **kw)


def weight_header(method: str) -> str:
    return f"Weight\n({SHORT[method]})"


@pytest.mark.parametrize("key", list(PLOTS))
def test_study_rows_are_the_effect_sizes(key):
    # reference: fixture yi/vi of the fit whose weights size the squares (the random fit when
    # there is one), drawn as the closed form exp(yi -/+ z sqrt(vi)); weights: weights(res)
    dataset, measure, fixed, random, hksj, fcid, rcid = PLOTS[key]
    d = Drawn(draw(key))
    ref = CASES[rcid or fcid]
    yi, vi = vals(ref["result"]["yi"]), vals(ref["result"]["vi"])
    tr = np.exp if measure in ("RR", "OR") else (lambda x: x)
    fmt = (lambda v: f"{v:.2f}") if measure != "RD" else (lambda v: f"{v:.3f}")
    studies = ref["data"]["study"]
    x_eff = d.column(f"{measure} [95% CI]")
    w_fixed = vals(CASES[fcid]["weights"]["value"]) if fcid else None
    w_random = vals(CASES[rcid]["weights"]["value"]) if rcid else None
    size_w = w_random if w_random is not None else w_fixed
    drawn_rows = 0
    for i, study in enumerate(studies):
        y = d.row(study)
        if np.isnan(yi[i]):  # metafor gives no effect size (rma.mh, double-zero study)
            assert d.segments(y) == [] and d.markers(y) == []
            assert d.text_at(x_eff, y) == "not estimable"
        else:
            drawn_rows += 1
            est, lo, hi = tr(yi[i]), tr(yi[i] - Z * math.sqrt(vi[i])), tr(yi[i] + Z * math.sqrt(vi[i]))
            (seg,) = d.segments(y)
            close(seg, [lo, hi], f"{study} CI segment")
            ((mx, size),) = d.markers(y)
            close(mx, est, f"{study} point estimate")
            # square area grows linearly with the weight: 9 + 63 w / max(w) (points^2)
            close(size, 9 + 63 * size_w[i] / np.nanmax(size_w), f"{study} square size")
            assert d.text_at(x_eff, y) == f"{fmt(est)} [{fmt(lo)}, {fmt(hi)}]"
        if w_fixed is not None:
            assert d.text_at(d.column(weight_header(fixed)), y) == f"{w_fixed[i]:.1f}%", study
        if w_random is not None:
            assert d.text_at(d.column(weight_header(random)), y) == f"{w_random[i]:.1f}%", study
        # the counts columns are the data
        assert d.text_at(d.column("Treatment\nevents/n"), y) == \
            f"{ref['data']['ai'][i]:g}/{ref['data']['n1i'][i]:g}"
        assert d.text_at(d.column("Control\nevents/n"), y) == \
            f"{ref['data']['ci'][i]:g}/{ref['data']['n2i'][i]:g}"
    assert drawn_rows == int(np.isfinite(yi).sum()) > 0
    headers = {s for _, _, s in d.texts}
    assert {h for h in headers if h.startswith("Weight")} == \
        {weight_header(m) for m in (fixed, random) if m is not None}
    # each weight column sums to 100% over the studies (metafor's weights do)
    for m, w in ((fixed, w_fixed), (random, w_random)):
        if m is not None:
            assert abs(np.nansum(w) - 100) < 1e-6
            printed = [float(d.text_at(d.column(weight_header(m)), d.row(s)).rstrip("%"))
                       for s in studies if d.text_at(d.column(weight_header(m)), d.row(s)) != "-"]
            assert abs(sum(printed) - 100) <= 0.05 * len(printed) + 1e-9
    assert d.ax.get_xscale() == ("log" if measure in ("RR", "OR") else "linear")


def _label(method: str, kind: str, hksj: bool) -> str:
    model = "common" if kind == "fixed" else "random"
    return f"{LABEL[method]} ({model} effect{', HKSJ' if hksj else ''})"


@pytest.mark.parametrize("key", list(PLOTS))
def test_diamonds_sit_at_the_pooled_estimates(key):
    # reference: metafor beta, ci.lb, ci.ub of the fixed and random fits; predict(res)
    # pi.lb/pi.ub for the dashed prediction interval; QE/QEp/I2/tau2 for the last line
    dataset, measure, fixed, random, hksj, fcid, rcid = PLOTS[key]
    d = Drawn(draw(key))
    tr = np.exp if measure in ("RR", "OR") else (lambda x: x)
    fmt = (lambda v: f"{v:.2f}") if measure != "RD" else (lambda v: f"{v:.3f}")
    x_eff = d.column(f"{measure} [95% CI]")
    n_diamonds = 0
    for kind, method, cid in (("fixed", fixed, fcid), ("random", random, rcid)):
        if method is None:
            continue
        n_diamonds += 1
        r = CASES[cid]["result"]
        est, lo, hi = tr(r["beta"]), tr(r["ci.lb"]), tr(r["ci.ub"])
        y = d.row(_label(method, kind, hksj and method not in ("mh", "peto")))
        close(d.diamond(y), [lo, est, hi, est], f"{cid} diamond")
        assert d.text_at(x_eff, y) == f"{fmt(est)} [{fmt(lo)}, {fmt(hi)}]"
        # the weight column of this model says 100.0% on its diamond's row
        assert d.text_at(d.column(weight_header(method)), y) == "100.0%"
        assert d.segments(y, "--") == []
        if kind == "random":  # the prediction interval: its own row under the diamond, dashed
            p = CASES[cid]["predict"]["value"]
            y_pi = d.row(f"Prediction interval ({SHORT[method]})")
            assert y_pi == y - 1
            (pi,) = d.segments(y_pi, "--")
            close(pi, [tr(p["pi.lb"]), tr(p["pi.ub"])], f"{cid} prediction interval")
            assert d.text_at(x_eff, y_pi) == f"PI [{fmt(tr(p['pi.lb']))}, {fmt(tr(p['pi.ub']))}]"
    if random is None:
        assert not any(s.startswith("Prediction interval") for _, _, s in d.texts)
    assert len(d.ax.patches) == n_diamonds
    # heterogeneity line: of the random fit, else of the fixed fit
    last = CASES[rcid or fcid]["result"]
    het = next(s for _, _, s in d.texts if s.startswith("Heterogeneity"))
    df = last.get("k.yi", last["k"]) - 1
    expect = f"Heterogeneity: Q = {last['QE']:.2f} (df = {df}, p = {last['QEp']:.3g}), I\u00b2 = {last['I2']:.0f}%"
    if rcid:
        expect += f", \u03c4\u00b2 = {last['tau2']:.3g}"
    assert het == expect
    # line of no effect
    null = 1.0 if measure in ("RR", "OR") else 0.0
    assert any(np.allclose(ln.get_xdata(), [null, null]) for ln in d.ax.lines)


def test_published_marker():
    # reference: TrialData.published, Kraaij triple-therapy total response 1.37 (1.21-1.56);
    # the MH diamond above it: fixture tac_triple_total_RR_MH_z (rma.mh), which rounds to it
    pub = bayesln.load_dataset("tacrolimus_ln").published
    row = pub[(pub["outcome"] == "total_response") & (pub["subgroup"] == "triple")].iloc[0]
    assert (row["estimate"], row["ci_low"], row["ci_high"]) == (1.37, 1.21, 1.56)
    fig = forest_plot(data_for("tac_triple_total"), "RR", fixed="mh", random=None,
                      published={"estimate": 1.37, "ci_low": 1.21, "ci_high": 1.56, "label": "Kraaij"})
    d = Drawn(fig)
    y = d.row("Kraaij (published)")
    ((x, _),) = d.markers(y)
    assert x == 1.37
    (seg,) = d.segments(y)
    close(seg, [1.21, 1.56], "published CI")
    x_eff = d.column("RR [95% CI]")
    assert d.text_at(x_eff, y) == "1.37 [1.21, 1.56]"
    r = CASES["tac_triple_total_RR_MH_z"]["result"]
    y_mh = d.row("Mantel-Haenszel (common effect)")
    close(d.diamond(y_mh), np.exp([r["ci.lb"], r["beta"], r["ci.ub"], r["beta"]]), "MH diamond")
    assert d.text_at(x_eff, y_mh) == d.text_at(x_eff, y) == "1.37 [1.21, 1.56]"


@pytest.mark.parametrize("key", ["tac_total-RD-iv-pm-hksj", "nielweise-RR-mh-reml", "tac_total-RR-mh-reml"])
def test_text_columns_do_not_overlap(key):
    # rendered with Agg: in every study row the text boxes (name, counts, effect [CI],
    # weights) are disjoint left to right, and they stay inside the figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = draw(key)
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    fig_box = fig.bbox
    rows: dict[float, list] = {}
    for t in ax.texts:
        rows.setdefault(t.get_position()[1], []).append(t)
    study_rows = [Drawn(fig).row(s) for s in data_for(PLOTS[key][0])["study"]]
    for y in study_rows:
        boxes = sorted((t.get_window_extent(renderer) for t in rows[y]), key=lambda b: b.x0)
        assert len(boxes) >= 4
        for a, b in zip(boxes, boxes[1:]):
            assert a.x1 <= b.x0, f"row {y}: texts overlap ({a.x1:.1f} > {b.x0:.1f} px)"
        assert boxes[0].x0 >= fig_box.x0 and boxes[-1].x1 <= fig_box.x1


def test_fits_drawn_are_the_fits_returned():
    # the figure records the fits it drew; their numbers are metafor's (fixture cases)
    fig = draw("tac_total-RR-mh-reml")
    fixed, random = fig.bayesln_results
    close(fixed.fit.beta, CASES["tac_total_RR_MH_z"]["result"]["beta"], "MH beta")
    close(random.fit.beta, CASES["tac_total_RR_REML_z"]["result"]["beta"], "REML beta")
