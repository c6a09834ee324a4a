"""Frequentist reference engine for binary outcomes, matching R's metafor (3.8).

Input is a contrast table (one row per study: ``study, events_t, n_t, events_c, n_c``),
e.g. ``TrialData.contrasts(outcome)``. Everything agrees with metafor to rounding; the
pinned R results are in ``validation/fixtures/metafor_reference.json`` (produced by
``validation/metafor/reference.R``).

==========================  =====================================================
:func:`meta_analysis`       one method -> tidy summary row + per-study weights
:func:`pool`                several methods -> tidy rows
:func:`subgroup_analysis`   separate fits per subgroup + test of differences
:func:`leave_one_out`       metafor ``leave1out``
:func:`cumulative`          metafor ``cumul`` (by year by default)
:func:`forest_plot`         matplotlib Figure (:func:`bayesln.plots.forest_plot`)
:func:`reproduce_published` recompute ``TrialData.published`` figures
:func:`batch_meta_analysis` MH + DL + REML for many meta-analyses (vectorised)
:func:`frequentist_command` text for ``bayesln frequentist``
:func:`small_study_effects` Egger / Begg / trim-and-fill (metafor ``regtest``,
                            ``ranktest``, ``trimfill``); :func:`bias_command`
                            is ``bayesln bias``
:func:`funnel_plot`         contour-enhanced funnel plot (matplotlib Figure)
:func:`escalc`              log RR / log OR / RD and variances (metafor ``escalc``)
:func:`mantel_haenszel`,    array-level pooling functions
:func:`peto`, :func:`rma_uni`
==========================  =====================================================

Methods: ``mh`` (Mantel-Haenszel), ``peto``, ``iv`` (inverse variance, common effect),
``dl``, ``reml``, ``pm`` (random effects); ``hksj=True`` for the
Hartung-Knapp-Sidik-Jonkman test. Bad input raises :class:`FrequentistInputError`
(a ``ValueError``).
"""

from .analysis import (
    SUMMARY_COLUMNS,
    MetaAnalysis,
    SubgroupAnalysis,
    cumulative,
    leave_one_out,
    meta_analysis,
    pool,
    prepare_contrasts,
    subgroup_analysis,
    subgroup_test,
)
from .batch import batch_meta_analysis
from .bias import (
    BeggTest,
    EggerTest,
    SmallStudyEffects,
    TrimFill,
    funnel_plot,
    ranktest,
    regtest,
    small_study_effects,
    small_study_warning,
    trimfill,
)
from .bias_command import bias_command
from .command import frequentist_command
from .effects import EffectSizes, escalc
from .errors import DuplicateStudyError, FrequentistInputError, NotEstimableError
from .models import (
    METHODS,
    PooledEstimate,
    mantel_haenszel,
    peto,
    rma_uni,
    tau2_dl,
    tau2_pm,
    tau2_qprofile_ci,
    tau2_reml,
)
from .published import reproduce_published

__all__ = [
    "METHODS",
    "SUMMARY_COLUMNS",
    "BeggTest",
    "EggerTest",
    "SmallStudyEffects",
    "TrimFill",
    "bias_command",
    "funnel_plot",
    "ranktest",
    "regtest",
    "small_study_effects",
    "small_study_warning",
    "trimfill",
    "DuplicateStudyError",
    "EffectSizes",
    "FrequentistInputError",
    "MetaAnalysis",
    "NotEstimableError",
    "PooledEstimate",
    "SubgroupAnalysis",
    "batch_meta_analysis",
    "cumulative",
    "escalc",
    "forest_plot",
    "frequentist_command",
    "leave_one_out",
    "mantel_haenszel",
    "meta_analysis",
    "peto",
    "pool",
    "prepare_contrasts",
    "reproduce_published",
    "rma_uni",
    "subgroup_analysis",
    "subgroup_test",
    "tau2_dl",
    "tau2_pm",
    "tau2_qprofile_ci",
    "tau2_reml",
]


def __getattr__(name: str):
    # the forest plot is bayesln.plots.forest_plot, imported on first use so that
    # ``import bayesln.frequentist`` does not import matplotlib
    if name == "forest_plot":
        from bayesln.plots.forest import forest_plot

        return forest_plot
    raise AttributeError(f"module 'bayesln.frequentist' has no attribute {name!r}")
