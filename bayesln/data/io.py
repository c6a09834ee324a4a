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
    outcome: str | None = None,
    treat: str | None = None,
    control: str | None = None,
) -> TrialData:
    """Read and validate an arm-level table (CSV path or DataFrame) into :class:`TrialData`.

    The format is one row per study × arm × outcome with the required columns
    ``study, treatment, outcome, events, n`` and optional arm/study columns (see
    ``bayesln.data.schema``). Every problem is reported at once in a
    :class:`~bayesln.data.validate.DataValidationError` naming file, line, column and
    value; nothing is loaded when validation fails. Missing values stay missing.
    Columns the format does not know are ignored with a warning.

    The wide 2x2 layout (one row per study: ``study, events_t, n_t, events_c, n_c`` or
    metafor's ``ai, n1i, ci, n2i``) is read as well: ``outcome`` names the outcome when the
    file has no ``outcome`` column, ``treat`` / ``control`` the two arms' treatment labels
    when it has no ``treatment_t`` / ``treatment_c`` columns (default ``treatment`` /
    ``control``); the long format ignores the three.

    Outcome and treatment labels are the user's own (any label; the bundled vocabulary is
    the bundled dataset's, not a wall): a label that looks like a typo of a bundled one
    ("totl_response") is taken with a warning naming the bundled label. Outcomes outside
    the bundled vocabulary need their direction (benefit / harm) for Bayesian fits:
    ``fit_core(..., direction=...)``, a spec's ``[data] directions``, or
    :func:`bayesln.fit`'s ``direction=``.
    """
    extra_outcomes, extra_treatments = tuple(extra_outcomes), tuple(extra_treatments)
    frame, ignored = parse_table(
        source, extra_outcomes=extra_outcomes, extra_treatments=extra_treatments,
        require_contrast=require_contrast, wide={"outcome": outcome, "treat": treat, "control": control},
    )
    label = name or ("DataFrame" if isinstance(source, pd.DataFrame) else os.path.basename(str(source)))
    if ignored:
        warnings.warn(f"{label}: columns not in the arm-level format were ignored: {', '.join(ignored)}", UserWarning, stacklevel=2)
    for w in frame.attrs.pop("label_warnings", []):
        warnings.warn(w, UserWarning, stacklevel=2)
    return TrialData(frame, name=label, extra_outcomes=extra_outcomes, extra_treatments=extra_treatments)
