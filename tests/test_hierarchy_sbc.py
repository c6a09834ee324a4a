"""A small simulation-based calibration of the core model (the full one, 300 datasets, is
benchmarks/sbc_core.py -> benchmarks/results/sbc_core.json)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_sbc():
    spec = importlib.util.spec_from_file_location("sbc_core", ROOT / "benchmarks" / "sbc_core.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rank_and_uniformity_helpers():
    sbc = load_sbc()
    rng = np.random.default_rng(0)
    draws = np.arange(1000.0)
    assert sbc.rank_of(-1.0, draws, rng) == 0
    assert sbc.rank_of(1e9, draws, rng) == sbc.L_DRAWS
    ranks = np.tile(np.arange(100), 5)  # perfectly uniform
    u = sbc.uniformity(ranks)
    assert u["chisq_p"] > 0.99 and sum(u["histogram"]) == 500
    skewed = np.minimum(rng.integers(0, 100, 500), rng.integers(0, 100, 500))
    assert sbc.uniformity(skewed)["chisq_p"] < 1e-6


@pytest.mark.slow
def test_small_sbc():
    sbc = load_sbc()
    res = sbc.run_sbc(n_sims=20, seed=7, draws=500, tune=500, chains=2, progress=False)
    # 20 datasets have little power: only a gross miscalibration is caught (alpha = 0.001)
    for p in ("d", "tau"):
        r = res["results"][p]
        assert sum(r["histogram"]) == 20
        assert r["chisq_p"] > 0.001 and r["ks_p"] > 0.001, (p, r)
    assert res["settings"]["n_sims"] == 20 and "nutpie" in res["versions"]
