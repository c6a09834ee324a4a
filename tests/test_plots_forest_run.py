"""The run's forest plot (bayesln.plots.forest_plot) draws what the fit and the comparison
table say: the Bayesian pooled diamond at the posterior quantiles of exp(d), and, in the RR
panel, every relative risk of the comparison table at its value, the published Kraaij et
al. RR marked (orange diamond at 1.23, 1.12-1.34: the published table, also in
data/tacrolimus_ln/published_pooled.csv)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from matplotlib.patches import Polygon

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def analysis():
    from bayesln.analysis import run_analysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return run_analysis("models/total_response.toml", draws=300, tune=300, chains=2, progressbar=False)


def _diamonds(ax):
    out = []
    for p in ax.patches:
        if isinstance(p, Polygon):
            xy = np.asarray(p.get_xy())
            out.append((sorted(set(np.round(xy[:, 0], 10))), p.get_facecolor()))
    return out


def test_forest_has_the_bayesian_diamond_and_the_published_rr_on_an_rr_axis(analysis):
    from bayesln.plots import forest_plot

    comp = analysis.comparison
    rr = comp[(comp["subgroup"] == "all") & (comp["measure"] == "RR")]
    fig = forest_plot(analysis.result, rr_rows=rr)
    ax, ax_rr = fig.axes
    d = analysis.result.idata.posterior["d"].values.ravel()
    q = np.exp(np.quantile(d, [0.025, 0.5, 0.975]))
    assert any(np.allclose(xs, q, rtol=1e-9) for xs, _ in _diamonds(ax) if len(xs) == 3)
    pub = rr[rr["source"] == "published"].iloc[0]
    assert (pub["estimate"], pub["ci_low"], pub["ci_high"]) == (1.23, 1.12, 1.34)
    orange = [xs for xs, fc in _diamonds(ax_rr) if np.allclose(fc[:3], (1.0, 0.498, 0.0549), atol=0.01)]
    assert orange == [[1.12, 1.23, 1.34]]
    labels = [t.get_text() for t in ax_rr.get_yticklabels()]
    assert len(labels) == len(rr) and any(lab.startswith("Kraaij et al. (published) RR 1.23 (1.12-1.34)") for lab in labels)
    # every other RR row is a line from its ci_low to its ci_high with its point at the estimate
    segs = [np.asarray(s) for coll in ax_rr.collections for s in coll.get_segments()]
    for _, r in rr[rr["source"] != "published"].iterrows():
        assert any(np.allclose(sorted(s[:, 0]), [r["ci_low"], r["ci_high"]]) for s in segs), r["method"]
    assert ax_rr.get_xscale() == "log" and ax.get_xscale() == "log"
