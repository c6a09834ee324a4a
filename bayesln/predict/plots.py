"""The prediction figures are in :mod:`bayesln.plots.predictions`; this module keeps the
import path ``bayesln.predict.plots`` working (``Prediction.plot`` uses it)."""

from bayesln.plots.predictions import (
    plot_ordinal_prediction,
    plot_prediction,
    plot_targets,
)

__all__ = ["plot_ordinal_prediction", "plot_prediction", "plot_targets"]
