"""Joint efficacy-safety model: renal response and adverse events with correlated
study-level treatment effects.

Arm-based binomial likelihoods, one per (study, outcome, arm) with known counts::

    events_ijo ~ Binomial(n_ijo, inv_logit(mu_io + t_ij * delta_io))
    delta_i    ~ MVN(d, Sigma),   Sigma = diag(tau) Omega diag(tau)
    Omega      ~ LKJ(eta),  eta = 2 by default
    tau_o      ~ HalfNormal(0.5)      (the core model's default; ``priors.tau``)
    d_o        ~ Normal(0, 2.5),  mu_io ~ Normal(0, 2.5)  (independent baselines)

Non-centred: for a study reporting the outcomes S, ``delta_iS = d_S + diag(tau_S)
chol(Omega_SS) z_iS`` with ``z_iS ~ N(0, I)``; tau and Omega are separate parameters
(LKJ correlation + separate tau). A study whose data pin its effects down more tightly
than tau spreads them is sampled centred instead (``delta_iS ~ MVN(d_S, Sigma_SS)`` with
the Cholesky factor ``diag(tau_S) chol(Omega_SS)``, free variables ``delta_c<pattern>``);
``parameterization="auto"`` (the default of :func:`fit_joint`) chooses per study
(:func:`choose_joint`), and ``z`` (the whitened effects) is a posterior variable in every
form.
A study that reports only some outcomes contributes to those outcomes only: only its
reported components of ``delta_i`` exist, with the marginal multivariate normal of those
outcomes (missing at random). The arms of a
multi-arm trial share ``mu_io`` (as in the core model).

Why LKJ(eta = 2): eta = 1 is uniform over correlation matrices; eta = 2 puts a little
more mass near zero correlation (the marginal of each correlation is
``2 * Beta(eta - 1 + K/2, eta - 1 + K/2) - 1``; for K = 2 outcomes a symmetric
Beta(2, 2) on (-1, 1), prior SD 0.45), which regularises a correlation that very few
studies can inform (Lewandowski, Kurowicka & Joe 2009; Stan User's Guide,
"multivariate priors for hierarchical models").

**How much the prior drives the correlation.** A between-outcome correlation of the
*study-level* effects is informed only by studies that report *both* outcomes with a
control arm, and even then weakly: with k such studies the likelihood for rho is roughly
that of a correlation estimated from k pairs of noisy effects. In the bundled data at most
one or two induction trials report response and an adverse event together
(Zheng 2022: response and severe infection and serious adverse events; Mok 2016: CR and
severe infection; Bao 2008 and Amudalapalli 2025: response and death), so rho is
essentially its prior. :meth:`JointResult.correlation_check` reports, per pair, the number
of studies reporting both, the prior SD of rho under LKJ(eta), the posterior SD and their
ratio; ``summary()`` flags a correlation as prior-dominated when fewer than 3 studies
report both or the posterior SD is above 80 % of the prior SD. The efficacy-safety
trade-off P(d_response > 0 and d_harm < 0) depends on rho only through the joint
uncertainty of the pooled effects, which is small when each pooled effect is informed by
different studies; the summary reports it next to the product of the marginal
probabilities so that the reader sees how much the dependence matters.

Phase: induction and maintenance are different estimands and are kept apart by default
(``phases`` selects; default induction only). ``phase_effect=True`` fits both phases together
(default ``phases`` = induction and maintenance) and gives each outcome's treatment effect a
maintenance shift::

    delta_io = d_o + beta_phase_o * x_i + tau_o * (chol(Omega) z_i)_o,
    x_i = 1 if study i is a maintenance trial, else 0
    beta_phase_o ~ Normal(0, 1)

so ``d_o`` is the induction log odds ratio and ``d_o + beta_phase_o`` the maintenance one;
the between-study SDs and the correlation are shared by the phases. The prior is
``priors.beta_for("phase:maintenance")`` (the ``beta`` default, Normal(0, 1); override with
``beta_overrides = {"phase:maintenance" = ...}``, or per outcome with the key
``"phase:maintenance:<outcome>"``). With exchangeable baselines the baseline mean also shifts
in maintenance trials (``mu_io = m_o + gamma_phase_o * x_i + sigma_mu_o * raw_io``, prior
``priors.gamma_for("phase:maintenance")``), as in the ordinal family. Only the label
``maintenance`` sets x_i = 1 (``induction_maintenance`` studies, when selected, count as
induction). The selected studies must contain both phases (else ValueError); an outcome
reported in one phase only gets a warning: its shift is then informed by the prior only (no
maintenance study reports it) or shares the maintenance studies' information with ``d_o`` (no
induction study reports it).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import stats as sps

from bayesln import _arviz, vocab
from bayesln.hierarchy.diagnostics import GateThresholds
from bayesln.hierarchy.ordinal import (
    DEFAULT,
    FamilyDesign,
    FamilyFitResult,
    SummaryRows,
    _as_names,
    coerce_priors,
    effect_mask,
    family_form,
    record_forms,
    label_of,
    location_rv,
    long_table,
    mvn_chol,
    normal_effects,
    sample_family,
    sampler_config,
    scale_rv,
    select_phase_design,
)
from bayesln.hierarchy.priors import Priors, resolve_tau_prior
from bayesln.hierarchy.sampling import SamplerSettings, check_seed, resolve_backend

__all__ = ["JointDesign", "JointResult", "build_joint_design", "build_joint_model", "choose_joint", "choose_joint_baselines",
           "fit_joint",
           "lkj_marginal_sd"]


def lkj_marginal_sd(eta: float, k: int) -> float:
    """Prior SD of one correlation under LKJ(eta) in dimension k: the marginal is
    2 * Beta(a, a) - 1 with a = eta - 1 + k / 2, so the SD is 1 / sqrt(2a + 1)."""
    a = eta - 1.0 + k / 2.0
    return float(1.0 / np.sqrt(2.0 * a + 1.0))


def lkj_marginal_interval(eta: float, k: int, ci: float = 0.95) -> tuple[float, float]:
    a = eta - 1.0 + k / 2.0
    lo, hi = sps.beta.ppf([(1 - ci) / 2, (1 + ci) / 2], a, a)
    return float(2 * lo - 1), float(2 * hi - 1)


@dataclass
class JointDesign(FamilyDesign):
    outcomes: list[str] = field(default_factory=list)
    directions: dict[str, str] = field(default_factory=dict)
    treat: tuple[str, ...] = ("tac",)
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    so: pd.DataFrame = field(default_factory=pd.DataFrame)  # (study, outcome) baselines
    excluded_outcomes: dict[str, str] = field(default_factory=dict)
    pairs: pd.DataFrame = field(default_factory=pd.DataFrame)
    phases: tuple[str, ...] = ()
    #: maintenance shift of each outcome's treatment effect (``beta_phase``)
    phase_effect: bool = False
    #: maintenance indicator x_i per study (1 = maintenance trial), aligned with study_ids
    maintenance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: per outcome: number of induction / maintenance studies reporting it (phase_effect only)
    phase_support: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def pair_names(self) -> list[str]:
        return self.pairs["pair"].tolist()

    def summary_dict(self) -> dict:
        return {
            "outcomes": list(self.outcomes),
            "directions": dict(self.directions),
            "excluded_outcomes": dict(self.excluded_outcomes),
            "treat": list(self.treat),
            "baseline": self.baseline,
            "n_studies": self.n_studies,
            "n_arms": self.n_arms,
            "n_rows": int(len(self.rows)),
            "phases": list(self.phases),
            "studies_reporting_both": {r["pair"]: list(r["studies"]) for _, r in self.pairs.iterrows()},
            **({"phase_support": {o: dict(v) for o, v in self.phase_support.items()},
                "maintenance_studies": [s for s, x in zip(self.study_ids, self.maintenance) if x == 1]}
               if self.phase_effect else {}),
        }

    def phase_note(self, o: str) -> str:
        """How the maintenance shift of outcome ``o`` is informed (summary notes)."""
        sup = self.phase_support.get(o, {})
        ni, nm = sup.get("induction", 0), sup.get("maintenance", 0)
        if nm == 0:
            return f"PRIOR ONLY: no maintenance study reports {o}"
        if ni == 0:
            return (f"only maintenance studies report {o} ({nm}): d[{o}] (induction) and the shift share their "
                    "information; the split between them comes from the priors")
        return f"{ni} induction and {nm} maintenance stud{'y' if nm == 1 else 'ies'} report {o}"


def _direction(o: str, directions: Mapping[str, str] | None) -> str:
    if directions and o in directions:
        if directions[o] not in ("benefit", "harm"):
            raise ValueError(f"direction of {o!r} must be 'benefit' or 'harm'")
        return directions[o]
    if o not in vocab.OUTCOMES:
        raise ValueError(f"unknown outcome {o!r}; known: {', '.join(vocab.OUTCOMES)} (or pass directions={{...}})")
    return vocab.OUTCOMES[o]


def build_joint_design(
    data,
    outcomes: str | Iterable[str],
    *,
    treat: str | Iterable[str] = ("tac",),
    baseline: str = "independent",
    phases=DEFAULT,
    designs=None,
    directions: Mapping[str, str] | None = None,
    warn: bool = True,
    phase_effect: bool = False,
) -> JointDesign:
    """Rows, baselines and usage of the joint model (no PyMC). ``phase_effect=True``:
    induction and maintenance studies together (default ``phases``), with the maintenance
    indicator per study (``maintenance``) for the shift ``beta_phase``."""
    outcomes = list(dict.fromkeys(_as_names(outcomes)))
    if len(outcomes) < 2:
        raise ValueError("the joint model needs at least two outcomes (e.g. total_response and severe_infection)")
    if baseline not in ("independent", "exchangeable"):
        raise ValueError(f"baseline must be 'independent' or 'exchangeable', not {baseline!r}")
    dirs = {o: _direction(o, directions) for o in outcomes}
    treat = _as_names(treat)
    if phases is DEFAULT:
        phases = ("induction", "maintenance") if phase_effect else ("induction",)
    phases = _as_names(phases)
    long, all_arms, fp = long_table(data)
    all_studies = list(dict.fromkeys(all_arms["study"]))
    long, excluded = select_phase_design(long, phases, designs)
    known = long.dropna(subset=["events", "n"])
    known = known.assign(treated=known["treatment"].isin(treat) | known["node"].isin(treat))

    cell: dict[tuple[str, str], str] = {}
    used_rows = []
    for o in outcomes:
        sub_o = known[known["outcome"] == o]
        for s, sub in sub_o.groupby("study", sort=False):
            nt, nc = int(sub["treated"].sum()), int((~sub["treated"]).sum())
            reason = None
            if nt >= 1 and nc >= 1:
                pass
            elif baseline == "independent":
                reason = ("single arm with counts" if len(sub) == 1 else
                          f"no {'/'.join(treat)} arm" if nt == 0 else "no control arm with counts") + " (needs exchangeable baselines)"
            elif nt == 0 and (sub["regimen"].astype("string") == "other").fillna(False).any():
                reason = f"no {'/'.join(treat)} arm (another experimental treatment)"
            arms_txt = " vs ".join(f"{label_of(r['node'])} {int(r['events'])}/{int(r['n'])}" for _, r in sub.iterrows())
            if reason:
                cell[(s, o)] = f"excluded: {reason} [{arms_txt}]"
                continue
            missing = [a for a in all_arms.loc[all_arms["study"] == s, "arm"] if a not in set(sub["arm"])]
            extra = f"; arm(s) {', '.join(missing)}: {o} unknown" if missing else ""
            cell[(s, o)] = f"used: {arms_txt}{extra}"
            used_rows.append(sub.assign(outcome=o))
    rows = pd.concat(used_rows, ignore_index=True) if used_rows else pd.DataFrame()
    excl_out = {}
    for o in outcomes:
        if rows.empty or not (rows["outcome"] == o).any():
            excl_out[o] = "no selected study compares " + "/".join(treat) + f" with a control arm for {o}"
    kept = [o for o in outcomes if o not in excl_out]
    if excl_out and warn:
        warnings.warn(
            "outcome(s) left out of the joint model: " + "; ".join(f"{o} ({r})" for o, r in excl_out.items()),
            UserWarning,
            stacklevel=3,
        )
    if len(kept) < 2:
        raise ValueError(
            f"fewer than two outcomes have usable studies ({', '.join(kept) or 'none'}); excluded: "
            + "; ".join(f"{o}: {r}" for o, r in excl_out.items())
        )
    rows = rows[rows["outcome"].isin(kept)].reset_index(drop=True)
    studies = [s for s in dict.fromkeys(rows["study"])]
    s_idx = {s: i for i, s in enumerate(studies)}
    o_idx = {o: k for k, o in enumerate(kept)}
    so = rows[["study", "outcome"]].drop_duplicates().reset_index(drop=True)
    so["so_id"] = so["study"] + ":" + so["outcome"]
    so_index = {(a, b): i for i, (a, b) in enumerate(zip(so["study"], so["outcome"]))}
    rows["study_index"] = rows["study"].map(s_idx)
    rows["outcome_index"] = rows["outcome"].map(o_idx)
    rows["so_index"] = [so_index[(a, b)] for a, b in zip(rows["study"], rows["outcome"])]
    rows["row_id"] = rows["study"] + ":" + rows["arm"] + ":" + rows["outcome"]
    rows["events"] = rows["events"].astype(np.int64)
    rows["n"] = rows["n"].astype(np.int64)
    # maintenance indicator x_i (only the label "maintenance"; as in the ordinal family)
    study_phase = rows.groupby("study", sort=False)["phase"].first().reindex(studies)
    maint = np.array([1.0 if str(study_phase[s]) == "maintenance" else 0.0 for s in studies])
    rows["maintenance"] = maint[rows["study_index"].to_numpy()]
    phase_support: dict[str, dict[str, int]] = {}
    if phase_effect:
        phase_vals = sorted(set(study_phase.dropna().astype(str)))
        if "maintenance" not in phase_vals or len(phase_vals) < 2:
            raise ValueError(
                f"phase_effect needs induction and maintenance studies; phases present among the studies in the "
                f"joint model: {', '.join(phase_vals) or '(none)'} (pass phases=('induction', 'maintenance'), or "
                "phase_effect=False to analyse one phase)"
            )
        for o in kept:
            st_o = rows.loc[rows["outcome"] == o].drop_duplicates("study")
            nm = int(st_o["maintenance"].sum())
            phase_support[o] = {"induction": int(len(st_o) - nm), "maintenance": nm}
        lonely = {o: v for o, v in phase_support.items() if v["induction"] == 0 or v["maintenance"] == 0}
        if lonely and warn:
            warnings.warn(
                "maintenance shift (phase_effect) of outcome(s) reported in one phase only: "
                + "; ".join(f"{o} ({'no maintenance study: prior only' if v['maintenance'] == 0 else 'maintenance studies only: shares their information with d'})"
                            for o, v in lonely.items()),
                UserWarning,
                stacklevel=3,
            )
    so["study_index"] = so["study"].map(s_idx)
    so["outcome_index"] = so["outcome"].map(o_idx)
    pattern = so.groupby("study_index")["outcome_index"].agg(lambda x: ",".join(str(k) for k in sorted(x)))
    so["pattern"] = so["study_index"].map(pattern)

    # contributions per pair of outcomes
    contrib = {o: set(rows.loc[rows["outcome"] == o, "study"]) for o in kept}
    pairs = []
    for a, b in itertools.combinations(kept, 2):
        both = sorted(contrib[a] & contrib[b], key=studies.index)
        pairs.append({"pair": f"{a}~{b}", "outcome_a": a, "outcome_b": b, "studies": both, "n_both": len(both)})
    pairs = pd.DataFrame(pairs)

    # usage
    st_phase_all = all_arms.groupby("study", sort=False)["phase"].first()
    urows = []
    for s in all_studies:
        u = {"study": s, "included": s in s_idx}
        for o in outcomes:
            if s in excluded:
                u[o] = f"excluded: {excluded[s]}"
            elif o in excl_out and (s, o) in cell and cell[(s, o)].startswith("used"):
                u[o] = "excluded: outcome left out (" + excl_out[o] + ")"
            else:
                u[o] = cell.get((s, o), "not reported")
        u["outcomes_used"] = ", ".join(o for o in kept if str(u[o]).startswith("used"))
        if phase_effect:
            ph = st_phase_all.get(s, pd.NA)
            u["phase"] = ("unknown" if pd.isna(ph) else str(ph)) + (
                " (x = 1: maintenance shift beta_phase)" if s in s_idx and maint[s_idx[s]] == 1 else "")
        urows.append(u)
    usage = pd.DataFrame(urows, columns=["study", "included", *(["phase"] if phase_effect else []), *outcomes,
                                         "outcomes_used"])
    return JointDesign(
        family="joint",
        outcome="+".join(kept),
        direction="mixed",
        baseline=baseline,
        study_ids=studies,
        arm_ids=rows["row_id"].tolist(),
        usage=usage,
        fingerprint=fp,
        outcomes=kept,
        directions={o: dirs[o] for o in kept},
        treat=tuple(treat),
        rows=rows,
        so=so,
        excluded_outcomes=excl_out,
        pairs=pairs,
        phases=phases,
        phase_effect=bool(phase_effect),
        maintenance=maint,
        phase_support=phase_support,
    )


def phase_shift_priors(priors: Priors, outcomes: Iterable[str]) -> dict:
    """Prior of each outcome's maintenance shift ``beta_phase[o]``: ``beta_overrides``
    key ``"phase:maintenance:<o>"``, else ``priors.beta_for("phase:maintenance")`` (the
    ``beta`` default, Normal(0, 1))."""
    return {o: priors.beta_overrides.get(f"phase:maintenance:{o}", priors.beta_for("phase:maintenance")) for o in outcomes}


def location_vector(name: str, priors, dims=None):
    """A vector location RV with one prior per element (all normal or all student_t)."""
    priors = list(priors)
    fams = {p.dist for p in priors}
    if len(fams) != 1:
        raise ValueError(f"{name}: all elements need the same prior family (normal or student_t), got {sorted(fams)}")
    fam = fams.pop()

    def par(k):
        return np.array([float(p.params[k]) for p in priors])

    if fam == "normal":
        return pm.Normal(name, mu=par("mu"), sigma=par("sigma"), dims=dims)
    if fam == "student_t":
        return pm.StudentT(name, nu=par("nu"), mu=par("mu"), sigma=par("sigma"), dims=dims)
    raise ValueError(f"{name}: {fam} is not a location prior (normal or student_t)")


def small_cholesky(A, m: int):
    """Lower Cholesky factor of an ``m x m`` symmetric positive-definite tensor, unrolled
    into scalar operations (Cholesky-Banachiewicz). For the few outcomes of a joint model
    this compiles to plain elementwise code; ``pt.linalg.cholesky`` and its gradient run
    as Python-level ops on every gradient evaluation, which made fits with studies
    reporting a subset of two or more outcomes ~20x slower (benchmarks/recovery_issue5.py,
    case joint3_pairs_cal)."""
    L = [[None] * m for _ in range(m)]
    for j in range(m):
        s = A[j, j]
        for k in range(j):
            s = s - L[j][k] ** 2
        L[j][j] = pt.sqrt(s)
        for i in range(j + 1, m):
            s = A[i, j]
            for k in range(j):
                s = s - L[i][k] * L[j][k]
            L[i][j] = s / L[j][j]
    zero = pt.zeros(())
    return pt.stack([pt.stack([L[i][k] if k <= i else zero for k in range(m)]) for i in range(m)])


def lkj_cholesky(name: str, K: int, eta: float, dims=None):
    """Cholesky factor of an LKJ(eta) correlation matrix from its canonical partial
    correlations (CPCs). In the C-vine the K(K-1)/2 partial correlations
    ``rho_{i,j | 1..j-1}`` of an LKJ(eta) matrix are independent, ``(rho + 1) / 2 ~
    Beta(b_j, b_j)`` with ``b_j = eta + (K - 1 - j) / 2`` at vine level j (Lewandowski,
    Kurowicka & Joe 2009, J Multivar Anal 100:1989, §3.2 "vine method"), and the Cholesky
    factor follows from the CPCs as in Stan's ``cholesky_corr_constrain``::

        L[0, 0] = 1;  L[i, 0] = c[i, 0];
        L[i, j] = c[i, j] * sqrt(1 - sum_{k<j} L[i, k]^2)  (0 < j < i);
        L[i, i] = sqrt(1 - sum_{k<i} L[i, k]^2)

    The CPCs are registered as ``name`` (Beta, on (0, 1)); the resulting correlation
    matrix is exactly LKJ(eta) distributed, stays positive definite by construction and
    has simple geometry for NUTS. (PyMC's ``LKJCorr`` samples the correlations with an
    interval transform, which can leave the positive-definite set for K >= 3.)"""
    rows_i, cols_j = np.tril_indices(K, -1)
    b = np.array([eta + (K - 2 - j) / 2.0 for j in cols_j])
    u = pm.Beta(name, alpha=b, beta=b, dims=dims)
    c = 2.0 * u - 1.0
    pos = {(i, j): k for k, (i, j) in enumerate(zip(rows_i, cols_j))}
    rows = []
    for i in range(K):
        entries = []
        ssq = 0.0
        for j in range(i):
            cij = c[pos[(i, j)]]
            lij = cij if j == 0 else cij * pt.sqrt(1.0 - ssq)
            entries.append(lij)
            ssq = ssq + lij**2
        entries.append(pt.sqrt(1.0 - ssq) if i > 0 else pt.as_tensor_variable(1.0))
        entries += [pt.as_tensor_variable(0.0)] * (K - i - 1)
        rows.append(pt.stack(entries))
    return pt.stack(rows)


#: the posterior variables the gate of a joint fit reads (z and delta in every form of the
#: study effects); a run folder read back is gated on the same (bayesln.predict.command)
GATE_VARS = ("mu", "mu_raw", "m", "sigma_mu", "gamma_phase", "d", "beta_phase", "tau", "rho", "z", "delta")


def choose_joint(design: JointDesign) -> tuple:
    """``parameterization="auto"`` of the joint family: each (study, outcome) cell's Woolf
    log-OR variance against ``tau_lo`` of its outcome (:func:`bayesln.hierarchy.parameterize.
    centred_cells`); a study is centred when all its cells are (its cells share one
    multivariate normal). Returns (form or flags, record)."""
    from bayesln.hierarchy.parameterize import LEVEL, RATIO, centred_cells, family_choice, pooled_log_or

    rows, so = design.rows, design.so
    y, v = pooled_log_or(rows["so_index"], rows["treated"], rows["events"], rows["n"], len(so))
    oi = so["outcome_index"].to_numpy()
    flags, refs = centred_cells(y, v, groups=oi)
    refs = {design.outcomes[int(k)]: r for k, r in refs.items()}
    rule = (f"study centred when var(log OR_io) < {RATIO:g} * tau_lo(o)^2 for each of its outcomes o, tau_lo(o) the "
            f"lower {LEVEL:g}% Q-profile limit of outcome o's tau (bayesln.hierarchy.joint.choose_joint)")
    return family_choice(design.study_ids, so["study_index"].to_numpy(), flags, refs, rule)


def choose_joint_baselines(design: JointDesign) -> tuple:
    """``baseline_parameterization="auto"`` of exchangeable joint baselines: each (study,
    outcome) cell's pooled control-arm log-odds variance against the lower Q-profile limit
    of that outcome's between-study SD (given the maintenance indicator under
    ``phase_effect``); the cells' baselines are independent normals, so the flags are per
    cell. Returns (form or flags, record)."""
    from bayesln.hierarchy.parameterize import LEVEL, RATIO, as_form, centred_cells, control_log_odds

    rows, so = design.rows, design.so
    y, v = control_log_odds(rows["so_index"], rows["treated"], rows["events"], rows["n"], len(so))
    X = design.maintenance[so["study_index"].to_numpy()][:, None].astype(float) if design.phase_effect else None
    flags, refs = centred_cells(y, v, groups=so["outcome_index"].to_numpy(), X=X)
    record = {"rule": (f"baseline of cell (i, o) centred when var(control log odds_io) < {RATIO:g} * sigma_lo(o)^2, "
                       f"sigma_lo(o) the lower {LEVEL:g}% Q-profile limit of outcome o's between-study SD "
                       "(bayesln.hierarchy.joint.choose_joint_baselines)"),
              "sigma_ref": {design.outcomes[int(k)]: r for k, r in refs.items()},
              "centered": so["so_id"].to_numpy()[flags].tolist(), "n_centered": int(flags.sum()), "n_cells": len(so)}
    return as_form(tuple(bool(f) for f in flags), record)


def build_joint_model(design: JointDesign, *, priors: Priors | dict | None = None, lkj_eta: float = 2.0,
                      parameterization="noncentered", baseline_parameterization="noncentered") -> pm.Model:
    """PyMC model of a :class:`JointDesign`. Posterior variables: ``mu`` (so), ``m``,
    ``sigma_mu`` (outcome, exchangeable baselines), ``d``, ``tau`` (outcome), ``rho``
    (outcome_pair), ``z`` and ``delta`` (so: the reported study x outcome cells), ``tau_<k>`` (the scalar tau
    parameters) and ``cpc`` (the canonical partial correlations, on (0, 1), see
    :func:`lkj_cholesky`). With ``design.phase_effect``: ``beta_phase`` (outcome: the
    maintenance shift of the log odds ratio, included in ``delta``) and, with exchangeable
    baselines, ``gamma_phase`` (outcome: the maintenance shift of the baseline mean).
    ``parameterization``: ``"noncentered"`` (default here), ``"centered"``, ``"auto"``
    (:func:`choose_joint`) or one flag per study (True: centred; see the module docstring);
    ``baseline_parameterization`` the same for exchangeable baselines, one flag per (study,
    outcome) cell (:func:`choose_joint_baselines`).
    Events / n are ``pm.Data`` (``events_data``, ``n_data``). The scalar building blocks
    ``tau_<k>``, ``sigma_mu_<k>`` and ``cpc`` are sampled but not exported: the fit's
    InferenceData holds only the variables of :data:`JOINT_EXPORT`."""
    if not lkj_eta > 0:
        raise ValueError(f"lkj_eta must be > 0, got {lkj_eta}")
    pr = coerce_priors(priors, Priors)
    form, _ = family_form(parameterization, lambda: choose_joint(design))
    bform, _ = family_form(baseline_parameterization, lambda: choose_joint_baselines(design),
                           random_effects=design.baseline == "exchangeable")
    bmask = effect_mask(bform, len(design.so))
    K = len(design.outcomes)
    rows, so = design.rows, design.so
    ri, cj = np.tril_indices(K, -1)
    o = design.outcomes
    coords = {
        "study": design.study_ids,
        "outcome": design.outcomes,
        "outcome_pair": design.pair_names,
        "cpc_pair": [f"{o[j]}~{o[i]}" + (f"|{','.join(o[:j])}" if j else "") for i, j in zip(ri, cj)],
        "row": rows["row_id"].tolist(),
        "so": so["so_id"].tolist(),
    }
    tau_priors = [resolve_tau_prior(pr.tau, o) for o in design.outcomes]
    iu = np.triu_indices(K, 1)
    t = rows["treated"].to_numpy(float)
    r_so = rows["so_index"].to_numpy()
    with pm.Model(coords=coords) as model:
        events = pm.Data("events_data", rows["events"].to_numpy(), dims="row")
        n = pm.Data("n_data", rows["n"].to_numpy(), dims="row")
        if design.baseline == "independent":
            mu = location_rv("mu", pr.baseline, dims="so")
        else:
            m = location_rv("m", pr.m, dims="outcome")
            sig = pm.Deterministic("sigma_mu", pt.stack([scale_rv(f"sigma_mu_{k}", pr.sigma_mu) for k in range(K)]), dims="outcome")
            raw = None if bmask.any() else pm.Normal("mu_raw", 0.0, 1.0, dims="so")
            oi = so["outcome_index"].to_numpy()
            loc = m[oi]
            if design.phase_effect:
                gph = location_vector("gamma_phase", [pr.gamma_for("phase:maintenance")] * K, dims="outcome")
                loc = loc + design.maintenance[so["study_index"].to_numpy()] * gph[oi]
            mu = pm.Deterministic("mu", loc + sig[oi] * raw if raw is not None else normal_effects(
                loc, sig[oi], bmask, "so", ("mu_raw", "mu_centered", "mu_mixed", "centered_baseline")), dims="so")
        d = location_rv("d", pr.d, dims="outcome")
        tau = pm.Deterministic(
            "tau", pt.stack([scale_rv(f"tau_{k}", p) for k, p in enumerate(tau_priors)]), dims="outcome"
        )
        L = lkj_cholesky("cpc", K, lkj_eta, dims="cpc_pair")
        corr = pt.dot(L, L.T)
        pm.Deterministic("rho", corr[iu], dims="outcome_pair")
        # study effects only for the reported (study, outcome) cells: for a study reporting
        # the outcomes S, delta_iS = d_S + diag(tau_S) chol(Omega_SS) z_iS, the exact
        # marginal of the multivariate normal (no free z for unreported outcomes, which
        # would otherwise tangle with the correlation parameters)
        centred = effect_mask(form, design.n_studies)
        mixed = bool(centred.any())
        c_so = centred[so["study_index"].to_numpy()]  # cells of centred studies
        # non-centred cells: z ~ N(0, I) (named "z" when every study is non-centred)
        nc_pos = np.full(len(so), -1)
        nc_pos[~c_so] = np.arange(int((~c_so).sum()))
        if not mixed:
            z = pm.Normal("z", 0.0, 1.0, dims="so")
        elif (~c_so).any():
            z = pm.Normal("z_nc", 0.0, 1.0, shape=int((~c_so).sum()))
        cells, order, centred_blocks = [], [], []
        for pat, grp in so.groupby("pattern", sort=False):
            idx = [int(k) for k in pat.split(",")]
            cidx = np.array([list(g.sort_values("outcome_index").index) for _, g in grp.groupby("study_index", sort=False)])
            if len(idx) == 1:
                Ls = None
            elif idx == list(range(K)):
                Ls = L
            else:
                Ls = small_cholesky(corr[np.ix_(idx, idx)], len(idx))
            is_c = c_so[cidx[:, 0]]
            if is_c.any():
                centred_blocks.append((pat, idx, cidx[is_c], Ls))
            cidx = cidx[~is_c]
            if not len(cidx):
                continue
            zz = z[cidx] if not mixed else z[nc_pos[cidx]]  # (n studies, |S|)
            eff = zz if Ls is None else pt.dot(zz, Ls.T)
            cells.append((d[idx][None, :] + tau[idx][None, :] * eff).reshape((-1,)))
            order.append(cidx.reshape(-1))
        shift = None
        if design.phase_effect:
            # maintenance shift: delta_io = d_o + beta_phase_o * x_i + tau_o * (L z_i)_o
            bph = location_vector("beta_phase", phase_shift_priors(pr, design.outcomes).values(), dims="outcome")
            x_so = design.maintenance[so["study_index"].to_numpy()]
            shift = x_so * bph[so["outcome_index"].to_numpy()]
        whitened = []
        for pat, idx, cidx, Ls in centred_blocks:
            # centred: delta_iS ~ MVN(d_S + shift_iS, (diag(tau_S) Ls)(diag(tau_S) Ls)')
            loc = d[idx][None, :] + (shift[cidx] if shift is not None else 0.0)
            name = "delta_c" + pat.replace(",", "_")
            if Ls is None:
                dc = pm.Normal(name, mu=loc[:, 0], sigma=tau[idx[0]], shape=len(cidx))[:, None]
                w = (dc - loc) / tau[idx[0]]
            else:
                dc, w = mvn_chol(name, loc, tau[idx][:, None] * Ls, (len(cidx), len(idx)))
            cells.append(dc.reshape((-1,)))
            order.append(cidx.reshape(-1))
            whitened.append((w.reshape((-1,)), cidx.reshape(-1)))
        order = np.concatenate(order)
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        delta = pt.concatenate(cells)[inv]
        if shift is not None:
            delta = delta + (shift if not mixed else shift * (~c_so).astype(float))
        delta = pm.Deterministic("delta", delta, dims="so")
        if mixed:
            parts = ([z] if (~c_so).any() else []) + [w for w, _ in whitened]
            pos = np.concatenate(([np.flatnonzero(~c_so)] if (~c_so).any() else []) + [c for _, c in whitened])
            back = np.empty_like(pos)
            back[pos] = np.arange(len(pos))
            pm.Deterministic("z", pt.concatenate(parts)[back], dims="so")
        theta = mu[r_so] + t * delta[r_so]
        pm.Binomial("y", n=n, logit_p=theta, observed=events, dims="row")
    return model


@dataclass(repr=False)
class JointResult(FamilyFitResult):
    """Result of :func:`fit_joint`: pooled log-OR / OR / tau per outcome, the
    between-outcome correlations with a prior-dependence check, and the efficacy-safety
    trade-off probabilities. With ``phase_effect=True`` the pooled effects ``d`` and the
    trade-off are at induction (x = 0), and per outcome the summary adds the maintenance
    shift ``beta_phase``, its OR ratio and the pooled effect at maintenance
    ``d + beta_phase``."""

    def correlation_check(self, ci: float = 0.95) -> pd.DataFrame:
        """Per pair of outcomes: studies reporting both, prior vs posterior of rho."""
        des: JointDesign = self.design
        eta = float(self.config["lkj_eta"])
        K = len(des.outcomes)
        rho = self.draws("rho")
        psd = lkj_marginal_sd(eta, K)
        plo, phi = lkj_marginal_interval(eta, K, ci)
        out = []
        for k, r in des.pairs.iterrows():
            x = rho[:, k]
            sd = float(np.std(x, ddof=1))
            ratio = sd / psd
            out.append({
                "pair": r["pair"], "n_studies_both": int(r["n_both"]), "studies_both": ", ".join(r["studies"]) or "(none)",
                "prior_sd": psd, "prior_interval": f"[{plo:.2f}, {phi:.2f}]",
                "posterior_median": float(np.median(x)), "posterior_sd": sd, "sd_ratio": ratio,
                "prior_dominated": bool(r["n_both"] < 3 or ratio > 0.8),
            })
        return pd.DataFrame(out)

    def tradeoff_draws(self, predictive: bool = False) -> tuple[np.ndarray, list[str]]:
        """Draws (n, K) of the log-ORs per outcome: pooled ``d`` or, with
        ``predictive=True``, the effect in a new study ``d + L e``."""
        d = self.draws("d")
        if not predictive:
            return d, list(self.design.outcomes)
        tau = self.draws("tau")
        rho = self.draws("rho")
        K = d.shape[1]
        rng = np.random.default_rng([int(self.seed), 7])
        iu = np.triu_indices(K, 1)
        out = np.empty_like(d)
        e = rng.standard_normal(d.shape)
        for i in range(d.shape[0]):
            R = np.eye(K)
            R[iu] = rho[i]
            R[(iu[1], iu[0])] = rho[i]
            S = R * np.outer(tau[i], tau[i])
            L = np.linalg.cholesky(S + 1e-12 * np.eye(K))
            out[i] = d[i] + L @ e[i]
        return out, list(self.design.outcomes)

    def summary(self, ci: float = 0.95) -> pd.DataFrame:
        des: JointDesign = self.design
        S = SummaryRows(ci)
        tname = "/".join(label_of(x) for x in des.treat)
        d = self.draws("d")
        tau = self.draws("tau")
        pred, _ = self.tradeoff_draws(predictive=True)
        phase = "beta_phase" in self.idata.posterior
        at = " at induction (maintenance indicator 0)" if phase else ""
        better = {}
        for k, o in enumerate(des.outcomes):
            nst = int(des.rows.loc[des.rows["outcome"] == o, "study"].nunique())
            S.add(f"pooled log-OR: {o}", f"d[{o}]", d[:, k], f"{tname} vs control{at} ({nst} stud{'y' if nst == 1 else 'ies'})", outcome=o)
            S.add(f"pooled OR: {o}", f"exp(d[{o}])", np.exp(d[:, k]), f"{tname} vs control{at} ({nst} stud{'y' if nst == 1 else 'ies'})", outcome=o)
            S.add(f"tau: {o}", f"tau[{o}]", tau[:, k], "between-study SD of the log odds ratio", outcome=o)
            S.add(f"predictive OR (new study): {o}", f"exp(d + L e)[{o}]", np.exp(pred[:, k]), "odds ratio in a new study", outcome=o)
            if des.directions[o] == "benefit":
                better[o] = d[:, k] > 0
                S.prob(f"P(OR > 1): {o}", f"d[{o}]", float(np.mean(better[o])), f"posterior probability that {tname} increases {o}", outcome=o)
            else:
                better[o] = d[:, k] < 0
                S.prob(f"P(OR < 1): {o}", f"d[{o}]", float(np.mean(better[o])), f"posterior probability that {tname} reduces {o}", outcome=o)
            if phase:
                b = self.draws("beta_phase")[:, k]
                pn = des.phase_note(o)
                S.add(f"maintenance shift (log-OR ratio): {o}", f"beta_phase[{o}]", b,
                      f"log-OR at maintenance minus log-OR at induction; {pn}", outcome=o)
                S.add(f"OR ratio maintenance / induction: {o}", f"exp(beta_phase[{o}])", np.exp(b),
                      f"ratio of the {tname}-vs-control ORs; {pn}", outcome=o)
                S.add(f"pooled log-OR at maintenance: {o}", f"d[{o}] + beta_phase[{o}]", d[:, k] + b,
                      f"{tname} vs control in maintenance trials", outcome=o)
                S.add(f"pooled OR at maintenance: {o}", f"exp(d[{o}] + beta_phase[{o}])", np.exp(d[:, k] + b),
                      f"{tname} vs control in maintenance trials", outcome=o)
                sign, word = (">", "increases") if des.directions[o] == "benefit" else ("<", "reduces")
                pb = (d[:, k] + b > 0) if sign == ">" else (d[:, k] + b < 0)
                S.prob(f"P(OR {sign} 1) at maintenance: {o}", f"d[{o}] + beta_phase[{o}]", float(np.mean(pb)),
                       f"posterior probability that {tname} {word} {o} in maintenance", outcome=o)
        chk = self.correlation_check(ci)
        rho = self.draws("rho")
        for k, r in chk.iterrows():
            flag = "PRIOR-DOMINATED: " if r["prior_dominated"] else ""
            S.add(
                f"correlation: {r['pair'].replace('~', ' x ')}", f"rho[{r['pair']}]", rho[:, k],
                f"{flag}between-study correlation of the log-ORs; {r['n_studies_both']} stud"
                f"{'y' if r['n_studies_both'] == 1 else 'ies'} report both ({r['studies_both']}); LKJ({self.config['lkj_eta']:g}) "
                f"prior SD {r['prior_sd']:.2f}, posterior SD {r['posterior_sd']:.2f}",
                outcome=r["pair"],
            )
        eff = [o for o in des.outcomes if des.directions[o] == "benefit"]
        harm = [o for o in des.outcomes if des.directions[o] == "harm"]
        pred_better = {o: (pred[:, k] > 0 if des.directions[o] == "benefit" else pred[:, k] < 0) for k, o in enumerate(des.outcomes)}
        for e in eff:
            for h in harm:
                both = better[e] & better[h]
                indep = float(np.mean(better[e]) * np.mean(better[h]))
                S.prob(
                    f"P(trade-off): {e} OR > 1 and {h} OR < 1", f"d[{e}] > 0 & d[{h}] < 0", float(np.mean(both)),
                    f"pooled effects; product of the marginal probabilities {indep:.3f}", outcome=f"{e}~{h}",
                )
                S.prob(
                    f"P(trade-off, new study): {e} OR > 1 and {h} OR < 1", "new-study effects", float(np.mean(pred_better[e] & pred_better[h])),
                    "effects in a new study (includes heterogeneity and the correlation)", outcome=f"{e}~{h}",
                )
        allb = np.logical_and.reduce([better[o] for o in des.outcomes])
        S.prob("P(better on every outcome)", "all d in the favourable direction", float(np.mean(allb)),
               f"{tname} better than control on {', '.join(des.outcomes)}", outcome="all")
        return S.frame(extra_cols=("outcome",))


_C = ("chain", "draw")
#: The InferenceData of a joint fit (what ``bayesln fit`` writes for a joint spec): group ->
#: variable -> (dims, meaning); "(when ...)" marks variables of some models only. Dims:
#: ``so`` = the reported (study, outcome) cells ("study:outcome"), ``row`` = the
#: (study, outcome, arm) rows with known counts, ``outcome_pair`` = "a~b". Nothing else is
#: exported (the scalar parts ``tau_<k>``, ``sigma_mu_<k>`` of the stacked ``tau`` /
#: ``sigma_mu`` and the canonical partial correlations ``cpc`` behind ``rho`` are not);
#: see :mod:`bayesln.hierarchy.fit` for the groups ``log_likelihood`` (one variable, so that
#: ``az.loo`` needs no ``var_name``), ``log_likelihood_conditional`` and ``posterior_derived``.
JOINT_EXPORT: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "posterior": {
        "mu": (_C + ("so",), "baseline log-odds of each (study, outcome) cell"),
        "m": (_C + ("outcome",), "mean baseline log-odds per outcome (when baselines are exchangeable)"),
        "sigma_mu": (_C + ("outcome",), "between-study SD of the baseline log-odds (when baselines are exchangeable)"),
        "mu_raw": (_C + ("so",), "standardised baselines of the cells (when baselines are exchangeable)"),
        "gamma_phase": (_C + ("outcome",), ("maintenance shift of the baseline mean (when phase_effect and "
                                           "exchangeable baselines)")),
        "d": (_C + ("outcome",), "pooled log odds ratio per outcome (at induction when phase_effect)"),
        "beta_phase": (_C + ("outcome",), "maintenance shift of the log odds ratio (when phase_effect)"),
        "tau": (_C + ("outcome",), "between-study SD of the log odds ratio per outcome"),
        "rho": (_C + ("outcome_pair",), "between-outcome correlation of the study effects"),
        "z": (_C + ("so",), "standard-normal innovations of the study effects (before the Cholesky factor)"),
        "delta": (_C + ("so",), "log odds ratio of each (study, outcome) cell"),
    },
    "posterior_derived": {
        "or": (_C + ("outcome",), "pooled odds ratio exp(d) per outcome"),
        "or_new": (_C + ("outcome",), ("odds ratio in a new study per outcome, exp(d + L e) with the correlated "
                                      "heterogeneity (JointResult.tradeoff_draws(predictive=True), seed [seed, 7]: "
                                      "the summary's 'predictive OR (new study)' draws)")),
    },
    "log_likelihood": {
        "study_integrated": (_C + ("study",), ("log-likelihood of each study (all its outcomes) with its own "
                                              "baselines and correlated effects integrated out "
                                              "(bayesln.checks.marginal.joint_integrated_study_loglik): what "
                                              "the leave-one-study-out of bayesln.checks uses")),
    },
    "log_likelihood_conditional": {
        "study_loglik": (_C + ("study",), "log-likelihood of each study given its own parameters (sum over its rows)"),
    },
    "posterior_predictive": {"y": (_C + ("row",), "replicated event counts of each row")},
    "prior": {},
    "prior_predictive": {"y": (_C + ("row",), "event counts of each row drawn from the prior")},
    "observed_data": {"y": (("row",), "observed event counts")},
    "constant_data": {
        "n": (("row",), "arm sizes"),
        "treated": (("row",), "1 for a treated arm"),
        "row_study": (("row",), "the study of each row"),
        "row_outcome": (("row",), "the outcome of each row"),
        "maintenance": (("study",), "1 for a maintenance study (when phase_effect)"),
    },
}
JOINT_EXPORT["prior"] = {k: (dims, f"prior draws of {k}") for k, (dims, _) in JOINT_EXPORT["posterior"].items()}


def _or_new(result) -> np.ndarray:
    post = result.idata.posterior
    pred, _ = result.tradeoff_draws(predictive=True)
    return np.exp(pred).reshape(int(post.sizes["chain"]), int(post.sizes["draw"]), -1)


def _export(result: JointResult) -> None:
    """Only the variables of :data:`JOINT_EXPORT` in ``result.idata``, with the integrated
    ``log_likelihood`` (computed on first read), the conditional one as
    ``log_likelihood_conditional`` and the ``posterior_derived`` group."""
    import functools

    from bayesln.checks.marginal import integrated_loglik_dataarray

    idata = result.idata
    post = _arviz.keep_variables(idata.posterior, JOINT_EXPORT["posterior"])
    prior = _arviz.keep_variables(_arviz.group(idata, "prior"), JOINT_EXPORT["prior"])
    cond = _arviz.group(idata, "log_likelihood")
    cd = {"chain": post["chain"].values, "draw": post["draw"].values, "outcome": post["outcome"].values}
    derived = xr.Dataset(
        {"or": np.exp(post["d"]).drop_vars([c for c in post["d"].coords if c not in cd]),
         "or_new": _arviz.lazy_dataarray(("chain", "draw", "outcome"), cd, functools.partial(_or_new, result))},
        coords=cd,
    )
    for name, da in derived.data_vars.items():
        da.attrs = {"description": JOINT_EXPORT["posterior_derived"][name][1]}
    result.idata = _arviz.replace_groups(idata, {"posterior": post, "prior": prior, "log_likelihood_conditional": cond,
                                                 "posterior_derived": derived, "log_likelihood": None})
    ll = xr.Dataset({"study_integrated": integrated_loglik_dataarray(result)})
    result.idata = _arviz.replace_groups(result.idata, {"log_likelihood": ll})


def fit_joint(
    data,
    outcomes: str | Iterable[str],
    *,
    treat: str | Iterable[str] = ("tac",),
    lkj_eta: float = 2.0,
    baseline: str = "independent",
    phases: str | Iterable[str] | None = DEFAULT,
    designs: str | Iterable[str] | None = None,
    directions: Mapping[str, str] | None = None,
    phase_effect: bool = False,
    priors: Priors | dict | None = None,
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
) -> JointResult:
    """Fit the joint efficacy-safety model (see the module docstring).

    ``outcomes``: two or more outcomes, e.g. ``("total_response", "severe_infection",
    "serious_adverse_event", "death")``; an outcome without any study comparing ``treat``
    with a control arm is left out with a warning (``config["excluded_outcomes"]``).
    ``lkj_eta``: LKJ concentration of the between-outcome correlation matrix (default 2).
    ``phases``: default induction only (induction and maintenance with
    ``phase_effect=True``). ``phase_effect``: fit both phases with a maintenance shift
    ``beta_phase`` of each outcome's log odds ratio (see the module docstring; prior
    ``priors.beta_for("phase:maintenance")``, Normal(0, 1) by default). ``parameterization``:
    ``"auto"`` (default; per study from the data, :func:`choose_joint`, recorded in
    ``config["parameterization_chosen"]``; the structural retry samples every study
    non-centred), ``"noncentered"``, ``"centered"`` or per-study flags;
    ``baseline_parameterization`` the same for exchangeable baselines
    (:func:`choose_joint_baselines`). Sampler arguments
    as in :func:`bayesln.hierarchy.fit_core`."""
    seed = check_seed(seed)
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, target_accept=target_accept, cores=cores)
    used = resolve_backend(backend)
    pr = coerce_priors(priors, Priors)
    design = build_joint_design(data, outcomes, treat=treat, baseline=baseline, phases=phases, designs=designs,
                                directions=directions, phase_effect=phase_effect)
    form, chosen = family_form(parameterization, lambda: choose_joint(design))
    bform, bchosen = family_form(baseline_parameterization, lambda: choose_joint_baselines(design),
                                 random_effects=design.baseline == "exchangeable")
    model = build_joint_model(design, priors=pr, lkj_eta=lkj_eta, parameterization=form,
                              baseline_parameterization=bform)
    resolved = pr.model_dump(mode="json")
    resolved["tau"] = {o: resolve_tau_prior(pr.tau, o).model_dump(mode="json") for o in design.outcomes}
    if design.phase_effect:
        resolved["beta_phase"] = {o: p.model_dump(mode="json") for o, p in phase_shift_priors(pr, design.outcomes).items()}
        if design.baseline == "exchangeable":
            resolved["gamma_phase"] = pr.gamma_for("phase:maintenance").model_dump(mode="json")
    config = {
        "model": "joint efficacy-safety (arm-based binomial, MVN study effects, LKJ correlation)",
        "family": "joint",
        **design.summary_dict(),
        "requested_outcomes": list(_as_names(outcomes)),
        "designs": list(_as_names(designs)),
        "lkj_eta": float(lkj_eta),
        "phase_effect": bool(phase_effect),
        "priors": resolved,
        "sampler": sampler_config(backend, used, settings, seed),
        "gate": gate.to_dict(),
    }
    fallback = record_forms(config, parameterization=(parameterization, form, chosen),
                            baseline_parameterization=(baseline_parameterization, bform, bchosen))
    rows = design.rows
    const = xr.Dataset(
        {"n": (("row",), rows["n"].to_numpy()), "treated": (("row",), rows["treated"].to_numpy().astype(int)),
         "row_study": (("row",), rows["study"].to_numpy().astype(str)),
         "row_outcome": (("row",), rows["outcome"].to_numpy().astype(str))},
        coords={"row": rows["row_id"].tolist()},
    )
    if design.phase_effect:
        const["maintenance"] = xr.DataArray(design.maintenance.astype(int), dims=("study",),
                                            coords={"study": design.study_ids})
    gate_vars = GATE_VARS
    idata, diag, used = sample_family(
        model, design=design, config=config, seed=seed, settings=settings, backend=used, progressbar=progressbar,
        gate=gate, loglik_rows={"y": rows["study_index"].to_numpy()}, gate_vars=gate_vars,
        prior_predictive=prior_predictive, prior_draws=prior_draws, posterior_predictive=posterior_predictive,
        constant_data=const, label="joint efficacy-safety", retry=retry,
        alternative=((lambda: build_joint_model(design, priors=pr, lkj_eta=lkj_eta, parameterization="noncentered",
                                                baseline_parameterization="noncentered"))
                     if fallback else None),
    )
    result = JointResult(idata=idata, design=design, diagnostics=diag, config=config, seed=seed, backend=used)
    _export(result)
    return result
