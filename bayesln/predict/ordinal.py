"""Predictions from the ordinal renal-response model: coherent P(CR), P(PR), P(CR or PR).

For an ordinal fit (:func:`bayesln.hierarchy.fit_ordinal`, spec
``models/ordinal_response.toml``) and a :class:`~bayesln.predict.targets.Target`,
:func:`bayesln.predict.predict` returns an :class:`OrdinalPrediction`: per posterior draw
s and arm (TAC of the target's regimen; the target's comparator), the two linear
predictors of the model's link are built exactly as the model builds its own targets
(``P_cr``, ``P_resp`` in ordinal.py)::

    x1 = b1 + A . beta1 + t * (delta1 + sum_k Delta_k (x_k - xbar_k))
    sequential (continuation-ratio) logit, step 1 "response", step 2 "CR | response":
        x2 = b2 + A . beta2 + t * (delta2 + sum_k Delta_k (x_k - xbar_k))
        P(CR or PR) = inv_logit(x1)     P(CR) = P(CR or PR) * inv_logit(x2)
    cumulative (proportional-odds) logit:
        x2 = x1 - exp(g),  g = b2 [+ t * psi + A . psi_beta]     (log of the cut-point gap)
        P(CR or PR) = inv_logit(x1)     P(CR) = inv_logit(x2)
    P(PR) = P(CR or PR) - P(CR),  P(NR) = 1 - P(CR or PR)

so P(CR) <= P(CR or PR) and P(PR) >= 0 in every draw, for every target, at both levels
(``t`` = 1 on TAC, 0 on the comparator; ``A`` the arm's ``comparator:<c>`` (-1 on a
non-reference comparator), ``regimen:triple`` and ``phase:maintenance`` indicators;
``delta1 = delta2 = d`` with the default shared effect, ``d[stage]`` when
cut-point-specific). The derived quantities (RD, RR, OR, NNT, P(TAC better),
P(RD > margin)) of complete response and of complete-or-partial response are computed from
these same probability draws by :func:`bayesln.predict.engine.quantities_from_p`, as on
the core path.

Levels
------
* ``population`` (a typical trial in the target population): ``delta = d`` and the
  model's **reference baseline** ``(b1, b2)`` - exactly the baseline of the fit's own
  targets (``reference_baseline`` of fit_ordinal): with exchangeable baselines the typical
  study ``m`` (per step; ``m``, ``kappa_mean`` for the cumulative link), plus
  ``gamma_phase`` for a maintenance target when the fit has a phase effect; with
  independent baselines (the default spec) the mean of the study baselines over the trials
  reporting CR, PR and NR; with ``reference_baseline = {...}`` the fixed probabilities.
  At the reference covariate values the population-level P(CR), P(CR or PR) therefore
  equal the fit's ``P_cr`` / ``P_resp`` draw by draw.
* ``new_trial`` (a new trial / clinic): ``delta = d + tau * e`` (one e for both steps with
  the shared effect - the model's own random effect is shared; one per step when
  cut-point-specific) and a new baseline: exchangeable baselines ``m + sigma_mu * e'``
  (independent e' per step, as the model's non-centred ``alpha_raw``); independent
  baselines: the baselines of **one** of the reference trials drawn at random (both steps
  of the same trial, so their correlation is kept) - the empirical spread of the trials'
  baselines stands in for the baseline model the fit does not have; a fixed reference
  baseline has no spread (said in the report).

A target's ``baseline_risk`` is read as its comparator arm's **P(CR or PR)** (the first
step / cut-point, the quantity reported as "response" by most cohorts, e.g. the ALMS
example in targets.toml): it replaces the comparator's ``x1`` at both levels; the
comparator's split of responders into CR and PR (step 2 of the sequential logit; the
cut-point gap of the cumulative one) still comes from the fitted trials at the level's
baseline.

Unidentified effect modifiers
-----------------------------
The ordinal model's effect modifiers are regimen, comparator and phase only. Population
covariates of a target (asian_fraction, class_v_fraction, class_iii_iv_fraction,
pediatric, refractory, mean_age, ...) are handled exactly as on the core path
(:meth:`bayesln.predict.engine.CoreEngine.plan`, priors of :mod:`bayesln.predict.priors`):
a term ``Delta_c * (x_target - xbar_c)`` with ``Delta_c`` drawn from its documented prior
(default Normal(0, 0.5) per full switch of the population) when the target lies away from
the trials' mean, and reported as prior-driven. On the ordinal scale **one draw of each
term is added to the log odds ratio of every step / cut-point** (sequential: both steps;
cumulative: the location, which moves both cut-points, the gap is left as fitted), the
ordinal analogue of the shared ("proportional") treatment effect. Baseline terms shift the
comparator's log odds of both steps (sequential) or its location (cumulative) by one draw
likewise; a comparator no trial used shifts the comparator arm on both steps. Coherence
holds for any value of the terms because it holds for any linear predictors.

Fitted modifiers and the prior share
------------------------------------
The report lists every fitted coefficient the target uses (``beta[name]`` or
``beta[name,step]``, ``psi_beta[...]``, ``gamma_phase[...]``) with the number of trials
that inform it (:meth:`OrdinalEngine.coefficient_support`: a phase effect in the bundled
data rests on its one maintenance trial), its contraction and its prior share, exactly as
on the core path (:mod:`bayesln.predict.extrapolation`): the prior share of a prediction
counts the extrapolation terms and the prior part ``(1 - kappa)`` of each fitted
coefficient's posterior variance, and a target leaning on a coefficient that one trial
carries is reported "data-thin: one trial", never "Extrapolation: none". The ordinal
model's modifiers are 0/1 indicators only, so no fitted slope is ever clipped here.

Study-level covariates of the trials
------------------------------------
The ordinal design carries no population covariates, so the range of the trials (which
target covariates lie outside them) is read from the data the model was fitted on
(:func:`study_covariates`): ``predict(..., data=TrialData)``, else the data stored with a
run folder (``data.csv``, loaded by :func:`bayesln.predict.command.load_run_result`), else
the bundled dataset whose studies and response counts match the fit. When none is found
every covariate is treated as "not reported by any trial" (worst-case distance for
fractions and flags) and the report says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit, log_expit, logit

from bayesln.hierarchy.ordinal import OrdinalResult
from bayesln.predict.engine import (
    LEVELS,
    ArmSpec,
    CoreEngine,
    Plan,
    coefficient_support,
    quantities_from_p,
    register_engine,
    stream,
    study_values,
)
from bayesln.predict.extrapolation import PRIOR_DRIVEN_SHARE, ExtrapolationReport
from bayesln.predict.prediction import TABLE_COLUMNS, Prediction, PredictionOutput, _share
from bayesln.predict.targets import COVARIATES, Target

__all__ = ["ORDINAL_OUTCOMES", "OrdinalEngine", "OrdinalPrediction", "study_covariates"]

#: the outcomes of an ordinal prediction with their derived quantities (RD, RR, OR, NNT, ...)
ORDINAL_OUTCOMES = ("complete_response", "total_response")
CATEGORIES = {"cr": "complete_response", "pr": "partial_response", "resp": "total_response", "nr": "no_response"}
_COV_COLUMNS = tuple(dict.fromkeys(("year",) + tuple(COVARIATES)))
_ARM_COLUMNS = ("study", "arm", "treatment", "regimen", "treated", "phase")


# ============================================================================ trial covariates
def _studies_table(data) -> pd.DataFrame:
    """Study-level covariates of a TrialData (or of a DataFrame with a ``study`` column or
    index), one row per study."""
    if hasattr(data, "studies") and isinstance(getattr(data, "studies"), pd.DataFrame):
        st = data.studies
    elif isinstance(data, pd.DataFrame):
        st = data.set_index("study") if "study" in data.columns else data
        st = st[~st.index.duplicated()]
    else:
        raise TypeError(f"data must be a TrialData or a DataFrame of study covariates, not {type(data).__name__}")
    st = st.copy()
    st.index = st.index.astype(str)
    for c in _COV_COLUMNS:
        if c not in st.columns:
            st[c] = pd.NA
    return st[list(_COV_COLUMNS)]


def _counts_match(design, td) -> bool:
    """Every arm of the ordinal design is in ``td`` with the same response counts."""
    studies = set(design.study_ids)
    if not studies <= set(map(str, td.studies.index)):
        return False
    out = td.outcomes
    out = out[out["study"].astype(str).isin(studies)]
    known = {(str(s), str(a), str(o)): (e, n) for s, a, o, e, n in
             zip(out["study"], out["arm"], out["outcome"], out["events"], out["n"])}
    for r in design.arms.to_dict("records"):
        seen = 0
        for key, o in (("cr", "complete_response"), ("pr", "partial_response"), ("total", "total_response")):
            v = r.get(key)
            if v is None or pd.isna(v):
                continue
            got = known.get((str(r["study"]), str(r["arm"]), o))
            if got is None or pd.isna(got[0]) or pd.isna(got[1]):
                continue
            if int(got[0]) != int(v) or int(got[1]) != int(r["n"]):
                return False
            seen += 1
        if seen == 0:
            return False
    return True


def study_covariates(result, data=None) -> tuple[pd.DataFrame | None, str]:
    """``(table, source)``: the study-level covariates (year and the population
    covariates of :data:`bayesln.predict.targets.COVARIATES`) of the trials in an ordinal
    fit, one row per included study, and where they come from. Looked up in ``data``
    (a TrialData or a DataFrame), then in ``result._cache["predict.data"]`` (set when a run
    folder is loaded), then in the bundled datasets (the one whose fingerprint equals the
    fit's, else whose studies contain the fit's with the same response counts). ``(None,
    reason)`` when nothing matches."""
    des = result.design
    studies = [str(s) for s in des.study_ids]
    cache = getattr(result, "_cache", None)
    if data is None and isinstance(cache, dict):
        data = cache.get("predict.data")
        src = "the run folder's data.csv"
    else:
        src = "the data given to predict"
    if data is not None:
        st = _studies_table(data)
        missing = [s for s in studies if s not in st.index]
        if missing:
            raise ValueError(f"data lacks the fitted trial(s) {', '.join(missing)}: give the data the ordinal model was "
                             "fitted on")
        return st.loc[studies], src
    key = "predict.ordinal_covariates"
    if isinstance(cache, dict) and key in cache:
        return cache[key]
    found: tuple[pd.DataFrame | None, str] = (
        None, "the fit carries no study covariates and no bundled dataset matches its trials; pass data= to predict")
    try:
        import bayesln

        for name in bayesln.list_datasets():
            td = bayesln.load_dataset(name)
            fp = getattr(des, "fingerprint", "")
            if (fp and fp == td.fingerprint()) or _counts_match(des, td):
                found = (_studies_table(td).loc[studies], f"the bundled dataset {name!r} (its studies and response "
                                                          "counts match the fit)")
                break
    except Exception as exc:  # pragma: no cover - descriptive fallback
        found = (None, f"the study covariates could not be read ({exc}); pass data= to predict")
    if isinstance(cache, dict):
        cache[key] = found
    return found


# ============================================================================ engine
def _log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x <= 0, stable at both ends (Maechler 2012)."""
    x = np.minimum(np.asarray(x, float), 0.0)
    with np.errstate(divide="ignore"):
        return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


