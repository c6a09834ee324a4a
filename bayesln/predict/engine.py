"""From a fitted core model and a target to draws of arm-level log odds.

For a target with covariates x (effect modifiers, transformed as in the fit) and z
(baseline covariates), comparator c and TAC regimen r, per posterior draw s::

    population level (the population-average effect, a "typical trial"):
        eta_C = b_s + A_C . beta_s
        eta_T = b_s + d_s + A_T . beta_s + sum_k Delta_ks (x_k - xbar_k)
    new trial / new clinic in that population:
        d_s -> d_s + tau_s * e_s,  b_s -> b_s + sigma_mu_s * e'_s

``A_T`` / ``A_C`` are the design rows of a TAC arm and a comparator arm of the target
(see :mod:`bayesln.hierarchy.design`; comparator indicators enter the control arm with a
minus sign). The baseline ``b_s`` (log odds of the comparator arm before its comparator
indicator) is, in order of precedence:

* the target's ``baseline_risk`` (draws of its distribution; the same at both levels:
  it is taken to describe the target setting's comparator-arm risk, so it is not widened
  again by sigma_mu);
* exchangeable baselines: ``m + z . gamma + sum_k Gamma_k (z_k - zbar_k)`` (typical trial)
  and, for a new trial, ``+ sigma_mu * e'``;
* independent baselines (no baseline model): the average of the included trials'
  ``mu_i`` (population) and one included trial's ``mu_i`` drawn at random (new trial),
  plus the baseline extrapolation terms.

``Delta_k`` / ``Gamma_k`` are the extrapolation terms of :mod:`bayesln.predict.priors`,
drawn from their priors (independent of the posterior: the data say nothing about them).

Covariates in the model: bounded, never linear beyond the data
--------------------------------------------------------------
A continuous covariate the model has a coefficient for (an effect modifier ``beta_k`` or
a baseline covariate ``gamma_k``, in its natural unit ``u_k``: 1 for a fraction, 10 years
for mean age, see :mod:`bayesln.hierarchy.design`) was fitted on study values in
``[lo_k, hi_k]`` (stored with the transform). The fitted coefficient is used inside that
range only; the part of the target's value beyond it gets the covariate's extrapolation
prior, drawn per posterior draw like any other extrapolation term::

    beta_k * (clip(x_k, lo_k, hi_k) - c_k) / u_k  +  Delta_k * (x_k - clip(x_k, lo_k, hi_k))

(``c_k`` the centre of the fit; ``Delta_k`` per raw unit of the covariate, prior from
:mod:`bayesln.predict.priors` or ``extrapolation_priors=``; likewise ``Gamma_k`` for the
comparator-arm log odds). Inside the range this is the plain linear prediction; a target
beyond it is flagged ``outside_data`` and the beyond-range term is reported, and counted,
as prior-driven. The fitted slope is never extrapolated: a handful of trials with class V
fractions 0-0.19 says nothing about the slope between 0.19 and 1.

The data part of a coefficient
------------------------------
:meth:`CoreEngine.data_part` replaces, for the duration of a ``with`` block, the draws of
the model's coefficients (beta, gamma; in the ordinal model also the per-step beta, psi_beta
and gamma_phase) by ``mean + sqrt(kappa) * (theta - mean)``, where ``kappa`` is the
coefficient's prior-to-posterior contraction ``1 - Var_post / Var_prior``
(:func:`bayesln.predict.extrapolation.contraction_table`, clipped to [0, 1]). Their spread
is then ``kappa * Var_post``, the part of the posterior variance owed to the data: in the
normal-normal model ``1 - kappa = Var_post / Var_prior`` is exactly the prior's share of the
posterior precision. :func:`bayesln.predict.predict` uses it for the prior share of every
prediction.

The engine is looked up by the type of the fit result (:func:`engine_for`), so other
model families register their own: :class:`bayesln.predict.ordinal.OrdinalEngine` (the
ordinal CR / PR / NR model) reuses :meth:`CoreEngine.plan` (covariate inventory,
extrapolation terms, comparator handling) through the hooks ``effect_sources``,
``baseline_sources``, ``comparator_levels``, ``baseline_description`` and
``baseline_terms_apply``, and the draw arithmetic of :func:`quantities_from_p`.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from bayesln.hierarchy.priors import Prior
from bayesln.hierarchy.result import FitResult
from bayesln.predict.priors import (
    DEFAULT_BASELINE_EXTRAPOLATION_PRIORS,
    DEFAULT_EXTRAPOLATION_PRIORS,
    UNITS,
    prior_mean,
    prior_quantile,
    prior_sd,
)
from bayesln.predict.targets import COVARIATES, Target, parse_extrapolation_priors

__all__ = ["ArmSpec", "CoreEngine", "Plan", "Term", "check_transforms", "coefficient_support", "engine_for",
           "quantities_from_eta", "quantities_from_p", "register_engine", "stream"]

LEVELS = ("population", "new_trial")
TOL = 1e-9


def stream(seed: int, *keys) -> np.random.Generator:
    """An independent random stream for (seed, keys...): adding a target or a term
    never changes the draws of another."""
    ints = [int(seed) & 0xFFFFFFFFFFFFFFFF]
    for k in keys:
        ints.append(zlib.crc32(str(k).encode("utf-8")))
    return np.random.default_rng(ints)


# ============================================================================ draw arithmetic
def quantities_from_p(p_t: np.ndarray, p_c: np.ndarray, direction: str, margin: float,
                      log_or: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every derived quantity from the draws of the two arms' probabilities::

        RD = p_t - p_c    RR = p_t / p_c    NNT = 1 / RD    OR = exp(log_or)
        P(TAC better) = p_t > p_c (benefit) or p_t < p_c (harm);  P(RD > margin)

    ``log_or`` is logit(p_t) - logit(p_c), computed here when not given (an engine that
    has the arms' log odds passes their difference, which is exact in the tails)."""
    p_t = np.asarray(p_t, float)
    p_c = np.asarray(p_c, float)
    rd = p_t - p_c
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = p_t / p_c
        nnt = 1.0 / rd
        if log_or is None:
            log_or = (np.log(p_t) - np.log1p(-p_t)) - (np.log(p_c) - np.log1p(-p_c))
    log_or = np.asarray(log_or, float)
    better = (p_t > p_c) if direction == "benefit" else (p_t < p_c)
    return {
        "p_tac": p_t, "p_comparator": p_c, "rd": rd, "rr": rr, "log_or": log_or, "or": np.exp(log_or), "nnt": nnt,
        "tac_better": better.astype(float), "rd_above_margin": (rd > margin).astype(float),
    }


