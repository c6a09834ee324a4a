"""The command-line face of predictions: ``bayesln predict RUN|SPEC [--target NAME]
[--format table|csv|json]`` calls :func:`predict_command` and prints its result.

* ``RUN`` is a run folder written by ``bayesln fit``: the fit is rebuilt from the stored
  InferenceData and the stored ``spec.json`` + ``data.csv`` (the design, i.e. the
  covariate transforms, is recomputed and checked against the transforms stored in the
  InferenceData; no refit). Family ``core`` gives one outcome per target; family
  ``ordinal`` (CR / PR / NR, ``models/ordinal_response.toml``) gives coherent P(CR),
  P(PR), P(CR or PR) and the derived quantities of CR and of CR-or-PR per target (the
  trials' study covariates for the extrapolation report come from the run's
  ``data.csv``); family ``joint`` (``models/joint_efficacy_safety.toml``) gives every
  outcome's P(event) and derived quantities plus P(response without each adverse event)
  and the net benefit per target (:mod:`bayesln.predict.joint`); family ``network``
  (``models/network_total_response.toml``, consistency model) gives the target's regimen vs
  its comparator, every treatment's probability, every treatment vs every other and the rank
  probabilities per target (:mod:`bayesln.predict.network`).
* ``SPEC`` is an analysis spec: the model is fitted first, as ``bayesln fit`` would
  (:func:`bayesln.analysis.run_analysis`, with the sampler overrides ``fit_draws``,
  ``fit_tune``, ``fit_chains`` and ``seed``); with ``out`` the fitted run folder is
  written atomically by :func:`bayesln.analysis.save_analysis`, exactly as ``bayesln fit
  SPEC --out OUT`` writes it. The fit's gate status is returned (:class:`PredictOutput`)
  so the command line can exit 1 on a failed gate, as ``bayesln fit`` does.

Targets: ``--target NAME`` (a name in ``models/targets.toml`` or in ``targets.toml``
beside the spec), else the spec's ``targets``, else every shipped target.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayesln.predict.prediction import PredictionSet, predict, predictions_for  # noqa: F401  (re-exported)
from bayesln.predict.targets import resolve_targets

__all__ = ["FORMATS", "PredictOutput", "load_run_result", "predict_command", "predictions_for", "run_predict"]

FORMATS = ("table", "csv", "json")


def load_run_result(path: str | Path):
    """``(FitResult, Spec)`` of a run folder, without refitting: the InferenceData is
    read back and the :class:`~bayesln.hierarchy.design.Design` is rebuilt from the run's
    ``spec.json`` and ``data.csv``; the rebuilt covariate transforms and study list must
    equal the ones stored with the draws (RunError otherwise). An ordinal run gives an
    :class:`~bayesln.hierarchy.ordinal.OrdinalResult` (see :func:`load_ordinal_run`), a
    joint efficacy-safety run a :class:`~bayesln.hierarchy.joint.JointResult` (see
    :func:`load_joint_run`), a network run a :class:`~bayesln.hierarchy.network.NetworkResult`
    (see :func:`load_network_run`)."""
    from bayesln.analysis import load_run
    from bayesln.hierarchy import build_design
    from bayesln.hierarchy.result import FitResult
    from bayesln.runs import RunError

    p = Path(path)
    run = load_run(p)
    spec = run.spec
    if spec.model.family == "ordinal":
        return load_ordinal_run(p, run), spec
    if spec.model.family == "joint":
        return load_joint_run(p, run), spec
    if spec.model.family == "network":
        return load_network_run(p, run), spec
    if spec.model.family != "core":
        raise RunError(f"{p}: predictions need a core-model, ordinal, joint or network run (family 'core', 'ordinal', "
                       f"'joint' or 'network'), this run is {spec.model.family!r}")
    td = _run_data(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        m = spec.model
        design = build_design(td, spec.data.outcome, treat=tuple(m.treat), baseline=m.baseline,
                              direction=spec.data.directions.get(spec.data.outcome),
                              effect_modifiers=tuple(m.effect_modifiers or ()), baseline_covariates=tuple(m.baseline_covariates),
                              warn=False, nonrandomised=m.nonrandomised)
    idata = run.draws()  # the groups only: no ArviZ import to predict from stored draws
    post = idata.posterior
    stored = post.attrs.get("covariate_transforms")
    if stored is not None and json.loads(stored) != json.loads(design.transforms_json()):
        raise RunError(f"{p}: the covariate transforms rebuilt from data.csv differ from those stored with the draws; "
                       "the run folder is inconsistent - refit it")
    if "study" in post.coords and [str(s) for s in post["study"].values] != list(design.study_ids):
        raise RunError(f"{p}: the studies rebuilt from data.csv differ from those stored with the draws - refit it")
    return FitResult(idata=idata, design=design, **_stored_state(run, idata)), spec


def _run_data(p: Path):
    """The TrialData of a run folder's ``data.csv`` (RunError when it is missing)."""
    from bayesln.data import read_trials
    from bayesln.runs import RunError

    data_file = p / "data.csv"
    if not data_file.is_file():
        raise RunError(f"{p}: data.csv missing; cannot rebuild the design of this run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return read_trials(data_file)


def _check_coords(p: Path, groups, expected) -> None:
    """RunError unless each ``(coordinate, values)`` of ``expected`` equals the coordinate
    stored with the draws (the first of ``groups`` that has it; empty when none has)."""
    from bayesln.runs import RunError

    for coord, mine in expected:
        stored = next(([str(s) for s in g[coord].values] for g in groups if coord in g.coords), [])
        if stored != mine:
            raise RunError(f"{p}: the {coord} list rebuilt from data.csv ({', '.join(mine) or 'none'}) differs from the "
                           f"one stored with the draws ({', '.join(stored) or 'none'}) - refit the run")


def _stored_state(run, idata, gate_vars=None) -> dict:
    """What a result keeps besides its draws and design, read back from a run folder: the
    diagnostics gate re-run with the spec's thresholds on ``gate_vars`` (the variables the
    family's fit gates on; default every posterior variable), the model config, the seed
    and the backend stored with the draws."""
    from bayesln.hierarchy.diagnostics import GateThresholds, run_gate

    spec = run.spec
    post = idata.posterior
    g = spec.gate
    gate = GateThresholds(r_hat_max=g.r_hat, ess_bulk_min=g.ess_bulk, ess_tail_min=g.ess_tail,
                          divergences_max=g.max_divergences, bfmi_min=g.bfmi)
    stats = idata.sample_stats if "sample_stats" in idata.groups() else None
    gated = post if gate_vars is None else post[[v for v in gate_vars if v in post]]
    return {"diagnostics": run_gate(gated, stats, gate, warn=False),
            "config": json.loads(post.attrs.get("model_config", "{}")),
            "seed": int(post.attrs.get("seed", spec.sampler.seed)), "backend": str(post.attrs.get("backend", ""))}


#: design arguments of fit_ordinal among the [model] keys of an ordinal spec
_ORDINAL_DESIGN_KEYS = ("treat", "link", "cutpoint_specific", "baseline", "effect_modifiers", "phase_effect")


def load_ordinal_run(p: Path, run):
    """The :class:`~bayesln.hierarchy.ordinal.OrdinalResult` of an ordinal run folder: the
    stored InferenceData with the :class:`~bayesln.hierarchy.ordinal.OrdinalDesign`
    rebuilt from ``spec.json`` + ``data.csv`` exactly as ``bayesln fit`` built it (same
    phases / designs selection and [model] keys); its studies, arms and effect modifiers
    must equal the coordinates stored with the draws (RunError otherwise). The run's data
    is kept on the result (``_cache["predict.data"]``) for the trials' study covariates."""
    from bayesln.hierarchy.ordinal import GATE_VARS, OrdinalResult, build_ordinal_design

    def build(td, d, kw):
        return build_ordinal_design(td, **_selection(d), **kw)

    return _load_family_run(p, run, OrdinalResult, GATE_VARS, build, _ORDINAL_DESIGN_KEYS, lambda des: (
        ("study", list(des.study_ids)), ("arm", list(des.arm_ids)), ("covariate", list(des.effect_names))))


def _selection(d) -> dict:
    """The phases / designs selection of a spec's [data] section, as the fit functions take it."""
    from bayesln.hierarchy.ordinal import DEFAULT

    return {"phases": tuple(d.phases) if d.phases else DEFAULT, "designs": tuple(d.designs) if d.designs else None}


def _load_family_run(p: Path, run, result_type, gate_vars, build, keys, coords):
    """A family's result from a run folder: ``build(data, spec.data, kw)`` rebuilds the design
    from the run's ``data.csv`` and the spec's [model] ``keys``; the coordinates ``coords
    (design)`` must equal the ones stored with the draws; the gate is re-run on ``gate_vars``;
    the run's data is kept on the result (``_cache["predict.data"]``) for the trials' study
    covariates."""
    spec = run.spec
    td = _run_data(p)
    kw = {k: v for k, v in spec.model.family_kwargs().items() if k in keys}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        design = build(td, spec.data, kw)
    idata = run.idata
    _check_coords(p, [idata.posterior] + [getattr(idata, g) for g in ("log_likelihood",) if g in idata.groups()],
                  coords(design))
    res = result_type(idata=idata, design=design, **_stored_state(run, idata, gate_vars))
    res._cache["predict.data"] = td
    return res


#: design arguments of fit_joint among the [model] keys of a joint spec
_JOINT_DESIGN_KEYS = ("treat", "baseline", "directions", "phase_effect")


def load_joint_run(p: Path, run):
    """The :class:`~bayesln.hierarchy.joint.JointResult` of a joint efficacy-safety run
    folder: the stored InferenceData with the :class:`~bayesln.hierarchy.joint.JointDesign`
    rebuilt from ``spec.json`` + ``data.csv`` exactly as ``bayesln fit`` built it (the
    spec's [data] outcomes / phases / designs / directions and [model] treat / baseline /
    directions / phase_effect); its outcomes, (study, outcome) cells and studies must equal
    the coordinates stored with the draws (RunError otherwise). The gate is re-run on the
    variables fit_joint gates on. The run's data is kept on the result
    (``_cache["predict.data"]``) for the trials' study covariates."""
    from bayesln.hierarchy.joint import GATE_VARS, JointResult, build_joint_design

    def build(td, d, kw):
        if d.directions:  # as bayesln.analysis fits a joint spec: [data] directions, then [model] directions
            kw["directions"] = {**d.directions, **(kw.get("directions") or {})}
        return build_joint_design(td, tuple(d.outcomes or ()), **_selection(d), warn=False, **kw)

    return _load_family_run(p, run, JointResult, GATE_VARS, build, _JOINT_DESIGN_KEYS, lambda des: (
        ("outcome", list(des.outcomes)), ("so", des.so["so_id"].tolist()), ("study", list(des.study_ids))))


#: design arguments of fit_network among the [model] keys of a network spec
_NETWORK_DESIGN_KEYS = ("reference", "model", "treatments", "phase_effect")


def load_network_run(p: Path, run):
    """The :class:`~bayesln.hierarchy.network.NetworkResult` of a network run folder: the
    stored InferenceData with the :class:`~bayesln.hierarchy.network.NetworkDesign` rebuilt
    from ``spec.json`` + ``data.csv`` exactly as ``bayesln fit`` built it (the spec's [data]
    outcome / phases / designs / directions and [model] reference / model / treatments /
    phase_effect, as :func:`bayesln.analysis._fit_family` calls fit_network); its studies,
    arms and treatments (UME: comparisons) must equal the coordinates stored with the draws
    (RunError otherwise). The gate is re-run on the variables fit_network gates on. The run's
    data is kept on the result (``_cache["predict.data"]``) for the trials' study covariates.
    Predictions need the consistency model: a UME run loads, and ``predict`` refuses it."""
    from bayesln.hierarchy.network import GATE_VARS, NetworkResult, build_network_design

    def build(td, d, kw):
        return build_network_design(td, d.outcome, **_selection(d), direction=(d.directions or {}).get(d.outcome), **kw)

    def coords(des):
        means = ("comparison", list(des.extra_names)) if des.model == "ume" else ("treatment", list(des.nonref))
        return ("study", list(des.study_ids)), ("arm", list(des.arm_ids)), means

    return _load_family_run(p, run, NetworkResult, GATE_VARS, build, _NETWORK_DESIGN_KEYS, coords)


@dataclass
class PredictOutput:
    """What :func:`run_predict` produced: the formatted predictions and, when a spec was
    fitted, the fit's gate status (``"ok"`` / ``"failed_gate"``), its problems and the run
    folder written (``out``)."""

    text: str
    status: str | None
    fitted: bool = False
    problems: list[str] = field(default_factory=list)
    run: Path | None = None
    analysis: object | None = None


def run_predict(run_or_spec: str | Path, target: str | None = None, fmt: str = "table", *, seed: int | None = None,
                draws: int | None = None, margin: float | None = None, ci: float = 0.95,
                targets_file: str | None = None, fit_draws: int | None = None, fit_tune: int | None = None,
                fit_chains: int | None = None, out: str | Path | None = None, progressbar: bool | None = False,
                log: Callable[[str], None] | None = None, allow_failed_gate: bool = False,
                evidence: str | Path | None = None) -> PredictOutput:
    """Predictions for a run folder or a spec; see :func:`predict_command` for the output.

    A fit (or run) that failed its diagnostics gate is refused
    (:class:`~bayesln.hierarchy.diagnostics.GateFailedError`, exit 1 on the command line;
    with a spec, after the run folder was written when ``out`` is given) unless
    ``allow_failed_gate``; then every output carries the warning.

    draws : posterior draws used for the predictions (a seeded subsample), default all.
    seed : seed of the predictive draws (default: the spec's); with a spec it also
        overrides the fit's seed, as ``bayesln fit --seed`` does.
    fit_draws, fit_tune, fit_chains : sampler overrides of the fit (spec only).
    out : with a spec, also write the run folder ``<out>/<spec name>/`` (atomically,
        through :func:`bayesln.analysis.save_analysis`, as ``bayesln fit`` does).
    progressbar : the fit's progress display (None: only when stderr is a terminal).
    log : called with one-line status messages (fitting, run folder written).
    evidence : a bundle of external evidence (``"external_ln"``, or a folder with
        evidence.csv, sources.csv, modifiers.toml): each target's prediction is also made
        under the evidence-informed priors of :mod:`bayesln.predict.informed` and shown
        beside the default one (table: a section per target with the source rows; csv: a
        ``prior_set`` column; json: ``"evidence_informed"``)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    bundle = None
    if evidence is not None:  # read before any fit: a bad bundle fails in a second
        from bayesln.data.external import load_external_evidence

        ev_path = Path(evidence)
        bundle = load_external_evidence(path=ev_path) if ev_path.is_dir() else load_external_evidence(str(evidence))
    p = Path(run_or_spec)
    analysis = written = None
    if p.is_dir():
        given = [k for k, v in (("fit_draws", fit_draws), ("fit_tune", fit_tune), ("fit_chains", fit_chains),
                                ("out", out)) if v is not None]
        if given:
            raise ValueError(f"{p} is a run folder, and {', '.join(given)} only work when a spec is fitted "
                             "(refit the run with `bayesln fit` to change its sampler settings)")
        result, spec = load_run_result(p)
        search = [p]
    elif p.is_file():
        from bayesln.analysis import run_analysis, save_analysis
        from bayesln.runs import run_path
        from bayesln.spec import load_spec

        spec = load_spec(p)
        search = [p.parent]
        # fail in a second, not after a fit: unknown target names, a bad --out
        resolve_targets([target] if target else (list(spec.targets) or None), search=search, targets_file=targets_file)
        if out is not None:
            from bayesln.runs import check_output_parent

            out = Path(out)
            check_output_parent(out, "out")
            run_path(out, spec.name)
        if log is not None:
            log(f"fitting {spec.name} ({spec.outcome}) …")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            analysis = run_analysis(spec, seed=seed, draws=fit_draws, tune=fit_tune, chains=fit_chains,
                                    progressbar=progressbar)
        _stop_if_requested()
        result, spec = analysis.result, analysis.spec
        if out is not None:
            written = save_analysis(analysis, out)
            if log is not None:
                log(f"run folder written to {written}/")
    else:
        raise FileNotFoundError(f"{run_or_spec}: neither a run folder nor a spec file")
    targets = [target] if target else (list(spec.targets) or None)
    seed = spec.sampler.seed if seed is None else seed
    extra = {"data": analysis.data} if analysis is not None and spec.model.family == "ordinal" else {}
    preds = predictions_for(result, targets, seed=seed, search=search, targets_file=targets_file, draws=draws,
                            margin=margin, ci=ci, allow_failed_gate=allow_failed_gate, **extra)
    problems = list(result.diagnostics.problems) if result.status != "ok" else []
    text = format_predictions(preds, fmt, status=result.status)
    if bundle is not None:
        from bayesln.predict.informed import compare_priors

        comparisons = [compare_priors(result, pr.target, seed=seed, evidence=bundle, draws=draws, margin=margin, ci=ci,
                                      allow_failed_gate=allow_failed_gate, **extra) for pr in preds]
        text = _with_comparisons(text, comparisons, fmt, preds)
    return PredictOutput(text=text, status=result.status, fitted=analysis is not None, problems=problems,
                         run=written, analysis=analysis)


def _with_comparisons(text: str, comparisons, fmt: str, preds: PredictionSet) -> str:
    """The predictions' output with the default-vs-informed comparison of each target."""
    if fmt == "table":
        return text.rstrip("\n") + "\n\n" + "\n\n".join(c.text() for c in comparisons) + "\n"
    if fmt == "csv":
        tables = [c.table() for c in comparisons]
        return pd.concat(tables, ignore_index=True).to_csv(index=False, float_format="%.6g")
    d = json.loads(text)
    d["evidence_informed"] = {
        c.target: {"priors": {k: {"prior": str(v.prior), "map": v.map, "contrasts": v.contrasts().to_dict("records"),
                                  "source_rows": v.table().to_dict("records")} for k, v in c.priors.items()},
                   "predictions": c.informed.to_records() if c.informed is not None else None,
                   "note": "" if c.informed is not None else "the target uses no covariate with external evidence"}
        for c in comparisons}
    return json.dumps(_clean(d), indent=1, allow_nan=False)


def _stop_if_requested() -> None:
    """A SIGINT / SIGTERM swallowed inside the sampler still stops the command."""
    from bayesln.runs import Interrupted, stop_requested

    if stop_requested() is not None:
        raise Interrupted(stop_requested())


def predict_command(run_or_spec: str, target: str | None = None, fmt: str = "table", *, seed: int | None = None,
                    draws: int | None = None, margin: float | None = None, ci: float = 0.95,
                    targets_file: str | None = None, progressbar: bool | None = False, **fit) -> str:
    """Predictions for a run folder or a spec, as text (``table``), CSV or JSON.

    JSON: ``{"predictions": [one record per target, quantity and level with target,
    outcome, quantity, label, level, median, lower, upper, mean, ci_level, flags and the
    compact extrapolation report], "extrapolation": {"<target>/<outcome>": full report},
    "fit_status": ...}``.

    ``draws`` is the number of posterior draws used for the predictions; ``fit`` takes
    the spec-only options of :func:`run_predict` (``fit_draws``, ``fit_tune``,
    ``fit_chains``, ``out``, ``log``). A failed gate is reported in the text (the command
    line also exits 1 on it).

    Raises TargetError / SpecError / RunError / FileNotFoundError / ValueError with a
    message naming the problem (the CLI maps them to exit code 2)."""
    return run_predict(run_or_spec, target, fmt, seed=seed, draws=draws, margin=margin, ci=ci,
                       targets_file=targets_file, progressbar=progressbar, **fit).text


def format_predictions(preds: PredictionSet, fmt: str = "table", status: str | None = None) -> str:
    if fmt == "json":
        d = preds.to_dict()
        if status is not None:
            d["fit_status"] = status
        return json.dumps(_clean(d), indent=1, allow_nan=False)
    table = preds.table()
    if fmt == "csv":  # a failed fit's warning is in every row (columns fit_status, warning)
        return table.to_csv(index=False, float_format="%.6g")
    lines = []
    for pr in preds:  # each prediction's text begins with the failed fit's warning
        lines.append(pr.text())
        t = pr.table()
        cols = ["quantity", "level", "median", "lower", "upper", "mean", "prior_share"]
        if t["outcome"].nunique() > 1:  # ordinal: CR, CR or PR, PR
            cols.insert(0, "outcome")
        notes = pr.table()
        t = t[cols].copy()
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            lines.append("\n".join("    " + s for s in t.to_string(index=False, float_format=lambda x: f"{x:.3g}").splitlines()))
        # the notes the numbers need (e.g. an NNT interval through infinity, "2.63 to -19.8")
        for _, r in notes[notes["note"].fillna("").astype(str).str.len() > 0].drop_duplicates("note").iterrows():
            who = f"{r['outcome']} " if notes["outcome"].nunique() > 1 else ""
            lines.append(f"    note ({who}{r['quantity']}, {r['level']}): {r['note']}")
        lines.append("")
    return "\n".join(lines)


def _clean(o):
    """NaN / inf -> None, numpy scalars -> Python (strict JSON)."""
    import math

    import numpy as np

    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    return o
