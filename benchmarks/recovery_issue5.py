"""Parameter recovery for the issue-5 models (ordinal, joint, network).

For each model a fixed trial design is simulated ``n_rep`` times from known parameters
(fixed hyperparameters; study baselines and study-level effects drawn afresh in every
replicate from the model), the model is compiled **once** (events and denominators are
``pm.Data``; each replicate swaps them in with nutpie's ``with_data``) and fitted, and we
record whether the central 50 / 80 / 95 % posterior intervals cover the truth. Coverage
of fixed-truth intervals is a frequentist property of Bayesian intervals: close to nominal
for well-identified parameters (pooled effects, cut-points), while a between-study SD or
a between-outcome correlation informed by few studies can be over- or under-covered
because of its prior. The binomial Monte-Carlo SE of a coverage over ``n_rep``
replicates is sqrt(p (1 - p) / n_rep) (0.018 for 95 % with 150 replicates).

Run (about 15 min on a shared 2-core machine with the defaults: 5 cases x 150 replicates)::

    python benchmarks/recovery_issue5.py                  # writes benchmarks/results/recovery_issue5.json
    python benchmarks/recovery_issue5.py --reps 10 --models network

The small version used by the ``slow`` tests is :func:`run_case` with a few replicates.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bayesln import _arviz  # noqa: E402
from bayesln.hierarchy.joint import build_joint_design, build_joint_model  # noqa: E402
from bayesln.hierarchy.network import build_network_design, build_network_model  # noqa: E402
from bayesln.hierarchy.ordinal import build_ordinal_design, build_ordinal_model  # noqa: E402
from bayesln.hierarchy.sampling import SamplerSettings, compile_nutpie, sample_model  # noqa: E402

LEVELS = (0.5, 0.8, 0.95)
OUT = ROOT / "benchmarks" / "results" / "recovery_issue5.json"


@dataclass
class Case:
    name: str
    description: str
    truth: dict[str, float]
    simulate: Callable[[np.random.Generator], tuple[pd.DataFrame, dict[str, float]]]
    build: Callable[[pd.DataFrame], tuple[object, object]]  # df -> (model, design)
    data_of: Callable[[object], dict[str, np.ndarray]]  # design -> pm.Data values
    extract: Callable[[object, object], dict[str, np.ndarray]]  # (posterior, design) -> draws per parameter


def _flat(post, name):
    a = np.asarray(post[name].values)
    return a.reshape((-1,) + a.shape[2:])


# ============================================================================ joint
def joint_case(n_studies: int = 16) -> Case:
    """2 outcomes (total_response: benefit; severe_infection: harm), 16 two-arm studies:
    10 report both, 3 response only, 3 infection only; n = 150 per arm."""
    truth = {"d[total_response]": 0.6, "d[severe_infection]": -0.4, "tau[total_response]": 0.4,
             "tau[severe_infection]": 0.4, "rho": 0.6}
    mu0 = {"total_response": (0.5, 0.5), "severe_infection": (-2.0, 0.5)}
    outs = ["total_response", "severe_infection"]
    both, only_r = 10, 3

    def simulate(rng):
        d = np.array([truth["d[total_response]"], truth["d[severe_infection]"]])
        tau = np.array([truth["tau[total_response]"], truth["tau[severe_infection]"]])
        R = np.array([[1, truth["rho"]], [truth["rho"], 1]])
        S = R * np.outer(tau, tau)
        rows = []
        for i in range(n_studies):
            delta = rng.multivariate_normal(d, S)
            rep = outs if i < both else ([outs[0]] if i < both + only_r else [outs[1]])
            for k, o in enumerate(outs):
                if o not in rep:
                    continue
                mu = rng.normal(*mu0[o])
                for arm, t in (("tac", 1), ("ivcy", 0)):
                    n = 150
                    y = rng.binomial(n, expit(mu + t * delta[k]))
                    rows.append({"study": f"s{i:02d}", "arm": arm, "treatment": arm, "regimen": "duo" if t else "control",
                                 "phase": "induction", "design": "rct", "outcome": o, "events": y, "n": n})
        return pd.DataFrame(rows), dict(truth)

    def build(df):
        des = build_joint_design(df, outs, warn=False)
        return build_joint_model(des, lkj_eta=2.0), des

    def extract(post, des):
        d, tau, rho = _flat(post, "d"), _flat(post, "tau"), _flat(post, "rho")
        return {"d[total_response]": d[:, 0], "d[severe_infection]": d[:, 1], "tau[total_response]": tau[:, 0],
                "tau[severe_infection]": tau[:, 1], "rho": rho[:, 0]}

    return Case("joint", "2 outcomes x 16 two-arm studies (10 both, 3 response only, 3 infection only), n=150/arm; "
                "d=(0.6,-0.4), tau=(0.4,0.4), rho=0.6, LKJ(2)", truth, simulate, build,
                lambda des: {"events_data": des.rows["events"].to_numpy(), "n_data": des.rows["n"].to_numpy()}, extract)


# ============================================================================ ordinal
def ordinal_case(n_studies: int = 12, link: str = "sequential", cutpoint_specific: bool = False) -> Case:
    """Exchangeable baselines; 8 studies report CR/PR/NR, 2 CR only, 2 CR-or-PR only;
    n = 100 per arm. Sequential link: step 1 (response) and step 2 (CR | response) with
    a shared or step-specific log-OR; cumulative link: logit P(>= PR) = a_i + t delta,
    logit P(CR) = a_i - exp(kappa_i) + t delta."""
    seq = link == "sequential"
    if seq:
        truth = {"m[response]": 0.8, "m[complete_given_response]": -0.2,
                 "sigma_mu[response]": 0.4, "sigma_mu[complete_given_response]": 0.4}
        if cutpoint_specific:
            truth |= {"d[response]": 0.7, "d[complete_given_response]": 0.3,
                      "tau[response]": 0.25, "tau[complete_given_response]": 0.25}
        else:
            truth |= {"d": 0.5, "tau": 0.25}
    else:
        truth = {"m": 0.8, "kappa_mean": 0.3, "sigma_mu[total]": 0.4, "sigma_mu[complete]": 0.3, "d": 0.5, "tau": 0.25}

    def simulate(rng):
        rows = []
        for i in range(n_studies):
            pat = "full" if i < 8 else ("cr" if i < 10 else "total")
            if seq:
                a1 = rng.normal(truth["m[response]"], truth["sigma_mu[response]"])
                a2 = rng.normal(truth["m[complete_given_response]"], truth["sigma_mu[complete_given_response]"])
                if cutpoint_specific:
                    dl1 = rng.normal(truth["d[response]"], truth["tau[response]"])
                    dl2 = rng.normal(truth["d[complete_given_response]"], truth["tau[complete_given_response]"])
                else:
                    dl1 = dl2 = rng.normal(truth["d"], truth["tau"])
            else:
                a = rng.normal(truth["m"], truth["sigma_mu[total]"])
                kap = rng.normal(truth["kappa_mean"], truth["sigma_mu[complete]"])
                dl = rng.normal(truth["d"], truth["tau"])
            for arm, t in (("tac", 1), ("ivcy", 0)):
                n = 100
                if seq:
                    p1, p2 = expit(a1 + t * dl1), expit(a2 + t * dl2)
                    probs = [p1 * p2, p1 * (1 - p2), 1 - p1]
                else:
                    ptot, pcr = expit(a + t * dl), expit(a - np.exp(kap) + t * dl)
                    probs = [pcr, ptot - pcr, 1 - ptot]
                y = rng.multinomial(n, probs)
                base = {"study": f"s{i:02d}", "arm": arm, "treatment": arm, "regimen": "duo" if t else "control",
                        "phase": "induction", "design": "rct", "n": n}
                if pat in ("full", "cr"):
                    rows.append({**base, "outcome": "complete_response", "events": y[0]})
                if pat == "full":
                    rows.append({**base, "outcome": "partial_response", "events": y[1]})
                if pat in ("full", "total"):
                    rows.append({**base, "outcome": "total_response", "events": y[0] + y[1]})
        return pd.DataFrame(rows), dict(truth)

    def build(df):
        des = build_ordinal_design(df, link=link, cutpoint_specific=cutpoint_specific, baseline="exchangeable")
        return build_ordinal_model(des), des

    def extract(post, des):
        out = {}
        for p in truth:
            name, _, idx = p.partition("[")
            x = _flat(post, name)
            if idx:
                x = x[:, list(des.stages).index(idx.rstrip("]"))]
            out[p] = x
        return out

    what = f"{link} logit, {'cut-point-specific' if cutpoint_specific else 'shared'} effect"
    return Case("ordinal" + ("_cutpoint_specific" if cutpoint_specific else "") + ("" if seq else "_cumulative"),
                f"{what}, exchangeable baselines; 12 two-arm studies (8 CR/PR/NR, 2 CR only, 2 CR-or-PR only), "
                f"n=100/arm; truth {truth}", truth, simulate, build,
                lambda des: {"events_data": des.rows["events"].to_numpy(), "n_data": des.rows["n"].to_numpy()}, extract)


# ============================================================================ network
NET_DESIGN = ([("A", "B")] * 3 + [("A", "C")] * 3 + [("B", "C")] * 2 + [("B", "D")] * 2 + [("C", "D")]
              + [("A", "E")] + [("D", "E")] + [("A", "B", "C")])


def network_case() -> Case:
    """5 treatments (A reference), 14 studies incl. a three-arm trial and several loops,
    n = 120 per arm; random effects tau = 0.3."""
    dtrue = {"A": 0.0, "B": 0.5, "C": 0.8, "D": 0.3, "E": -0.2}
    truth = {f"d[{k}]": v for k, v in dtrue.items() if k != "A"} | {"tau": 0.3}

    def simulate(rng):
        rows = []
        for i, trts in enumerate(NET_DESIGN):
            mu = rng.normal(-0.5, 0.5)
            b = trts[0]
            k = len(trts) - 1
            S = 0.3**2 * (np.full((k, k), 0.5) + 0.5 * np.eye(k))
            dl = rng.multivariate_normal([dtrue[t] - dtrue[b] for t in trts[1:]], S)
            for j, t in enumerate(trts):
                eff = 0.0 if j == 0 else dl[j - 1]
                n = 120
                rows.append({"study": f"s{i:02d}", "arm": t, "treatment": t, "regimen": pd.NA, "node": t,
                             "phase": "induction", "design": "rct", "outcome": "total_response",
                             "events": rng.binomial(n, expit(mu + eff)), "n": n})
        return pd.DataFrame(rows), dict(truth)

    def build(df):
        des = build_network_design(df, "total_response", reference="A", treatments=["A", "B", "C", "D", "E"])
        return build_network_model(des), des

    def extract(post, des):
        d = _flat(post, "d")
        return {f"d[{t}]": d[:, k] for k, t in enumerate(des.nonref)} | {"tau": _flat(post, "tau")}

    return Case("network", "5 treatments, 14 studies (A-Bx3, A-Cx3, B-Cx2, B-Dx2, C-D, A-E, D-E, A-B-C), n=120/arm; "
                "d=(B 0.5, C 0.8, D 0.3, E -0.2) vs A, tau=0.3", truth, simulate, build,
                lambda des: {"events_data": des.arms["events"].to_numpy(), "n_data": des.arms["n"].to_numpy()}, extract)


CASES = {
    "joint": joint_case,
    "ordinal": ordinal_case,
    "ordinal_cutpoint_specific": lambda: ordinal_case(cutpoint_specific=True),
    "ordinal_cumulative": lambda: ordinal_case(link="cumulative"),
    "network": network_case,
}


# ============================================================================ runner
def run_case(case: Case, n_rep: int, seed: int, draws: int = 500, tune: int = 500, chains: int = 2,
             target_accept: float = 0.95, verbose: bool = False) -> dict:
    """Fit ``n_rep`` simulated data sets with one compiled model; coverage per parameter."""
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, target_accept=target_accept, cores=min(chains, 2))
    rng0 = np.random.default_rng([seed, 0])
    df0, _ = case.simulate(rng0)
    model, des0 = case.build(df0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = compile_nutpie(model)
    compile_s = time.perf_counter() - t0
    names = list(case.truth)
    cover = {p: {lv: [] for lv in LEVELS} for p in names}
    post_q = {p: [] for p in names}
    err = {p: [] for p in names}
    sds = {p: [] for p in names}
    divs, min_ess, sample_s = [], [], []
    for r in range(n_rep):
        rng = np.random.default_rng([seed, r + 1])
        df, truth = case.simulate(rng)
        _, des = case.build(df)  # same shape as des0; only events / n differ
        t1 = time.perf_counter()
        c = compiled.with_data(**case.data_of(des))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post, stats, _ = sample_model(model, settings=settings, seed=seed * 1000 + r, backend="nutpie", compiled=c)
        sample_s.append(time.perf_counter() - t1)
        divs.append(int(np.asarray(stats["diverging"]).sum()))
        dr = case.extract(post, des)
        ess_min = np.inf
        for p in names:
            x = np.asarray(dr[p], float)
            tv = truth[p]
            for lv in LEVELS:
                lo, hi = np.quantile(x, [(1 - lv) / 2, (1 + lv) / 2])
                cover[p][lv].append(bool(lo <= tv <= hi))
            post_q[p].append(float(np.mean(x < tv)))
            err[p].append(float(np.median(x) - tv))
            sds[p].append(float(np.std(x, ddof=1)))
            da = xr.DataArray(x.reshape(chains, -1), dims=("chain", "draw"))
            ess_min = min(ess_min, float(_arviz.ess(xr.Dataset({"x": da}), "bulk")["x"]))
        min_ess.append(ess_min)
        if verbose:
            print(f"  {case.name} rep {r + 1}/{n_rep}: {sample_s[-1]:.1f}s, divergences {divs[-1]}, min ESS {ess_min:.0f}",
                  flush=True)
    out = {"description": case.description, "n_rep": n_rep, "seed": seed,
           "sampler": {"draws": draws, "tune": tune, "chains": chains, "target_accept": target_accept, "backend": "nutpie"},
           "compile_seconds": round(compile_s, 1), "sampling_seconds_total": round(float(np.sum(sample_s)), 1),
           "replicates_with_divergences": int(np.sum(np.array(divs) > 0)), "divergences_total": int(np.sum(divs)),
           "min_bulk_ess_median_over_reps": float(np.median(min_ess)), "parameters": {}}
    for p in names:
        cov = {f"{int(lv * 100)}%": float(np.mean(cover[p][lv])) for lv in LEVELS}
        mcse = {f"{int(lv * 100)}%": float(np.sqrt(lv * (1 - lv) / n_rep)) for lv in LEVELS}
        out["parameters"][p] = {
            "truth": case.truth[p], "coverage": cov, "nominal_mcse": mcse,
            "median_error_mean": float(np.mean(err[p])), "posterior_sd_mean": float(np.mean(sds[p])),
            "truth_quantile_mean": float(np.mean(post_q[p])),
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=150)
    ap.add_argument("--models", default=",".join(CASES))
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    import importlib.metadata as md

    res = {"generated_by": "benchmarks/recovery_issue5.py", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "versions": {k: md.version(k) for k in ("pymc", "pytensor", "nutpie", "numpy")} | {"python": platform.python_version()},
           "levels": list(LEVELS), "cases": {}}
    t0 = time.perf_counter()
    for name in a.models.split(","):
        print(f"== {name}", flush=True)
        res["cases"][name] = run_case(CASES[name](), a.reps, a.seed, a.draws, a.tune, a.chains, verbose=True)
        for p, v in res["cases"][name]["parameters"].items():
            print(f"   {p:40s} truth {v['truth']:+.2f}  coverage " + "  ".join(f"{k} {x:.2f}" for k, x in v["coverage"].items()))
    res["wall_seconds"] = round(time.perf_counter() - t0, 1)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {a.out} ({res['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
