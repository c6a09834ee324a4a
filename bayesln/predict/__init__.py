"""Posterior predictive response and adverse-event probabilities for populations the
trials did not (or barely) study, with honest extrapolation diagnostics.

>>> import bayesln
>>> from bayesln.hierarchy import fit_core
>>> from bayesln.predict import predict, Target
>>> td = bayesln.load_dataset("tacrolimus_ln").select(designs="rct")
>>> fit = fit_core(td, "total_response", baseline="exchangeable",
...                effect_modifiers=("regimen", "phase"), baseline_covariates=("phase",), seed=1)  # doctest: +SKIP
>>> p = predict(fit, "non_asian_class_iii_iv", seed=1)                          # doctest: +SKIP
>>> p.table()            # p_tac, p_comparator, rd, rr, or, nnt, P(TAC better), P(RD > margin)  # doctest: +SKIP
>>> print(p.extrapolation)                                                       # doctest: +SKIP

An ordinal CR / PR / NR fit gives coherent P(CR), P(PR), P(CR or PR) per draw, with the
quantities above for CR and for CR-or-PR (:mod:`.ordinal`):

>>> from bayesln.hierarchy import fit_ordinal
>>> ofit = fit_ordinal(td, designs=("rct",), seed=1)                              # doctest: +SKIP
>>> q = predict(ofit, "non_asian_class_iii_iv", seed=1)                          # doctest: +SKIP
>>> q.table()            # outcome complete_response / total_response / partial_response  # doctest: +SKIP

Modules: :mod:`.targets` (Target, targets.toml), :mod:`.priors` (default extrapolation
priors and why), :mod:`.engine` (the arithmetic of a prediction), :mod:`.prediction`
(``predict``), :mod:`.extrapolation` (diagnostics), :mod:`.validation`
(leave-one-trial-out, temporal, calibration by simulation; core fits), :mod:`.ordinal`
(the ordinal engine and ``OrdinalPrediction``), :mod:`.command`
(``predict_command`` for the command line); the figures are in :mod:`bayesln.plots`
(:mod:`.plots` re-exports them).
"""

from bayesln.predict.engine import ArmSpec, CoreEngine, engine_for, register_engine
from bayesln.predict.extrapolation import ExtrapolationReport, contraction_table
from bayesln.predict.prediction import (
    Prediction,
    PredictionSet,
    predict,
    predict_many,
    quantities_from_eta,
    quantities_from_p,
)
from bayesln.predict.ordinal import OrdinalEngine, OrdinalPrediction, study_covariates  # registers the engine
from bayesln.predict.priors import (
    DEFAULT_BASELINE_EXTRAPOLATION_PRIORS,
    DEFAULT_EXTRAPOLATION_PRIORS,
    DEFAULT_MARGIN,
)
from bayesln.predict.targets import (
    BaselineRisk,
    Target,
    TargetError,
    default_targets_path,
    load_targets,
    resolve_target,
    resolve_targets,
)

__all__ = [
    "DEFAULT_BASELINE_EXTRAPOLATION_PRIORS",
    "DEFAULT_EXTRAPOLATION_PRIORS",
    "DEFAULT_MARGIN",
    "ArmSpec",
    "BaselineRisk",
    "CoreEngine",
    "ExtrapolationReport",
    "OrdinalEngine",
    "OrdinalPrediction",
    "Prediction",
    "PredictionSet",
    "Target",
    "TargetError",
    "calibration_study",
    "contraction_table",
    "default_targets_path",
    "engine_for",
    "leave_one_trial_out",
    "load_run_result",
    "load_targets",
    "predict",
    "predict_command",
    "predict_many",
    "quantities_from_eta",
    "quantities_from_p",
    "register_engine",
    "resolve_target",
    "resolve_targets",
    "study_covariates",
    "temporal_validation",
]


def __getattr__(name):  # lazy: validation and command import the fitting machinery
    if name in ("leave_one_trial_out", "temporal_validation", "calibration_study", "ValidationResult"):
        from bayesln.predict import validation

        return getattr(validation, name)
    if name in ("predict_command", "load_run_result"):
        from bayesln.predict import command

        return getattr(command, name)
    raise AttributeError(f"module 'bayesln.predict' has no attribute {name!r}")
