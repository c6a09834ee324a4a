"""Analysis specs: ``models/*.toml`` parsed (never evaluated) and validated.

A spec names the data, the outcome and the model, the priors, the sampler settings and
the seed. Errors name the file, the key and the allowed values::

    [analysis]
    name = "total_response"            # run folder name: letters, digits, _ . -
    title = "..."

    [data]
    source = "tacrolimus_ln"           # bundled dataset name, or a CSV path relative to the spec
    outcome = "total_response"
    phases = ["induction"]             # omit for all phases
    designs = ["rct"]
    exclude_studies = []

    [model]
    family = "core"
    treat = ["tac"]
    baseline = "independent"           # or "exchangeable"
    effect_modifiers = []              # e.g. ["regimen:triple"]
    common_effect = false

    [priors]                           # any of: baseline, m, sigma_mu, d, tau, beta, gamma
    tau = "half_normal(0.5)"

    [sampler]
    draws = 1000
    tune = 1000
    chains = 4
    seed = 20261122
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bayesln import vocab

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class SpecError(ValueError):
    """A spec file that cannot be used; the message names file, key and allowed values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnalysisSection(_Section):
    name: str
    title: str = ""
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v) or ".." in v:
            raise ValueError("must be 1-80 letters, digits, '_', '.', '-' (no path separators, no '..')")
        return v


class DataSection(_Section):
    source: str = "tacrolimus_ln"
    outcome: str
    phases: list[Literal["induction", "maintenance", "induction_maintenance"]] | None = None
    designs: list[Literal["rct", "cohort", "case_control", "single_arm"]] | None = None
    studies: list[str] | None = None
    exclude_studies: list[str] = Field(default_factory=list)

    @field_validator("outcome")
    @classmethod
    def _outcome(cls, v: str) -> str:
        if v not in vocab.OUTCOMES:
            raise ValueError(f"unknown outcome {v!r}; allowed: {', '.join(vocab.OUTCOMES)}")
        return v


class ModelSection(_Section):
    family: Literal["core"] = "core"
    treat: list[str] = Field(default_factory=lambda: ["tac"])
    baseline: Literal["independent", "exchangeable"] = "independent"
    effect_modifiers: list[str] = Field(default_factory=list)
    baseline_covariates: list[str] = Field(default_factory=list)
    common_effect: bool = False
    parameterization: Literal["noncentered", "centered"] = "noncentered"


class SamplerSection(_Section):
    draws: int = Field(1000, ge=1, le=1_000_000)
    tune: int = Field(1000, ge=0, le=1_000_000)
    chains: int = Field(4, ge=1, le=64)
    target_accept: float = Field(0.95, gt=0.5, lt=1.0)
    backend: Literal["auto", "nutpie", "pymc", "numpyro"] = "auto"
    seed: int = Field(20261122, ge=0, le=2**32 - 1)


class GateSection(_Section):
    r_hat: float = Field(1.01, gt=1.0)
    ess_bulk: float = Field(400, ge=0)
    ess_tail: float = Field(400, ge=0)
    max_divergences: int = Field(0, ge=0)
    bfmi: float = Field(0.3, ge=0)


class Spec(_Section):
    analysis: AnalysisSection
    data: DataSection
    model: ModelSection = Field(default_factory=ModelSection)
    priors: dict[str, Any] = Field(default_factory=dict)
    sampler: SamplerSection = Field(default_factory=SamplerSection)
    gate: GateSection = Field(default_factory=GateSection)
    #: prediction targets: names of targets defined in models/targets.toml, or inline
    #: tables (validated by bayesln.predict when it is installed)
    targets: list[str | dict[str, Any]] = Field(default_factory=list)
    path: str | None = Field(default=None, exclude=True)

    # -------------------------------------------------------------- derived
    @property
    def name(self) -> str:
        return self.analysis.name

    def priors_obj(self):
        """The validated :class:`bayesln.hierarchy.priors.Priors`."""
        from bayesln.hierarchy.priors import Priors

        return Priors(**self.priors)

    def canonical(self) -> dict:
        """Plain dict of the spec (what is hashed and stored with a run)."""
        return self.model_dump(mode="json", exclude={"path"})

    def to_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))

    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def with_overrides(self, **sampler) -> Spec:
        """A copy with sampler settings replaced (``None`` values are ignored)."""
        upd = {k: v for k, v in sampler.items() if v is not None}
        if not upd:
            return self
        d = self.canonical()
        d["sampler"].update(upd)
        return _validate(d, self.path or "<spec>", path=self.path)

    def data_source(self) -> str:
        """The data source, with a CSV path resolved relative to the spec file."""
        src = self.data.source
        if self.path and src.lower().endswith(".csv") and not Path(src).is_absolute():
            return str((Path(self.path).parent / src).resolve())
        return src


# ------------------------------------------------------------------ loading
def _format_errors(exc: ValidationError, label: str, raw: dict) -> str:
    msgs = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        kind = e["type"]
        if kind == "extra_forbidden":
            section = e["loc"][0] if len(e["loc"]) > 1 else None
            model = Spec.model_fields[section].annotation if section in Spec.model_fields else Spec
            allowed = list(getattr(model, "model_fields", Spec.model_fields))
            allowed = [a for a in allowed if a != "path"]
            where = f"[{section}]" if section else "the top level"
            msgs.append(f"unknown key '{e['loc'][-1]}' in {where}; allowed keys: {', '.join(allowed)}")
        elif kind == "missing":
            msgs.append(f"missing required key '{loc}'")
        elif kind == "literal_error":
            msgs.append(f"key '{loc}': {e['input']!r} is not allowed; {e['msg'].replace('Input should be', 'allowed:')}")
        else:
            msgs.append(f"key '{loc}': {e['msg']} (got {e.get('input')!r})")
    return f"{label}: invalid spec: " + "; ".join(msgs)


def _validate(raw: dict, label: str, path: str | None = None) -> Spec:
    try:
        spec = Spec.model_validate({**raw, "path": path})
    except ValidationError as exc:
        raise SpecError(_format_errors(exc, label, raw)) from None
    try:
        spec.priors_obj()
    except (ValidationError, ValueError) as exc:
        msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise SpecError(f"{label}: invalid spec: key 'priors': {msg}") from None
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec. Raises :class:`SpecError`."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: spec file not found")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{p}: not valid TOML: {exc}") from None
    return _validate(raw, str(p), path=str(p))


def spec_from_dict(raw: dict, label: str = "<dict>") -> Spec:
    return _validate(raw, label)
