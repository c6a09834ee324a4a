"""Prior configuration of the core model.

Every prior is a :class:`Prior`: a distribution name plus its parameters, serialisable to
JSON (stored in the run's attributes) and parseable from a short string such as
``"half_normal(0.5)"`` or ``"turner(comparison_type='pharma_vs_pharma')"`` (used by the
analysis specs and the command line).

Defaults (and why):

- study baselines ``mu_i ~ Normal(0, 2.5)`` (independent), exchangeable mean
  ``m ~ Normal(0, 2.5)``, ``sigma_mu ~ HalfNormal(1)``;
- pooled log odds ratio ``d ~ Normal(0, 2.5)``;
- between-study SD ``tau ~ HalfNormal(0.5)`` (Röver et al. 2021, Res Synth Methods
  12:448, weakly informative for log odds ratios);
- effect modifiers ``beta ~ Normal(0, 1)`` and baseline covariates ``gamma ~ Normal(0, 1)``
  per **natural unit** of the covariate (:mod:`bayesln.hierarchy.design`): for a fraction
  (``asian_fraction``, ``class_v_fraction``, ``class_iii_iv_fraction``,
  ``female_fraction``) the change of the log odds ratio (beta) or of the comparator-arm
  log odds (gamma) for a full switch of the population from no patient to every patient
  (0 -> 1); per 10 years of ``mean_age``; per 10 calendar years of ``year``; for 0/1
  covariates (``pediatric``, ``refractory``, the regimen, phase and comparator indicators)
  the level vs the reference. Why Normal(0, 1): 95% of its mass gives a ratio of odds
  ratios between 0.14 and 7.1 for a full switch (or a decade, or a category) - wide
  enough for any modifier reported in lupus nephritis, narrow enough to rule out the
  odds ratios of 10^3 and more that no trial could support; it is twice the SD of the
  extrapolation priors of :mod:`bayesln.predict.priors` (Normal(0, 0.5) per full switch),
  because inside the trials' range the data, not the prior, should decide. (Before
  natural units the same Normal(0, 1) was per SD of the covariate *across the trials*:
  with class V fractions 0, 0, 0, 0.19 that was Normal(0, 10.5) per full switch.)
  Outside the trials' range a prediction does not extrapolate the fitted coefficient: the
  part beyond the range gets the extrapolation prior (:mod:`bayesln.predict.engine`).

These equal the brms reference (``validation/brms/reference_core.R``:
``prior(normal(0, 2.5), class = b)``, ``prior(normal(0, 0.5), class = sd)``).

Supported distributions

=================  ===================================  ==============================
name               parameters                           use
=================  ===================================  ==============================
normal             mu, sigma                            locations (mu_i, m, d, beta, gamma)
student_t          nu, mu, sigma                        locations
half_normal        scale                                scales (tau, sigma_mu)
half_cauchy        scale                                scales
half_student_t     nu, scale                            scales
uniform            lower, upper                         scales (lower >= 0)
exponential        rate                                 scales
lognormal_tau2     mu, sigma  (log tau^2 ~ N(mu, sigma))  tau
turner             outcome_type, comparison_type        tau (Turner et al. 2015, resolved
                                                        to lognormal_tau2 by
                                                        :mod:`bayesln.hierarchy.turner`)
robust_normal      weight, mu, sigma, vague_mu,         extrapolation priors only:
                   vague_sigma                          (1 - weight) N(mu, sigma) +
                                                        weight N(vague_mu, vague_sigma),
                                                        an evidence-informed component
                                                        made robust by a vague one
                                                        (:mod:`bayesln.predict.informed`)
=================  ===================================  ==============================
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "LOCATION_DISTS",
    "SCALE_DISTS",
    "Prior",
    "Priors",
    "exponential",
    "half_cauchy",
    "half_normal",
    "half_student_t",
    "lognormal_tau2",
    "normal",
    "resolve_tau_prior",
    "resolved_json",
    "student_t",
    "turner",
    "uniform",
]

#: parameters of each distribution, in positional order
DIST_PARAMS: dict[str, tuple[str, ...]] = {
    "normal": ("mu", "sigma"),
    "student_t": ("nu", "mu", "sigma"),
    "half_normal": ("scale",),
    "half_cauchy": ("scale",),
    "half_student_t": ("nu", "scale"),
    "uniform": ("lower", "upper"),
    "exponential": ("rate",),
    "lognormal_tau2": ("mu", "sigma"),
    "turner": ("outcome_type", "comparison_type"),
    "robust_normal": ("weight", "mu", "sigma", "vague_mu", "vague_sigma"),
}
#: parameters that may be left out (value None)
OPTIONAL_PARAMS: dict[str, tuple[str, ...]] = {"turner": ("outcome_type", "comparison_type")}
#: the largest absolute value of a numeric prior parameter (log-odds scale: e^(10^6) is
#: beyond any odds; vague priors such as normal(0, 100) or normal(0, 1e4) stay far inside)
PARAM_MAX = 1e6
#: string-valued parameters
STRING_PARAMS = {"outcome_type", "comparison_type", "source"}

LOCATION_DISTS = ("normal", "student_t")
SCALE_DISTS = ("half_normal", "half_cauchy", "half_student_t", "uniform", "exponential")
TAU_DISTS = SCALE_DISTS + ("lognormal_tau2", "turner")


class Prior(BaseModel):
    """One prior: ``dist`` (see module docstring) and its ``params``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dist: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params", mode="after")
    @classmethod
    def _ints_to_floats(cls, v: dict) -> dict:
        # "normal(0, 2.5)" and normal(0.0, 2.5) are the same prior: one JSON form, so the
        # compiled-model cache (keyed by the priors' JSON) and spec hashes agree
        return {k: float(x) if type(x) is int else x for k, x in v.items()}

    @model_validator(mode="after")
    def _check(self) -> Prior:
        if self.dist not in DIST_PARAMS:
            raise ValueError(f"unknown prior distribution {self.dist!r}; known: {', '.join(DIST_PARAMS)}")
        need = DIST_PARAMS[self.dist]
        optional = OPTIONAL_PARAMS.get(self.dist, ())
        extra = set(self.params) - set(need) - {"source"}
        if extra:
            raise ValueError(f"{self.dist}: unknown parameter(s) {sorted(extra)}; expected {list(need)}")
        missing = [p for p in need if p not in optional and self.params.get(p) is None]
        if missing:
            raise ValueError(f"{self.dist}: missing parameter(s) {missing}; expected {list(need)}")
        for k, v in self.params.items():
            if k in STRING_PARAMS:
                if v is not None and not isinstance(v, str):
                    raise ValueError(f"{self.dist}: parameter {k} must be a string, got {v!r}")
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{self.dist}: parameter {k} must be a finite number, got {v!r}")
            if abs(v) > PARAM_MAX:
                raise ValueError(f"{self.dist}: parameter {k} = {v:g} is outside [-{PARAM_MAX:g}, {PARAM_MAX:g}] "
                                 "(on the log-odds scale such a prior means nothing, and the sampler's arithmetic "
                                 "overflows)")
        p = self.params
        positive = {"sigma", "scale", "nu", "rate", "vague_sigma"}
        for k in positive & set(p):
            if p[k] <= 0:
                raise ValueError(f"{self.dist}: {k} must be > 0, got {p[k]}")
        if self.dist == "robust_normal" and not 0.0 <= p["weight"] <= 1.0:
            raise ValueError(f"robust_normal: weight (of the vague component) must be in [0, 1], got {p['weight']}")
        if self.dist == "uniform" and not p["lower"] < p["upper"]:
            raise ValueError(f"uniform: lower ({p['lower']}) must be < upper ({p['upper']})")
        return self

    # ------------------------------------------------------------------ text form
    def __str__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}" if isinstance(v, str) else f"{k}={v:g}"
            for k, v in self.params.items()
            if v is not None and k != "source"
        )
        return f"{self.dist}({args})"

    @classmethod
    def parse(cls, text: str | Prior | dict) -> Prior:
        """``"half_normal(0.5)"``, ``"normal(mu=0, sigma=2.5)"``,
        ``"turner(comparison_type='pharma_vs_pharma')"``, a dict or a Prior."""
        if isinstance(text, Prior):
            return text
        if isinstance(text, dict):
            return cls.model_validate(text)
        name, args, kwargs = _parse_call(str(text))
        names = DIST_PARAMS[name]
        if len(args) > len(names):
            raise ValueError(f"{name} takes at most {len(names)} positional arguments ({', '.join(names)}): "
                             f"{_quote(text)}")
        params = dict(zip(names, args))
        dup = set(params) & set(kwargs)
        if dup:
            raise ValueError(f"{name}: parameter(s) {sorted(dup)} given twice: {_quote(text)}")
        params.update(kwargs)
        return cls(dist=name, params=params)


