"""Ordinal renal response: complete (CR) / partial (PR) / no response (NR) in one model.

Every study is used for whatever it reports, in one likelihood:

* all three categories (CR and PR, or CR or PR together with CR-or-PR): multinomial;
* CR only (Mok 2016): binomial on P(CR);
* CR-or-PR only (Amudalapalli 2025, Deng 2017): binomial on P(CR or PR);
* PR only: binomial on P(PR).

Link: sequential (continuation-ratio) logit, the default
----------------------------------------------------------
Clinically a complete response is a partial response that also meets the stricter
criteria (proteinuria below 0.3-0.5 g/day, normal creatinine), so the categories arise in
sequence: a patient first responds (CR or PR vs NR), and a responder then reaches CR or
stays at PR. The sequential logit models exactly these two steps::

    P(CR or PR)_ij       = inv_logit(theta_ij1)                      step 1, "response"
    P(CR | CR or PR)_ij  = inv_logit(theta_ij2)                      step 2, "complete | response"
    theta_ijs            = alpha_is + t_ij * delta_is + A_ij . beta_s

    P(CR) = P(CR or PR) * P(CR | CR or PR),  P(PR) = P(CR or PR) * (1 - P(CR | CR or PR))

(Agresti 2010, *Analysis of Ordinal Categorical Data*, 2nd ed., ch. 4, continuation-ratio
logits; Tutz 1991; Bürkner & Vuorre 2019, AMPPS 2:77, "sequential models"). Why it is the
default here:

1. **Coherent by construction, for any effects.** P(CR) is a product of P(CR or PR) and a
   probability, so P(CR) <= P(CR or PR) in every posterior draw, for every arm and every
   target — also with step-specific ("cut-point-specific") treatment effects, which in a
   cumulative logit model can cross and give negative category probabilities (Bürkner &
   Vuorre 2019, §"category-specific effects"). No ordering constraint is needed, so the
   study baselines ``alpha_i1``, ``alpha_i2`` are unconstrained, which suits NUTS.
2. **Exact likelihood factorisation.** The multinomial (CR, PR, NR | n) equals
   Binomial(CR + PR | n, P(resp)) x Binomial(CR | CR + PR, P(CR | resp)), so full-data,
   total-only and CR-only studies all enter the same two linear predictors.
3. With a shared effect (``cutpoint_specific=False``) ``delta`` is one log odds ratio
   acting on both steps, the continuation-ratio analogue of proportional odds; with
   ``cutpoint_specific=True`` each step has its own pooled log-OR ``d[stage]`` and its own
   between-study SD.

``link="cumulative"`` is also available: ``logit P(>= PR) = a_i + e_ij`` and
``logit P(CR) = a_i - g_ij + e_ij`` with a positive gap ``g_ij = exp(kappa_i)`` (ordered
cut-points by construction). With a shared effect this is the proportional-odds model.
Cut-point-specific effects under the cumulative link act on the log of the gap
(``g_ij = exp(kappa_i + t_ij * psi + A_ij . psi_beta)``), which keeps the cut-points
ordered in every arm; ``psi`` is then the log ratio of the gaps (treated vs control), not a
log odds ratio.

Study baselines ("cut-points"): independent ``alpha_is ~ Normal(0, 2.5)`` by default (each
study its own baseline, only relative effects pooled), or exchangeable
``alpha_is ~ Normal(m_s, sigma_mu_s)`` (non-centred). Treatment effects are random:
``delta_is ~ Normal(d_s, tau_s)``, each study's effect non-centred (``delta_is = d_s + tau_s *
z_is``, sampled as ``z``) or centred (sampled as ``delta``; a mix samples ``delta_raw`` with
the flags ``centered_study``, as the core model does), chosen per study from the data by
``parameterization="auto"`` (the default of :func:`fit_ordinal`: :func:`choose_ordinal`); ``z``
is always a posterior variable. The arms of a multi-arm trial share the
study baseline; comparators are told apart by ``comparator:<c>`` indicators (entering the
control arms with a minus sign, as in :mod:`bayesln.hierarchy.design`), the TAC regimen
by ``regimen:triple`` and the phase by ``phase:maintenance`` (both on the treated arms).

Phase: induction and maintenance trials are kept apart by default (``phases`` selects
induction). ``phase_effect=True`` fits both phases together with a maintenance indicator
on the treatment effect (``phase:maintenance``; with exchangeable baselines also on the
baseline).

Targets: P(CR), P(PR), P(NR) and P(CR or PR) for each treatment (TAC duo, TAC triple and
each comparator, as the data allow) at a *reference baseline*: the typical study ``m_s``
(exchangeable baselines) or, with independent baselines, the mean of ``alpha_is`` over the
studies that report all three categories (the reference-comparator log-odds of a study
drawn from the included ones). The reference baseline can also be fixed by
``reference_baseline={"complete_response": p, "total_response": q}`` (probabilities on the
reference comparator).

This module also holds the small machinery shared by the three model families built on the
core (:mod:`.ordinal`, :mod:`.joint`, :mod:`.network`): reading a long table, phase/design
selection with reasons, :class:`FamilyFitResult` (a :class:`FitResult` subclass) and
:func:`sample_family` (sampling via :func:`bayesln.hierarchy.sampling.sample_model`, the
diagnostics gate :func:`bayesln.hierarchy.diagnostics.run_gate`, InferenceData assembly).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pydantic import field_validator

from bayesln import _arviz, vocab
from bayesln.hierarchy.diagnostics import GateThresholds, run_gate
from bayesln.hierarchy.fit import bayesln_version
from bayesln.hierarchy.priors import Prior, Priors, normal, resolve_tau_prior
from bayesln.hierarchy.result import FitResult, interval_columns
from bayesln.hierarchy.retry import record_retries, sample_gated
from bayesln.hierarchy.sampling import SamplerSettings, check_seed, resolve_backend, sample_model

__all__ = [
    "FamilyFitResult",
    "OrdinalDesign",
    "OrdinalPriors",
    "OrdinalResult",
    "build_ordinal_design",
    "build_ordinal_model",
    "fit_ordinal",
    "label_of",
]

LINKS = ("sequential", "cumulative")
STAGES = {"sequential": ("response", "complete_given_response"), "cumulative": ("total", "complete")}
RESPONSE_OUTCOMES = ("complete_response", "partial_response", "total_response")
DEFAULT = object()

# ============================================================================ shared machinery
#: display names of network nodes / treatments
LABELS = {
    "tac": "TAC",
    "tac_duo": "TAC duo",
    "tac_triple": "TAC triple",
    "ivcy": "IVCY",
    "mmf": "MMF",
    "aza": "AZA",
    "placebo": "placebo",
    "msc": "MSC",
    "cyclosporine": "ciclosporin",
    "voclosporin": "voclosporin",
    "rituximab": "rituximab",
    "belimumab": "belimumab",
    "standard_care": "standard care",
}


def label_of(name: str) -> str:
    """Clinical display name of a treatment / node (``tac_duo`` -> ``TAC duo``)."""
    return LABELS.get(str(name), str(name))


def _as_names(x) -> tuple[str, ...]:
    if x is None:
        return ()
    if isinstance(x, str):
        return tuple(s.strip() for s in x.split(",") if s.strip())
    return tuple(str(s) for s in x)


def long_table(data) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """A long table (one row per study x arm x outcome, unknown counts kept as NA) with
    columns study, arm, treatment, regimen, node, phase, design, outcome, events, n; the
    arm table (every arm, also those without counts); and a data fingerprint. ``data`` is a TrialData or a DataFrame with at least study,
    treatment, outcome, events, n (arm defaults to treatment; node to the treatment
    node rule of :func:`bayesln.vocab.treatment_node`)."""
    if hasattr(data, "outcomes") and hasattr(data, "arms") and not isinstance(data, pd.DataFrame):
        out = data.outcomes.merge(
            data.arms[["study", "arm", "treatment", "regimen", "node"]], on=["study", "arm"], how="left"
        )
        st = data.studies[["design", "phase"]]
        out = out.merge(st, left_on="study", right_index=True, how="left")
        fp = data.fingerprint() if hasattr(data, "fingerprint") else ""
        arms = data.arms[["study", "arm", "treatment", "regimen", "node"]].copy()
        arms = arms.merge(st, left_on="study", right_index=True, how="left")
    elif isinstance(data, pd.DataFrame):
        out = data.copy()
        need = {"study", "treatment", "outcome", "events", "n"}
        missing = need - set(out.columns)
        if missing:
            raise ValueError(
                f"data lacks column(s) {', '.join(sorted(missing))}; a long table needs study, arm, treatment, "
                "outcome, events, n (optional: regimen, node, phase, design)"
            )
        if "arm" not in out.columns:
            out["arm"] = out["treatment"]
        for c in ("regimen", "phase", "design"):
            if c not in out.columns:
                out[c] = pd.NA
        if "node" not in out.columns:
            out["node"] = [
                vocab.treatment_node(str(t), None if pd.isna(r) else str(r)) for t, r in zip(out["treatment"], out["regimen"])
            ]
        text = out.sort_values(["study", "arm", "outcome"]).to_csv(index=False)
        import hashlib

        fp = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        arms = out[["study", "arm", "treatment", "regimen", "node", "design", "phase"]].drop_duplicates(["study", "arm"])
    else:
        raise TypeError(f"data must be a TrialData or a pandas DataFrame, not {type(data).__name__}")
    cols = ["study", "arm", "treatment", "regimen", "node", "phase", "design", "outcome", "events", "n"]
    out = out[cols].reset_index(drop=True)
    for c in ("study", "arm", "treatment", "node", "outcome"):
        out[c] = out[c].astype(str)
    arms = arms.reset_index(drop=True)
    arms["study"] = arms["study"].astype(str)
    return out, arms, fp


def select_phase_design(long: pd.DataFrame, phases, designs) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rows of the selected phases / designs and the reason every other study is out."""
    excluded: dict[str, str] = {}
    keep = pd.Series(True, index=long.index)
    st = long.groupby("study", sort=False)[["phase", "design"]].first()
    for col, allowed, word in (("phase", _as_names(phases), "phase"), ("design", _as_names(designs), "design")):
        if not allowed:
            continue
        vals = st[col]
        if vals.isna().all():
            continue  # no phase / design information at all (user data): nothing to select on
        bad = [s for s, v in vals.items() if (pd.isna(v) or str(v) not in allowed)]
        for s in bad:
            v = vals[s]
            excluded.setdefault(
                s, f"{word} {'unknown' if pd.isna(v) else v} not selected ({word}s={', '.join(allowed)})"
            )
        keep &= ~long["study"].isin(bad)
    return long[keep].reset_index(drop=True), excluded


