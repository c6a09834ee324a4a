"""External evidence: other drugs' trials and subgroups, non-randomised TAC series.

A bundle (``data/external_ln``, built by ``scripts/build_external_ln.py`` from the
evidence sheet) holds ``evidence.csv`` (one row per study arm or subgroup arm: counts,
descriptors, the row's drug in ``treatment`` and its ``design``, the quotes in ``notes``),
``sources.csv`` and ``modifiers.toml`` (which subgroup contrasts estimate which effect
modifier, with the assumption each makes).

:func:`load_external_evidence` returns an :class:`ExternalEvidence`, deliberately *not* a
:class:`~bayesln.data.trialdata.TrialData`: no fit function accepts it, and
``load_dataset`` refuses the bundle, so these rows can inform priors
(:mod:`bayesln.predict.informed`) but can never be pooled as TAC trials by mistake.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayesln.data.validate import DataValidationError, Problem

__all__ = ["COUNT_COLUMNS", "Contrast", "ExternalEvidence", "load_external_evidence"]

COUNT_COLUMNS = ("n_randomized", "n_analysed", "n_safety", "complete_response", "partial_response", "total_response",
                 "leucopenia", "infection", "severe_infection", "hyperglycaemia", "creatinine_rise",
                 "serious_adverse_event", "death")
NUMBER_COLUMNS = ("timepoint_weeks", "asian_fraction", "mean_age", "female_fraction", "class_v_fraction",
                  "class_iii_iv_fraction")
DESIGNS = ("rct", "rct_subgroup", "cohort", "case_series", "single_arm")
REQUIRED = ("study", "arm", "treatment", "design", "source_id", "notes")


@dataclass(frozen=True)
class Contrast:
    """One effect-modifier contrast of ``modifiers.toml`` (see that file)."""

    id: str
    covariate: str
    outcome: str
    treated: str
    control: str
    subgroup_a: str
    subgroup_b: str
    x_a: float | str
    x_b: float | str
    drug: str = ""
    assumption: str = ""


@dataclass(frozen=True)
class ExternalEvidence:
    """The rows of a bundle of external evidence (a DataFrame in ``table``), its sources
    and its modifier contrasts. Not trial data: see the module docstring."""

    name: str
    table: pd.DataFrame
    sources: pd.DataFrame
    contrasts: tuple[Contrast, ...] = field(default_factory=tuple)

    def rows(self, study: str) -> pd.DataFrame:
        out = self.table[self.table["study"] == study]
        if out.empty:
            raise ValueError(f"{self.name}: no study {study!r} in evidence.csv; studies: "
                             f"{', '.join(dict.fromkeys(self.table['study']))}")
        return out

    def contrasts_for(self, covariate: str) -> list[Contrast]:
        return [c for c in self.contrasts if c.covariate == covariate]

    def __repr__(self) -> str:
        drugs = ", ".join(sorted(set(self.table["treatment"])))
        return (f"ExternalEvidence({self.name!r}: {self.table['study'].nunique()} studies, {len(self.table)} arms; "
                f"drugs {drugs}; {len(self.contrasts)} modifier contrasts; not TAC trial data)")


def _problems_of(table: pd.DataFrame, label: str) -> list[Problem]:
    problems = []
    missing = [c for c in (*REQUIRED, *COUNT_COLUMNS) if c not in table.columns]
    if missing:
        return [Problem(label, 1, c, None, "required column missing") for c in missing]
    for i, r in table.iterrows():
        line = int(i) + 2
        for c in REQUIRED:
            if r[c] == "":
                problems.append(Problem(label, line, c, "", "required value is blank"))
        if r["design"] and r["design"] not in DESIGNS:
            problems.append(Problem(label, line, "design", r["design"], f"not one of {', '.join(DESIGNS)}"))
        for c in COUNT_COLUMNS:
            v = r[c]
            if v == "":
                continue
            try:
                x = float(v)
            except ValueError:
                problems.append(Problem(label, line, c, v, "not a number"))
                continue
            if not (math.isfinite(x) and x >= 0 and x == int(x)):
                problems.append(Problem(label, line, c, v, "not a whole number >= 0"))
        for c in NUMBER_COLUMNS:
            if c in table.columns and r[c] != "":
                try:
                    float(r[c])
                except ValueError:
                    problems.append(Problem(label, line, c, r[c], "not a number"))
    dup = table.duplicated(["study", "arm"], keep=False)
    for i in table.index[dup]:
        problems.append(Problem(label, int(i) + 2, "arm", table.at[i, "arm"], "arm id repeated within its study"))
    return problems


def load_external_evidence(name: str = "external_ln", *, path: str | Path | None = None) -> ExternalEvidence:
    """Load a bundle of external evidence (default the bundled ``external_ln``), checked:
    required columns, whole non-negative counts (blank = unknown), known designs, unique
    arm ids, every ``source_id`` in ``sources.csv``, every contrast's studies, arms and
    outcome present. ``path``: a folder with the same files (your own evidence)."""
    if path is None:
        from bayesln.data.datasets import dataset_path

        folder = dataset_path(name)
    else:
        folder = Path(path)
        name = folder.name
    label = f"{name}/evidence.csv"
    try:
        table = pd.read_csv(folder / "evidence.csv", dtype=str, keep_default_na=False, encoding="utf-8")
        sources = pd.read_csv(folder / "sources.csv", dtype=str, keep_default_na=False, encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataValidationError([Problem(f"{name}/{Path(exc.filename).name}", None, None, None,
                                           "file of the evidence bundle is missing")]) from None
    problems = _problems_of(table, label)
    known = set(sources.get("source_id", pd.Series(dtype=str)))
    for i, s in table["source_id"].items() if "source_id" in table else []:
        if s and s not in known:
            problems.append(Problem(label, int(i) + 2, "source_id", s, f"not a source_id of {name}/sources.csv"))
    if problems:
        raise DataValidationError(problems)
    for c in COUNT_COLUMNS:
        table[c] = pd.array([None if v == "" else int(float(v)) for v in table[c]], dtype="Int64")
    for c in NUMBER_COLUMNS:
        if c in table.columns:
            table[c] = pd.array([None if v == "" else float(v) for v in table[c]], dtype="Float64")
    contrasts = ()
    mod = folder / "modifiers.toml"
    if mod.is_file():
        contrasts = _read_contrasts(mod, table, f"{name}/modifiers.toml")
    return ExternalEvidence(name=name, table=table, sources=sources, contrasts=contrasts)


def _read_contrasts(path: Path, table: pd.DataFrame, label: str) -> tuple[Contrast, ...]:
    """The contrasts, checked against the table (the covariate names are checked where a
    prior is derived, :mod:`bayesln.predict.informed`)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DataValidationError([Problem(label, None, None, None, f"not valid TOML: {exc}")]) from None
    out, problems = [], []
    studies = set(table["study"])
    for k, c in enumerate(raw.get("contrast", [])):
        where = f"contrast {k + 1} ({c.get('id', '?')})"
        try:
            con = Contrast(**c)
        except TypeError as exc:
            problems.append(Problem(label, None, where, None, str(exc)))
            continue
        if con.outcome not in COUNT_COLUMNS:
            problems.append(Problem(label, None, where, con.outcome, "outcome is not a count column of evidence.csv"))
        for part in (con.subgroup_a, *con.subgroup_b.split(" - ")):
            if part.strip() not in studies:
                problems.append(Problem(label, None, where, part, "study not in evidence.csv"))
        for x in (con.x_a, con.x_b):
            if not (x == "data" or isinstance(x, (int, float))):
                problems.append(Problem(label, None, where, x, "x_a / x_b must be a number or \"data\""))
        out.append(con)
    if problems:
        raise DataValidationError(problems)
    return tuple(out)


def datapackage(name: str = "external_ln") -> dict:
    """The bundle's datapackage.json (description, the counts stated in words)."""
    from bayesln.data.datasets import dataset_path

    return json.loads((dataset_path(name) / "datapackage.json").read_text(encoding="utf-8"))
