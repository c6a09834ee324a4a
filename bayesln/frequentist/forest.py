"""The frequentist forest plot is drawn by :func:`bayesln.plots.forest_plot` (one
implementation for the frequentist and the Bayesian forest plot); this module keeps the
import path ``bayesln.frequentist.forest`` working."""

from bayesln.plots.forest import MEASURE_LABEL, METHOD_LABEL, forest_plot

__all__ = ["MEASURE_LABEL", "METHOD_LABEL", "forest_plot"]
