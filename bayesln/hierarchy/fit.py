"""``fit_core``: design -> PyMC model -> NUTS (backend, seed) -> diagnostics gate ->
FitResult with a complete InferenceData.

The InferenceData of a core fit (what ``bayesln fit`` writes as ``idata.nc``) holds the
groups and variables of :data:`CORE_EXPORT` and nothing else; which optional variables
are present depends on the model (exchangeable baselines, covariates, common effect).
Every variable is documented there, with its dims. Notably:

* ``log_likelihood`` holds one variable, ``study_integrated`` (chain, draw, study): the
  log-likelihood of each study with its own baseline and effect integrated out, the one
  ``bayesln check`` uses for leave-one-study-out (:mod:`bayesln.checks.loo`), computed by
  :func:`bayesln.checks.marginal.integrated_study_loglik` with the same inner draws and
  the same seeds (from the fit's seed). So ``az.loo(az.from_netcdf("runs/NAME/idata.nc",
  engine="h5netcdf"))`` scores the same per-study log-likelihood draws as ``bayesln
  check``. One variable only: ArviZ 0.23 (``arviz.stats.stats_utils.get_log_likelihood``)
  raises ``TypeError: Found several log likelihood arrays ..., var_name cannot be None``
  when ``var_name`` is not given and the group holds more than one; it does not choose.
  The values are computed when first read (reading them, ``az.loo``, or writing the file),
  so a fit that is never scored or saved does not pay for the integration (~2 s for 6
  studies x 8,000 draws).
* ``log_likelihood_conditional`` holds ``study_loglik``: the per-study log-likelihood
  given the study's own parameters (sum over its arms), as before; ``result.loo(kind=
  "conditional")`` and the ``pareto_k_conditional`` column of the LOO table use it.
* ``posterior_derived`` holds functions of the posterior draws with their own names:
  ``or``, ``or_new``, ``rr``, ``rr_pooled_baseline``. They are a separate group, not part
  of ``posterior``, so the diagnostics gate (which ``bayesln check`` and ``predict`` rerun
  on the stored posterior) and ``az.loo``'s relative efficiency (the mean ESS over every
  posterior variable) are the same as before they were added.
"""

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
from bayesln.hierarchy.design import Design, build_design
from bayesln.hierarchy.diagnostics import GateThresholds, run_gate
from bayesln.hierarchy.model import model_from_design
from bayesln.hierarchy.parameterize import resolve as resolve_parameterization
from bayesln.hierarchy.parameterize import resolve_baseline
from bayesln.hierarchy.priors import Priors, resolve_tau_prior, resolved_json
from bayesln.hierarchy.result import FitResult
from bayesln.hierarchy.retry import record_retries, sample_gated
from bayesln.hierarchy.sampler_defaults import DEFAULT_SAMPLER
from bayesln.hierarchy.sampling import (
    SamplerSettings,
    cached_nutpie_model,
    check_seed,
    resolve_backend,
    sample_model,
)

__all__ = ["CORE_EXPORT", "add_exports", "assemble_idata", "bayesln_version", "compile_core", "exported_names", "fit_core", "sample_core"]

