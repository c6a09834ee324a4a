"""Every bayesln figure, in one place. Each function returns a matplotlib Figure;
:func:`save_run_figures` writes a run folder's figures (PNG and SVG).

==================================  ==========================================================
:func:`forest_plot`                 the forest plot, frequentist (contrast table) or Bayesian
                                    (fit / analysis): one implementation (:mod:`.forest`)
:func:`comparison_plot`             Bayesian vs frequentist vs published RRs (the comparison
                                    table; ``plot_comparison`` is the same function)
:func:`trace_plot`                  every hyperparameter of a fit: density, trace, rank bars
                                    (:mod:`.diagnostics`)
:func:`ppc_figure`,                 the checks' figures: posterior predictive check, leave one
:func:`plot_influence`,             study out, prior sensitivity, LOO model comparison
:func:`plot_sensitivity`,           (:mod:`.checks`)
:func:`plot_model_comparison`
:func:`plot_prediction`,            predictions for target populations (:mod:`.predictions`)
:func:`plot_targets`,
:func:`plot_ordinal_prediction`
:func:`save_figure`,                PNG + SVG writing; the run folder's figures (:mod:`.run`)
:func:`save_run_figures`
==================================  ==========================================================

Importing this package imports matplotlib (headless Agg unless ``MPLBACKEND`` chose a
backend, see :mod:`._style`), numpy and pandas only; PyMC, ArviZ and the frequentist
engine are imported by the functions that need them.
"""

from bayesln.plots._style import plt
from bayesln.plots.checks import (
    plot_influence,
    plot_model_comparison,
    plot_sensitivity,
    ppc_figure,
)
from bayesln.plots.comparison import comparison_plot, plot_comparison
from bayesln.plots.diagnostics import hyperparameters, trace_plot
from bayesln.plots.forest import forest_plot, shrunken_pooled_or, study_labels
from bayesln.plots.predictions import (
    plot_ordinal_prediction,
    plot_prediction,
    plot_targets,
)
from bayesln.plots.run import save_figure, save_run_figures

__all__ = [
    "comparison_plot",
    "forest_plot",
    "hyperparameters",
    "plot_comparison",
    "plot_influence",
    "plot_model_comparison",
    "plot_ordinal_prediction",
    "plot_prediction",
    "plot_sensitivity",
    "plot_targets",
    "plt",
    "ppc_figure",
    "save_figure",
    "save_run_figures",
    "shrunken_pooled_or",
    "study_labels",
    "trace_plot",
]