#: the longest prior text read (a prior is a name and a few numbers)
MAX_PRIOR_CHARS = 200

_TOKEN = re.compile(r"""
    (?P<space>[ ]+)
  | (?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<string>'[^'\\\n]*'|"[^"\\\n]*")
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<punct>[(),=])
""", re.X)


def _quote(text) -> str:
    t = str(text)
    return repr(t if len(t) <= 80 else t[:60] + f"... ({len(t):,} characters)")


def _parse_call(text: str) -> tuple[str, list, dict]:
    """``name(arg, ..., key=arg, ...)`` with literal numbers, quoted strings or None as
    arguments - read by a small tokenizer (never evaluated, never Python's parser):
    bounded length, one sign per number, finite floats, no repeated keywords. Errors
    quote the text."""
    hint = "write e.g. 'half_normal(0.5)' or 'normal(mu=0, sigma=2.5)'"
    if len(text) > MAX_PRIOR_CHARS:
        raise ValueError(f"prior text is {len(text):,} characters, more than the {MAX_PRIOR_CHARS} allowed: "
                         f"{_quote(text)}")
    tokens, pos, src = [], 0, text.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            raise ValueError(f"cannot read prior {_quote(text)}: unexpected {src[pos]!r} at character {pos + 1}; {hint}")
        pos = m.end()
        if m.lastgroup != "space":
            tokens.append((m.lastgroup, m.group()))
    if len(tokens) < 3 or tokens[0][0] != "name" or tokens[1] != ("punct", "(") or tokens[-1] != ("punct", ")"):
        raise ValueError(f"cannot read prior {_quote(text)}; {hint}")
    name = tokens[0][1]
    if name not in DIST_PARAMS:
        raise ValueError(f"unknown prior distribution {name!r} in {_quote(text)}; known: {', '.join(DIST_PARAMS)}")
    body = tokens[2:-1]
    args: list = []
    kwargs: dict = {}
    i = 0
    while i < len(body):
        key = None
        if i + 1 < len(body) and body[i][0] == "name" and body[i + 1] == ("punct", "="):
            key = body[i][1]
            i += 2
        if i >= len(body):
            raise ValueError(f"cannot read prior {_quote(text)}: a value is missing after {key}=")
        kind, tok = body[i]
        if kind == "number":
            value = float(tok)
            if not math.isfinite(value):
                raise ValueError(f"cannot read prior {_quote(text)}: {tok[:30]} is outside the range of a float")
        elif kind == "string":
            value = tok[1:-1]
        elif kind == "name" and tok == "None":
            value = None
        else:
            raise ValueError(f"cannot read prior {_quote(text)}: expected a number, a quoted text or None, "
                             f"not {tok!r}")
        i += 1
        if i < len(body):
            if body[i] != ("punct", ","):
                raise ValueError(f"cannot read prior {_quote(text)}: expected ',' or ')' after {tok!r}")
            i += 1
        if key is None:
            if kwargs:
                raise ValueError(f"cannot read prior {_quote(text)}: a positional argument after a keyword argument")
            args.append(value)
        elif key in kwargs:
            raise ValueError(f"{name}: parameter {key!r} given twice in {_quote(text)}")
        else:
            kwargs[key] = value
    return name, args, kwargs