@dataclass
class FamilyDesign:
    """What every ordinal / joint / network design carries (for :class:`FamilyFitResult`)."""

    family: str
    outcome: str
    direction: str
    baseline: str
    study_ids: list[str]
    arm_ids: list[str]
    usage: pd.DataFrame
    fingerprint: str

    @property
    def n_studies(self) -> int:
        return len(self.study_ids)

    @property
    def n_arms(self) -> int:
        return len(self.arm_ids)


# ----------------------------------------------------------------------------- priors helpers
def location_rv(name: str, prior: Prior, dims=None, shape=None):
    p = prior.params
    if prior.dist == "normal":
        return pm.Normal(name, mu=p["mu"], sigma=p["sigma"], dims=dims, shape=shape)
    if prior.dist == "student_t":
        return pm.StudentT(name, nu=p["nu"], mu=p["mu"], sigma=p["sigma"], dims=dims, shape=shape)
    raise ValueError(f"{name}: {prior} is not a location prior (normal or student_t)")


def scale_dist(priors: Sequence[Prior], name: str = "scale"):
    """An unregistered positive distribution of shape ``len(priors)`` (for
    ``pm.LKJCholeskyCov(sd_dist=...)`` or vector scales). All elements must share the
    family; their parameters may differ (e.g. Turner priors per outcome)."""
    dists = {p.dist for p in priors}
    if len(dists) != 1:
        raise ValueError(f"{name}: all elements need the same prior family, got {sorted(dists)}")
    dist = dists.pop()
    k = len(priors)

    def par(key):
        return np.array([float(p.params[key]) for p in priors])

    if dist == "half_normal":
        return pm.HalfNormal.dist(sigma=par("scale"), shape=k)
    if dist == "half_cauchy":
        return pm.HalfCauchy.dist(beta=par("scale"), shape=k)
    if dist == "half_student_t":
        return pm.HalfStudentT.dist(nu=par("nu"), sigma=par("scale"), shape=k)
    if dist == "exponential":
        return pm.Exponential.dist(lam=par("rate"), shape=k)
    if dist == "uniform":
        return pm.Uniform.dist(lower=par("lower"), upper=par("upper"), shape=k)
    if dist == "lognormal_tau2":
        return pm.LogNormal.dist(mu=par("mu") / 2.0, sigma=par("sigma") / 2.0, shape=k)
    raise ValueError(f"{name}: {dist} is not a scale prior")


def scale_rv(name: str, prior: Prior, dims=None, shape=None):
    """A registered scale (``tau``, ``sigma_mu``) with any supported scale prior."""
    p = prior.params
    if prior.dist == "half_normal":
        return pm.HalfNormal(name, sigma=p["scale"], dims=dims, shape=shape)
    if prior.dist == "half_cauchy":
        return pm.HalfCauchy(name, beta=p["scale"], dims=dims, shape=shape)
    if prior.dist == "half_student_t":
        return pm.HalfStudentT(name, nu=p["nu"], sigma=p["scale"], dims=dims, shape=shape)
    if prior.dist == "exponential":
        return pm.Exponential(name, lam=p["rate"], dims=dims, shape=shape)
    if prior.dist == "uniform":
        return pm.Uniform(name, lower=p["lower"], upper=p["upper"], dims=dims, shape=shape)
    if prior.dist == "lognormal_tau2":
        return pm.LogNormal(name, mu=p["mu"] / 2.0, sigma=p["sigma"] / 2.0, dims=dims, shape=shape)
    raise ValueError(f"{name}: {prior} is not a scale prior")


#: values of a family's ``parameterization`` (besides per-study flags)
PARAMETERIZATIONS = ("auto", "noncentered", "centered")


def family_form(parameterization, choose: Callable[[], tuple], *, random_effects: bool = True):
    """``(form, record)`` of a family's ``parameterization``: ``"auto"`` becomes the data's
    choice ``choose()`` (one form, or per-study flags, and the record of the choice for the
    run's config); ``"noncentered"`` / ``"centered"`` and flags are returned as given (record
    None). Without random effects there is nothing to parameterise."""
    if isinstance(parameterization, str):
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {', '.join(PARAMETERIZATIONS)} or per-study flags, "
                             f"not {parameterization!r}")
        if parameterization == "auto":
            return choose() if random_effects else ("noncentered", None)
        return parameterization, None
    return tuple(tuple(v) if isinstance(v, (list, tuple, np.ndarray)) else v for v in parameterization), None


def effect_mask(form, shape) -> np.ndarray:
    """Boolean centring flags of the given ``shape`` (study[, stage]) for a resolved form."""
    if isinstance(form, str):
        if form not in ("noncentered", "centered"):
            raise ValueError(f"parameterization must be 'noncentered', 'centered' or flags, not {form!r}")
        return np.full(shape, form == "centered")
    mask = np.asarray(form)
    if mask.shape != tuple(np.atleast_1d(shape)) or not np.isin(mask, (0, 1)).all():
        raise ValueError(f"parameterization flags must be 0/1 of shape {tuple(np.atleast_1d(shape))}, got {mask.tolist()}")
    return mask.astype(bool)


def record_forms(config: dict, **forms) -> bool:
    """Write the study-effect / baseline forms of a family fit into its ``config``:
    ``forms`` maps a key (``parameterization``, ``baseline_parameterization``) to ``(asked,
    resolved form, record of the data's choice or None)``; ``config[key]`` says what was
    asked (the string, or the flags as lists) and ``config[key + "_chosen"]`` the data's
    choice. Returns True when a data-driven choice centred something: the structural retry
    then has the all-non-centred model to fall back to."""
    fallback = False
    for key, (asked, form, chosen) in forms.items():
        config[key] = asked if isinstance(asked, str) else np.asarray(form).astype(bool).tolist()
        if chosen is not None:
            config[f"{key}_chosen"] = chosen
            fallback = fallback or form != "noncentered"
    return fallback


#: names of (the standardised variable, the centred free variable, the mixed free variable,
#: the flags) of study effects and of exchangeable baselines in the families' models
EFFECT_NAMES = ("z", "delta", "delta_raw", "centered_study")
BASELINE_NAMES = ("alpha_raw", "alpha_centered", "alpha_mixed", "centered_baseline")


def normal_effects(d, tau, mask: np.ndarray, dims, names: tuple[str, str, str, str] = EFFECT_NAMES):
    """Random effects ``delta ~ Normal(d, tau)`` (d, tau broadcast to ``mask``'s shape) in
    the form the flags say: all non-centred (``z`` sampled, as before the choice existed),
    all centred (``delta`` sampled) or mixed (``delta_raw`` with the data flags
    ``centered_study``; the core model's construction). ``z = (delta - d) / tau`` is a
    posterior variable in every form. Returns delta. ``names`` renames the four (for
    exchangeable baselines: ``alpha_raw`` / ``mu_raw`` stay the standardised baselines)."""
    from bayesln.hierarchy.parameterize import mask_kind

    std, centred, mixed, flags = names
    kind = mask_kind(mask.ravel().tolist())
    if kind == "noncentered":
        z = pm.Normal(std, 0.0, 1.0, dims=dims)
        return d + tau * z
    if kind == "centered":
        delta = pm.Normal(centred, mu=d * np.ones(mask.shape), sigma=tau * np.ones(mask.shape), dims=dims)
    else:
        lam = pm.Data(flags, mask.astype(float), dims=dims)
        raw = pm.Normal(mixed, mu=lam * d, sigma=tau**lam, dims=dims)
        delta = d + tau ** (1.0 - lam) * (raw - lam * d)
    pm.Deterministic(std, (delta - d) / tau, dims=dims)
    return delta


