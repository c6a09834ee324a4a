"""Predictions from the joint efficacy-safety model: per outcome P(event) on TAC and on the
comparator, P(response without each adverse event) and the net benefit, from the same draws.

For a joint fit (:func:`bayesln.hierarchy.fit_joint`, spec
``models/joint_efficacy_safety.toml``: total_response, a benefit, with severe_infection,
serious_adverse_event, leucopenia and death, harms) and a
:class:`~bayesln.predict.targets.Target`, :func:`bayesln.predict.predict` returns a
:class:`JointPrediction`. Per posterior draw s, outcome o and arm (TAC; the target's
comparator) the log odds are built as the model's likelihood builds an arm's
(``mu_io + t * delta_io`` in :mod:`bayesln.hierarchy.joint`)::

    eta_C,o = b_o + G_o
    eta_T,o = b_o + G_o + delta_o + D_o            P_arm(o) = inv_logit(eta_arm,o)

``b_o`` the comparator-arm baseline of outcome o at the level (below), ``delta_o`` its log
odds ratio (``d_o``; ``+ beta_phase_o`` for a maintenance target of a ``phase_effect``
fit), ``D_o`` / ``G_o`` the extrapolation terms of the log odds ratio / of the baseline.
Every quantity of each outcome - RD, RR, OR, NNT (NNH for a harm), P(TAC better) (P(p_T >
p_C) for a benefit, P(p_T < p_C) for a harm), P(RD > margin) - comes from these draws by
:func:`bayesln.predict.engine.quantities_from_eta`, as on the core path. One margin serves
every outcome: the one of :func:`~bayesln.predict.predict` (``margin=``, else the target's,
else the default of a benefit, 0.10, when the fit has a benefit outcome).

Joint quantities
----------------
Per benefit outcome e (total_response), harm h, arm and level, from the same draws::

    P(e without h) = P(e) * (1 - P(h))
    net benefit    = RD(e) - RD(h) = (P_T(e) - P_C(e)) - (P_T(h) - P_C(h))
    P(net benefit > 0)

**P(e without h) assumes that response and the adverse event are independent within a
patient given the arm**: the trials report each outcome's margin only (responders, patients
with the event), never the cross-tabulation, so the joint probability is not identified;
the table's note and the text say so. The net benefit (a difference of risk differences,
TAC minus comparator) uses the margins only and needs no such assumption. In the table the
joint quantities are extra rows with ``outcome = "<e>~<h>"`` (the joint family's notation
of a pair) and ``quantity`` ``p_tac`` / ``p_comparator`` (P(e without h) per arm), ``rd``
(its difference), ``net_benefit`` and ``net_benefit_positive`` (a probability: ``mean``).
A fit without a benefit or without a harm outcome has no joint rows.

Levels
------
* ``population`` (a typical trial in the target population): ``delta_o = d_o`` and the
  baselines of the fit's trials: with independent baselines (the shipped spec) the mean of
  the study baselines ``mu_io`` over the trials reporting o (the ordinal engine's
  "reference trials", :meth:`bayesln.predict.ordinal.OrdinalEngine.baselines`); with
  exchangeable baselines the typical trial ``m_o`` (``+ gamma_phase_o`` for a maintenance
  target when the fit has that shift).
* ``new_trial`` (a new trial / clinic): the study effects of a new trial drawn from the
  fitted multivariate normal, ``delta = d + L e`` with ``L L' = diag(tau) R diag(tau)``, R
  from the posterior ``rho`` and one correlated vector per draw across the outcomes. These
  are the fit's own predictive draws, :meth:`JointResult.tradeoff_draws(predictive=True)
  <bayesln.hierarchy.joint.JointResult.tradeoff_draws>` (the summary's "predictive OR (new
  study)" and the exported ``or_new``): at the trials' covariates the new-trial OR of every
  outcome equals ``or_new`` draw by draw. They come from the fit's seeded stream, so they
  are the same for every target and prediction seed; the prediction's seed drives the
  baselines and the extrapolation terms. Baselines: independent - per outcome the baseline
  of **one** trial reporting it, drawn at random per draw and independently across
  outcomes (few trials report several outcomes, and the independent-baseline model treats
  the cells as unrelated); exchangeable - ``m_o + sigma_mu_o * e'_o`` with independent
  ``e'_o`` (the model's ``mu_raw`` is independent per cell).

A target's ``baseline_risk`` is the comparator arm's risk of the **benefit outcome** only
(the first benefit outcome of the fit, total_response for the shipped spec): it replaces
that outcome's comparator baseline at both levels; the comparator's risks of the adverse
events still come from the fitted trials as above.

Unidentified effect modifiers
-----------------------------
The joint model has no population covariates (and, unless ``phase_effect``, no effect
modifier at all), so every population covariate a target sets (asian_fraction,
class_v_fraction, pediatric, refractory, ...) is handled exactly as on the core and
ordinal paths (:meth:`bayesln.predict.engine.CoreEngine.plan`, priors of
:mod:`bayesln.predict.priors`): a term ``Delta_c * (x_target - xbar_c)`` with ``Delta_c``
from its documented prior when the target lies away from the trials' mean, reported as
prior-driven with its prior share and its sensitivity table. **Each term is drawn
independently for every outcome** (one standard-normal stream per term and outcome through
:meth:`CoreEngine.term_draws`): how a population trait modifies efficacy and how it
modifies each harm need not be the same, nor even of the same sign, and nothing in the
data links them; a shared draw would claim that they move together and would cancel in the
net benefit. Baseline terms and the term of a comparator no trial used are drawn per
outcome likewise (the latter moves the comparator arm, or the TAC arm of the outcome whose
comparator risk the target gives).

The trials' range of each covariate is read from the data the model was fitted on
(:func:`joint_study_covariates`): ``predict(..., data=TrialData)``, else the run folder's
``data.csv`` (:func:`bayesln.predict.command.load_joint_run`), else the bundled dataset
whose fingerprint or event counts match the fit; when none is found every covariate counts
as "not reported by any trial" (worst-case distance), and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesln.hierarchy.joint import JointResult
from bayesln.predict.engine import (
    LEVELS,
    CoreEngine,
    Plan,
    coefficient_support,
    quantities_from_eta,
    register_engine,
    stream,
)
from bayesln.predict.extrapolation import PRIOR_DRIVEN_SHARE, ExtrapolationReport
from bayesln.predict.ordinal import _ARM_COLUMNS, _COV_COLUMNS, OrdinalEngine, study_covariates
from bayesln.predict.prediction import TABLE_COLUMNS, Prediction, PredictionOutput, _interval, _share
from bayesln.predict.targets import Target

__all__ = ["INDEPENDENCE_NOTE", "JOINT_OUTCOME", "JointEngine", "JointPrediction", "joint_quantities",
           "joint_study_covariates"]

#: the ``outcome`` of a joint prediction (its report, its JSON key "<target>/efficacy_safety")
JOINT_OUTCOME = "efficacy_safety"
#: the quantities of a (benefit, harm) pair, per level
JOINT_QUANTITIES = ("p_tac", "p_comparator", "rd", "net_benefit", "net_benefit_positive")
INDEPENDENCE_NOTE = ("P(response without the adverse event) = P(response) x (1 - P(event)): assumes response and the "
                     "adverse event are independent within a patient given the arm (the trials report only margins)")
_NET_NOTE = "RD(benefit) - RD(harm), risk differences TAC minus comparator: margins only, no independence assumption"


# ============================================================================ trial covariates
def _rows_match(design, td) -> bool:
    """Every (study, arm, outcome) row of the joint design is in ``td`` with the same counts."""
    out = td.outcomes
    known = {(str(s), str(a), str(o)): (e, n) for s, a, o, e, n in
             zip(out["study"], out["arm"], out["outcome"], out["events"], out["n"])}
    for r in design.rows.itertuples():
        got = known.get((str(r.study), str(r.arm), str(r.outcome)))
        if got is None or pd.isna(got[0]) or pd.isna(got[1]) or (int(got[0]), int(got[1])) != (int(r.events), int(r.n)):
            return False
    return True


def joint_study_covariates(result, data=None) -> tuple[pd.DataFrame | None, str]:
    """``(table, source)``: the study-level covariates of the trials of a joint fit, by
    :func:`bayesln.predict.ordinal.study_covariates` (``data``, else the run folder's
    data, else the bundled dataset with the fit's fingerprint), else the bundled dataset
    whose rows have the fit's event counts (the ordinal matcher compares an ordinal
    design's response counts). ``(None, reason)`` when nothing matches."""
    table, source = study_covariates(result, data)
    if table is not None or data is not None:
        return table, source
    cache = result._cache
    key = "predict.joint_covariates"
    if key not in cache:
        import bayesln

        cache[key] = (None, "the fit carries no study covariates and no bundled dataset matches its trials; pass data= "
                            "to predict")
        for name in bayesln.list_datasets():
            td = bayesln.load_dataset(name)
            if _rows_match(result.design, td):
                cache[key] = (study_covariates(result, td)[0],
                              f"the bundled dataset {name!r} (its studies and event counts match the fit)")
                break
    return cache[key]


def joint_quantities(q: dict[str, dict[str, np.ndarray]], pairs) -> dict[str, dict[str, np.ndarray]]:
    """``{"<e>~<h>": quantities}`` of each (benefit e, harm h) pair from the per-outcome
    quantities ``q`` of one level: P(e without h) per arm (``p_tac``, ``p_comparator``;
    independence within a patient given the arm, see the module docstring), their
    difference ``rd``, the net benefit RD(e) - RD(h) and its indicator of being > 0."""
    out = {}
    for e, h in pairs:
        qe, qh = q[e], q[h]
        pt = qe["p_tac"] * (1.0 - qh["p_tac"])
        pc = qe["p_comparator"] * (1.0 - qh["p_comparator"])
        net = qe["rd"] - qh["rd"]
        out[f"{e}~{h}"] = {"p_tac": pt, "p_comparator": pc, "rd": pt - pc, "net_benefit": net,
                           "net_benefit_positive": (net > 0).astype(float)}
    return out


# ============================================================================ engine
class JointEngine(CoreEngine):
    """Predictions from a :class:`~bayesln.hierarchy.joint.JointResult` (see the module
    docstring). Reuses :meth:`CoreEngine.plan` (inventory, extrapolation terms, comparator
    handling), :meth:`CoreEngine.term_draws` / :meth:`CoreEngine.term_sums` (on
    draws x outcomes arrays) and the subsampling of draws."""

    multi_outcome = True
    takes_data = True
    study_values = OrdinalEngine.study_values

    def __init__(self, result, draws: int | None = None, seed: int = 0, data=None):
        super().__init__(result, draws=draws, seed=seed)
        des = self.design
        self.outcome_names = list(des.outcomes)
        self.K = len(self.outcome_names)
        self.directions = {o: des.directions[o] for o in self.outcome_names}
        benefits = [o for o in self.outcome_names if self.directions[o] == "benefit"]
        harms = [o for o in self.outcome_names if self.directions[o] == "harm"]
        #: the (benefit, harm) pairs of the joint quantities
        self.pairs = [(e, h) for e in benefits for h in harms]
        #: the outcome whose comparator-arm risk a target's baseline_risk gives
        self.baseline_outcome = benefits[0] if benefits else self.outcome_names[0]
        self.covariates, self.covariate_source = joint_study_covariates(result, data)
        rows = des.rows
        arms = rows.drop_duplicates(["study", "arm"])[[c for c in _ARM_COLUMNS if c in rows.columns]].copy()
        arms["study"] = arms["study"].astype(str)
        if self.covariates is not None:
            arms = arms.merge(self.covariates, left_on="study", right_index=True, how="left")
        else:
            for c in _COV_COLUMNS:
                arms[c] = np.nan
        self.arms = arms
        self._study_values: dict = {}
        oi = des.so["outcome_index"].to_numpy()
        #: per outcome: the (study, outcome) cells of the trials reporting it (columns of mu)
        self.cells = [np.flatnonzero(oi == k) for k in range(self.K)]
        self.reporting = [[str(s) for s in des.so["study"].to_numpy()[c]] for c in self.cells]

    @classmethod
    def accepts(cls, result) -> bool:
        des = getattr(result, "design", None)
        return getattr(des, "family", None) == "joint" and "d" in result.idata.posterior

    # ------------------------------------------------------------------ basics
    @property
    def outcome(self) -> str:
        return JOINT_OUTCOME

    @property
    def direction(self) -> str:
        """The direction whose default margin a prediction takes (``benefit`` when the fit
        has a benefit outcome): one margin for every outcome (module docstring)."""
        return "benefit" if "benefit" in self.directions.values() else "harm"

    def outcomes(self) -> tuple[str, ...]:
        return tuple(self.outcome_names)

    def effect_studies(self) -> list[str]:
        t = self.arms[self.arms["treated"].astype(bool)]
        return [s for s in self.design.study_ids if s in set(t["study"])]

    def comparators(self, studies: list[str] | None = None) -> dict[str, int]:
        c = self.arms[~self.arms["treated"].astype(bool)]
        if studies is not None:
            c = c[c["study"].isin(studies)]
        return c.groupby("treatment")["study"].nunique().sort_values(ascending=False).to_dict()

    def reference_comparator(self) -> str | None:
        return None  # controls are pooled: the joint model has no comparator indicators

    # ------------------------------------------------------------------ hooks of plan()
    def effect_sources(self) -> set[str]:
        return {"phase"} if self.has("beta_phase") else set()

    def baseline_sources(self) -> set[str]:
        return {"phase"} if self._phase_in_baseline() else set()

    def _phase_in_baseline(self) -> bool:
        return self.has("gamma_phase") and self.design.baseline == "exchangeable"

    def baseline_terms_apply(self, target: Target) -> bool:
        # a target's baseline_risk gives the benefit outcome's comparator risk only: the
        # adverse events' comparator risks still come from the trials
        return True

    def baseline_description(self, target: Target) -> tuple[str, str, list[str]]:
        if self.design.baseline == "exchangeable":
            model_txt = ("the typical trial of the exchangeable baseline model per outcome (m[o]"
                         + (" + gamma_phase[o] in maintenance" if self._phase_in_baseline() else "")
                         + "); a new trial adds sigma_mu[o] * e' (independent across outcomes)")
        else:
            n = "; ".join(f"{o}: {len(s)} trial{'s' if len(s) != 1 else ''}"
                          for o, s in zip(self.outcome_names, self.reporting))
            model_txt = ("per outcome the mean of the study baselines mu over the trials reporting it (population; "
                         f"{n}); a new trial takes, per outcome, the baseline of one of those trials drawn at random "
                         "(independently across outcomes)")
        own = self.baseline_outcome
        if target.baseline_risk is not None:
            return "target", (f"comparator-arm P({own}) given by the target: {target.baseline_risk.describe()}; the "
                              f"comparator-arm risks of the other outcomes from {model_txt}"), []
        if self.design.baseline == "exchangeable":
            return "model", f"comparator-arm risks from {model_txt}", []
        return "trials", (f"comparator-arm risks from {model_txt}; give the target a baseline_risk (its comparator "
                          f"arm's P({own})) for absolute risks in another setting"), [
            "the fit has independent study baselines (no model for the comparator-arm risks): absolute risks use the "
            "included trials' baselines"]

    def plan(self, target: Target, **kw) -> Plan:
        plan = super().plan(target, **kw)
        if plan.terms:
            plan.notes.append("joint model: each unidentified term is drawn independently for every outcome (the same "
                              "prior, separate draws: how a population trait modifies efficacy and each harm need not "
                              "be the same)")
        if self.pairs:
            plan.notes.append(INDEPENDENCE_NOTE)
        if self.covariates is None:
            plan.notes.append(f"study covariates unknown: {self.covariate_source}")
        else:
            plan.notes.append(f"trial covariate ranges from {self.covariate_source}")
        return plan

    # ------------------------------------------------------------------ fitted coefficients
    def coefficient_columns(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """The maintenance shifts a target can use: ``beta_phase[o]`` of each outcome's log
        odds ratio and, with exchangeable baselines, ``gamma_phase[o]`` of its baseline."""
        return [(f"{var}[{o}]", var, (k,)) for var in ("beta_phase", "gamma_phase") if self.has(var)
                for k, o in enumerate(self.outcome_names)]

    def used_parameters(self, target: Target, arms) -> list[str]:
        if target.phase != "maintenance":
            return []
        used = [f"beta_phase[{o}]" for o in self.outcome_names if self.has("beta_phase")]
        if self._phase_in_baseline():
            used += [f"gamma_phase[{o}]" for o in self.outcome_names
                     if target.baseline_risk is None or o != self.baseline_outcome]
        return used

    def coefficient_support(self, label: str) -> dict:
        """A maintenance shift of outcome o is informed by the maintenance trials among the
        trials reporting o (:func:`bayesln.predict.engine.coefficient_support`)."""
        o = label.partition("[")[2].rstrip("]")
        if o not in self.outcome_names:
            return {"n_trials": np.nan, "n_regression": np.nan, "trials": ""}
        return coefficient_support(self.study_values("phase", self.reporting[self.outcome_names.index(o)]))

    # ------------------------------------------------------------------ noise
    def noise(self, target: Target, plan: Plan, seed: int) -> dict:
        """The random numbers of one target, one column per outcome: the new-trial
        baselines and every extrapolation term are independent across outcomes."""
        key = (target.name, self.outcome)
        shape = (self.S, self.K)
        out = {
            "e_mu": stream(seed, *key, "sigma_mu").standard_normal(shape),
            "pick": stream(seed, *key, "study").random(shape),
            "z": {t.key: stream(seed, *key, "extrapolation", t.key).standard_normal(shape) for t in plan.terms},
        }
        if target.baseline_risk is not None:
            out["baseline"] = target.baseline_risk.logit_draws(stream(seed, *key, "baseline"), self.S)
        return out

    # ------------------------------------------------------------------ draws (S, K)
    def new_trial_effects(self) -> np.ndarray:
        """The log odds ratios of a new trial, ``d + L e``: the fit's own predictive draws
        (:meth:`JointResult.tradeoff_draws` with ``predictive=True``), cached on the result."""
        cache = self.result._cache
        key = "predict.joint_new_trial_effects"
        if key not in cache:
            cache[key] = self.result.tradeoff_draws(predictive=True)[0]
        return cache[key][self.idx]

    def log_odds_ratios(self, target: Target, level: str) -> np.ndarray:
        delta = self.draw("d") if level == "population" else self.new_trial_effects()
        if target.phase == "maintenance" and self.has("beta_phase"):
            delta = delta + self.draw("beta_phase")
        return delta

    def baselines(self, target: Target, level: str, noise: dict) -> np.ndarray:
        """Draws (S, K) of the comparator's log odds per outcome before any target baseline
        or extrapolation term (module docstring)."""
        if self.design.baseline == "exchangeable":
            b = self.draw("m").copy()
            if target.phase == "maintenance" and self.has("gamma_phase"):
                b = b + self.draw("gamma_phase")
            if level == "new_trial":
                b = b + self.draw("sigma_mu") * noise["e_mu"]
            return b
        mu = self.draw("mu")
        if level == "population":
            return np.column_stack([mu[:, c].mean(axis=1) for c in self.cells])
        rows = np.arange(self.S)
        cols = []
        for k, c in enumerate(self.cells):
            j = np.minimum((noise["pick"][:, k] * len(c)).astype(int), len(c) - 1)
            cols.append(mu[rows, c[j]])
        return np.column_stack(cols)

    def arm_log_odds(self, plan: Plan, level: str, noise: dict, terms: dict[str, np.ndarray] | None = None,
                     include_terms: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Draws (S, K) of the log odds of every outcome on TAC and on the comparator."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        target = plan.target
        eff, base, comp = self.term_sums(plan, noise, terms, include_terms, (self.S, self.K))
        b = self.baselines(target, level, noise) + base
        own = np.zeros(self.K)
        if target.baseline_risk is not None:
            own[self.outcome_names.index(self.baseline_outcome)] = 1.0
            b = np.where(own[None, :] > 0, noise["baseline"][:, None], b)
        eta_c = b
        eta_t = b + self.log_odds_ratios(target, level) + eff
        if plan.unseen_comparator is not None:
            eta_c = eta_c - (1.0 - own)[None, :] * comp
            eta_t = eta_t + own[None, :] * comp
        return eta_t, eta_c

    def outcome_quantities(self, plan: Plan, arms, level: str, noise: dict, terms: dict[str, np.ndarray] | None = None,
                           include_terms: bool = True, *, margin: float) -> dict[str, dict[str, np.ndarray]]:
        """``{outcome: quantities}`` of every outcome of the fit (``arms`` is not used: the
        joint model has no arm-level design rows; TAC vs the pooled or the target's
        comparator)."""
        eta_t, eta_c = self.arm_log_odds(plan, level, noise, terms, include_terms)
        return {o: quantities_from_eta(eta_t[:, k], eta_c[:, k], self.directions[o], margin)
                for k, o in enumerate(self.outcome_names)}

    # ------------------------------------------------------------------ result
    def make_prediction(self, plan: Plan, arms, noise: dict, terms: dict, out: dict, shares: dict,
                        report: ExtrapolationReport, *, margin: float, ci: float, seed: int) -> JointPrediction:
        kappa = getattr(self, "_kappa", None) or {}
        thin = any(v < 1.0 for lab, v in kappa.items() if lab in {c for c, _, _ in self.coefficient_columns()})
        joint, joint_shares = {}, {}
        for level in LEVELS:
            j = joint_quantities({o: out[o][level] for o in self.outcome_names}, self.pairs)
            joint[level] = j
            if plan.terms or thin:
                # the same decomposition as every other quantity (bayesln.predict.extrapolation)
                with self.data_part(kappa):
                    q0 = self.outcome_quantities(plan, arms, level, noise, terms, include_terms=False, margin=margin)
                j0 = joint_quantities(q0, self.pairs)
                joint_shares[level] = {p: {k: _share(j[p][k], j0[p][k]) for k in JOINT_QUANTITIES[:4]} for p in j}
            else:
                joint_shares[level] = {p: dict.fromkeys(JOINT_QUANTITIES[:4], 0.0) for p in j}
        preds = {o: Prediction(target=plan.target, outcome=o, direction=self.directions[o], draws=out[o],
                               extrapolation=report, margin=margin, ci=ci, comparator=plan.comparator_label,
                               regimen=plan.regimen_label, seed=seed, shares=shares[o]) for o in self.outcome_names}
        return JointPrediction(target=plan.target, predictions=preds, joint=joint, extrapolation=report, margin=margin,
                               ci=ci, comparator=plan.comparator_label, regimen=plan.regimen_label, seed=seed,
                               joint_shares=joint_shares, benefit=self.baseline_outcome)


register_engine(JointResult, JointEngine)


# ============================================================================ prediction
@dataclass
class JointPrediction(PredictionOutput):
    """Predictions of every outcome of a joint fit for one target, with the joint
    efficacy-safety quantities.

    ``predictions[o]``: a :class:`~bayesln.predict.prediction.Prediction` per outcome
    (p_tac, p_comparator, RD, RR, OR, NNT / NNH, P(TAC better), P(RD > margin)); ``joint
    [level]["<e>~<h>"]``: draws of P(e without h) on TAC ``p_tac`` and on the comparator
    ``p_comparator`` (independence of response and the event within a patient given the
    arm), their difference ``rd``, the net benefit ``net_benefit`` = RD(e) - RD(h) and
    ``net_benefit_positive``; all from the same draws, with one
    :class:`ExtrapolationReport`."""

    target: Target
    predictions: dict[str, Prediction]
    joint: dict[str, dict[str, dict[str, np.ndarray]]]
    extrapolation: ExtrapolationReport
    margin: float
    ci: float
    comparator: str
    regimen: str
    seed: int
    joint_shares: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    benefit: str = ""
    fit_status: str = "ok"
    warning: str = ""

    outcome = JOINT_OUTCOME
    direction = "mixed"

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def outcomes(self) -> tuple[str, ...]:
        return tuple(self.predictions)

    @property
    def pairs(self) -> tuple[str, ...]:
        """The ``"<benefit>~<harm>"`` pairs of the joint quantities."""
        return tuple(self.joint["population"])

    @property
    def n_draws(self) -> int:
        return next(iter(self.predictions.values())).n_draws

    @property
    def shares(self) -> dict[str, dict[str, float]]:
        """Prior shares of the benefit outcome's prediction (as the core path's ``shares``)."""
        return self.predictions[self.benefit or self.outcomes[0]].shares

    def __getitem__(self, outcome: str) -> Prediction:
        return self.predictions[outcome]

    @property
    def probabilities(self) -> dict[str, dict[str, dict[str, np.ndarray]]]:
        """``[level][arm][outcome]``: draws of P(outcome) on ``tac`` and ``comparator``."""
        return {level: {arm: {o: p.draws[level][q] for o, p in self.predictions.items()}
                        for arm, q in (("tac", "p_tac"), ("comparator", "p_comparator"))} for level in LEVELS}

    @property
    def draws(self) -> dict[str, dict[str, np.ndarray]]:
        """Per level: ``<quantity>_<outcome>`` of every outcome and ``<quantity>_<e>~<h>``
        of every pair (quantities of :func:`joint_quantities`)."""
        out = {}
        for level in LEVELS:
            d = {f"{k}_{o}": v for o, p in self.predictions.items() for k, v in p.draws[level].items()}
            d.update({f"{k}_{pair}": v for pair, q in self.joint[level].items() for k, v in q.items()})
            out[level] = d
        return out

    def samples(self, level: str = "population") -> pd.DataFrame:
        """The draws of one level as columns: p_tac, p_comparator, rd, rr, log_or, or, nnt of
        every outcome (``<quantity>_<outcome>``) and P(e without h) per arm, its rd and the
        net benefit of every pair (``<quantity>_<e>~<h>``)."""
        cols = {f"{k}_{o}": p.draws[level][k] for o, p in self.predictions.items()
                for k in ("p_tac", "p_comparator", "rd", "rr", "log_or", "or", "nnt")}
        cols.update({f"{k}_{pair}": q[k] for pair, q in self.joint[level].items() for k in JOINT_QUANTITIES[:4]})
        return pd.DataFrame(cols)

    def table(self, ci: float | None = None) -> pd.DataFrame:
        """The tables of every outcome's prediction plus the joint rows (``outcome`` =
        ``"<e>~<h>"``; quantities p_tac, p_comparator, rd of P(e without h), net_benefit,
        net_benefit_positive; the note states the independence assumption)."""
        ci = self.ci if ci is None else ci
        if not 0 < ci < 1:
            raise ValueError(f"ci must be in (0, 1), got {ci}")
        frames = [p.table(ci) for p in self.predictions.values()]
        comp = self.comparator.upper() if " " not in self.comparator else self.comparator
        outside = ", ".join(self.extrapolation.outside_data)
        rows = []
        for level in LEVELS:
            for pair, q in self.joint[level].items():
                e, h = pair.split("~")
                sh = self.joint_shares.get(level, {}).get(pair, {})
                labels = {"p_tac": (f"P({e} without {h}) on {self.regimen}", INDEPENDENCE_NOTE),
                          "p_comparator": (f"P({e} without {h}) on {comp}", INDEPENDENCE_NOTE),
                          "rd": (f"P({e} without {h}): TAC - comparator", INDEPENDENCE_NOTE),
                          "net_benefit": (f"net benefit RD({e}) - RD({h})", _NET_NOTE),
                          "net_benefit_positive": (f"P(net benefit > 0): RD({e}) > RD({h})", _NET_NOTE)}
                for k in JOINT_QUANTITIES:
                    if k == "net_benefit_positive":
                        med = lo = hi = np.nan
                        share = sh.get("net_benefit", 0.0)
                    else:
                        med, lo, hi = _interval(q[k], ci)
                        share = sh.get(k, 0.0)
                    rows.append({"target": self.name, "outcome": pair, "quantity": k, "label": labels[k][0],
                                 "level": level, "median": med, "lower": lo, "upper": hi, "mean": float(np.mean(q[k])),
                                 "ci_level": ci, "regimen": self.regimen, "comparator": self.comparator,
                                 "outside_data": outside, "prior_driven": bool(share >= PRIOR_DRIVEN_SHARE),
                                 "prior_share": share, "note": labels[k][1]})
        if rows:
            frames.append(self._gate_columns(pd.DataFrame(rows, columns=TABLE_COLUMNS)))
        return pd.concat(frames, ignore_index=True)

    def text(self) -> str:
        """The extrapolation report plus the joint efficacy-safety lines (with the
        independence assumption)."""
        lines = [super().text()]
        if self.pairs:
            lines.append(f"  Joint efficacy-safety ({INDEPENDENCE_NOTE}; net benefit: {_NET_NOTE}):")
        ci = self.ci
        for level in LEVELS:
            for pair, q in self.joint[level].items():
                e, h = pair.split("~")
                (pt, lt, ht), (pc, lc, hc), (n, ln, hn) = (_interval(q[k], ci) for k in ("p_tac", "p_comparator",
                                                                                          "net_benefit"))
                lines.append(f"    {level}: P({e} without {h}) TAC {100 * pt:.0f}% ({100 * lt:.0f}-{100 * ht:.0f}%) vs "
                             f"{100 * pc:.0f}% ({100 * lc:.0f}-{100 * hc:.0f}%); net benefit {100 * n:+.0f} points "
                             f"({100 * ln:+.0f} to {100 * hn:+.0f}); P(net benefit > 0) "
                             f"{np.mean(q['net_benefit_positive']):.2f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<JointPrediction {self.name} / {', '.join(self.outcomes)}: {self.n_draws} draws{self._flags()}>"

    def plot(self, outcome: str | None = None, **kw):
        """The figure of one outcome's prediction (default the benefit outcome)."""
        return self.predictions[outcome or self.benefit or self.outcomes[0]].plot(**kw)
