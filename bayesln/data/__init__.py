"""Data layer: the arm-level format, validation, TrialData and bundled datasets."""

from bayesln.data.datasets import dataset_path, list_datasets, load_dataset
from bayesln.data.external import ExternalEvidence, load_external_evidence
from bayesln.data.io import read_trials
from bayesln.data.trialdata import ContrastError, TrialData
from bayesln.data.validate import DataValidationError, Problem

__all__ = [
    "ContrastError",
    "DataValidationError",
    "ExternalEvidence",
    "Problem",
    "TrialData",
    "dataset_path",
    "list_datasets",
    "load_dataset",
    "load_external_evidence",
    "read_trials",
]
