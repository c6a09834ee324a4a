"""``fit_core``: design -> PyMC model -> NUTS (backend, seed) -> diagnostics gate ->
FitResult with a complete InferenceData."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import warnings
from collections.abc import Iterable

import numpy as np
import pymc as pm
import xarray as xr
from scipy.special import expit, gammaln, log_expit

from bayesln import _arviz
from bayesln.hierarchy.design import Design
from bayesln.hierarchy.diagnostics import GateThresholds, run_gate
from bayesln.hierarchy.model import build_core_model
from bayesln.hierarchy.priors import Priors, resolve_tau_prior
from bayesln.hierarchy.result import FitResult
from bayesln.hierarchy.sampling import SamplerSettings, cached_nutpie_model, check_seed, resolve_backend, sample_model

__all__ = ["bayesln_version", "fit_core", "assemble_idata"]


def bayesln_version() -> str:
    try:
        return importlib.metadata.version("bayesln")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _arm_loglik(eta: np.ndarray, y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Binomial log pmf per arm for draws of the logit (..., arm)."""
    const = gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
    return const + y * log_expit(eta) + (n - y) * log_expit(-eta)


def assemble_idata(
    design: Design,
    posterior: xr.Dataset,
    sample_stats: xr.Dataset | None,
    *,
    prior: xr.Dataset | None = None,
    prior_predictive: xr.Dataset | None = None,
    seed: int,
    attrs: dict | None = None,
):
    """Posterior + derived groups (posterior_predictive, log_likelihood per study,
    observed_data, constant_data) as one InferenceData."""
    eta = np.asarray(posterior["eta"].values, dtype=float)  # chain, draw, arm
    y, n = design.events.astype(float), design.n.astype(float)
    ll_arm = _arm_loglik(eta, y, n)
    onehot = np.zeros((design.n_arms, design.n_studies))
    onehot[np.arange(design.n_arms), design.arm_study] = 1.0
    ll_study = ll_arm @ onehot
    rng = np.random.default_rng([int(seed), 1])
    y_rep = rng.binomial(design.n[None, None, :], expit(eta))
    cd = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    study = design.study_ids
    arm = design.arm_ids
    log_likelihood = xr.Dataset(
        {"study_loglik": (("chain", "draw", "study"), ll_study)}, coords={**cd, "study": study}
    )
    posterior_predictive = xr.Dataset({"events": (("chain", "draw", "arm"), y_rep)}, coords={**cd, "arm": arm})
    observed = xr.Dataset({"events": (("arm",), design.events)}, coords={"arm": arm})
    const = {
        "n": (("arm",), design.n),
        "treated": (("arm",), design.treated),
        "arm_study": (("arm",), np.array([study[i] for i in design.arm_study], dtype=object).astype(str)),
    }
    coords = {"arm": arm, "study": study}
    if design.effect_names:
        const["X_effect"] = (("arm", "covariate"), design.X_effect)
        coords["covariate"] = design.effect_names
    if design.baseline_names:
        const["Z_baseline"] = (("study", "baseline_covariate"), design.Z_baseline)
        coords["baseline_covariate"] = design.baseline_names
    constant = xr.Dataset(const, coords=coords)
    groups = {
        "posterior": posterior,
        "sample_stats": sample_stats,
        "posterior_predictive": posterior_predictive,
        "log_likelihood": log_likelihood,
        "prior": prior,
        "prior_predictive": prior_predictive,
        "observed_data": observed,
        "constant_data": constant,
    }
    # the outcome as a scalar coordinate of every group with draws or data (a core fit has
    # one outcome; the joint family has an outcome dimension instead)
    for g in ("posterior", "posterior_predictive", "log_likelihood", "prior", "prior_predictive", "observed_data"):
        if groups[g] is not None:
            groups[g] = groups[g].assign_coords(outcome=design.outcome)
    if attrs:
        for g in ("posterior", "prior"):
            if groups[g] is not None:
                groups[g] = groups[g].assign_attrs(**attrs)
    return _arviz.make_inference_data(groups, attrs=attrs)


def _sample_prior_predictive(model: pm.Model, draws: int, seed: int) -> tuple[xr.Dataset, xr.Dataset]:
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            # FAST_COMPILE: the forward sampler runs PyTensor's Python implementations, so a
            # fresh machine compiles no C for it (2.7 s -> 0.9 s with empty caches, 0.5 ->
            # 0.3 s warm); the random streams and so the draws are the same
            pp = pm.sample_prior_predictive(draws=draws, random_seed=seed, compile_kwargs={"mode": "FAST_COMPILE"})
    finally:
        logger.setLevel(level)
    prior = _arviz.drop_variables(pp.prior, [v for v in pp.prior.data_vars if str(v).endswith("__")])
    return prior, pp.prior_predictive


def _fastcore():
    """The core-model kernel module (importing it loads the kernel from Numba's disk
    cache, or compiles it there), or None when it cannot be loaded: e.g. no writable
    cache location (the package folder and ``NUMBA_CACHE_DIR`` / the user cache both
    read-only); then PyTensor generates the model's code, as for the other families."""
    try:
        from bayesln import _kernelwarm

        _kernelwarm.wait()  # a compile started by the command line: load its cache instead
        from bayesln.hierarchy import fastcore
    except Exception as exc:  # noqa: BLE001 - any failure here only costs speed
        warnings.warn(f"bayesln: the core-model kernel could not be loaded ({exc}); using PyTensor's code",
                      RuntimeWarning, stacklevel=3)
        return None
    return fastcore


