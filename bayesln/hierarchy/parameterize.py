"""Centred or non-centred study effects, chosen per study from the data.

Why: in the hierarchy ``delta_i ~ Normal(d, tau)`` the sampler sees a funnel when a study's
own data say little about ``delta_i`` (the prior ``N(d, tau)`` dominates and ``delta_i``
moves with ``tau``): there the non-centred form ``delta_i = d + tau * z_i`` removes the
funnel. When a study's data pin ``delta_i`` down more tightly than ``tau`` spreads it, the
non-centred form creates the opposite problem (``z_i`` and ``tau`` are then tightly
coupled: ``z_i = (delta_i - d) / tau`` with ``delta_i`` nearly fixed) and the centred form
``delta_i ~ N(d, tau)`` samples better. A handful of small trials is the first case, a
review with many large trials the second, and most real reviews are a mixture: so each
study gets its own form (Betancourt & Girolami 2013, "Hamiltonian Monte Carlo for
hierarchical models"; Gorinova, Moore & Hoffman 2020 for per-variable choices).

The rule (``parameterization = "auto"``, the default of :func:`~bayesln.hierarchy.fit_core`
and of specs): study *i* is centred when

    v_i  <  RATIO * tau_lo^2

where ``v_i`` is the large-sample variance of the study's log odds ratio (Woolf: the sum of
the reciprocal cell counts of its pooled treated and pooled control arms, 0.5 added to every
cell of a study with a zero cell) and ``tau_lo`` is the lower limit of the :data:`LEVEL` %
Q-profile confidence interval of tau from the same log odds ratios (0 when fewer than two
studies have both arms, or when the interval reaches 0). So no study is centred unless the
data show clear heterogeneity: where tau's posterior reaches small values, a centred study
is in a funnel. (The DerSimonian-Laird point estimate in place of ``tau_lo`` centred too
many: on simulated reviews of 20-30 trials, benchmarks/calibration.py's "issue" part, 15 of
30 fits passed the gate, against 26 of 30 with every study non-centred.) Studies without a treated or a control arm (single-arm studies under
exchangeable baselines) are non-centred: their data do not inform ``delta_i``.

Exchangeable baselines (``baseline_parameterization = "auto"``) get the same rule one
level down: study *i*'s baseline ``mu_i ~ Normal(m + z_i . gamma, sigma_mu)`` is centred when

    w_i  <  RATIO * sigma_lo^2

where ``w_i`` is the large-sample variance of the log odds of its pooled control arms
(``1/e + 1/(n - e)``, 0.5 added to both cells when one is zero) and ``sigma_lo`` the lower
limit of the :data:`LEVEL` % Q-profile interval of the between-study SD of those log odds,
with the baseline covariates as moderators when the model has any (the residual SD is
what ``sigma_mu`` is). A study without a control arm (a single-arm series) is non-centred:
only its treated arms, through ``mu_i + delta_i``, inform its baseline.

The choice is a deterministic function of the counts (no random numbers), so it is the
same for the same data on every machine; ``fit_core`` writes it into the run's config
(``parameterization_chosen``: the centred studies, ``tau_ref`` = tau_lo, the rule, the form). A spec
or a call can fix the form with ``parameterization = "noncentered"`` / ``"centered"``.
The value of :data:`RATIO` and the evidence for the rule: ``benchmarks/calibration.py``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LEVEL", "RATIO", "as_form", "baseline_log_odds_variance", "centred_cells", "choose", "choose_baseline",
           "combine_information", "control_log_odds", "family_choice", "mask_kind", "pooled_log_or", "reference_tau", "resolve",
           "resolve_baseline", "study_log_or_variance"]

#: a study is centred when its log-OR variance is below RATIO * tau_ref^2
RATIO = 1.0
#: level (%) of the Q-profile interval whose lower limit is the reference tau
LEVEL = 95.0


def pooled_log_or(group, treated, events, n, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(log odds ratio, its Woolf variance) per group (a study, or a study's cell of one
    outcome / stage) from rows of counts: the group's treated rows pooled against its
    control rows; NaN for a group without both. ``group``: the group index of each row."""
    ev = np.zeros((n_groups, 2))
    nn = np.zeros((n_groups, 2))
    idx = (np.asarray(group, int), np.asarray(treated).astype(int))
    np.add.at(ev, idx, np.asarray(events, float))
    np.add.at(nn, idx, np.asarray(n, float))
    from bayesln.frequentist.effects import escalc_arrays

    both = (nn > 0).all(axis=1)
    # metafor's escalc(measure="OR"): 1/2 added to every cell of a group with a zero cell
    with np.errstate(divide="ignore", invalid="ignore"):
        y, v = escalc_arrays(np.where(both, ev[:, 1], 0.0), np.where(both, nn[:, 1], 1.0),
                             np.where(both, ev[:, 0], 0.0), np.where(both, nn[:, 0], 1.0), "OR")
    y[~both] = np.nan
    v[~both] = np.nan
    return y, v


