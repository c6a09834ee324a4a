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
many: on the issue-21 simulation 15 of 30 fits passed the gate, against 26 of 30 with every
study non-centred.) Studies without a treated or a control arm (single-arm studies under
exchangeable baselines) are non-centred: their data do not inform ``delta_i``.

The choice is a deterministic function of the counts (no random numbers), so it is the
same for the same data on every machine; ``fit_core`` writes it into the run's config
(``parameterization_chosen``: the centred studies, ``tau_ref`` = tau_lo, the rule, the form). A spec
or a call can fix the form with ``parameterization = "noncentered"`` / ``"centered"``.
The value of :data:`RATIO` and the evidence for the rule: ``benchmarks/calibration.py``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LEVEL", "RATIO", "choose", "reference_tau", "resolve", "study_log_or_variance"]

#: a study is centred when its log-OR variance is below RATIO * tau_ref^2
RATIO = 1.0
#: level (%) of the Q-profile interval whose lower limit is the reference tau
LEVEL = 95.0


def study_log_or_variance(design) -> tuple[np.ndarray, np.ndarray]:
    """(log odds ratio, its Woolf variance) per study of a :class:`Design`, treated arms
    pooled against control arms; NaN for a study without both."""
    S = design.n_studies
    ev = np.zeros((S, 2))
    nn = np.zeros((S, 2))
    t = design.treated.astype(int)
    np.add.at(ev, (design.arm_study, t), design.events.astype(float))
    np.add.at(nn, (design.arm_study, t), design.n.astype(float))
    cells = np.stack([ev, nn - ev], axis=-1)  # study, arm (control, treated), (events, non-events)
    both = (nn > 0).all(axis=1)
    add = np.where((cells == 0).any(axis=(1, 2)), 0.5, 0.0)[:, None, None]
    c = cells + add
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(c[:, 1, 0] / c[:, 1, 1]) - np.log(c[:, 0, 0] / c[:, 0, 1])
        v = (1.0 / c).sum(axis=(1, 2))
    y[~both] = np.nan
    v[~both] = np.nan
    return y, v


def reference_tau(y: np.ndarray, v: np.ndarray, level: float | None = None) -> float:
    """The lower limit of the Q-profile confidence interval of tau (``level`` %, default
    :data:`LEVEL`) from the studies' log odds ratios: a value tau is unlikely to be below."""
    from bayesln.frequentist.models import tau2_dl, tau2_qprofile_ci

    ok = np.isfinite(y) & np.isfinite(v) & (v > 0)
    if ok.sum() < 2:
        return 0.0
    lo, _ = tau2_qprofile_ci(y[ok], v[ok], tau2_dl(y[ok], v[ok]), level=LEVEL if level is None else level)
    return float(np.sqrt(lo)) if np.isfinite(lo) and lo > 0 else 0.0


def choose(design, *, ratio: float | None = None) -> tuple[tuple[bool, ...], dict]:
    """The per-study centring flags (True: centred) for ``parameterization="auto"`` and a
    record of why (for the run's config)."""
    ratio = RATIO if ratio is None else ratio
    y, v = study_log_or_variance(design)
    tau_ref = reference_tau(y, v)
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(v) & (v < ratio * tau_ref**2)
    flags = tuple(bool(b) for b in mask)
    record = {
        "rule": (f"centred when var(log OR_i) < {ratio:g} * tau_lo^2, tau_lo the lower {LEVEL:g}% Q-profile "
                 "limit of tau (bayesln.hierarchy.parameterize)"),
        "tau_ref": tau_ref,
        "centered": [s for s, f in zip(design.study_ids, flags) if f],
        "n_centered": int(sum(flags)),
        "n_studies": len(flags),
    }
    return flags, record

def resolve(design, parameterization, *, common_effect: bool = False) -> tuple[str | tuple[bool, ...], dict | None]:
    """``parameterization`` as :func:`~bayesln.hierarchy.model.model_from_design` takes it:
    ``"auto"`` becomes ``"noncentered"`` / ``"centered"`` when the rule picks one form for
    every study, else the per-study flags; other values are returned as given. The second
    value records the choice (None unless ``"auto"``)."""
    if isinstance(parameterization, str) and parameterization == "auto":
        if common_effect:
            return "noncentered", None  # no study effects to parameterise
        from bayesln.hierarchy.model import mask_kind

        flags, record = choose(design)
        kind = mask_kind(flags)
        record["form"] = kind
        return (kind if kind != "mixed" else flags), record
    return parameterization, None
