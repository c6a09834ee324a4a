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
    load_external_evidence,
    read_trials,
)

#: the main entry points, imported on first use (PyMC is not imported by ``import bayesln``)
_LAZY = {
    "fit_core": "bayesln.hierarchy",
    "fit_ordinal": "bayesln.hierarchy",
    "fit_joint": "bayesln.hierarchy",
    "fit_network": "bayesln.hierarchy",
    "meta_analysis": "bayesln.frequentist",
    "load_spec": "bayesln.spec",
    "run_analysis": "bayesln.analysis",
    "save_analysis": "bayesln.analysis",
    "load_run": "bayesln.analysis",
    "run_checks": "bayesln.checks.command",
    "fit": "bayesln.quickfit",
    "Priors": "bayesln.hierarchy.priors",
    "Target": "bayesln.predict.targets",
}

#: subpackages reachable as attributes after ``import bayesln`` (``bayesln.frequentist``),
#: imported on first access: ``import bayesln`` stays as light as before
#: ``bayesln.predict`` (``bayesln.predict.predict(result, target)``, targets, priors) like
#: ``bayesln.plots``: a plain ``import bayesln`` reaches it without importing it first
_LAZY_SUBMODULES = ("frequentist", "plots", "predict", "report")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")  # also binds it on the package
    raise AttributeError(f"module 'bayesln' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_SUBMODULES))


__all__ = [
    *_LAZY,
    "ContrastError",
    "DataValidationError",
    "TrialData",
    "__version__",
    "list_datasets",
    "load_dataset",
    "load_external_evidence",
    "read_trials",
]