# ---------------------------------------------------------------------- constructors
def normal(mu: float = 0.0, sigma: float = 1.0) -> Prior:
    return Prior(dist="normal", params={"mu": mu, "sigma": sigma})


def student_t(nu: float, mu: float = 0.0, sigma: float = 1.0) -> Prior:
    return Prior(dist="student_t", params={"nu": nu, "mu": mu, "sigma": sigma})


def half_normal(scale: float) -> Prior:
    return Prior(dist="half_normal", params={"scale": scale})


def half_cauchy(scale: float) -> Prior:
    return Prior(dist="half_cauchy", params={"scale": scale})


def half_student_t(nu: float, scale: float) -> Prior:
    return Prior(dist="half_student_t", params={"nu": nu, "scale": scale})


def uniform(lower: float, upper: float) -> Prior:
    return Prior(dist="uniform", params={"lower": lower, "upper": upper})


def exponential(rate: float) -> Prior:
    return Prior(dist="exponential", params={"rate": rate})


def lognormal_tau2(mu: float, sigma: float) -> Prior:
    """log(tau^2) ~ Normal(mu, sigma) (sigma is a standard deviation)."""
    return Prior(dist="lognormal_tau2", params={"mu": mu, "sigma": sigma})


def turner(outcome_type: str | None = None, comparison_type: str | None = None) -> Prior:
    """Turner et al. (2015, Stat Med 34:984) predictive prior for log(tau^2), resolved
    by :func:`bayesln.hierarchy.turner.turner_prior`. ``outcome_type=None`` takes the
    outcome's default type (``turner.DEFAULT_OUTCOME_TYPE``) when the model is built;
    ``comparison_type=None`` takes ``turner.DEFAULT_COMPARISON_TYPE``
    (pharmacological vs pharmacological)."""
    return Prior(dist="turner", params={"outcome_type": outcome_type, "comparison_type": comparison_type})


def _coerce(v):
    return Prior.parse(v) if isinstance(v, (str, dict)) else v


