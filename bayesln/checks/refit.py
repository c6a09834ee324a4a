"""Refits of a core-model fit with changed counts, priors or model options.

Every check that needs another posterior (a study held out, a subgroup, another prior,
the common-effect or no-covariate variant) goes through :func:`refit`, which starts from
the fit's own :class:`~bayesln.hierarchy.design.Design` and configuration, so the data
need not be at hand.

Holding studies out without changing the model
----------------------------------------------
A study (or any arm) is left out by setting its counts to ``events = n = 0``. A binomial
with ``n = 0`` has probability 1 whatever its parameters, so the arm contributes nothing
to the likelihood; the left-out study's own parameters (``mu_i``, ``z_i``) are then
sampled from their prior and are independent of everything else in the posterior. The
posterior of every other parameter (``d``, ``tau``, ``beta``, ``m``, ``sigma_mu``, the
other studies' ``mu_j``, ``delta_j``) is *exactly* the posterior of the same model fitted
without the study. Two reasons to do it this way:

* the model keeps its shape, so the compiled nutpie model of the original fit is reused
  (``cached_nutpie_model`` swaps ``events_data`` / ``n_data``): a refit costs one
  sampling run, not a compilation (about 1-2 s instead of 12-15 s);
* covariate transforms (centre and scale) stay those of the fitted model, so "with" and
  "without" a study are the same model on the same scale.

The left-out study's parameters are drawn from their prior in the refit, which is what
the exact leave-one-out predictive density needs (see :mod:`bayesln.checks.loo`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from bayesln.hierarchy.diagnostics import GateThresholds
from bayesln.hierarchy.fit import assemble_idata, sample_core
from bayesln.hierarchy.model import model_from_design
from bayesln.hierarchy.parameterize import resolve as resolve_parameterization
from bayesln.hierarchy.parameterize import resolve_baseline
from bayesln.hierarchy.priors import Priors, resolved_json
from bayesln.hierarchy.result import FitResult
from bayesln.hierarchy.retry import derive_seed
from bayesln.hierarchy.sampling import SamplerSettings

__all__ = ["REFIT_MIN_PARALLEL", "RefitError", "derive_seed", "fit_priors", "is_core_fit", "refit", "refit_many", "zero_counts"]


class RefitError(ValueError):
    """A refit that cannot be made from this result (not a core-model fit, bad input)."""


def is_core_fit(result) -> bool:
    """True for a :func:`~bayesln.hierarchy.fit_core` result (a design with arm arrays)."""
    d = getattr(result, "design", None)
    return all(hasattr(d, a) for a in ("events", "n", "arm_study", "treated", "X_effect", "shape_key"))


def _need_core(result, what: str) -> None:
    if not is_core_fit(result):
        raise RefitError(f"{what} needs a core-model fit (bayesln.hierarchy.fit_core); got {type(result).__name__}")


def fit_priors(result) -> Priors:
    """The priors the fit used (from its configuration; Turner priors already resolved)."""
    pri = result.config.get("priors")
    if pri is None:
        return Priors()
    return Priors.model_validate(pri)


def _settings(result, draws, tune, chains) -> tuple[SamplerSettings, str]:
    s = result.config.get("sampler", {})
    settings = SamplerSettings(
        draws=int(draws if draws is not None else s.get("draws", 1000)),
        tune=int(tune if tune is not None else s.get("tune", 1000)),
        chains=int(chains if chains is not None else s.get("chains", 4)),
        target_accept=float(s.get("target_accept", 0.99)),
    )
    return settings, s.get("backend", result.backend)


def zero_counts(result, studies=(), arms=()) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the fit's events and n with the arms of ``studies`` (and the ``arms``,
    by arm id ``study:arm``) set to 0 events out of 0."""
    _need_core(result, "zero_counts")
    des = result.design
    ev, n = des.events.copy(), des.n.copy()
    unknown = [s for s in studies if s not in des.study_ids]
    if unknown:
        raise RefitError(f"stud{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(str, unknown))} not in the fit "
                         f"(studies: {', '.join(des.study_ids)})")
    idx = [des.study_ids.index(s) for s in studies]
    mask = np.isin(des.arm_study, idx)
    bad_arms = [a for a in arms if a not in des.arm_ids]
    if bad_arms:
        raise RefitError(f"arm(s) {', '.join(bad_arms)} not in the fit")
    mask |= np.isin(np.asarray(des.arm_ids), list(arms))
    ev[mask] = 0
    n[mask] = 0
    return ev, n


