"""Bundled datasets.

A dataset is a folder holding ``trials.csv`` (the documented arm-level format),
``provenance.csv`` (where every count came from), ``sources.csv`` (citations),
optionally ``published_pooled.csv`` (pooled results published for it), and
``datapackage.json`` (Frictionless-style schema of all of them). The loader validates
every file against that schema and cross-checks provenance against the counts.

The folder is found in the installed wheel (``bayesln/_datasets/<name>``, copied there at
build time) or, in a source checkout, in the repository's top-level ``data/<name>``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd

from bayesln.data.trialdata import TrialData
from bayesln.data.validate import DataValidationError, Problem, parse_table

_REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def _roots() -> list[Path]:
    roots = []
    try:
        packaged = Path(str(resources.files("bayesln") / "_datasets"))
        if packaged.is_dir():
            roots.append(packaged)
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        pass
    if _REPO_DATA.is_dir():
        roots.append(_REPO_DATA)
    return roots


def _is_external(folder: Path) -> bool:
    """True for a bundle of external evidence (no trials resource; bayesln.data.external)."""
    meta = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    return not any(r.get("name") == "trials" for r in meta.get("resources", []))


def list_datasets(*, external: bool = False) -> list[str]:
    """Names of the bundled trial datasets (``external=True``: the bundles of external
    evidence, :func:`bayesln.data.external.load_external_evidence`)."""
    names = set()
    for root in _roots():
        names |= {p.parent.name for p in root.glob("*/datapackage.json") if _is_external(p.parent) == external}
    return sorted(names)


def dataset_path(name: str) -> Path:
    for root in _roots():
        p = root / name
        if (p / "datapackage.json").is_file():
            return p
    known = ", ".join(list_datasets() + list_datasets(external=True)) or "(none found)"
    raise ValueError(f"unknown dataset {name!r}; bundled datasets: {known}")


def _check_resource(path: Path, res: dict) -> pd.DataFrame:
    """Validate a non-trial resource against its datapackage schema (types, required,
    enum, foreign keys are checked by the caller)."""
    label = f"{path.parent.name}/{path.name}"
    if not path.is_file():
        raise DataValidationError([Problem(label, None, None, None, "file listed in datapackage.json is missing")])
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    problems = []
    fields = res["schema"]["fields"]
    names = [f["name"] for f in fields]
    if list(df.columns) != names:
        problems.append(Problem(label, 1, None, ",".join(df.columns), f"columns differ from the schema: {','.join(names)}"))
        raise DataValidationError(problems)
    for f in fields:
        cons = f.get("constraints", {})
        for i, v in enumerate(df[f["name"]]):
            line = i + 2
            if v == "":
                if cons.get("required"):
                    problems.append(Problem(label, line, f["name"], v, "required value is blank"))
                continue
            if "enum" in cons and v not in cons["enum"]:
                problems.append(Problem(label, line, f["name"], v, f"not one of {', '.join(cons['enum'])}"))
            if f["type"] == "integer":
                try:
                    int(v)
                except ValueError:
                    problems.append(Problem(label, line, f["name"], v, "not a whole number"))
            if f["type"] == "number":
                try:
                    float(v)
                except ValueError:
                    problems.append(Problem(label, line, f["name"], v, "not a number"))
    if problems:
        raise DataValidationError(problems)
    return df


def load_dataset(name: str) -> TrialData:
    """Load a bundled dataset, e.g. ``load_dataset("tacrolimus_ln")``."""
    folder = dataset_path(name)
    if _is_external(folder):
        raise ValueError(f"{name!r} is a bundle of external evidence (other drugs' trials, non-randomised series), "
                         "not TAC trial data: it is never pooled as TAC. Load it with "
                         "bayesln.load_external_evidence() and use it for priors (bayesln.predict.informed)")
    meta = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    res = {r["name"]: r for r in meta["resources"]}
    from bayesln.data.schema import table_schema

    # trials.csv is validated by the package's validator, which implements schema.py; the
    # dataset's declared schema must be that same schema, field for field
    if res["trials"].get("schema") != table_schema():
        raise DataValidationError([Problem(f"{name}/datapackage.json", None, "resources.trials.schema", None,
                                           "differs from the arm-level format of this bayesln version "
                                           "(bayesln/data/schema.py); rebuild the dataset")])
    frame, ignored = parse_table(folder / res["trials"]["path"], label=f"{name}/{res['trials']['path']}",
                                 vocabulary="closed")
    if ignored:
        raise DataValidationError([Problem(f"{name}/trials.csv", 1, c, None, "column not in the schema") for c in ignored])
    sources = _check_resource(folder / res["sources"]["path"], res["sources"])
    prov = _check_resource(folder / res["provenance"]["path"], res["provenance"])
    published = None
    if "published_pooled" in res:
        published = _check_resource(folder / res["published_pooled"]["path"], res["published_pooled"])
        for c in ("estimate", "ci_low", "ci_high"):
            published[c] = published[c].astype(float)
    _cross_check(name, frame, prov, sources)
    for c in ("value", "denominator"):
        prov[c] = pd.array([None if v == "" else int(v) for v in prov[c]], dtype="Int64")
    prov["percentage"] = pd.array([None if v == "" else float(v) for v in prov["percentage"]], dtype="Float64")
    return TrialData(frame, name=name, provenance=prov, sources=sources, published=published)


def _cross_check(name: str, frame: pd.DataFrame, prov: pd.DataFrame, sources: pd.DataFrame) -> None:
    """Every known count has exactly one provenance row with the same value, and every
    source id resolves to a citation."""
    problems = []
    plabel = f"{name}/provenance.csv"
    known_sources = set(sources["source_id"])
    index = {}
    for i, r in prov.iterrows():
        key = (r["study"], r["arm"], r["outcome"], r["field"])
        if key in index:
            problems.append(Problem(plabel, i + 2, "field", r["field"], f"duplicate provenance for {key[:3]}"))
        index[key] = (i + 2, r)
        for sid in filter(None, r["source_id"].split(";")):
            if sid not in known_sources:
                problems.append(Problem(plabel, i + 2, "source_id", sid, "source id not in sources.csv"))
    used = set()
    for i, r in frame.iterrows():
        if pd.isna(r["outcome"]):
            continue
        for field in ("events", "n"):
            v = r[field]
            if pd.isna(v):
                continue
            key = (r["study"], r["arm"], r["outcome"], field)
            used.add(key)
            if key not in index:
                problems.append(Problem(f"{name}/trials.csv", i + 2, field, str(v), "count has no provenance row"))
            elif int(index[key][1]["value"]) != int(v):
                problems.append(Problem(plabel, index[key][0], "value", index[key][1]["value"], f"differs from trials.csv ({v})"))
    for key, (line, _r) in index.items():
        if key not in used:
            problems.append(Problem(plabel, line, "study", key[0], f"provenance row for a count not in trials.csv: {key}"))
    if problems:
        raise DataValidationError(problems)
