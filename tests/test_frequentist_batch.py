"""batch_meta_analysis agrees with the scalar path (which agrees with metafor, see
test_frequentist_metafor.py) and handles padding, non-estimable rows and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesln.frequentist import FrequentistInputError, NotEstimableError, batch_meta_analysis, meta_analysis

FIXTURE = Path(__file__).resolve().parents[1] / "validation" / "fixtures" / "metafor_reference.json"
REF = {c["id"]: c for c in json.loads(FIXTURE.read_text())["cases"]}


def simulate(n=60, k_max=8, seed=7):
    rng = np.random.default_rng(seed)
    n1 = rng.integers(5, 80, (n, k_max)).astype(float)
    n2 = rng.integers(5, 80, (n, k_max)).astype(float)
    base = rng.uniform(0.01, 0.5, (n, 1)) * np.exp(rng.normal(0, 0.5, (n, k_max)))
    a = rng.binomial(n1.astype(int), np.clip(base, 0, 1)).astype(float)
    c = rng.binomial(n2.astype(int), np.clip(base * 0.7, 0, 1)).astype(float)
    k = rng.integers(1, k_max + 1, n)
    pad = np.arange(k_max)[None, :] >= k[:, None]
    for arr in (a, n1, c, n2):
        arr[pad] = np.nan
    return a, n1, c, n2


def row_frame(a, n1, c, n2, i):
    m = ~np.isnan(a[i])
    return pd.DataFrame({"study": [f"s{j}" for j in range(m.sum())], "events_t": a[i, m], "n_t": n1[i, m],
                         "events_c": c[i, m], "n_c": n2[i, m]})


@pytest.mark.parametrize("measure", ["RR", "OR", "RD"])
def test_batch_agrees_with_scalar_path(measure):
    a, n1, c, n2 = simulate()
    out = batch_meta_analysis(a, n1, c, n2, measure)
    assert len(out) == a.shape[0]
    checked = 0
    for i in range(a.shape[0]):
        df = row_frame(a, n1, c, n2, i)
        for method in ("mh", "dl", "reml"):
            try:
                res = meta_analysis(df, measure, method)
            except NotEstimableError:
                assert np.isnan(out.loc[i, f"{method}_log_estimate"]), (i, method)
                assert out.loc[i, "status"] != "ok"
                continue
            row = res.summary.iloc[0]
            for col in ("estimate", "ci_low", "ci_high", "log_estimate", "se", "pvalue"):
                assert out.loc[i, f"{method}_{col}"] == pytest.approx(row[col], rel=1e-8, abs=1e-12), (i, method, col)
            if method == "mh":
                assert out.loc[i, "mh_q"] == pytest.approx(row["q"], rel=1e-8, abs=1e-12)
                assert out.loc[i, "mh_q_df"] == row["q_df"]
            else:
                # tau^2 near 0 differs only by summation-order rounding
                assert out.loc[i, f"{method}_tau2"] == pytest.approx(row["tau2"], rel=1e-6, abs=1e-14)
                assert out.loc[i, f"{method}_i2"] == pytest.approx(row["i2"], rel=1e-6, abs=1e-9)
                assert out.loc[i, "q"] == pytest.approx(row["q"], rel=1e-8, abs=1e-12)
            checked += 1
        assert out.loc[i, "k"] == len(df)
    assert checked > 120


def test_batch_matches_metafor_on_bcg():
    # reference: fixture bcg_RR_REML_z / bcg_RR_DL_z / bcg_RR_MH_z (metafor rma / rma.mh on dat.bcg)
    d = REF["bcg_RR_REML_z"]["data"]
    out = batch_meta_analysis(d["ai"], d["n1i"], d["ci"], d["n2i"], "RR").iloc[0]
    for method in ("MH", "DL", "REML"):
        r = REF[f"bcg_RR_{method}_z"]["result"]
        assert out[f"{method.lower()}_log_estimate"] == pytest.approx(r["beta"], rel=1e-6)
        assert out[f"{method.lower()}_se"] == pytest.approx(r["se"], rel=1e-6)
    assert out["reml_tau2"] == pytest.approx(REF["bcg_RR_REML_z"]["result"]["tau2"], rel=1e-6)
    assert out["dl_i2"] == pytest.approx(REF["bcg_RR_DL_z"]["result"]["I2"], rel=1e-6)
    assert out["reml_converged"]


def test_batch_special_rows():
    nan = np.nan
    a = np.array([[nan, nan], [0, 0], [3, 1], [19, 13]], float)
    n1 = np.array([[nan, nan], [10, 12], [10, nan], [82, 56]], float)
    c = np.array([[nan, nan], [0, 0], [2, nan], [25, 30]], float)
    n2 = np.array([[nan, nan], [10, 9], [10, nan], [141, 172]], float)
    a[2, 1] = nan
    out = batch_meta_analysis(a, n1, c, n2)
    assert out["status"].tolist()[:3] == ["no studies", "every study double-zero: not estimable", "ok"]
    assert out.loc[2, "k"] == 1 and out.loc[2, "dl_tau2"] == 0 and out.loc[2, "q"] == 0
    assert out.loc[[0, 1], ["mh_estimate", "dl_estimate", "reml_estimate"]].isna().all().all()


def test_batch_one_dimensional_input_is_one_meta_analysis():
    # reference: fixture tac_total_RR_MH_z (metafor rma.mh)
    d = REF["tac_total_RR_MH_z"]["data"]
    out = batch_meta_analysis(d["ai"], d["n1i"], d["ci"], d["n2i"])
    assert len(out) == 1
    assert out.loc[0, "mh_log_estimate"] == pytest.approx(REF["tac_total_RR_MH_z"]["result"]["beta"], rel=1e-6)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a, n1, c, n2: a.__setitem__((0, 0), 99), "events exceed n"),
        (lambda a, n1, c, n2: n2.__setitem__((1, 0), 0), "empty arm"),
        (lambda a, n1, c, n2: c.__setitem__((1, 1), np.nan), "padding must be NaN in all four"),
        (lambda a, n1, c, n2: a.__setitem__((0, 1), np.inf), "non-finite"),
    ],
)
def test_batch_bad_input(change, match):
    a = np.array([[1, 2], [3, 4]], float)
    n1 = np.array([[10, 10], [10, 10]], float)
    c, n2 = a.copy(), n1.copy()
    change(a, n1, c, n2)
    with pytest.raises(FrequentistInputError, match=match):
        batch_meta_analysis(a, n1, c, n2)
    with pytest.raises(FrequentistInputError, match="shape"):
        batch_meta_analysis(a, n1[:, :1], c, n2)