def quantities_from_eta(eta_t: np.ndarray, eta_c: np.ndarray, direction: str, margin: float) -> dict[str, np.ndarray]:
    """All draws from the two arms' log odds; RR / RD / NNT come from the probabilities."""
    eta_t = np.asarray(eta_t, float)
    eta_c = np.asarray(eta_c, float)
    return quantities_from_p(expit(eta_t), expit(eta_c), direction, margin, log_or=eta_t - eta_c)


@dataclass(frozen=True)
class ArmSpec:
    """One arm of a target trial: TAC (with its regimen) or a comparator."""

    treated: bool
    regimen: str | None = None
    comparator: str | None = None
    label: str = ""


@dataclass
class Term:
    """An extrapolation term: a covariate whose effect the model cannot estimate."""

    role: str  # "effect" (log-OR) or "baseline" (comparator-arm log odds)
    covariate: str
    target_value: float
    reference: float
    distance: float
    prior: Prior
    status: str
    #: True for the part of an in-model covariate beyond the fitted range (``reference``
    #: is then the range's bound and ``distance`` the excess); ``parameter`` names the
    #: fitted coefficient used up to the bound (e.g. ``beta[class_v_fraction]``)
    in_model: bool = False
    parameter: str = ""
    bounds: tuple[float, float] | None = None  # the fitted range of an in-model term

    @property
    def key(self) -> str:
        return f"{self.role}:{self.covariate}"

    @property
    def sd(self) -> float:
        return abs(self.distance) * prior_sd(self.prior)


@dataclass
class Plan:
    """Everything fixed for one target before drawing: design rows, terms, inventory."""

    target: Target
    outcome: str
    direction: str
    comparator_label: str
    regimen_label: str
    baseline_source: str
    baseline_text: str
    terms: list[Term]
    inventory: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    unseen_comparator: str | None = None


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "NA"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return str(v)


# ============================================================================ data values
def study_values(arms: pd.DataFrame, cov: str, studies: list[str]) -> pd.Series:
    """One float per study (NaN = not reported) of a covariate, as the design codes it:
    fractions and ages as numbers, flags 0/1, phase 1 = maintenance, regimen = share of
    the study's TAC arms that are triple. Study-level values are the first arm's (as in
    the design)."""
    idx = pd.Index(studies, dtype=object)
    if cov == "regimen":
        if "regimen" not in arms.columns:
            return pd.Series(np.nan, index=idx, dtype=float)
        t = arms[arms["treated"].astype(bool)]
        reg = t["regimen"].astype("string")
        trip = (reg == "triple").astype("Float64").where(reg.notna())
        g = pd.DataFrame({"study": t["study"].to_numpy(), "v": trip.to_numpy(dtype=float, na_value=np.nan)})
        out = g.groupby("study")["v"].agg(lambda v: np.nan if v.isna().any() else float(v.mean()))
        return out.reindex(idx).astype(float)
    if cov not in arms.columns:
        return pd.Series(np.nan, index=idx, dtype=float)
    first = arms.drop_duplicates("study").set_index("study")[cov].reindex(idx)
    if cov == "phase":
        v = first.astype("string")
        return pd.Series(np.where(v.isna(), np.nan, (v == "maintenance").fillna(False).astype(float)), index=idx)
    return pd.Series(pd.to_numeric(first.astype(object).where(first.notna(), np.nan).map(
        lambda x: float(x) if isinstance(x, (bool, np.bool_, int, float, np.integer, np.floating)) else np.nan)),
        index=idx, dtype=float)


def coefficient_support(values: pd.Series) -> dict:
    """How many trials inform a coefficient whose covariate takes ``values`` (one per trial
    in its regression; NaN = not reported, not counted): the trials whose value differs
    from the most common one (for a 0/1 covariate: the smaller of the two groups; the
    reference value 0 counts as the common one on a tie). A contrast between two groups of
    trials is only as informed as its smaller group: ``phase:maintenance`` with one
    maintenance trial among seven rests on that one trial, as does a class V slope when
    every trial but one has the same class V fraction. Returns ``n_trials``,
    ``n_regression`` (trials with a value) and ``trials`` (the informing trials, comma
    separated)."""
    v = values.dropna().astype(float)
    if not len(v):
        return {"n_trials": 0, "n_regression": 0, "trials": ""}
    r = v.round(9)
    counts = r.value_counts()
    top = counts.max()
    modes = sorted(counts.index[counts == top], key=lambda x: (x != 0.0, x))
    off = r.index[r != modes[0]]
    return {"n_trials": len(off), "n_regression": len(v), "trials": ", ".join(map(str, off))}


