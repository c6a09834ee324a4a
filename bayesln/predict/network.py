"""Predictions from the network meta-analysis: every treatment's response probability,
every treatment against every other, and rank probabilities, per target, from the same draws.

For a network fit (:func:`bayesln.hierarchy.fit_network`, consistency model, spec
``models/network_total_response.toml``: total renal response, TAC duo / TAC triple / IVCY
(reference) / MMF) and a :class:`~bayesln.predict.targets.Target`,
:func:`bayesln.predict.predict` returns a :class:`NetworkPrediction`. Per posterior draw s
and treatment k (``k = 0`` the reference) the log odds are built as the model's likelihood
builds an arm's (``theta = mu_i + delta_i,bk``, consistency ``E delta_i,bk = d_k - d_b``,
:mod:`bayesln.hierarchy.network`)::

    eta_k = r + G + D_k          D_0 = 0,  D_k = delta_k + Delta_k   (k != reference)
    P_k   = inv_logit(eta_k)

``r`` the reference treatment's baseline log odds at the level (below), ``delta_k`` the log
odds ratio of k vs the reference (``d_k``; ``+ beta_phase`` for a maintenance target of a
``phase_effect`` fit: :meth:`NetworkResult.effect_draws(phase="maintenance")
<bayesln.hierarchy.network.NetworkResult.effect_draws>`), ``Delta_k`` / ``G`` the
extrapolation terms of the log odds ratios / of the baseline. Every quantity comes from
these draws by :func:`bayesln.predict.engine.quantities_from_eta`, as on the core path:

* the **main prediction** (the usual table of every family: p_tac, p_comparator, RD, RR, OR,
  NNT, P(TAC better), P(RD > margin)): "TAC" is the target's regimen (``tac_duo`` /
  ``tac_triple``; a target without one: TAC duo) and the comparator is the target's
  comparator when the network has it, else the network's reference;
* the **full matrix**: every treatment k against every other l (ordered pairs), the same
  quantities with ``p_tac`` = P_k, ``p_comparator`` = P_l and ``tac_better`` = P(k better
  than l) in the outcome's direction; the main prediction is the matrix's cell (regimen,
  comparator), draw by draw;
* **rank probabilities** per level: per draw the treatments ranked by P_k (rank 1 = best:
  highest P for a benefit, lowest for a harm, the convention of
  :meth:`NetworkResult.rank_probabilities <bayesln.hierarchy.network.NetworkResult.rank_probabilities>`),
  P(rank r) per treatment, the mean rank and SUCRA = sum_{r<T} P(rank <= r) / (T - 1). At the
  population level, without extrapolation terms, these equal the fit's own rank
  probabilities (one baseline per draw, so P_k orders as d_k); extrapolation terms and the
  new-trial effects reorder them.

Levels
------
* ``population`` (a typical trial in the target population): ``delta_k = d_k``.
* ``new_trial`` (a new trial / clinic): the relative effects of a new trial with the
  reference as its baseline arm, ``delta = d + tau * L e`` with ``e ~ N(0, I)`` (one vector
  per draw over the T - 1 non-reference treatments) and ``L L'`` the matrix with 1 on the
  diagonal and 1/2 off it (``_cs_cholesky`` of :mod:`bayesln.hierarchy.network`): each
  relative effect has SD tau, two of them correlation 1/2 - the model's own multi-arm
  covariance - so every contrast, also between two non-reference treatments, has SD tau. A
  fixed-effect fit (no tau) has ``delta = d`` at both levels.

Baselines
---------
The network model has **independent study baselines**: ``mu_i`` is the log odds of study i's
baseline arm, whose treatment b(i) is not always the reference (a trial of MMF vs TAC duo has
MMF as its baseline). Under consistency ``theta_ik = mu_i + d_k - d_b(i)``, so each study's
log odds **on the reference** is ``mu_i - d_b(i)`` (``- beta_phase`` as well when the study
is a maintenance trial of a ``phase_effect`` fit and b(i) is not the reference, as in the
model's mean); that is the study's reference baseline, per draw. ``r`` is:

* population: the mean of these reference baselines over the included studies (the joint and
  ordinal engines' "mean over the reference trials");
* new trial: the reference baseline of **one** included study drawn at random per draw (the
  empirical spread of the trials' baselines stands in for the baseline model the fit does not
  have);

over every included study whatever its phase (the model has no baseline model, so no phase
effect on it). A target's ``baseline_risk`` is the risk on **the target's comparator** - the
comparator it names when the network has it, else the reference (and, for a comparator no
trial of the network used, that comparator's): it replaces that treatment's P at both levels
(``r = logit(baseline) - D_comparator``, not widened again by the new trial's effects), and
every other treatment's log odds follow from its log odds ratio vs the comparator.

Unidentified effect modifiers
-----------------------------
The network model has no population covariates (and, unless ``phase_effect``, no effect
modifier at all; regimen is in the model through the nodes, the comparator through the
network), so every population covariate a target sets (asian_fraction, class_v_fraction,
pediatric, refractory, ...) is handled exactly as on the core, ordinal and joint paths
(:meth:`bayesln.predict.engine.CoreEngine.plan`, priors of :mod:`bayesln.predict.priors`):
a term ``Delta_c * (x_target - xbar_c)`` with ``Delta_c`` from its documented prior when the
target lies away from the trials' mean, reported as prior-driven with its prior share and its
sensitivity table. **In a network a term modifies every non-reference treatment's effect vs
the reference, with one draw per term and treatment, correlated 1/2 between treatments**
(the standard-normal stream of each term and treatment passes through the same ``L`` as the
new-trial effects): each ``Delta_k`` has the documented prior SD, and so does **every
contrast** ``Delta_k - Delta_l`` (variance ``2 s^2 - s^2 = s^2``). Independent draws (the
other natural reading) would give a contrast of two non-reference treatments - TAC duo vs
MMF in a target that names MMF - SD ``sqrt(2) s``: wider than the documented prior of "the
log odds ratio", and dependent on which treatment is the (arbitrary) reference. The
correlated form is the same as one independent modification ``u_k ~ N(0, s^2 / 2)`` of each
treatment's log odds (the reference included) seen through contrasts: exchangeable across
treatments, invariant to the choice of reference (for a prior centred at 0, as every default
is), and it matches the prior of the other
families on every pair. (A Student-t or robust-normal prior is applied per treatment through
its quantile function of the correlated normal streams, as :meth:`CoreEngine.term_draws`
does on every path: each ``Delta_k`` has that prior, with the same normal dependence between
treatments.) Baseline terms (``G``) shift the reference baseline, hence every
arm, by one draw. A comparator no trial of the network used (AZA in the induction network)
is the reference shifted by the comparator term, as on the core path: it moves that
comparator's arm (``-Delta``), or, when the target gives that comparator's risk, every
network treatment (``+Delta``); it is part of the main prediction only (the matrix and the
ranks cover the network's treatments).

``phase_effect`` fits: a maintenance target uses the common maintenance shift
``beta_phase`` (TSD3 common interaction) on every treatment's effect vs the reference; it is
reported as a fitted modifier (``beta_phase[maintenance]``) with the number of trials that
inform it (the maintenance trials with a contrast against the reference; none when the fit
found it not identified - in the bundled data its one maintenance trial, Chen 2012, compares
TAC duo with AZA) and its contraction. Without ``phase_effect`` a maintenance target's phase
is an unidentified term as above.

The trials' range of each covariate is read from the data the model was fitted on
(:func:`network_study_covariates`): ``predict(..., data=TrialData)``, else the run folder's
``data.csv`` (:func:`bayesln.predict.command.load_network_run`), else the bundled dataset
whose fingerprint or event counts match the fit; when none is found every covariate counts
as "not reported by any trial" (worst-case distance), and the report says so.

UME and node-split fits have no consistency relation between the comparisons (one free mean
per observed comparison): predictions need the consistency model and are refused for them.
"""

