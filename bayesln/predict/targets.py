"""Prediction targets: named populations the trials may or may not have studied.

A :class:`Target` gives the population's covariate values (the same names as the
study-level covariates of the data: ``asian_fraction``, ``class_v_fraction``,
``class_iii_iv_fraction``, ``female_fraction``, ``mean_age``, ``pediatric``,
``refractory``, ``year``), the TAC regimen (``duo`` / ``triple``), the phase
(``induction`` / ``maintenance``), the comparator (a treatment label, e.g. ``ivcy``),
and optionally the comparator-arm response risk of that population
(``baseline_risk``: a number, ``"beta(a, b)"`` or ``"logit_normal(mu, sigma)"``; for an
ordinal CR / PR / NR fit it is the comparator's P(CR or PR)), the
clinically chosen risk-difference ``margin`` and per-target extrapolation priors.

A value left out (``None``) means "as in the trials": no claim is made about it, the
model's reference value is used when the covariate is in the model, and no
extrapolation term is added when it is not.

Targets are written in TOML, one table per target (``models/targets.toml``)::

    [non_asian_class_iii_iv]
    title = "Non-Asian adults, class III/IV, induction"
    asian_fraction = 0.0
    class_iii_iv_fraction = 1.0
    regimen = "duo"
    phase = "induction"
    comparator = "ivcy"
    # baseline_risk = "beta(53, 47)"      # optional: the comparator arm's risk

or built in Python: ``Target(name="x", asian_fraction=0.0)``; analysis specs list them by
name (``targets = ["non_asian_class_iii_iv"]``) or inline
(``targets = [{name = "mine", asian_fraction = 0.5}]``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from scipy.special import logit

from bayesln import vocab
from bayesln.hierarchy.priors import LOCATION_DISTS, Prior

__all__ = [
    "COVARIATES",
    "BaselineRisk",
    "Target",
    "TargetError",
    "check_spec_targets",
    "default_targets_path",
    "load_targets",
    "resolve_target",
    "resolve_targets",
]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")

#: population covariates a target can set, with their kind (as in bayesln.vocab, plus year)
COVARIATES: dict[str, str] = dict(vocab.POPULATION_COVARIATES) | {"year": "continuous"}
#: everything that can carry an extrapolation prior
EXTRAPOLATABLE: tuple[str, ...] = tuple(COVARIATES) + ("regimen", "phase", "comparator")


class TargetError(ValueError):
    """A target that cannot be used (unknown name, bad value); the message says which."""


# ----------------------------------------------------------------------------- baseline risk
class BaselineRisk(BaseModel):
    """The comparator-arm event risk of the target population.

    ``fixed`` (a number in (0, 1)), ``beta`` (a, b > 0: e.g. the posterior of a cohort's
    x events out of n under a flat prior is beta(x + 1, n - x + 1)) or ``logit_normal``
    (mu, sigma on the log-odds scale). ``source`` says where it comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dist: Literal["fixed", "beta", "logit_normal"]
    params: dict[str, float]
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> BaselineRisk:
        need = {"fixed": ("p",), "beta": ("a", "b"), "logit_normal": ("mu", "sigma")}[self.dist]
        if set(self.params) != set(need):
            raise ValueError(f"baseline_risk {self.dist}: needs parameter(s) {', '.join(need)}, got {sorted(self.params)}")
        for k, v in self.params.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"baseline_risk {self.dist}: {k} must be a finite number, got {v!r}")
        p = self.params
        if self.dist == "fixed" and not 0 < p["p"] < 1:
            raise ValueError(f"baseline_risk must be a probability strictly between 0 and 1, got {p['p']}")
        if self.dist == "beta" and not (p["a"] > 0 and p["b"] > 0):
            raise ValueError(f"baseline_risk beta(a, b) needs a, b > 0, got a={p['a']}, b={p['b']}")
        if self.dist == "logit_normal" and not p["sigma"] > 0:
            raise ValueError(f"baseline_risk logit_normal needs sigma > 0, got {p['sigma']}")
        return self

    @classmethod
    def parse(cls, value) -> BaselineRisk:
        """``0.55``, ``"0.55"``, ``"beta(55, 45)"``, ``"logit_normal(0.2, 0.3)"``, a dict
        ``{dist=..., params=...}`` / ``{beta=[a, b]}``, or a BaselineRisk."""
        if isinstance(value, BaselineRisk):
            return value
        if isinstance(value, bool):
            raise ValueError(f"baseline_risk must be a probability or a distribution, not {value!r}")
        if isinstance(value, (int, float)):
            return cls(dist="fixed", params={"p": float(value)})
        if isinstance(value, Mapping):
            v = dict(value)
            if "dist" in v:
                return cls.model_validate(v)
            source = v.pop("source", "")
            if len(v) == 1:
                (k, args), = v.items()
                if k in ("beta", "logit_normal") and isinstance(args, (list, tuple)) and len(args) == 2:
                    names = ("a", "b") if k == "beta" else ("mu", "sigma")
                    return cls(dist=k, params=dict(zip(names, map(float, args))), source=source)
                if k in ("p", "fixed"):
                    return cls(dist="fixed", params={"p": float(args)}, source=source)
            raise ValueError(f"cannot read baseline_risk {value!r}; write 0.55, 'beta(55, 45)' or 'logit_normal(0.2, 0.3)'")
        text = str(value).strip()
        try:
            return cls(dist="fixed", params={"p": float(text)})
        except ValueError as exc:
            if "strictly between" in str(exc):
                raise
        m = re.fullmatch(r"(beta|logit_normal)\s*\(\s*([^,()]+)\s*,\s*([^,()]+)\s*\)", text)
        if not m:
            raise ValueError(f"cannot read baseline_risk {value!r}; write 0.55, 'beta(55, 45)' or 'logit_normal(0.2, 0.3)'")
        try:
            a, b = float(m.group(2)), float(m.group(3))
        except ValueError:
            raise ValueError(f"cannot read the numbers of baseline_risk {value!r}") from None
        names = ("a", "b") if m.group(1) == "beta" else ("mu", "sigma")
        return cls(dist=m.group(1), params=dict(zip(names, (a, b))))

    def logit_draws(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws of the comparator-arm log odds."""
        p = self.params
        if self.dist == "fixed":
            return np.full(n, float(logit(p["p"])))
        if self.dist == "beta":
            x = rng.beta(p["a"], p["b"], size=n)
            return logit(np.clip(x, 1e-12, 1 - 1e-12))
        return p["mu"] + p["sigma"] * rng.standard_normal(n)

    def describe(self) -> str:
        p = self.params
        if self.dist == "fixed":
            txt = f"fixed at {p['p']:.3g}"
        elif self.dist == "beta":
            mean = p["a"] / (p["a"] + p["b"])
            txt = f"beta({p['a']:g}, {p['b']:g}) (mean {mean:.3g})"
        else:
            txt = f"logit_normal({p['mu']:g}, {p['sigma']:g})"
        return txt + (f"; source: {self.source}" if self.source else "")

    def __str__(self) -> str:
        p = self.params
        if self.dist == "fixed":
            return f"{p['p']:g}"
        if self.dist == "beta":
            return f"beta({p['a']:g}, {p['b']:g})"
        return f"logit_normal({p['mu']:g}, {p['sigma']:g})"


def _location_prior(name: str, v) -> Prior:
    p = Prior.parse(v)
    if p.dist not in (*LOCATION_DISTS, "robust_normal"):
        raise ValueError(f"extrapolation prior for {name!r} must be one of {', '.join(LOCATION_DISTS)} or "
                         f"robust_normal, got {p}")
    if p.dist == "student_t" and p.params["nu"] <= 2:
        raise ValueError(f"extrapolation prior for {name!r}: student_t needs nu > 2 (finite variance), got {p}")
    return p


def parse_extrapolation_priors(v: Mapping | None, what: str = "extrapolation_priors") -> dict[str, Prior]:
    """Validate a ``{covariate: prior}`` mapping (priors as strings, dicts or Prior)."""
    out = {}
    for k, p in dict(v or {}).items():
        if k not in EXTRAPOLATABLE:
            raise ValueError(f"{what}: unknown covariate {k!r}; known: {', '.join(EXTRAPOLATABLE)}")
        out[k] = _location_prior(k, p)
    return out


# ----------------------------------------------------------------------------- target
class Target(BaseModel):
    """A named population to predict for. Every covariate is optional (``None`` = as in
    the trials); see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    title: str = ""
    description: str = ""
    # population covariates (study-level means / fractions / flags)
    asian_fraction: float | None = Field(None, ge=0, le=1)
    class_v_fraction: float | None = Field(None, ge=0, le=1)
    class_iii_iv_fraction: float | None = Field(None, ge=0, le=1)
    female_fraction: float | None = Field(None, ge=0, le=1)
    mean_age: float | None = Field(None, gt=0, lt=120)
    pediatric: bool | None = None
    refractory: bool | None = None
    year: int | None = Field(None, ge=1900, le=2200)
    # treatment setting
    regimen: Literal["duo", "triple"] | None = None
    phase: Literal["induction", "maintenance"] | None = None
    comparator: str | None = None
    # absolute risk and decision margin
    baseline_risk: BaselineRisk | None = None
    margin: float | None = Field(None, gt=-1, lt=1)
    # unidentified effect modifiers: priors on the log-OR (effect) and on the
    # comparator-arm log odds (baseline) per unit of the covariate
    extrapolation_priors: dict[str, Prior] = Field(default_factory=dict)
    baseline_extrapolation_priors: dict[str, Prior] = Field(default_factory=dict)
    notes: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v) or ".." in v:
            raise ValueError("must be 1-80 letters, digits, '_', '.', '-'")
        return v

    @field_validator("comparator")
    @classmethod
    def _comparator(cls, v):
        if v is None:
            return v
        v = str(v)
        if v == "tac" or v.startswith("tac_"):
            raise ValueError("the comparator cannot be tacrolimus (TAC is the treatment predicted)")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
            raise ValueError(f"comparator must be a treatment label such as {', '.join(t for t in vocab.TREATMENTS if t != 'tac')}")
        return v

    @field_validator("baseline_risk", mode="before")
    @classmethod
    def _baseline(cls, v):
        return None if v is None else BaselineRisk.parse(v)

    @field_validator("extrapolation_priors", "baseline_extrapolation_priors", mode="before")
    @classmethod
    def _ext(cls, v, info):
        return parse_extrapolation_priors(v, info.field_name)

    # ------------------------------------------------------------------ helpers
    def covariate_values(self) -> dict[str, Any]:
        """The covariates this target sets (population covariates, regimen, phase,
        comparator), without the ``None`` ones."""
        keys = tuple(COVARIATES) + ("regimen", "phase", "comparator")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def label(self) -> str:
        return self.title or self.name

    def to_toml_dict(self) -> dict:
        d = self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        d.pop("name", None)
        if self.baseline_risk is not None:
            d["baseline_risk"] = str(self.baseline_risk)
            if self.baseline_risk.source:
                d["baseline_risk_source"] = self.baseline_risk.source
        for k in ("extrapolation_priors", "baseline_extrapolation_priors"):
            if getattr(self, k):
                d[k] = {c: str(p) for c, p in getattr(self, k).items()}
        return d