def check_transforms(result) -> None:
    """Refuse a fit whose stored covariate transforms are those of a bayesln before
    natural units (continuous covariates scaled by their SD across the trials): its
    coefficients are per SD and its priors meant something else; predicting from it with
    this version's arithmetic would be wrong."""
    from bayesln.hierarchy.design import SCALING

    idata = result.idata
    text = None
    for attrs in (getattr(idata, "attrs", None), getattr(getattr(idata, "posterior", None), "attrs", None)):
        if attrs and attrs.get("covariate_transforms"):
            text = attrs["covariate_transforms"]
            break
    if not text:
        return
    try:
        stored = json.loads(text)
    except (TypeError, ValueError):
        return
    old = sorted(str(t.get("name")) for t in stored.values()
                 if isinstance(t, dict) and t.get("kind") == "continuous" and t.get("scaling") != SCALING)
    if old:
        raise ValueError(
            f"this fit was made by an earlier bayesln that scaled the continuous covariate(s) {', '.join(old)} by their SD "
            "across the trials (coefficients and priors per SD); this version expresses them in natural units (a full "
            "switch of the population for fractions, 10 years of mean age) and bounds predictions to the fitted range. "
            "Refit the model (bayesln fit SPEC) to predict from it")


#: usage rows of studies the fit left out by choice or for a data gap (not for its structure)
_DROPPED = ("excluded from regression: missing", "excluded: non-randomised")


def _patients(arms_text: str) -> int:
    """Patients in a usage row's ``arms`` text ("tac 83/181; ivcy 70/181")."""
    total = 0
    for part in str(arms_text or "").split(";"):
        tail = part.strip().rsplit(" ", 1)[-1]
        if "/" in tail:
            try:
                total += int(tail.split("/")[1])
            except ValueError:
                pass
    return total


def dropped_study_notes(design) -> list[str]:
    """One note naming the studies with counts that the fit left out for a missing
    covariate or a non-randomised design, and the share of the patients they hold (e.g.
    a class V modifier leaves out the trials that do not report class V). Empty when none
    (or when the design has no usage table)."""
    u = getattr(design, "usage", None)
    if not isinstance(u, pd.DataFrame) or not {"study", "included", "usage", "arms"} <= set(u.columns):
        return []
    text = u["usage"].astype(str)
    dropped = u[~u["included"].astype(bool) & text.str.startswith(_DROPPED)]
    if dropped.empty:
        return []
    kept = int(u.loc[u["included"].astype(bool), "arms"].map(_patients).sum())
    lost = int(dropped["arms"].map(_patients).sum())
    why = "; ".join(f"{r.study} ({str(r.usage).split(';')[0].replace('excluded from regression: ', '').replace('excluded: ', '')})"
                    for r in dropped.itertuples())
    share = f"{lost} of {kept + lost} patients ({100 * lost / (kept + lost):.0f}%)" if kept + lost else ""
    return [f"the fit left out {len(dropped)} stud{'y' if len(dropped) == 1 else 'ies'} with counts, {share}: {why}; "
            "the prediction rests on the others only"]


def _target_numeric(cov: str, v) -> float:
    if cov == "phase":
        return 1.0 if v == "maintenance" else 0.0
    if cov == "regimen":
        return 1.0 if v == "triple" else 0.0
    return float(v)


