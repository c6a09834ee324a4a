"""``predict``: posterior predictive response / adverse-event probabilities for a target.

For a fitted model (one binary outcome) and a :class:`~bayesln.predict.targets.Target`,
per posterior draw (see :mod:`bayesln.predict.engine`)::

    p_tac, p_comparator = inv_logit(eta_T), inv_logit(eta_C)
    RD = p_tac - p_comparator      RR = p_tac / p_comparator
    OR = exp(eta_T - eta_C)        NNT (benefit) / NNH (harm) = 1 / RD
    P(TAC better) = P(p_tac > p_comparator) for a benefit (renal response),
                    P(p_tac < p_comparator) for a harm (adverse event)
    P(RD > margin)

at two levels: ``population`` (the population-average effect: a typical trial in the
target population) and ``new_trial`` (a new trial or clinic in that population: adds the
between-trial heterogeneity tau of the log-OR and the between-trial SD sigma_mu of the
baseline). Every quantity's draws are computed from the same probability draws, so
RR == p_tac / p_comparator and NNT == 1 / RD hold draw by draw.

The NNT interval follows Altman (1998, BMJ 317:1309): it is 1/RD at the RD interval's
bounds, and when the RD interval includes 0 it runs through infinity (the table then has
lower > upper, i.e. "NNT(benefit) >= lower ... infinity ... NNT(harm) >= |upper|").

Every prediction carries its extrapolation report
(:class:`~bayesln.predict.extrapolation.ExtrapolationReport`): covariates outside the
trials (a covariate the model has a coefficient for is used up to its fitted range, the
rest gets the extrapolation prior), the fitted modifiers the target uses with the number of
trials behind each, its contraction and prior share, and the ``prior_share`` of every
quantity: the part of its predictive variance owed to priors - extrapolation terms and the
prior part ``(1 - contraction)`` of each fitted coefficient's posterior variance (see
:mod:`bayesln.predict.extrapolation`). The table's ``prior_share`` / ``prior_driven``
columns and the report's verdict ("DRIVEN BY THE PRIOR" at a share of 0.5 or more of the
population log-OR, RD or TAC-arm probability) come from it; a target that leans on a
coefficient one trial carries is reported "data-thin: one trial", never "Extrapolation:
none".

An ordinal CR / PR / NR fit (:func:`bayesln.hierarchy.fit_ordinal`) gives an
:class:`~bayesln.predict.ordinal.OrdinalPrediction` instead: coherent P(CR), P(PR),
P(CR or PR) per arm and draw, and the quantities above for complete response and for
complete-or-partial response, computed from those same draws (see
:mod:`bayesln.predict.ordinal`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesln.hierarchy.diagnostics import gate_warning
from bayesln.hierarchy.sampler_defaults import check_seed
from bayesln.predict.engine import LEVELS, ArmSpec, engine_for, quantities_from_eta, quantities_from_p  # noqa: F401
from bayesln.predict.extrapolation import (
    PRIOR_DRIVEN_SHARE,
    THIN_CONTRACTION,
    ExtrapolationReport,
    contraction_table,
    kappas,
)
from bayesln.predict.priors import DEFAULT_MARGIN, prior_mean, prior_sd
from bayesln.predict.targets import Target, resolve_target

__all__ = ["Prediction", "PredictionSet", "predict", "predict_many", "quantities_from_eta", "quantities_from_p"]

TABLE_COLUMNS = ["target", "outcome", "quantity", "label", "level", "median", "lower", "upper", "mean", "ci_level",
                 "regimen", "comparator", "outside_data", "prior_driven", "prior_share", "note", "fit_status", "warning"]
LEVEL_TEXT = {"population": "population average (a typical trial)", "new_trial": "a new trial / clinic"}
#: short names of the outcomes of a multi-outcome (ordinal) prediction in the text report
OUTCOME_TEXT = {"complete_response": "CR", "partial_response": "PR", "total_response": "CR or PR"}
SHARE_KEYS = ("p_tac", "p_comparator", "rd", "rr", "log_or", "or")


def _share(with_terms: np.ndarray, without: np.ndarray) -> float:
    v1 = float(np.var(with_terms))
    if not np.isfinite(v1) or v1 <= 0:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - float(np.var(without)) / v1)))


class PredictionOutput:
    """Output methods shared by :class:`Prediction` and the ordinal
    ``OrdinalPrediction`` (both have ``target``, ``outcome``, ``seed``, ``n_draws``,
    ``extrapolation``, ``fit_status``, ``warning`` and ``table()``).

    ``fit_status`` is the gate status of the fit the prediction came from; a prediction
    from a fit that failed its gate exists only when asked for
    (``predict(..., allow_failed_gate=True)``) and then carries ``warning`` in every
    output: each table row, the text and the JSON."""

    def _mark_gate(self, status: str, warning: str) -> None:
        self.fit_status, self.warning = status, warning
        for sub in getattr(self, "predictions", {}).values():  # an ordinal prediction's CR / CR-or-PR parts
            sub._mark_gate(status, warning)

    def _gate_columns(self, table: pd.DataFrame) -> pd.DataFrame:
        table["fit_status"] = self.fit_status
        table["warning"] = self.warning
        return table

    def to_records(self, ci: float | None = None) -> list[dict]:
        """JSON-ready records (one per quantity and level), each with the compact
        extrapolation report."""
        recs = json.loads(self.table(ci).to_json(orient="records", double_precision=10))
        comp = self.extrapolation.compact()
        for r in recs:
            r["extrapolation"] = comp
        return recs

    def to_dict(self, ci: float | None = None) -> dict:
        return {"target": self.target.model_dump(mode="json"), "outcome": self.outcome, "seed": self.seed,
                "n_draws": self.n_draws, "fit_status": self.fit_status, "warning": self.warning,
                "records": self.to_records(ci), "extrapolation": self.extrapolation.to_dict()}

    def text(self) -> str:
        return (self.warning + "\n" if self.warning else "") + self.extrapolation.text

    def _flags(self) -> str:
        flags = []
        if self.extrapolation.outside_data:
            flags.append("outside data: " + ", ".join(self.extrapolation.outside_data))
        if self.extrapolation.prior_driven:
            flags.append("prior-driven")
        return "; " + "; ".join(flags) if flags else ""


@dataclass
class Prediction(PredictionOutput):
    """Posterior predictive draws for one target and one outcome, with the
    extrapolation report. ``table()`` is the tidy summary."""

    target: Target
    outcome: str
    direction: str
    draws: dict[str, dict[str, np.ndarray]]
    extrapolation: ExtrapolationReport
    margin: float
    ci: float
    comparator: str
    regimen: str
    seed: int
    shares: dict[str, dict[str, float]] = field(default_factory=dict)
    fit_status: str = "ok"
    warning: str = ""

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def n_draws(self) -> int:
        return len(self.draws["population"]["p_tac"])

    @property
    def nnt_name(self) -> str:
        return "NNT" if self.direction == "benefit" else "NNH"

    def samples(self, level: str = "population") -> pd.DataFrame:
        """The draws of one level as columns (p_tac, p_comparator, rd, rr, log_or, or, nnt)."""
        d = self.draws[level]
        return pd.DataFrame({k: d[k] for k in ("p_tac", "p_comparator", "rd", "rr", "log_or", "or", "nnt")})

    # ------------------------------------------------------------------ table
    def labels(self) -> dict[str, str]:
        comp = self.comparator.upper() if " " not in self.comparator else self.comparator
        o = self.outcome
        better = "higher" if self.direction == "benefit" else "lower"
        return {
            "p_tac": f"P({o}) on {self.regimen}",
            "p_comparator": f"P({o}) on {comp}",
            "rd": "risk difference (TAC - comparator)",
            "rr": "risk ratio (TAC / comparator)",
            "or": "odds ratio (TAC vs comparator)",
            "nnt": f"{self.nnt_name} = 1 / RD",
            "tac_better": f"P(TAC better): P({o} {better} on TAC)",
            "rd_above_margin": f"P(RD > {self.margin:g})",
        }

    def table(self, ci: float | None = None) -> pd.DataFrame:
        """One row per quantity and level: median and central ``ci`` interval (for
        probabilities of events, ``mean`` is the probability and median/lower/upper are
        empty), with the extrapolation flags."""
        ci = self.ci if ci is None else ci
        if not 0 < ci < 1:
            raise ValueError(f"ci must be in (0, 1), got {ci}")
        a = (1 - ci) / 2
        rows = []
        labels = self.labels()
        outside = ", ".join(self.extrapolation.outside_data)
        for level in LEVELS:
            d = self.draws[level]
            sh = self.shares.get(level, {})
            for q in ("p_tac", "p_comparator", "rd", "rr", "or", "nnt", "tac_better", "rd_above_margin"):
                note = ""
                if q in ("tac_better", "rd_above_margin"):
                    med = lo = hi = np.nan
                    mean = float(np.mean(d[q]))
                    share = sh.get("log_or" if q == "tac_better" else "rd", 0.0)
                elif q == "nnt":
                    rl, rm, rh = np.quantile(d["rd"], [a, 0.5, 1 - a])
                    with np.errstate(divide="ignore"):
                        med, lo, hi = 1 / rm, 1 / rh, 1 / rl
                    mean = np.nan
                    share = sh.get("rd", 0.0)
                    note = "1/RD at the RD median and interval bounds (Altman 1998)"
                    if rl < 0 < rh:
                        note += (f"; the RD interval includes 0, so the {self.nnt_name} interval runs through infinity: "
                                 f"{'benefit' if self.direction == 'benefit' else 'harm'} >= {abs(lo):.1f} or "
                                 f"{'harm' if self.direction == 'benefit' else 'benefit'} >= {abs(hi):.1f}")
                else:
                    lo, med, hi = np.quantile(d[q], [a, 0.5, 1 - a])
                    mean = float(np.mean(d[q]))
                    share = sh.get(q, 0.0)
                rows.append({
                    "target": self.name, "outcome": self.outcome, "quantity": q if q != "nnt" else self.nnt_name.lower(),
                    "label": labels[q], "level": level, "median": float(med), "lower": float(lo), "upper": float(hi),
                    "mean": mean, "ci_level": ci, "regimen": self.regimen, "comparator": self.comparator,
                    "outside_data": outside, "prior_driven": bool(share >= PRIOR_DRIVEN_SHARE), "prior_share": share,
                    "note": note,
                })
        return self._gate_columns(pd.DataFrame(rows, columns=TABLE_COLUMNS))

    def __repr__(self) -> str:
        return f"<Prediction {self.name} / {self.outcome}: {self.n_draws} draws{self._flags()}>"

    def plot(self, **kw):
        from bayesln.predict.plots import plot_prediction

        return plot_prediction(self, **kw)


@dataclass
class PredictionSet:
    """Several predictions (targets x outcomes) with one table."""

    predictions: list[Prediction]

    def __iter__(self):
        return iter(self.predictions)

    def __len__(self) -> int:
        return len(self.predictions)

    def __getitem__(self, key) -> Prediction:
        if isinstance(key, int):
            return self.predictions[key]
        if isinstance(key, tuple):
            name, outcome = key
            hits = [p for p in self.predictions if p.name == name and p.outcome == outcome]
            # an ordinal prediction holds one Prediction per outcome (CR, CR or PR)
            hits += [p.predictions[outcome] for p in self.predictions
                     if p.name == name and outcome in getattr(p, "predictions", {})]
        else:
            hits = [p for p in self.predictions if p.name == key]
        if not hits:
            raise KeyError(key)
        return hits[0]

    def table(self, ci: float | None = None) -> pd.DataFrame:
        if not self.predictions:
            return pd.DataFrame(columns=TABLE_COLUMNS)
        return pd.concat([p.table(ci) for p in self.predictions], ignore_index=True)

    def extrapolation_table(self) -> pd.DataFrame:
        """All targets' covariate inventories in one table."""
        frames = [p.extrapolation.covariates.assign(target=p.name, outcome=p.outcome) for p in self.predictions]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def sensitivity_table(self) -> pd.DataFrame:
        frames = [p.extrapolation.sensitivity for p in self.predictions if len(p.extrapolation.sensitivity)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def to_dict(self, ci: float | None = None) -> dict:
        warnings_ = sorted({p.warning for p in self.predictions if p.warning})
        return {
            "predictions": [r for p in self.predictions for r in p.to_records(ci)],
            "extrapolation": {f"{p.name}/{p.outcome}": p.extrapolation.to_dict() for p in self.predictions},
            "warnings": warnings_,
        }

    def text(self) -> str:
        return "\n\n".join(p.text() for p in self.predictions)


# ============================================================================ predict
def predict(result, target, *, seed: int, draws: int | None = None, margin: float | None = None, ci: float = 0.95,
            extrapolation_priors: dict | None = None, baseline_extrapolation_priors: dict | None = None,
            targets_file=None, sensitivity: bool = True, data=None, allow_failed_gate: bool = False):
    """Posterior predictive distribution of response (or adverse-event) probabilities
    under TAC and the comparator for ``target``, with the extrapolation report.

    Parameters
    ----------
    result : a core-model :class:`~bayesln.hierarchy.result.FitResult` (one outcome) -
        gives a :class:`Prediction`; or an ordinal CR / PR / NR fit
        (:class:`~bayesln.hierarchy.ordinal.OrdinalResult`) - gives an
        :class:`~bayesln.predict.ordinal.OrdinalPrediction` (coherent P(CR), P(PR),
        P(CR or PR) and the quantities below for CR and for CR-or-PR).
    target : a :class:`Target`, an inline dict, or a name in ``models/targets.toml``.
    seed : required; the same seed, fit and target give identical draws.
    draws : use this many posterior draws (a seeded subsample), default all.
    margin : risk-difference margin for ``P(RD > margin)``; default the target's, else
        0.10 for benefits and 0.05 for harms.
    ci : central interval of the table (default 0.95).
    extrapolation_priors, baseline_extrapolation_priors : ``{covariate: prior}``
        overriding the defaults of :mod:`bayesln.predict.priors` and the target's, e.g.
        ``{"asian_fraction": "normal(0, 1)"}``.
    sensitivity : compute the prior-sensitivity table (cheap; on by default).
    data : ordinal fits only: the TrialData the model was fitted on (or a superset),
        for the study-level covariates of its trials (the ordinal design does not carry
        them); default: the data stored with a run folder, else the bundled dataset
        whose studies and counts match the fit (see
        :func:`bayesln.predict.ordinal.study_covariates`).
    allow_failed_gate : a fit that failed its diagnostics gate is refused
        (:class:`~bayesln.hierarchy.diagnostics.GateFailedError`) unless this is True;
        then every output of the prediction carries the warning (``fit_status`` and
        ``warning`` columns, the text, the JSON).
    """
    warning = gate_warning(result, "predictions", allow_failed_gate)
    seed = check_seed(seed)
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    target = resolve_target(target, targets_file=targets_file)
    eng = engine_for(result, draws=draws, seed=seed, data=data)
    plan = eng.plan(target, extrapolation_priors=extrapolation_priors,
                    baseline_extrapolation_priors=baseline_extrapolation_priors)
    direction = eng.direction
    if margin is None:
        margin = target.margin if target.margin is not None else DEFAULT_MARGIN[direction]
    margin = float(margin)
    if not -1 < margin < 1:
        raise ValueError(f"margin is a risk difference in (-1, 1), got {margin}")
    noise = eng.noise(target, plan, seed)
    comp_arm = target.comparator or eng.reference_comparator()
    arms = [ArmSpec(True, regimen=target.regimen, label="tac"), ArmSpec(False, comparator=comp_arm, label="comparator")]
    terms = eng.term_draws(plan, noise)
    outcomes = eng.outcomes()
    contraction = contraction_table(result, plan.terms)
    used = _used_modifiers(eng, target, arms)
    kappa = kappas(contraction)
    eng._kappa = kappa  # the ordinal engine's P(PR) shares use the same decomposition
    out, shares, parts = _decompose(eng, plan, arms, noise, terms, outcomes, kappa, used, margin)
    sens = _sensitivity(eng, plan, arms, noise, direction, margin, ci) if sensitivity else pd.DataFrame()
    modifiers = _modifier_table(eng, contraction, used, parts)
    report = _report(plan, out, shares, contraction, sens, used, ci, margin, modifiers=modifiers, parts=parts)
    if eng.multi_outcome:
        pred = eng.make_prediction(plan, arms, noise, terms, out, shares, report, margin=margin, ci=ci, seed=seed)
    else:
        o = outcomes[0]
        pred = Prediction(target=target, outcome=o, direction=direction, draws=out[o], extrapolation=report,
                          margin=margin, ci=ci, comparator=plan.comparator_label, regimen=plan.regimen_label, seed=seed,
                          shares=shares[o])
    pred._mark_gate(getattr(result, "status", "ok"), warning)
    return pred


def _decompose(eng, plan, arms, noise, terms, outcomes, kappa, used, margin):
    """The draws of every outcome and level, and the share of their predictive variance
    that comes from priors (see :mod:`bayesln.predict.extrapolation`): ``out[o][level]``
    the quantities; ``shares[o][level]`` the total prior share (extrapolation terms at
    their prior mean and every coefficient reduced to its data part); ``parts[o][level]``
    the shares of the terms alone, of the coefficients alone and of each used coefficient
    alone."""
    out = {o: {} for o in outcomes}      # outcome -> level -> quantities
    shares = {o: {} for o in outcomes}   # outcome -> level -> share of the variance from priors
    parts = {o: {} for o in outcomes}
    zero = {k: 0.0 for k in SHARE_KEYS}
    thin = {k: v for k, v in kappa.items() if v < 1.0}
    cols = {lab for lab, _, _ in eng.coefficient_columns()}
    coef = bool(thin) and bool(cols & set(thin))

    def q(level, include_terms=True):
        return eng.outcome_quantities(plan, arms, level, noise, terms, include_terms=include_terms, margin=margin)

    for level in LEVELS:
        qs = q(level)
        q_terms = q(level, include_terms=False) if plan.terms else None
        if coef:
            with eng.data_part(kappa):
                q_coef = q(level)
                q_data = q(level, include_terms=False) if plan.terms else q_coef
        else:
            q_coef, q_data = None, q_terms
        by_par = {}
        for lab in used:
            if lab in thin and lab in cols:
                with eng.data_part(kappa, only=[lab]):
                    by_par[lab] = q(level)
        for o in outcomes:
            out[o][level] = qs[o]
            shares[o][level] = _shares(qs[o], q_data[o]) if q_data is not None else dict(zero)
            parts[o][level] = {
                "terms": _shares(qs[o], q_terms[o]) if q_terms is not None else dict(zero),
                "coefficients": _shares(qs[o], q_coef[o]) if q_coef is not None else dict(zero),
                "by_parameter": {lab: (_shares(qs[o], by_par[lab][o]) if lab in by_par else dict(zero)) for lab in used},
            }
    return out, shares, parts


def _modifier_table(eng, contraction: pd.DataFrame, used: list[str], parts: dict) -> pd.DataFrame:
    """One row per fitted coefficient the target uses: how many trials inform it, its
    contraction, the share of the population log-OR variance its prior part carries (the
    largest over the outcomes of an ordinal prediction) and its status."""
    cols = ["parameter", "meaning", "n_trials", "trials", "n_regression", "prior", "contraction", "prior_share",
            "share_of", "status"]
    c = contraction.set_index("parameter") if len(contraction) else pd.DataFrame()
    rows = []
    for lab in used:
        sup = eng.coefficient_support(lab)
        r = c.loc[lab] if lab in c.index else None
        kap = float(r["contraction"]) if r is not None else float("nan")
        # an effect modifier moves the log odds ratio, a baseline coefficient the comparator arm
        qty = "p_comparator" if lab.startswith("gamma") else "log_or"
        share = max((float(p["population"]["by_parameter"].get(lab, {}).get(qty, 0.0)) for p in parts.values()),
                    default=0.0)
        k = sup.get("n_trials")
        if k is not None and np.isfinite(k) and k <= 1:
            status = "data-thin: one trial" if k == 1 else "data-thin: no trial"
        elif np.isfinite(kap) and kap < THIN_CONTRACTION:
            status = "data-thin: weakly informed"
        else:
            status = "informed"
        rows.append({"parameter": lab, "meaning": str(r["note"]) if r is not None else "", "n_trials": k,
                     "trials": sup.get("trials", ""), "n_regression": sup.get("n_regression"),
                     "prior": str(r["prior"]) if r is not None else "", "contraction": kap, "prior_share": share,
                     "share_of": qty, "status": status})
    return pd.DataFrame(rows, columns=cols)


def _shares(q: dict, q0: dict) -> dict[str, float]:
    """Share of each quantity's predictive variance that comes from priors (the draws
    ``q``, and ``q0`` with the prior-driven parts removed: extrapolation terms at their
    prior mean and/or coefficients reduced to their data part)."""
    sh = {k: _share(q[k], q0[k]) for k in ("p_tac", "p_comparator", "rd", "log_or")}
    # ratios: on the log scale (their variance on the ratio scale is dominated by the tails)
    with np.errstate(divide="ignore", invalid="ignore"):
        sh["rr"] = _share(np.log(q["rr"]), np.log(q0["rr"]))
    sh["or"] = sh["log_or"]
    return sh


def predictions_for(result, targets, *, seed: int, search=(), targets_file=None, **kw) -> PredictionSet:
    """The predictions of one fit for target names (looked up in ``targets_file``, then in
    ``targets.toml`` beside each folder of ``search``, then in the shipped targets)."""
    from bayesln.predict.targets import resolve_targets

    tg = resolve_targets(targets, search=search, targets_file=targets_file)
    return PredictionSet([predict(result, t, seed=seed, targets_file=targets_file, **kw) for t in tg])


def predict_many(results, targets=None, *, seed: int, **kw) -> PredictionSet:
    """Predictions for several targets (default: every shipped target) from one or more
    fits (a FitResult, a list of them, or a dict outcome -> FitResult)."""
    from bayesln.predict.targets import resolve_targets

    if isinstance(results, dict):
        results = list(results.values())
    elif not isinstance(results, (list, tuple)):
        results = [results]
    tg = resolve_targets(targets, targets_file=kw.pop("targets_file", None))
    return PredictionSet([predict(r, t, seed=seed, **kw) for r in results for t in tg])


# ============================================================================ helpers
def _used_modifiers(eng, target: Target, arms) -> list[str]:
    """Effect modifiers / baseline covariates of the model the target uses at a value
    other than the reference (their contraction matters for this prediction)."""
    return eng.used_parameters(target, arms)


def _interval(x, ci):
    a = (1 - ci) / 2
    lo, med, hi = np.quantile(x, [a, 0.5, 1 - a])
    return float(med), float(lo), float(hi)


def _sensitivity(eng, plan, arms, noise, direction, margin, ci) -> pd.DataFrame:
    """The prediction under other priors for each unidentified term (same draws)."""
    if not plan.terms:
        return pd.DataFrame()
    rows = []
    scenarios = []
    for t in plan.terms:
        m0, s0 = prior_mean(t.prior), prior_sd(t.prior)
        for label, (m, s) in (("sd 0 (transportable)", (m0, 0.0)), ("sd x0.5", (m0, 0.5 * s0)), ("default", (m0, s0)),
                              ("sd x2", (m0, 2 * s0)), ("shift -1 sd", (m0 - s0, s0)), ("shift +1 sd", (m0 + s0, s0))):
            scenarios.append((t.key, t.role, t.covariate, label, {t.key: (m, s)}, f"normal({m:g}, {s:g})"))
    if len(plan.terms) > 1:
        for label, f in (("all sd 0 (transportable)", 0.0), ("all default", 1.0), ("all sd x2", 2.0)):
            ov = {t.key: (prior_mean(t.prior), f * prior_sd(t.prior)) for t in plan.terms}
            scenarios.append(("all", "all", "all unidentified terms", label, ov, f"each prior sd x{f:g}"))
    for key, role, cov, label, ov, prior_txt in scenarios:
        terms = eng.term_draws(plan, noise, override=ov)
        for level in LEVELS:
            for outcome, q in eng.outcome_quantities(plan, arms, level, noise, terms, margin=margin).items():
                for name in ("p_tac", "p_comparator", "rd", "or"):
                    med, lo, hi = _interval(q[name], ci)
                    rows.append({"target": plan.target.name, "outcome": outcome, "term": key, "role": role,
                                 "covariate": cov, "scenario": label, "prior": prior_txt, "level": level,
                                 "quantity": name, "median": med, "lower": lo, "upper": hi,
                                 "mean": float(np.mean(q[name])), "ci_level": ci})
                for name in ("tac_better", "rd_above_margin"):
                    rows.append({"target": plan.target.name, "outcome": outcome, "term": key, "role": role,
                                 "covariate": cov, "scenario": label, "prior": prior_txt, "level": level,
                                 "quantity": name, "median": np.nan, "lower": np.nan, "upper": np.nan,
                                 "mean": float(np.mean(q[name])), "ci_level": ci})
    return pd.DataFrame(rows)


_PLAIN = {
    "asian_fraction": ("The data contain no non-Asian patients", "the ethnicity x TAC effect modifier"),
    "pediatric": ("No randomised trial informing this model enrolled children", "the age-group x TAC effect modifier"),
    "refractory": ("No trial informing this model enrolled refractory patients", "the refractory x TAC effect modifier"),
    "phase": ("No trial informing this model studied this phase", "the phase x TAC effect modifier"),
    "class_v_fraction": ("No trial informing this model enrolled mainly class V patients",
                         "the class V x TAC effect modifier"),
    "class_iii_iv_fraction": ("No trial informing this model enrolled a population with this share of class III/IV",
                              "the class III/IV x TAC effect modifier"),
    "comparator": ("No trial informing this model used this comparator", "the comparator effect"),
}


def _pct(x) -> str:
    return f"{100 * x:.0f}%"


def _fmt_int(med, lo, hi, ci, pct=False, signed=False) -> str:
    if pct:
        f = (lambda v: f"{100 * v:+.0f}" if signed else f"{100 * v:.0f}")
        return f"{f(med)}% ({_pct(ci)} {f(lo)} to {f(hi)}%)" if signed else f"{f(med)}% ({f(lo)}-{f(hi)}%)"
    return f"{med:.2f} ({lo:.2f}-{hi:.2f})"


def _merged_shares(shares: dict) -> dict[str, dict[str, float]]:
    """``{level: {quantity: share}}`` over the outcomes of a prediction: the largest share
    of any outcome (a single outcome: its own)."""
    merged: dict[str, dict[str, float]] = {}
    for per_level in shares.values():
        for level, sh in per_level.items():
            m = merged.setdefault(level, {})
            for k, v in sh.items():
                m[k] = max(m.get(k, 0.0), float(v))
    return merged


def _report(plan, out, shares, contraction, sens, used, ci, margin, *, modifiers=None, parts=None) -> ExtrapolationReport:
    """The extrapolation report of one prediction. ``out`` / ``shares`` / ``parts`` are
    ``{outcome: {level: ...}}`` (one outcome for the core model; CR and CR-or-PR for the
    ordinal model, reported line by line); ``modifiers`` is the table of
    :func:`_modifier_table`."""
    t = plan.target
    inv = plan.inventory
    modifiers = modifiers if modifiers is not None else pd.DataFrame(columns=["parameter", "status"])
    parts = parts or {}
    outside = sorted(set(inv.loc[inv["outside_data"].astype(bool), "covariate"]))
    outcomes = list(out)
    multi = len(outcomes) > 1
    share_all = _merged_shares(shares)
    share_pop = share_all["population"]
    prior_driven = bool(max(share_pop.get("log_or", 0), share_pop.get("rd", 0), share_pop.get("p_tac", 0)) >= PRIOR_DRIVEN_SHARE)
    comp = plan.comparator_label
    lines = [f"{t.label()} [{t.name}] - {plan.outcome}: {plan.regimen_label} vs {comp}"]
    for level in LEVELS:
        for o in outcomes:
            q = out[o][level]
            name = OUTCOME_TEXT.get(o, o) if multi else plan.outcome
            head = f"  {LEVEL_TEXT[level]}: " if not multi else f"  {LEVEL_TEXT[level]}, {name}: "
            pt, pc, rd, orr = (_interval(q[k], ci) for k in ("p_tac", "p_comparator", "rd", "or"))
            lines.append(
                f"{head}P({name}) TAC {_fmt_int(*pt, ci, pct=True)} vs {_fmt_int(*pc, ci, pct=True)}; "
                f"RD {100 * rd[0]:+.0f} points ({100 * rd[1]:+.0f} to {100 * rd[2]:+.0f}); OR {_fmt_int(*orr, ci)}; "
                f"P(TAC better) {np.mean(q['tac_better']):.2f}; P(RD > {margin:g}) {np.mean(q['rd_above_margin']):.2f}"
            )
    lines.append(f"  ({_pct(ci)} intervals; baseline: {plan.baseline_text})")
    terms = plan.terms
    mstat = modifiers["status"].astype(str) if len(modifiers) else pd.Series([], dtype=str)
    if outside:
        status = "outside the data"
    elif mstat.isin(["data-thin: one trial", "data-thin: no trial"]).any():
        status = "data-thin: one trial"
    elif mstat.str.startswith("data-thin").any():
        status = "data-thin: weakly informed"
    elif terms:
        status = "prior terms inside the data"
    else:
        status = "none"
    if status == "none":
        lines.append("  Extrapolation: none - every covariate the target sets lies within the trials that inform the model, "
                     "and every fitted modifier it uses rests on two or more trials with contraction >= "
                     f"{THIN_CONTRACTION:g}.")
    else:
        lines.append(f"  Extrapolation: {status}")
        for cov in outside:
            rr = inv[(inv["covariate"] == cov)]
            r = rr.iloc[0]
            tv = r["target_value"]
            ts = [x for x in terms if x.covariate == cov]
            ts_in = [x for x in ts if x.in_model]
            ts_out = [x for x in ts if not x.in_model]
            for x in ts_in:
                lines.append(f"   - {cov} = {tv} lies outside the range the model's coefficient {x.parameter} was fitted on "
                             f"([{x.bounds[0]:.3g}, {x.bounds[1]:.3g}]): the fitted coefficient is used "
                             f"up to {x.reference:.3g}, and the remaining {x.distance:+.3g} gets the assumed extrapolation "
                             f"prior ({_role_text(x)} {_pstr(x.prior)} per unit; unit: {UNITS_TEXT(cov)}) - not evidence; "
                             "the fitted slope is not extrapolated.")
            held = rr[rr["in_model"].astype(bool) & rr["outside_data"].astype(bool) & (rr["prior"].astype(str) == "")]
            if cov != "comparator" and len(held):
                for _, h in held.iterrows():
                    lines.append(f"   - {cov} = {tv}: {h['status']}.")
            unmodelled = rr[~rr["in_model"].astype(bool) & rr["outside_data"].astype(bool)]
            if cov != "comparator" and not ts_out and not len(unmodelled):
                continue
            if cov == "comparator":
                rng = r["status"].split("; prior-driven")[0]
            elif r["n_known"]:
                rng = (f"every trial that reports it has {r['data_min']:.3g}" if abs(r["data_max"] - r["data_min"]) < 1e-9
                       else f"the trials range {r['data_min']:.3g}-{r['data_max']:.3g}")
                rng += f"; {int(r['n_known'])} of {int(r['n_trials'])} trials report it"
            else:
                rng = "no trial reports it"
            head, mod = _PLAIN.get(cov, (f"No trial informing this model has {cov} like this target",
                                         f"the {cov} x TAC effect modifier"))
            if ts_out and ts_in:
                pri = "; ".join(f"{_role_text(x)} {_pstr(x.prior)} per unit x {x.distance:+.3g}" for x in ts_out)
                lines.append(f"   - {cov} = {tv} also moves what the model has no {cov} coefficient for ({rng}): not "
                             f"identified by the data, so this part reflects the assumed prior ({pri}; unit: "
                             f"{UNITS_TEXT(cov)}) - not evidence.")
            elif ts_out:
                pri = "; ".join(f"{_role_text(x)} "
                                f"{_pstr(x.prior)} per unit x {x.distance:+.3g}" for x in ts_out)
                lines.append(f"   - {cov} = {tv} is outside the data ({rng}). {head}: {mod} is not identified by the data "
                             f"(its posterior equals its prior), so this interval reflects the assumed prior "
                             f"({pri}; unit: {UNITS_TEXT(cov)}) - not evidence.")
            else:
                lines.append(f"   - {cov} = {tv} is outside the data ({rng}); no prior is set for it, so the prediction "
                             "does not account for it.")
        inside = dict.fromkeys(x.covariate for x in terms if x.covariate not in outside)
        for cov in inside:
            ts = [x for x in terms if x.covariate == cov]
            rows_c = inv[inv["covariate"] == cov]
            # the status of the row the terms belong to (a covariate in the effect model but
            # not in the baseline model has an in-model effect row and a baseline term)
            with_term = rows_c[rows_c["role"].isin({x.role for x in ts})]
            r = (with_term if len(with_term) else rows_c).iloc[0]
            pri = "; ".join(f"{_role_text(x)} {_pstr(x.prior)} "
                            f"x {x.distance:+.3g}" for x in ts)
            lines.append(f"   - {cov} = {r['target_value']}: {r['status']} ({pri}).")
        verdict = "the prediction is DRIVEN BY THE PRIOR" if prior_driven else "the data still dominate"
        if not multi:
            o = outcomes[0]
            sh = share_pop.get("log_or", 0.0)
            shb = share_pop.get("p_comparator", 0.0)
            pp = parts.get(o, {}).get("population", {})
            split = (f" (extrapolation terms {_pct(pp.get('terms', {}).get('log_or', 0.0))}, the prior part of weakly "
                     f"informed fitted coefficients {_pct(pp.get('coefficients', {}).get('log_or', 0.0))})") if pp else ""
            lines.append(f"   - {_pct(sh)} of the variance of the population log odds ratio"
                         + (f" and {_pct(shb)} of that of the comparator-arm risk" if shb > 0 else "")
                         + f" come from assumed priors{split}: {verdict}.")
        else:
            bits = []
            for o in outcomes:
                so = shares[o]["population"]
                pp = parts.get(o, {}).get("population", {})
                split = (f" (terms {_pct(pp.get('terms', {}).get('log_or', 0.0))}, coefficients "
                         f"{_pct(pp.get('coefficients', {}).get('log_or', 0.0))})") if pp else ""
                bits.append(f"{OUTCOME_TEXT.get(o, o)}: {_pct(so.get('log_or', 0.0))} of the log odds ratio{split}"
                            + (f", {_pct(so.get('p_comparator', 0.0))} of the comparator-arm risk"
                               if so.get("p_comparator", 0.0) > 0 else ""))
            lines.append("   - Share of the population predictive variance from assumed priors - "
                         + "; ".join(bits) + f": {verdict}.")
        if terms and len(sens):
            for o in outcomes:
                so = sens[sens["outcome"] == o] if "outcome" in sens else sens
                s = so[(so["level"] == "population") & (so["quantity"] == "tac_better")]
                if not len(s):
                    continue
                grp = s[s["term"] == ("all" if (s["term"] == "all").any() else terms[0].key)]
                lo, hi = s["mean"].min(), s["mean"].max()  # every scenario: combined, per term, shifts
                oo = so[(so["level"] == "population") & (so["quantity"] == "or") & (so["term"] == grp["term"].iloc[0])]
                zero = oo[oo["scenario"].str.contains("sd 0")]
                wide = oo[oo["scenario"].str.contains("sd x2")]
                if len(zero) and len(wide):
                    z, w = zero.iloc[0], wide.iloc[0]
                    tag = f" ({OUTCOME_TEXT.get(o, o)})" if multi else ""
                    lines.append(f"   - Sensitivity{tag}: OR {z['median']:.2f} ({z['lower']:.2f}-{z['upper']:.2f}) if the "
                                 f"trials' effect transported unchanged (prior sd 0) vs {w['median']:.2f} ({w['lower']:.2f}-"
                                 f"{w['upper']:.2f}) with the prior sd doubled; P(TAC better) {lo:.2f}-{hi:.2f} over the "
                                 "priors tried (see the sensitivity table).")
    for _, r in modifiers.iterrows():
        k, n = r["n_trials"], r["n_regression"]
        if k is not None and pd.notna(k):
            k = int(k)
            who = f" ({r['trials']})" if r["trials"] and k <= 3 else ""
            rests = (f"rests on one trial{who} of {int(n)}" if k == 1 else
                     f"rests on no trial of {int(n)}" if k == 0 else f"is informed by {k} trials{who} of {int(n)}")
        else:
            rests = "support unknown"
        kap = r["contraction"]
        ktxt = (f"contraction {max(kap, 0.0):.2f} (the data shrink its prior variance by {_pct(max(kap, 0))})"
                if pd.notna(kap) else "contraction unknown")
        scope = ("of the population comparator-arm risk" if r["share_of"] == "p_comparator"
                 else "of the population log odds ratio") + (" (largest over the outcomes)" if multi else "")
        thin = str(r["status"]).startswith("data-thin")
        head = "Data-thin" if thin else "Modifier"
        lines.append(f"  {head}: {r['parameter']} ({r['meaning']}) is used by this target and {rests}; {ktxt}; its prior "
                     f"carries {_pct(r['prior_share'])} of the variance {scope}"
                     + (f" [{r['status']}]." if thin else "."))
    het_re = r"^(tau|sigma_mu)(\[.*\])?$" if plan.baseline_source == "model" else r"^tau(\[.*\])?$"
    het = contraction[contraction["parameter"].astype(str).str.match(het_re)]
    thin_het = [f"{r['parameter']} (contraction {r['contraction']:.2f}, prior {r['prior']})" for _, r in het.iterrows()
                if np.isfinite(r["contraction"]) and r["contraction"] < 0.5]
    if thin_het:
        lines.append("  Data-thin: the new-trial interval rests on between-trial SDs the data barely inform: "
                     + "; ".join(thin_het) + " - its width is largely set by these priors.")
    for n in plan.notes:
        lines.append(f"  Note: {n}")
    return ExtrapolationReport(
        target=t.name, outcome=plan.outcome, covariates=inv, contraction=contraction, sensitivity=sens,
        prior_share=share_all, outside_data=outside, prior_driven=prior_driven, baseline=plan.baseline_text,
        notes=list(plan.notes), text="\n".join(lines), modifiers=modifiers, status=status, prior_share_parts=parts,
    )


def _role_text(term) -> str:
    if term.covariate == "comparator":
        return "log odds ratio (via the comparator arm's log odds)"
    return "log odds ratio" if term.role == "effect" else "comparator-arm log odds"


def _pstr(p) -> str:
    q = p.params
    if p.dist == "normal":
        return f"normal({q['mu']:g}, {q['sigma']:g})"
    if p.dist == "student_t":
        return f"student_t({q['nu']:g}, {q['mu']:g}, {q['sigma']:g})"
    return str(p)


def UNITS_TEXT(cov: str) -> str:  # noqa: N802 - small helper used in f-strings
    from bayesln.predict.priors import UNITS

    return UNITS.get(cov, cov)
