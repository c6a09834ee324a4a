"""Does the model predict trials it has not seen? Three checks.

* :func:`leave_one_trial_out`: refit without each trial and score its observed arm
  counts against their posterior predictive distribution as a **new trial** with that
  trial's characteristics (regimen, phase, comparator, population covariates), i.e.
  exactly what :func:`bayesln.predict.predict` does for a target at level ``new_trial``.
  A covariate that becomes constant without the trial (e.g. ``phase`` without the only
  maintenance trial) is dropped from the refit and predicted through its extrapolation
  prior, as for any unidentified effect modifier.
* :func:`temporal_validation`: fit on the trials published up to a year, predict the
  later ones (trials without a year are left out of both sides and listed).
* :func:`calibration_study`: simulated data from the model itself, hyperparameters drawn
  from the fitting priors; the held-out trial's 90% predictive intervals must cover at
  90% (exact marginal calibration of the posterior predictive when data are generated
  from the prior predictive: Cook, Gelman & Rubin 2006; Talts et al. 2018).

Scores per arm (counts ``y`` of ``n``; predictive = mixture over posterior draws of
Binomial(n, p_s), computed exactly, not by simulation):

* ``pit``: randomised PIT ``F(y - 1) + U f(y)`` (Czado, Gneiting & Held 2009,
  Biometrics 65:1254): Uniform(0, 1) under a calibrated forecast even for counts;
* ``lower`` / ``upper``: central ``ci`` interval of the predictive count, ``covered``
  when it contains ``y`` (for counts this interval covers at least ``ci``);
  ``pit_covered``: ``(1 - ci)/2 <= pit <= (1 + ci)/2`` (exactly ``ci`` under
  calibration);
* ``lpd``: log predictive density of the trial (all arms jointly, sharing the new
  trial's baseline and effect draws);
* ``pit_conditional``: the TAC arm given the trial's own comparator arm(s)
  (self-normalised importance weights ``w_s ~ Binomial(y_c | n_c, p_cs)``): checks the
  predicted treatment effect separately from the predicted baseline.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit, logsumexp

from bayesln.hierarchy.priors import Prior, Priors, half_normal, normal
from bayesln.hierarchy.sampler_defaults import check_seed
from bayesln.predict.engine import ArmSpec, engine_for, stream
from bayesln.predict.targets import COVARIATES, Target

__all__ = [
    "CALIBRATION_PRIORS",
    "spec_settings",
    "ValidationResult",
    "calibration_study",
    "leave_one_trial_out",
    "score_trial",
    "temporal_validation",
]

#: fitting (and generating) priors of the calibration study: the core defaults for
#: tau / sigma_mu, narrower locations so that simulated trials look like LN trials
CALIBRATION_PRIORS = Priors(m=normal(0.5, 1.0), sigma_mu=half_normal(0.5), d=normal(0.5, 0.5), tau=half_normal(0.5))

ARM_COLUMNS = ["study", "arm", "treatment", "treated", "events", "n", "observed", "pred_median", "lower", "upper",
               "covered", "pit", "pit_covered", "lpd_arm", "pit_conditional", "pit_conditional_covered", "ess_conditional",
               "ci_level"]


# ============================================================================ scoring
def _mixture_pmf(n: int, p: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    k = np.arange(n + 1)
    pm = stats.binom.pmf(k[None, :], n, p[:, None])  # (S, n+1)
    if w is None:
        return pm.mean(axis=0)
    return (w[:, None] * pm).sum(axis=0)


def _pit_interval(pmf: np.ndarray, y: int, u: float, ci: float) -> dict:
    cdf = np.cumsum(pmf)
    cdf = np.minimum(cdf / cdf[-1], 1.0)
    below = cdf[y - 1] if y > 0 else 0.0
    pit = float(below + u * pmf[y] / pmf.sum())
    a = (1 - ci) / 2
    lo = int(np.searchsorted(cdf, a - 1e-12))
    hi = int(np.searchsorted(cdf, 1 - a - 1e-12))
    med = int(np.searchsorted(cdf, 0.5 - 1e-12))
    return {"pit": pit, "lower": lo, "upper": hi, "pred_median": med, "covered": bool(lo <= y <= hi),
            "pit_covered": bool(a <= pit <= 1 - a)}


def score_trial(result, arms: pd.DataFrame, target: Target, *, seed: int, ci: float = 0.9, draws: int | None = None,
                treat=("tac",), extrapolation_priors=None) -> tuple[pd.DataFrame, dict]:
    """Score one held-out trial's arms (columns study, arm, treatment, regimen, events,
    n) against the new-trial predictive distribution of ``result`` for ``target``."""
    seed = check_seed(seed)
    eng = engine_for(result, draws=draws, seed=seed)
    plan = eng.plan(target, extrapolation_priors=extrapolation_priors)
    noise = eng.noise(target, plan, seed)
    treat = tuple(treat)
    specs = []
    for _, r in arms.iterrows():
        treated = str(r["treatment"]) in treat or str(r.get("node", "")) in treat
        reg = r.get("regimen")
        reg = str(reg) if treated and isinstance(reg, str) and reg in ("duo", "triple") else None
        specs.append(ArmSpec(treated, regimen=reg, comparator=None if treated else str(r["treatment"]), label=str(r["arm"])))
    eta = eng.etas(plan, specs, "new_trial", noise)
    p = expit(eta)
    y = arms["events"].astype(int).to_numpy()
    n = arms["n"].astype(int).to_numpy()
    logpmf = stats.binom.logpmf(y[None, :], n[None, :], p)  # (S, arms)
    S = p.shape[0]
    u = stream(seed, target.name, "pit").uniform(size=len(specs))
    rows = []
    ctrl = np.array([not s.treated for s in specs])
    w = None
    ess = np.nan
    if ctrl.any() and (~ctrl).any():
        lw = logpmf[:, ctrl].sum(axis=1)
        w = np.exp(lw - logsumexp(lw))
        ess = float(1.0 / np.sum(w**2))
    for j, s in enumerate(specs):
        sc = _pit_interval(_mixture_pmf(int(n[j]), p[:, j]), int(y[j]), float(u[j]), ci)
        row = {"study": arms["study"].iloc[j], "arm": s.label, "treatment": arms["treatment"].iloc[j], "treated": s.treated,
               "events": int(y[j]), "n": int(n[j]), "observed": y[j] / n[j], **sc,
               "lpd_arm": float(logsumexp(logpmf[:, j]) - np.log(S)),
               "pit_conditional": np.nan, "pit_conditional_covered": None, "ess_conditional": np.nan, "ci_level": ci}
        if s.treated and w is not None:
            c = _pit_interval(_mixture_pmf(int(n[j]), p[:, j], w), int(y[j]), float(u[j]), ci)
            row.update(pit_conditional=c["pit"], pit_conditional_covered=c["pit_covered"], ess_conditional=ess)
        rows.append(row)
    trial = {
        "study": arms["study"].iloc[0], "n_arms": len(specs),
        "lpd": float(logsumexp(logpmf.sum(axis=1)) - np.log(S)),
        "n_patients": int(n.sum()),
        "outside_data": ", ".join(plan.inventory.loc[plan.inventory["outside_data"].astype(bool), "covariate"].unique()),
        "extrapolation_terms": ", ".join(t.key for t in plan.terms),
    }
    trial["lpd_per_patient"] = trial["lpd"] / trial["n_patients"]
    return pd.DataFrame(rows, columns=ARM_COLUMNS), trial


def target_for_trial(data, study: str, outcome: str, treat=("tac",), covariates: str = "all") -> tuple[Target, pd.DataFrame]:
    """The target describing a trial (its covariates, regimen, phase, comparator) and
    its arm table for ``outcome``."""
    tab = data.arm_table(outcome) if hasattr(data, "arm_table") else data
    arms = tab[tab["study"].astype(str) == study].copy()
    if arms.empty:
        raise ValueError(f"{study}: no arm with known {outcome} counts")
    treat = tuple(treat)
    treated = arms["treatment"].astype(str).isin(treat)
    if "node" in arms:
        treated |= arms["node"].astype(str).isin(treat)
    kw: dict = {}
    if covariates == "all":
        for c in COVARIATES:
            if c in arms.columns:
                v = arms[c].iloc[0]
                if v is not None and not pd.isna(v):
                    kw[c] = bool(v) if COVARIATES[c] == "flag" else (int(v) if c == "year" else float(v))
    if "phase" in arms.columns:
        ph = arms["phase"].iloc[0]
        if isinstance(ph, str) and ph in ("induction", "maintenance"):
            kw["phase"] = ph
    if "regimen" in arms.columns:
        regs = {str(r) for r in arms.loc[treated, "regimen"].dropna()}
        if len(regs) == 1 and regs <= {"duo", "triple"}:
            kw["regimen"] = regs.pop()
    comps = list(dict.fromkeys(arms.loc[~treated, "treatment"].astype(str)))
    if comps:
        kw["comparator"] = comps[0]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"heldout_{study}")[:80]
    return Target(name=name, title=f"held-out trial {study}", **kw), arms


# ============================================================================ results
@dataclass
class ValidationResult:
    """Per-arm and per-trial scores of held-out trials."""

    kind: str
    outcome: str
    arms: pd.DataFrame
    trials: pd.DataFrame
    settings: dict = field(default_factory=dict)
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["study", "reason"]))

    def summary(self) -> dict:
        a = self.arms
        out = {"kind": self.kind, "outcome": self.outcome, "n_trials": int(len(self.trials)), "n_arms": int(len(a)),
               "ci_level": float(a["ci_level"].iloc[0]) if len(a) else None}
        if len(a):
            out["interval_coverage"] = float(a["covered"].mean())
            out["pit_coverage"] = float(a["pit_covered"].mean())
            out["mean_pit"] = float(a["pit"].mean())
            out["ks_pvalue"] = float(stats.kstest(a["pit"], "uniform").pvalue) if len(a) >= 5 else None
            c = a.dropna(subset=["pit_conditional"])
            out["n_conditional"] = int(len(c))
            out["conditional_pit_coverage"] = float(c["pit_conditional_covered"].astype(bool).mean()) if len(c) else None
        if len(self.trials):
            out["lpd_total"] = float(self.trials["lpd"].sum())
            out["lpd_per_patient"] = float(self.trials["lpd"].sum() / self.trials["n_patients"].sum())
        if "fit_status" in self.trials:
            failed = self.trials.loc[self.trials["fit_status"] != "ok"]
            # a refit that failed its gate scores its trial from untrustworthy draws: counted, named
            out["n_refits"] = int(self.trials["fit_status"].notna().sum()) if self.kind.startswith("leave") else 1
            out["refits_failing_gate"] = (int(len(failed)) if self.kind.startswith("leave")
                                          else int(len(failed) > 0))
            out["trials_scored_by_failed_refits"] = [str(x) for x in failed.get("study", pd.Series(dtype=str))]
        return out

    def table(self) -> pd.DataFrame:
        return self.arms

    def to_dict(self) -> dict:
        def rec(df):
            return json.loads(df.to_json(orient="records", double_precision=8)) if len(df) else []

        return {"kind": self.kind, "outcome": self.outcome, "summary": self.summary(), "settings": self.settings,
                "trials": rec(self.trials), "arms": rec(self.arms), "excluded": rec(self.excluded)}

    def text(self) -> str:
        s = self.summary()
        lines = [f"{self.kind} ({self.outcome}): {s['n_trials']} held-out trials, {s['n_arms']} arms"]
        if s.get("refits_failing_gate"):
            lines.append(f"  WARNING: {s['refits_failing_gate']} of {s['n_refits']} refit(s) failed the diagnostics gate; "
                         f"the scores of {', '.join(s['trials_scored_by_failed_refits'])} come from untrustworthy draws")
        if s["n_arms"]:
            lines.append(f"  {100 * s['ci_level']:.0f}% predictive intervals cover {s['interval_coverage']:.2f} of the arms "
                         f"(randomised-PIT coverage {s['pit_coverage']:.2f}); mean PIT {s['mean_pit']:.2f}; "
                         f"log predictive density {s['lpd_total']:.2f}")
        for _, r in self.arms.iterrows():
            cond = "" if pd.isna(r["pit_conditional"]) else f"; given its control arm PIT {r['pit_conditional']:.2f}"
            lines.append(f"   {r['study']:<18} {r['arm']:<6} {r['events']:>3}/{r['n']:<3} predicted {r['lower']}-{r['upper']} "
                         f"{'ok ' if r['covered'] else 'OUT'} PIT {r['pit']:.2f}{cond}")
        return "\n".join(lines)


def spec_settings(spec, data=None) -> tuple[object, str, dict]:
    """``(data selection, outcome, keyword arguments)`` for :func:`leave_one_trial_out` /
    :func:`temporal_validation` from an analysis spec (path or Spec): the spec's data
    filters, model and priors; sampler settings are left to the caller."""
    from bayesln.analysis import load_data_source, select_for_spec
    from bayesln.spec import Spec, load_spec

    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    td = load_data_source(spec.data_source()) if data is None else data
    sel = select_for_spec(td, spec)
    m = spec.model
    if m.common_effect:
        raise ValueError("validation of predictions needs a random-effects model (common_effect = false)")
    kw = dict(treat=tuple(m.treat), baseline=m.baseline, effect_modifiers=tuple(m.effect_modifiers or ()),
              baseline_covariates=tuple(m.baseline_covariates), priors=spec.priors_obj(),
              target_accept=spec.sampler.target_accept, parameterization=m.parameterization,
              baseline_parameterization=m.baseline_parameterization, nonrandomised=m.nonrandomised)
    return sel, spec.data.outcome, kw


# ============================================================================ refits
_CONST = re.compile(r"'([a-z_]+)' is constant")


def _fit_dropping_constant(data, outcome, *, effect_modifiers, baseline_covariates, priors, fit_kwargs, seed):
    """fit_core, dropping covariates that are constant in ``data`` (reported)."""
    from bayesln.hierarchy import build_design, fit_core

    em, bc = list(effect_modifiers), list(baseline_covariates)
    dropped: list[str] = []
    treat = fit_kwargs.get("treat", ("tac",))
    baseline = fit_kwargs.get("baseline", "independent")
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                build_design(data, outcome, treat=treat, baseline=baseline, effect_modifiers=tuple(em),
                             baseline_covariates=tuple(bc), warn=False,
                             nonrandomised=fit_kwargs.get("nonrandomised", "exclude"))
            break
        except ValueError as exc:
            m = _CONST.search(str(exc))
            if not m or (m.group(1) not in em and m.group(1) not in bc):
                raise
            c = m.group(1)
            dropped.append(c)
            em = [x for x in em if x != c]
            bc = [x for x in bc if x != c]
    pr = priors if isinstance(priors, Priors) or priors is None else Priors.model_validate(priors)
    if pr is not None and dropped:
        keep = lambda k: not any(k == c or k.startswith(c + ":") for c in dropped)  # noqa: E731
        pr = pr.model_copy(update={"beta_overrides": {k: v for k, v in pr.beta_overrides.items() if keep(k)},
                                   "gamma_overrides": {k: v for k, v in pr.gamma_overrides.items() if keep(k)}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = fit_core(data, outcome, effect_modifiers=tuple(em), baseline_covariates=tuple(bc), priors=pr,
                       prior_predictive=False, seed=seed, **fit_kwargs)
    return res, dropped


def _fit_kwargs(treat, baseline, draws, tune, chains, target_accept, backend, parameterization="auto",
                baseline_parameterization="auto", nonrandomised="exclude") -> dict:
    """fit_core's keywords of a validation refit: every model and sampler setting of the
    model being validated (a refit of another model would validate something else)."""
    return dict(treat=tuple(treat), baseline=baseline, draws=draws, tune=tune, chains=chains,
                target_accept=target_accept, backend=backend, progressbar=False, parameterization=parameterization,
                baseline_parameterization=baseline_parameterization, nonrandomised=nonrandomised)


def _contrast_studies(data, outcome, treat, baseline, effect_modifiers, baseline_covariates,
                      nonrandomised="exclude") -> list[str]:
    from bayesln.hierarchy import build_design

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        des = build_design(data, outcome, treat=tuple(treat), baseline=baseline, effect_modifiers=tuple(effect_modifiers),
                           baseline_covariates=tuple(baseline_covariates), warn=False, nonrandomised=nonrandomised)
    return list(dict.fromkeys(des.contrasts["study"]))


def _loto_task(task):
    """One leave-one-trial-out refit and its scores (a picklable executor task)."""
    (data, s, outcome, effect_modifiers, baseline_covariates, priors, fk, seed, treat, covariates, ci,
     extrapolation_priors) = task
    train = data.select(exclude_studies=[s])
    res, dropped = _fit_dropping_constant(train, outcome, effect_modifiers=effect_modifiers,
                                          baseline_covariates=baseline_covariates, priors=priors, fit_kwargs=fk, seed=seed)
    target, arms = target_for_trial(data, s, outcome, treat, covariates)
    a, t = score_trial(res, arms, target, seed=seed, ci=ci, treat=treat, extrapolation_priors=extrapolation_priors)
    t.update(fit_status=res.status, dropped_covariates=", ".join(dropped), n_train_trials=res.design.n_studies)
    return a, t


def leave_one_trial_out(data, outcome: str, *, seed: int, treat=("tac",), baseline: str = "exchangeable",
                        effect_modifiers=(), baseline_covariates=(), priors=None, studies=None, ci: float = 0.9,
                        draws: int = 1000, tune: int = 1000, chains: int = 2, target_accept: float = 0.99,
                        backend: str = "auto", covariates: str = "all", extrapolation_priors=None,
                        parameterization: str = "auto", baseline_parameterization: str = "auto",
                        progress=None, executor=None, nonrandomised: str = "exclude") -> ValidationResult:
    """Refit without each trial (default: every trial comparing TAC with a control in
    the full fit) and score it as a new trial. ``data`` is the selection the model is
    fitted to (e.g. the RCTs). ``progress(study)`` is called before each refit (when it
    finishes, with worker processes).

    ``executor`` (:mod:`bayesln.executor`): where the refits run; default in this
    process, local worker processes from 16 trials on a machine with at least
    ``2 * chains`` cores. Refits of the same model structure (same arms per trial and
    covariates) reuse one compiled model per process: 20 refits compile once. Every refit
    uses ``seed``, so the results do not depend on the executor."""
    from bayesln.executor import run_batch

    seed = check_seed(seed)
    held = list(studies) if studies is not None else _contrast_studies(data, outcome, treat, baseline, effect_modifiers,
                                                                       baseline_covariates, nonrandomised)
    fk = _fit_kwargs(treat, baseline, draws, tune, chains, target_accept, backend, parameterization,
                     baseline_parameterization, nonrandomised)
    tasks = [(data, s, outcome, effect_modifiers, baseline_covariates, priors, fk, seed, treat, covariates, ci,
              extrapolation_priors) for s in held]
    out = run_batch(_loto_task, tasks, executor, chains=chains,
                    progress=(lambda i: progress(held[i])) if progress else None)
    arm_frames = [a for a, _ in out]
    trials = [t for _, t in out]
    settings = {"seed": seed, "baseline": baseline, "effect_modifiers": list(effect_modifiers),
                "baseline_covariates": list(baseline_covariates), "draws": draws, "tune": tune, "chains": chains,
                "covariates": covariates, "ci": ci, "fit": {k: v for k, v in fk.items() if k != "progressbar"}}
    return ValidationResult("leave-one-trial-out", outcome, pd.concat(arm_frames, ignore_index=True) if arm_frames else
                            pd.DataFrame(columns=ARM_COLUMNS), pd.DataFrame(trials), settings)


def _fit_task(task):
    data, outcome, effect_modifiers, baseline_covariates, priors, fk, seed = task
    return _fit_dropping_constant(data, outcome, effect_modifiers=effect_modifiers, baseline_covariates=baseline_covariates,
                                  priors=priors, fit_kwargs=fk, seed=seed)


def temporal_validation(data, outcome: str, *, seed: int, cutoff_year: int = 2016, treat=("tac",),
                        baseline: str = "exchangeable", effect_modifiers=(), baseline_covariates=(), priors=None,
                        ci: float = 0.9, draws: int = 1000, tune: int = 1000, chains: int = 2,
                        target_accept: float = 0.99, backend: str = "auto", covariates: str = "all",
                        extrapolation_priors=None, parameterization: str = "auto",
                        baseline_parameterization: str = "auto", executor=None,
                        nonrandomised: str = "exclude") -> ValidationResult:
    """Fit on the trials published up to ``cutoff_year`` and score the later ones.
    ``executor``: where the (single) fit runs (:mod:`bayesln.executor`; default in this
    process)."""
    from bayesln.executor import run_batch

    seed = check_seed(seed)
    st = data.studies
    tab = data.arm_table(outcome)
    with_counts = set(tab["study"].astype(str))
    years = pd.to_numeric(st["year"], errors="coerce")
    unknown = [s for s in st.index if pd.isna(years[s]) and s in with_counts]
    train = [s for s in st.index if not pd.isna(years[s]) and years[s] <= cutoff_year]
    test_all = [s for s in st.index if not pd.isna(years[s]) and years[s] > cutoff_year and s in with_counts]
    excluded = [{"study": s, "reason": "publication year unknown: cannot be placed before or after the cutoff"} for s in unknown]
    fk = _fit_kwargs(treat, baseline, draws, tune, chains, target_accept, backend, parameterization,
                     baseline_parameterization, nonrandomised)
    [(res, dropped)] = run_batch(_fit_task, [(data.select(studies=train), outcome, effect_modifiers, baseline_covariates,
                                              priors, fk, seed)], executor, default="serial")
    arm_frames, trials = [], []
    for s in test_all:
        target, arms = target_for_trial(data, s, outcome, treat, covariates)
        treated = arms["treatment"].astype(str).isin(tuple(treat))
        if not treated.any() or treated.all():
            excluded.append({"study": s, "reason": "no TAC-vs-control comparison to score"})
            continue
        a, t = score_trial(res, arms, target, seed=seed, ci=ci, treat=treat, extrapolation_priors=extrapolation_priors)
        t.update(fit_status=res.status, dropped_covariates=", ".join(dropped), n_train_trials=res.design.n_studies,
                 year=int(years[s]))
        arm_frames.append(a)
        trials.append(t)
    settings = {"seed": seed, "cutoff_year": cutoff_year, "train_trials": list(res.design.study_ids), "baseline": baseline,
                "effect_modifiers": list(effect_modifiers), "baseline_covariates": list(baseline_covariates),
                "dropped_covariates": dropped, "draws": draws, "tune": tune, "chains": chains, "ci": ci,
                "fit": {k: v for k, v in fk.items() if k != "progressbar"}}
    return ValidationResult(f"temporal (fit <= {cutoff_year}, predict later)", outcome,
                            pd.concat(arm_frames, ignore_index=True) if arm_frames else pd.DataFrame(columns=ARM_COLUMNS),
                            pd.DataFrame(trials), settings, pd.DataFrame(excluded, columns=["study", "reason"]))


# ============================================================================ calibration
def _draw(prior: Prior, rng: np.random.Generator) -> float:
    q = prior.params
    if prior.dist == "normal":
        return float(rng.normal(q["mu"], q["sigma"]))
    if prior.dist == "half_normal":
        return float(abs(rng.normal(0.0, q["scale"])))
    if prior.dist == "student_t":
        return float(q["mu"] + q["sigma"] * rng.standard_t(q["nu"]))
    if prior.dist == "exponential":
        return float(rng.exponential(1 / q["rate"]))
    raise ValueError(f"calibration_study cannot draw from {prior}; use normal / half_normal / student_t / exponential")


def simulate_trials(rng: np.random.Generator, n_trials: int, priors: Priors, arm_size=(20, 150)) -> tuple[pd.DataFrame, dict]:
    """Two-arm trials (tac vs ivcy) from the exchangeable core model with hyperparameters
    drawn from ``priors``: returns the arm table and the truth."""
    truth = {"m": _draw(priors.m, rng), "sigma_mu": _draw(priors.sigma_mu, rng), "d": _draw(priors.d, rng),
             "tau": _draw(priors.tau, rng)}
    rows = []
    for i in range(n_trials):
        mu = truth["m"] + truth["sigma_mu"] * rng.standard_normal()
        delta = truth["d"] + truth["tau"] * rng.standard_normal()
        for arm, eta in (("tac", mu + delta), ("ivcy", mu)):
            n = int(rng.integers(arm_size[0], arm_size[1] + 1))
            rows.append({"study": f"s{i + 1:02d}", "arm": arm, "treatment": arm, "regimen": "duo" if arm == "tac" else "control",
                         "events": int(rng.binomial(n, expit(eta))), "n": n})
    return pd.DataFrame(rows), truth


def _calibration_task(task):
    """One calibration replicate (a picklable executor task)."""
    from bayesln.hierarchy import fit_core

    r, seed, n_trials, priors, arm_size, ci, draws, tune, chains, target_accept, backend = task
    rng = stream(seed, "calibration", r)
    df, truth = simulate_trials(rng, n_trials + 1, priors, arm_size)
    held = f"s{n_trials + 1:02d}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = fit_core(df[df["study"] != held], "total_response", baseline="exchangeable", priors=priors, draws=draws,
                       tune=tune, chains=chains, target_accept=target_accept, backend=backend, seed=seed + r,
                       prior_predictive=False, progressbar=False)
    a, t = score_trial(res, df[df["study"] == held].reset_index(drop=True), Target(name=f"sim{r}", comparator="ivcy"),
                       seed=seed + r, ci=ci)
    a["replicate"] = r
    diag = res.diagnostics
    t.update(replicate=r, fit_status=res.status, divergences=int(diag.divergences),
             max_r_hat=float(diag.table["r_hat"].max()), min_ess_bulk=float(diag.table["ess_bulk"].min()),
             **{f"true_{k}": v for k, v in truth.items()})
    return a, t, res.status


def calibration_study(n_rep: int = 200, *, seed: int, n_trials: int = 6, arm_size=(20, 150),
                      priors: Priors = CALIBRATION_PRIORS, ci: float = 0.9, draws: int = 500, tune: int = 500,
                      chains: int = 2, target_accept: float = 0.95, backend: str = "auto", progress=None,
                      executor=None) -> ValidationResult:
    """``n_rep`` replicates: simulate ``n_trials + 1`` trials from the exchangeable core
    model (hyperparameters from ``priors``), fit the same model to the first
    ``n_trials``, score the last as a new trial.

    ``executor`` (:mod:`bayesln.executor`): default local worker processes on all cores
    from 16 replicates on a machine with at least ``2 * chains`` cores (every replicate
    has the same model structure, so each worker compiles once), else in this process.
    Replicate ``r`` uses seed ``seed + r`` and its own random stream, so the results do
    not depend on the executor. ``progress(r)`` is called before each replicate (when it
    finishes, with worker processes)."""
    from bayesln.executor import run_batch

    seed = check_seed(seed)
    tasks = [(r, seed, n_trials, priors, tuple(arm_size), ci, draws, tune, chains, target_accept, backend)
             for r in range(n_rep)]
    out = run_batch(_calibration_task, tasks, executor, chains=chains, progress=progress)
    arm_frames = [a for a, _, _ in out]
    trials = [t for _, t, _ in out]
    statuses = [st for _, _, st in out]
    settings = {"seed": seed, "n_rep": n_rep, "n_trials": n_trials, "arm_size": list(arm_size), "ci": ci,
                "priors": priors.to_json_dict(), "draws": draws, "tune": tune, "chains": chains,
                "fits_failing_gate": int(sum(s != "ok" for s in statuses))}
    tr = pd.DataFrame(trials)
    if len(tr):
        # why fits failed: short runs mostly miss ESS >= 400 only, which adds Monte-Carlo
        # noise to each prediction but does not bias the calibration; divergences would
        settings["fits_with_divergences"] = int((tr["divergences"] > 0).sum())
        settings["fits_with_r_hat_above_1.01"] = int((tr["max_r_hat"] > 1.01).sum())
        settings["fits_failing_only_on_ess"] = int(((tr["fit_status"] != "ok") & (tr["divergences"] == 0)
                                                    & (tr["max_r_hat"] <= 1.01)).sum())
    return ValidationResult("calibration (simulated from the model)", "simulated", pd.concat(arm_frames, ignore_index=True),
                            pd.DataFrame(trials), settings)