_C = ("chain", "draw")
#: The InferenceData of a core fit: group -> variable -> (dims, meaning). Variables marked
#: "(when ...)" exist only for such models; every other name is left out of the export
#: (e.g. PyMC's scalar building blocks ``beta_raw_0`` of a coefficient vector whose
#: elements have priors of different families: ``beta`` holds the same values).
CORE_EXPORT: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "posterior": {
        "mu": (_C + ("study",), "baseline log-odds of each study (its control arms)"),
        "m": (_C, "mean baseline log-odds (when baselines are exchangeable)"),
        "sigma_mu": (_C, "between-study SD of the baseline log-odds (when baselines are exchangeable)"),
        "mu_raw": (_C + ("study",), ("standardised baselines (mu - m - Z.gamma) / sigma_mu (when exchangeable "
                                    "baselines are non-centred; where the data-driven choice centres a study, "
                                    "its mu itself: config['baseline_parameterization_chosen'] says which)")),
        "gamma": (_C + ("baseline_covariate",), ("baseline log-odds per unit of each transformed baseline covariate "
                                                "(when there are baseline covariates)")),
        "d": (_C, "pooled log odds ratio, treated vs control (at the covariate reference values)"),
        "tau": (_C, "between-study SD of the log odds ratio (when random effects)"),
        "z": (_C + ("study",), "standardised study effects (delta - d) / tau (when random effects are non-centred)"),
        "delta_raw": (_C + ("study",), ("the sampled coordinate of each study effect: delta where the study is "
                                       "centred, (delta - d) / tau where it is non-centred (when the data-driven "
                                       "parameterisation mixes both; config['parameterization_chosen'] says which)")),
        "delta": (_C + ("study",), ("log odds ratio of each study at the covariate reference values (= d when "
                                   "common effect)")),
        "beta": (_C + ("covariate",), ("change of the log odds ratio per unit of each transformed effect modifier "
                                      "(when there are effect modifiers)")),
        "eta": (_C + ("arm",), "logit of each arm's event probability: mu + treated * delta + X_effect . beta"),
    },
    "posterior_derived": {
        "or": (_C, "pooled odds ratio exp(d) (at the covariate reference values)"),
        "or_new": (_C, ("odds ratio in a new study exp(d + tau * e), e ~ N(0, 1) drawn with the seed [seed, 20240611] "
                       "in the order of the flattened (chain, draw) draws: the draws of the summary's 'predictive OR "
                       "(new study)'; exp(d) under a common effect")),
        "rr": (_C, ("relative risk from the posterior arm probabilities, marginalised over the studies' baselines "
                   "with weights n_t + n_c (the comparison table's binomial_normal_bayes_marginal, all studies of "
                   "the fit; bayesln.checks.compare.bayesian_rr_draws)")),
        "rr_pooled_baseline": (_C, ("relative risk at the pooled baseline risk (the comparison table's "
                                   "binomial_normal_bayes_pooled_baseline)")),
    },
    "log_likelihood": {
        "study_integrated": (_C + ("study",), ("log p(y_i | population parameters): each study's likelihood with its "
                                              "own mu_i and delta_i integrated out (bayesln.checks.marginal; "
                                              "binomial coefficients included); what bayesln check's "
                                              "leave-one-study-out uses")),
    },
    "log_likelihood_conditional": {
        "study_loglik": (_C + ("study",), ("log-likelihood of each study given its own parameters: the sum over its "
                                          "arms of Binomial(events | n, inv_logit(eta))")),
    },
    "posterior_predictive": {"events": (_C + ("arm",), "replicated event counts of each arm")},
    "prior": {},  # the posterior's variables (their prior draws), see prior_names below
    "prior_predictive": {"events": (_C + ("arm",), "event counts of each arm drawn from the prior")},
    "observed_data": {"events": (("arm",), "observed event counts")},
    "constant_data": {
        "n": (("arm",), "arm sizes"),
        "treated": (("arm",), "1 for a treated arm, 0 for a control arm"),
        "arm_study": (("arm",), "the study of each arm"),
        "X_effect": (("arm", "covariate"), "effect-modifier design row of each arm (when there are effect modifiers)"),
        "Z_baseline": (("study", "baseline_covariate"), "baseline covariates of each study (when there are any)"),
    },
}
#: the prior group holds the posterior's variables (draws from the prior)
CORE_EXPORT["prior"] = {k: (dims, f"prior draws of {k}") for k, (dims, _) in CORE_EXPORT["posterior"].items()}
#: the sample_stats group is the sampler's own (nutpie / PyMC / NumPyro names), not listed