class OrdinalEngine(CoreEngine):
    """Predictions from an :class:`~bayesln.hierarchy.ordinal.OrdinalResult` (see the
    module docstring). Reuses :meth:`CoreEngine.plan` (inventory, extrapolation terms,
    comparator handling), :meth:`CoreEngine.term_draws` and the subsampling of draws."""

    multi_outcome = True
    takes_data = True

    def __init__(self, result, draws: int | None = None, seed: int = 0, data=None):
        super().__init__(result, draws=draws, seed=seed)
        des = self.design
        self.link = des.link
        self.cutpoint_specific = bool(des.cutpoint_specific)
        self.config = dict(result.config or {})
        ref = self.config.get("reference_baseline", "auto")
        if isinstance(ref, str):
            try:
                ref = json.loads(ref) if ref.strip().startswith("{") else ref
            except ValueError:
                pass
        self.reference_baseline = ref
        self.covariates, self.covariate_source = study_covariates(result, data)
        arms = des.arms[[c for c in _ARM_COLUMNS if c in des.arms.columns]].copy()
        arms["study"] = arms["study"].astype(str)
        if self.covariates is not None:
            arms = arms.merge(self.covariates, left_on="study", right_index=True, how="left")
        else:
            for c in _COV_COLUMNS:
                arms[c] = np.nan
        self.arms = arms
        self._study_values: dict = {}

    @classmethod
    def accepts(cls, result) -> bool:
        des = getattr(result, "design", None)
        return getattr(des, "family", None) == "ordinal" and "d" in result.idata.posterior

    # ------------------------------------------------------------------ basics
    @property
    def outcome(self) -> str:
        return "renal_response"

    @property
    def direction(self) -> str:
        return "benefit"

    def outcomes(self) -> tuple[str, ...]:
        return ORDINAL_OUTCOMES

    @property
    def baseline_mode(self) -> str:
        """``typical`` (exchangeable m), ``mean`` (mean over the reference trials) or
        ``fixed`` - the rule of the fit's reference baseline (reference_rule in ordinal.py)."""
        ref = self.reference_baseline
        if isinstance(ref, dict):
            return "fixed"
        if self.design.baseline == "exchangeable" and ref in ("auto", "typical"):
            return "typical"
        return "mean"

    def study_values(self, cov: str, studies: list[str]) -> pd.Series:
        """:func:`bayesln.predict.engine.study_values` of the design's arms joined with the
        trials' study covariates (cached on this engine: the covariates depend on ``data``)."""
        key = (cov, tuple(studies))
        if key not in self._study_values:
            self._study_values[key] = study_values(self.arms, cov, studies)
        return self._study_values[key]

    def _names(self) -> list[str]:
        return list(self.design.effect_names)

    def reference_comparator(self) -> str | None:
        if any(n.startswith("comparator:") for n in self._names()):
            return self.design.reference_comparator
        return None

    # ------------------------------------------------------------------ hooks of plan()
    def effect_sources(self) -> set[str]:
        out = set()
        for n in self._names():
            kind = n.partition(":")[0]
            if kind in ("regimen", "comparator", "phase"):
                out.add(kind)
        return out

    def baseline_sources(self) -> set[str]:
        return {"phase"} if self._phase_in_baseline() else set()

    def _phase_in_baseline(self) -> bool:
        return self.has("gamma_phase") and self.baseline_mode == "typical"

    def comparator_levels(self, ref_comp: str) -> set[str]:
        return {ref_comp} | {n.partition(":")[2] for n in self._names() if n.startswith("comparator:")}

    def baseline_terms_apply(self, target: Target) -> bool:
        # a target's baseline_risk fixes the comparator's P(CR or PR) only; under the
        # sequential link P(CR | response) of the comparator still comes from the trials
        return target.baseline_risk is None or self.link == "sequential"

    def _reference_text(self) -> str:
        refs = self.design.reference_studies
        names = [self.design.study_ids[i] for i in refs.get("stage1", [])]
        return f"{len(names)} {refs.get('rule', 'trials')} ({', '.join(names)})"

    def baseline_description(self, target: Target) -> tuple[str, str, list[str]]:
        steps = ("both steps (response; CR among responders)" if self.link == "sequential"
                 else "logit P(CR or PR) and the log cut-point gap")
        split = ("P(CR | response)" if self.link == "sequential" else "the cut-point gap (P(CR) vs P(CR or PR))")
        mode = self.baseline_mode
        if mode == "typical":
            model_txt = (f"the typical trial of the exchangeable baseline model (m, {steps}"
                         + (" + the maintenance shift gamma_phase" if self._phase_in_baseline() else "")
                         + "); a new trial adds sigma_mu per step")
        elif mode == "fixed":
            model_txt = ("the fit's fixed reference baseline " + json.dumps(self.reference_baseline, sort_keys=True)
                         + " (the same at both levels: no baseline spread)")
        else:
            model_txt = (f"the ordinal model's reference baseline, the mean of the study baselines of {steps} over the "
                         f"{self._reference_text()} (population)"
                         + ("; a new trial draws its baseline from the exchangeable model (m + sigma_mu per step)"
                            if self.design.baseline == "exchangeable" else
                            "; a new trial takes both baselines of one of these trials drawn at random"))
        if target.baseline_risk is not None:
            return "target", (f"comparator-arm P(CR or PR) given by the target: {target.baseline_risk.describe()}; "
                              f"the comparator's {split} from {model_txt}"), []
        if mode == "fixed":
            return "fixed", f"comparator-arm CR / PR / NR from {model_txt}", [
                "the fit fixes its reference baseline: the new-trial level adds no baseline spread"]
        if self.design.baseline == "exchangeable":
            return "model", f"comparator-arm CR / PR / NR from {model_txt}", []
        return "trials", (f"comparator-arm CR / PR / NR from {model_txt}; give the target a baseline_risk (its comparator "
                          "arm's P(CR or PR)) for absolute risks in another setting"), [
            "the fit has independent study baselines (no model for the comparator-arm risk): absolute risks use the "
            "included trials' baselines"]

    def plan(self, target: Target, **kw) -> Plan:
        plan = super().plan(target, **kw)
        if plan.terms:
            where = ("both steps of the sequential logit (response; CR among responders)" if self.link == "sequential"
                     else "the location of the cumulative logit (both cut-points; the gap as fitted)")
            plan.notes.append(f"ordinal model: each unidentified term adds one draw to the log odds ratio (and baseline "
                              f"terms to the comparator's log odds) of {where}, so P(CR) <= P(CR or PR) still holds in "
                              "every draw")
        if self.covariates is None:
            plan.notes.append(f"study covariates unknown: {self.covariate_source}")
        else:
            plan.notes.append(f"trial covariate ranges from {self.covariate_source}")
        return plan

    # ------------------------------------------------------------------ design rows
    def effect_row(self, target: Target, arm: ArmSpec) -> np.ndarray:
        names = self._names()
        row = np.zeros(len(names))
        for k, nm in enumerate(names):
            kind, _, lev = nm.partition(":")
            if kind == "comparator":
                if not arm.treated and arm.comparator == lev:
                    row[k] = -1.0
            elif not arm.treated:
                continue
            elif kind == "regimen":
                row[k] = 1.0 if arm.regimen == "triple" else 0.0
            elif kind == "phase":
                row[k] = 1.0 if target.phase == "maintenance" else 0.0
        return row

    def baseline_row(self, target: Target) -> np.ndarray:  # pragma: no cover - not used by this engine
        return np.zeros(0)

    def _labels(self, var: str) -> list[tuple[str, tuple[int, ...]]]:
        """(label, index) of each column of a coefficient variable, labelled as in
        :func:`bayesln.predict.extrapolation.contraction_table`."""
        if not self.has(var):
            return []
        da = self.result.idata.posterior[var]
        stages = [str(s) for s in da["stage"].values] if "stage" in da.dims else None
        if "covariate" not in da.dims:
            if stages is None:
                return [(var, ())]
            return [(f"{var}[{st}]", (s,)) for s, st in enumerate(stages)]
        names = [str(c) for c in da["covariate"].values]
        if stages is None:
            return [(f"{var}[{nm}]", (k,)) for k, nm in enumerate(names)]
        return [(f"{var}[{nm},{st}]", (k, s)) for k, nm in enumerate(names) for s, st in enumerate(stages)]

    def coefficient_columns(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """Every fitted coefficient a target can use: the effect modifiers ``beta`` (per
        step when cut-point-specific), their cut-point-gap effects ``psi_beta`` (cumulative
        link) and the maintenance shift of the baseline ``gamma_phase``."""
        return [(lab, var, idx) for var in ("beta", "psi_beta", "gamma_phase") for lab, idx in self._labels(var)]

    def used_parameters(self, target: Target, arms: list[ArmSpec]) -> list[str]:
        names = self._names()
        used = []
        if names:
            diff = self.effect_row(target, arms[0]) - self.effect_row(target, arms[1])
            for var in ("beta", "psi_beta"):
                labs = self._labels(var)
                for n, v in zip(names, diff):
                    if abs(v) > 1e-12:
                        used += [lab for lab, _ in labs if lab == f"{var}[{n}]" or lab.startswith(f"{var}[{n},")]
        if self._phase_in_baseline() and target.phase == "maintenance" and target.baseline_risk is None:
            used += [lab for lab, _ in self._labels("gamma_phase")]
        return used

    def coefficient_support(self, label: str) -> dict:
        """How many trials inform an ordinal coefficient (see
        :func:`bayesln.predict.engine.coefficient_support`): for ``comparator:c`` the
        trials using c vs the others, for ``regimen:triple`` the trials with a triple TAC
        arm vs the others, for the phase (effect modifier or ``gamma_phase``) the
        maintenance trials vs the others."""
        var, _, rest = label.partition("[")
        name = rest.rstrip("]").split(",")[0] if var != "gamma_phase" else "phase:maintenance"
        kind, _, lev = name.partition(":")
        des = self.design
        studies = [str(s) for s in des.study_ids]
        arms = self.arms
        idx = pd.Index(studies, dtype=object)
        if kind == "comparator":
            t = arms["treated"].astype(bool)
            used = set(arms.loc[~t & (arms["treatment"].astype(str) == lev), "study"])
            vals = pd.Series([1.0 if s in used else 0.0 for s in studies], index=idx)
        elif kind == "regimen":
            t = arms[arms["treated"].astype(bool)]
            trip = set(t.loc[(t["regimen"].astype("string") == "triple").fillna(False), "study"])
            vals = pd.Series([1.0 if s in trip else 0.0 for s in studies], index=idx)
        elif kind == "phase":
            vals = self.study_values("phase", studies)
        else:
            return {"n_trials": np.nan, "n_regression": np.nan, "trials": ""}
        return coefficient_support(vals)

    # ------------------------------------------------------------------ noise
    def noise(self, target: Target, plan: Plan, seed: int) -> dict:
        key = (target.name, self.outcome)
        S = self.S
        out = {
            "e_tau": stream(seed, *key, "tau").standard_normal(S),
            "e_tau2": stream(seed, *key, "tau", "stage2").standard_normal(S),
            "e_mu": stream(seed, *key, "sigma_mu").standard_normal(S),
            "e_mu2": stream(seed, *key, "sigma_mu", "stage2").standard_normal(S),
            "pick": stream(seed, *key, "study").random(S),
            "z": {t.key: stream(seed, *key, "extrapolation", t.key).standard_normal(S) for t in plan.terms},
        }
        if target.baseline_risk is not None:
            out["baseline"] = target.baseline_risk.logit_draws(stream(seed, *key, "baseline"), S)
        return out

    # ------------------------------------------------------------------ baselines
    def _fixed_baseline(self) -> tuple[float, float]:
        ref = self.reference_baseline
        p_cr0, p_tot0 = float(ref["complete_response"]), float(ref["total_response"])
        if self.link == "sequential":
            return float(logit(p_tot0)), float(logit(p_cr0 / p_tot0))
        lt, lc = float(logit(p_tot0)), float(logit(p_cr0))
        return lt, float(np.log(lt - lc))

    def baselines(self, target: Target, level: str, noise: dict) -> tuple[np.ndarray, np.ndarray]:
        """Draws of the reference comparator's (b1, b2): sequential the log odds of the two
        steps, cumulative logit P(CR or PR) and the log cut-point gap (see the module
        docstring for the rule of each level)."""
        S = self.S
        seq = self.link == "sequential"
        mode = self.baseline_mode
        if mode == "fixed":
            r1, r2 = self._fixed_baseline()
            return np.full(S, r1), np.full(S, r2)
        maint = target.phase == "maintenance"
        if self.design.baseline == "exchangeable" and (mode == "typical" or level == "new_trial"):
            m = self.draw("m")
            if seq:
                b1, b2 = m[:, 0].copy(), m[:, 1].copy()
            else:
                b1, b2 = m.copy(), self.draw("kappa_mean").copy()
            if level == "new_trial":
                sig = self.draw("sigma_mu")
                b1 = b1 + sig[:, 0] * noise["e_mu"]
                b2 = b2 + sig[:, 1] * noise["e_mu2"]
            if maint and self.has("gamma_phase"):
                g = self.draw("gamma_phase")
                if g.ndim == 2:
                    b1, b2 = b1 + g[:, 0], b2 + g[:, 1]
                else:
                    b1 = b1 + g
            return b1, b2
        refs = self.design.reference_studies
        i1 = np.asarray(refs["stage1"], int)
        i2 = np.asarray(refs["stage2"], int)
        if seq:
            alpha = self.draw("alpha")
            a1, a2 = alpha[:, :, 0], alpha[:, :, 1]
        else:
            a1, a2 = self.draw("a"), self.draw("kappa")
        if level == "population":
            return a1[:, i1].mean(axis=1), a2[:, i2].mean(axis=1)
        u = noise["pick"]
        rows = np.arange(S)
        k1 = np.minimum((u * len(i1)).astype(int), len(i1) - 1)
        k2 = np.minimum((u * len(i2)).astype(int), len(i2) - 1)
        return a1[rows, i1[k1]], a2[rows, i2[k2]]

    # ------------------------------------------------------------------ linear predictors
    def etas(self, *a, **k):  # pragma: no cover - guard: the core arithmetic does not apply
        raise NotImplementedError("the ordinal model has two linear predictors per arm: use stage_predictors / "
                                  "arm_probabilities (leave-one-trial-out validation is implemented for core fits only)")

    def stage_predictors(self, plan: Plan, arms: list[ArmSpec], level: str, noise: dict,
                         terms: dict[str, np.ndarray] | None = None,
                         include_terms: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Draws (S, n_arms) of the arms' two linear predictors ``(x1, x2)``: sequential
        logit the log odds of response and of CR among responders; cumulative logit
        logit P(CR or PR) and logit P(CR)."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        target = plan.target
        S = self.S
        seq = self.link == "sequential"
        d = self.draw("d")
        d1, d2 = (d, d) if d.ndim == 1 else (d[:, 0], d[:, 1])
        if level == "new_trial" and self.has("tau"):
            tau = self.draw("tau")
            if tau.ndim == 1:  # one random effect shared by both steps, as in the model
                d1 = d1 + tau * noise["e_tau"]
                d2 = d2 + tau * noise["e_tau"]
            else:
                d1 = d1 + tau[:, 0] * noise["e_tau"]
                d2 = d2 + tau[:, 1] * noise["e_tau2"]
        eff_ext, base_ext, comp_ext = self.term_sums(plan, noise, terms, include_terms, S)
        names = self._names()
        rows = np.array([self.effect_row(target, a) for a in arms]).reshape(len(arms), len(names))
        if names:
            beta = self.draw("beta")
            b_1, b_2 = (beta, beta) if beta.ndim == 2 else (beta[:, :, 0], beta[:, :, 1])
        else:
            b_1 = b_2 = np.zeros((S, 0))
        lin1, lin2 = b_1 @ rows.T, b_2 @ rows.T
        treated = np.array([a.treated for a in arms], dtype=float)[None, :]
        r1, r2 = self.baselines(target, level, noise)
        target_base = plan.baseline_source == "target"
        if target_base:
            comp_arm = next((a for a in arms if not a.treated), ArmSpec(False, comparator=target.comparator))
            r1 = noise["baseline"] - b_1 @ self.effect_row(target, comp_arm)
        else:
            r1 = r1 + base_ext
        if seq:
            r2 = r2 + base_ext  # the comparator's P(CR | response) comes from the trials in both cases
        x1 = r1[:, None] + lin1 + treated * (d1 + eff_ext)[:, None]
        x2 = r2[:, None] + lin2 + treated * (d2 + eff_ext)[:, None] if seq else None
        if plan.unseen_comparator is not None:
            if target_base:
                shift = treated * comp_ext[:, None]
            else:
                hit = np.array([(not a.treated) and a.comparator == plan.unseen_comparator for a in arms], dtype=float)
                shift = -hit[None, :] * comp_ext[:, None]
            x1 = x1 + shift
            if seq:
                x2 = x2 + shift
        if not seq:
            lg = np.broadcast_to(r2[:, None], x1.shape).copy()
            if self.has("psi"):
                lg = lg + treated * self.draw("psi")[:, None]
                if names and self.has("psi_beta"):
                    lg = lg + self.draw("psi_beta") @ rows.T
            x2 = x1 - np.exp(lg)
        return x1, x2

    def arm_probabilities(self, plan: Plan, arms: list[ArmSpec], level: str, noise: dict,
                          terms: dict[str, np.ndarray] | None = None, include_terms: bool = True) -> dict[str, np.ndarray]:
        """Draws (S, n_arms) of P(CR) ``cr``, P(PR) ``pr``, P(CR or PR) ``resp``, P(NR)
        ``nr`` and the log odds of CR ``logit_cr`` and of CR or PR ``logit_resp``.
        P(CR) <= P(CR or PR) holds exactly in floating point: P(CR) is P(CR or PR) times a
        probability (sequential) or capped at it (cumulative, as in the model)."""
        x1, x2 = self.stage_predictors(plan, arms, level, noise, terms, include_terms)
        p_resp = expit(x1)
        if self.link == "sequential":
            p_cr = p_resp * expit(x2)
            l_cr = log_expit(x1) + log_expit(x2)
        else:
            p_cr = np.minimum(expit(x2), p_resp)
            l_cr = np.minimum(log_expit(x2), log_expit(x1))
        return {"cr": p_cr, "pr": p_resp - p_cr, "resp": p_resp, "nr": expit(-x1),
                "logit_cr": l_cr - _log1mexp(l_cr), "logit_resp": x1}

    def outcome_quantities(self, plan: Plan, arms: list[ArmSpec], level: str, noise: dict,
                           terms: dict[str, np.ndarray] | None = None, include_terms: bool = True, *,
                           margin: float) -> dict[str, dict[str, np.ndarray]]:
        P = self.arm_probabilities(plan, arms, level, noise, terms, include_terms)
        return {
            "complete_response": quantities_from_p(P["cr"][:, 0], P["cr"][:, 1], self.direction, margin,
                                                   log_or=P["logit_cr"][:, 0] - P["logit_cr"][:, 1]),
            "total_response": quantities_from_p(P["resp"][:, 0], P["resp"][:, 1], self.direction, margin,
                                                log_or=P["logit_resp"][:, 0] - P["logit_resp"][:, 1]),
        }

    # ------------------------------------------------------------------ result
    def make_prediction(self, plan: Plan, arms: list[ArmSpec], noise: dict, terms: dict, out: dict, shares: dict,
                        report: ExtrapolationReport, *, margin: float, ci: float, seed: int) -> OrdinalPrediction:
        probs, pr_shares = {}, {}
        kappa = getattr(self, "_kappa", None) or {}
        thin = any(v < 1.0 for lab, v in kappa.items() if lab in {c for c, _, _ in self.coefficient_columns()})
        for level in LEVELS:
            P = self.arm_probabilities(plan, arms, level, noise, terms)
            probs[level] = {arm: {k: P[k][:, j] for k in CATEGORIES} for j, arm in enumerate(("tac", "comparator"))}
            if plan.terms or thin:
                # P(PR) with the prior-driven parts removed, as for every other quantity
                # (bayesln.predict.extrapolation: terms at their prior mean, coefficients
                # reduced to their data part)
                with self.data_part(kappa):
                    P0 = self.arm_probabilities(plan, arms, level, noise, terms, include_terms=False)
                pr_shares[level] = {"p_tac": _share(P["pr"][:, 0], P0["pr"][:, 0]),
                                    "p_comparator": _share(P["pr"][:, 1], P0["pr"][:, 1])}
            else:
                pr_shares[level] = {"p_tac": 0.0, "p_comparator": 0.0}
        preds = {o: Prediction(target=plan.target, outcome=o, direction=self.direction, draws=out[o],
                               extrapolation=report, margin=margin, ci=ci, comparator=plan.comparator_label,
                               regimen=plan.regimen_label, seed=seed, shares=shares[o]) for o in ORDINAL_OUTCOMES}
        return OrdinalPrediction(target=plan.target, predictions=preds, probabilities=probs, extrapolation=report,
                                 margin=margin, ci=ci, comparator=plan.comparator_label, regimen=plan.regimen_label,
                                 seed=seed, link=self.link, pr_shares=pr_shares)


register_engine(OrdinalResult, OrdinalEngine)


# ============================================================================ prediction
@dataclass
class OrdinalPrediction(PredictionOutput):
    """Coherent CR / PR / NR predictions for one target from an ordinal fit.

    ``probabilities[level][arm][category]``: draws of P(CR) ``cr``, P(PR) ``pr``,
    P(CR or PR) ``resp`` and P(NR) ``nr`` on ``tac`` and ``comparator``, level
    ``population`` or ``new_trial``; ``predictions["complete_response"]`` and
    ``predictions["total_response"]`` are :class:`~bayesln.predict.prediction.Prediction`
    objects (p_tac, p_comparator, RD, RR, OR, NNT, P(TAC better), P(RD > margin)) computed
    from those same draws; one :class:`ExtrapolationReport` for all of them."""

    target: Target
    predictions: dict[str, Prediction]
    probabilities: dict[str, dict[str, dict[str, np.ndarray]]]
    extrapolation: ExtrapolationReport
    margin: float
    ci: float
    comparator: str
    regimen: str
    seed: int
    link: str = "sequential"
    pr_shares: dict[str, dict[str, float]] = field(default_factory=dict)
    fit_status: str = "ok"
    warning: str = ""

    outcome = "renal_response"
    direction = "benefit"

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def n_draws(self) -> int:
        return len(self.probabilities["population"]["tac"]["cr"])

    @property
    def outcomes(self) -> tuple[str, ...]:
        return tuple(self.predictions)

    @property
    def shares(self) -> dict[str, dict[str, float]]:
        """Prior shares of the CR-or-PR prediction (as the core path's ``shares``)."""
        return self.predictions["total_response"].shares

    def __getitem__(self, outcome: str) -> Prediction:
        return self.predictions[outcome]

    @property
    def draws(self) -> dict[str, dict[str, np.ndarray]]:
        """Per level: ``p_<cat>_<arm>`` (cat cr / pr / resp / nr, arm tac / comparator)
        and ``<quantity>_<outcome>`` for the quantities of CR and CR-or-PR."""
        out = {}
        for level in LEVELS:
            d = {f"p_{cat}_{arm}": v for arm, cats in self.probabilities[level].items() for cat, v in cats.items()}
            for o, p in self.predictions.items():
                d.update({f"{k}_{o}": v for k, v in p.draws[level].items()})
            out[level] = d
        return out

    def samples(self, level: str = "population") -> pd.DataFrame:
        """The draws of one level as columns: P(CR), P(PR), P(CR or PR), P(NR) per arm and
        rd / rr / or / nnt of CR and of CR-or-PR."""
        cols = {f"p_{cat}_{arm}": self.probabilities[level][arm][cat] for arm in ("tac", "comparator")
                for cat in CATEGORIES}
        for o, p in self.predictions.items():
            for k in ("rd", "rr", "log_or", "or", "nnt"):
                cols[f"{k}_{o}"] = p.draws[level][k]
        return pd.DataFrame(cols)

    def table(self, ci: float | None = None) -> pd.DataFrame:
        """The tables of the CR and CR-or-PR predictions plus P(PR) on each arm (rows with
        ``outcome = partial_response``)."""
        ci = self.ci if ci is None else ci
        if not 0 < ci < 1:
            raise ValueError(f"ci must be in (0, 1), got {ci}")
        a = (1 - ci) / 2
        frames = [p.table(ci) for p in self.predictions.values()]
        comp = self.comparator.upper() if " " not in self.comparator else self.comparator
        outside = ", ".join(self.extrapolation.outside_data)
        rows = []
        for level in LEVELS:
            for arm, q, lab in (("tac", "p_tac", f"P(partial_response) on {self.regimen}"),
                                ("comparator", "p_comparator", f"P(partial_response) on {comp}")):
                x = self.probabilities[level][arm]["pr"]
                lo, med, hi = np.quantile(x, [a, 0.5, 1 - a])
                share = self.pr_shares.get(level, {}).get(q, 0.0)
                rows.append({"target": self.name, "outcome": "partial_response", "quantity": q, "label": lab,
                             "level": level, "median": float(med), "lower": float(lo), "upper": float(hi),
                             "mean": float(np.mean(x)), "ci_level": ci, "regimen": self.regimen,
                             "comparator": self.comparator, "outside_data": outside,
                             "prior_driven": bool(share >= PRIOR_DRIVEN_SHARE), "prior_share": share,
                             "note": "P(CR or PR) - P(CR), from the same draws"})
        frames.append(self._gate_columns(pd.DataFrame(rows, columns=TABLE_COLUMNS)))
        return pd.concat(frames, ignore_index=True)

    def __repr__(self) -> str:
        return f"<OrdinalPrediction {self.name} / CR, PR, CR or PR ({self.link} logit): {self.n_draws} draws{self._flags()}>"

    def plot(self, **kw):
        from bayesln.predict.plots import plot_ordinal_prediction

        return plot_ordinal_prediction(self, **kw)
