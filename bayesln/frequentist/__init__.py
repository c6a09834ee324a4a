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
:func:`forest_plot`         matplotlib Figure
:func:`reproduce_published` recompute ``TrialData.published`` figures
:func:`batch_meta_analysis` MH + DL + REML for many meta-analyses (vectorised)
:func:`frequentist_command` text for ``bayesln frequentist``
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
from .command import frequentist_command
from .effects import EffectSizes, escalc
from .errors import DuplicateStudyError, FrequentistInputError, NotEstimableError
from .forest import forest_plot
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