def mvn_chol(name: str, loc, chol, shape: tuple[int, int]):
    """Rows ``x_i ~ MVN(loc_i, chol chol')`` (``shape`` = (rows, k); ``loc`` broadcasts to it;
    one lower-triangular (k, k)
    ``chol`` for every row), the centred form of correlated study effects, written as its
    chain of conditional normals: free variables ``<name>_k<j>`` with

        x_ij ~ Normal(loc_ij + sum_{m<j} chol_jm w_im, chol_jj),   w_ij = (x_ij - mean_ij) / chol_jj

    whose joint density is the multivariate normal's (tests/test_family_parameterization.py
    checks the log density against the Jacobian of ``x = loc + chol w``). Elementwise
    operations only: pm.MvNormal's Cholesky solve made nutpie's Numba compilation of a
    10-study joint model take 60 s instead of 12. Returns (x, w), each (rows, k): the effects
    and their whitened values."""
    xs, ws = [], []
    n, k = shape
    for j in range(k):
        mean = loc[:, j]
        for m in range(j):
            mean = mean + chol[j, m] * ws[m]
        x = pm.Normal(f"{name}_k{j}", mu=mean, sigma=chol[j, j], shape=n)
        xs.append(x)
        ws.append((x - mean) / chol[j, j])
    return pt.stack(xs, axis=1), pt.stack(ws, axis=1)


def coerce_priors(priors, cls):
    if priors is None:
        return cls()
    if isinstance(priors, cls):
        return priors
    if isinstance(priors, Priors):
        return cls(**priors.model_dump())
    return cls.model_validate(dict(priors))


# ----------------------------------------------------------------------------- result
def _stats(x: np.ndarray, ci: float) -> dict:
    lo, hi = interval_columns(ci)
    x = np.asarray(x, dtype=float)
    ql, qm, qh = np.quantile(x, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
    return {"median": qm, lo: ql, hi: qh, "mean": float(np.mean(x)), "sd": float(np.std(x, ddof=1))}


class SummaryRows:
    """Collects summary rows in the column layout of :meth:`FitResult.summary`."""

    def __init__(self, ci: float):
        self.ci = ci
        self.lo, self.hi = interval_columns(ci)
        self.rows: list[dict] = []

    def add(self, quantity: str, parameter: str, x, note: str = "", **extra):
        self.rows.append({"quantity": quantity, "parameter": parameter, **_stats(x, self.ci), "note": note, **extra})

    def prob(self, quantity: str, parameter: str, p: float, note: str = "", **extra):
        self.rows.append(
            {"quantity": quantity, "parameter": parameter, "median": np.nan, self.lo: np.nan, self.hi: np.nan,
             "mean": float(p), "sd": np.nan, "note": note, **extra}
        )

    def frame(self, extra_cols: Sequence[str] = ()) -> pd.DataFrame:
        out = pd.DataFrame(self.rows)
        dup = out["quantity"][out["quantity"].duplicated()].tolist()
        if dup:  # pragma: no cover - programming error
            raise RuntimeError(f"duplicate summary quantities: {dup}")
        out = out.set_index("quantity")
        out["ci_level"] = self.ci
        cols = ["parameter", "median", self.lo, self.hi, "mean", "sd", "ci_level", "note", *extra_cols]
        for c in extra_cols:
            if c not in out.columns:
                out[c] = pd.NA
        return out[cols]


@dataclass(repr=False)
class FamilyFitResult(FitResult):
    """A :class:`~bayesln.hierarchy.result.FitResult` of the ordinal, joint or network
    family. Same attributes (``idata``, ``diagnostics``, ``status``,
    ``config``, ``seed``, ``backend``, ``usage``, ``summary()``, ``loo()``,
    ``to_dict()``, ``to_netcdf()``); ``design`` is the family's own design object."""

    def __repr__(self) -> str:
        inc = int(self.usage["included"].sum()) if "included" in self.usage else len(self.usage)
        return (
            f"<{type(self).__name__} {self.outcome}: {inc} studies, {self.design.n_arms} arms, "
            f"status={self.status}, backend={self.backend}, seed={self.seed}>"
        )

    @property
    def common_effect(self) -> bool:
        return bool(self.config.get("common_effect", False))

    def contrast_draws(self):  # pragma: no cover - not meaningful for these families
        raise NotImplementedError(f"{type(self).__name__} has no single treated-vs-control contrast per study")

    def study_effects(self, ci: float = 0.95):  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__}: see summary()")


# ----------------------------------------------------------------------------- sampling
def _quiet_pymc():
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    return logger, level


def sample_family(
    model: pm.Model,
    *,
    design: FamilyDesign,
    config: dict,
    seed: int,
    settings: SamplerSettings,
    backend: str,
    progressbar: bool | None,
    gate: GateThresholds,
    loglik_rows: Mapping[str, np.ndarray],
    gate_vars: Sequence[str] | None = None,
    prior_predictive: bool = True,
    prior_draws: int = 500,
    posterior_predictive: bool = True,
    constant_data: xr.Dataset | None = None,
    compiled=None,
    label: str = "",
    retry: bool = True,
    alternative: Callable[[], pm.Model] | None = None,
):
    """NUTS via :func:`~bayesln.hierarchy.sampling.sample_model`, then the log-likelihood
    per study (``study_loglik``: the sum over the study's observed elements, for
    leave-one-study-out LOO), posterior / prior predictive draws, observed data, the
    diagnostics gate on ``gate_vars`` and one InferenceData.

    ``loglik_rows`` maps each observed variable to the study index of its elements.
    ``alternative``: builds the same model with every study effect (and exchangeable
    baseline) non-centred, which the
    structural retry samples instead (:mod:`bayesln.hierarchy.retry`) when the data-driven
    choice (``parameterization="auto"``) centred some study; ``config["parameterization_chosen"]
    ["form_final"]`` then records it. Returns (idata, diagnostics, backend used)."""
    models = {False: model}

    def sample(settings, seed, alt):
        if alt and alt not in models:
            models[alt] = alternative()
        return sample_model(models[alt], settings=settings, seed=seed, backend=backend, progressbar=progressbar,
                            compiled=None if alt else compiled)

    def gate_of(posterior, stats):
        gated = posterior if gate_vars is None else posterior[[v for v in gate_vars if v in posterior]]
        return run_gate(gated, stats, gate, warn=False)

    posterior, stats, used, diag, final, alt = sample_gated(
        sample, gate_of, settings=settings, seed=seed, retry=retry,
        alternative=(lambda: "every study effect and baseline non-centred") if alternative is not None else None)
    model = models[alt]
    for key in ("parameterization_chosen", "baseline_parameterization_chosen"):
        if alt and isinstance(config.get(key), dict):
            config[key]["form_final"] = "noncentered"
    record_retries(config, diag, final, posterior)
    base = _arviz.make_inference_data({"posterior": posterior})
    logger, level = _quiet_pymc()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            ll = pm.compute_log_likelihood(
                base, var_names=list(loglik_rows), extend_inferencedata=False, model=model, progressbar=False
            )
            ll = _arviz.group(ll, "log_likelihood") if _arviz.is_inference_data(ll) else ll
            ppc = prior = prior_pred = None
            if posterior_predictive:
                pp = pm.sample_posterior_predictive(
                    base, model=model, random_seed=seed, progressbar=False, extend_inferencedata=False,
                    var_names=list(loglik_rows),
                )
                ppc = _arviz.group(pp, "posterior_predictive")
            if prior_predictive:
                with model:
                    pr = pm.sample_prior_predictive(draws=prior_draws, random_seed=seed,
                                                    compile_kwargs={"mode": "FAST_COMPILE"})  # as fit_core
                prior = _arviz.drop_variables(pr.prior, [v for v in pr.prior.data_vars if str(v).endswith("__")])
                prior_pred = pr.prior_predictive
    finally:
        logger.setLevel(level)
    n_s = design.n_studies
    total = None
    for var, study_idx in loglik_rows.items():
        arr = np.asarray(ll[var].values, dtype=float)
        arr = arr.reshape(arr.shape[:2] + (-1,))
        onehot = np.zeros((arr.shape[-1], n_s))
        onehot[np.arange(arr.shape[-1]), np.asarray(study_idx)] = 1.0
        part = arr @ onehot
        total = part if total is None else total + part
    cd = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    log_lik = xr.Dataset({"study_loglik": (("chain", "draw", "study"), total)}, coords={**cd, "study": design.study_ids})
    observed = xr.Dataset(
        {v: (model.named_vars_to_dims[v], np.asarray(pm.draw(model.rvs_to_values[model[v]])))
         for v in loglik_rows},
        coords={k: list(v) for k, v in model.coords.items() if any(k in model.named_vars_to_dims.get(x, ()) for x in loglik_rows)},
    )
    attrs = {
        "bayesln_version": bayesln_version(),
        "model_config": json.dumps(config, sort_keys=True, default=str),
        "data_fingerprint": design.fingerprint,
        "seed": int(seed),
        "backend": used,
        "outcome": design.outcome,
        "family": design.family,
        "inference_library": "pymc",
    }
    groups = {
        "posterior": posterior.assign_attrs(**attrs),
        "sample_stats": stats,
        "log_likelihood": log_lik,
        "posterior_predictive": ppc,
        "prior": prior.assign_attrs(**attrs) if prior is not None else None,
        "prior_predictive": prior_pred,
        "observed_data": observed,
        "constant_data": constant_data,
    }
    idata = _arviz.make_inference_data(groups, attrs=attrs)
    if not diag.passed:
        warnings.warn(
            f"{label or design.outcome}: diagnostics gate failed (status 'failed_gate'): " + "; ".join(diag.problems),
            UserWarning,
            stacklevel=3,
        )
    return idata, diag, used


def sampler_config(backend, used, settings: SamplerSettings, seed: int) -> dict:
    return {
        "backend_requested": backend,
        "backend": used,
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": settings.chains,
        "target_accept": settings.target_accept,
        "seed": seed,
    }