class Priors(BaseModel):
    """All priors of the core model; every field can be overridden.

    ``beta`` is the default for every effect modifier and ``beta_overrides`` maps a
    covariate name (as in the ``covariate`` coordinate, e.g. ``"mean_age"``,
    ``"regimen:triple"``) to its own prior; likewise ``gamma`` / ``gamma_overrides`` for
    baseline covariates. Fields accept Prior objects, strings or dicts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline: Prior = normal(0.0, 2.5)
    m: Prior = normal(0.0, 2.5)
    sigma_mu: Prior = half_normal(1.0)
    d: Prior = normal(0.0, 2.5)
    tau: Prior = half_normal(0.5)
    beta: Prior = normal(0.0, 1.0)
    beta_overrides: dict[str, Prior] = Field(default_factory=dict)
    gamma: Prior = normal(0.0, 1.0)
    gamma_overrides: dict[str, Prior] = Field(default_factory=dict)

    @field_validator("baseline", "m", "sigma_mu", "d", "tau", "beta", "gamma", mode="before")
    @classmethod
    def _parse_one(cls, v):
        return _coerce(v)

    @field_validator("beta_overrides", "gamma_overrides", mode="before")
    @classmethod
    def _parse_many(cls, v):
        return {k: _coerce(p) for k, p in dict(v or {}).items()}

    @model_validator(mode="after")
    def _check_families(self) -> Priors:
        def need(name, prior, allowed):
            if prior.dist not in allowed:
                raise ValueError(f"prior for {name} must be one of {', '.join(allowed)}; got {prior}")

        for name in ("baseline", "m", "d", "beta", "gamma"):
            need(name, getattr(self, name), LOCATION_DISTS)
        for k, p in self.beta_overrides.items():
            need(f"beta[{k}]", p, LOCATION_DISTS)
        for k, p in self.gamma_overrides.items():
            need(f"gamma[{k}]", p, LOCATION_DISTS)
        need("sigma_mu", self.sigma_mu, SCALE_DISTS + ("lognormal_tau2",))
        need("tau", self.tau, TAU_DISTS)
        for name in ("sigma_mu", "tau"):
            p = getattr(self, name)
            if p.dist == "uniform" and p.params["lower"] < 0:
                raise ValueError(f"uniform prior for {name} needs lower >= 0, got {p.params['lower']}")
        return self

    @classmethod
    def vague(cls, sd: float = 100.0, tau: Prior | str | None = None) -> Priors:
        """Very vague location priors (Normal(0, sd) on mu_i, m, d); tau as given
        (default HalfNormal(0.5))."""
        kw = dict(baseline=normal(0.0, sd), m=normal(0.0, sd), d=normal(0.0, sd))
        if tau is not None:
            kw["tau"] = tau
        return cls(**kw)

    def beta_for(self, name: str) -> Prior:
        return self.beta_overrides.get(name, self.beta)

    def gamma_for(self, name: str) -> Prior:
        return self.gamma_overrides.get(name, self.gamma)

    def to_json_dict(self) -> dict:
        return self.model_dump(mode="json")


def resolve_tau_prior(prior: Prior, outcome: str | None) -> Prior:
    """A ``turner(...)`` prior becomes ``lognormal_tau2(mu, sigma)`` with the numbers of
    Turner et al. (2015); other priors are returned unchanged."""
    if prior.dist != "turner":
        return prior
    try:
        from bayesln.hierarchy import turner as _turner
    except ImportError as exc:  # pragma: no cover - module written in parallel
        raise ImportError("turner() priors need bayesln.hierarchy.turner, which is not available") from exc
    outcome_type = prior.params.get("outcome_type")
    comparison_type = prior.params.get("comparison_type") or _turner.DEFAULT_COMPARISON_TYPE
    if outcome_type is None:
        table = getattr(_turner, "DEFAULT_OUTCOME_TYPE", {})
        if outcome not in table:
            raise ValueError(
                f"turner prior: no default Turner outcome type for outcome {outcome!r}; "
                f"give outcome_type explicitly (known defaults: {', '.join(sorted(table))})"
            )
        outcome_type = table[outcome]
    tp = _turner.turner_prior(outcome_type, comparison_type)
    return Prior(
        dist="lognormal_tau2",
        params={
            "mu": float(tp.mu),
            "sigma": float(tp.sigma),
            "source": f"turner(outcome_type={outcome_type!r}, comparison_type={comparison_type!r})",
        },
    )


def resolved_json(priors: Priors, outcome: str | None, *, common_effect: bool = False) -> dict:
    """The core model's priors as a fit records them (``config["priors"]``) and keys its
    compiled model: :meth:`Priors.to_json_dict` with a ``turner(...)`` tau prior resolved
    for ``outcome`` (unless the effect is common)."""
    resolved = priors.to_json_dict()
    if not common_effect:
        resolved["tau"] = resolve_tau_prior(priors.tau, outcome).model_dump(mode="json")
    return resolved
