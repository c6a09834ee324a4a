"""Diagnostics gate: unit tests on synthetic draws (fast) and on small real fits (slow)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesln.hierarchy import GateThresholds, fit_core, run_gate


def posterior(arrays: dict) -> xr.Dataset:
    data = {}
    for k, a in arrays.items():
        dims = ("chain", "draw") + tuple(f"{k}_dim" for _ in range(a.ndim - 2))
        data[k] = (dims, a)
    return xr.Dataset(data)


def stats_ds(chains=4, draws=1000, divergences=0, energy=None, seed=0):
    rng = np.random.default_rng(seed)
    div = np.zeros((chains, draws), bool)
    div.flat[:divergences] = True
    if energy is None:
        energy = rng.normal(size=(chains, draws))
    return xr.Dataset({"diverging": (("chain", "draw"), div), "energy": (("chain", "draw"), energy)})


def test_gate_passes_iid_draws():
    rng = np.random.default_rng(1)
    post = posterior({"d": rng.normal(size=(4, 1000)), "mu": rng.normal(size=(4, 1000, 3)), "eta": np.zeros((4, 1000, 2))})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = run_gate(post, stats_ds())
    assert g.passed and g.verdict == "pass" and g.divergences == 0
    assert list(g.table.columns) == ["parameter", "r_hat", "ess_bulk", "ess_tail", "ok"]
    assert set(g.table["parameter"]) == {"d", "mu[0]", "mu[1]", "mu[2]"}  # eta is not gated
    assert len(g.bfmi) == 4 and (g.bfmi > 0.3).all()


def test_gate_fails_and_names_parameters_and_numbers():
    rng = np.random.default_rng(2)
    bad = rng.normal(size=(4, 1000)) + np.array([0, 0, 0, 3.0])[:, None]  # one chain elsewhere
    ar = np.zeros((4, 1000))
    e = rng.normal(size=(4, 1000))
    for t in range(1, 1000):
        ar[:, t] = 0.995 * ar[:, t - 1] + e[:, t]  # very autocorrelated
    walk = np.cumsum(rng.normal(size=(4, 1000)), axis=1)  # energy random walk: tiny E-BFMI
    post = posterior({"tau": bad, "d": ar})
    with pytest.warns(UserWarning) as rec:
        g = run_gate(post, stats_ds(divergences=3, energy=walk))
    msg = str(rec[0].message)
    assert not g.passed
    assert re.search(r"R-hat > 1.01: tau \(\d\.\d{3}\)", msg)
    assert re.search(r"bulk ESS < 400: .*\bd \(\d+\)", msg)
    assert "3 divergent transitions" in msg and "E-BFMI < 0.3: chain 0" in msg
    assert g.divergences == 3
    # thresholds are configurable
    g2 = run_gate(post, stats_ds(), GateThresholds(r_hat_max=10, ess_bulk_min=1, ess_tail_min=1), warn=False)
    assert g2.passed


def simulated_trials(k=6, seed=11, d=0.6, tau=0.2, n=60):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(k):
        mu = rng.normal(-0.3, 0.6)
        delta = rng.normal(d, tau)
        rows.append({"study": f"s{i}", "arm": "tac", "treatment": "tac", "events": rng.binomial(n, 1 / (1 + np.exp(-(mu + delta)))), "n": n})
        rows.append({"study": f"s{i}", "arm": "ivcy", "treatment": "ivcy", "events": rng.binomial(n, 1 / (1 + np.exp(-mu))), "n": n})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_gate_on_small_simulated_fit():
    df = simulated_trials()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # 4 x 2000 draws: at 4 x 1000 the max R-hat of this fit reached 1.008 in 20 seeds
        # (natively and with generic-CPU code), too close to 1.01 for any machine
        res = fit_core(df, "total_response", seed=5, draws=2000, tune=1000, chains=4, prior_predictive=False)
    assert res.status == "ok", res.diagnostics.problems
    assert res.diagnostics.table["r_hat"].max() <= 1.01
    # a far too short run fails the gate: status and a UserWarning naming parameters
    with pytest.warns(UserWarning, match=r"diagnostics gate failed.*(ESS|R-hat).*\b(d|tau|mu\[s\d\]|z\[s\d\])\b"):
        short = fit_core(df, "total_response", seed=5, draws=40, tune=40, chains=2, prior_predictive=False)
    assert short.status == "failed_gate" and short.diagnostics.problems
