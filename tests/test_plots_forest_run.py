"""The run's forest plot (bayesln.plots.forest_plot on a Bayesian fit) draws what the fit,
its summary and the comparison table say: the Bayesian pooled diamond at the posterior
median and 95% interval of exp(d) (the summary's "pooled OR" row, here recomputed from the
draws), and, in the RR panel, every relative risk of the comparison table at its value,
the published Kraaij et al. RR marked (open orange diamond at 1.23, 1.12-1.34: the
published table, also in data/tacrolimus_ln/published_pooled.csv).

Passing the fit alone (no analysis) still gives every trial once: the rows are built
from the fit's own arms, each trial's arms on the same side pooled, and they equal
``TrialData.contrasts`` of the spec's trials."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from matplotlib.text import Annotation

import bayesln

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def analysis():
    from bayesln.analysis import run_analysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return run_analysis("models/total_response.toml", draws=300, tune=300, chains=2, progressbar=False)


def _cells(ax):
    return [(t.get_position()[0], t.get_position()[1], t.get_text()) for t in ax.texts
            if not isinstance(t, Annotation)]


def _row(cells, label):
    x0 = min(x for x, _, _ in cells)
    (y,) = [y for x, y, s in cells if s == label and x == x0]
    return y


def _diamond(ax, y):
    (xy,) = [np.asarray(p.get_xy(), float)[:4] for p in ax.patches
             if np.allclose(np.asarray(p.get_xy(), float)[:4, 1], [y, y + 0.3, y, y - 0.3])]
    return xy[:, 0]


def test_forest_has_the_bayesian_diamond_and_the_published_rr_on_an_rr_axis(analysis):
    from bayesln.plots import forest_plot

    comp = analysis.comparison
    rr = comp[(comp["subgroup"] == "all") & (comp["measure"] == "RR")]
    fig = forest_plot(analysis.result, rr_rows=rr)
    ax, ax_rr = fig.axes
    cells = _cells(ax)
    or_draws = np.exp(analysis.result.idata.posterior["d"].values.ravel())
    lo, med, hi = np.quantile(or_draws, [0.025, 0.5, 0.975])
    np.testing.assert_allclose(_diamond(ax, _row(cells, "Bayesian random effect")), [lo, med, hi, med], rtol=1e-12)
    pub = rr[rr["source"] == "published"].iloc[0]
    assert (pub["estimate"], pub["ci_low"], pub["ci_high"]) == (1.23, 1.12, 1.34)
    rr_cells = _cells(ax_rr)
    y_pub = _row(rr_cells, f"Kraaij et al. (published, k = {int(pub['k'])})")
    orange = [(off, coll) for coll in ax_rr.collections for off in np.asarray(coll.get_offsets(), float)
              if np.isclose(off[1], y_pub)]
    assert len(orange) == 1 and np.isclose(orange[0][0][0], 1.23)
    edge = orange[0][1].get_edgecolor()[0][:3]
    assert np.allclose(edge, (0xE6 / 255, 0x61 / 255, 0x01 / 255), atol=0.01)  # the published colour
    # every RR row is a line from its ci_low to its ci_high with its value printed
    x_est = next(x for x, _, s in rr_cells if s == "RR [95% CI]")
    printed = {s for x, _, s in rr_cells if x == x_est}
    segs = [np.asarray(ln.get_xdata(), float) for ln in ax_rr.lines if len(ln.get_xdata()) == 2]
    for _, r in rr.iterrows():
        assert any(np.allclose(sorted(s), [r["ci_low"], r["ci_high"]]) for s in segs), r["method"]
        assert f"{r['estimate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" in printed
    assert ax_rr.get_xscale() == "log" and ax.get_xscale() == "log"


def test_fit_alone_rows_are_the_pooled_contrasts(analysis):
    # reference: TrialData.contrasts of the spec's trials (induction RCTs; multi-arm pooled)
    from bayesln.plots import forest_plot

    td = bayesln.load_dataset("tacrolimus_ln").select(phases="induction", designs="rct")
    con = td.contrasts("total_response", treat="tac")
    fig = forest_plot(analysis.result)
    cells = _cells(fig.axes[0])
    treat_x = next(x for x, _, s in cells if s == "TAC\nevents/n")
    ctrl_x = next(x for x, _, s in cells if s == "IVCY/MMF\nevents/n")
    for _, r in con.iterrows():
        y = _row(cells, r["study"])  # no studies table given: labelled by the study id
        assert [s for x, yy, s in cells if yy == y and x == treat_x] == [f"{r['events_t']}/{r['n_t']}"]
        assert [s for x, yy, s in cells if yy == y and x == ctrl_x] == [f"{r['events_c']}/{r['n_c']}"]
    assert len(fig.axes) == 1  # no comparison given: no RR panel
