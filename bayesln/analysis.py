"""One analysis = a spec run on a dataset: select → fit → gate → compare → run folder.

The command line and the notebooks call these functions; nothing here prints.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayesln.data import TrialData
from bayesln.runs import HASHES_KEY, atomic_run_dir, folder_hashes, frame_records, write_json
from bayesln.spec import Spec, SpecError, load_spec

SUMMARY_FILES = ("summary.csv", "summary.json", "diagnostics.json", "comparison.csv", "usage.csv", "study_effects.csv")


def _versions() -> dict:
    out = {}
    for pkg in ("bayesln", "pymc", "pytensor", "arviz", "numpy", "pandas", "nutpie"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def load_data_source(source: str, spec: Spec | None = None) -> TrialData:
    """A bundled dataset name or a CSV path (long or wide; for a wide file without label
    columns the spec's outcome and first treatment label name them)."""
    import bayesln

    if source in bayesln.list_datasets() and not Path(source).exists():
        return bayesln.load_dataset(source)
    p = Path(source)
    if not p.exists():
        raise FileNotFoundError(
            f"data {source!r} is neither a bundled dataset ({', '.join(bayesln.list_datasets())}) nor an existing file"
        )
    wide = {}
    if spec is not None:
        wide = {"outcome": spec.data.outcome if spec.data.outcome else None,
                "treat": spec.model.treat[0] if len(spec.model.treat) == 1 else None}
    return bayesln.read_trials(p, **wide)


def select_for_spec(td: TrialData, spec: Spec) -> TrialData:
    """The studies the spec analyses (phase / design / study filters; all outcomes kept so
    the arms without counts for the outcome are reported, not silently dropped)."""
    d = spec.data
    try:
        return td.select(phases=d.phases, designs=d.designs, studies=d.studies,
                         exclude_studies=d.exclude_studies or None)
    except ValueError as exc:
        raise SpecError(f"{spec.path or spec.name}: key 'data': {exc}") from None


@dataclass
class Analysis:
    spec: Spec
    data: TrialData
    result: object  # FitResult
    contrasts: pd.DataFrame | None
    comparison: pd.DataFrame
    timings: dict = field(default_factory=dict)
    #: family tables written into the run folder as <name>.csv (ordinal: arm_probabilities;
    #: joint: correlation; network: relative_effects, rank_probabilities, node_split / ume;
    #: network with phase_effect: relative_effects at induction and maintenance, rank_probabilities_maintenance)
    tables: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.spec.model.family

    @property
    def status(self) -> str:
        return self.result.status

    def summary(self) -> pd.DataFrame:
        return self.result.summary().reset_index()

    def text_summary(self) -> str:
        return summary_text(self.spec.name, self.spec.outcome, self.summary(), self.result.diagnostics.to_dict(),
                            self.comparison)


def run_analysis(spec: Spec | str | Path, *, data: TrialData | str | None = None, seed: int | None = None,
                 draws: int | None = None, tune: int | None = None, chains: int | None = None,
                 backend: str | None = None, progressbar: bool | None = None) -> Analysis:
    """Fit the spec's model on its data (or on ``data``). A core-family fit is compared
    with the frequentist and published RRs (``comparison``); an ordinal / joint / network
    fit gets its family tables instead (``tables``) and an empty comparison."""
    from bayesln.checks.compare import comparison_table
    from bayesln.hierarchy import fit_core
    from bayesln.hierarchy.diagnostics import GateThresholds

    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    spec = spec.with_overrides(seed=seed, draws=draws, tune=tune, chains=chains, backend=backend)
    t0 = time.perf_counter()
    if data is None:
        td = load_data_source(spec.data_source(), spec)
    elif isinstance(data, str):
        td = load_data_source(data, spec)
    else:
        td = data
    sel = select_for_spec(td, spec)
    d, m, s, g = spec.data, spec.model, spec.sampler, spec.gate
    _check_outcomes(spec, sel)
    gate = GateThresholds(r_hat_max=g.r_hat, ess_bulk_min=g.ess_bulk, ess_tail_min=g.ess_tail,
                          divergences_max=g.max_divergences, bfmi_min=g.bfmi)
    sampler = dict(draws=s.draws, tune=s.tune, chains=s.chains, target_accept=s.target_accept, backend=s.backend, retry=s.retry,
                   seed=s.seed, progressbar=progressbar, gate=gate)
    t1 = time.perf_counter()
    tables: dict = {}
    if m.family == "core":
        result = fit_core(
            sel, d.outcome, treat=tuple(m.treat), baseline=m.baseline, effect_modifiers=tuple(m.effect_modifiers or ()),
            baseline_covariates=tuple(m.baseline_covariates), common_effect=m.common_effect,
            parameterization=m.parameterization, baseline_parameterization=m.baseline_parameterization,
            nonrandomised=m.nonrandomised, priors=spec.priors_obj(), direction=d.directions.get(d.outcome), **sampler,
        )
    else:
        result, tables = _fit_family(spec, sel, sampler)
    t2 = time.perf_counter()
    if m.family == "core":
        contrasts = sel.contrasts(d.outcome, treat=tuple(m.treat))
        comparison = comparison_table(result, contrasts, outcome=d.outcome, published=_published_rows(td, d.outcome))
    else:  # no single treated-vs-control contrast per study: the family tables say more
        contrasts, comparison = None, pd.DataFrame(columns=_comparison_columns())
    attrs = {
        "spec": spec.to_json(), "spec_hash": spec.hash(), "data_fingerprint": sel.fingerprint(),
        "data_name": td.name, "bayesln_versions": json.dumps(_versions()),
    }
    result.idata.attrs.update(attrs)
    return Analysis(spec=spec, data=sel, result=result, contrasts=contrasts, comparison=comparison, tables=tables,
                    timings={"load_s": t1 - t0, "fit_s": t2 - t1, "compare_s": time.perf_counter() - t2})


def _check_outcomes(spec: Spec, sel: TrialData) -> None:
    """The spec's outcomes are in the selected data, and each has a direction (the bundled
    vocabulary's or declared in ``[data] directions``); SpecError naming the key otherwise."""
    from bayesln.spec import ORDINAL_OUTCOME

    where = spec.path or spec.name
    d = spec.data
    wanted = [d.outcome] if d.outcome else list(d.outcomes or [])
    present = set(sel.outcomes["outcome"].dropna().astype(str))
    if ORDINAL_OUTCOME in wanted:
        return
    absent = [o for o in wanted if o not in present]
    if absent:
        key = "data.outcomes" if d.outcomes else "data.outcome"
        raise SpecError(f"{where}: key '{key}': no study in the selected data reports {', '.join(map(repr, absent))}; "
                        f"outcomes in the data: {', '.join(sorted(present)) or 'none'}")
    undeclared = [o for o in wanted if spec.data.direction_of(o) is None and o not in (spec.model.directions or {})]
    if undeclared:
        o = undeclared[0]
        raise SpecError(f"{where}: key 'data.directions': outcome {o!r} is not in the bundled vocabulary, so say "
                        f"whether more events are better or worse: [data] directions = {{{o} = \"benefit\"}} "
                        "(or \"harm\")")


def _comparison_columns() -> list[str]:
    from bayesln.checks.compare import COLUMNS

    return list(COLUMNS)


def _fit_family(spec: Spec, sel: TrialData, sampler: dict) -> tuple[object, dict]:
    """Fit an ordinal / joint / network spec; returns the result and its tables."""
    from bayesln.hierarchy.ordinal import DEFAULT

    d, m = spec.data, spec.model
    kw = m.family_kwargs()
    common = dict(phases=tuple(d.phases) if d.phases else DEFAULT, designs=tuple(d.designs) if d.designs else None,
                  priors=spec.priors_obj(), **sampler)
    if m.family == "ordinal":
        from bayesln.hierarchy.ordinal import fit_ordinal

        res = fit_ordinal(sel, **kw, **common)
        return res, {"arm_probabilities": res.arm_probabilities()}
    if m.family == "joint":
        from bayesln.hierarchy.joint import fit_joint

        if d.directions:  # [data] directions of a user's own outcomes, with [model] directions
            kw["directions"] = {**d.directions, **(kw.get("directions") or {})}
        res = fit_joint(sel, tuple(d.outcomes), **kw, **common)
        return res, {"correlation": res.correlation_check()}
    from bayesln.hierarchy.network import compare_models, fit_network, node_split

    inconsistency = kw.pop("inconsistency", "none")
    if d.directions.get(d.outcome):
        kw["direction"] = d.directions[d.outcome]
    res = fit_network(sel, d.outcome, **kw, **common)
    tables = {"relative_effects": res.relative_effects(), "rank_probabilities": res.rank_probabilities()}
    if res.has_phase_shift:  # phase_effect: relative effects also at maintenance (a "phase" column tells them apart)
        tables["relative_effects"] = pd.concat([tables["relative_effects"], res.relative_effects(phase="maintenance")],
                                               ignore_index=True)
        tables["rank_probabilities_maintenance"] = res.rank_probabilities(phase="maintenance")
    if inconsistency == "node_split":
        split = node_split(sel, d.outcome, consistency=res, **{k: v for k, v in kw.items() if k != "model"}, **common)
        tables["node_split"] = split
        tables["node_split_not_splittable"] = split.attrs.get("not_splittable")
    elif inconsistency == "ume":
        ume = fit_network(sel, d.outcome, **{**kw, "model": "ume"}, **common)
        tables["inconsistency_loo"] = compare_models({"consistency": res, "ume": ume})
    return res, {k: v for k, v in tables.items() if v is not None}


def _published_rows(td: TrialData, outcome: str) -> pd.DataFrame | None:
    """Published pooled RRs for this outcome (every subgroup), each with its recomputation
    on the listed trials that have counts and whether it reproduces
    (:func:`bayesln.checks.compare.published_rows`); None without a published table."""
    from bayesln.checks.compare import published_rows

    return published_rows(td, outcome)


# --------------------------------------------------------------------------- text
def _fmt(x) -> str:
    return "NA" if x is None or pd.isna(x) else f"{x:.2f}"


def summary_text(name: str, outcome: str, summary: pd.DataFrame, diagnostics: dict, comparison: pd.DataFrame) -> str:
    lo, hi = [c for c in summary.columns if re.fullmatch(r"q\d+(\.\d+)?", str(c))][:2]
    lines = [f"{name}: {outcome}"]
    for _, r in summary.iterrows():
        if pd.isna(r["median"]):  # a probability (P(OR > 1) etc.) is reported as its mean
            lines.append(f"  {r['quantity']:<34} {r['mean']:.3f}")
        else:
            lines.append(f"  {r['quantity']:<34} {_fmt(r['median'])} ({lo} {_fmt(r[lo])}, {hi} {_fmt(r[hi])})")
    verdict = diagnostics.get("verdict", "?")
    lines.append(f"  diagnostics gate: {verdict}")
    for r in diagnostics.get("retries") or []:  # the full reasons are in diagnostics.json
        why = str(r["reason"]).split("; ")
        first = why[0] if len(why[0]) <= 90 else why[0][:87].rsplit(", ", 1)[0] + ", ..."
        more = f" (and {len(why) - 1} more problem{'s' if len(why) > 2 else ''})" if len(why) > 1 else ""
        lines.append(f"    automatic retry: {r['action']} after: {first}{more}")
    if comparison is not None and len(comparison):
        lines.append("  comparison (RR, 95% interval):")
        for _, r in comparison.iterrows():
            if r["measure"] != "RR":
                continue
            tag = " [flag]" if bool(r["flag"]) else ""
            lines.append(f"    {r['source']:<11} {r['method']:<38} {r['subgroup']:<6} {_fmt(r['estimate'])} "
                         f"({_fmt(r['ci_low'])}-{_fmt(r['ci_high'])}){tag}")
            if tag and isinstance(r.get("reason"), str) and r["reason"]:
                lines.append(f"{'':<8}why flagged: {r['reason']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- run folders
def save_analysis(analysis: Analysis, out: str | Path, *, name: str | None = None, figures: bool = True) -> Path:
    """Write the run folder atomically; returns its path."""
    name = name or analysis.spec.name
    res = analysis.result
    summary = analysis.summary()
    diag = res.diagnostics.to_dict()
    diag["parameters"] = frame_records(res.diagnostics.table)
    with atomic_run_dir(out, name, marker="run.json") as tmp:
        from bayesln import _arviz

        _arviz.to_netcdf(res.idata, tmp / "idata.nc")
        summary.to_csv(tmp / "summary.csv", index=False, float_format="%.6g")
        write_json(tmp / "summary.json", {"analysis": name, "outcome": analysis.spec.outcome, "status": res.status,
                                          "summary": frame_records(summary)})
        write_json(tmp / "diagnostics.json", diag)
        analysis.comparison.to_csv(tmp / "comparison.csv", index=False, float_format="%.6g")
        res.usage.to_csv(tmp / "usage.csv", index=False)
        if analysis.family == "core":
            res.study_effects().to_csv(tmp / "study_effects.csv", index=False, float_format="%.6g")
        for table_name, table in analysis.tables.items():
            table.to_csv(tmp / f"{table_name}.csv", index=False, float_format="%.6g")
        predictions = prediction_set_for_spec(analysis)
        if predictions is not None:
            predictions.table().to_csv(tmp / "predictions.csv", index=False, float_format="%.6g")
        sof = summary_of_findings_for(analysis, predictions)
        if sof is not None and len(sof):
            sof.to_csv(tmp / "summary_of_findings.csv", index=False, float_format="%.6g")
        write_json(tmp / "spec.json", analysis.spec.canonical())
        (tmp / "data.csv").write_text(analysis.data.to_csv_text(), encoding="utf-8")
        if figures:
            from bayesln.plots import save_run_figures

            save_run_figures(analysis, tmp / "figures", predictions=predictions)
        hashes = folder_hashes(tmp)  # verified by every later read (load_run)
        write_json(tmp / "run.json", {"name": name, "status": res.status, "spec_hash": analysis.spec.hash(),
                                      "data_fingerprint": analysis.data.fingerprint(), "seed": analysis.spec.sampler.seed,
                                      "versions": _versions(), "timings_s": analysis.timings,
                                      "files": sorted(hashes) + ["run.json"], HASHES_KEY: hashes})
    from bayesln.runs import run_path

    return run_path(out, name)


@dataclass
class LoadedRun:
    """A verified run folder. ``idata`` (the draws, idata.nc) is read on first use: a
    command that prints the stored tables (``bayesln summarize``) never imports ArviZ."""

    path: Path
    spec: Spec
    summary: pd.DataFrame
    diagnostics: dict
    comparison: pd.DataFrame
    info: dict
    _idata: object = field(default=None, repr=False)

    @property
    def idata(self):
        if self._idata is None:
            from bayesln import _arviz
            from bayesln.runs import RunError

            try:
                self._idata = _arviz.from_netcdf(str(self.path / "idata.nc"))
            except Exception as exc:  # h5py / netCDF errors of a damaged file have no common base class
                raise RunError(f"{self.path / 'idata.nc'}: cannot be read ({type(exc).__name__}: {exc}); the run "
                               "folder is damaged, refit it") from None
        return self._idata

    def draws(self):
        """The run's ``idata.nc`` as :class:`bayesln._arviz.NetCDFGroups`: its groups read
        with xarray on first access, without importing ArviZ (which the ArviZ
        InferenceData, :attr:`idata`, needs); anything else is delegated to :attr:`idata`."""
        if self._idata is not None:
            return self._idata
        from bayesln import _arviz
        from bayesln.runs import RunError

        try:
            return _arviz.NetCDFGroups(self.path / "idata.nc")
        except Exception as exc:  # as idata: a damaged file's errors have no common base class
            raise RunError(f"{self.path / 'idata.nc'}: cannot be read ({type(exc).__name__}: {exc}); the run "
                           "folder is damaged, refit it") from None


def load_run(path: str | Path, *, spec: Spec | str | Path | None = None, data: TrialData | str | None = None) -> LoadedRun:
    """Load a run folder, after verifying it: every file ``run.json`` records must be
    there with its recorded sha256 (:func:`bayesln.runs.read_run_info`; an edited
    ``spec.json``, ``data.csv``, ``idata.nc`` or table is refused with both hashes). With
    ``spec`` / ``data``, also refuse (RunError) when they are not the ones the run was
    made with."""
    from bayesln.runs import RunError, read_run_info
    from bayesln.spec import spec_from_dict

    p = Path(path)
    info = read_run_info(p)

    def damaged(name: str, exc: Exception) -> RunError:
        return RunError(f"{p / name}: cannot be read ({type(exc).__name__}: {exc}); the run folder is damaged, refit it")

    try:
        stored = spec_from_dict(json.loads((p / "spec.json").read_text(encoding="utf-8")), label=str(p / "spec.json"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and SpecError are ValueErrors
        raise damaged("spec.json", exc) from None
    if spec is not None:
        sp = spec if isinstance(spec, Spec) else load_spec(spec)
        if sp.hash() != info["spec_hash"]:
            raise RunError(f"{p}: this run was made with a different spec (spec hash {info['spec_hash'][:12]}…, "
                           f"given {sp.hash()[:12]}…); re-run `bayesln fit` with the new spec instead")
    if data is not None:
        td = load_data_source(data) if isinstance(data, str) else data
        fp = select_for_spec(td, stored).fingerprint()
        if fp != info["data_fingerprint"]:
            raise RunError(f"{p}: this run was made with different data (fingerprint {info['data_fingerprint'][:12]}…, "
                           f"given {fp[:12]}…); re-run `bayesln fit SPEC --data …` instead")
    tables = {}
    for name in ("summary.csv", "comparison.csv"):
        try:
            tables[name] = pd.read_csv(p / name)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise damaged(name, exc) from None
    try:
        diagnostics = json.loads((p / "diagnostics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise damaged("diagnostics.json", exc) from None
    return LoadedRun(path=p, spec=stored, summary=tables["summary.csv"], diagnostics=diagnostics,
                     comparison=tables["comparison.csv"], info=info)


def prediction_set_for_spec(analysis: Analysis):
    """The predictions (a ``bayesln.predict.PredictionSet``) of the spec's targets, with
    the spec's seed; ``None`` when the spec lists no targets. Target names are looked up
    in ``targets.toml`` beside the spec, then in the shipped ``models/targets.toml``."""
    if not analysis.spec.targets:
        return None
    from bayesln.predict.prediction import predictions_for

    search = [Path(analysis.spec.path).parent] if analysis.spec.path else []
    # a fit that failed its gate still gets its run folder (`bayesln fit` exits 1 and says
    # why); its predictions.csv carries the warning in every row
    return predictions_for(analysis.result, list(analysis.spec.targets), seed=analysis.spec.sampler.seed, search=search,
                           allow_failed_gate=True)


def summary_of_findings_for(analysis: Analysis, predictions=None) -> pd.DataFrame | None:
    """The run's Summary-of-Findings rows (:func:`bayesln.report.summary_of_findings`):
    the trial population of a core fit, and every prediction target; ``None`` when the
    run has neither (an ordinal / joint / network run without targets)."""
    from bayesln.report.sof import summary_of_findings

    core = analysis.family == "core" and analysis.contrasts is not None
    if not core and predictions is None:
        return None
    labels = {p.name: p.target.label() for p in predictions} if predictions is not None else {}
    return summary_of_findings(analysis.result, outcome=analysis.spec.outcome,
                               contrasts=analysis.contrasts if core else None,
                               predictions=predictions.table() if predictions is not None else None,
                               target_labels=labels)


def predictions_for_spec(analysis: Analysis) -> pd.DataFrame | None:
    """The prediction table of the spec's targets (``predictions.csv``); ``None`` without targets."""
    preds = prediction_set_for_spec(analysis)
    return None if preds is None else preds.table()
