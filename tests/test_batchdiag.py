"""Batched R-hat / ESS (bayesln.hierarchy.batchdiag) against ArviZ's own one-parameter-
at-a-time implementation (az.rhat(method="rank"), az.ess(method="bulk" / "tail")), the
reference the gate used before, on chains with known awkward features."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy import stats

from bayesln.hierarchy import batchdiag
from bayesln.hierarchy.diagnostics import _arviz_table, _diagnostics_table, run_gate


def _ar1(rng, shape, phi):
    x = rng.normal(size=shape)
    for t in range(1, shape[1]):
        x[:, t] = phi * x[:, t - 1] + x[:, t]
    return x


def _arviz(x):
    """ArviZ's values for a (chain, draw, k) array, parameter by parameter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = []
        for j in range(x.shape[2]):
            y = x[:, :, j]
            out.append((float(az.rhat(y, method="rank")), float(az.ess(y, method="bulk")), float(az.ess(y, method="tail"))))
    return np.array(out)


@pytest.mark.parametrize(
    "shape,phi",
    [((4, 400), 0.0), ((4, 401), 0.9), ((2, 50), 0.5), ((1, 300), 0.7), ((3, 7), 0.2), ((4, 1000), 0.995)],
)
def test_matches_arviz_on_autocorrelated_chains(shape, phi):
    rng = np.random.default_rng(sum(shape))
    k = 6
    x = np.stack([_ar1(rng, shape, phi) + 0.3 * j for j in range(k)], axis=-1)
    x[..., 1] += np.arange(shape[0])[:, None]  # chains that disagree
    r, eb, et = batchdiag.diagnostics(x)
    ref = _arviz(x)
    np.testing.assert_allclose(r, ref[:, 0], rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(eb, ref[:, 1], rtol=1e-10)
    np.testing.assert_allclose(et, ref[:, 2], rtol=1e-10)
    np.testing.assert_allclose(batchdiag.rhat_rank(x), r, equal_nan=True)
    np.testing.assert_allclose(batchdiag.ess_bulk(x), eb)
    np.testing.assert_allclose(batchdiag.ess_tail(x), et)


def test_ties_constants_and_nans():
    rng = np.random.default_rng(3)
    x = np.stack([
        rng.integers(0, 3, size=(4, 200)).astype(float),  # heavy ties
        np.round(rng.normal(size=(4, 200)), 1),  # some ties
        np.full((4, 200), 2.5),  # constant
        rng.normal(size=(4, 200)),
    ], axis=-1)
    x[0, 5, 3] = np.nan
    r, eb, et = batchdiag.diagnostics(x)
    ref = _arviz(x[..., :3])
    np.testing.assert_allclose(r[:3], ref[:, 0], rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(eb[:3], ref[:, 1], rtol=1e-10)
    np.testing.assert_allclose(et[:3], ref[:, 2], rtol=1e-10)
    assert np.isnan(r[3]) and np.isnan(eb[3]) and np.isnan(et[3])  # as ArviZ: NaN draws, no value


def test_average_ranks_equal_scipy():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, 4, 500), rng.normal(size=500), np.abs(rng.normal(size=500) - 0.0)]).astype(float)
    x[:, 2] = np.abs(x[:, 1] - np.median(x[:, 1]))  # the two middle draws tie
    np.testing.assert_array_equal(batchdiag._average_ranks(x), stats.rankdata(x, method="average", axis=0))


def test_blocks_give_the_same_values(monkeypatch):
    rng = np.random.default_rng(1)
    x = _ar1(rng, (4, 300), 0.6)[..., None] + rng.normal(size=(1, 1, 25))
    whole = batchdiag.diagnostics(x)
    monkeypatch.setattr(batchdiag, "_BLOCK", 7)
    for a, b in zip(whole, batchdiag.diagnostics(x)):
        np.testing.assert_array_equal(a, b)


def test_gate_table_equals_the_arviz_table():
    rng = np.random.default_rng(5)
    ds = xr.Dataset(
        {"d": (("chain", "draw"), _ar1(rng, (4, 250), 0.8)),
         "delta": (("chain", "draw", "study"), _ar1(rng, (4, 250, 3), 0.3)),
         "beta": (("chain", "draw", "outcome", "covariate"), rng.normal(size=(4, 250, 2, 2)))},
        coords={"study": ["a", "b", "c"], "outcome": ["tr", "inf"], "covariate": ["regimen:triple", "phase"]},
    )
    mine = _diagnostics_table(ds)
    ref = _arviz_table(ds)
    assert mine["parameter"].tolist() == ref["parameter"].tolist()
    assert "beta[inf,phase]" in set(mine["parameter"])
    for c in ("r_hat", "ess_bulk", "ess_tail"):
        np.testing.assert_allclose(mine[c].to_numpy(), ref[c].to_numpy(), rtol=1e-10)
    assert run_gate(ds, None, warn=False).table["parameter"].tolist() == mine["parameter"].tolist()


def test_shape_errors():
    with pytest.raises(ValueError, match="chain, draw, parameter"):
        batchdiag.diagnostics(np.zeros(5))


def test_bfmi_equals_arviz():
    """The gate's E-BFMI (bayesln._arviz.bfmi, NumPy so that the gate never imports ArviZ)
    equals ArviZ's az.bfmi on energy traces with low and high autocorrelation."""
    from bayesln import _arviz

    rng = np.random.default_rng(8)
    for phi in (0.0, 0.6, 0.97):
        e = np.zeros((4, 500))
        for t in range(1, 500):
            e[:, t] = phi * e[:, t - 1] + rng.normal(size=4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = az.bfmi(e)
        np.testing.assert_allclose(_arviz.bfmi(e), ref, rtol=1e-12)