def refit(
    result,
    *,
    events: np.ndarray | None = None,
    n: np.ndarray | None = None,
    priors: Priors | dict | None = None,
    common_effect: bool | None = None,
    drop_effect_modifiers: bool = False,
    drop_baseline_covariates: bool = False,
    seed: int,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    backend: str | None = None,
    progressbar: bool = False,
    gate: GateThresholds | None = None,
    label: str = "refit",
) -> FitResult:
    """Sample the fit's model again with other counts / priors / options.

    ``events`` and ``n`` replace the design's arrays (same arms; ``n = 0`` leaves an arm
    out, see the module docstring). ``priors`` replaces the fitted priors;
    ``common_effect`` switches between random and common effect; ``drop_effect_modifiers``
    removes every covariate from the treatment effect and ``drop_baseline_covariates``
    every covariate from the (exchangeable) baselines (same studies; prior overrides of
    the dropped coefficients are dropped too). Sampler settings
    default to the fit's own. The result's ``design`` carries the new counts (its
    ``contrasts`` / ``usage`` tables are the original fit's) and ``config["refit"]``
    says what changed. A failing diagnostics gate is recorded in ``.diagnostics``, not
    raised or warned (the caller reports it).
    """
    _need_core(result, "refit")
    des = result.design
    changes = {"label": label}
    if events is not None or n is not None:
        ev = np.asarray(des.events if events is None else events, dtype=np.int64)
        nn = np.asarray(des.n if n is None else n, dtype=np.int64)
        if ev.shape != des.events.shape or nn.shape != des.n.shape:
            raise RefitError(f"events / n must have one value per arm ({des.n_arms})")
        if (ev < 0).any() or (ev > nn).any():
            raise RefitError("events must be integers with 0 <= events <= n")
        des = replace(des, events=ev, n=nn)
        held = [s for i, s in enumerate(des.study_ids) if (nn[des.arm_study == i] == 0).all()]
        changes["held_out_studies"] = held
    dropped_beta, dropped_gamma = set(), set()
    if drop_effect_modifiers and des.effect_names:
        dropped_beta = set(des.effect_names)
        des = replace(
            des,
            X_effect=np.zeros((des.n_arms, 0)),
            effect_names=[],
            transforms={k: v for k, v in des.transforms.items() if not k.startswith("beta:")},
        )
        changes["effect_modifiers"] = []
        changes["dropped_effect_modifiers"] = sorted(dropped_beta, key=result.design.effect_names.index)
    if drop_baseline_covariates and des.baseline_names:
        dropped_gamma = set(des.baseline_names)
        des = replace(
            des,
            Z_baseline=np.zeros((des.n_studies, 0)),
            baseline_names=[],
            transforms={k: v for k, v in des.transforms.items() if not k.startswith("gamma:")},
        )
        changes["baseline_covariates"] = []
        changes["dropped_baseline_covariates"] = sorted(dropped_gamma, key=result.design.baseline_names.index)
    ce = result.common_effect if common_effect is None else bool(common_effect)
    if ce != result.common_effect:
        changes["common_effect"] = ce
    if priors is None:
        pri = fit_priors(result)
    else:
        pri = priors if isinstance(priors, Priors) else Priors.model_validate(priors)
        changes["priors"] = pri.to_json_dict()
    # prior overrides of the coefficients dropped above
    if dropped_beta or dropped_gamma:
        pri = pri.model_copy(update={
            "beta_overrides": {k: v for k, v in pri.beta_overrides.items() if k not in dropped_beta},
            "gamma_overrides": {k: v for k, v in pri.gamma_overrides.items() if k not in dropped_gamma},
        })
    requested = result.config.get("parameterization", "noncentered")
    form, chosen = resolve_parameterization(des, requested if isinstance(requested, str) else tuple(requested),
                                            common_effect=ce)
    if chosen is not None:
        changes["parameterization_chosen"] = chosen
    settings, be = _settings(result, draws, tune, chains)
    be = backend or be
    resolved = resolved_json(pri, des.outcome, common_effect=ce)
    bp_requested = result.config.get("baseline_parameterization") or "centered"
    bp, bchosen = resolve_baseline(des, bp_requested if isinstance(bp_requested, str) else tuple(bp_requested))
    if bchosen is not None:
        changes["baseline_parameterization_chosen"] = bchosen
    model = model_from_design(des, common_effect=ce, parameterization=form, priors=pri, baseline_parameterization=bp)
    if gate is None:
        th = getattr(getattr(result, "diagnostics", None), "thresholds", None)
        gate = th if isinstance(th, GateThresholds) else GateThresholds()
    _report(label)
    # fit_core's sampling step: the same code (kernel or PyTensor), cache and retries
    retry = bool(result.config.get("sampler", {}).get("retry", False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        posterior, stats, used, diag, _, _, _ = sample_core(
            model, des, pri, form=form, auto=requested == "auto", common_effect=ce, baseline_parameterization=bp,
            settings=settings, seed=seed, backend=be, progressbar=progressbar, retry=retry, gate=gate,
            baseline_auto=bp_requested == "auto")
    config = json.loads(json.dumps(result.config, default=str))
    config.update(common_effect=ce, priors=resolved)
    config["effect_modifiers"] = list(des.effect_names)
    config["baseline_covariates"] = list(des.baseline_names)
    config["sampler"] = {**config.get("sampler", {}), "backend": used, "draws": settings.draws,
                         "tune": settings.tune, "chains": settings.chains, "seed": int(seed)}
    config["refit"] = changes
    attrs = {"model_config": json.dumps(config, sort_keys=True, default=str), "seed": int(seed), "backend": used,
             "outcome": des.outcome, "data_fingerprint": des.fingerprint, "refit_of": label}
    idata = assemble_idata(des, posterior, stats, seed=seed, attrs=attrs)
    if diag.retries:
        config["retries"] = diag.retries
    return FitResult(idata=idata, design=des, diagnostics=diag, config=config, seed=int(seed), backend=used)


# --------------------------------------------------------------------------- progress
#: where refits report themselves (set by :func:`reporting_refits`): a callback
#: ``(i, n, label)`` - the i-th refit of a batch of n (None when the batch size is not
#: known in advance) - and the current batch
_REPORTER: contextvars.ContextVar = contextvars.ContextVar("bayesln_refit_reporter", default=None)


@contextlib.contextmanager
def reporting_refits(callback: Callable[[int, int | None, str], None]) -> Iterator[None]:
    """Within the block, every :func:`refit` (in this process) calls ``callback(i, n,
    label)`` before it samples: ``bayesln check`` turns that into one labelled progress
    line ("refit 3 of 7: leave out liu2015")."""
    token = _REPORTER.set({"callback": callback, "i": 0, "n": None})
    try:
        yield
    finally:
        _REPORTER.reset(token)


@contextlib.contextmanager
def refit_batch(n: int | None) -> Iterator[None]:
    """Announce a batch of ``n`` refits (numbered from 1 within it) to the reporter."""
    state = _REPORTER.get()
    if state is None:
        yield
        return
    saved = (state["i"], state["n"])
    state["i"], state["n"] = 0, n
    try:
        yield
    finally:
        state["i"], state["n"] = saved


def _report(label: str) -> None:
    state = _REPORTER.get()
    if state is not None:
        state["i"] += 1
        state["callback"](state["i"], state["n"], label)


#: ``refit_many`` without an explicit executor runs in worker processes from this many
#: refits on: in this process a refit reuses the fit's compiled model (one sampling run,
#: 1-2 s), a fresh worker first imports bayesln and compiles (about 10-15 s), see
#: benchmarks/results/perf.json
REFIT_MIN_PARALLEL = 24


def _refit_task(task):
    result, kwargs = task
    return refit(result, **kwargs)


def refit_many(result, jobs: list[dict], *, executor=None, progress=None) -> list:
    """``[refit(result, **kw) for kw in jobs]`` through an executor (see
    :mod:`bayesln.executor`): ``None`` = in this process unless there are at least
    ``REFIT_MIN_PARALLEL`` refits and twice as many cores as chains (or
    ``$BAYESLN_EXECUTOR`` says otherwise). Every job carries its own ``seed``, so the
    results do not depend on the executor."""
    from bayesln.executor import run_batch

    chains = max([int(kw["chains"]) for kw in jobs if kw.get("chains")] or
                 [int(result.config.get("sampler", {}).get("chains", 4))])
    with refit_batch(len(jobs)):
        return run_batch(_refit_task, [(result, dict(kw)) for kw in jobs], executor, min_tasks=REFIT_MIN_PARALLEL,
                         chains=chains, progress=progress)