# ============================================================================ ordinal design
class OrdinalPriors(Priors):
    """:class:`~bayesln.hierarchy.priors.Priors` plus the cumulative-link priors:
    ``gap`` (log gap between the two cut-points of a study, independent baselines;
    with exchangeable baselines its mean) and ``psi`` (cut-point-specific effects on the
    log gap). With the sequential link ``baseline``, ``m`` and ``sigma_mu`` apply to both
    steps, ``d``, ``tau`` and ``beta`` to each step."""

    gap: Prior = normal(0.0, 1.0)
    psi: Prior = normal(0.0, 1.0)

    @field_validator("gap", "psi", mode="before")
    @classmethod
    def _parse_extra(cls, v):
        return Prior.parse(v) if isinstance(v, (str, dict)) else v


@dataclass
class OrdinalDesign(FamilyDesign):
    """Arrays of the ordinal model. ``rows`` are binomial likelihood rows with ``kind``:
    0 = CR-or-PR out of n, 1 = CR out of CR-or-PR, 2 = CR out of n, 3 = PR out of n."""

    link: str = "sequential"
    cutpoint_specific: bool = False
    arms: pd.DataFrame = field(default_factory=pd.DataFrame)
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    arm_study: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    treated: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    A: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    effect_names: list[str] = field(default_factory=list)
    dropped_modifiers: dict[str, str] = field(default_factory=dict)
    targets: pd.DataFrame = field(default_factory=pd.DataFrame)
    target_A: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    reference_studies: dict[str, list[int]] = field(default_factory=dict)
    reference_comparator: str | None = None
    baseline_phase: np.ndarray = field(default_factory=lambda: np.zeros(0))
    phases: tuple[str, ...] = ()

    @property
    def stages(self) -> tuple[str, str]:
        return STAGES[self.link]

    def summary_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "link": self.link,
            "cutpoint_specific": self.cutpoint_specific,
            "baseline": self.baseline,
            "n_studies": self.n_studies,
            "n_arms": self.n_arms,
            "n_rows": int(len(self.rows)),
            "effect_modifiers": list(self.effect_names),
            "dropped_modifiers": dict(self.dropped_modifiers),
            "reference_comparator": self.reference_comparator,
            "phases": list(self.phases),
            "targets": self.targets["target"].tolist(),
        }


def _arm_pattern(sub: pd.DataFrame) -> dict:
    """Counts of one arm: CR, PR, total with their n (NA = unknown)."""
    got = {}
    for o in RESPONSE_OUTCOMES:
        r = sub[sub["outcome"] == o]
        if len(r) and pd.notna(r["events"].iloc[0]) and pd.notna(r["n"].iloc[0]):
            got[o] = (int(r["events"].iloc[0]), int(r["n"].iloc[0]))
    return got


def _resolve_arm(study: str, arm: str, got: dict) -> tuple[str, dict]:
    """The arm's data pattern and counts: ``full`` (cr, pr, n), ``cr_only``,
    ``total_only``, ``pr_only`` or ``none``."""
    ns = {v[1] for v in got.values()}
    if len(ns) > 1:
        raise ValueError(
            f"{study}:{arm}: response counts on different denominators {sorted(ns)} "
            f"({', '.join(f'{k} {v[0]}/{v[1]}' for k, v in got.items())}); give one denominator"
        )
    if not got:
        return "none", {}
    n = ns.pop()
    cr = got.get("complete_response", (None,))[0]
    pr = got.get("partial_response", (None,))[0]
    tot = got.get("total_response", (None,))[0]
    known = sum(x is not None for x in (cr, pr, tot))
    if known >= 2:
        if cr is None:
            cr = tot - pr
        if pr is None:
            pr = tot - cr
        if tot is None:
            tot = cr + pr
        if cr < 0 or pr < 0 or cr + pr != tot or tot > n:
            raise ValueError(
                f"{study}:{arm}: inconsistent response counts CR {cr}, PR {pr}, CR-or-PR {tot} of {n} "
                "(need CR + PR = CR-or-PR <= n)"
            )
        return "full", {"cr": cr, "pr": pr, "total": tot, "n": n}
    if cr is not None:
        return "cr_only", {"cr": cr, "n": n}
    if tot is not None:
        return "total_only", {"total": tot, "n": n}
    return "pr_only", {"pr": pr, "n": n}


PATTERN_TEXT = {
    "full": "CR/PR/NR (multinomial)",
    "cr_only": "CR only (binomial on P(CR))",
    "total_only": "CR-or-PR only (binomial on P(CR or PR))",
    "pr_only": "PR only (binomial on P(PR))",
}