def _target_from_dict(raw: Mapping, label: str, name: str | None = None) -> Target:
    d = dict(raw)
    if name is not None:
        if "name" in d and d["name"] != name:
            raise TargetError(f"{label}: target [{name}] has name = {d['name']!r}; leave it out or make them equal")
        d["name"] = name
    src = d.pop("baseline_risk_source", None)
    if src is not None and d.get("baseline_risk") is not None:
        try:
            br = BaselineRisk.parse(d["baseline_risk"])
            d["baseline_risk"] = br.model_copy(update={"source": str(src)})
        except ValueError:
            pass  # reported by the model validation below
    try:
        return Target.model_validate(d)
    except ValidationError as exc:
        msgs = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e["loc"])
            if e["type"] == "extra_forbidden":
                allowed = [f for f in Target.model_fields] + ["baseline_risk_source"]
                msgs.append(f"unknown key {loc!r}; allowed keys: {', '.join(allowed)}")
            else:
                msgs.append(f"key {loc!r}: {e['msg']} (got {e.get('input')!r})")
        who = d.get("name", "?")
        raise TargetError(f"{label}: invalid target {who!r}: " + "; ".join(msgs)) from None


# ----------------------------------------------------------------------------- files
def default_targets_path() -> Path:
    """``models/targets.toml`` of a checkout, else the copy shipped inside the package."""
    here = Path(__file__).resolve()
    repo = here.parents[2] / "models" / "targets.toml"
    if repo.is_file():
        return repo
    return here.parent / "targets.toml"


