"""Public readers: :func:`read_trials` for user tables."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

import pandas as pd

from bayesln.data.trialdata import TrialData
from bayesln.data.validate import parse_table


def read_trials(
    source: str | os.PathLike | pd.DataFrame,
    *,
    name: str | None = None,
    extra_outcomes: Iterable[str] = (),
    extra_treatments: Iterable[str] = (),
    require_contrast: bool = False,
) -> TrialData:
    """Read and validate an arm-level table (CSV path or DataFrame) into :class:`TrialData`.

    The format is one row per study × arm × outcome with the required columns
    ``study, treatment, outcome, events, n`` and optional arm/study columns (see
    ``bayesln.data.schema``). Every problem is reported at once in a
    :class:`~bayesln.data.validate.DataValidationError` naming file, line, column and
    value; nothing is loaded when validation fails. Missing values stay missing.
    Columns the format does not know are ignored with a warning.
    """
    extra_outcomes, extra_treatments = tuple(extra_outcomes), tuple(extra_treatments)
    frame, ignored = parse_table(
        source, extra_outcomes=extra_outcomes, extra_treatments=extra_treatments,
        require_contrast=require_contrast,
    )
    label = name or ("DataFrame" if isinstance(source, pd.DataFrame) else os.path.basename(str(source)))
    if ignored:
        warnings.warn(f"{label}: columns not in the arm-level format were ignored: {', '.join(ignored)}", UserWarning, stacklevel=2)
    return TrialData(frame, name=label, extra_outcomes=extra_outcomes, extra_treatments=extra_treatments)