def build_ordinal_design(
    data,
    *,
    treat: str | Iterable[str] = ("tac",),
    link: str = "sequential",
    cutpoint_specific: bool = False,
    baseline: str = "independent",
    effect_modifiers=None,
    phases=DEFAULT,
    designs=None,
    phase_effect: bool = False,
) -> OrdinalDesign:
    """The :class:`OrdinalDesign` (no PyMC): which arms enter with which data pattern,
    effect-modifier columns, targets and the usage table."""
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, not {link!r}")
    if baseline not in ("independent", "exchangeable"):
        raise ValueError(f"baseline must be 'independent' or 'exchangeable', not {baseline!r}")
    treat = _as_names(treat)
    if not treat:
        raise ValueError("treat must name at least one treatment (e.g. ('tac',))")
    if phases is DEFAULT:
        phases = ("induction", "maintenance") if phase_effect else ("induction",)
    phases = _as_names(phases)
    long, all_arms, fp = long_table(data)
    all_studies = list(dict.fromkeys(all_arms["study"]))
    long = long[long["outcome"].isin(RESPONSE_OUTCOMES)]
    long, excluded = select_phase_design(long, phases, designs)

    # ---------------------------------------------------------------- arms and patterns
    arm_rows = []
    for (s, a), sub in long.groupby(["study", "arm"], sort=False):
        pat, counts = _resolve_arm(s, a, _arm_pattern(sub))
        first = sub.iloc[0]
        is_t = first["treatment"] in treat or first["node"] in treat
        arm_rows.append(
            {"study": s, "arm": a, "treatment": first["treatment"], "regimen": first["regimen"], "node": first["node"],
             "phase": first["phase"], "design": first["design"], "treated": bool(is_t), "pattern": pat, **counts}
        )
    arms = pd.DataFrame(arm_rows)
    if arms.empty:
        raise ValueError("no arm reports complete, partial or total renal response in the selected studies")
    usage: dict[str, dict] = {}
    studies = list(dict.fromkeys(arms["study"]))
    ok: dict[str, bool] = {}
    for s in studies:
        sub = arms[arms["study"] == s]
        have = sub[sub["pattern"] != "none"]
        nt, nc = int(have["treated"].sum()), int((~have["treated"]).sum())
        notes = []
        inc = True
        if len(have) == 0:
            inc, notes = False, ["excluded: no renal-response counts"]
        elif nt >= 1 and nc >= 1:
            pass
        elif baseline == "independent":
            inc = False
            if len(have) == 1:
                notes.append("excluded: single-arm study needs exchangeable baselines")
            elif nt == 0:
                notes.append(f"excluded: no {'/'.join(treat)} arm (needs exchangeable baselines)")
            else:
                notes.append("excluded: no control arm with counts (needs exchangeable baselines)")
        elif nt == 0 and (have["regimen"].astype("string") == "other").fillna(False).any():
            inc = False
            notes.append(f"excluded: no {'/'.join(treat)} arm (another experimental treatment)")
        ok[s] = inc
        pats = [f"{r['arm']} ({label_of(r['node'])}): {PATTERN_TEXT[r['pattern']]}" for _, r in have.iterrows()]
        for _, r in sub[sub["pattern"] == "none"].iterrows():
            notes.append(f"arm {r['arm']} not used: no response counts")
        usage[s] = {"study": s, "included": inc, "phase": sub["phase"].iloc[0], "data": "; ".join(pats), "notes": notes}
    for s, reason in excluded.items():
        usage.setdefault(s, {"study": s, "included": False, "phase": None, "data": "", "notes": []})["notes"].insert(0, f"excluded: {reason}")
    for s in all_studies:
        if s not in usage:
            usage[s] = {"study": s, "included": False, "phase": None, "data": "", "notes": ["excluded: no renal-response counts reported"]}
    st_phase = all_arms.groupby("study", sort=False)["phase"].first()
    for s, u in usage.items():
        if u["phase"] is None or pd.isna(u["phase"]):
            u["phase"] = st_phase.get(s, pd.NA)
    in_model = [s for s in studies if ok[s]]
    if not in_model:
        raise ValueError("no study can enter the ordinal model (independent baselines need a treated and a control arm with counts)")
    arms = arms[arms["study"].isin(in_model) & (arms["pattern"] != "none")].reset_index(drop=True)
    study_index = {s: i for i, s in enumerate(in_model)}
    arm_study = arms["study"].map(study_index).to_numpy(np.int64)
    treated = arms["treated"].to_numpy(bool)

    # ---------------------------------------------------------------- effect modifiers
    ctrl = arms[~treated]
    comparators = sorted(set(ctrl["treatment"]))
    t_reg = arms.loc[treated, "regimen"].astype("string")
    regimens = sorted(set(t_reg.dropna()))
    study_phase = arms.groupby("study", sort=False)["phase"].first()
    phase_vals = sorted(set(study_phase.dropna().astype(str)))
    auto = effect_modifiers is None
    mods = list(_as_names(effect_modifiers)) if not auto else ["regimen", "comparator"]
    if phase_effect and "phase" not in mods:
        mods.append("phase")
    dropped: dict[str, str] = {}
    allowed = ("regimen", "comparator", "phase")
    bad = [m for m in mods if m not in allowed]
    if bad:
        raise ValueError(f"unknown effect modifier(s) {bad}; the ordinal model knows {allowed}")
    cols, names = [], []
    ref_comp = None
    if "comparator" in mods:
        if len(comparators) < 2:
            msg = f"constant: every control arm is {comparators[0] if comparators else '(none)'}"
            if auto:
                dropped["comparator"] = msg
            else:
                raise ValueError(f"effect modifier 'comparator' is {msg}; it cannot be estimated")
        else:
            counts = ctrl.groupby("treatment")["study"].nunique()
            ref_comp = sorted(comparators, key=lambda c: (-counts[c], c))[0]
            for c in comparators:
                if c == ref_comp:
                    continue
                cols.append(np.where((~treated) & (arms["treatment"] == c).to_numpy(), -1.0, 0.0))
                names.append(f"comparator:{c}")
    if ref_comp is None and len(comparators) == 1:
        ref_comp = comparators[0]
    if "regimen" in mods:
        if not {"duo", "triple"} <= set(regimens):
            msg = f"constant: every treated arm is {', '.join(regimens) or 'of unknown regimen'}"
            if auto:
                dropped["regimen"] = msg
            else:
                raise ValueError(f"effect modifier 'regimen' is {msg}; it cannot be estimated")
        else:
            cols.append((treated & (arms["regimen"].astype("string") == "triple").fillna(False).to_numpy()).astype(float))
            names.append("regimen:triple")
    if "phase" in mods:
        if "maintenance" not in phase_vals or len(phase_vals) < 2:
            raise ValueError(
                f"phase effect needs induction and maintenance studies; phases present: {phase_vals or '(none)'} "
                "(pass phases=('induction', 'maintenance'))"
            )
        is_m = (arms["phase"].astype("string") == "maintenance").fillna(False).to_numpy()
        cols.append((treated & is_m).astype(float))
        names.append("phase:maintenance")
    A = np.column_stack(cols) if cols else np.zeros((len(arms), 0))
    # identifiability with study-specific baselines: the within-study contrasts of
    # [treated, A] must have full column rank
    TA = np.column_stack([treated.astype(float), A])
    TA_c = TA - pd.DataFrame(TA).groupby(arm_study).transform("mean").to_numpy()
    if A.shape[1] >= 1 and np.linalg.matrix_rank(TA_c) < TA.shape[1]:
        warnings.warn(
            f"effect modifiers {', '.join(names)} are collinear among the included studies "
            "(e.g. the only maintenance trial is the only AZA trial); they are identified only by the prior",
            UserWarning,
            stacklevel=3,
        )
    bphase = np.array(
        [1.0 if str(study_phase.get(s)) == "maintenance" else 0.0 for s in in_model]
    )

    # ---------------------------------------------------------------- likelihood rows
    rows = []
    for j, r in arms.iterrows():
        if r["pattern"] == "full":
            rows.append({"arm_index": j, "kind": 0, "events": r["total"], "n": r["n"], "what": "CR or PR of n"})
            rows.append({"arm_index": j, "kind": 1, "events": r["cr"], "n": r["total"], "what": "CR of CR-or-PR"})
        elif r["pattern"] == "total_only":
            rows.append({"arm_index": j, "kind": 0, "events": r["total"], "n": r["n"], "what": "CR or PR of n"})
        elif r["pattern"] == "cr_only":
            rows.append({"arm_index": j, "kind": 2, "events": r["cr"], "n": r["n"], "what": "CR of n"})
        elif r["pattern"] == "pr_only":
            rows.append({"arm_index": j, "kind": 3, "events": r["pr"], "n": r["n"], "what": "PR of n"})
    rows = pd.DataFrame(rows)
    rows["events"] = rows["events"].astype(np.int64)
    rows["n"] = rows["n"].astype(np.int64)
    rows["study_index"] = arm_study[rows["arm_index"].to_numpy()]
    rows["row_id"] = [f"{arms.loc[a, 'study']}:{arms.loc[a, 'arm']}:{w}" for a, w in zip(rows["arm_index"], rows["what"])]

    # ---------------------------------------------------------------- reference studies
    pat_by_study = pd.Series(arms["pattern"].to_numpy()).groupby(arm_study).agg(set)
    full = [i for i, p in pat_by_study.items() if "full" in p]
    if full:
        refs = {"stage1": full, "stage2": full, "rule": "studies reporting CR, PR and NR"}
    else:
        refs = {"stage1": list(range(len(in_model))), "stage2": list(range(len(in_model))),
                "rule": "all included studies (no study reports all three categories)"}

    # ---------------------------------------------------------------- targets
    tg = []
    has_comp = any(n.startswith("comparator:") for n in names)
    if has_comp or len(comparators) == 1:
        tg.append({"target": label_of(ref_comp), "treated": 0, "set": {}})
        for c in comparators:
            if c != ref_comp and has_comp:
                tg.append({"target": label_of(c), "treated": 0, "set": {f"comparator:{c}": -1.0}})
    else:
        tg.append({"target": "control (" + ", ".join(label_of(c) for c in comparators) + ")", "treated": 0, "set": {}})
    has_reg = "regimen:triple" in names
    tname = "/".join(label_of(t) for t in treat)
    if has_reg:
        tg.append({"target": f"{tname} duo", "treated": 1, "set": {}})
        tg.append({"target": f"{tname} triple", "treated": 1, "set": {"regimen:triple": 1.0}})
    else:
        reg_txt = f" {regimens[0]}" if len(regimens) == 1 and tname == "TAC" else ""
        tg.append({"target": f"{tname}{reg_txt}", "treated": 1, "set": {}})
    if "phase:maintenance" in names:
        for t in [t for t in tg if t["treated"] == 1]:
            tg.append({"target": f"{t['target']} (maintenance)", "treated": 1, "set": {**t["set"], "phase:maintenance": 1.0}})
    tA = np.zeros((len(tg), len(names)))
    for k, t in enumerate(tg):
        for nm, v in t["set"].items():
            tA[k, names.index(nm)] = v
    targets = pd.DataFrame({"target": [t["target"] for t in tg], "treated": [t["treated"] for t in tg]})

    usage_df = pd.DataFrame(
        [{**u, "notes": "; ".join(u["notes"])} for u in usage.values()],
        columns=["study", "included", "phase", "data", "notes"],
    )
    return OrdinalDesign(
        family="ordinal",
        outcome="renal_response",
        direction="benefit",
        baseline=baseline,
        study_ids=in_model,
        arm_ids=(arms["study"] + ":" + arms["arm"]).tolist(),
        usage=usage_df,
        fingerprint=fp,
        link=link,
        cutpoint_specific=bool(cutpoint_specific),
        arms=arms,
        rows=rows,
        arm_study=arm_study,
        treated=treated.astype(np.int64),
        A=A,
        effect_names=names,
        dropped_modifiers=dropped,
        targets=targets,
        target_A=tA,
        reference_studies=refs,
        reference_comparator=ref_comp,
        baseline_phase=bphase,
        phases=phases,
    )


# ============================================================================ ordinal model
def _log1mexp(x):
    return pt.log1mexp(x)


def log_sigmoid(x):
    """log inv_logit(x) = -softplus(-x) (stable for large |x|)."""
    return -pt.softplus(-x)


def stage_logs(link: str, th1, th2):
    """(log P(resp), log(1 - P(resp)), log P(CR | resp), log(1 - P(CR | resp))) from the
    two linear predictors: sequential (th1, th2) = (response, complete | response);
    cumulative (th1, th2) = (logit P(>= PR), logit P(CR)) with th2 <= th1."""
    lp1 = log_sigmoid(th1)
    lq1 = log_sigmoid(-th1)
    if link == "sequential":
        lp2 = log_sigmoid(th2)
        lq2 = log_sigmoid(-th2)
    else:
        lp2 = pt.minimum(log_sigmoid(th2) - lp1, 0.0)
        lq2 = _log1mexp(lp2)
    return lp1, lq1, lp2, lq2


#: the posterior variables the gate of an ordinal fit reads (z in every form of the study
#: effects); a run folder read back is gated on the same (bayesln.predict.command)
GATE_VARS = ("alpha", "alpha_raw", "a", "kappa", "m", "sigma_mu", "kappa_mean", "gamma_phase", "d", "tau",
             "z", "beta", "psi", "psi_beta", "P_cr", "P_pr", "P_resp")