def study_log_or_variance(design) -> tuple[np.ndarray, np.ndarray]:
    """(log odds ratio, its Woolf variance) per study of a :class:`Design`, treated arms
    pooled against control arms; NaN for a study without both."""
    return pooled_log_or(design.arm_study, design.treated, design.events, design.n, design.n_studies)


def combine_information(*pairs: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance combination of several (estimate, variance) arrays of the same
    effect (NaN entries carry no information); NaN where none is finite."""
    info = np.zeros_like(np.asarray(pairs[0][1], float))
    tot = np.zeros_like(info)
    for y, v in pairs:
        ok = np.isfinite(y) & np.isfinite(v) & (v > 0)
        info = info + np.where(ok, 1.0 / np.where(ok, v, 1.0), 0.0)
        tot = tot + np.where(ok, np.where(ok, y, 0.0) / np.where(ok, v, 1.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(info > 0, 1.0 / info, np.nan)
        y = np.where(info > 0, tot * v, np.nan)
    return y, v


def baseline_log_odds_variance(design) -> tuple[np.ndarray, np.ndarray]:
    """(log odds, its large-sample variance) of each study's pooled control arms; NaN for
    a study without a control arm."""
    return control_log_odds(design.arm_study, design.treated, design.events, design.n, design.n_studies)


def control_log_odds(group, treated, events, n, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(log odds, its large-sample variance ``1/e + 1/(n - e)``, 0.5 added to both cells
    when one is zero) of each group's pooled control rows; NaN for a group without one."""
    ev = np.zeros(n_groups)
    nn = np.zeros(n_groups)
    c = ~np.asarray(treated).astype(bool)
    np.add.at(ev, np.asarray(group, int)[c], np.asarray(events, float)[c])
    np.add.at(nn, np.asarray(group, int)[c], np.asarray(n, float)[c])
    cells = np.stack([ev, nn - ev], axis=-1) + np.where((ev == 0) | (ev == nn), 0.5, 0.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(cells[:, 0] / cells[:, 1])
        v = (1.0 / cells).sum(axis=1)
    y[nn == 0] = np.nan
    v[nn == 0] = np.nan
    return y, v


def reference_tau(y: np.ndarray, v: np.ndarray, level: float | None = None, *, X: np.ndarray | None = None) -> float:
    """The lower limit of the Q-profile confidence interval of tau (``level`` %, default
    :data:`LEVEL`) from the studies' estimates y with variances v: a value tau is unlikely
    to be below. ``X`` (studies x moderators, no intercept column) makes it the residual
    heterogeneity of the meta-regression on X (Q_E(tau^2) on K - p - 1 degrees of freedom
    equal to the chi-square's upper quantile, as metafor's Q-profile for ``rma(mods=)``)."""
    from scipy import optimize, stats

    from bayesln.frequentist.bias import qe_mods
    from bayesln.frequentist.models import tau2_dl, tau2_qprofile_ci

    ok = np.isfinite(y) & np.isfinite(v) & (v > 0)
    level = LEVEL if level is None else level
    if X is None or X.shape[1] == 0:
        if ok.sum() < 2:
            return 0.0
        lo, _ = tau2_qprofile_ci(y[ok], v[ok], tau2_dl(y[ok], v[ok]), level=level)
        return float(np.sqrt(lo)) if np.isfinite(lo) and lo > 0 else 0.0
    Xd = np.column_stack([np.ones(int(ok.sum())), np.asarray(X, float)[ok]])
    df = Xd.shape[0] - np.linalg.matrix_rank(Xd)
    if df < 1:
        return 0.0
    crit = float(stats.chi2.isf((1 - level / 100) / 2, df))
    yo, vo = y[ok], v[ok]
    if qe_mods(0.0, yo, vo, Xd) <= crit:
        return 0.0
    hi = 100.0
    while qe_mods(hi, yo, vo, Xd) > crit and hi < 1e8:
        hi *= 10
    lo = optimize.brentq(lambda t: qe_mods(t, yo, vo, Xd) - crit, 0.0, hi, xtol=1e-10)
    return float(np.sqrt(lo))


def choose(design, *, ratio: float | None = None) -> tuple[tuple[bool, ...], dict]:
    """The per-study centring flags (True: centred) for ``parameterization="auto"`` and a
    record of why (for the run's config)."""
    ratio = RATIO if ratio is None else ratio
    y, v = study_log_or_variance(design)
    rule = (f"centred when var(log OR_i) < {ratio:g} * tau_lo^2, tau_lo the lower {LEVEL:g}% Q-profile "
            "limit of tau (bayesln.hierarchy.parameterize)")
    return _centred_where(design, v, reference_tau(y, v), ratio, rule, "tau_ref")


def _centred_where(design, v: np.ndarray, ref: float, ratio: float, rule: str, ref_key: str):
    """Flags (True where ``v < ratio * ref^2``) and the record of the choice."""
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(v) & (v < ratio * ref**2)
    flags = tuple(bool(b) for b in mask)
    record = {
        "rule": rule,
        ref_key: ref,
        "centered": [s for s, f in zip(design.study_ids, flags) if f],
        "n_centered": int(sum(flags)),
        "n_studies": len(flags),
    }
    return flags, record


def centred_cells(y: np.ndarray, v: np.ndarray, *, groups=None, X: np.ndarray | None = None,
                  ratio: float | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """The rule of this module for any family's study-effect cells: cell *c* (a study's
    effect on one outcome, stage or treatment) is centred when ``v_c < ratio * tau_lo^2``,
    ``tau_lo`` the lower Q-profile limit (:func:`reference_tau`) from the cells of the same
    ``groups`` label (one tau per outcome / stage; one group when None), ``X`` optional
    moderators of every cell (e.g. which comparison a network contrast is). Returns the
    boolean flags per cell and ``{group: tau_lo}``."""
    ratio = RATIO if ratio is None else ratio
    y, v = np.asarray(y, float), np.asarray(v, float)
    groups = np.zeros(len(v), int) if groups is None else np.asarray(groups)
    flags = np.zeros(len(v), bool)
    refs: dict[str, float] = {}
    for g in dict.fromkeys(groups.tolist()):
        sel = groups == g
        Xg = None if X is None else np.asarray(X, float)[sel]
        if Xg is not None:
            Xg = Xg[:, np.ptp(Xg, axis=0) > 0] if len(Xg) else Xg  # a constant moderator is the intercept
        ref = reference_tau(y[sel], v[sel], X=Xg)
        refs[str(g)] = ref
        with np.errstate(invalid="ignore"):
            flags[sel] = np.isfinite(v[sel]) & (v[sel] < ratio * ref**2)
    return flags, refs


def family_choice(study_ids, cell_study, cell_flags, refs: dict[str, float], rule: str) -> tuple[tuple[bool, ...], dict]:
    """Per-study flags of a family whose study effects span several cells (a study's
    outcomes, stages or arms, jointly distributed): a study is centred when every one of
    its cells is (the form is per study because its cells share one multivariate normal);
    a study without cells is non-centred. Returns the flags and the record of the choice."""
    cell_study = np.asarray(cell_study, int)
    cell_flags = np.asarray(cell_flags, bool)
    flags = []
    for i in range(len(study_ids)):
        mine = cell_flags[cell_study == i]
        flags.append(bool(len(mine) and mine.all()))
    record = {"rule": rule, "tau_ref": dict(refs), "centered": [s for s, f in zip(study_ids, flags) if f],
              "n_centered": int(sum(flags)), "n_studies": len(flags)}
    return as_form(tuple(flags), record)


def mask_kind(mask) -> str:
    """``"noncentered"``, ``"centered"`` or ``"mixed"`` for per-study centring flags."""
    if not any(mask):
        return "noncentered"
    return "centered" if all(mask) else "mixed"


def as_form(flags: tuple[bool, ...], record: dict) -> tuple[str | tuple[bool, ...], dict]:
    """One form for every study, or the flags when the choice mixes both (recorded)."""
    kind = mask_kind(flags)
    record["form"] = kind
    return (kind if kind != "mixed" else flags), record


def resolve(design, parameterization, *, common_effect: bool = False) -> tuple[str | tuple[bool, ...], dict | None]:
    """``parameterization`` as :func:`~bayesln.hierarchy.model.model_from_design` takes it:
    ``"auto"`` becomes ``"noncentered"`` / ``"centered"`` when the rule picks one form for
    every study, else the per-study flags; other values are returned as given. The second
    value records the choice (None unless ``"auto"``)."""
    if isinstance(parameterization, str) and parameterization == "auto":
        if common_effect:
            return "noncentered", None  # no study effects to parameterise
        return as_form(*choose(design))
    return parameterization, None


def choose_baseline(design, *, ratio: float | None = None) -> tuple[tuple[bool, ...], dict]:
    """The per-study centring flags (True: centred) of exchangeable baselines for
    ``baseline_parameterization="auto"``, and a record of why."""
    ratio = RATIO if ratio is None else ratio
    y, v = baseline_log_odds_variance(design)
    Z = np.asarray(design.Z_baseline, float) if design.baseline_names else None
    rule = (f"baseline centred when var(control log odds_i) < {ratio:g} * sigma_lo^2, sigma_lo the lower "
            f"{LEVEL:g}% Q-profile limit of the between-study SD of the control log odds"
            + (" given the baseline covariates" if Z is not None else "") + " (bayesln.hierarchy.parameterize)")
    return _centred_where(design, v, reference_tau(y, v, X=Z), ratio, rule, "sigma_ref")


def resolve_baseline(design, baseline_parameterization) -> tuple[str | tuple[bool, ...], dict | None]:
    """``baseline_parameterization`` as the model takes it: ``"auto"`` becomes one form or
    the per-study flags (:func:`choose_baseline`) under exchangeable baselines and
    ``"centered"`` (unused) under independent ones; other values are returned as given.
    The second value records the choice (None unless ``"auto"`` with exchangeable
    baselines)."""
    if isinstance(baseline_parameterization, str) and baseline_parameterization == "auto":
        if design.baseline == "independent":
            return "centered", None
        return as_form(*choose_baseline(design))
    return baseline_parameterization, None
