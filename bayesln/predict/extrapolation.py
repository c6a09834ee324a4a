"""Extrapolation diagnostics reported with every prediction.

* **Where the target lies** (:attr:`ExtrapolationReport.covariates`): for each covariate
  the target sets, the values in the trials that inform the model (range, mean, how many
  report it), whether the target is outside that range, whether the model has a
  coefficient for it, and the prior-driven term added: for a covariate the model has no
  coefficient for, its whole effect (see :mod:`bayesln.predict.priors`); for a covariate
  the model has a coefficient for, the part of the target's value beyond the fitted range
  (the fitted coefficient is used up to the range's bound, never extrapolated linearly;
  see :mod:`bayesln.predict.engine`).
* **What the data taught** (:attr:`ExtrapolationReport.contraction`): for every
  population parameter, the prior-to-posterior contraction
  ``1 - posterior variance / prior variance`` (Schad, Betancourt & Vasishth 2021,
  Psychol Methods 26:103): about 1 = the data determine it, about 0 = the data are silent
  and the posterior is the prior. Extrapolation terms have contraction 0 by
  construction.
* **Which fitted modifiers the target leans on** (:attr:`ExtrapolationReport.modifiers`):
  every coefficient the target uses at a value other than its reference, with the number
  of trials that inform it (:func:`bayesln.predict.engine.coefficient_support`: the
  smaller group of a 0/1 contrast, e.g. ``phase:maintenance``: 1 trial), its contraction
  and its prior share; ``status`` "data-thin: one trial" when one trial (or none) carries
  it, "data-thin: weakly informed" when its contraction is below 0.5, else "informed".
* **How much the prior moves the answer** (:attr:`ExtrapolationReport.sensitivity`):
  the prediction recomputed, with the same posterior and the same random numbers, as the
  prior of each extrapolation term is set to 0 (transportability assumed), halved,
  doubled, or shifted by +/- one prior SD.
* ``prior_share``: the share of the predictive variance of a quantity (log-OR, RD, RR,
  the two arms' probabilities) that comes from priors rather than from the trials. Two
  sources are counted:

  - extrapolation terms (unidentified modifiers, the beyond-range part of in-model
    covariates): all of their variance is prior;
  - the model's fitted coefficients (beta, gamma; per step in the ordinal model): a
    coefficient with contraction ``kappa`` has posterior variance ``V``, of which
    ``(1 - kappa) V`` is counted as prior and ``kappa V`` as data. In the normal-normal
    model ``1 - kappa = V / V_prior`` is exactly the prior's share of the posterior
    precision: a coefficient the data leave at its prior (kappa = 0) is all prior, one
    the data pin down (kappa -> 1) is all data.

  Computed on the draws: ``share = 1 - Var(q_data) / Var(q)``, where ``q_data`` is the
  quantity recomputed with every extrapolation term at its prior mean and every
  coefficient's draws pulled to ``mean + sqrt(kappa) (theta - mean)``
  (:meth:`bayesln.predict.engine.CoreEngine.data_part`). For a linear quantity with
  independent parts this is exactly ``(Var_terms + sum_j (1 - kappa_j) a_j^2 V_j) /
  Var(q)``. ``prior_share_parts`` gives the terms' and the coefficients' parts
  separately and per coefficient (each computed alone, so with correlated draws they need
  not add up to the total). The pooled effect ``d``, the baseline ``m`` and the
  between-trial SDs are counted as data (their contraction is in the table; the report
  flags heterogeneity SDs the data barely inform). A quantity is flagged
  ``prior_driven`` when its share is at least 0.5; the report's verdict uses the
  population log-OR, RD and TAC-arm probability.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesln.hierarchy.priors import Prior

__all__ = ["PRIOR_DRIVEN_SHARE", "THIN_CONTRACTION", "ExtrapolationReport", "contraction_table", "kappas",
           "prior_variance"]

#: a quantity is "prior-driven" when at least this share of its predictive variance comes
#: from priors (extrapolation terms and the prior part of weakly informed coefficients)
PRIOR_DRIVEN_SHARE = 0.5
#: a fitted coefficient is "weakly informed" below this contraction
THIN_CONTRACTION = 0.5


def kappas(contraction: pd.DataFrame) -> dict[str, float]:
    """``{parameter: contraction clipped to [0, 1]}`` of the fitted coefficients of a
    contraction table (rows ``beta[...]``, ``gamma[...]``, ``gamma_phase...``,
    ``psi_beta[...]``, ``beta_phase[...]``); an unknown contraction (prior variance not known) counts as 1
    (all data)."""
    out = {}
    for _, r in contraction.iterrows():
        name = str(r["parameter"])
        if not name.startswith(("beta[", "gamma[", "gamma_phase", "psi_beta[", "beta_phase[")):
            continue
        c = float(r["contraction"])
        out[name] = min(max(c, 0.0), 1.0) if np.isfinite(c) else 1.0
    return out


def prior_variance(p: Prior | dict | None) -> float:
    """Variance of a prior (NaN when unknown, inf when infinite)."""
    if p is None:
        return float("nan")
    if isinstance(p, dict):
        p = Prior.model_validate(p)
    q = p.params
    if p.dist == "normal":
        return float(q["sigma"]) ** 2
    if p.dist == "student_t":
        nu = float(q["nu"])
        return float(q["sigma"]) ** 2 * nu / (nu - 2) if nu > 2 else float("inf")
    if p.dist == "half_normal":
        return float(q["scale"]) ** 2 * (1 - 2 / math.pi)
    if p.dist == "half_cauchy":
        return float("inf")
    if p.dist == "half_student_t":
        nu, s = float(q["nu"]), float(q["scale"])
        if nu <= 2:
            return float("inf")
        from scipy import special

        mean = 2 * s * math.sqrt(nu / math.pi) * math.exp(special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2)) / (nu - 1)
        return s**2 * nu / (nu - 2) - mean**2
    if p.dist == "uniform":
        return (float(q["upper"]) - float(q["lower"])) ** 2 / 12
    if p.dist == "exponential":
        return 1 / float(q["rate"]) ** 2
    if p.dist == "lognormal_tau2":
        mu, s = float(q["mu"]) / 2, float(q["sigma"]) / 2  # log tau ~ N(mu/2, sigma/2)
        return (math.exp(s**2) - 1) * math.exp(2 * mu + s**2)
    if p.dist == "robust_normal":
        from bayesln.predict.priors import prior_sd

        return prior_sd(p) ** 2
    return float("nan")


def _prior_of(priors: dict, name: str, key: str | None = None) -> dict | None:
    if not priors:
        return None
    if name in ("beta", "gamma") and key is not None:
        over = priors.get(f"{name}_overrides") or {}
        if key in over:
            return over[key]
    if name == "mu":
        return priors.get("baseline")
    return priors.get(name)


def contraction_table(result, terms=()) -> pd.DataFrame:
    """Prior and posterior SD and contraction of the population parameters of a core fit
    (d, tau, m, sigma_mu, beta[...], gamma[...]), of an ordinal fit (see
    :func:`_ordinal_rows`), of a joint fit (:func:`_joint_rows`) or of a network fit
    (:func:`_network_rows`) and of the extrapolation ``terms``."""
    priors = (getattr(result, "config", None) or {}).get("priors", {})
    prior_group = getattr(result.idata, "prior", None) if "prior" in result.idata.groups() else None
    rows = []

    def add(param, draws, pri, kind, note="", prior_draws=None):
        pv = prior_variance(pri)
        if (np.isnan(pv)) and prior_draws is not None:
            pv = float(np.var(prior_draws, ddof=1))
        qv = float(np.var(draws, ddof=1))
        ptxt = str(Prior.model_validate(pri)) if isinstance(pri, dict) else (str(pri) if pri else "")
        rows.append({
            "parameter": param, "kind": kind, "prior": ptxt,
            "prior_sd": math.sqrt(pv) if np.isfinite(pv) else (float("inf") if pv == float("inf") else np.nan),
            "posterior_sd": math.sqrt(qv),
            "contraction": (1 - qv / pv) if np.isfinite(pv) and pv > 0 else (1.0 if pv == float("inf") else np.nan),
            "note": note,
        })

    def pd_(name):
        if prior_group is not None and name in prior_group:
            a = np.asarray(prior_group[name].values)
            return a.reshape((-1,) + a.shape[2:])
        return None

    family = getattr(result.design, "family", None)
    if family == "ordinal":
        _ordinal_rows(result, add, pd_, priors)
    elif family == "joint":
        _joint_rows(result, add, pd_, priors)
    elif family == "network":
        _network_rows(result, add, pd_, priors)
    else:
        _core_rows(result, add, pd_, priors)
    for t in terms:
        sd = float(np.sqrt(prior_variance(t.prior)))
        rows.append({"parameter": f"extrapolation[{t.key}]", "kind": f"unidentified ({t.role})", "prior": str(t.prior),
                     "prior_sd": sd, "posterior_sd": sd, "contraction": 0.0,
                     "note": "not in the model: posterior = prior (the data contain no variation to learn from)"})
    return pd.DataFrame(rows, columns=["parameter", "kind", "prior", "prior_sd", "posterior_sd", "contraction", "note"])


def _core_rows(result, add, pd_, priors) -> None:
    """Contraction rows of a core fit: d, tau, m, sigma_mu, beta[...], gamma[...]."""
    post = result.idata.posterior
    for name, kind, note in (("d", "effect", "pooled log-OR at the reference covariate values"),
                             ("tau", "heterogeneity", "between-trial SD of the log-OR"),
                             ("m", "baseline", "typical comparator-arm log odds"),
                             ("sigma_mu", "baseline", "between-trial SD of the baseline log odds")):
        if name in post:
            add(name, np.asarray(post[name].values).reshape(-1), _prior_of(priors, name), kind, note, pd_(name))
    des = result.design
    groups = (("beta", getattr(des, "effect_names", []), getattr(des, "effect_transforms", []), "effect modifier"),
              ("gamma", getattr(des, "baseline_names", []), getattr(des, "baseline_transforms", []), "baseline covariate"))
    for var, names, transforms, kind in groups:
        if not names or var not in post:
            continue
        a = np.asarray(post[var].values)
        a = a.reshape((-1,) + a.shape[2:])
        pdr = pd_(var)
        for k, nm in enumerate(names):
            tr = transforms[k] if k < len(transforms) else None
            add(f"{var}[{nm}]", a[:, k], _prior_of(priors, var, nm), kind,
                (tr.describe() if tr is not None else "") + _support(des, tr, var),
                pdr[:, k] if pdr is not None else None)


def _ordinal_rows(result, add, prior_draws, priors) -> None:
    """Contraction rows of an ordinal CR / PR / NR fit: d, tau (per step when
    cut-point-specific), the baseline model (m, kappa_mean, sigma_mu, gamma_phase) when
    the baselines are exchangeable, psi, and every effect modifier beta[name(, step)]
    (study baselines of independent-baseline fits are nuisance parameters: not listed)."""
    post = result.idata.posterior
    des = result.design
    seq = getattr(des, "link", "sequential") == "sequential"
    psi_sd = float(((priors or {}).get("psi") or {}).get("params", {}).get("sigma", 1.0))

    def each(name, pri, kind, note, label=None):
        if name not in post:
            return
        da = post[name]
        a = np.asarray(da.values)
        a = a.reshape((-1,) + a.shape[2:])
        pdr = prior_draws(name)
        label = label or name
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra:
            add(label, a, pri, kind, note, pdr)
            return
        if len(extra) == 1 and extra[0] != "covariate":
            _per_level(da, a, pdr, add, label, pri, kind, note)
            return
        names = [str(c) for c in da["covariate"].values]
        stages = [str(c) for c in da["stage"].values] if "stage" in da.dims else None
        for k, nm in enumerate(names):
            p_k = pri(nm) if callable(pri) else pri
            sup = _ordinal_support(des, nm)
            if stages is None:
                add(f"{label}[{nm}]", a[:, k], p_k, kind, f"{_ordinal_note(nm)}{sup}", pdr[:, k] if pdr is not None else None)
            else:
                for s, st in enumerate(stages):
                    add(f"{label}[{nm},{st}]", a[:, k, s], p_k, kind, f"{_ordinal_note(nm)} ({st}){sup}",
                        pdr[:, k, s] if pdr is not None else None)

    step = "both steps" if seq else "both cut-points"
    each("d", _prior_of(priors, "d"), "effect", f"pooled log-OR at the reference values ({step} unless per step)")
    each("tau", _prior_of(priors, "tau"), "heterogeneity", "between-trial SD of the log-OR")
    each("m", _prior_of(priors, "m"), "baseline",
         "typical reference-comparator log odds" + (" per step" if seq else " of CR or PR"))
    each("kappa_mean", priors.get("gap") if priors else None, "baseline", "typical log gap between the cut-points")
    each("sigma_mu", _prior_of(priors, "sigma_mu"), "baseline", "between-trial SD of the baseline")
    each("gamma_phase", _prior_of(priors, "gamma"), "baseline covariate", "maintenance shift of the baseline")
    each("psi", priors.get("psi") if priors else None, "effect", "log ratio of the cut-point gaps (treated / control)")
    each("beta", lambda nm: _prior_of(priors, "beta", nm), "effect modifier", "")
    each("psi_beta", {"dist": "normal", "params": {"mu": 0.0, "sigma": psi_sd}}, "effect modifier (gap)", "")


def _joint_rows(result, add, prior_draws, priors) -> None:
    """Contraction rows of a joint efficacy-safety fit, one per outcome o: ``d[o]``,
    ``tau[o]`` (each outcome with its own tau prior, as ``fit_joint`` resolves it), the
    baseline model ``m[o]``, ``sigma_mu[o]`` (exchangeable baselines) and the maintenance
    shifts ``beta_phase[o]``, ``gamma_phase[o]`` (``phase_effect``). Study baselines of
    independent-baseline fits are nuisance parameters: not listed."""
    post = result.idata.posterior

    def prior_for(key):
        p = (priors or {}).get(key)
        per_outcome = isinstance(p, dict) and "dist" not in p  # {outcome: prior}
        return lambda o: p.get(o) if per_outcome else p

    for name, kind, note in (("d", "effect", "pooled log-OR"),
                             ("tau", "heterogeneity", "between-trial SD of the log-OR"),
                             ("m", "baseline", "typical comparator-arm log odds"),
                             ("sigma_mu", "baseline", "between-trial SD of the baseline log odds"),
                             ("beta_phase", "effect modifier", "maintenance shift of the log-OR"),
                             ("gamma_phase", "baseline covariate", "maintenance shift of the baseline")):
        if name in post:
            a = np.asarray(post[name].values)
            _per_level(post[name], a.reshape((-1,) + a.shape[2:]), prior_draws(name), add, name, prior_for(name), kind,
                       note)


def _network_rows(result, add, prior_draws, priors) -> None:
    """Contraction rows of a network fit: ``d[k]`` per non-reference treatment (log-OR vs the
    reference), the UME / node-split means ``d_extra[c]`` (same prior as d), ``tau`` and the
    common maintenance shift ``beta_phase[maintenance]`` (``phase_effect``; the label of
    :data:`bayesln.predict.network.PHASE_LABEL`). Study baselines: nuisance, not listed."""
    post = result.idata.posterior
    ref = getattr(result.design, "reference", "the reference")
    for name, note in (("d", f"log-OR vs {ref}"), ("d_extra", "log-OR of an observed comparison (UME / node-split)")):
        if name in post:
            a = np.asarray(post[name].values)
            _per_level(post[name], a.reshape((-1,) + a.shape[2:]), prior_draws(name), add, name, _prior_of(priors, "d"),
                       "effect", note)
    for name, label, kind, note in (
            ("tau", "tau", "heterogeneity", "between-study SD of the log odds ratios (every comparison)"),
            ("beta_phase", "beta_phase[maintenance]", "effect modifier",
             f"common maintenance shift of every treatment's log-OR vs {ref}")):
        if name in post:
            add(label, np.asarray(post[name].values).reshape(-1), _prior_of(priors, name), kind, note, prior_draws(name))


def _per_level(da, a, pdr, add, label, pri, kind, note) -> None:
    """One contraction row per level c of the variable's one extra dimension (a step, an
    outcome): ``label[c]``, with the prior ``pri(c)`` (or ``pri`` for every level)."""
    for k, c in enumerate(str(v) for v in da[da.dims[-1]].values):
        add(f"{label}[{c}]", a[:, k], pri(c) if callable(pri) else pri, kind, f"{note} ({c})",
            pdr[:, k] if pdr is not None else None)


def _ordinal_note(nm: str) -> str:
    kind, _, lev = nm.partition(":")
    if kind == "comparator":
        return f"{lev} vs the reference comparator (ratio of odds ratios)"
    if kind == "regimen":
        return "TAC triple vs duo (ratio of odds ratios)"
    if kind == "phase":
        return "maintenance vs induction (ratio of odds ratios)"
    return nm


def _ordinal_support(des, nm: str) -> str:
    """How many trials inform an ordinal effect modifier."""
    try:
        arms = des.arms
        n = len(des.study_ids)
        kind, _, lev = nm.partition(":")
        t = arms["treated"].astype(bool)
        if kind == "comparator":
            k = arms.loc[~t & (arms["treatment"] == lev), "study"].nunique()
            return f"; {k} of {n} trials used {lev}"
        if kind == "regimen":
            k = arms.loc[t & (arms["regimen"].astype("string") == "triple").fillna(False), "study"].nunique()
            return f"; {k} of {n} trials at triple"
        if kind == "phase":
            k = arms.loc[(arms["phase"].astype("string") == "maintenance").fillna(False), "study"].nunique()
            return f"; {k} of {n} trials in maintenance"
    except Exception:  # pragma: no cover - descriptive only
        pass
    return ""


def _support(des, tr, var) -> str:
    """How many trials inform a coefficient: for 0/1 covariates the trials at the
    non-reference level, for continuous ones the trials with a value and how many of them
    differ from the most common value (:func:`bayesln.predict.engine.coefficient_support`)."""
    if tr is None or not hasattr(des, "arms"):
        return ""
    from bayesln.predict.engine import coefficient_support, study_values

    arms = des.arms
    if var == "beta":
        studies = [s for s in des.study_ids if arms.loc[arms["study"] == s, "treated"].astype(bool).any()]
    else:
        studies = list(des.study_ids)
    try:
        if tr.source == "comparator":
            ctrl = arms[~arms["treated"].astype(bool) & arms["study"].isin(studies)]
            k = int(ctrl.loc[ctrl["treatment"] == tr.level, "study"].nunique())
            return f"; {k} of {len(studies)} trials used {tr.level}"
        v = study_values(arms, tr.source, studies).dropna()
        if tr.kind == "continuous":
            sup = coefficient_support(v)
            return (f"; {len(v)} trials, {sup['n_trials']} of them away from the most common value"
                    + (f" ({sup['trials']})" if 0 < sup["n_trials"] <= 3 else ""))
        k = int((v > 0).sum())
        lev = tr.level or "yes"
        return f"; {k} of {len(studies)} trials at {lev}"
    except Exception:  # pragma: no cover - descriptive only
        return ""


@dataclass
class ExtrapolationReport:
    """Diagnostics of one prediction (see the module docstring)."""

    target: str
    outcome: str
    covariates: pd.DataFrame
    contraction: pd.DataFrame
    sensitivity: pd.DataFrame
    prior_share: dict[str, dict[str, float]]
    outside_data: list[str]
    prior_driven: bool
    baseline: str
    notes: list[str] = field(default_factory=list)
    text: str = ""
    #: the fitted coefficients the target uses (see the module docstring)
    modifiers: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: "outside the data", "data-thin: one trial", "data-thin: weakly informed",
    #: "prior terms inside the data" or "none"
    status: str = ""
    #: ``{outcome: {level: {"terms": {...}, "coefficients": {...}, "by_parameter": {p: {...}}}}}``
    prior_share_parts: dict = field(default_factory=dict)

    @property
    def unidentified(self) -> list[str]:
        """Covariates the model has no coefficient for whose effect is a prior term."""
        c = self.covariates
        mask = (c["prior"].astype(str) != "") & ~c["in_model"].astype(bool)
        return sorted(set(c.loc[mask, "covariate"]))

    @property
    def extrapolated(self) -> list[str]:
        """Covariates the model has a coefficient for whose target value lies beyond the
        fitted range (the part beyond it is a prior term)."""
        c = self.covariates
        mask = (c["prior"].astype(str) != "") & c["in_model"].astype(bool)
        return sorted(set(c.loc[mask, "covariate"]))

    @property
    def data_thin(self) -> list[str]:
        """The fitted coefficients the target uses that one trial carries or the data
        barely inform."""
        m = self.modifiers
        if m is None or not len(m):
            return []
        return [str(p) for p, st in zip(m["parameter"], m["status"]) if str(st).startswith("data-thin")]

    def compact(self) -> dict:
        """The short form carried by every JSON record."""
        return {
            "outside_data": list(self.outside_data),
            "unidentified": self.unidentified,
            "prior_driven": bool(self.prior_driven),
            "prior_share_log_or": self.prior_share.get("population", {}).get("log_or"),
            "baseline": self.baseline,
            "summary": self.text,
            "status": self.status,
            "extrapolated": self.extrapolated,
            "data_thin": self.data_thin,
        }

    def to_dict(self) -> dict:
        def rec(df):
            return json.loads(df.to_json(orient="records", double_precision=10)) if df is not None and len(df) else []

        return {
            "target": self.target, "outcome": self.outcome, "outside_data": list(self.outside_data),
            "unidentified": self.unidentified, "prior_driven": bool(self.prior_driven), "prior_share": self.prior_share,
            "baseline": self.baseline, "notes": list(self.notes), "text": self.text,
            "covariates": rec(self.covariates), "contraction": rec(self.contraction), "sensitivity": rec(self.sensitivity),
            "status": self.status, "extrapolated": self.extrapolated, "data_thin": self.data_thin,
            "modifiers": rec(self.modifiers), "prior_share_parts": self.prior_share_parts,
        }

    def __str__(self) -> str:
        return self.text