from __future__ import annotations

import itertools
import types
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from bayesln.hierarchy.network import NetworkResult, _cs_cholesky
from bayesln.hierarchy.ordinal import label_of
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
from bayesln.predict.joint import JointEngine, joint_study_covariates
from bayesln.predict.ordinal import _ARM_COLUMNS, _COV_COLUMNS, OrdinalEngine
from bayesln.predict.prediction import TABLE_COLUMNS, Prediction, PredictionOutput, _interval, _share, _shares
from bayesln.predict.targets import Target

__all__ = ["PHASE_LABEL", "NetworkEngine", "NetworkPrediction", "PairPrediction", "network_study_covariates",
           "rank_probabilities"]

#: the label of the common maintenance shift in the contraction table and the modifier report
PHASE_LABEL = "beta_phase[maintenance]"
_TERM_NOTE = ("network: each unidentified term modifies every non-reference treatment's log odds ratio vs {ref} "
              "(one draw per treatment, correlated 1/2 between treatments, so every contrast - also between two "
              "non-reference treatments - has the prior's SD); baseline terms shift every arm")


# ============================================================================ helpers
def network_study_covariates(result, data=None) -> tuple[pd.DataFrame | None, str]:
    """``(table, source)``: the study-level covariates of the trials of a network fit, by
    :func:`bayesln.predict.joint.joint_study_covariates` (``data``, else the run folder's
    data, else a bundled dataset with the fit's fingerprint or event counts); its matcher
    reads a design's ``rows`` (study, arm, outcome, events, n), which for a network design
    are its arms."""
    des = result.design
    view = types.SimpleNamespace(study_ids=des.study_ids, fingerprint=des.fingerprint, arms=des.arms, rows=des.arms)
    return joint_study_covariates(types.SimpleNamespace(design=view, _cache=result._cache), data)