def build_ordinal_model(
    design: OrdinalDesign,
    *,
    priors: OrdinalPriors | dict | None = None,
    common_effect: bool = False,
    reference_baseline: str | Mapping[str, float] = "auto",
    parameterization="noncentered",
    baseline_parameterization="noncentered",
) -> pm.Model:
    """The PyMC model of an :class:`OrdinalDesign`.

    ``parameterization``: the form of the random treatment effects: ``"noncentered"``
    (default here), ``"centered"``, ``"auto"`` (:func:`choose_ordinal`) or flags per study
    (per study and step with step-specific effects); see the module docstring.
    ``baseline_parameterization``: the same for exchangeable baselines (flags per study and
    step; :func:`choose_ordinal_baselines`).

    Posterior variables: ``alpha`` (study, stage) [sequential] or ``a``, ``kappa``
    (study: logit P(>= PR) of the reference comparator and log gap) [cumulative];
    exchangeable baselines add ``m``, ``sigma_mu`` (stage) [sequential] or ``m``,
    ``kappa_mean`` and ``sigma_mu[total]``, ``sigma_mu[complete]`` (SDs of ``a_i`` and
    ``kappa_i``) [cumulative];
    ``d`` (scalar, or stage when cut-point-specific), ``tau``, ``z``; ``beta``
    (covariate[, stage]); ``psi``, ``psi_beta`` (cumulative, cut-point-specific);
    per arm ``p_cr``, ``p_pr``, ``p_resp`` (dim arm) and per target ``P_cr``,
    ``P_pr``, ``P_nr``, ``P_resp`` (dim target).

    Events and denominators are ``pm.Data`` (``events_data``, ``n_data``, dim row) so a
    refit of the same shape reuses the compiled model."""
    pr = coerce_priors(priors, OrdinalPriors)
    link, cs = design.link, design.cutpoint_specific
    form, _ = family_form(parameterization, lambda: choose_ordinal(design), random_effects=not common_effect)
    bform, _ = family_form(baseline_parameterization, lambda: choose_ordinal_baselines(design),
                           random_effects=design.baseline == "exchangeable")
    bmask = effect_mask(bform, (design.n_studies, 2))
    stages = design.stages
    n_s = design.n_studies
    K = len(design.effect_names)
    tau_prior = resolve_tau_prior(pr.tau, "total_response")
    coords = {
        "study": design.study_ids,
        "arm": design.arm_ids,
        "row": design.rows["row_id"].tolist(),
        "stage": list(stages),
        "target": design.targets["target"].tolist(),
    }
    if K:
        coords["covariate"] = list(design.effect_names)
    arm_study = design.arm_study
    t = design.treated.astype(float)
    rows = design.rows
    r_arm = rows["arm_index"].to_numpy()
    r_kind = rows["kind"].to_numpy()
    exch = design.baseline == "exchangeable"
    phase_b = exch and "phase:maintenance" in design.effect_names
    if isinstance(reference_baseline, str) and reference_baseline not in ("auto", "mean", "typical"):
        raise ValueError("reference_baseline must be 'auto', 'mean', 'typical' or a dict of probabilities")
    if reference_baseline == "typical" and not exch:
        raise ValueError("reference_baseline='typical' needs exchangeable baselines")

    with pm.Model(coords=coords) as model:
        events = pm.Data("events_data", rows["events"].to_numpy(), dims="row")
        n = pm.Data("n_data", rows["n"].to_numpy(), dims="row")
        # ------------------------------------------------------------ baselines
        if link == "sequential":
            if not exch:
                base = location_rv("alpha", pr.baseline, dims=("study", "stage"))
            else:
                m = location_rv("m", pr.m, dims="stage")
                sig = scale_rv("sigma_mu", pr.sigma_mu, dims="stage")
                raw = None if bmask.any() else pm.Normal("alpha_raw", 0.0, 1.0, dims=("study", "stage"))
                loc = m[None, :]
                if phase_b:
                    gph = location_rv("gamma_phase", pr.gamma, dims="stage")
                    loc = loc + design.baseline_phase[:, None] * gph[None, :]
                base = pm.Deterministic("alpha", loc + sig[None, :] * raw if raw is not None else normal_effects(
                    loc * np.ones((n_s, 2)), sig[None, :], bmask, ("study", "stage"), BASELINE_NAMES),
                    dims=("study", "stage"))
            b1, b2 = base[:, 0], base[:, 1]
        else:
            if not exch:
                a = location_rv("a", pr.baseline, dims="study")
                kappa = location_rv("kappa", pr.gap, dims="study")
            else:
                m = location_rv("m", pr.m)  # mean logit P(>= PR) of the reference comparator
                locg = location_rv("kappa_mean", pr.gap)  # mean log gap
                sig = scale_rv("sigma_mu", pr.sigma_mu, dims="stage")
                raw = None if bmask.any() else pm.Normal("alpha_raw", 0.0, 1.0, dims=("study", "stage"))
                loc_a = m
                if phase_b:
                    gph = location_rv("gamma_phase", pr.gamma)
                    loc_a = loc_a + design.baseline_phase * gph
                if raw is not None:
                    a_k = pt.stack([loc_a + sig[0] * raw[:, 0], locg + sig[1] * raw[:, 1]], axis=1)
                else:
                    a_k = normal_effects(pt.stack([loc_a * np.ones(n_s), locg * np.ones(n_s)], axis=1), sig[None, :],
                                         bmask, ("study", "stage"), BASELINE_NAMES)
                a = pm.Deterministic("a", a_k[:, 0], dims="study")
                kappa = pm.Deterministic("kappa", a_k[:, 1], dims="study")
            b1, b2 = a, kappa
        # ------------------------------------------------------------ treatment effects
        n_eff = 2 if (cs and link == "sequential") else 1
        if n_eff == 2:
            d = location_rv("d", pr.d, dims="stage")
        else:
            d = location_rv("d", pr.d)
        if common_effect:
            delta = d[None, :] * pt.ones((n_s, 2)) if n_eff == 2 else d * pt.ones(n_s)
        else:
            if n_eff == 2:
                tau = scale_rv("tau", tau_prior, dims="stage")
                delta = normal_effects(d[None, :], tau[None, :], effect_mask(form, (n_s, 2)), ("study", "stage"))
            else:
                tau = scale_rv("tau", tau_prior)
                delta = normal_effects(d, tau, effect_mask(form, n_s), "study")
        if K:
            over = [pr.beta_for(c) for c in design.effect_names]
            if any(p.dist != "normal" for p in over):
                raise ValueError("the ordinal model needs normal(...) priors for the effect modifiers (beta)")
            mu_b = np.array([p.params["mu"] for p in over])
            sd_b = np.array([p.params["sigma"] for p in over])
            if n_eff == 2:
                beta = pm.Normal("beta", mu=np.repeat(mu_b[:, None], 2, 1), sigma=np.repeat(sd_b[:, None], 2, 1),
                                 dims=("covariate", "stage"))
            else:
                beta = pm.Normal("beta", mu=mu_b, sigma=sd_b, dims="covariate")
            A = pt.as_tensor_variable(design.A)
        # per-arm effects
        if n_eff == 2:
            e1 = t * delta[arm_study, 0]
            e2 = t * delta[arm_study, 1]
            if K:
                e1 = e1 + pt.dot(A, beta[:, 0])
                e2 = e2 + pt.dot(A, beta[:, 1])
        else:
            e1 = t * delta[arm_study]
            if K:
                e1 = e1 + pt.dot(A, beta)
            e2 = e1
        psi = psi_b = None
        if link == "cumulative" and cs:
            psi = location_rv("psi", pr.psi)
            if K:
                psi_b = pm.Normal("psi_beta", 0.0, float(pr.psi.params.get("sigma", 1.0)), dims="covariate")
        # ------------------------------------------------------------ arm linear predictors
        if link == "sequential":
            th1 = b1[arm_study] + e1
            th2 = b2[arm_study] + e2
        else:
            th1 = b1[arm_study] + e1
            lg = b2[arm_study]
            if cs:
                lg = lg + t * psi + (pt.dot(A, psi_b) if K else 0.0)
            th2 = th1 - pt.exp(lg)
        lp1, lq1, lp2, lq2 = stage_logs(link, th1, th2)
        lp_cr = lp1 + lp2
        lp_pr = lp1 + lq2
        pm.Deterministic("p_resp", pt.exp(lp1), dims="arm")
        pm.Deterministic("p_cr", pt.exp(lp_cr), dims="arm")
        pm.Deterministic("p_pr", pt.exp(lp_pr), dims="arm")
        LP = pt.stack([lp1, lp2, lp_cr, lp_pr], axis=1)
        LQ = pt.stack([lq1, lq2, _log1mexp(lp_cr), _log1mexp(lp_pr)], axis=1)
        logit_rows = LP[r_arm, r_kind] - LQ[r_arm, r_kind]
        pm.Binomial("y", n=n, logit_p=logit_rows, observed=events, dims="row")

        # ------------------------------------------------------------ targets
        tA = design.target_A
        tt = design.targets["treated"].to_numpy(float)
        if isinstance(reference_baseline, Mapping):
            p_cr0 = float(reference_baseline["complete_response"])
            p_tot0 = float(reference_baseline["total_response"])
            if not 0 < p_cr0 < p_tot0 < 1:
                raise ValueError("reference_baseline needs 0 < P(CR) < P(CR or PR) < 1")
            if link == "sequential":
                r1, r2 = np.log(p_tot0 / (1 - p_tot0)), np.log((p_cr0 / p_tot0) / (1 - p_cr0 / p_tot0))
            else:
                lt, lc = np.log(p_tot0 / (1 - p_tot0)), np.log(p_cr0 / (1 - p_cr0))
                r1, r2 = lt, np.log(lt - lc)
            r1, r2 = pt.as_tensor_variable(r1), pt.as_tensor_variable(r2)
        elif exch and reference_baseline in ("auto", "typical"):
            if link == "sequential":
                r1, r2 = m[0], m[1]
            else:
                r1, r2 = m, locg
        else:
            i1 = np.asarray(design.reference_studies["stage1"])
            i2 = np.asarray(design.reference_studies["stage2"])
            r1 = pt.mean(b1[i1])
            r2 = pt.mean(b2[i2])
        if n_eff == 2:
            f1 = tt * d[0] + (pt.dot(tA, beta[:, 0]) if K else 0.0)
            f2 = tt * d[1] + (pt.dot(tA, beta[:, 1]) if K else 0.0)
        else:
            f1 = tt * d + (pt.dot(tA, beta) if K else 0.0)
            f2 = f1
        if link == "sequential":
            T1 = r1 + f1
            T2 = r2 + f2
        else:
            T1 = r1 + f1
            lgt = r2 + (tt * psi + (pt.dot(tA, psi_b) if K else 0.0) if cs else 0.0)
            T2 = T1 - pt.exp(lgt)
        tp1, tq1, tp2, tq2 = stage_logs(link, T1, T2)
        pm.Deterministic("P_resp", pt.exp(tp1), dims="target")
        pm.Deterministic("P_cr", pt.exp(tp1 + tp2), dims="target")
        pm.Deterministic("P_pr", pt.exp(tp1 + tq2), dims="target")
        pm.Deterministic("P_nr", pt.exp(tq1), dims="target")
    return model


