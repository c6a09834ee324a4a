"""The checks' figures are in :mod:`bayesln.plots` (``bayesln.plots.checks`` and the one
comparison plot, ``bayesln.plots.comparison``); this module keeps the import path
``bayesln.checks.plots`` working."""

from bayesln.plots.checks import (
    plot_influence,
    plot_model_comparison,
    plot_sensitivity,
    ppc_figure,
)
from bayesln.plots.comparison import plot_comparison

__all__ = ["plot_comparison", "plot_influence", "plot_model_comparison", "plot_sensitivity", "ppc_figure"]
