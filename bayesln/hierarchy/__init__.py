"""Hierarchical Bayesian core: design matrices and covariate transforms, priors (incl.
Turner et al. 2015), the arm-based binomial-normal PyMC model, sampling backends, the
diagnostics gate and result summaries; and the model families built on it: ordinal renal
response (:func:`fit_ordinal`), joint efficacy-safety (:func:`fit_joint`) and the treatment
network (:func:`fit_network`, :func:`node_split`).

>>> import bayesln
>>> from bayesln.hierarchy import fit_core
>>> td = bayesln.load_dataset("tacrolimus_ln")
>>> res = fit_core(td, "total_response", seed=1)        # doctest: +SKIP
>>> res.summary()                                        # doctest: +SKIP
"""

#: public names -> the submodule that defines them, imported on first use: ``import
#: bayesln.hierarchy.priors`` (a spec's validation) must not import PyMC, nutpie and ArviZ
_NAMES = {
    "BASELINE_COVARIATES": "design", "EFFECT_MODIFIERS": "design", "CovariateTransform": "design",
    "Design": "design", "build_design": "design",
    "Diagnostics": "diagnostics", "GateThresholds": "diagnostics", "run_gate": "diagnostics",
    "fit_core": "fit",
    "JointResult": "joint", "fit_joint": "joint",
    "NetworkResult": "network", "compare_models": "network", "fit_network": "network", "node_split": "network",
    "FamilyFitResult": "ordinal", "OrdinalPriors": "ordinal", "OrdinalResult": "ordinal", "fit_ordinal": "ordinal",
    "build_core_model": "model", "model_from_design": "model",
    "Prior": "priors", "Priors": "priors",
    "FitResult": "result",
    "BACKENDS": "sampling", "resolve_backend": "sampling",
}


def __getattr__(name: str):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))


__all__ = [
    "BACKENDS",
    "BASELINE_COVARIATES",
    "EFFECT_MODIFIERS",
    "CovariateTransform",
    "Design",
    "Diagnostics",
    "FamilyFitResult",
    "FitResult",
    "GateThresholds",
    "JointResult",
    "NetworkResult",
    "OrdinalPriors",
    "OrdinalResult",
    "Prior",
    "Priors",
    "build_core_model",
    "build_design",
    "compare_models",
    "fit_core",
    "fit_joint",
    "fit_network",
    "fit_ordinal",
    "model_from_design",
    "node_split",
    "resolve_backend",
    "run_gate",
]