def exported_names(idata) -> dict[str, set[str]]:
    """``{group: set of variable names}`` of an InferenceData (for tests and docs)."""
    return {g: {str(v) for v in getattr(idata, g).data_vars} for g in idata.groups()}


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
    """Posterior + derived groups (posterior_predictive, the conditional per-study
    log-likelihood, observed_data, constant_data) as one InferenceData, with only the
    variables of :data:`CORE_EXPORT`. :func:`add_exports` (called by ``fit_core``) adds
    the integrated ``log_likelihood`` and ``posterior_derived`` groups."""
    posterior = _arviz.keep_variables(posterior, CORE_EXPORT["posterior"])
    prior = _arviz.keep_variables(prior, CORE_EXPORT["prior"])
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
    conditional = xr.Dataset(
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
    constant = _arviz.drop_unused_dims(xr.Dataset(const, coords=coords))
    groups = {
        "posterior": posterior,
        "sample_stats": sample_stats,
        "posterior_predictive": posterior_predictive,
        "log_likelihood_conditional": conditional,
        "prior": prior,
        "prior_predictive": prior_predictive,
        "observed_data": observed,
        "constant_data": constant,
    }
    # the outcome as a scalar coordinate of every group with draws or data (a core fit has
    # one outcome; the joint family has an outcome dimension instead)
    for g in ("posterior", "posterior_predictive", "log_likelihood_conditional", "prior", "prior_predictive",
              "observed_data"):
        if groups[g] is not None:
            groups[g] = groups[g].assign_coords(outcome=design.outcome)
    if attrs:
        for g in ("posterior", "prior"):
            if groups[g] is not None:
                groups[g] = groups[g].assign_attrs(**attrs)
    return _arviz.make_inference_data(groups, attrs=attrs)


def _rr_draws(result, which: str) -> np.ndarray:
    """(chain, draw) draws of the comparison table's Bayesian RR (``which``:
    ``bayes_marginal`` / ``bayes_pooled_baseline``) over all the fit's two-sided studies."""
    from bayesln.checks.compare import bayesian_rr_draws
    from bayesln.checks.loo import study_contrasts

    post = result.idata.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    contrasts = study_contrasts(result)
    if contrasts.empty:
        return np.full(shape, np.nan)
    return np.asarray(bayesian_rr_draws(result, contrasts)[which], dtype=float).reshape(shape)


def add_exports(result) -> None:
    """Put the integrated per-study ``log_likelihood`` (``study_integrated``, computed on
    first read) and the ``posterior_derived`` group (``or``, ``or_new`` now; ``rr``,
    ``rr_pooled_baseline`` on first read) into ``result.idata`` (see :data:`CORE_EXPORT`)."""
    import functools

    from bayesln.checks.marginal import integrated_loglik_dataarray

    idata = result.idata
    post = idata.posterior
    cd = {"chain": post["chain"].values, "draw": post["draw"].values}
    shape = (len(cd["chain"]), len(cd["draw"]))
    d = np.asarray(post["d"].values, dtype=float)
    tau = np.asarray(post["tau"].values, dtype=float) if "tau" in post else np.zeros_like(d)
    # the summary's predictive OR: the same generator, the same order of the draws
    e = np.random.default_rng([int(result.seed), 20240611]).standard_normal(d.size).reshape(shape)
    derived = xr.Dataset(
        {
            "or": (("chain", "draw"), np.exp(d)),
            "or_new": (("chain", "draw"), np.exp(d + tau * e)),
            "rr": _arviz.lazy_dataarray(("chain", "draw"), cd, functools.partial(_rr_draws, result, "bayes_marginal")),
            "rr_pooled_baseline": _arviz.lazy_dataarray(
                ("chain", "draw"), cd, functools.partial(_rr_draws, result, "bayes_pooled_baseline")),
        },
        coords=cd,
    )
    for name, da in derived.data_vars.items():
        da.attrs["description"] = CORE_EXPORT["posterior_derived"][name][1]
    ll = xr.Dataset({"study_integrated": integrated_loglik_dataarray(result)})
    outcome = post.coords.get("outcome")
    if outcome is not None:
        derived = derived.assign_coords(outcome=outcome.values)
        ll = ll.assign_coords(outcome=outcome.values)
    result.idata = _arviz.replace_groups(idata, {"log_likelihood": ll, "posterior_derived": derived})


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


def _form_key(form):
    return form if isinstance(form, str) else tuple(bool(v) for v in form)


def compile_core(model, design, priors: Priors, *, common_effect: bool, parameterization,
                 baseline_parameterization):
    """The nutpie-compiled core ``model`` (built by ``model_from_design`` from ``design``
    with these options) and a label of its log density: the cached Numba kernel
    (:mod:`bayesln.hierarchy.fastcore`) when it covers the model, else PyTensor's code.
    One compiled model per structure and options in this process
    (:func:`~bayesln.hierarchy.sampling.cached_nutpie_model`): ``fit_core`` and every refit
    of :mod:`bayesln.checks.refit` call this, so a refit samples the same code as its fit."""
    resolved = resolved_json(priors, design.outcome, common_effect=common_effect)
    form, bform = _form_key(parameterization), _form_key(baseline_parameterization)
    key = (common_effect, form, bform, json.dumps(resolved, sort_keys=True))
    fast = None
    fastcore = _fastcore()
    if fastcore is not None and fastcore.enabled() and fastcore.supports(design, priors):
        tau_prior = resolve_tau_prior(priors.tau, design.outcome)

        def fast():
            return fastcore.compile_fast_core(
                model, design, priors, tau_prior, common_effect=common_effect,
                parameterization=form, baseline_parameterization=bform,
            )

        key = key + ("fastcore",)
    compiled = cached_nutpie_model(model, design, key=key, compile=fast)
    return compiled, ("bayesln fastcore kernel (Numba, cached)" if fast else "PyTensor (Numba)")


#: the forms the structural retry of a data-driven ("auto") choice falls back to: every study
#: effect non-centred, every exchangeable baseline centred (the fixed defaults before "auto")
FALLBACK_FORMS = ("noncentered", "centered")


def sample_core(model, design, priors: Priors, *, form, auto: bool, common_effect: bool,
                baseline_parameterization, settings: SamplerSettings, seed: int, backend: str,
                progressbar, retry: bool, gate: GateThresholds, baseline_auto: bool = False):
    """NUTS on the core ``model`` (study-effect form ``form``, baseline form
    ``baseline_parameterization``, each resolved) with the gate and the automatic retries
    of :mod:`bayesln.hierarchy.retry`. When a form was chosen by the data (``auto`` /
    ``baseline_auto``) and differs from :data:`FALLBACK_FORMS`, the structural retry samples
    those forms instead. ``fit_core`` and every refit (:mod:`bayesln.checks.refit`) sample
    through this.

    Returns (posterior, sample_stats, backend used, diagnostics, final settings, the model
    sampled last, label of its log density or None)."""
    forms = (_form_key(form), _form_key(baseline_parameterization))
    forms_alt = (FALLBACK_FORMS[0] if auto and not common_effect else forms[0],
                 FALLBACK_FORMS[1] if baseline_auto and design.baseline != "independent" else forms[1])
    models = {False: (model, forms)}
    if forms_alt != forms:
        models[True] = (None, forms_alt)  # built when the structural retry needs it
    label = {}

    def sample(s, sd, alternative):
        m, (f, bf) = models[alternative]
        if m is None:
            m = model_from_design(design, common_effect=common_effect, parameterization=f, priors=priors,
                                  baseline_parameterization=bf)
            models[alternative] = (m, (f, bf))
        compiled = None
        if backend == "nutpie":
            compiled, label["log_density"] = compile_core(
                m, design, priors, common_effect=common_effect, parameterization=f, baseline_parameterization=bf)
        return sample_model(m, settings=s, seed=sd, backend=backend, progressbar=progressbar, compiled=compiled)

    def describe():
        parts = []
        if forms_alt[0] != forms[0]:
            parts.append("every study effect non-centred")
        if forms_alt[1] != forms[1]:
            parts.append("every baseline centred")
        return " and ".join(parts)

    posterior, stats, used, diag, final, alt = sample_gated(
        sample, lambda p, st: run_gate(p, st, gate, warn=False), settings=settings, seed=seed, retry=retry,
        alternative=describe if True in models else None)
    return posterior, stats, used, diag, final, models[alt][0], label.get("log_density")


def fit_core(
    data,
    outcome: str,
    *,
    treat: str | Iterable[str] = ("tac",),
    baseline: str = "independent",
    effect_modifiers: str | Iterable[str] = (),
    baseline_covariates: str | Iterable[str] = (),
    common_effect: bool = False,
    parameterization: str | Iterable[bool] = "auto",
    priors: Priors | dict | None = None,
    draws: int = DEFAULT_SAMPLER["draws"],
    tune: int = DEFAULT_SAMPLER["tune"],
    chains: int = DEFAULT_SAMPLER["chains"],
    target_accept: float = DEFAULT_SAMPLER["target_accept"],
    backend: str = "auto",
    seed: int,
    progressbar: bool | None = None,
    prior_predictive: bool = True,
    prior_draws: int = 1000,
    gate: GateThresholds = GateThresholds(),
    direction: str | None = None,
    cores: int | None = None,
    baseline_parameterization: str | Iterable[bool] = "auto",
    retry: bool = True,
    nonrandomised: str = "exclude",
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
    parameterization : ``"auto"`` (default): each study's random treatment effect centred or
        non-centred by how strongly its own data inform it relative to the between-study
        spread (:mod:`bayesln.hierarchy.parameterize`; the choice is recorded in
        ``config["parameterization_chosen"]``); ``"noncentered"`` or ``"centered"`` for
        every study; or one boolean per study (True: centred).
    baseline_parameterization : ``"auto"`` (default): each study's exchangeable baseline
        centred or non-centred by how strongly its control arms inform it relative to the
        between-study spread of baselines (:func:`bayesln.hierarchy.parameterize.choose_baseline`;
        recorded in ``config["baseline_parameterization_chosen"]``); ``"centered"``,
        ``"noncentered"`` or one boolean per study. On 80 simulated reviews of 3-30 trials
        with exchangeable baselines (benchmarks/calibration.py), "auto" passed the gate at the
        first attempt more often than either fixed form (results/calibration.json).
    priors : :class:`Priors` (or a dict of its fields); defaults as documented there.
    draws, tune, chains, target_accept : NUTS settings, by default those of specs
        (:data:`bayesln.hierarchy.sampler_defaults.DEFAULT_SAMPLER`: 4 x 2000 draws after 1000 tuning steps, target
        acceptance 0.995). With the former 4 x 1000 at 0.99, 4 of 30 simulated reviews of
        5-30 trials missed the gate on tau's ESS or R-hat at the first attempt; with these
        settings 40 of 40 reviews of 20-30 trials passed (benchmarks/calibration.py has the
        full calibration). At 0.95 about one default fit in six on the bundled total/complete
        response data had 1-2 divergent transitions (tests/test_hierarchy_fit.py).
    backend : ``"auto"`` (nutpie if installed, else PyMC), ``"nutpie"``, ``"pymc"``,
        ``"numpyro"``.
    seed : required integer; the same seed and backend give identical draws.
    progressbar : default: only when stderr is a terminal.
    prior_predictive : also draw ``prior_draws`` samples from the prior (groups prior
        and prior_predictive).
    gate : diagnostics thresholds; a failing fit warns and has status "failed_gate".
    direction : "benefit" / "harm" for outcomes outside the vocabulary.
    nonrandomised : studies whose stated design is not "rct" (cohort, case-control,
        single-arm series): ``"exclude"`` (default; left out with a warning and a usage
        row: a randomised-only analysis) or ``"bias"`` (entered with an explicit bias term,
        the effect modifier ``design:nonrandomised``; :func:`~bayesln.hierarchy.design.build_design`).
    retry : when the gate fails, refit once with a higher target acceptance (after
        divergences or low E-BFMI) or add chains (when only R-hat / ESS fall short), within
        a fixed budget, each retry recorded (:mod:`bayesln.hierarchy.retry`); False: one
        attempt.
    """
    seed = check_seed(seed)
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, target_accept=target_accept, cores=cores)
    used = resolve_backend(backend)
    if priors is not None and not isinstance(priors, Priors):
        priors = Priors.model_validate(priors)
    priors = priors if priors is not None else Priors()
    design = build_design(
        data,
        outcome,
        treat=treat,
        baseline=baseline,
        effect_modifiers=effect_modifiers,
        baseline_covariates=baseline_covariates,
        direction=direction,
        nonrandomised=nonrandomised,
    )
    form, chosen = resolve_parameterization(design, parameterization, common_effect=common_effect)
    bform, bchosen = resolve_baseline(design, baseline_parameterization)
    model = model_from_design(design, common_effect=common_effect, parameterization=form, priors=priors,
                              baseline_parameterization=bform)
    resolved = resolved_json(priors, outcome, common_effect=common_effect)
    config = {
        "model": "core arm-based binomial-normal",
        **design.summary_dict(),
        "common_effect": bool(common_effect),
        "nonrandomised": nonrandomised,
        "parameterization": parameterization if isinstance(parameterization, str) else [bool(v) for v in form],
        "baseline_parameterization": ((baseline_parameterization if isinstance(baseline_parameterization, str)
                                       else [bool(v) for v in bform]) if baseline == "exchangeable" else None),
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
    if chosen is not None:
        config["parameterization_chosen"] = chosen
    if bchosen is not None:
        config["baseline_parameterization_chosen"] = bchosen
    first = model
    posterior, stats, used, diag, final, model, log_density = sample_core(
        model, design, priors, form=form, auto=parameterization == "auto", common_effect=common_effect,
        baseline_parameterization=bform, settings=settings, seed=seed, backend=used,
        progressbar=progressbar, retry=retry, gate=gate,
        baseline_auto=isinstance(baseline_parameterization, str) and baseline_parameterization == "auto")
    if log_density:
        config["sampler"]["log_density"] = log_density
    config["sampler"]["retry"] = bool(retry)
    record_retries(config, diag, final, posterior)
    if model is not first:  # the structural retry's forms
        if chosen is not None:
            chosen["form_final"] = FALLBACK_FORMS[0]
        if bchosen is not None:
            bchosen["form_final"] = FALLBACK_FORMS[1]
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
    if not diag.passed:
        warnings.warn(
            f"{outcome}: diagnostics gate failed (status 'failed_gate'): " + "; ".join(diag.problems),
            UserWarning,
            stacklevel=2,
        )
    result = FitResult(idata=idata, design=design, diagnostics=diag, config=config, seed=seed, backend=used)
    add_exports(result)
    return result
