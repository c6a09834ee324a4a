"""``bayesln check RUN``: the checks of a run folder written by ``bayesln fit``.

The run's fit is rebuilt from the stored draws (``idata.nc``) and a design made again
from the stored spec and data (``spec.json``, ``data.csv``; when the spec's source is a
bundled dataset whose selection has the run's fingerprint, the bundled dataset is used so
that its published figures are available). Everything else is refitted with the stored
seed (child seeds derived from it): subgroup fits, held-out fits, prior variants and model
variants. Tables:

* ``comparison``: published / recomputed / MH / DL / REML / Bayesian RRs of the run's
  outcome, per subgroup (:func:`bayesln.checks.compare.full_comparison`);
* ``ppc``: posterior and mixed predictive checks per arm (:mod:`bayesln.checks.ppc`);
* ``loo`` and ``influence``: leave-one-study-out (:mod:`bayesln.checks.loo`);
* ``sensitivity``: alternative priors (:mod:`bayesln.checks.sensitivity`);
* ``models``: LOO comparison with the common-effect (or random-effects) variant and the
  no-covariate variant (:mod:`bayesln.checks.models`).

Input problems (not a run folder, data that do not match the draws, a bad format) raise
:class:`CheckInputError` (a ``ValueError``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["CheckInputError", "CheckReport", "check_command", "fit_from_run", "run_checks"]

FORMATS = ("table", "json")


class CheckInputError(ValueError):
    """A run folder or option the checks cannot use."""


@dataclass
class CheckReport:
    """All check tables of one run (DataFrames; ``None`` when a check was not run)."""

    run: str
    outcome: str
    info: dict
    comparison: pd.DataFrame | None = None
    ppc: pd.DataFrame | None = None
    loo: object | None = None  # StudyLoo
    influence: pd.DataFrame | None = None
    sensitivity: pd.DataFrame | None = None
    models: pd.DataFrame | None = None
    #: small-study effects (Egger, Begg, trim-and-fill as metafor computes them), one row each
    small_study_effects: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    #: the run failed its gate and the checks were asked for anyway: in every table and file
    warning: str = ""

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {}
        for name in ("comparison", "ppc", "influence", "sensitivity", "models", "small_study_effects"):
            t = getattr(self, name)
            if t is not None:
                out[name] = t
        if self.loo is not None:
            out["loo"] = self.loo.pointwise
            out["loo_summary"] = self.loo.summary()
        if self.warning:
            out = {k: t.assign(warning=self.warning) for k, t in out.items()}
        return out

    def to_dict(self) -> dict:
        d = {"run": self.run, "outcome": self.outcome, "info": self.info, "notes": list(self.notes),
             "warning": self.warning}
        for name, t in self.tables().items():
            d[name] = json.loads(t.to_json(orient="records", double_precision=10))
        return d

    def save(self, folder: str | Path, *, figures: bool = True) -> Path:
        """Write every table as CSV, ``checks.json`` and (optionally) the figures into
        ``folder``, atomically: a temporary folder beside it, renamed into place when
        complete (an earlier checks folder there is replaced in one rename). Refused
        (:class:`CheckInputError`) inside a run folder - a fit's files never change - and
        over an existing folder that is not a checks folder (see
        :func:`check_destination`)."""
        from bayesln.runs import atomic_run_dir

        p = check_destination(folder)
        with atomic_run_dir(p.parent, p.name, marker="checks.json") as tmp:
            self._write(tmp, figures=figures)
        return p

    def _write(self, p: Path, *, figures: bool) -> None:
        from bayesln import plots

        for name, t in self.tables().items():
            t.to_csv(p / f"{name}.csv", index=False, float_format="%.6g")
        (p / "checks.json").write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False, default=str), encoding="utf-8")
        if figures:
            import matplotlib.pyplot as plt

            figs = {}
            if self.ppc is not None:
                figs["ppc"] = plots.ppc_figure(self.ppc, title=f"{self.run}: posterior predictive check")
            if self.influence is not None:
                figs["influence"] = plots.plot_influence(self.influence, title=f"{self.run}: leave one study out")
            if self.sensitivity is not None:
                figs["sensitivity"] = plots.plot_sensitivity(self.sensitivity, title=f"{self.run}: prior sensitivity")
            if self.models is not None:
                figs["models"] = plots.plot_model_comparison(self.models)
            if self.comparison is not None:
                figs["comparison"] = plots.plot_comparison(self.comparison, outcome=self.outcome)
            for name, fig in figs.items():
                fig.savefig(p / f"{name}.png", dpi=120)
                plt.close(fig)


def check_destination(folder: str | Path) -> Path:
    """The folder ``bayesln check --out`` writes, checked before any refit: not a run
    folder or inside one (a fit's files never change after it is written), not an
    existing non-empty folder other than an earlier checks folder (one holding
    ``checks.json``, which is replaced), and its parent writable."""
    from bayesln.runs import RunError, check_output_parent, check_run_name

    p = Path(folder).resolve()
    for q in (p, *p.parents):
        if (q / "run.json").is_file():
            raise CheckInputError(f"--out {folder}: is {'a run folder' if q == p else f'inside the run folder {q}'}; "
                                  "a fit's files never change after it is written - write the checks to their own folder")
    if p.exists() and p.is_dir() and any(p.iterdir()) and not (p / "checks.json").is_file():
        raise CheckInputError(f"--out {folder}: an existing folder that is not a checks folder (no checks.json); "
                              "give a new folder (or an earlier checks folder, which is replaced)")
    try:
        check_run_name(p.name)
        check_output_parent(p, "--out")
    except RunError as exc:
        raise CheckInputError(str(exc)) from None
    return p


# --------------------------------------------------------------------------- loading
def _trialdata_for_run(run, path: Path):
    """The run's data: the bundled dataset when its selection is the run's data (keeps
    the published table), else ``data.csv``."""
    import bayesln
    from bayesln.analysis import select_for_spec

    fp = run.info.get("data_fingerprint")
    src = run.spec.data.source
    if src in bayesln.list_datasets():
        try:
            td = select_for_spec(bayesln.load_dataset(src), run.spec)
            if td.fingerprint() == fp:
                return td, f"data: bundled dataset {src!r} (selection matches the run)"
        except ValueError:
            pass
    csv = path / "data.csv"
    if not csv.is_file():
        raise CheckInputError(f"{path}: data.csv missing; cannot rebuild the run's design")
    td = select_for_spec(bayesln.read_trials(csv), run.spec)
    note = "data: the run's data.csv"
    if fp and td.fingerprint() != fp:
        note += " (fingerprint differs from run.json; the arms are checked against the stored draws)"
    return td, note


def fit_from_run(path: str | Path):
    """(FitResult rebuilt from a run folder, the run's TrialData, LoadedRun, notes)."""
    from bayesln.analysis import load_run
    from bayesln.hierarchy.design import build_design
    from bayesln.hierarchy.diagnostics import GateThresholds, run_gate
    from bayesln.hierarchy.result import FitResult

    path = Path(path)
    run = load_run(path)
    spec = run.spec
    if spec.model.family != "core":
        raise CheckInputError(f"{path}: checks need a core-model run (family {spec.model.family!r})")
    td, note = _trialdata_for_run(run, path)
    m = spec.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        design = build_design(td, spec.data.outcome, treat=tuple(m.treat), baseline=m.baseline,
                              direction=spec.data.directions.get(spec.data.outcome),
                              effect_modifiers=tuple(m.effect_modifiers or ()),
                              baseline_covariates=tuple(m.baseline_covariates), warn=False,
                              nonrandomised=m.nonrandomised)
    idata = run.idata
    stored = idata.posterior.attrs.get("covariate_transforms")
    if stored is not None and json.loads(stored) != json.loads(design.transforms_json()):
        raise CheckInputError(f"{path}: the covariate transforms rebuilt from the run's spec and data differ from those "
                              "stored with the draws (e.g. a run fitted before covariates were put on natural units); "
                              "refit it with `bayesln fit`")
    arms = [str(a) for a in idata.observed_data["arm"].values]
    if arms != list(design.arm_ids) or not np.array_equal(np.asarray(idata.observed_data["events"].values), design.events):
        raise CheckInputError(f"{path}: the stored draws do not match the run's spec and data (arms or counts differ); "
                              "re-run `bayesln fit`")
    raw = idata.posterior.attrs.get("model_config") or idata.attrs.get("model_config")
    config = json.loads(raw) if raw else {}
    g = spec.gate
    gate = GateThresholds(r_hat_max=g.r_hat, ess_bulk_min=g.ess_bulk, ess_tail_min=g.ess_tail,
                          divergences_max=g.max_divergences, bfmi_min=g.bfmi)
    sample_stats = idata.sample_stats if "sample_stats" in idata.groups() else None
    diag = run_gate(idata.posterior, sample_stats, gate, warn=False)
    seed = int(run.info.get("seed", spec.sampler.seed))
    backend = config.get("sampler", {}).get("backend", "nutpie")
    result = FitResult(idata=idata, design=design, diagnostics=diag, config=config, seed=seed, backend=backend)
    return result, td, run, [note]


# --------------------------------------------------------------------------- checks
def run_checks(run_dir: str | Path, *, alpha: float = 0.05, k_threshold: float = 0.7, draws: int | None = None,
               tune: int | None = None, chains: int | None = None, comparison: bool = True, ppc: bool = True,
               loo: bool = True, influence: bool = True, sensitivity: bool = True, models: bool = True,
               tau_priors=None, d_priors=None, progressbar: bool = False,
               allow_failed_gate: bool = False, progress=None, bias: bool = True) -> CheckReport:
    """All checks of a run folder (see the module docstring). ``draws`` / ``tune`` /
    ``chains`` override the sampler settings of the refits (default: the run's). A run
    that failed its diagnostics gate is refused
    (:class:`~bayesln.hierarchy.diagnostics.GateFailedError`) unless
    ``allow_failed_gate``; then every table and the text carry the warning.
    ``progress(i, n, label)`` is called before each refit (the i-th of a batch of n, n
    None when not known in advance), e.g. (3, 7, "leave out liu2015")."""
    import contextlib

    from bayesln.checks.refit import refit_batch, reporting_refits
    from bayesln.hierarchy.diagnostics import gate_warning
    from bayesln.checks.compare import full_comparison
    from bayesln.checks.loo import influence_table, study_loo
    from bayesln.checks.models import compare_models, model_variants
    from bayesln.checks.ppc import ppc_table
    from bayesln.checks.sensitivity import DEFAULT_D_PRIORS, DEFAULT_TAU_PRIORS, prior_sensitivity

    if not 0 < alpha < 1:
        raise CheckInputError(f"alpha must be in (0, 1), got {alpha}")
    if not k_threshold > 0:
        raise CheckInputError(f"k_threshold must be > 0, got {k_threshold}")
    for name, v in (("draws", draws), ("tune", tune), ("chains", chains)):
        if v is not None and (not isinstance(v, (int, np.integer)) or v < 1):
            raise CheckInputError(f"{name} must be a positive integer, got {v!r}")
    result, td, run, notes = fit_from_run(run_dir)
    spec = run.spec
    outcome = spec.data.outcome
    kw = dict(draws=draws, tune=tune, chains=chains, progressbar=progressbar)
    s = result.config.get("sampler", {})
    info = {"run_dir": str(Path(run_dir)), "spec": spec.name, "outcome": outcome, "seed": result.seed,
            "status": result.status, "refit_draws": draws or s.get("draws"),
            "refit_tune": tune if tune is not None else s.get("tune"),
            "refit_chains": chains or s.get("chains"), "alpha": alpha, "k_threshold": k_threshold}
    warning = gate_warning(result, "checks", allow_failed_gate)
    rep = CheckReport(run=spec.name, outcome=outcome, info=info, notes=([warning] if warning else []) + notes,
                      warning=warning)
    if result.design.effect_names:
        rep.notes.append("the Bayesian RRs and ORs are at the covariate reference values (model with effect modifiers)")
    if result.design.effect_names or result.design.baseline_names:
        dropped = [f"{what} {', '.join(names)}" for names, what in
                   ((result.design.effect_names, "effect modifiers"), (result.design.baseline_names, "baseline covariates"))
                   if names]
        rep.notes.append("the subgroup rows (duo, triple, induction, maintenance) are separate subgroup fits without "
                         "the run's covariates (" + "; ".join(dropped) + ")")
    with warnings.catch_warnings(), (reporting_refits(progress) if progress else contextlib.nullcontext()):
        warnings.simplefilter("ignore", UserWarning)
        if comparison:
            with refit_batch(None):  # the subgroups to refit are known only inside
                rep.comparison = full_comparison(
                    td, outcomes=[outcome], treat=tuple(spec.model.treat), seed=result.seed, fits={outcome: result},
                    draws=draws or s.get("draws", 1000), tune=tune if tune is not None else s.get("tune", 1000),
                    chains=chains or s.get("chains", 4), progressbar=progressbar)
        if ppc:
            rep.ppc = ppc_table(result, alpha=alpha)
        lo = None
        if loo or influence or models:
            lo = study_loo(result, k_threshold=k_threshold, **kw)
            if loo:
                rep.loo = lo
        if influence:
            rep.influence = influence_table(result, loo=lo, **kw)
        if sensitivity:
            rep.sensitivity = prior_sensitivity(
                result, tau_priors=DEFAULT_TAU_PRIORS if tau_priors is None else tau_priors,
                d_priors=DEFAULT_D_PRIORS if d_priors is None else d_priors, **kw)
        if models:
            variants = model_variants(result, **kw)
            first = next(iter(variants))
            variants[first] = lo
            rep.models = compare_models(variants, k_threshold=k_threshold, **kw)
    if bias:
        rep.small_study_effects = _small_study_table(td, outcome, tuple(spec.model.treat))
    rep.info["refits"] = refit_gates(rep)
    r = rep.info["refits"]
    if r["failed"]:
        where = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["failed_by_check"].items())
        rep.notes.append(f"{r['failed']} of {r['total']} refits failed their diagnostics gate ({where}): their rows "
                         "come from untrustworthy draws (refit with more --draws)")
    return rep


def _small_study_table(td, outcome: str, treat: tuple) -> pd.DataFrame | None:
    """Egger / Begg / trim-and-fill on the run's trials (log RR, metafor's defaults), one
    row per method with the Cochrane caution below 10 trials (column ``caution``); None
    below 3 trials."""
    from bayesln.frequentist import small_study_effects

    con = td.contrasts(outcome, treat=treat).dropna(subset=["events_t", "n_t", "events_c", "n_c"])
    if len(con) < 3:
        return None
    try:
        d = small_study_effects(con, "RR").to_dict()
    except ValueError:
        return None
    e, b, t = d["egger"], d["begg"], d["trimfill"]
    warn = d.get("warning") or ""
    return pd.DataFrame([
        {"method": f"Egger regression ({e['model']}, {e['predictor']})", "statistic": e["statistic"],
         "pvalue": e["pvalue"], "estimate": e["limit_estimate"], "ci_low": e["limit_ci_low"],
         "ci_high": e["limit_ci_high"], "detail": "limit estimate, log RR", "k": d["k"], "caution": warn},
        {"method": "Begg rank correlation", "statistic": b["tau"], "pvalue": b["pvalue"], "estimate": np.nan,
         "ci_low": np.nan, "ci_high": np.nan, "detail": "exact" if b["exact"] else "normal approximation",
         "k": d["k"], "caution": warn},
        {"method": f"trim-and-fill ({t['estimator']})", "statistic": np.nan, "pvalue": np.nan,
         "estimate": t["estimate"], "ci_low": t["ci_low"], "ci_high": t["ci_high"],
         "detail": f"{t['k0']} studies filled on the {t['side']}; log RR", "k": d["k"], "caution": warn},
    ])


def refit_gates(rep: CheckReport) -> dict:
    """How many of the checks' refits passed their diagnostics gate, and which failed,
    read from the tables (each refit's gate is in its row): the covariate-free subgroup
    fits of the comparison, the leave-one-study-out refits (influence table, else the exact
    LOO refits), the prior-sensitivity refits and the model variants."""
    failed: dict[str, list[str]] = {}
    total = 0

    def add(check: str, labels, verdicts) -> None:
        nonlocal total
        for lab, v in zip(labels, verdicts):
            if v in ("pass", "fail"):
                total += 1
                if v == "fail":
                    failed.setdefault(check, []).append(str(lab))

    c = rep.comparison
    if c is not None and len(c) and "reason" in c:
        b = c[(c["source"] == "bayesian") & (c["subgroup"] != "all")].drop_duplicates("subgroup")
        add("subgroup fits", b["subgroup"],
            ["fail" if "diagnostics gate failed" in str(r) else "pass" for r in b["reason"]])
    if rep.influence is not None and "refit_gate" in rep.influence:
        t = rep.influence[rep.influence["study"] != "(none)"]
        add("leave one study out", t["study"], t["refit_gate"])
    elif rep.loo is not None:
        t = rep.loo.pointwise
        add("leave one study out", t["study"], t["refit_gate"])
    if rep.sensitivity is not None and "gate" in rep.sensitivity:
        t = rep.sensitivity[rep.sensitivity["changed"] != "reference"]
        refitted = ~t["reason"].astype(str).str.contains("no refit")
        add("prior sensitivity", t.loc[refitted, "prior"], t.loc[refitted, "gate"])
    if rep.models is not None and "gate" in rep.models:
        add("model variants", rep.models["model"], rep.models["gate"])
    return {"total": total, "failed": sum(len(v) for v in failed.values()), "failed_by_check": failed}


# --------------------------------------------------------------------------- text
def _fmt(x, nd=2) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)) or x is pd.NA:
        return "NA"
    try:
        return f"{float(x):.{nd}f}"
    except (TypeError, ValueError):
        return str(x)


