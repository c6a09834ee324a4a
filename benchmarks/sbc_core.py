"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788) of the core model.

Simulate ``n_sims`` datasets of six two-arm trials from the prior of the default core
model (independent baselines mu_i ~ N(0, 2.5), d ~ N(0, 2.5), tau ~ HalfNormal(0.5),
delta_i ~ N(d, tau), arm sizes 20-100), fit each with the default sampler settings, and
compute the rank of the true d and tau among L = 99 thinned posterior draws. If the
sampler and the model agree, the ranks are uniform on 0..99: checked with a chi-square
test on 20 bins and a Kolmogorov-Smirnov test of the jittered ranks, at alpha = 0.01.

The prior draws are made with numpy from the documented priors (not with PyMC), so the
check also confirms that the PyMC model is the documented one.

The model is compiled once per process for nutpie
(:func:`bayesln.hierarchy.sampling.cached_nutpie_model`) and each dataset is swapped in with
``compiled.with_data(events_data=..., n_data=...)``. The datasets are fitted through an
executor (:mod:`bayesln.executor`, ``--executor``: default local worker processes on all
cores for 16 or more datasets when the machine has at least twice as many cores as
chains, each worker compiling once; else in-process); dataset ``s`` has its own
seed sequence (``SeedSequence(seed).spawn(n_sims)[s]``), so the results do not depend on
the executor.

Run from the repository root::

    python benchmarks/sbc_core.py                 # 300 datasets -> benchmarks/results/sbc_core.json
    python benchmarks/sbc_core.py --n-sims 20 --out /tmp/sbc.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bayesln.executor import auto_parallel, resolve_executor, run_batch  # noqa: E402
from bayesln.hierarchy import build_design, model_from_design, run_gate  # noqa: E402
from bayesln.hierarchy.model import binomial_log_coefficient  # noqa: E402
from bayesln.hierarchy.sampling import (  # noqa: E402
    SamplerSettings,
    cached_nutpie_model,
    compile_stats,
    sample_nutpie_compiled,
)

ARM_N = np.array([20, 30, 40, 60, 80, 100])  # per arm, both arms of a trial
L_DRAWS = 99  # thinned posterior draws per dataset -> ranks 0..99
N_BINS = 20
PARAMS = ("d", "tau")