def load_targets(path: str | Path | None = None) -> dict[str, Target]:
    """All targets of a TOML file (default: :func:`default_targets_path`), by name."""
    from bayesln.textfiles import read_toml

    p = Path(path) if path is not None else default_targets_path()
    raw = read_toml(p, error=TargetError, what="targets file")
    out = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise TargetError(f"{p}: top-level key {name!r} must be a table [{name}] describing a target")
        out[name] = _target_from_dict(table, str(p), name=name)
    return out


def resolve_target(target, *, targets_file: str | Path | None = None, search: Iterable[str | Path] = ()) -> Target:
    """A :class:`Target` from a Target, a dict (inline table) or a name (looked up in
    ``targets_file``, then in ``targets.toml`` beside each folder of ``search``, then in
    the default targets)."""
    if isinstance(target, Target):
        return target
    if isinstance(target, Mapping):
        return _target_from_dict(target, "<inline target>")
    if not isinstance(target, str):
        raise TargetError(f"a target is a name, a table or a Target, not {type(target).__name__}")
    files: list[Path] = []
    if targets_file is not None:
        files.append(Path(targets_file))
    for s in search:
        f = Path(s) / "targets.toml"
        if f.is_file():
            files.append(f)
    files.append(default_targets_path())
    seen: list[str] = []
    for f in dict.fromkeys(files):
        if not f.is_file():
            continue
        found = load_targets(f)
        if target in found:
            return found[target]
        seen.extend(found)
    known = ", ".join(dict.fromkeys(seen)) or "(none)"
    raise TargetError(f"unknown target {target!r}; known targets: {known}")


def resolve_targets(targets, **kw) -> list[Target]:
    """Several targets (names, tables or Targets); ``None`` = every default target."""
    if targets is None:
        p = kw.get("targets_file") or default_targets_path()
        return list(load_targets(p).values())
    if isinstance(targets, (str, Target, Mapping)):
        targets = [targets]
    out = [resolve_target(t, **kw) for t in targets]
    names = [t.name for t in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise TargetError(f"target name(s) given twice: {', '.join(dup)}")
    return out


def check_spec_targets(targets, spec_path: str | Path | None = None) -> list[Target]:
    """Validate an analysis spec's ``targets`` list (names are looked up in
    ``targets.toml`` beside the spec, then in the shipped targets). For
    :mod:`bayesln.spec` to call at load time; raises :class:`TargetError`."""
    search = [Path(spec_path).parent] if spec_path else []
    return resolve_targets(list(targets), search=search) if targets else []