def _ci(r, est="estimate", lo="ci_low", hi="ci_high") -> str:
    return f"{_fmt(r[est])} ({_fmt(r[lo])}-{_fmt(r[hi])})"


def format_report(rep: CheckReport) -> str:
    """The report as text tables."""
    L = [f"bayesln check: {rep.run} ({rep.outcome})"]
    for n in rep.notes:
        L.append(f"  note: {n}")
    r = rep.info.get("refits")
    if r:
        L.append(f"  refits: {r['total']}, of which {r['failed']} failed their diagnostics gate"
                 + ("" if r["failed"] else " (every refit passed)"))
    if rep.comparison is not None:
        L += ["", "Frequentist comparison (RR unless stated, 95% interval):"]
        for _, r in rep.comparison.iterrows():
            if r["source"] == "skipped":
                L.append(f"  {r['subgroup']:<11} skipped: {r['reason']}")
                continue
            tag = " [FLAG]" if bool(r["flag"]) else ""
            agree = ""
            if pd.notna(r["ratio_to_mh"]):
                agree = f"  vs MH x{r['ratio_to_mh']:.2f}, {'overlap' if bool(r['overlaps_mh']) else 'NO overlap'}"
            L.append(f"  {r['subgroup']:<11} {r['source']:<11} {r['method']:<38} {r['measure']} {_ci(r)}"
                     f"  k={r['k']}{agree}{tag}")
            if bool(r["flag"]) and isinstance(r["reason"], str) and r["reason"]:
                L.append(f"{'':<14}why: {r['reason']}")
    if rep.ppc is not None:
        fl = rep.ppc[rep.ppc["flag"]]
        L += ["", f"Posterior predictive checks ({len(rep.ppc)} arms, {len(fl)} flagged at p < {rep.info['alpha']}; "
                  "two-sided mid-p, posterior / mixed):"]
        for _, r in rep.ppc.iterrows():
            tag = " [FLAG]" if r["flag"] else ""
            L.append(f"  {r['study']:<18} {r['arm']:<8} {r['events']:>4}/{r['n']:<4} rep {r['rep_low']:.0f}-{r['rep_high']:.0f}"
                     f"  p {_fmt(r['p_posterior'], 3)} / {_fmt(r['p_mixed'], 3)}{tag}")
    if rep.loo is not None:
        s = rep.loo.summary().iloc[0]
        L += ["", f"Leave-one-study-out: elpd {s['elpd_loo']:.2f} (SE {_fmt(s['se'])}), p_loo {s['p_loo']:.2f}, "
                  f"{int(s['n_high_k'])} studies with Pareto k > {s['k_threshold']} ({int(s['n_exact'])} exact refits)"]
        for _, r in rep.loo.pointwise.iterrows():
            tag = " [FLAG]" if r["flag"] else ""
            L.append(f"  {r['study']:<18} elpd {r['elpd_loo']:8.2f}  k {r['pareto_k']:.2f}  {r['method']}{tag}")
    if rep.influence is not None:
        L += ["", "Influence (posterior median and 95% interval without each study; REML leave1out log OR change):"]
        for _, r in rep.influence.iterrows():
            tau = ""
            if "tau_median" in r and pd.notna(r.get("tau_median")):
                tau = f"  tau {_ci(r, 'tau_median', 'tau_low', 'tau_high')}"
            reml = f"  REML dlogOR {r['reml_change']:+.3f}" if pd.notna(r.get("reml_change")) else ""
            dchg = f" dlogOR {r['d_change']:+.3f}" if r["study"] != "(none)" else ""
            tag = " [FLAG]" if r["flag"] else ""
            L.append(f"  {'without ' + r['study'] if r['study'] != '(none)' else 'all studies':<26} OR "
                     f"{_ci(r, 'or_median', 'or_low', 'or_high')}{dchg}{tau}{reml}{tag}")
    if rep.sensitivity is not None:
        L += ["", "Prior sensitivity (one prior changed at a time):"]
        for _, r in rep.sensitivity.iterrows():
            tag = " [FLAG]" if r["flag"] else ""
            if not np.isfinite(float(r["or_median"])):
                L.append(f"  {r['changed']:<9} {r['prior']:<20} {r['reason']}")
                continue
            tau = f"  tau {_ci(r, 'tau_median', 'tau_low', 'tau_high')}" if pd.notna(r["tau_median"]) else ""
            L.append(f"  {r['changed']:<9} {r['prior']:<20} OR {_ci(r, 'or_median', 'or_low', 'or_high')}{tau}"
                     f"  P(OR>1) {r['p_or_gt_1']:.3f}{tag}")
            if r["flag"]:
                L.append(f"{'':<12}why: {r['reason']}")
    if rep.models is not None:
        est = " / ".join(dict.fromkeys(rep.models["estimator"])) if "estimator" in rep.models else "LOO"
        L += ["", f"Model comparison (LOO, per study; {est}):"]
        for _, r in rep.models.iterrows():
            L.append(f"  {r['model']:<40} elpd {r['elpd_loo']:8.2f} (SE {_fmt(r['se'])})  diff {r['elpd_diff']:7.2f}"
                     f" (SE {_fmt(r['se_diff'])})  k>{rep.info['k_threshold']}: {int(r['n_high_k'])}  {r['note']}")
            if isinstance(r.get("warning"), str) and r["warning"]:
                L.append(f"{'':<4}warning: {r['warning']}")
    sse = rep.small_study_effects
    if sse is not None and len(sse):
        L += ["", f"Small-study effects (as metafor's regtest / ranktest / trimfill; {int(sse['k'].iloc[0])} trials):"]
        if sse["caution"].iloc[0]:
            L.append(f"  caution: {sse['caution'].iloc[0]}")
        for _, r in sse.iterrows():
            stat = "" if pd.isna(r["statistic"]) else f"statistic {r['statistic']:.3f}, p {_fmt(r['pvalue'], 3)}  "
            est = "" if pd.isna(r["estimate"]) else f"RR {np.exp(r['estimate']):.2f} ({np.exp(r['ci_low']):.2f}-" \
                                                   f"{np.exp(r['ci_high']):.2f})  "
            L.append(f"  {r['method']:<34} {stat}{est}{r['detail']}")
    return "\n".join(L) + "\n"


def check_command(run_dir: str, fmt: str = "table", **options) -> str:
    """Text for ``bayesln check RUN [--format table|json]``: the checks of a run folder
    (options as :func:`run_checks`). Raises :class:`CheckInputError` (or the run loader's
    ``RunError``; both ``ValueError``) for input problems."""
    if fmt not in FORMATS:
        raise CheckInputError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    p = Path(run_dir)
    if not p.is_dir():
        raise CheckInputError(f"{run_dir}: no such run folder")
    rep = run_checks(p, **options)
    if fmt == "json":
        return json.dumps(rep.to_dict(), indent=2, allow_nan=False, default=str) + "\n"
    return format_report(rep)