def rank_probabilities(p: np.ndarray, direction: str, treatments) -> pd.DataFrame:
    """P(rank r) per treatment (rows; rank 1 = the highest probability for a benefit, the
    lowest for a harm), the mean rank and SUCRA = sum_{r<T} P(rank <= r) / (T - 1), from
    draws ``p`` (S, T) of the treatments' probabilities (ties: the earlier treatment ranks
    first)."""
    score = p if direction == "benefit" else -p
    ranks = np.argsort(np.argsort(-score, axis=1, kind="stable"), axis=1, kind="stable") + 1
    T = p.shape[1]
    P = np.stack([(ranks == r).mean(axis=0) for r in range(1, T + 1)], axis=1)
    out = pd.DataFrame(P, columns=[f"P(rank {r})" for r in range(1, T + 1)])
    out.insert(0, "treatment", [label_of(t) for t in treatments])
    out.insert(0, "node", list(treatments))
    out["mean_rank"] = P @ np.arange(1, T + 1)
    out["SUCRA"] = np.cumsum(P, axis=1)[:, :-1].sum(axis=1) / (T - 1) if T > 1 else 1.0
    return out


# ============================================================================ engine
class NetworkEngine(CoreEngine):
    """Predictions from a :class:`~bayesln.hierarchy.network.NetworkResult` of the
    consistency model (see the module docstring). Reuses :meth:`CoreEngine.plan`
    (inventory, extrapolation terms, comparator handling), :meth:`CoreEngine.term_draws` /
    :meth:`CoreEngine.term_sums` (on draws x treatments arrays) and the subsampling of
    draws."""

    multi_outcome = True
    takes_data = True
    study_values = OrdinalEngine.study_values
    comparators = JointEngine.comparators

    def __init__(self, result, draws: int | None = None, seed: int = 0, data=None):
        des = result.design
        if des.model != "consistency" or "d" not in result.idata.posterior:
            what = {"ume": "an unrelated-mean-effects (UME) fit", "split": "a node-split fit"}.get(des.model, des.model)
            raise ValueError(f"predictions from a network fit need the consistency model (every treatment's effect vs "
                             f"the reference, d, and the consistency relation d_k - d_l between any two); this is "
                             f"{what}, with one free mean per observed comparison. Fit the network with "
                             "model='consistency' (spec: [model] model = \"consistency\") to predict")
        super().__init__(result, draws=draws, seed=seed)
        self.treatments = list(des.treatments)
        self.T = len(self.treatments)
        self.index = {t: k for k, t in enumerate(self.treatments)}
        self.covariates, self.covariate_source = network_study_covariates(result, data)
        arms = des.arms[[c for c in _ARM_COLUMNS if c in des.arms.columns] + ["node"]].astype({"study": str})
        cov = self.covariates if self.covariates is not None else pd.DataFrame(
            np.nan, index=pd.Index(arms["study"].unique(), dtype=object), columns=list(_COV_COLUMNS))
        self.arms = arms.assign(treated=arms["node"].astype(str).str.startswith("tac")).merge(
            cov, left_on="study", right_index=True, how="left")
        self._study_values: dict = {}
        base = des.arms[des.arms["is_base"]].sort_values("study_index")
        #: per study: the treatment index of its baseline arm, and the coefficient of
        #: beta_phase in that arm's contrast with the reference (maintenance, non-reference)
        self.base_index = base["node"].map(self.index).to_numpy(int)
        self.base_shift = (base["maintenance"].to_numpy(float) * (self.base_index != 0)
                           if "maintenance" in base else np.zeros(len(base)))

    @classmethod
    def accepts(cls, result) -> bool:
        return getattr(getattr(result, "design", None), "family", None) == "network"

    # ------------------------------------------------------------------ treatments
    @property
    def reference(self) -> str:
        return self.design.reference

    def regimen_node(self, target: Target) -> str:
        """The network node of the target's TAC regimen (no regimen: TAC duo, else the first
        TAC node of the network)."""
        tac = [t for t in self.treatments if t.startswith("tac")]
        want = f"tac_{target.regimen}" if target.regimen else ("tac_duo" if "tac_duo" in tac else (tac or [None])[0])
        if want not in self.index:
            raise ValueError(f"target {target.name!r}: the network has no {label_of(want) if want else 'TAC'} node "
                             f"(its treatments: {', '.join(label_of(t) for t in self.treatments)})")
        return want

    def comparator_node(self, target: Target) -> str | None:
        """The target's comparator when the network has it, the reference when the target
        names none; None for a comparator outside the network."""
        comp = target.comparator or self.reference
        return comp if comp in self.index else None

    def _maintenance(self, target: Target) -> bool:
        return target.phase == "maintenance" and self.has("beta_phase")

    # ------------------------------------------------------------------ hooks of plan()
    def effect_studies(self) -> list[str]:
        return list(self.design.study_ids)  # every study informs the relative effects

    def effect_sources(self) -> set[str]:
        out = {"regimen"} if any(t.startswith("tac") for t in self.treatments) else set()
        return out | ({"phase"} if self.has("beta_phase") else set())

    def baseline_sources(self) -> set[str]:
        return set()

    def reference_comparator(self) -> str | None:
        return self.reference

    def comparator_levels(self, ref_comp: str) -> set[str]:
        return set(self.treatments)

    def baseline_description(self, target: Target) -> tuple[str, str, list[str]]:
        ref, o = label_of(self.reference), self.outcome
        n = self.design.n_studies
        shift = (" (- beta_phase in a maintenance trial whose baseline arm is not the reference)"
                 if self.has("beta_phase") else "")
        model_txt = (f"the {ref} log odds of each of the {n} included trials, mu_i - d[b(i)]{shift} (its baseline "
                     f"arm's log odds moved to {ref} by the consistency relation), averaged (population) or one trial "
                     f"drawn at random (new trial); each treatment adds its log odds ratio vs {ref}")
        if target.baseline_risk is not None:
            comp = label_of(target.comparator or self.reference)
            return "target", (f"{comp}-arm P({o}) given by the target: {target.baseline_risk.describe()}; every other "
                              f"treatment's from its log odds ratio vs {comp}"), []
        return "trials", (f"{ref} (reference) risk from {model_txt}; give the target a baseline_risk (its comparator "
                          "arm's risk) for absolute risks in another setting"), [
            "the fit has independent study baselines (no model for the baseline risk): absolute risks use the included "
            "trials' baselines"]

    def plan(self, target: Target, **kw) -> Plan:
        node = self.regimen_node(target)
        plan = super().plan(target, **kw)
        plan.regimen_label = label_of(node) + ("" if target.regimen else " (the target sets no regimen)")
        if plan.terms:
            plan.notes.append(_TERM_NOTE.format(ref=label_of(self.reference)))
        if plan.unseen_comparator is not None:
            plan.notes.append(f"{plan.unseen_comparator} is not in the network: it enters the main prediction as "
                              f"{label_of(self.reference)} shifted by the comparator term, and is left out of the "
                              "treatment matrix and the ranks")
        plan.notes.append(("study covariates unknown: " if self.covariates is None else "trial covariate ranges from ")
                          + self.covariate_source)
        return plan

    # ------------------------------------------------------------------ fitted coefficients
    def coefficient_columns(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """The common maintenance shift ``beta_phase`` (``phase_effect`` fits), the one
        fitted coefficient a target can use."""
        return [(PHASE_LABEL, "beta_phase", ())] if self.has("beta_phase") else []

    def used_parameters(self, target: Target, arms) -> list[str]:
        return [PHASE_LABEL] if self._maintenance(target) else []

    def coefficient_support(self, label: str) -> dict:
        """beta_phase is informed by the maintenance trials with a contrast against the
        reference (the others' shift cancels), and by none when the fit found it not
        identified (:attr:`NetworkDesign.phase_identified`)."""
        des = self.design
        if label != PHASE_LABEL:
            return {"n_trials": np.nan, "n_regression": np.nan, "trials": ""}
        studies = [str(s) for s in des.study_ids]
        shifted = set(des.arms.loc[np.asarray(des.phase_shift) != 0, "study"].astype(str))
        if not des.phase_identified:
            shifted = set()
        return coefficient_support(pd.Series([1.0 if s in shifted else 0.0 for s in studies],
                                             index=pd.Index(studies, dtype=object)))

    # ------------------------------------------------------------------ noise
    @staticmethod
    def _per_treatment(term) -> bool:
        return term.role == "effect" and term.covariate != "comparator"

    def noise(self, target: Target, plan: Plan, seed: int) -> dict:
        """The random numbers of one target: the new-trial effects and every effect term one
        column per non-reference treatment, correlated 1/2 (``L e``); baseline and
        comparator terms one column."""
        key = (target.name, self.outcome)
        S, K = self.S, self.T - 1
        L = _cs_cholesky(K)

        def normals(*keys, per_treatment=True):
            z = stream(seed, *key, *keys).standard_normal((S, K if per_treatment else 1))
            return z @ L.T if per_treatment else z

        out = {"e_tau": normals("tau"), "pick": stream(seed, *key, "study").random(S),
               "z": {t.key: normals("extrapolation", t.key, per_treatment=self._per_treatment(t)) for t in plan.terms}}
        if target.baseline_risk is not None:
            out["baseline"] = target.baseline_risk.logit_draws(stream(seed, *key, "baseline"), S)
        return out

    # ------------------------------------------------------------------ draws
    def relative_effects(self, target: Target, level: str, noise: dict) -> np.ndarray:
        """Draws (S, T) of every treatment's log odds ratio vs the reference (0 for the
        reference) at ``level``, before extrapolation terms."""
        D = np.zeros((self.S, self.T))
        D[:, 1:] = self.draw("d").reshape(self.S, -1)
        if self._maintenance(target):
            D[:, 1:] += self.draw("beta_phase").reshape(self.S, 1)
        if level == "new_trial" and self.has("tau"):
            D[:, 1:] += self.draw("tau").reshape(self.S, 1) * noise["e_tau"]
        return D

    def reference_baselines(self, level: str, noise: dict) -> np.ndarray:
        """Draws (S,) of the reference treatment's log odds from the studies' baselines
        (module docstring): per study ``mu_i - d[b(i)] (- beta_phase)``, their mean
        (population) or one study's per draw (new trial)."""
        d = np.column_stack([np.zeros(self.S), self.draw("d").reshape(self.S, -1)])
        ref = self.draw("mu") - d[:, self.base_index]
        if self.has("beta_phase"):
            ref = ref - self.draw("beta_phase").reshape(self.S, 1) * self.base_shift[None, :]
        if level == "population":
            return ref.mean(axis=1)
        n = ref.shape[1]
        j = np.minimum((noise["pick"] * n).astype(int), n - 1)
        return ref[np.arange(self.S), j]

    def treatment_log_odds(self, plan: Plan, level: str, noise: dict, terms: dict[str, np.ndarray] | None = None,
                           include_terms: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Draws ``(eta, eta_c)``: (S, T) the log odds of every treatment of the network and
        (S,) those of the target's comparator (a column of ``eta`` when the network has it)."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        target = plan.target
        eff, base, comp = self.term_sums(plan, noise, terms, include_terms, (self.S, self.T - 1))
        D = self.relative_effects(target, level, noise)
        D[:, 1:] += eff
        c = self.comparator_node(target)
        d_c = D[:, self.index[c]] if c is not None else -comp[:, 0]
        if target.baseline_risk is not None:
            r = noise["baseline"] - d_c
        else:
            r = self.reference_baselines(level, noise) + base[:, 0]
        return r[:, None] + D, r + d_c

    def outcome_quantities(self, plan: Plan, arms, level: str, noise: dict, terms: dict[str, np.ndarray] | None = None,
                           include_terms: bool = True, *, margin: float) -> dict[str, dict[str, np.ndarray]]:
        """``{outcome: quantities}`` of the target's regimen vs its comparator (``arms`` is
        not used: the network's nodes are the arms)."""
        eta, eta_c = self.treatment_log_odds(plan, level, noise, terms, include_terms)
        t = self.index[self.regimen_node(plan.target)]
        return {self.outcome: quantities_from_eta(eta[:, t], eta_c, self.direction, margin)}

    # ------------------------------------------------------------------ result
    def make_prediction(self, plan: Plan, arms, noise: dict, terms: dict, out: dict, shares: dict,
                        report: ExtrapolationReport, *, margin: float, ci: float, seed: int) -> NetworkPrediction:
        kappa = getattr(self, "_kappa", None) or {}
        thin = any(v < 1.0 for lab, v in kappa.items() if lab in {c for c, _, _ in self.coefficient_columns()})
        o, names = self.outcome, self.treatments
        pairs = list(itertools.permutations(range(self.T), 2))
        probs, p_shares, ranks = {}, {}, {}
        pair_draws: dict[str, dict] = {f"{names[k]} vs {names[l]}": {} for k, l in pairs}
        pair_shares: dict[str, dict] = {key: {} for key in pair_draws}
        for level in LEVELS:
            eta, _ = self.treatment_log_odds(plan, level, noise, terms)
            eta0 = None
            if plan.terms or thin:
                # the same decomposition as every other quantity (bayesln.predict.extrapolation)
                with self.data_part(kappa):
                    eta0, _ = self.treatment_log_odds(plan, level, noise, terms, include_terms=False)
            P = expit(eta)
            probs[level] = {t: P[:, k] for k, t in enumerate(names)}
            p_shares[level] = {t: _share(P[:, k], expit(eta0[:, k])) if eta0 is not None else 0.0
                               for k, t in enumerate(names)}
            ranks[level] = rank_probabilities(P, self.direction, names)
            for k, l in pairs:
                key = f"{names[k]} vs {names[l]}"
                q = quantities_from_eta(eta[:, k], eta[:, l], self.direction, margin)
                pair_draws[key][level] = q
                q0 = quantities_from_eta(eta0[:, k], eta0[:, l], self.direction, margin) if eta0 is not None else q
                pair_shares[key][level] = _shares(q, q0)  # q0 = q: no prior part, every share 0
        common = dict(target=plan.target, direction=self.direction, extrapolation=report, margin=margin, ci=ci,
                      seed=seed)
        preds: dict[str, Prediction] = {o: Prediction(outcome=o, draws=out[o], comparator=plan.comparator_label,
                                                      regimen=plan.regimen_label, shares=shares[o], **common)}
        for k, l in pairs:
            key = f"{names[k]} vs {names[l]}"
            preds[key] = PairPrediction(outcome=o, draws=pair_draws[key], comparator=label_of(names[l]),
                                        regimen=label_of(names[k]), shares=pair_shares[key], **common)
        c = self.comparator_node(plan.target)
        return NetworkPrediction(target=plan.target, predictions=preds, outcome=o, direction=self.direction,
                                 treatments=tuple(names), reference=self.reference, probabilities=probs, ranks=ranks,
                                 extrapolation=report, margin=margin, ci=ci, comparator=plan.comparator_label,
                                 regimen=plan.regimen_label, seed=seed, probability_shares=p_shares,
                                 main_pair=(self.regimen_node(plan.target), c or plan.unseen_comparator or ""))


register_engine(NetworkResult, NetworkEngine)


# ============================================================================ prediction
@dataclass
class PairPrediction(Prediction):
    """One cell of a network prediction's matrix: treatment ``regimen`` (a network node's
    label) vs ``comparator`` (another's); its labels name both treatments (``p_tac`` is the
    first treatment's probability, ``tac_better`` P(first better))."""

    def labels(self) -> dict[str, str]:
        k, l, o = self.regimen, self.comparator, self.outcome
        better = "higher" if self.direction == "benefit" else "lower"
        return {**super().labels(), "p_comparator": f"P({o}) on {l}", "rd": f"risk difference ({k} - {l})",
                "rr": f"risk ratio ({k} / {l})", "or": f"odds ratio ({k} vs {l})",
                "tac_better": f"P({k} better): P({o} {better} on {k} than on {l})"}


@dataclass
class NetworkPrediction(PredictionOutput):
    """Predictions of a network fit for one target.

    ``predictions[outcome]``: the main :class:`~bayesln.predict.prediction.Prediction`, the
    target's regimen vs its comparator (p_tac, p_comparator, RD, RR, OR, NNT, P(TAC better),
    P(RD > margin)); ``predictions["<k> vs <l>"]``: the same quantities for every ordered pair
    of the network's treatments (:class:`PairPrediction`, the full matrix);
    ``probabilities[level][node]``: draws of each treatment's P(outcome); ``ranks[level]``:
    P(rank r), mean rank and SUCRA per treatment (:func:`rank_probabilities`); all from the
    same draws, with one :class:`ExtrapolationReport`.

    ``table()`` rows: the main prediction (``outcome`` = the outcome), each treatment's
    probability and rank probabilities (``outcome`` = ``"<outcome>:<node>"``, quantities
    ``p``, ``p_rank_<r>``, ``mean_rank``, ``sucra``) and the matrix (``outcome`` =
    ``"<outcome>:<k> vs <l>"``)."""

    target: Target
    predictions: dict[str, Prediction]
    outcome: str
    direction: str
    treatments: tuple[str, ...]
    reference: str
    probabilities: dict[str, dict[str, np.ndarray]]
    ranks: dict[str, pd.DataFrame]
    extrapolation: ExtrapolationReport
    margin: float
    ci: float
    comparator: str
    regimen: str
    seed: int
    probability_shares: dict[str, dict[str, float]]
    main_pair: tuple[str, str]
    fit_status: str = "ok"
    warning: str = ""

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def main(self) -> Prediction:
        """The target's regimen vs its comparator."""
        return self.predictions[self.outcome]

    @property
    def pairs(self) -> tuple[str, ...]:
        """The ``"<k> vs <l>"`` keys of the matrix (every ordered pair of treatments)."""
        return tuple(k for k in self.predictions if k != self.outcome)

    @property
    def n_draws(self) -> int:
        return self.main.n_draws

    @property
    def shares(self) -> dict[str, dict[str, float]]:
        return self.main.shares

    def __getitem__(self, key: str) -> Prediction:
        return self.predictions[key]

    @property
    def draws(self) -> dict[str, dict[str, np.ndarray]]:
        """Per level: the main prediction's quantities and ``p_<node>`` of every treatment."""
        return {level: {**self.main.draws[level], **{f"p_{t}": v for t, v in self.probabilities[level].items()}}
                for level in LEVELS}

    def samples(self, level: str = "population") -> pd.DataFrame:
        """The draws of one level: the main prediction's columns and ``p_<node>``."""
        return self.main.samples(level).assign(**{f"p_{t}": v for t, v in self.probabilities[level].items()})

    def matrix(self, quantity: str = "or", level: str = "population", stat: str = "median") -> pd.DataFrame:
        """A treatments x treatments table of ``quantity`` (a key of
        :func:`bayesln.predict.engine.quantities_from_p`), row vs column, summarised by
        ``stat`` (``median`` or ``mean``) over the draws; NaN on the diagonal."""
        f = np.median if stat == "median" else np.mean
        m = pd.DataFrame(np.nan, index=list(self.treatments), columns=list(self.treatments))
        for k, l in itertools.permutations(self.treatments, 2):
            m.loc[k, l] = float(f(self.predictions[f"{k} vs {l}"].draws[level][quantity]))
        return m

    def table(self, ci: float | None = None) -> pd.DataFrame:
        """The main prediction's rows, each treatment's probability / rank rows and the
        matrix rows (see the class docstring)."""
        ci = self.ci if ci is None else ci
        if not 0 < ci < 1:
            raise ValueError(f"ci must be in (0, 1), got {ci}")
        o = self.outcome
        outside = ", ".join(self.extrapolation.outside_data)
        best = "highest" if self.direction == "benefit" else "lowest"
        rank_note = f"rank 1 = the {best} P({o}); from the same probability draws"
        T = len(self.treatments)
        rows = []
        for level in LEVELS:
            rk = self.ranks[level].set_index("node")
            for t in self.treatments:
                lab = label_of(t)
                # a rank depends on the contrasts with every other treatment: their largest prior share
                rshare = max(self.predictions[f"{t} vs {u}"].shares.get(level, {}).get("log_or", 0.0)
                             for u in self.treatments if u != t)
                p = self.probabilities[level][t]
                items = [("p", f"P({o}) on {lab}", *_interval(p, ci), float(np.mean(p)),
                          self.probability_shares.get(level, {}).get(t, 0.0), "")]
                items += [(f"p_rank_{r}", f"P({lab} ranks {r})", np.nan, np.nan, np.nan,
                           float(rk.loc[t, f"P(rank {r})"]), rshare, rank_note) for r in range(1, T + 1)]
                items += [("mean_rank", f"mean rank of {lab}", np.nan, np.nan, np.nan, float(rk.loc[t, "mean_rank"]),
                           rshare, rank_note),
                          ("sucra", f"SUCRA of {lab}", np.nan, np.nan, np.nan, float(rk.loc[t, "SUCRA"]), rshare,
                           rank_note + "; SUCRA = sum over r < T of P(rank <= r) / (T - 1)")]
                for q, label, med, lo, hi, mean, share, note in items:
                    rows.append({"target": self.name, "outcome": f"{o}:{t}", "quantity": q, "label": label,
                                 "level": level, "median": med, "lower": lo, "upper": hi, "mean": mean, "ci_level": ci,
                                 "regimen": lab, "comparator": "", "outside_data": outside,
                                 "prior_driven": bool(share >= PRIOR_DRIVEN_SHARE), "prior_share": share, "note": note})
        frames = [self.main.table(ci), self._gate_columns(pd.DataFrame(rows, columns=TABLE_COLUMNS))]
        frames += [self.predictions[key].table(ci).assign(outcome=f"{o}:{key}") for key in self.pairs]
        return pd.concat(frames, ignore_index=True)

    def text(self) -> str:
        """The extrapolation report plus each treatment's probability and its ranks."""
        lines = [super().text(), f"  Network ({len(self.treatments)} treatments, reference "
                                 f"{label_of(self.reference)}; rank 1 = the "
                                 f"{'highest' if self.direction == 'benefit' else 'lowest'} P({self.outcome})):"]
        for level in LEVELS:
            ps = []
            for t in self.treatments:
                med, lo, hi = _interval(self.probabilities[level][t], self.ci)
                ps.append(f"{label_of(t)} {100 * med:.0f}% ({100 * lo:.0f}-{100 * hi:.0f}%)")
            rk = self.ranks[level]
            rs = [f"{t} {b:.2f} / {s:.2f}" for t, b, s in zip(rk["treatment"], rk["P(rank 1)"], rk["SUCRA"])]
            lines.append(f"    {level}: P({self.outcome}) " + "; ".join(ps))
            lines.append(f"    {level}: P(best) / SUCRA " + "; ".join(rs))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<NetworkPrediction {self.name} / {self.outcome}: {len(self.treatments)} treatments, {self.n_draws} "
                f"draws{self._flags()}>")

    def plot(self, **kw):
        """The figure of the main prediction (the target's regimen vs its comparator)."""
        return self.main.plot(**kw)
