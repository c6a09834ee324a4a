"""bayesln: Bayesian evidence synthesis for binary trial outcomes.

Pools renal response and adverse events as log-odds in hierarchical PyMC models,
checks the results against the frequentist relative risks clinicians know, and predicts
outcomes for populations no trial studied.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bayesln")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0+unknown"

from bayesln.data import (  # noqa: E402
    ContrastError,
    DataValidationError,
    TrialData,
    list_datasets,
    load_dataset,
    read_trials,
)

__all__ = [
    "ContrastError",
    "DataValidationError",
    "TrialData",
    "__version__",
    "list_datasets",
    "load_dataset",
    "read_trials",
]
