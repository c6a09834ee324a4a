"""Seed sweep of the shipped specs: does each pass its own diagnostics gate with margin?

MCMC trajectories depend on the CPU: nutpie runs Numba code (bayesln's core kernel, and
PyTensor graphs compiled through Numba for the other families) and PyTensor's C code is
compiled with ``-march=native``. A spec that passes with its one seed on one machine can
fail on another. This script fits every shipped spec (``models/*.toml``, exactly as
``bayesln fit`` does: :func:`bayesln.analysis.run_analysis` with the spec's own sampler
settings and gate) for N seeds, in two code-generation modes, each in its own child
process with its own compile caches:

* ``native``  - the host CPU's code (Numba and PyTensor defaults);
* ``generic`` - generic x86-64 code: ``NUMBA_CPU_NAME=generic`` and PyTensor's
  ``gcc__cxxflags=-march=x86-64 -mtune=generic`` (no ``-march=native``), i.e. another
  machine's floating-point rounding and so other trajectories.

The acceptance rule (issue "Nothing wrong gets through"): a shipped spec passes its gate
in at least 19 of 20 seeds in both modes. Results (every fit's verdict, divergences,
max R-hat, min bulk / tail ESS, min E-BFMI, seconds) go to
``benchmarks/results/seed_sweep.json`` with the machine description; a JSON-lines log of
single fits is kept beside it while running, so an interrupted sweep resumes.

    python benchmarks/seed_sweep.py                      # every spec, 20 seeds, both modes
    python benchmarks/seed_sweep.py --specs joint_efficacy_safety --seeds 20 --modes generic
    python benchmarks/seed_sweep.py --report             # only rewrite the summary from the log
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
RESULTS = REPO / "benchmarks" / "results"
OUT = RESULTS / "seed_sweep.json"
LOG = RESULTS / "seed_sweep.log.jsonl"
#: seeds of the sweep: 1..N (the spec's own seed is what `bayesln fit` uses; it is fitted
#: by the test suite, the sweep measures the margin around it)
REQUIRED_PASSES = 19
MODES = ("native", "generic")


def shipped_specs() -> list[str]:
    return sorted(p.stem for p in MODELS.glob("*.toml") if p.stem != "targets")


def mode_env(mode: str, cache_root: Path) -> dict:
    """Environment of a child: its own Numba and PyTensor caches per mode, so the
    generic mode never loads native code compiled earlier (and the reverse)."""
    env = dict(os.environ)
    cache = cache_root / mode
    (cache / "numba").mkdir(parents=True, exist_ok=True)
    (cache / "pytensor").mkdir(parents=True, exist_ok=True)
    env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    flags = [f"compiledir={cache / 'pytensor'}"]
    if mode == "generic":
        env["NUMBA_CPU_NAME"] = "generic"
        env.pop("NUMBA_CPU_FEATURES", None)
        flags.append("gcc__cxxflags=-march=x86-64 -mtune=generic")
    env["PYTENSOR_FLAGS"] = ",".join(flags)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MPLBACKEND", "Agg")
    return env


#: fits whose gate is what a test asserts (tests/test_hierarchy_fit.py, test_hierarchy_gate.py):
#: name -> (keyword arguments of fit_core beyond data, outcome and seed); "default" rows
#: are the library defaults, kept to show why the tests use the specs' settings
SPEC_SAMPLER = dict(draws=2000, tune=1000, chains=4, target_accept=0.995)
TEST_FITS = {
    "total_response_all_data": ("bundled", "total_response", SPEC_SAMPLER),
    "total_response_all_data_default": ("bundled", "total_response", {}),
    "complete_response_all_data": ("bundled", "complete_response", {**SPEC_SAMPLER, "prior_predictive": False}),
    "complete_response_all_data_default": ("bundled", "complete_response", {"prior_predictive": False}),
    "simulated_gate_fit": ("simulated", "total_response", dict(draws=2000, tune=1000, chains=4, prior_predictive=False)),
}


def fit_test_case(name: str, seed: int) -> dict:
    import bayesln
    from bayesln.hierarchy import fit_core

    source, outcome, kw = TEST_FITS[name]
    if source == "bundled":
        data = bayesln.load_dataset("tacrolimus_ln")
    else:  # the simulated trials of tests/test_hierarchy_gate.py (imported, not copied)
        sys.path.insert(0, str(REPO / "tests"))
        from test_hierarchy_gate import simulated_trials

        data = simulated_trials()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_core(data, outcome, seed=seed, progressbar=False, **kw)
    d = res.diagnostics.to_dict()
    return {"spec": f"test:{name}", "seed": seed, "status": res.status, "problems": d["problems"],
            "divergences": d["divergences"], "max_r_hat": d["max_r_hat"], "min_ess_bulk": d["min_ess_bulk"],
            "min_ess_tail": d["min_ess_tail"], "min_bfmi": min(d["bfmi"]) if d["bfmi"] else None,
            "seconds": round(time.perf_counter() - t0, 2), "settings": {k: v for k, v in kw.items()}}


def fit_one(spec_name: str, seed: int) -> dict:
    """One fit of a shipped spec with its own settings and a given seed (in this process)."""
    from bayesln.analysis import run_analysis
    from bayesln.spec import load_spec

    spec = load_spec(MODELS / f"{spec_name}.toml")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = run_analysis(spec, seed=seed, progressbar=False)
    seconds = time.perf_counter() - t0
    d = analysis.result.diagnostics.to_dict()
    table = analysis.result.diagnostics.table
    worst_r = table.sort_values("r_hat", ascending=False).iloc[0] if len(table) else None
    return {
        "spec": spec_name, "seed": seed, "status": analysis.status, "problems": d["problems"],
        "divergences": d["divergences"], "max_r_hat": d["max_r_hat"],
        "worst_r_hat_parameter": None if worst_r is None else str(worst_r["parameter"]),
        "min_ess_bulk": d["min_ess_bulk"], "min_ess_tail": d["min_ess_tail"],
        "min_bfmi": min(d["bfmi"]) if d["bfmi"] else None, "seconds": round(seconds, 2),
        "draws": spec.sampler.draws, "tune": spec.sampler.tune, "chains": spec.sampler.chains,
        "target_accept": spec.sampler.target_accept,
    }


def child(args) -> None:
    """Fit the listed (spec, seed) pairs; one JSON line per fit on stdout."""
    for item in args.jobs.split(";"):
        name, seed = item.rsplit(":", 1)
        try:
            rec = fit_test_case(name[5:], int(seed)) if name.startswith("test:") else fit_one(name, int(seed))
        except Exception as exc:  # recorded, so one broken fit does not end the sweep
            rec = {"spec": name, "seed": int(seed), "status": "error", "problems": [f"{type(exc).__name__}: {exc}"]}
        rec["mode"] = args.mode
        print(json.dumps(rec), flush=True)


def _read_log() -> list[dict]:
    if not LOG.exists():
        return []
    out = []
    for line in LOG.read_text().splitlines():
        line = line.strip()
        if line:
            out.append(json.loads(line))
    return out


def _spec_settings(name: str) -> dict:
    from bayesln.spec import load_spec

    s = load_spec(MODELS / f"{name}.toml")
    return {"draws": s.sampler.draws, "tune": s.sampler.tune, "chains": s.sampler.chains,
            "target_accept": s.sampler.target_accept, "model": s.model.model_dump(exclude_defaults=True)}


def report(seeds: int) -> dict:
    """Summary per (spec, mode) from the log; only fits made with the spec's current
    sampler settings count (a spec changed after its sweep is swept again)."""
    import numpy as np

    recs = _read_log()
    specs = shipped_specs()
    summary = {}
    for name in specs:
        cur = _spec_settings(name)
        summary[name] = {"settings": cur, "modes": {}}
        for mode in MODES:
            rows = {}
            for r in recs:
                if r["spec"] != name or r["mode"] != mode or r.get("status") == "error":
                    continue
                if any(r.get(k) != cur[k] for k in ("draws", "tune", "chains", "target_accept")):
                    continue
                if r.get("model_hash") not in (None, _model_hash(name)):
                    continue
                rows[r["seed"]] = r  # the newest fit of a seed wins
            rows = [rows[s] for s in sorted(rows) if s <= seeds]
            if not rows:
                continue
            passed = sum(r["status"] == "ok" for r in rows)
            summary[name]["modes"][mode] = {
                "seeds": len(rows), "passed": passed, "meets_rule": passed >= REQUIRED_PASSES and len(rows) >= seeds,
                "max_r_hat": {"median": float(np.median([r["max_r_hat"] for r in rows])),
                              "worst": max(r["max_r_hat"] for r in rows)},
                "min_ess_bulk": {"median": float(np.median([r["min_ess_bulk"] for r in rows])),
                                 "worst": min(r["min_ess_bulk"] for r in rows)},
                "min_ess_tail": {"median": float(np.median([r["min_ess_tail"] for r in rows])),
                                 "worst": min(r["min_ess_tail"] for r in rows)},
                "fits_with_divergences": sum(r["divergences"] > 0 for r in rows),
                "seconds_median": float(np.median([r["seconds"] for r in rows])),
                "failures": [{"seed": r["seed"], "problems": r["problems"]} for r in rows if r["status"] != "ok"],
            }
    tests = {}
    for name, (_, _, kw) in TEST_FITS.items():
        for mode in MODES:
            rows = {r["seed"]: r for r in recs if r["spec"] == f"test:{name}" and r["mode"] == mode
                    and r.get("status") != "error" and r.get("settings") == kw}
            rows = [rows[k] for k in sorted(rows) if k <= seeds]
            if rows:
                tests.setdefault(name, {"settings": kw, "modes": {}})["modes"][mode] = {
                    "seeds": len(rows), "passed": sum(r["status"] == "ok" for r in rows),
                    "worst_max_r_hat": max(r["max_r_hat"] for r in rows),
                    "fits_with_divergences": sum(r["divergences"] > 0 for r in rows)}
    import bayesln

    versions = {}
    for pkg in ("pymc", "pytensor", "nutpie", "numba", "numpy", "arviz"):
        try:
            import importlib.metadata as md

            versions[pkg] = md.version(pkg)
        except Exception:
            versions[pkg] = None
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    out = {
        "what": "every shipped spec fitted as `bayesln fit` does (its own sampler settings and gate) for seeds 1..N, "
                "in native and generic-CPU code (NUMBA_CPU_NAME=generic, PyTensor -march=x86-64 -mtune=generic)",
        "rule": f">= {REQUIRED_PASSES} of {seeds} seeds pass the gate in each mode",
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "versions": versions, "bayesln": bayesln.__version__},
        "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "specs": summary,
        "test_fits": tests,
        "all_meet_rule": all(all(m.get("meets_rule") for m in s["modes"].values()) and len(s["modes"]) == len(MODES)
                             for s in summary.values()),
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    return out


def _model_hash(name: str) -> str:
    """Hash of the spec's model, priors, data and gate sections: a fit of an older version
    of the spec does not count for the current one."""
    import hashlib
    import tomllib

    raw = tomllib.loads((MODELS / f"{name}.toml").read_text())
    keep = {k: raw.get(k) for k in ("data", "model", "priors", "gate")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--specs", default=None, help="comma-separated spec names (default: every shipped spec)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--report", action="store_true", help="only rewrite the summary from the log")
    ap.add_argument("--test-fits", action="store_true",
                    help="sweep the fits whose gate the tests assert (TEST_FITS) instead of the specs")
    ap.add_argument("--redo", action="store_true", help="refit seeds already in the log")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="native", help=argparse.SUPPRESS)
    ap.add_argument("--jobs", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.report:
        specs = ([f"test:{n}" for n in TEST_FITS] if args.test_fits
                 else args.specs.split(",") if args.specs else shipped_specs())
        cache_root = Path(tempfile.gettempdir()) / "bayesln-seed-sweep"
        for mode in args.modes.split(","):
            done = set()
            if not args.redo:
                for r in _read_log():
                    if r["spec"] not in specs or r["mode"] != mode or r.get("status") == "error":
                        continue
                    if r["spec"].startswith("test:"):
                        if r.get("settings") == TEST_FITS[r["spec"][5:]][2]:
                            done.add((r["spec"], r["seed"]))
                        continue
                    cur = _spec_settings(r["spec"])
                    if (all(r.get(k) == cur[k] for k in ("draws", "tune", "chains", "target_accept"))
                            and r.get("model_hash") == _model_hash(r["spec"])):
                        done.add((r["spec"], r["seed"]))
            for name in specs:
                todo = [s for s in range(1, args.seeds + 1) if (name, s) not in done]
                if not todo:
                    continue
                mh = None if name.startswith("test:") else _model_hash(name)
                jobs = ";".join(f"{name}:{s}" for s in todo)
                cmd = [sys.executable, __file__, "--child", "--mode", mode, "--jobs", jobs]
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=mode_env(mode, cache_root),
                                        cwd=REPO)
                for line in proc.stdout:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    rec["model_hash"] = mh
                    with LOG.open("a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    print(f"{mode:8s} {rec['spec']:28s} seed {rec['seed']:3d} {rec['status']:5s} "
                          f"R-hat {rec.get('max_r_hat') or float('nan'):.4f} bulk {rec.get('min_ess_bulk') or 0:6.0f} "
                          f"tail {rec.get('min_ess_tail') or 0:6.0f} div {rec.get('divergences', '?')} "
                          f"{rec.get('seconds', 0):6.1f}s", flush=True)
                proc.wait()
    out = report(args.seeds)
    for name, s in {**out["specs"], **{f"test:{k}": v for k, v in out["test_fits"].items()}}.items():
        cells = [f"{m}: {v['passed']}/{v['seeds']}" for m, v in s["modes"].items()]
        print(f"{name:40s} {'  '.join(cells)}")
    print("all specs meet the rule:", out["all_meet_rule"])


if __name__ == "__main__":
    main()
