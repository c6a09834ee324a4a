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
    effect_modifiers = []              # e.g. ["regimen"] (TAC triple vs duo), ["asian_fraction"]
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
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bayesln import vocab
from bayesln.hierarchy.sampler_defaults import DEFAULT_SAMPLER

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
#: an outcome label of a user's own data (the data layer's LABEL_RE)
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.+\- ]{0,78}[A-Za-z0-9_.+\-])?")


class SpecError(ValueError):
    """A spec file that cannot be used; the message names file, key and allowed values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: the largest spec file read (bytes) and the longest title / description / other text
#: value a spec may hold (characters): a spec is a page of settings, and its title is drawn
#: in figures and reports
MAX_SPEC_BYTES = 256 * 1024
MAX_TITLE_CHARS = 300
MAX_DESCRIPTION_CHARS = 5000
MAX_TEXT_CHARS = 1000


class AnalysisSection(_Section):
    name: str
    title: str = Field("", max_length=MAX_TITLE_CHARS)
    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v) or ".." in v:
            raise ValueError("must be 1-80 letters, digits, '_', '.', '-' (no path separators, no '..')")
        return v


class DataSection(_Section):
    source: str = "tacrolimus_ln"
    #: one outcome (families core, network); "renal_response" (CR / PR / NR) for ordinal
    outcome: str | None = None
    #: two or more outcomes (family joint)
    outcomes: list[str] | None = None
    phases: list[Literal["induction", "maintenance", "induction_maintenance"]] | None = None
    designs: list[Literal["rct", "cohort", "case_control", "single_arm"]] | None = None
    studies: list[str] | None = None
    exclude_studies: list[str] = Field(default_factory=list)
    #: direction of outcomes outside the bundled vocabulary (a user's own data): "benefit"
    #: (more events are better, e.g. remission) or "harm" (e.g. tuberculosis)
    directions: dict[str, Literal["benefit", "harm"]] = Field(default_factory=dict)

    @field_validator("outcome")
    @classmethod
    def _outcome(cls, v: str | None) -> str | None:
        if v is not None and v not in vocab.OUTCOMES and v != ORDINAL_OUTCOME and not _LABEL_RE.fullmatch(v):
            raise ValueError("not an outcome label: use letters, digits, '_', '.', '+', '-' and inner spaces")
        return v

    @field_validator("outcomes")
    @classmethod
    def _outcomes(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        bad = [o for o in v if o not in vocab.OUTCOMES and not _LABEL_RE.fullmatch(o)]
        if bad:
            raise ValueError(f"not outcome label(s): {', '.join(map(repr, bad))}")
        if len(set(v)) < 2:
            raise ValueError("needs two or more different outcomes")
        return v

    def direction_of(self, outcome: str) -> str | None:
        """The outcome's direction: declared, else the bundled vocabulary's, else None."""
        return self.directions.get(outcome) or vocab.OUTCOMES.get(outcome)


def _check_vocabulary(d: DataSection) -> None:
    """A bundled dataset has a closed vocabulary: its outcomes are refused when unknown
    (with the known ones listed); a user's CSV declares the direction of its own outcomes
    in ``[data] directions``. A declared direction never contradicts the bundled one."""
    from bayesln.data.datasets import list_datasets

    wanted = ([d.outcome] if d.outcome else []) + list(d.outcomes or [])
    key = "data.outcomes" if d.outcomes else "data.outcome"
    if d.source in list_datasets():
        bad = [o for o in wanted if o not in vocab.OUTCOMES and o != ORDINAL_OUTCOME]
        if bad:
            raise ValueError(f"key '{key}': unknown outcome(s) {', '.join(map(repr, bad))} of the bundled dataset "
                             f"{d.source!r}; allowed: {', '.join(vocab.OUTCOMES)} (or {ORDINAL_OUTCOME!r} for family "
                             "'ordinal')")
    for o, direction in d.directions.items():
        if o in vocab.OUTCOMES and vocab.OUTCOMES[o] != direction:
            raise ValueError(f"key 'data.directions': {o!r} is a {vocab.OUTCOMES[o]} in the bundled vocabulary, "
                             f"not a {direction}")
        if o not in wanted:
            raise ValueError(f"key 'data.directions': {o!r} is not an outcome of this spec ({', '.join(wanted) or 'none'})")


#: [model] keys of each family (beyond ``family``); a key of another family set to a
#: non-default value is refused, with the family's keys listed
FAMILY_MODEL_KEYS = {
    "core": ("treat", "baseline", "effect_modifiers", "baseline_covariates", "common_effect", "parameterization",
             "baseline_parameterization", "nonrandomised"),
    "ordinal": ("treat", "link", "cutpoint_specific", "baseline", "effect_modifiers", "phase_effect",
                "common_effect", "reference_baseline", "parameterization", "baseline_parameterization"),
    "joint": ("treat", "lkj_eta", "baseline", "directions", "phase_effect", "parameterization",
              "baseline_parameterization"),
    "network": ("reference", "model", "effects", "treatments", "inconsistency", "phase_effect", "parameterization"),
}
ORDINAL_OUTCOME = "renal_response"
ORDINAL_MODIFIERS = ("regimen", "comparator", "phase")


class ModelSection(_Section):
    family: Literal["core", "ordinal", "joint", "network"] = "core"
    treat: list[str] = Field(default_factory=lambda: ["tac"])
    baseline: Literal["independent", "exchangeable"] = "independent"
    #: core: covariates on the treatment effect (default none); ordinal: a subset of
    #: regimen / comparator / phase (default: those that vary among the included studies)
    effect_modifiers: list[str] | None = None
    baseline_covariates: list[str] = Field(default_factory=list)
    common_effect: bool = False
    #: every family: each study's random effect centred or non-centred by how strongly its
    #: data inform it ("auto", bayesln.hierarchy.parameterize and each family's choose_*),
    #: or one form for every study
    parameterization: Literal["auto", "noncentered", "centered"] = "auto"
    #: core, ordinal and joint, exchangeable baselines: "auto" (default: per study, from how strongly its
    #: control arms inform its baseline; bayesln.hierarchy.parameterize), or one form for
    #: every study: centred (better with informative arms) or non-centred (better with
    #: very few trials)
    baseline_parameterization: Literal["auto", "centered", "noncentered"] = "auto"
    #: core: studies whose design is not "rct": left out ("exclude", a randomised-only
    #: analysis) or entered with an explicit bias term ("bias"; bayesln.hierarchy.design)
    nonrandomised: Literal["exclude", "bias"] = "exclude"
    # family "ordinal" (None: the fit function's default)
    link: Literal["sequential", "cumulative"] | None = None
    cutpoint_specific: bool | None = None
    phase_effect: bool | None = None
    reference_baseline: Literal["auto", "mean", "typical"] | dict[str, float] | None = None
    # family "joint" (phase_effect, above, is also a joint and a network key: a maintenance
    # shift of the treatment effects, fitted on induction and maintenance studies together)
    lkj_eta: float | None = Field(None, gt=0)
    directions: dict[str, Literal["benefit", "harm"]] | None = None
    # family "network"
    reference: str | None = None
    model: Literal["consistency", "ume"] | None = None
    effects: Literal["random", "fixed"] | None = None
    treatments: list[str] | None = None
    inconsistency: Literal["none", "node_split", "ume"] | None = None

    @field_validator("effect_modifiers", "baseline_covariates")
    @classmethod
    def _covariates(cls, v: list[str] | None, info) -> list[str] | None:
        if v is None:
            return v
        allowed = vocab.EFFECT_MODIFIERS if info.field_name == "effect_modifiers" else vocab.BASELINE_COVARIATES
        bad = [c for c in v if c not in allowed]
        if bad:
            raise ValueError(f"unknown covariate(s) {', '.join(map(repr, bad))}; allowed: {', '.join(allowed)}")
        return v

    def family_kwargs(self) -> dict:
        """Keyword arguments for the family's fit function: the family's keys that the
        spec sets (keys left at None take the fit function's default)."""
        out = {}
        for k in FAMILY_MODEL_KEYS[self.family]:
            v = getattr(self, k)
            if v is not None:
                out[k] = tuple(v) if isinstance(v, list) else v
        return out


#: allowed ranges of the sampler settings, shared by the spec and the command line's
#: overrides. tune >= 1: NUTS needs at least one adaptation step (nutpie stops with an
#: internal panic at 0, and unadapted draws would fail the gate anyway)
SAMPLER_RANGES = {"draws": (1, 1_000_000), "tune": (1, 1_000_000), "chains": (1, 64), "seed": (0, 2**32 - 1)}


class SamplerSection(_Section):
    draws: int = Field(DEFAULT_SAMPLER["draws"], ge=SAMPLER_RANGES["draws"][0], le=SAMPLER_RANGES["draws"][1])
    tune: int = Field(DEFAULT_SAMPLER["tune"], ge=SAMPLER_RANGES["tune"][0], le=SAMPLER_RANGES["tune"][1])
    chains: int = Field(DEFAULT_SAMPLER["chains"], ge=SAMPLER_RANGES["chains"][0], le=SAMPLER_RANGES["chains"][1])
    target_accept: float = Field(DEFAULT_SAMPLER["target_accept"], gt=0.5, lt=1.0)
    backend: Literal["auto", "nutpie", "pymc", "numpyro"] = "auto"
    seed: int = Field(20261122, ge=SAMPLER_RANGES["seed"][0], le=SAMPLER_RANGES["seed"][1])
    #: when the gate fails: refit once with a higher target acceptance (divergences, low
    #: E-BFMI) or add chains (R-hat / ESS only), each retry recorded (bayesln.hierarchy.retry)
    retry: bool = True


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

    @model_validator(mode="after")
    def _family(self) -> Spec:
        fam, m, d = self.model.family, self.model, self.data
        _check_vocabulary(d)
        defaults = ModelSection()
        bad = [k for k in ModelSection.model_fields if k != "family" and k not in FAMILY_MODEL_KEYS[fam]
               and getattr(m, k) != getattr(defaults, k)]
        if bad:
            raise ValueError(f"key 'model.{bad[0]}': not used by family {fam!r}; its keys: {', '.join(FAMILY_MODEL_KEYS[fam])}")
        if fam == "joint":
            if d.outcomes is None or d.outcome is not None:
                raise ValueError("key 'data.outcomes': family 'joint' needs data.outcomes = [two or more outcomes] and no data.outcome")
        else:
            if d.outcomes is not None:
                raise ValueError(f"key 'data.outcomes': only family 'joint' takes several outcomes; use data.outcome for family {fam!r}")
            if fam == "ordinal":
                if d.outcome not in (None, ORDINAL_OUTCOME):
                    raise ValueError(f"key 'data.outcome': family 'ordinal' models {ORDINAL_OUTCOME!r} (CR / PR / NR), not {d.outcome!r}")
            elif d.outcome is None:
                raise ValueError(f"key 'data.outcome': missing required key for family {fam!r}")
            elif d.outcome == ORDINAL_OUTCOME:
                raise ValueError(f"key 'data.outcome': {ORDINAL_OUTCOME!r} is modelled by family 'ordinal', not {fam!r}")
        if fam == "ordinal" and m.effect_modifiers is not None:
            extra = [c for c in m.effect_modifiers if c not in ORDINAL_MODIFIERS]
            if extra:
                raise ValueError(f"key 'model.effect_modifiers': family 'ordinal' allows {', '.join(ORDINAL_MODIFIERS)}; got {', '.join(extra)}")
        if self.targets and fam not in ("core", "ordinal"):
            raise ValueError(f"key 'targets': predictions are made from family 'core' or 'ordinal' fits, not {fam!r}")
        return self

    # -------------------------------------------------------------- derived
    @property
    def name(self) -> str:
        return self.analysis.name

    @property
    def outcome(self) -> str:
        """The outcome (``renal_response`` for an ordinal spec, ``a+b+c`` for a joint one)."""
        if self.data.outcomes:
            return "+".join(self.data.outcomes)
        return self.data.outcome or ORDINAL_OUTCOME

    def priors_obj(self):
        """The validated :class:`bayesln.hierarchy.priors.Priors` (``OrdinalPriors`` for
        family ordinal: adds the cumulative-link priors ``gap`` and ``psi``)."""
        if self.model.family == "ordinal":
            from bayesln.hierarchy.ordinal import OrdinalPriors

            return OrdinalPriors(**self.priors)
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
def _short(v) -> str:
    """repr of a value, cut to a readable length (an error must stay one paragraph)."""
    r = repr(v)
    return r if len(r) <= 100 else r[:80] + f"... ({len(r):,} characters)"


def _long_texts(raw, where: str = "") -> list[str]:
    """Keys whose text values exceed MAX_TEXT_CHARS (title and description have their own limits)."""
    out = []
    if isinstance(raw, dict):
        for k, v in raw.items():
            out += _long_texts(v, f"{where}.{k}" if where else str(k))
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            out += _long_texts(v, f"{where}[{i}]")
    elif isinstance(raw, str) and len(raw) > MAX_TEXT_CHARS and where not in ("analysis.title", "analysis.description"):
        out.append(where)
    return out


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
            msgs.append(f"key '{loc}': {_short(e['input'])} is not allowed; {e['msg'].replace('Input should be', 'allowed:')}")
        elif not e["loc"]:  # a whole-spec check (family keys); its message names the key
            msgs.append(e["msg"].removeprefix("Value error, "))
        else:
            msg = e["msg"].removeprefix("Value error, ")
            msgs.append(f"key '{loc}': {msg} (got {_short(e.get('input'))})")
    return f"{label}: invalid spec: " + "; ".join(msgs)


def _format_prior_errors(exc: ValidationError, label: str, raw: dict) -> str:
    from bayesln.hierarchy.priors import Priors

    msgs = []
    for e in exc.errors():
        loc = ".".join(["priors", *(str(x) for x in e["loc"])]) if e["loc"] else "priors"
        if e["type"] == "extra_forbidden":
            msgs.append(f"unknown key '{e['loc'][-1]}' in [priors]; allowed keys: {', '.join(Priors.model_fields)}")
        else:
            given = raw.get(e["loc"][0], e.get("input")) if len(e["loc"]) == 1 else e.get("input")
            msgs.append(f"key '{loc}': {e['msg'].removeprefix('Value error, ')} (got {_short(given)})")
    return f"{label}: invalid spec: " + "; ".join(msgs)


def _validate(raw: dict, label: str, path: str | None = None) -> Spec:
    long = _long_texts(raw)
    if long:
        raise SpecError(f"{label}: invalid spec: key '{long[0]}': text longer than {MAX_TEXT_CHARS} characters")
    try:
        spec = Spec.model_validate({**raw, "path": path})
    except ValidationError as exc:
        raise SpecError(_format_errors(exc, label, raw)) from None
    try:
        spec.priors_obj()
    except ValidationError as exc:
        raise SpecError(_format_prior_errors(exc, label, spec.priors)) from None
    except ValueError as exc:
        raise SpecError(f"{label}: invalid spec: key 'priors': {exc}") from None
    if spec.targets:
        from bayesln.predict.targets import check_spec_targets

        try:
            check_spec_targets(spec.targets, path)
        except ValueError as exc:
            raise SpecError(f"{label}: invalid spec: key 'targets': {exc}") from None
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec. Raises :class:`SpecError`."""
    from bayesln.textfiles import read_toml

    p = Path(path)
    raw = read_toml(p, error=SpecError, what="spec file", max_bytes=MAX_SPEC_BYTES)
    return _validate(raw, str(p), path=str(p))


def spec_from_dict(raw: dict, label: str = "<dict>") -> Spec:
    return _validate(raw, label)
