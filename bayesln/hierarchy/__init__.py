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

from bayesln.hierarchy.design import (
    BASELINE_COVARIATES,
    EFFECT_MODIFIERS,
    CovariateTransform,
    Design,
    build_design,
)
from bayesln.hierarchy.diagnostics import Diagnostics, GateThresholds, run_gate
from bayesln.hierarchy.fit import fit_core
from bayesln.hierarchy.joint import JointResult, fit_joint
from bayesln.hierarchy.network import NetworkResult, compare_models, fit_network, node_split
from bayesln.hierarchy.ordinal import FamilyFitResult, OrdinalPriors, OrdinalResult, fit_ordinal
from bayesln.hierarchy.model import build_core_model, model_from_design
from bayesln.hierarchy.priors import Prior, Priors
from bayesln.hierarchy.result import FitResult
from bayesln.hierarchy.sampling import BACKENDS, resolve_backend

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
