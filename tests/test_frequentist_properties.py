"""Property-based tests of bayesln.frequentist (hypothesis).

These check mathematical invariances, not reference numbers:
* swapping the arms inverts RR/OR (negates log RR/log OR) and negates RD, for every method;
* permuting the study order changes nothing;
* multiplying every count by an integer leaves the Mantel-Haenszel point estimates unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesln.frequentist import NotEstimableError, meta_analysis

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tables(draw, min_k=1, max_k=7, max_n=60):
    k = draw(st.integers(min_k, max_k))
    rows = []
    for i in range(k):
        n_t = draw(st.integers(1, max_n))
        n_c = draw(st.integers(1, max_n))
        rows.append({
            "study": f"s{i}",
            "events_t": draw(st.integers(0, n_t)),
            "n_t": n_t,
            "events_c": draw(st.integers(0, n_c)),
            "n_c": n_c,
        })
    return pd.DataFrame(rows)


def _fit(df, measure, method, **kw):
    try:
        return meta_analysis(df, measure, method, **kw).fit
    except NotEstimableError:
        return None


def _swap(df):
    return df.rename(columns={"events_t": "events_c", "n_t": "n_c", "events_c": "events_t", "n_c": "n_t"})


COMBOS = [(m, meth) for m in ("RR", "OR", "RD") for meth in ("mh", "iv", "dl", "reml", "pm")] + [("OR", "peto")]


@pytest.mark.parametrize(("measure", "method"), COMBOS)
@SETTINGS
@given(df=tables())
def test_swapping_arms_inverts_the_effect(df, measure, method):
    a = _fit(df, measure, method)
    b = _fit(_swap(df), measure, method)
    assert (a is None) == (b is None), "estimability must not depend on which arm is called treatment"
    if a is None:
        return
    # log RR / log OR / RD change sign; the SE, heterogeneity and tau^2 do not change
    assert b.beta == pytest.approx(-a.beta, rel=1e-9, abs=1e-12)
    assert b.se == pytest.approx(a.se, rel=1e-9, abs=1e-12)
    assert b.ci_lb == pytest.approx(-a.ci_ub, rel=1e-9, abs=1e-12)
    assert b.q == pytest.approx(a.q, rel=1e-9, abs=1e-9)
    assert b.tau2 == pytest.approx(a.tau2, rel=1e-7, abs=1e-10)
    if measure in ("RR", "OR"):
        ra = meta_analysis(df, measure, method).summary.iloc[0]
        rb = meta_analysis(_swap(df), measure, method).summary.iloc[0]
        assert rb["estimate"] == pytest.approx(1 / ra["estimate"], rel=1e-9)
        assert rb["ci_high"] == pytest.approx(1 / ra["ci_low"], rel=1e-9)


@pytest.mark.parametrize(("measure", "method"), COMBOS + [("RR", "reml_knha")])
@SETTINGS
@given(df=tables(min_k=2), seed=st.integers(0, 2**32 - 1))
def test_study_order_does_not_matter(df, seed, measure, method):
    hksj = method.endswith("_knha")
    method = method.removesuffix("_knha")
    perm = np.random.default_rng(seed).permutation(len(df))
    a = _fit(df, measure, method, hksj=hksj)
    b = _fit(df.iloc[perm].reset_index(drop=True), measure, method, hksj=hksj)
    assert (a is None) == (b is None)
    if a is None:
        return
    # only the summation order differs, so agreement is to rounding
    for name in ("beta", "se", "ci_lb", "ci_ub", "tau2", "q", "i2", "pi_lb", "pi_ub", "tau2_ci_lb", "tau2_ci_ub"):
        x, y = getattr(a, name), getattr(b, name)
        if math.isnan(x):
            assert math.isnan(y), name
        else:
            assert y == pytest.approx(x, rel=1e-8, abs=1e-10), name
    # per-study weights follow their study
    np.testing.assert_allclose(b.weights, a.weights[perm], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("measure", ["RR", "OR", "RD"])
@SETTINGS
@given(df=tables(), factor=st.integers(2, 9))
def test_scaling_counts_leaves_mh_estimate_unchanged(df, factor, measure):
    a = _fit(df, measure, "mh")
    scaled = df.copy()
    for col in ("events_t", "n_t", "events_c", "n_c"):
        scaled[col] = scaled[col] * factor
    b = _fit(scaled, measure, "mh")
    assert (a is None) == (b is None)
    if a is None:
        return
    assert b.beta == pytest.approx(a.beta, rel=1e-9, abs=1e-12)
    # and the SE shrinks (more information); exactly by sqrt(factor) for the ratio measures
    if measure in ("RR", "OR"):
        assert b.se == pytest.approx(a.se / math.sqrt(factor), rel=1e-9)
