"""Checks: the Bayesian results against the frequentist RRs, and model criticism.

===============================  ============================================================
:func:`full_comparison`          published / recomputed / MH / DL / REML / Bayesian RRs for
                                 every outcome and subgroup of a TrialData
:func:`comparison_table`         the same for one fit and one contrast table
:func:`published_rows`           the published figures with their reproduction
:func:`ppc_table`                posterior and mixed predictive checks per arm (mid-p)
:func:`study_loo`                leave-one-study-out PSIS-LOO with exact refits (k > 0.7)
:func:`influence_table`          pooled OR and tau without each study (+ REML leave1out)
:func:`prior_sensitivity`        refits under alternative priors for tau and d
:func:`compare_models`           LOO comparison of fits (elpd, SE, differences with SE)
:func:`model_variants`           common/random-effect and no-covariate variants of a fit
:func:`refit`                    the fit's model sampled again (other counts, priors, options)
:func:`check_command`            text / JSON for ``bayesln check RUN``
plots                            :func:`plot_ppc`, :func:`plot_influence`,
                                 :func:`plot_sensitivity`, :func:`plot_model_comparison`,
                                 :func:`plot_comparison`
===============================  ============================================================

The figures themselves are drawn by :mod:`bayesln.plots` (``plot_comparison`` is
:func:`bayesln.plots.comparison_plot`).
"""

from bayesln.checks.command import CheckInputError, CheckReport, check_command, fit_from_run, run_checks
from bayesln.checks.compare import (
    COLUMNS,
    DEFAULT_SUBGROUPS,
    bayesian_rr_draws,
    comparison_table,
    full_comparison,
    published_rows,
)
from bayesln.checks.loo import StudyLoo, held_out_refits, influence_table, study_loo
from bayesln.checks.marginal import integrated_study_loglik
from bayesln.checks.models import compare_models, model_variants
from bayesln.plots import plot_comparison, plot_influence, plot_model_comparison, plot_sensitivity
from bayesln.checks.ppc import mid_p, plot_ppc, ppc_table
from bayesln.checks.refit import RefitError, refit, zero_counts
from bayesln.checks.sensitivity import DEFAULT_D_PRIORS, DEFAULT_TAU_PRIORS, prior_sensitivity

__all__ = [
    "COLUMNS",
    "DEFAULT_D_PRIORS",
    "DEFAULT_SUBGROUPS",
    "DEFAULT_TAU_PRIORS",
    "CheckInputError",
    "CheckReport",
    "RefitError",
    "StudyLoo",
    "bayesian_rr_draws",
    "check_command",
    "compare_models",
    "comparison_table",
    "fit_from_run",
    "full_comparison",
    "held_out_refits",
    "influence_table",
    "integrated_study_loglik",
    "mid_p",
    "model_variants",
    "plot_comparison",
    "plot_influence",
    "plot_model_comparison",
    "plot_ppc",
    "plot_sensitivity",
    "ppc_table",
    "prior_sensitivity",
    "published_rows",
    "refit",
    "run_checks",
    "study_loo",
    "zero_counts",
]
