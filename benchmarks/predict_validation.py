"""Predictions for the shipped targets and validation of the predictive distribution.

On the bundled data (``tacrolimus_ln``):

1. fit the three prediction specs (``models/predict_*.toml``: total response, complete
   response, severe infection; 4 chains x 1000 draws as specified) and predict every
   shipped target (``models/targets.toml``): the tables, the extrapolation flags, the
   share of the width due to extrapolation priors, and the width of each target's
   intervals relative to the in-data reference target ``asian_class_iii_iv``;
2. leave-one-trial-out: refit without each trial (2 chains x 1000 draws) and score its
   arm counts against their new-trial predictive distribution (randomised PIT, 90%
   interval coverage, log predictive density; the TAC arm also given its own comparator
   arm);
3. temporal: fit on the trials published up to 2016, predict the later ones (Zheng 2022,
   Amudalapalli 2025);

and on data simulated from the model:

4. calibration: ``--n-rep`` replicates (default 200) of 7 two-arm trials simulated from
   the exchangeable core model with hyperparameters drawn from the fitting priors
   (bayesln.predict.validation.CALIBRATION_PRIORS); 6 are fitted, the
   7th is predicted (2 chains x 1000; each fit's divergences, R-hat and ESS are recorded).
   Under the model the randomised PIT is Uniform(0, 1) and the 90%
   intervals cover 90% (exact marginal calibration; Cook, Gelman & Rubin 2006).

Run from the repository root::

    python benchmarks/predict_validation.py          # -> benchmarks/results/predict_validation.json
    python benchmarks/predict_validation.py --quick --out /tmp/pv.json   # small settings
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bayesln.analysis import run_analysis  # noqa: E402
from bayesln.predict import (  # noqa: E402
    PredictionSet,
    calibration_study,
    leave_one_trial_out,
    load_targets,
    predict,
    temporal_validation,
)
from bayesln.predict.command import _clean  # noqa: E402
from bayesln.predict.validation import spec_settings  # noqa: E402
from bayesln.spec import load_spec  # noqa: E402

SPECS = ("predict_total_response", "predict_complete_response", "predict_severe_infection")
VALIDATE = ("predict_total_response", "predict_complete_response")
REFERENCE_TARGET = "asian_class_iii_iv"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def records(df):
    return json.loads(df.to_json(orient="records", double_precision=8))


def widths(preds: PredictionSet) -> list[dict]:
    """Interval width of each target relative to the in-data reference target."""
    ref = preds[REFERENCE_TARGET].table().set_index(["quantity", "level"])
    out = []
    for p in preds:
        t = p.table().set_index(["quantity", "level"])
        row = {"target": p.name, "outcome": p.outcome, "outside_data": p.extrapolation.outside_data,
               "prior_driven": p.extrapolation.prior_driven,
               "prior_share_log_or_population": p.extrapolation.prior_share["population"]["log_or"]}
        for q, scale in (("rd", "diff"), ("or", "ratio"), ("p_tac", "diff")):
            for level in ("population", "new_trial"):
                a, b = t.loc[(q, level)], ref.loc[(q, level)]
                if scale == "ratio":
                    w, wr = np.log(a["upper"] / a["lower"]), np.log(b["upper"] / b["lower"])
                else:
                    w, wr = a["upper"] - a["lower"], b["upper"] - b["lower"]
                row[f"width_{q}_{level}"] = float(w)
                row[f"width_ratio_{q}_{level}"] = float(w / wr)
        out.append(row)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict_validation.json"))
    ap.add_argument("--n-rep", type=int, default=200)
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--quick", action="store_true", help="small settings (smoke test)")
    args = ap.parse_args(argv)
    t0 = time.time()
    fit_over = dict(draws=300, tune=300, chains=2) if args.quick else {}
    val = dict(draws=300, tune=300, chains=2) if args.quick else dict(draws=1000, tune=1000, chains=2)
    cal = dict(draws=300, tune=300, chains=2) if args.quick else dict(draws=1000, tune=1000, chains=2)
    n_rep = min(args.n_rep, 20) if args.quick else args.n_rep
    result: dict = {
        "description": "bayesln.predict on the bundled tacrolimus_ln data: predictions for the shipped targets "
                       "with extrapolation diagnostics; leave-one-trial-out and temporal validation; calibration "
                       "of the new-trial predictive distribution on data simulated from the model",
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": {p: version(p) for p in ("bayesln", "pymc", "nutpie", "arviz", "numpy")}
        | {"python": platform.python_version()},
        "seed": args.seed, "quick": bool(args.quick),
    }
    targets = list(load_targets().values())
    result["targets"] = {t.name: t.model_dump(mode="json", exclude_none=True) for t in targets}
    # ---------------------------------------------------------------- 1. predictions
    result["fits"], result["predictions"], result["widths"], result["reports"] = {}, [], [], {}
    for name in SPECS:
        log(f"fit {name}")
        spec = load_spec(ROOT / "models" / f"{name}.toml").with_overrides(**fit_over)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            a = run_analysis(spec, progressbar=False)
        res = a.result
        result["fits"][name] = {"outcome": spec.data.outcome, "status": res.status, "diagnostics": res.diagnostics.to_dict(),
                                "summary": records(res.summary().reset_index()), "usage": records(res.usage)}
        preds = PredictionSet([predict(res, t, seed=args.seed) for t in targets])
        result["predictions"] += records(preds.table())
        result["widths"] += widths(preds)
        for p in preds:
            r = p.extrapolation
            sens = r.sensitivity
            sens_or = sens[(sens["level"] == "population") & (sens["quantity"] == "or")] if len(sens) else sens
            result["reports"][f"{p.name}/{p.outcome}"] = {
                "text": r.text, "outside_data": r.outside_data, "prior_driven": r.prior_driven,
                "prior_share": r.prior_share, "covariates": records(r.covariates[r.covariates["status"] != ""]),
                "contraction": records(r.contraction),
                "sensitivity_population_or": records(sens_or) if len(sens_or) else [],
            }
        log(f"  {res.status}; {len(preds)} targets")
    # ---------------------------------------------------------------- 2-3. validation
    result["leave_one_trial_out"], result["temporal"] = {}, {}
    for name in VALIDATE:
        sel, outcome, kw = spec_settings(ROOT / "models" / f"{name}.toml")
        log(f"leave-one-trial-out {outcome}")
        v = leave_one_trial_out(sel, outcome, seed=args.seed, **kw, **val, progress=lambda s: log(f"  refit without {s}"))
        result["leave_one_trial_out"][outcome] = v.to_dict()
        log("  " + json.dumps(v.summary()))
        log(f"temporal {outcome}")
        tv = temporal_validation(sel, outcome, seed=args.seed, cutoff_year=2016, **kw, **val)
        result["temporal"][outcome] = tv.to_dict()
        log("  " + json.dumps(tv.summary()))
    # ---------------------------------------------------------------- 4. calibration
    log(f"calibration: {n_rep} replicates")
    c = calibration_study(n_rep, seed=args.seed, **cal, progress=lambda r: log(f"  replicate {r}") if r % 25 == 0 else None)
    pit = c.arms["pit"].to_numpy()
    hist, _ = np.histogram(pit, bins=10, range=(0, 1))
    cs = c.summary()
    k = len(pit)
    cs.update({
        "pit_histogram_10_bins": hist.tolist(),
        "pit_chi2_pvalue": float(stats.chisquare(hist).pvalue),
        "pit_coverage_binomial_se": float(np.sqrt(0.9 * 0.1 / k)),
        "tac_arm_pit_coverage": float(c.arms.loc[c.arms["treated"], "pit_covered"].mean()),
        "comparator_arm_pit_coverage": float(c.arms.loc[~c.arms["treated"], "pit_covered"].mean()),
    })
    result["calibration"] = {"summary": cs, "settings": c.settings,
                             "trials": records(c.trials[["replicate", "lpd", "fit_status", "divergences", "max_r_hat",
                                                         "min_ess_bulk", "true_m", "true_sigma_mu", "true_d", "true_tau"]])}
    log("  " + json.dumps(cs))
    result["elapsed_s"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_clean(result), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    log(f"wrote {out} ({result['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
