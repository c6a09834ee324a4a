"""Does the default core fit pass its gate on the data users bring, and are its intervals calibrated?

Two parts, both fitted with ``fit_core``'s defaults (sampler settings, ``parameterization=
"auto"``, the automatic retry), every fit gated with the default thresholds:

1. **Grid** (``--reps`` data sets per cell, default 5 -> 200 data sets): K = 3, 5, 10, 30,
   100 two-arm trials x small (20-100 per arm) or large (200-1000) arms x low or high
   heterogeneity x rare or common events. To make "95% intervals cover the truth 95% of
   the time" a statement the model must satisfy, each cell's truths are drawn from the
   priors the fit uses (the SBC argument: averaged over the prior, a correct posterior's
   central 95% interval covers the drawn value with probability exactly 0.95):

   ========================  =================================  ===========================
   quantity                  drawn from (and fitted with)        cell
   ========================  =================================  ===========================
   d                         normal(0, 1)                        every cell
   tau                       half_normal(0.15) / half_normal(0.8)  low / high heterogeneity
   mu_i (control log-odds)   normal(-3.5, 0.5) / normal(-0.6, 0.5) rare (~3%) / common (~35%)
   delta_i                   normal(d, tau)
   ========================  =================================  ===========================

   Reported: share passing the gate at the first attempt and after the retry, the retry
   rate by kind, time per fit (with and without retries), and the coverage of the 95%
   intervals of d and tau with its Monte-Carlo SE (sqrt(0.95 * 0.05 / n)).
2. **The issue's failures** (``--issue-sets``, default 60): the simulation in which the
   one-attempt default of earlier versions failed 5 times in 30 (issue 21): 20-30 trials,
   control log-odds ~ N(-0.5, 0.6), log OR ~ N(0.4, 0.3), 20-200 patients per arm, the
   default priors. Reported: share passing at the first attempt (retries switched off)
   and with retries.

3. **Exchangeable baselines** (``--baseline-sets``, default 60): K = 3-30 trials
   (``baseline="exchangeable"``), small or large arms, a small (half_normal(0.2)) or large
   (half_normal(1.0)) between-study SD of the control log-odds, truths drawn from the
   priors the fit uses (m ~ normal(-0.6, 1), d ~ normal(0, 1), tau ~ half_normal(0.5));
   each data set fitted once (no retry) with every ``baseline_parameterization``
   ("centered", "noncentered", "auto"), same seed. Reported: share passing the gate per
   form, and the coverage of the 95% intervals of m and sigma_mu under "auto".

4. **The other families** (``--family-sets``, default 8 per family): ordinal (sequential link,
   CR / PR / NR), joint (total response and severe infection, correlated effects) and
   network (A / B / C with a three-arm trial) reviews of 4-16 studies; odd sets have small
   arms (20-100) and low heterogeneity (tau 0.2), even sets large arms (300-2000) and high
   heterogeneity (tau 1.0), the case where non-centred effects meet the opposite funnel.
   Each set is fitted once per form (``parameterization`` "noncentered", the only form
   before the families chose, and "auto") with the family fit functions' default sampler
   settings (4 x 1000 draws, tune 1000, target_accept 0.99), no retry.
   Reported: share passing the gate per family and form, centred studies, seconds.

Data set ``s`` of a part has its own seed (``SeedSequence([seed, part, s])``), fit seed
``1000 + s``; the results are reproducible on one machine (MCMC differs between CPUs).

Run from the repository root::

    python benchmarks/calibration.py                       # -> benchmarks/results/calibration.json
    python benchmarks/calibration.py --reps 1 --issue-sets 5 --out /tmp/cal.json   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bayesln.hierarchy import fit_core  # noqa: E402

KS = (3, 5, 10, 30, 100)
ARMS = {"small": (20, 100), "large": (200, 1000)}
HETEROGENEITY = {"low": 0.15, "high": 0.8}  # half-normal scale of tau
EVENTS = {"rare": -3.5, "common": -0.6}  # mean control log-odds
MU_SD = 0.5
D_PRIOR = (0.0, 1.0)


def _frame(mu, delta, n_c, n_t, rng) -> pd.DataFrame:
    rows = []
    for i, (m, dl, nc, nt) in enumerate(zip(mu, delta, n_c, n_t)):
        for arm, t, n in (("c", 0, nc), ("t", 1, nt)):
            rows.append({"study": f"s{i:03d}", "arm": f"s{i:03d}{arm}", "treatment": "tac" if t else "control",
                         "outcome": "event", "events": int(rng.binomial(n, expit(m + t * dl))), "n": int(n)})
    return pd.DataFrame(rows)


def grid_dataset(rng, K, arms, het, events):
    lo, hi = ARMS[arms]
    d = rng.normal(*D_PRIOR)
    tau = abs(rng.normal(0.0, HETEROGENEITY[het]))
    mu = rng.normal(EVENTS[events], MU_SD, K)
    delta = rng.normal(d, tau, K)
    df = _frame(mu, delta, rng.integers(lo, hi + 1, K), rng.integers(lo, hi + 1, K), rng)
    priors = {"d": f"normal({D_PRIOR[0]:g}, {D_PRIOR[1]:g})", "tau": f"half_normal({HETEROGENEITY[het]:g})",
              "baseline": f"normal({EVENTS[events]:g}, {MU_SD:g})"}
    return df, priors, {"d": d, "tau": tau}


def issue_dataset(rng):
    K = int(rng.integers(20, 31))
    mu = rng.normal(-0.5, 0.6, K)
    delta = rng.normal(0.4, 0.3, K)
    return _frame(mu, delta, rng.integers(20, 201, K), rng.integers(20, 201, K), rng)


BASELINE_SPREAD = {"small": 0.2, "large": 1.0}  # half-normal scale of sigma_mu
BASELINE_FORMS = ("centered", "noncentered", "auto")


def baseline_dataset(rng, s):
    K = int(rng.integers(3, 31))
    arms = ("small", "large")[s % 2]
    spread = ("small", "large")[(s // 2) % 2]
    lo, hi = ARMS[arms]
    m = rng.normal(-0.6, 1.0)
    sigma_mu = abs(rng.normal(0.0, BASELINE_SPREAD[spread]))
    d = rng.normal(0.0, 1.0)
    tau = abs(rng.normal(0.0, 0.5))
    mu = rng.normal(m, sigma_mu, K)
    delta = rng.normal(d, tau, K)
    df = _frame(mu, delta, rng.integers(lo, hi + 1, K), rng.integers(lo, hi + 1, K), rng)
    priors = {"m": "normal(-0.6, 1)", "sigma_mu": f"half_normal({BASELINE_SPREAD[spread]:g})", "d": "normal(0, 1)",
              "tau": "half_normal(0.5)"}
    return df, priors, {"K": K, "arms": arms, "spread": spread, "m": m, "sigma_mu": sigma_mu}


FAMILY_FORMS = ("noncentered", "auto")


def family_dataset(rng, family: str, s: int):
    """A simulated review for family ``family`` (see part 4 of the module docstring)."""
    large = s % 2 == 0
    tau = 1.0 if large else 0.2
    lo, hi = (300, 2000) if large else (20, 100)
    K = int(rng.integers(4, 17))
    rows = []

    def arm(study, name, t, n, o, events):
        return {"study": study, "arm": name, "treatment": name, "regimen": "duo" if t else "control", "node": name,
                "phase": "induction", "design": "rct", "outcome": o, "n": int(n), "events": int(events)}

    for i in range(K):
        st = f"s{i:02d}"
        if family == "ordinal":
            a1, a2, dl = rng.normal(0.3, 0.5), rng.normal(-0.3, 0.5), rng.normal(0.5, tau)
            for name, t in (("tac", 1), ("ivcy", 0)):
                n = rng.integers(lo, hi + 1)
                p1, p2 = expit(a1 + t * dl), expit(a2 + t * dl)
                y = rng.multinomial(n, [p1 * p2, p1 * (1 - p2), 1 - p1])
                rows += [arm(st, name, t, n, "complete_response", y[0]), arm(st, name, t, n, "partial_response", y[1])]
        elif family == "joint":
            dl = rng.multivariate_normal([0.5, -0.3], tau**2 * np.array([[1, 0.5], [0.5, 1]]))
            for k, o in enumerate(("total_response", "severe_infection")):
                if i % 4 == 3 and k == 1:
                    continue  # some studies report response only
                mu = rng.normal((0.0, -2.0)[k], 0.5)
                for name, t in (("tac", 1), ("ivcy", 0)):
                    n = rng.integers(lo, hi + 1)
                    rows.append(arm(st, name, t, n, o, rng.binomial(n, expit(mu + t * dl[k]))))
        else:
            trts = ("A", "B", "C") if i == 0 else (("A", "B"), ("A", "C"), ("B", "C"))[i % 3]
            d = {"A": 0.0, "B": 0.5, "C": 0.9}
            k = len(trts) - 1
            dl = rng.multivariate_normal([d[x] - d[trts[0]] for x in trts[1:]], tau**2 * (0.5 * np.eye(k) + 0.5))
            mu = rng.normal(-0.3, 0.5)
            for j, x in enumerate(trts):
                n = rng.integers(lo, hi + 1)
                rows.append(arm(st, x, j > 0, n, "total_response", rng.binomial(n, expit(mu + (dl[j - 1] if j else 0)))))
    return pd.DataFrame(rows), {"K": K, "arms": "large" if large else "small", "tau": tau}


def _fit_family(family: str, df, seed: int, form: str):
    from bayesln.hierarchy.joint import fit_joint
    from bayesln.hierarchy.network import fit_network
    from bayesln.hierarchy.ordinal import fit_ordinal

    kw = dict(seed=seed, parameterization=form, retry=False, progressbar=False, prior_predictive=False,
              posterior_predictive=False)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if family == "ordinal":
            r = fit_ordinal(df, **kw)
        elif family == "joint":
            r = fit_joint(df, ("total_response", "severe_infection"), **kw)
        else:
            r = fit_network(df, "total_response", reference="A", treatments=["A", "B", "C"], **kw)
    return r, time.perf_counter() - t0


def run_families(n: int, seed: int) -> list[dict]:
    out = []
    for fi, family in enumerate(("ordinal", "joint", "network")):
        for s in range(n):
            df, info = family_dataset(np.random.default_rng([seed, 4, fi, s]), family, s)
            rec = {"family": family, "set": s, **info}
            for form in FAMILY_FORMS:
                r, sec = _fit_family(family, df, 1000 + s, form)
                chosen = r.config.get("parameterization_chosen") or {}
                rec[form] = {"passed": bool(r.diagnostics.passed), "problems": list(r.diagnostics.problems),
                             "seconds": round(sec, 3), "n_centered": chosen.get("n_centered")}
            out.append(rec)
            print(json.dumps({k: (v["passed"] if isinstance(v, dict) else v) for k, v in rec.items()}), flush=True)
    return out


def _fit(df, seed, priors=None, retry=True, **kw):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = fit_core(df, "event", direction="benefit", seed=seed, priors=priors, prior_predictive=False, retry=retry,
                     **kw)
    return r, time.perf_counter() - t0


def _record(r, seconds) -> dict:
    chosen = r.config.get("parameterization_chosen") or {}
    retries = r.diagnostics.retries
    return {"passed": bool(r.diagnostics.passed), "seconds": round(seconds, 3),
            "first_attempt_passed": not retries,
            "retries": [x["kind"] for x in retries], "problems": list(r.diagnostics.problems),
            "first_problems": retries[0]["reason"] if retries else "",
            "n_centered": chosen.get("n_centered"), "tau_ref": chosen.get("tau_ref"),
            "chains": int(r.idata.posterior.sizes["chain"])}


def _interval(r, name):
    x = np.asarray(r.idata.posterior[name].values, dtype=float).ravel()
    return np.quantile(x, [0.025, 0.975])


def run_grid(reps: int, seed: int) -> list[dict]:
    out = []
    cells = list(product(KS, ARMS, HETEROGENEITY, EVENTS))
    s = 0
    for K, arms, het, events in cells:
        for _ in range(reps):
            rng = np.random.default_rng([seed, 1, s])
            df, priors, truth = grid_dataset(rng, K, arms, het, events)
            r, sec = _fit(df, 1000 + s, priors)
            rec = {"set": s, "K": K, "arms": arms, "heterogeneity": het, "events": events, **truth, **_record(r, sec)}
            for name in ("d", "tau"):
                lo, hi = _interval(r, name)
                rec[f"{name}_covered"] = bool(lo <= truth[name] <= hi)
            out.append(rec)
            print(json.dumps({k: rec[k] for k in ("set", "K", "arms", "heterogeneity", "events", "passed", "retries",
                                                  "seconds", "n_centered")}), flush=True)
            s += 1
    return out


def run_issue(n: int, seed: int) -> list[dict]:
    out = []
    for s in range(n):
        df = issue_dataset(np.random.default_rng([seed, 2, s]))
        r1, sec1 = _fit(df, 1000 + s, retry=False)
        rec = {"set": s, "K": int(df["study"].nunique()), "first_attempt_passed": bool(r1.diagnostics.passed),
               "first_problems": list(r1.diagnostics.problems), "seconds_first": round(sec1, 3),
               "n_centered": (r1.config.get("parameterization_chosen") or {}).get("n_centered")}
        if r1.diagnostics.passed:
            rec.update(passed=True, retries=[])
        else:
            r2, sec2 = _fit(df, 1000 + s, retry=True)
            rec.update(passed=bool(r2.diagnostics.passed), retries=[x["kind"] for x in r2.diagnostics.retries],
                       seconds_with_retry=round(sec2, 3))
        out.append(rec)
        print(json.dumps(rec), flush=True)
    return out


def run_baselines(n: int, seed: int) -> list[dict]:
    out = []
    for s in range(n):
        df, priors, truth = baseline_dataset(np.random.default_rng([seed, 3, s]), s)
        rec = {"set": s, **truth}
        for form in BASELINE_FORMS:
            r, sec = _fit(df, 1000 + s, priors, retry=False, baseline="exchangeable", baseline_parameterization=form)
            rec[form] = {"passed": bool(r.diagnostics.passed), "problems": list(r.diagnostics.problems),
                         "seconds": round(sec, 3)}
            if form == "auto":
                chosen = r.config.get("baseline_parameterization_chosen") or {}
                rec[form]["n_centered"] = chosen.get("n_centered")
                rec[form]["sigma_ref"] = chosen.get("sigma_ref")
                for name in ("m", "sigma_mu"):
                    lo, hi = _interval(r, name)
                    rec[f"{name}_covered"] = bool(lo <= truth[name] <= hi)
        out.append(rec)
        print(json.dumps({k: (v["passed"] if isinstance(v, dict) else v) for k, v in rec.items()}), flush=True)
    return out


def _share(x) -> dict:
    x = np.asarray(list(x), dtype=float)
    p = float(x.mean()) if x.size else float("nan")
    return {"share": round(p, 4), "n": int(x.size), "mcse": round(float(np.sqrt(p * (1 - p) / max(x.size, 1))), 4)}


def summarise(grid: list[dict], issue: list[dict], baselines: list[dict] = (), families: list[dict] = ()) -> dict:
    g = pd.DataFrame(grid)
    out: dict = {}
    if len(g):
        cov_se = float(np.sqrt(0.95 * 0.05 / len(g)))
        out["grid"] = {
            "datasets": len(g),
            "passed_first_attempt": _share(g["first_attempt_passed"]),
            "passed_after_retry": _share(g["passed"]),
            "retry_rate": _share(~g["first_attempt_passed"]),
            "retries_by_kind": pd.Series([k for r in g["retries"] for k in r]).value_counts().to_dict(),
            "seconds_per_fit_mean": round(float(g["seconds"].mean()), 3),
            "seconds_per_fit_without_retry_mean": round(float(g.loc[g["first_attempt_passed"], "seconds"].mean()), 3),
            "seconds_per_fit_with_retry_mean": (round(float(g.loc[~g["first_attempt_passed"], "seconds"].mean()), 3)
                                                if (~g["first_attempt_passed"]).any() else None),
            "coverage_d": {**_share(g["d_covered"]), "nominal": 0.95, "mcse_nominal": round(cov_se, 4),
                           "within_3_mcse": bool(abs(g["d_covered"].mean() - 0.95) <= 3 * cov_se)},
            "coverage_tau": {**_share(g["tau_covered"]), "nominal": 0.95, "mcse_nominal": round(cov_se, 4),
                             "within_3_mcse": bool(abs(g["tau_covered"].mean() - 0.95) <= 3 * cov_se)},
            "by_K": {int(k): {"passed_first_attempt": round(float(v["first_attempt_passed"].mean()), 3),
                              "passed_after_retry": round(float(v["passed"].mean()), 3),
                              "seconds_mean": round(float(v["seconds"].mean()), 3),
                              "centred_studies_mean": round(float(v["n_centered"].fillna(0).mean()), 2)}
                     for k, v in g.groupby("K")},
            "failed": g.loc[~g["passed"], ["set", "K", "arms", "heterogeneity", "events", "problems"]].to_dict("records"),
        }
    if issue:
        i = pd.DataFrame(issue)
        out["issue_failures"] = {
            "datasets": len(i),
            "passed_first_attempt": _share(i["first_attempt_passed"]),
            "passed_after_retry": _share(i["passed"]),
            "first_attempt_failures": i.loc[~i["first_attempt_passed"], ["set", "K", "first_problems"]].to_dict("records"),
        }
    if len(baselines):
        b = pd.DataFrame(baselines)
        cov_se = float(np.sqrt(0.95 * 0.05 / len(b)))
        out["exchangeable_baselines"] = {
            "datasets": len(b),
            "passed_first_attempt_by_form": {f: _share(b[f].map(lambda x: x["passed"])) for f in BASELINE_FORMS},
            "passed_by_form_and_cell": {
                f"{arms} arms, {spread} spread": {f: round(float(v[f].map(lambda x: x["passed"]).mean()), 3)
                                                  for f in BASELINE_FORMS}
                for (arms, spread), v in b.groupby(["arms", "spread"])},
            "auto_centred_baselines_mean": round(float(b["auto"].map(lambda x: x["n_centered"] or 0).mean()), 2),
            "coverage_m": {**_share(b["m_covered"]), "mcse_nominal": round(cov_se, 4)},
            "coverage_sigma_mu": {**_share(b["sigma_mu_covered"]), "mcse_nominal": round(cov_se, 4)},
        }
    if len(families):
        f = pd.DataFrame(families)
        out["families"] = {
            fam: {"datasets": len(v),
                  "passed_by_form": {form: _share(v[form].map(lambda x: x["passed"])) for form in FAMILY_FORMS},
                  "passed_by_form_and_arms": {arms: {form: round(float(w[form].map(lambda x: x["passed"]).mean()), 3)
                                                     for form in FAMILY_FORMS} for arms, w in v.groupby("arms")},
                  "auto_centred_studies_mean": round(float(v["auto"].map(lambda x: x["n_centered"] or 0).mean()), 2),
                  "seconds_mean_by_form": {form: round(float(v[form].map(lambda x: x["seconds"]).mean()), 2)
                                           for form in FAMILY_FORMS}}
            for fam, v in f.groupby("family", sort=False)}
    return out


def machine() -> dict:
    """perf.py's machine description (CPU model, cores, RAM, packages, load at start) and
    the CPU target of Numba's code."""
    from perf import machine as perf_machine  # benchmarks/perf.py, beside this script

    return {**perf_machine(), "numba_cpu_name": os.environ.get("NUMBA_CPU_NAME", "host")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="data sets per grid cell (40 cells)")
    ap.add_argument("--issue-sets", type=int, default=60)
    ap.add_argument("--baseline-sets", type=int, default=60)
    ap.add_argument("--family-sets", type=int, default=8, help="data sets per family (part 'families')")
    ap.add_argument("--parts", default="grid,issue,baselines,families",
                    help="comma-separated subset of the parts to run")
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "calibration.json"))
    a = ap.parse_args(argv)
    mach = machine()  # before the fits: its load average and CPU probe describe the start
    parts = set(a.parts.split(","))
    out = Path(a.out)
    # parts not run this time are carried over from the existing results file, with the
    # machine and settings they were measured with
    previous = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    runs = dict(previous.get("runs", {}))
    data = {"grid": previous.get("grid", []), "issue": previous.get("issue_failures", []),
            "baselines": previous.get("exchangeable_baselines", []), "families": previous.get("families", [])}
    settings = {"seed": a.seed}
    for part, run, kw in (("grid", run_grid, {"reps": a.reps}), ("issue", run_issue, {"issue_sets": a.issue_sets}),
                          ("baselines", run_baselines, {"baseline_sets": a.baseline_sets}),
                          ("families", run_families, {"family_sets": a.family_sets})):
        if part in parts:
            t0 = time.perf_counter()
            data[part] = run(next(iter(kw.values())), a.seed)
            runs[part] = {"settings": {**settings, **kw}, "machine": mach,
                          "wall_seconds": round(time.perf_counter() - t0, 1)}
    result = {"benchmark": "benchmarks/calibration.py",
              "fit_core_defaults": "4 chains x 2000 draws, tune 1000, target_accept 0.995, parameterization auto, "
                                   "baseline_parameterization auto, retry on",
              "runs": runs, "summary": summarise(data["grid"], data["issue"], data["baselines"], data["families"]),
              "grid": data["grid"], "issue_failures": data["issue"], "exchangeable_baselines": data["baselines"],
              "families": data["families"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(json.dumps(result["summary"], indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