def fit_core(
    data,
    outcome: str,
    *,
    treat: str | Iterable[str] = ("tac",),
    baseline: str = "independent",
    effect_modifiers: str | Iterable[str] = (),
    baseline_covariates: str | Iterable[str] = (),
    common_effect: bool = False,
    parameterization: str = "noncentered",
    priors: Priors | dict | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    target_accept: float = 0.99,
    backend: str = "auto",
    seed: int,
    progressbar: bool | None = None,
    prior_predictive: bool = True,
    prior_draws: int = 1000,
    gate: GateThresholds = GateThresholds(),
    direction: str | None = None,
    cores: int | None = None,
    baseline_parameterization: str = "centered",
) -> FitResult:
    """Fit the arm-based binomial-normal random-effects model to one binary outcome.

    Parameters
    ----------
    data : TrialData or arm-table DataFrame (study, arm, treatment, events, n, covariates).
    outcome : outcome name (e.g. ``"total_response"``); decides the direction (benefit /
        harm) of ``P(OR > 1)`` / ``P(OR < 1)`` in the summary.
    treat : treatment labels or network nodes of the "treated" arms (default TAC).
    baseline : ``"independent"`` (mu_i ~ N(0, 2.5), default) or ``"exchangeable"``
        (mu_i ~ N(m + z_i.gamma, sigma_mu); needed for single-arm studies and absolute
        predictions).
    effect_modifiers : covariates on the treatment effect (population covariates,
        ``regimen``, ``phase``, ``comparator``).
    baseline_covariates : covariates on the baseline (exchangeable baselines only).
    common_effect : tau = 0.
    parameterization : ``"noncentered"`` (default) or ``"centered"`` random treatment
        effects.
    baseline_parameterization : ``"centered"`` (default) or ``"noncentered"``
        exchangeable baselines.
    priors : :class:`Priors` (or a dict of its fields); defaults as documented there.
    draws, tune, chains, target_accept : NUTS settings. ``target_accept`` defaults to
        0.99 (as the brms reference's ``adapt_delta``): at 0.95 about one default fit in
        six on the bundled total/complete response data had 1-2 divergent transitions
        (7/40 seeds), at 0.98-0.99 none in 80 (see tests/test_hierarchy_fit.py).
    backend : ``"auto"`` (nutpie if installed, else PyMC), ``"nutpie"``, ``"pymc"``,
        ``"numpyro"``.
    seed : required integer; the same seed and backend give identical draws.
    progressbar : default: only when stderr is a terminal.
    prior_predictive : also draw ``prior_draws`` samples from the prior (groups prior
        and prior_predictive).
    gate : diagnostics thresholds; a failing fit warns and has status "failed_gate".
    direction : "benefit" / "harm" for outcomes outside the vocabulary.
    """
    seed = check_seed(seed)
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, target_accept=target_accept, cores=cores)
    used = resolve_backend(backend)
    if priors is not None and not isinstance(priors, Priors):
        priors = Priors.model_validate(priors)
    priors = priors if priors is not None else Priors()
    model, design = build_core_model(
        data,
        outcome,
        treat=treat,
        baseline=baseline,
        effect_modifiers=effect_modifiers,
        baseline_covariates=baseline_covariates,
        common_effect=common_effect,
        parameterization=parameterization,
        priors=priors,
        direction=direction,
        baseline_parameterization=baseline_parameterization,
    )
    resolved = priors.to_json_dict()
    if not common_effect:
        resolved["tau"] = resolve_tau_prior(priors.tau, outcome).model_dump(mode="json")
    config = {
        "model": "core arm-based binomial-normal",
        **design.summary_dict(),
        "common_effect": bool(common_effect),
        "parameterization": parameterization,
        "baseline_parameterization": baseline_parameterization if baseline == "exchangeable" else None,
        "priors": resolved,
        "sampler": {
            "backend_requested": backend,
            "backend": used,
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "target_accept": target_accept,
            "seed": seed,
        },
        "gate": gate.to_dict(),
    }
    compiled = None
    if used == "nutpie":
        key = (common_effect, parameterization, baseline_parameterization, json.dumps(resolved, sort_keys=True))
        fast = None
        fastcore = _fastcore()
        if fastcore is not None and fastcore.enabled() and fastcore.supports(design, priors):
            tau_prior = resolve_tau_prior(priors.tau, outcome)

            def fast():
                return fastcore.compile_fast_core(
                    model, design, priors, tau_prior, common_effect=common_effect,
                    parameterization=parameterization, baseline_parameterization=baseline_parameterization,
                )

            key = key + ("fastcore",)
        compiled = cached_nutpie_model(model, design, key=key, compile=fast)
        config["sampler"]["log_density"] = "bayesln fastcore kernel (Numba, cached)" if fast else "PyTensor (Numba)"
    posterior, stats, used = sample_model(
        model, settings=settings, seed=seed, backend=used, progressbar=progressbar, compiled=compiled
    )
    prior = prior_pred = None
    if prior_predictive:
        prior, prior_pred = _sample_prior_predictive(model, prior_draws, seed)
    attrs = {
        "bayesln_version": bayesln_version(),
        "model_config": json.dumps(config, sort_keys=True),
        "data_fingerprint": design.fingerprint,
        "seed": seed,
        "backend": used,
        "outcome": outcome,
        "covariate_transforms": design.transforms_json(),
        "inference_library": "pymc",
    }
    idata = assemble_idata(design, posterior, stats, prior=prior, prior_predictive=prior_pred, seed=seed, attrs=attrs)
    diag = run_gate(posterior, stats, gate, warn=False)
    if not diag.passed:
        warnings.warn(
            f"{outcome}: diagnostics gate failed (status 'failed_gate'): " + "; ".join(diag.problems),
            UserWarning,
            stacklevel=2,
        )
    return FitResult(idata=idata, design=design, diagnostics=diag, config=config, seed=seed, backend=used)
