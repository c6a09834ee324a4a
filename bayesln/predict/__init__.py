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
(the ordinal engine and ``OrdinalPrediction``), :mod:`.joint` (the joint efficacy-safety
engine and ``JointPrediction``), :mod:`.network` (the network meta-analysis engine and
``NetworkPrediction``: every treatment's probability, the full treatment matrix and rank
probabilities per target), :mod:`.command`
(``predict_command`` for the command line); the figures are in :mod:`bayesln.plots`
(:mod:`.plots` re-exports them).
"""

#: public names -> the submodule that defines them, imported on first use: importing a
#: submodule (``bayesln.predict.targets`` for a spec's target check, ``bayesln.predict.priors``)
#: runs this package's ``__init__`` first, and an eager import here pulled PyMC and ArviZ into
#: ``bayesln summarize`` (7 of its 8 seconds)
_LAZY = {
    "ArmSpec": "engine", "CoreEngine": "engine", "engine_for": "engine", "register_engine": "engine",
    "ExtrapolationReport": "extrapolation", "contraction_table": "extrapolation",
    "Prediction": "prediction", "PredictionSet": "prediction", "predict": "prediction", "predict_many": "prediction",
    "quantities_from_eta": "prediction", "quantities_from_p": "prediction",
    "OrdinalEngine": "ordinal", "OrdinalPrediction": "ordinal", "study_covariates": "ordinal",
    "JointEngine": "joint", "JointPrediction": "joint",
    "NetworkEngine": "network", "NetworkPrediction": "network",
    "DEFAULT_BASELINE_EXTRAPOLATION_PRIORS": "priors", "DEFAULT_EXTRAPOLATION_PRIORS": "priors",
    "DEFAULT_MARGIN": "priors",
    "BaselineRisk": "targets", "Target": "targets", "TargetError": "targets", "default_targets_path": "targets",
    "load_targets": "targets", "resolve_target": "targets", "resolve_targets": "targets",
    "leave_one_trial_out": "validation", "temporal_validation": "validation", "calibration_study": "validation",
    "ValidationResult": "validation",
    "predict_command": "command", "load_run_result": "command",
    "compare_priors": "informed", "informed_prior": "informed",
}

__all__ = [
    "DEFAULT_BASELINE_EXTRAPOLATION_PRIORS",
    "DEFAULT_EXTRAPOLATION_PRIORS",
    "DEFAULT_MARGIN",
    "ArmSpec",
    "BaselineRisk",
    "CoreEngine",
    "ExtrapolationReport",
    "JointEngine",
    "JointPrediction",
    "NetworkEngine",
    "NetworkPrediction",
    "OrdinalEngine",
    "OrdinalPrediction",
    "Prediction",
    "PredictionSet",
    "Target",
    "TargetError",
    "calibration_study",
    "compare_priors",
    "contraction_table",
    "default_targets_path",
    "engine_for",
    "informed_prior",
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


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'bayesln.predict' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