def skeleton(arm_n=ARM_N) -> pd.DataFrame:
    rows = []
    for i, n in enumerate(arm_n):
        rows.append({"study": f"s{i}", "arm": "tac", "treatment": "tac", "events": n // 2, "n": int(n)})
        rows.append({"study": f"s{i}", "arm": "ivcy", "treatment": "ivcy", "events": n // 2, "n": int(n)})
    return pd.DataFrame(rows)


def draw_prior(rng: np.random.Generator, k: int) -> dict:
    """One draw of the default core model's prior (numpy, from the documentation)."""
    mu = rng.normal(0.0, 2.5, k)
    d = rng.normal(0.0, 2.5)
    tau = abs(rng.normal(0.0, 0.5))
    delta = d + tau * rng.standard_normal(k)
    return {"mu": mu, "d": d, "tau": tau, "delta": delta}


def simulate(rng, design, truth) -> np.ndarray:
    eta = truth["mu"][design.arm_study] + design.treated * truth["delta"][design.arm_study]
    return rng.binomial(design.n, expit(eta))


def rank_of(true_value: float, draws: np.ndarray, rng: np.random.Generator) -> int:
    """Rank of the truth among L thinned draws (ties, impossible here, broken at random)."""
    idx = np.linspace(0, draws.size - 1, L_DRAWS).round().astype(int)
    thinned = draws[idx]
    below = int(np.sum(thinned < true_value))
    ties = int(np.sum(thinned == true_value))
    return below + (int(rng.integers(0, ties + 1)) if ties else 0)


def uniformity(ranks: np.ndarray) -> dict:
    counts = np.bincount(ranks * N_BINS // (L_DRAWS + 1), minlength=N_BINS)
    chi = stats.chisquare(counts)
    u = (ranks + np.random.default_rng(0).uniform(size=ranks.size)) / (L_DRAWS + 1)
    ks = stats.kstest(u, "uniform")
    return {
        "chisq_statistic": float(chi.statistic),
        "chisq_df": N_BINS - 1,
        "chisq_p": float(chi.pvalue),
        "ks_statistic": float(ks.statistic),
        "ks_p": float(ks.pvalue),
        "histogram": counts.tolist(),
        "expected_per_bin": ranks.size / N_BINS,
    }


def _design():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(skeleton(), "total_response", warn=False)


def _compiled(design):
    """The compiled default core model of this process (compiled on first use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cached_nutpie_model(lambda: model_from_design(design), design, key=("sbc_core", "default priors"))


def fit_one(task) -> dict:
    """One SBC dataset: simulate from the prior, fit, rank (an executor task)."""
    s, child, settings = task
    design = _design()
    t_c = time.perf_counter()
    before = compile_stats()["compiles"]
    compiled = _compiled(design)
    compile_s = time.perf_counter() - t_c if compile_stats()["compiles"] > before else 0.0
    rng = np.random.default_rng(child)
    truth = draw_prior(rng, design.n_studies)
    events = simulate(rng, design, truth)
    c = compiled.with_data(events_data=events, n_data=design.n,
                           binom_const=binomial_log_coefficient(events, design.n))
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post, st = sample_nutpie_compiled(c, settings, seed=int(rng.integers(2**31)))
        gate = run_gate(post, st, warn=False)
    rec = {"sim": s, "events": events.tolist(), "divergences": gate.divergences,
           "max_r_hat": float(gate.table["r_hat"].max()), "min_ess_bulk": float(gate.table["ess_bulk"].min()),
           "gate": gate.verdict, "fit_seconds": time.perf_counter() - t, "compile_seconds": compile_s, "pid": os.getpid()}
    for p in PARAMS:
        draws_p = np.asarray(post[p].values).ravel()
        r = rank_of(float(truth[p]), draws_p, rng)
        rec[f"true_{p}"] = float(truth[p])
        rec[f"rank_{p}"] = r
    return rec


def run_sbc(
    n_sims: int = 300,
    seed: int = 20240611,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    target_accept: float = 0.99,
    alpha: float = 0.01,
    progress: bool = True,
    executor=None,
) -> dict:
    t0 = time.perf_counter()
    design = _design()
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, target_accept=target_accept)
    tasks = [(s, child, settings) for s, child in enumerate(np.random.SeedSequence(seed).spawn(n_sims))]
    ex, owned = resolve_executor(executor, default="local" if auto_parallel(n_sims, chains=chains) else "serial")
    done = [0]

    def tick(_i):
        done[0] += 1
        if progress and done[0] % 25 == 0:
            print(f"  {done[0]}/{n_sims} datasets", file=sys.stderr, flush=True)

    try:
        sims = run_batch(fit_one, tasks, ex, progress=tick)
    finally:
        if owned:
            ex.close()
    ranks = {p: [r[f"rank_{p}"] for r in sims] for p in PARAMS}
    fit_times = [r.pop("fit_seconds") for r in sims]
    compile_times = [r.pop("compile_seconds") for r in sims]
    workers = len({r.pop("pid") for r in sims})
    results = {}
    for p in PARAMS:
        u = uniformity(np.asarray(ranks[p]))
        u["uniform_at_alpha"] = bool(u["chisq_p"] > alpha and u["ks_p"] > alpha)
        results[p] = u
    total = time.perf_counter() - t0
    divs = np.array([r["divergences"] for r in sims])
    return {
        "benchmark": "simulation-based calibration of the core model (Talts et al. 2018)",
        "generated_by": "benchmarks/sbc_core.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            "n_sims": n_sims,
            "seed": seed,
            "studies": int(design.n_studies),
            "arm_n": ARM_N.tolist(),
            "model": "core, independent baselines, non-centred random effects, default priors: "
                     "mu_i ~ N(0, 2.5), d ~ N(0, 2.5), tau ~ HalfNormal(0.5)",
            "sampler": {"backend": "nutpie (compiled once per process, with_data per dataset)", "draws": draws,
                        "tune": tune, "chains": chains, "target_accept": target_accept},
            "executor": ex.describe(),
            "thinned_draws_L": L_DRAWS,
            "bins": N_BINS,
            "tests": "chi-square on 20 equal bins of ranks 0..99; KS of (rank + U(0,1)) / (L + 1) vs U(0,1)",
            "alpha": alpha,
        },
        "results": results,
        "passed": bool(all(r["uniform_at_alpha"] for r in results.values())),
        "sampler_health": {
            "fits_with_divergences": int((divs > 0).sum()),
            "total_divergences": int(divs.sum()),
            "fits_failing_gate": int(sum(r["gate"] == "fail" for r in sims)),
        },
        "timing_seconds": {"total": total, "compile": float(max(compile_times)),
                           "compiles": int(sum(c > 0 for c in compile_times)), "worker_processes": workers,
                           "mean_per_fit": float(np.mean(fit_times)), "max_per_fit": float(np.max(fit_times))},
        "versions": {
            "python": platform.python_version(),
            **{pkg: version(pkg) for pkg in ("pymc", "pytensor", "nutpie", "numpy", "scipy", "arviz")},
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        },
        "simulations": sims,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-sims", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--executor", default=None,
                    help="serial, local, local:N or a Dask scheduler address (default: see bayesln.executor)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sbc_core.json")
    args = ap.parse_args(argv)
    res = run_sbc(args.n_sims, args.seed, args.draws, args.tune, args.chains, executor=args.executor)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    for p, r in res["results"].items():
        print(f"{p}: chi-square p = {r['chisq_p']:.3f}, KS p = {r['ks_p']:.3f}, histogram {r['histogram']}")
    print(f"passed: {res['passed']}; {res['sampler_health']}; {res['timing_seconds']['total']:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