def ordinal_effect_cells(design: OrdinalDesign) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per study, the (log OR, Woolf variance) that inform each of its random effects: one
    pair per study and step with step-specific effects under the sequential link (step 1
    from the CR-or-PR counts, step 2 from CR among responders), else one per study: under
    the sequential link both steps' log ORs combined by inverse variance (they inform the
    one shared effect through independent binomials), under the cumulative link the CR-or-PR
    split; a study reporting CR only uses its CR log OR. NaN: no study-level information
    (such a study stays non-centred)."""
    from bayesln.hierarchy.parameterize import combine_information, pooled_log_or

    rows = design.rows
    kind = rows["kind"].to_numpy()
    si = rows["study_index"].to_numpy()
    t = design.treated[rows["arm_index"].to_numpy()]
    ev, n = rows["events"].to_numpy(), rows["n"].to_numpy()
    S = design.n_studies

    def of(k):
        sel = kind == k
        return pooled_log_or(si[sel], t[sel], ev[sel], n[sel], S)

    tot, cond, cr = of(0), of(1), of(2)
    if design.link == "sequential" and design.cutpoint_specific:
        return [tot, cond]
    y, v = combine_information(tot, cond) if design.link == "sequential" else tot
    fill = ~np.isfinite(v)
    return [(np.where(fill, cr[0], y), np.where(fill, cr[1], v))]


def choose_ordinal(design: OrdinalDesign) -> tuple:
    """``parameterization="auto"`` of the ordinal family: the rule of
    :mod:`bayesln.hierarchy.parameterize` on :func:`ordinal_effect_cells` (a tau_lo per step
    with step-specific effects). Returns (form or flags, record)."""
    from bayesln.hierarchy.parameterize import LEVEL, RATIO, centred_cells, mask_kind

    cells = ordinal_effect_cells(design)
    cols, refs = [], {}
    for stage, (y, v) in zip(design.stages, cells):
        flags, ref = centred_cells(y, v)
        cols.append(flags)
        refs[stage if len(cells) > 1 else "effect"] = ref["0"]
    mask = np.column_stack(cols) if len(cols) > 1 else cols[0]
    kind = mask_kind(mask.ravel().tolist())
    ids = np.asarray(design.study_ids)
    centred = ([f"{s}:{st}" for j, st in enumerate(design.stages) for s in ids[mask[:, j]]] if mask.ndim == 2
               else ids[mask].tolist())
    record = {"rule": (f"study effect centred when var(log OR_i) < {RATIO:g} * tau_lo^2, tau_lo the lower {LEVEL:g}% "
                       "Q-profile limit of tau (bayesln.hierarchy.ordinal.ordinal_effect_cells, "
                       "bayesln.hierarchy.parameterize)"),
              "tau_ref": refs, "centered": centred, "n_centered": int(mask.sum()), "n_studies": design.n_studies,
              "form": kind}
    form = kind if kind != "mixed" else tuple(tuple(bool(x) for x in r) if mask.ndim == 2 else bool(r) for r in mask)
    return form, record


def choose_ordinal_baselines(design: OrdinalDesign) -> tuple:
    """``baseline_parameterization="auto"`` of exchangeable ordinal baselines: per study and
    step, the variance of the pooled control arms' log odds of that step (sequential: CR or
    PR out of n, then CR among responders; cumulative: CR or PR out of n for the location
    ``a_i``, the log gap ``kappa_i`` always non-centred) against the lower Q-profile limit of
    the step's between-study SD (given the maintenance indicator when the baseline has a
    phase shift). Returns (form or flags (study, step), record)."""
    from bayesln.hierarchy.parameterize import LEVEL, RATIO, centred_cells, control_log_odds, mask_kind

    rows = design.rows
    kind = rows["kind"].to_numpy()
    si = rows["study_index"].to_numpy()
    t = design.treated[rows["arm_index"].to_numpy()]
    S = design.n_studies
    phase = "phase:maintenance" in design.effect_names and len(design.baseline_phase) == S
    X = np.asarray(design.baseline_phase, float)[:, None] if phase else None
    cols, refs = [], {}
    for j, stage in enumerate(design.stages):
        if design.link == "cumulative" and j == 1:
            cols.append(np.zeros(S, bool))
            continue
        sel = kind == j
        y, v = control_log_odds(si[sel], t[sel], rows["events"].to_numpy()[sel], rows["n"].to_numpy()[sel], S)
        flags, ref = centred_cells(y, v, X=X)
        cols.append(flags)
        refs[stage] = ref["0"]
    mask = np.column_stack(cols)
    kind_ = mask_kind(mask.ravel().tolist())
    ids = np.asarray(design.study_ids)
    record = {"rule": (f"baseline centred when var(control log odds_is) < {RATIO:g} * sigma_lo(s)^2, sigma_lo(s) the "
                       f"lower {LEVEL:g}% Q-profile limit of step s's between-study SD "
                       "(bayesln.hierarchy.ordinal.choose_ordinal_baselines)"),
              "sigma_ref": refs, "centered": [f"{s}:{st}" for j, st in enumerate(design.stages) for s in ids[mask[:, j]]],
              "n_centered": int(mask.sum()), "n_studies": S, "form": kind_}
    return (kind_ if kind_ != "mixed" else tuple(tuple(bool(x) for x in r) for r in mask)), record


def reference_rule(design: OrdinalDesign, reference_baseline) -> str:
    """How the reference baseline of the targets is defined (text for summaries)."""
    if isinstance(reference_baseline, Mapping):
        return "fixed reference-comparator probabilities " + json.dumps(dict(reference_baseline), sort_keys=True)
    if design.baseline == "exchangeable" and reference_baseline in ("auto", "typical"):
        return "typical study (exchangeable baseline mean)"
    return "mean study baseline over " + design.reference_studies["rule"]


# ============================================================================ result
@dataclass(repr=False)
class OrdinalResult(FamilyFitResult):
    """Result of :func:`fit_ordinal`. ``summary()`` gives the pooled log-OR(s) and ORs,
    tau, modifier effects, and P(CR), P(PR), P(NR), P(CR or PR) for every target at the
    reference baseline with the marginal ORs of CR and of CR-or-PR against the
    reference comparator; ``arm_probabilities()`` per arm next to the observed
    proportions; ``probability_draws()`` the raw draws (for coherence checks)."""

    def probability_draws(self, level: str = "target") -> dict[str, np.ndarray]:
        """Draws (n_draws, n_target | n_arm) of P(CR), P(PR), P(CR or PR) [and P(NR)]."""
        if level == "target":
            return {k: self.draws(v) for k, v in
                    (("cr", "P_cr"), ("pr", "P_pr"), ("resp", "P_resp"), ("nr", "P_nr"))}
        if level == "arm":
            return {k: self.draws(v) for k, v in (("cr", "p_cr"), ("pr", "p_pr"), ("resp", "p_resp"))}
        raise ValueError("level must be 'target' or 'arm'")

    def arm_probabilities(self, ci: float = 0.95) -> pd.DataFrame:
        lo, hi = interval_columns(ci)
        arms = self.design.arms
        out = []
        pdraw = self.probability_draws("arm")
        for j, r in arms.iterrows():
            for key, name, obs_k in (("cr", "P(CR)", "cr"), ("pr", "P(PR)", "pr"), ("resp", "P(CR or PR)", "total")):
                x = pdraw[key][:, j]
                ql, qm, qh = np.quantile(x, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
                obs = r.get(obs_k)
                out.append({
                    "study": r["study"], "arm": r["arm"], "treatment": label_of(r["node"]), "data": r["pattern"],
                    "quantity": name, "median": qm, lo: ql, hi: qh,
                    "observed": (float(obs) / float(r["n"])) if obs is not None and pd.notna(obs) else np.nan,
                    "ci_level": ci,
                })
        return pd.DataFrame(out)

    def summary(self, ci: float = 0.95) -> pd.DataFrame:
        des: OrdinalDesign = self.design
        S = SummaryRows(ci)
        tname = "/".join(label_of(x) for x in self.config.get("treat", ["tac"]))
        seq = des.link == "sequential"
        d = self.draws("d")
        stages_txt = {
            "response": "response (CR or PR vs NR)",
            "complete_given_response": "complete | response (CR vs PR among responders)",
        }
        if d.ndim == 1:
            what = ("both steps of the sequential logit (response vs none; CR vs PR among responders)" if seq
                    else "both cut-points of the cumulative logit (proportional odds)")
            S.add(f"common log-OR ({tname} vs control)", "d", d, f"same log odds ratio at {what}", stage="both")
            S.add(f"common OR ({tname} vs control)", "exp(d)", np.exp(d), f"odds ratio at {what}", stage="both")
            if not self.common_effect:
                tau = self.draws("tau")
                S.add("tau", "tau", tau, "between-study SD of the log odds ratio", stage="both")
                rng = np.random.default_rng([int(self.seed), 5])
                S.add("predictive OR (new study)", "exp(d + tau*e)", np.exp(d + tau * rng.standard_normal(d.shape)),
                      "odds ratio in a new study", stage="both")
            S.prob("P(OR > 1)", "d", float(np.mean(d > 0)), f"posterior probability that {tname} improves renal response")
        else:
            for k, st in enumerate(des.stages):
                S.add(f"log-OR: {stages_txt[st]}", f"d[{st}]", d[:, k], f"{tname} vs control", stage=st)
                S.add(f"OR: {stages_txt[st]}", f"exp(d[{st}])", np.exp(d[:, k]), f"{tname} vs control", stage=st)
                if not self.common_effect:
                    S.add(f"tau: {stages_txt[st]}", f"tau[{st}]", self.draws("tau")[:, k], "between-study SD", stage=st)
                S.prob(f"P(OR > 1): {stages_txt[st]}", f"d[{st}]", float(np.mean(d[:, k] > 0)),
                       f"posterior probability that {tname} helps at this step", stage=st)
        if "psi" in self.idata.posterior:
            psi = self.draws("psi")
            S.add("gap ratio (treated / control)", "exp(psi)", np.exp(psi),
                  "ratio of the cut-point gaps logit P(>=PR) - logit P(CR); < 1 means relatively more CR", stage="gap")
        if des.effect_names:
            beta = self.draws("beta")
            for k, nm in enumerate(des.effect_names):
                if beta.ndim == 2:
                    S.add(f"OR ratio: {nm}", f"exp(beta[{nm}])", np.exp(beta[:, k]), _mod_note(nm, des), stage="both")
                else:
                    for s, st in enumerate(des.stages):
                        S.add(f"OR ratio: {nm} [{st}]", f"exp(beta[{nm},{st}])", np.exp(beta[:, k, s]), _mod_note(nm, des), stage=st)
        # targets
        P = self.probability_draws("target")
        tg = des.targets["target"].tolist()
        rule = self.config.get("reference_rule", "")
        for k, name in enumerate(tg):
            for key, q in (("cr", "P(CR)"), ("pr", "P(PR)"), ("nr", "P(NR)"), ("resp", "P(CR or PR)")):
                S.add(f"{q}: {name}", f"P_{key}[{name}]", P[key][:, k], f"at the reference baseline ({rule})", target=name)
        ref = 0
        for k, name in enumerate(tg):
            if k == ref:
                continue
            for key, q in (("cr", "CR"), ("resp", "CR or PR")):
                a, b = P[key][:, k], P[key][:, ref]
                orr = (a / (1 - a)) / (b / (1 - b))
                S.add(f"OR({q}): {name} vs {tg[ref]}", f"odds(P_{key}[{name}]) / odds(P_{key}[{tg[ref]}])", orr,
                      "marginal odds ratio at the reference baseline", target=name)
        return S.frame(extra_cols=("stage", "target"))


def _mod_note(nm: str, des: OrdinalDesign) -> str:
    kind, _, lev = nm.partition(":")
    if kind == "comparator":
        return f"TAC-vs-{label_of(lev)} OR / TAC-vs-{label_of(des.reference_comparator)} OR"
    if kind == "regimen":
        return "TAC triple vs TAC duo (ratio of their ORs against control)"
    if kind == "phase":
        return "maintenance vs induction (ratio of the TAC-vs-control ORs)"
    return nm


# ============================================================================ fit
def fit_ordinal(
    data,
    *,
    treat: str | Iterable[str] = ("tac",),
    link: str = "sequential",
    cutpoint_specific: bool = False,
    baseline: str = "independent",
    effect_modifiers: str | Iterable[str] | None = None,
    phases: str | Iterable[str] | None = DEFAULT,
    designs: str | Iterable[str] | None = None,
    phase_effect: bool = False,
    common_effect: bool = False,
    reference_baseline: str | Mapping[str, float] = "auto",
    priors: OrdinalPriors | Priors | dict | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    target_accept: float = 0.99,
    backend: str = "auto",
    seed: int,
    progressbar: bool | None = None,
    prior_predictive: bool = True,
    prior_draws: int = 500,
    posterior_predictive: bool = True,
    gate: GateThresholds = GateThresholds(),
    cores: int | None = None,
    retry: bool = True,
    parameterization="auto",
    baseline_parameterization="auto",
) -> OrdinalResult:
    """Fit the ordinal (CR / PR / NR) renal-response model (see the module docstring).

    Parameters
    ----------
    data : TrialData, or a long DataFrame (study, arm, treatment, regimen, phase,
        design, outcome, events, n) with rows for complete_response, partial_response
        and/or total_response.
    treat : labels / nodes of the treated arms (default TAC).
    link : ``"sequential"`` (default; continuation-ratio logit) or ``"cumulative"``.
    cutpoint_specific : one treatment effect per step / cut-point instead of a shared one.
    baseline : ``"independent"`` (default) or ``"exchangeable"`` study baselines.
    effect_modifiers : subset of ``("regimen", "comparator", "phase")``; default (None):
        regimen and comparator when they vary among the included studies (a constant
        one is dropped and noted in ``config["dropped_modifiers"]``).
    phases : phases to include; default induction only (induction and maintenance when
        ``phase_effect=True``); None = all.
    designs : designs to include (e.g. ``("rct",)``); default all.
    phase_effect : share information across phases through a maintenance indicator on
        the treatment effect.
    reference_baseline : ``"auto"`` (typical study for exchangeable baselines, else the
        mean baseline of the studies reporting all three categories), ``"mean"``,
        ``"typical"`` or ``{"complete_response": p, "total_response": q}``.
    draws, tune, chains, target_accept, backend, seed, progressbar, gate, cores, retry : as in
        :func:`bayesln.hierarchy.fit_core`.
    parameterization : ``"auto"`` (default): each study's random effect centred or
        non-centred by how strongly its data inform it (:func:`choose_ordinal`, recorded in
        ``config["parameterization_chosen"]``; the structural retry samples every study
        non-centred); ``"noncentered"``, ``"centered"`` or per-study flags fix it.
    baseline_parameterization : the same for exchangeable baselines
        (:func:`choose_ordinal_baselines`, ``config["baseline_parameterization_chosen"]``).
    """
    seed = check_seed(seed)
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, target_accept=target_accept, cores=cores)
    used = resolve_backend(backend)
    pr = coerce_priors(priors, OrdinalPriors)
    design = build_ordinal_design(
        data, treat=treat, link=link, cutpoint_specific=cutpoint_specific, baseline=baseline,
        effect_modifiers=effect_modifiers, phases=phases, designs=designs, phase_effect=phase_effect,
    )
    form, chosen = family_form(parameterization, lambda: choose_ordinal(design), random_effects=not common_effect)
    bform, bchosen = family_form(baseline_parameterization, lambda: choose_ordinal_baselines(design),
                                 random_effects=design.baseline == "exchangeable")

    def build(f, bf):
        return build_ordinal_model(design, priors=pr, common_effect=common_effect,
                                   reference_baseline=reference_baseline, parameterization=f, baseline_parameterization=bf)

    model = build(form, bform)
    resolved = pr.model_dump(mode="json")
    resolved["tau"] = resolve_tau_prior(pr.tau, "total_response").model_dump(mode="json")
    config = {
        "model": f"ordinal renal response ({design.link} logit)",
        "family": "ordinal",
        "treat": list(_as_names(treat)),
        **design.summary_dict(),
        "designs": list(_as_names(designs)),
        "phase_effect": bool(phase_effect),
        "common_effect": bool(common_effect),
        "reference_baseline": reference_baseline if isinstance(reference_baseline, str) else dict(reference_baseline),
        "reference_rule": reference_rule(design, reference_baseline),
        "priors": resolved,
        "sampler": sampler_config(backend, used, settings, seed),
        "gate": gate.to_dict(),
    }
    fallback = record_forms(config, parameterization=(parameterization, form, chosen),
                            baseline_parameterization=(baseline_parameterization, bform, bchosen))
    gate_vars = list(GATE_VARS)
    rows = design.rows
    const = xr.Dataset(
        {"n": (("row",), rows["n"].to_numpy()), "kind": (("row",), rows["kind"].to_numpy()),
         "row_arm": (("row",), np.array(design.arm_ids, dtype=object)[rows["arm_index"].to_numpy()].astype(str)),
         "treated": (("arm",), design.treated),
         "arm_study": (("arm",), np.array([design.study_ids[i] for i in design.arm_study], dtype=object).astype(str))},
        coords={"row": rows["row_id"].tolist(), "arm": design.arm_ids},
    )
    idata, diag, used = sample_family(
        model, design=design, config=config, seed=seed, settings=settings, backend=used, progressbar=progressbar,
        gate=gate, loglik_rows={"y": rows["study_index"].to_numpy()}, gate_vars=gate_vars,
        prior_predictive=prior_predictive, prior_draws=prior_draws, posterior_predictive=posterior_predictive,
        constant_data=const, label="ordinal renal response", retry=retry,
        alternative=(lambda: build("noncentered", "noncentered")) if fallback else None,
    )
    return OrdinalResult(idata=idata, design=design, diagnostics=diag, config=config, seed=seed, backend=used)