# ============================================================================ core engine
class CoreEngine:
    """Predictions from a :class:`~bayesln.hierarchy.result.FitResult` of the core
    arm-based binomial-normal model."""

    def __init__(self, result: FitResult, draws: int | None = None, seed: int = 0):
        self.result = result
        self.design = result.design
        post = result.idata.posterior
        n_total = int(post.sizes["chain"] * post.sizes["draw"])
        if draws is not None:
            if int(draws) < 1 or int(draws) > n_total:
                raise ValueError(f"draws must be between 1 and the {n_total} posterior draws of the fit, got {draws}")
            idx = np.sort(stream(seed, "subsample").choice(n_total, int(draws), replace=False))
        else:
            idx = np.arange(n_total)
        self.idx = idx
        self.S = len(idx)
        self._cache: dict[str, np.ndarray] = {}
        check_transforms(result)

    # ------------------------------------------------------------------ draws
    def has(self, name: str) -> bool:
        return name in self.result.idata.posterior

    def draw(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self.result.draws(name)[self.idx]
        return self._cache[name]

    @property
    def outcome(self) -> str:
        return self.design.outcome

    @property
    def direction(self) -> str:
        return self.design.direction

    @property
    def baseline(self) -> str:
        return self.design.baseline

    # ------------------------------------------------------------------ data summaries
    def study_values(self, cov: str, studies: list[str]) -> pd.Series:
        """:func:`study_values` of the fit's arms, cached on the result."""
        cache = getattr(self.result, "_cache", None)
        key = ("predict.study_values", cov, tuple(studies))
        if isinstance(cache, dict) and key in cache:
            return cache[key]
        v = study_values(self.design.arms, cov, studies)
        if isinstance(cache, dict):
            cache[key] = v
        return v

    def effect_studies(self) -> list[str]:
        arms = self.design.arms
        t = arms[arms["treated"].astype(bool)]
        return [s for s in self.design.study_ids if s in set(t["study"])]

    def comparators(self, studies: list[str] | None = None) -> dict[str, int]:
        arms = self.design.arms
        c = arms[~arms["treated"].astype(bool)]
        if studies is not None:
            c = c[c["study"].isin(studies)]
        return c.groupby("treatment")["study"].nunique().sort_values(ascending=False).to_dict()

    def reference_comparator(self) -> str | None:
        for tr in self.design.effect_transforms:
            if tr.source == "comparator":
                return tr.reference
        return None

    # ------------------------------------------------------------------ hooks of plan()
    # (another model family overrides these and reuses plan() unchanged)
    def effect_sources(self) -> set[str]:
        """Covariates (and regimen / phase / comparator) the model has an effect modifier for."""
        return {tr.source for tr in self.design.effect_transforms}

    def baseline_sources(self) -> set[str]:
        """Covariates the model's baseline (comparator-arm log odds) depends on."""
        return {tr.source for tr in self.design.baseline_transforms}

    def comparator_levels(self, ref_comp: str) -> set[str]:
        """Comparators the model tells apart (the reference and its indicators)."""
        return {ref_comp} | {tr.level for tr in self.design.effect_transforms if tr.source == "comparator"}

    def baseline_terms_apply(self, target: Target) -> bool:
        """Whether part of the comparator-arm log odds comes from the fitted trials (then
        baseline extrapolation terms are needed); the core model: unless the target gives
        its own comparator-arm risk."""
        return target.baseline_risk is None

    def baseline_description(self, target: Target) -> tuple[str, str, list[str]]:
        """(source, text, notes) of the comparator-arm risk: source ``target`` (the
        target's baseline_risk), ``model`` (a baseline model with a between-trial SD) or
        ``trials`` (independent baselines: the included trials' own)."""
        des = self.design
        if target.baseline_risk is not None:
            return "target", f"comparator-arm risk given by the target: {target.baseline_risk.describe()}", []
        if self.baseline == "exchangeable":
            return "model", ("comparator-arm risk of a typical trial from the exchangeable baseline model (m"
                             + (" + z.gamma" if des.baseline_names else "") + "); a new trial adds sigma_mu"), []
        return "trials", (f"independent baselines: average comparator-arm log odds of the {des.n_studies} included "
                          "trials (population) or one of them drawn at random (new trial); give the target a "
                          "baseline_risk for absolute risks in another setting"), [
            "the fit has independent study baselines (no model for the comparator-arm risk): "
            "absolute risks use the included trials' baselines"]

    # ------------------------------------------------------------------ plan
    def plan(self, target: Target, *, extrapolation_priors=None, baseline_extrapolation_priors=None) -> Plan:
        des = self.design
        eff_pri = dict(DEFAULT_EXTRAPOLATION_PRIORS) | dict(target.extrapolation_priors) | parse_extrapolation_priors(
            extrapolation_priors)
        base_pri = dict(DEFAULT_BASELINE_EXTRAPOLATION_PRIORS) | dict(target.baseline_extrapolation_priors) | \
            parse_extrapolation_priors(baseline_extrapolation_priors, "baseline_extrapolation_priors")
        vals = target.covariate_values()
        eff_sources = self.effect_sources()
        base_sources = self.baseline_sources()
        rows: list[dict] = []
        terms: list[Term] = []
        notes: list[str] = []
        studies_eff = self.effect_studies()
        studies_all = list(des.study_ids)

        def covariate_row(cov, role, in_model, studies):
            v = vals.get(cov)
            sv = self.study_values(cov, studies)
            known = sv.dropna()
            row = {
                "covariate": cov, "role": role, "target_value": _fmt(v), "in_model": in_model,
                "n_trials": len(studies), "n_known": int(len(known)),
                "trials_unreported": ", ".join(sv.index[sv.isna()]),
                "data_min": float(known.min()) if len(known) else np.nan,
                "data_max": float(known.max()) if len(known) else np.nan,
                "data_mean": float(known.mean()) if len(known) else np.nan,
                "outside_data": False, "distance": 0.0, "prior": "", "added_sd": 0.0, "unit": UNITS.get(cov, ""),
                "status": "",
            }
            if v is None:
                if in_model:
                    row["status"] = "not set by the target: the model's reference value is used"
                    rows.append(row)
                return
            x = _target_numeric(cov, v)
            if len(known):
                lo, hi = float(known.min()), float(known.max())
                outside = x < lo - TOL or x > hi + TOL
            else:
                lo = hi = np.nan
                outside = True
            row["outside_data"] = bool(outside)
            if in_model:
                tr = self.continuous_transform(cov, role)
                if tr is not None:
                    # bounded: the fitted coefficient up to the fitted range, the
                    # extrapolation prior beyond it (module docstring)
                    flo, fhi = self.fitted_range(tr, role)
                    clip = min(max(x, flo), fhi)
                    dist = x - clip
                    outside = abs(dist) > TOL
                    row["outside_data"] = bool(outside)
                    if not outside:
                        row["status"] = f"in the model; within the fitted range [{_fmt(flo)}, {_fmt(fhi)}]"
                        rows.append(row)
                        return
                    par = f"{'beta' if role == 'effect' else 'gamma'}[{tr.name}]"
                    pri = (eff_pri if role == "effect" else base_pri).get(cov)
                    head = (f"in the model ({par}), fitted on [{_fmt(flo)}, {_fmt(fhi)}]; {_fmt(v)} is outside that "
                            f"range: the fitted coefficient is used up to {_fmt(clip)}")
                    if pri is None:
                        row["status"] = head + "; no extrapolation prior given: beyond it the effect is held at its value there"
                        rows.append(row)
                        return
                    status = (head + f" and the remaining {dist:+.3g} gets the extrapolation prior {pri} per unit "
                              "(prior-driven term added; no linear extrapolation of the fitted coefficient)")
                    row.update(distance=dist, prior=str(pri), added_sd=abs(dist) * prior_sd(pri), status=status)
                    terms.append(Term(role=role, covariate=cov, target_value=x, reference=clip, distance=dist,
                                      prior=pri, status=status, in_model=True, parameter=par,
                                      bounds=(flo, fhi)))
                    rows.append(row)
                    return
                if outside:  # a 0/1 covariate in the model takes both values in the trials
                    row["status"] = f"in the model; {_fmt(v)} is outside the trials' values [{_fmt(lo)}, {_fmt(hi)}]"
                else:
                    row["status"] = "in the model; within the fitted range"
                rows.append(row)
                return
            pri = (eff_pri if role == "effect" else base_pri).get(cov)
            if len(known):
                ref = float(known.mean())
                dist = x - ref
                if abs(dist) <= TOL:
                    row["status"] = "not in the model; equals the trials' value: no extrapolation term"
                    rows.append(row)
                    return
                if hi - lo <= TOL:
                    status = (f"not identified: every trial that reports it has {_fmt(lo)} "
                              f"({len(known)} of {len(studies)} trials report it); prior-driven term added")
                elif outside:
                    status = (f"not in the model; outside the trials' range [{_fmt(lo)}, {_fmt(hi)}]; "
                              "prior-driven term added")
                else:
                    status = (f"not in the model (varies in the trials, {_fmt(lo)}-{_fmt(hi)}); prior term added; "
                              f"fit it as an effect modifier to let the data speak")
            else:
                if COVARIATES.get(cov) in ("fraction", "flag"):
                    ref = float("nan")
                    dist = max(x, 1.0 - x)
                    status = ("not reported by any trial informing the model; prior-driven term added at the "
                              "worst-case distance")
                else:
                    row["status"] = "not reported by any trial informing the model; no term can be added"
                    notes.append(f"{cov} = {_fmt(v)}: no trial reports {cov}; the prediction cannot adjust for it")
                    rows.append(row)
                    return
            if pri is None:
                row["status"] = status.replace("prior-driven term added", "no prior given: no term added")
                rows.append(row)
                return
            row.update(distance=dist, prior=str(pri), added_sd=abs(dist) * prior_sd(pri), status=status)
            terms.append(Term(role=role, covariate=cov, target_value=x, reference=ref, distance=dist, prior=pri,
                              status=status))
            rows.append(row)

        # ---------------------------------------------------------- effect (log-OR)
        for cov in list(COVARIATES) + ["regimen", "phase"]:
            covariate_row(cov, "effect", cov in eff_sources, studies_eff)
        # ---------------------------------------------------------- baseline
        if self.baseline_terms_apply(target):
            for cov in list(COVARIATES) + ["phase"]:
                covariate_row(cov, "baseline", cov in base_sources, studies_all)
        # ---------------------------------------------------------- comparator
        comp = target.comparator
        unseen = None
        ref_comp = self.reference_comparator()
        seen = self.comparators(studies_eff)
        seen_txt = ", ".join(f"{k} ({v} trial{'s' if v > 1 else ''})" for k, v in seen.items())
        if ref_comp is not None:
            levels = self.comparator_levels(ref_comp)
            comparator_label = comp or ref_comp
            known_comp = comparator_label in levels
            in_model = True
        else:
            comparator_label = comp or f"control (pooled: {', '.join(seen)})"
            known_comp = comp is None or comp in seen
            in_model = False
        base_row = {
            "covariate": "comparator", "target_value": _fmt(comp), "in_model": in_model, "n_trials": len(studies_eff),
            "n_known": len(studies_eff), "trials_unreported": "", "data_min": np.nan, "data_max": np.nan,
            "data_mean": np.nan, "distance": 0.0, "prior": "", "added_sd": 0.0, "unit": UNITS["comparator"],
        }
        if known_comp:
            if in_model:
                st = f"in the model (reference {ref_comp}); the trials used {seen_txt}"
            elif comp is None:
                st = f"not set: the pooled effect averages over the trials' comparators: {seen_txt}"
            else:
                st = f"not modelled: {comp} is among the trials' comparators ({seen_txt}); the pooled effect averages over them"
            rows.append({**base_row, "role": "effect", "outside_data": False, "status": st})
        else:
            # one unknown: how the unseen comparator's arm differs from the trials'
            # comparators (the TAC arm does not depend on the comparator). With a model
            # baseline it shifts the comparator arm (-Delta); with the target's own
            # comparator-arm risk it shifts the TAC arm (+Delta). Either way the log-OR
            # moves by +Delta.
            pri = eff_pri.get("comparator")
            st = f"no trial used {comp} (the trials used {seen_txt}); prior-driven term added"
            rows.append({**base_row, "role": "effect", "outside_data": True, "distance": 1.0,
                         "prior": str(pri) if pri else "", "added_sd": prior_sd(pri) if pri else 0.0,
                         "status": st if pri else st.replace("prior-driven term added", "no prior given")})
            if pri is not None:
                terms.append(Term(role="effect", covariate="comparator", target_value=1.0, reference=0.0,
                                  distance=1.0, prior=pri, status=st))
            unseen = comp
        # ---------------------------------------------------------- regimen label
        if target.regimen is not None:
            regimen_label = f"TAC {target.regimen}"
        elif "regimen" in eff_sources:
            regimen_label = "TAC duo (model reference)"
        else:
            regimen_label = "TAC (regimens pooled as in the trials)"
        # ---------------------------------------------------------- baseline text
        bsrc, btxt, bnotes = self.baseline_description(target)
        notes.extend(bnotes)
        notes.extend(dropped_study_notes(self.design))
        inv = pd.DataFrame(rows, columns=[
            "covariate", "role", "target_value", "in_model", "n_trials", "n_known", "trials_unreported", "data_min",
            "data_max", "data_mean", "outside_data", "distance", "prior", "added_sd", "unit", "status"])
        return Plan(target=target, outcome=self.outcome, direction=self.direction, comparator_label=comparator_label,
                    regimen_label=regimen_label, baseline_source=bsrc, baseline_text=btxt, terms=terms, inventory=inv,
                    notes=notes, unseen_comparator=unseen)

    # ------------------------------------------------------------------ design rows
    def effect_row(self, target: Target, arm: ArmSpec) -> np.ndarray:
        des = self.design
        row = np.zeros(len(des.effect_names))
        vals = target.covariate_values()
        phase = vals.get("phase")
        for k, tr in enumerate(des.effect_transforms):
            if tr.source == "comparator":
                if not arm.treated and arm.comparator == tr.level:
                    row[k] = -1.0
            elif not arm.treated:
                continue
            elif tr.source == "regimen":
                row[k] = 1.0 if arm.regimen == "triple" else 0.0
            elif tr.source == "phase":
                row[k] = 1.0 if phase == "maintenance" else 0.0
            else:
                v = vals.get(tr.source)
                if v is None:
                    row[k] = 0.0
                elif tr.kind == "continuous":
                    row[k] = float(tr.apply(self.clip(tr, float(v), "effect")))
                else:
                    row[k] = float(v)
        return row

    def baseline_row(self, target: Target) -> np.ndarray:
        des = self.design
        row = np.zeros(len(des.baseline_names))
        vals = target.covariate_values()
        for k, tr in enumerate(des.baseline_transforms):
            v = vals.get(tr.source)
            if tr.source == "phase":
                row[k] = 1.0 if v == "maintenance" else 0.0
            elif v is None:
                row[k] = 0.0
            elif tr.kind == "continuous":
                row[k] = float(tr.apply(self.clip(tr, float(v), "baseline")))
            else:
                row[k] = float(v)
        return row

    # ------------------------------------------------------------------ fitted ranges
    def continuous_transform(self, cov: str, role: str):
        """The continuous transform of ``cov`` in the model (``role`` "effect": an effect
        modifier; "baseline": a baseline covariate), or None."""
        des = self.design
        trs = getattr(des, "effect_transforms" if role == "effect" else "baseline_transforms", None) or []
        return next((t for t in trs if t.source == cov and t.kind == "continuous"), None)

    def fitted_range(self, tr, role: str) -> tuple[float, float]:
        """[lower, upper] of the study values a continuous coefficient was fitted on: the
        transform's stored range, else (a transform made without one) the study values of
        the trials that inform it (those with a treated arm for an effect modifier, every
        included trial for a baseline covariate)."""
        if tr.lower is not None and tr.upper is not None:
            return float(tr.lower), float(tr.upper)
        studies = self.effect_studies() if role == "effect" else list(self.design.study_ids)
        known = self.study_values(tr.source, studies).dropna()
        if not len(known):
            return -math.inf, math.inf
        return float(known.min()), float(known.max())

    def clip(self, tr, value: float, role: str) -> float:
        """``value`` limited to the coefficient's fitted range."""
        lo, hi = self.fitted_range(tr, role)
        return float(min(max(value, lo), hi))

    # ------------------------------------------------------------------ coefficients
    def coefficient_columns(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """``(label, variable, index)`` of every fitted coefficient a target can use:
        ``beta[name]`` (column k of ``beta``) and ``gamma[name]``; the labels are those of
        :func:`bayesln.predict.extrapolation.contraction_table`."""
        des = self.design
        out: list[tuple[str, str, tuple[int, ...]]] = []
        if des.effect_names and self.has("beta"):
            out += [(f"beta[{n}]", "beta", (k,)) for k, n in enumerate(des.effect_names)]
        if getattr(des, "baseline_names", None) and self.has("gamma"):
            out += [(f"gamma[{n}]", "gamma", (k,)) for k, n in enumerate(des.baseline_names)]
        return out

    @contextmanager
    def data_part(self, kappa: dict[str, float], only: Iterable[str] | None = None) -> Iterator[None]:
        """Within the block the draws of each coefficient (``only`` those labels, default
        all) are ``mean + sqrt(kappa) * (theta - mean)``: their spread is the data's part
        ``kappa * Var_post`` of the posterior variance (module docstring). ``kappa`` maps a
        label of :meth:`coefficient_columns` to its contraction in [0, 1]; labels it lacks
        are left as they are."""
        saved = self._cache
        self._cache = dict(saved)
        changed: set[str] = set()
        keep = None if only is None else set(only)
        try:
            for label, var, idx in self.coefficient_columns():
                if keep is not None and label not in keep:
                    continue
                k = kappa.get(label)
                if k is None or not np.isfinite(k) or k >= 1.0:
                    continue
                if var not in changed:
                    self._cache[var] = np.array(self.draw(var), dtype=float, copy=True)
                    changed.add(var)
                a = self._cache[var]
                sl = (slice(None),) + tuple(idx)
                col = a[sl]
                m = float(np.mean(col))
                a[sl] = m + math.sqrt(max(float(k), 0.0)) * (col - m)
            yield
        finally:
            self._cache = saved

    def coefficient_support(self, label: str) -> dict:
        """How many trials inform a fitted coefficient (see :func:`coefficient_support`)."""
        var, _, name = label.partition("[")
        name = name.rstrip("]")
        des = self.design
        trs = des.effect_transforms if var == "beta" else des.baseline_transforms
        tr = next((t for t in trs if t.name == name), None)
        if tr is None:
            return {"n_trials": np.nan, "n_regression": np.nan, "trials": ""}
        arms = des.arms
        studies = self.effect_studies() if var == "beta" else list(des.study_ids)
        if tr.source == "comparator":
            ctrl = arms[~arms["treated"].astype(bool)]
            used = set(ctrl.loc[ctrl["treatment"].astype(str) == str(tr.level), "study"])
            vals = pd.Series([1.0 if s in used else 0.0 for s in studies], index=pd.Index(studies, dtype=object))
        else:
            vals = self.study_values(tr.source, studies)
            if tr.kind != "continuous":
                vals = (vals > 0).astype(float).where(vals.notna())
        return coefficient_support(vals)

    # ------------------------------------------------------------------ noise
    def noise(self, target: Target, plan: Plan, seed: int) -> dict[str, Any]:
        """The random numbers of one target (fixed streams, see :func:`stream`)."""
        key = (target.name, self.outcome)
        S = self.S
        out = {
            "e_tau": stream(seed, *key, "tau").standard_normal(S),
            "e_mu": stream(seed, *key, "sigma_mu").standard_normal(S),
            "pick": stream(seed, *key, "study").integers(0, max(self.design.n_studies, 1), S),
            "z": {t.key: stream(seed, *key, "extrapolation", t.key).standard_normal(S) for t in plan.terms},
        }
        if target.baseline_risk is not None:
            out["baseline"] = target.baseline_risk.logit_draws(stream(seed, *key, "baseline"), S)
        return out

    def term_sums(self, plan, noise, terms, include_terms: bool, S: int):
        """(effect, baseline, comparator) sums of the extrapolation terms' draws (zeros
        without terms): the log-OR shift, the comparator's log-odds shift, and the shift
        of an unseen comparator."""
        terms = self.term_draws(plan, noise) if terms is None else terms
        eff_ext, base_ext, comp_ext = np.zeros(S), np.zeros(S), np.zeros(S)
        if include_terms:
            for t in plan.terms:
                if t.covariate == "comparator":
                    comp_ext = comp_ext + terms[t.key]
                elif t.role == "effect":
                    eff_ext = eff_ext + terms[t.key]
                else:
                    base_ext = base_ext + terms[t.key]
        return eff_ext, base_ext, comp_ext

    @staticmethod
    def term_draws(plan: Plan, noise: dict, override: dict[str, tuple[float, float]] | None = None) -> dict[str, np.ndarray]:
        """Draws of each extrapolation term's contribution Delta * distance; ``override``
        maps a term key to (prior mean, prior sd) for the sensitivity table."""
        out = {}
        for t in plan.terms:
            mu, sd = prior_mean(t.prior), prior_sd(t.prior)
            if override and t.key in override:
                mu, sd = override[t.key]
                z = noise["z"][t.key]
                out[t.key] = (mu + sd * z) * t.distance
            elif t.prior.dist == "normal":
                out[t.key] = (mu + sd * noise["z"][t.key]) * t.distance
            else:  # student_t, robust_normal: the normal stream through the prior's quantile function
                from scipy import stats

                out[t.key] = prior_quantile(t.prior, stats.norm.cdf(noise["z"][t.key])) * t.distance
        return out

    # ------------------------------------------------------------------ linear predictors
    def etas(self, plan: Plan, arms: list[ArmSpec], level: str, noise: dict,
             terms: dict[str, np.ndarray] | None = None, include_terms: bool = True) -> np.ndarray:
        """Draws (S, n_arms) of the arms' log odds at ``level``."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        des = self.design
        target = plan.target
        S = self.S
        d = self.draw("d")
        delta = d.copy()
        if level == "new_trial" and self.has("tau"):
            delta = d + self.draw("tau") * noise["e_tau"]
        eff_ext, base_ext, comp_ext = self.term_sums(plan, noise, terms, include_terms, S)
        beta = self.draw("beta") if des.effect_names else np.zeros((S, 0))
        rows = np.array([self.effect_row(target, a) for a in arms]).reshape(len(arms), beta.shape[1])
        lin = beta @ rows.T  # (S, n_arms)
        if plan.baseline_source == "target":
            # the target's risk is the comparator arm's: remove that arm's own row
            comp_arm = next((a for a in arms if not a.treated), ArmSpec(False, comparator=target.comparator))
            c_row = self.effect_row(target, comp_arm)
            b = noise["baseline"] - beta @ c_row
        elif self.baseline == "exchangeable":
            b = self.draw("m").copy()
            if des.baseline_names:
                b = b + self.draw("gamma") @ self.baseline_row(target)
            b = b + base_ext
            if level == "new_trial":
                b = b + self.draw("sigma_mu") * noise["e_mu"]
        else:
            mu = self.draw("mu")
            b = mu.mean(axis=1) if level == "population" else mu[np.arange(S), noise["pick"]]
            b = b + base_ext
        treated = np.array([a.treated for a in arms], dtype=float)
        eta = b[:, None] + lin + treated[None, :] * (delta + eff_ext)[:, None]
        if plan.unseen_comparator is not None:
            if plan.baseline_source == "target":
                eta = eta + treated[None, :] * comp_ext[:, None]
            else:
                hit = np.array([(not a.treated) and a.comparator == plan.unseen_comparator for a in arms], dtype=float)
                eta = eta - hit[None, :] * comp_ext[:, None]
        return eta


    # ------------------------------------------------------------------ outcomes
    #: the outcomes one prediction reports (the ordinal engine: complete and total response)
    multi_outcome = False

    def outcomes(self) -> tuple[str, ...]:
        return (self.outcome,)

    def outcome_quantities(self, plan: Plan, arms: list[ArmSpec], level: str, noise: dict,
                           terms: dict[str, np.ndarray] | None = None, include_terms: bool = True, *,
                           margin: float) -> dict[str, dict[str, np.ndarray]]:
        """``{outcome: quantities}`` of a TAC arm (``arms[0]``) vs a comparator arm
        (``arms[1]``) at ``level`` (see :func:`quantities_from_p`)."""
        eta = self.etas(plan, arms, level, noise, terms, include_terms=include_terms)
        return {self.outcome: quantities_from_eta(eta[:, 0], eta[:, 1], self.direction, margin)}

    def used_parameters(self, target: Target, arms: list[ArmSpec]) -> list[str]:
        """Effect modifiers / baseline covariates of the model the target uses at a value
        other than the reference (their contraction matters for this prediction)."""
        des = self.design
        used = []
        if des.effect_names:
            diff = self.effect_row(target, arms[0]) - self.effect_row(target, arms[1])
            used += [f"beta[{n}]" for n, v in zip(des.effect_names, diff) if abs(v) > 1e-12]
        if getattr(des, "baseline_names", None) and target.baseline_risk is None:
            z = self.baseline_row(target)
            used += [f"gamma[{n}]" for n, v in zip(des.baseline_names, z) if abs(v) > 1e-12]
        return used

    @classmethod
    def accepts(cls, result) -> bool:
        return _is_core(result)


# ============================================================================ registry
_ENGINES: list[tuple[type, type]] = [(FitResult, CoreEngine)]


def register_engine(result_type: type, engine_type: type) -> None:
    """Let :func:`bayesln.predict.predict` handle another family of fit results:
    ``engine_type(result, draws=, seed=)`` must offer ``plan``, ``noise``, ``term_draws``,
    ``outcomes`` and ``outcome_quantities`` as :class:`CoreEngine` does (subclassing it
    gives the plan and the extrapolation terms for free), and may define a classmethod
    ``accepts(result)``. Later registrations win (a subclass's engine before its
    parent's)."""
    _ENGINES.insert(0, (result_type, engine_type))


def engine_for(result, draws: int | None = None, seed: int = 0, data=None):
    """The prediction engine of a fit result. ``data`` (a TrialData) gives the study-level
    covariates of the trials to engines whose fit results do not carry them (the ordinal
    family); the core engine reads them from its design and ignores it."""
    import sys

    if "bayesln.hierarchy.ordinal" in sys.modules:  # else no result can be an ordinal one (and its
        import bayesln.predict.ordinal  # noqa: F401  engine would import PyMC for nothing); registers it
    if "bayesln.hierarchy.joint" in sys.modules:  # likewise the joint efficacy-safety family
        import bayesln.predict.joint  # noqa: F401
    if "bayesln.hierarchy.network" in sys.modules:  # likewise the network family
        import bayesln.predict.network  # noqa: F401

    for rtype, etype in _ENGINES:
        acc = getattr(etype, "accepts", None)
        if isinstance(result, rtype) and (acc is None or acc(result)):
            if data is not None and getattr(etype, "takes_data", False):
                return etype(result, draws=draws, seed=seed, data=data)
            return etype(result, draws=draws, seed=seed)
    raise TypeError(
        f"no prediction engine for {type(result).__name__}; supported: core model FitResult "
        "(bayesln.hierarchy.fit_core), the ordinal CR / PR / NR model (bayesln.hierarchy.fit_ordinal), the "
        "joint efficacy-safety model (bayesln.hierarchy.fit_joint) and the network meta-analysis "
        "(bayesln.hierarchy.fit_network, consistency model). "
        "Other families register one with bayesln.predict.register_engine"
    )


def _is_core(result) -> bool:
    des = getattr(result, "design", None)
    return des is not None and hasattr(des, "effect_transforms") and hasattr(des, "baseline_transforms") and \
        "d" in result.idata.posterior and "eta" in result.idata.posterior
