"""From an arm table to the arrays of the core model: which studies and arms enter, how
each study is used, and the covariate design matrices with their transforms.

The core model (see :mod:`bayesln.hierarchy.model`) is arm-based::

    events_ij ~ Binomial(n_ij, p_ij)
    logit p_ij = mu_i + t_ij * delta_i + A_ij . beta
    delta_i ~ Normal(d, tau)

``t_ij`` is 1 for an arm whose treatment (or network node) is in ``treat``. The
effect-modifier rows ``A_ij`` are built per arm so that one formulation covers
study-level and arm-level modifiers:

* a study-level covariate x_i (population, ``phase``) enters the treated arms only,
  ``A_ij = t_ij * x_i``: then ``logit p_iT - logit p_iC = delta_i + x_i . beta``, i.e.
  ``delta_i + x_i . beta ~ Normal(d + x_i . beta, tau)`` — the usual meta-regression;
* ``regimen`` is the treated arm's own regimen (indicator ``regimen:triple``), so a trial
  with a duo and a triple TAC arm is handled too;
* ``comparator`` gives indicators of the control arm's treatment (reference = the most
  common comparator), entering the control arms with a minus sign,
  ``A_ij = -(1 - t_ij) * [treatment_ij = c]``, so the TAC-vs-c log odds ratio of study
  i is ``delta_i + beta_c``; in a three-arm trial (TAC, MMF, IVCY) the two control arms
  share ``mu_i`` and the comparator indicators separate them.

Continuous covariates (fractions, age, year) are centred at the mean of the study values
of the studies in the regression and expressed in a **natural unit** fixed in advance
(:data:`NATURAL_UNITS`), never in units of their spread across the trials:

* a fraction (``asian_fraction``, ``class_v_fraction``, ``class_iii_iv_fraction``,
  ``female_fraction``): unit 1.0, so its coefficient is the change of the log odds ratio
  (effect modifier) or of the comparator-arm log odds (baseline covariate) for a **full
  switch of the population**, from no patient to every patient (0 -> 1);
* ``mean_age``: per **10 years** of mean age; ``year``: per **10 calendar years**;
* 0/1 covariates (flags, indicators of regimen, phase and comparator) are used as they are.

Why not per SD: the SD of a covariate across a handful of trials is an accident of which
trials were run (``class_v_fraction`` 0, 0, 0, 0.19: SD 0.095), so a prior of Normal(0, 1)
"per SD" meant Normal(0, 10.5) per full switch of the population - a prior that allows
odds ratios of 10^9 and let a pure class V target inherit them. With a fixed unit the
default prior (Normal(0, 1), :mod:`bayesln.hierarchy.priors`) means the same thing in
every data set.

The transforms are stored (:class:`CovariateTransform`; JSON in the InferenceData's
``covariate_transforms`` attribute) with the range of the study values they were fitted
on (``lower``, ``upper``), so that predictions reuse them: a prediction uses a fitted
coefficient only within that range and adds the documented extrapolation prior for the
part of a target's value beyond it (:mod:`bayesln.predict.engine`). Fits made before
natural units (continuous transforms without ``lower`` / ``upper``, scaled by the SD) are
refused by predictions with a message saying to refit.

Missing covariate values are never filled: a study that lacks a value needed by the
regression is left out of that fit, with a ``UserWarning`` naming it and a row in the
usage table.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from bayesln import vocab

__all__ = [
    "BASELINE_COVARIATES",
    "EFFECT_MODIFIERS",
    "NATURAL_UNITS",
    "CovariateTransform",
    "Design",
    "build_design",
    "load_arm_table",
]

#: population covariates (study level) and their kind
POPULATION = dict(vocab.POPULATION_COVARIATES) | {"year": "continuous"}
#: covariates that can modify the treatment effect
EFFECT_MODIFIERS: tuple[str, ...] = tuple(POPULATION) + ("regimen", "phase", "comparator")
#: covariates that can shift the (exchangeable) baseline log odds
BASELINE_COVARIATES: tuple[str, ...] = tuple(POPULATION) + ("phase",)

UNITS = {"mean_age": "years", "year": "years"}
#: the natural unit of each continuous covariate (the coefficient is per this many raw
#: units); fractions and any other continuous covariate: 1.0 (a full switch 0 -> 1)
NATURAL_UNITS: dict[str, float] = {"mean_age": 10.0, "year": 10.0}
#: the convention of continuous transforms written by this version (stored with them)
SCALING = "natural_unit"


@dataclass(frozen=True)
class CovariateTransform:
    """How a raw covariate becomes a column of the design matrix:
    ``(value - center) / scale`` for continuous ones, where ``scale`` is the covariate's
    natural unit (:data:`NATURAL_UNITS`: 1 for fractions, 10 years for ``mean_age`` and
    ``year``), and 0/1 for the others. ``lower`` / ``upper`` are the smallest and largest
    study values the coefficient was fitted on (continuous covariates only; ``None``
    otherwise)."""

    name: str  # coordinate label, e.g. "mean_age", "regimen:triple", "comparator:mmf"
    source: str  # column it comes from: "mean_age", "regimen", "phase", "treatment"
    kind: str  # "continuous" | "binary" | "indicator"
    role: str  # "effect_modifier" | "baseline"
    center: float = 0.0
    scale: float = 1.0
    level: str | None = None  # indicator level ("triple", "maintenance", "mmf")
    reference: str | None = None  # indicator reference ("duo", "induction", "ivcy")
    unit: str | None = None
    n_studies: int = 0
    lower: float | None = None  # observed range of the study values (continuous)
    upper: float | None = None
    scaling: str | None = None  # "natural_unit" for continuous transforms of this version

    def apply(self, values) -> np.ndarray:
        """Transform raw values (for continuous covariates) with this study set's
        centre and the covariate's natural unit; binary / indicator values must already
        be 0/1. No clipping here: predictions clip to [lower, upper] themselves."""
        x = np.asarray(values, dtype=float)
        return (x - self.center) / self.scale

    def clip(self, value: float) -> float:
        """``value`` limited to the fitted range [lower, upper] (unchanged without one)."""
        v = float(value)
        if self.lower is not None:
            v = max(v, float(self.lower))
        if self.upper is not None:
            v = min(v, float(self.upper))
        return v

    def unit_text(self) -> str:
        """What one unit of the coefficient is, e.g. "a full switch of the population
        (0 -> 1) of class_v_fraction", "10 years of mean_age"."""
        if self.kind != "continuous":
            return self.describe()
        if self.unit == "fraction":
            return f"a full switch of the population (0 -> 1) of {self.source}"
        if self.source == "year":
            return f"{self.scale:g} calendar years"
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.scale:g}{unit} of {self.source}"

    def describe(self) -> str:
        """A phrase for tables: what one unit of the coefficient means."""
        if self.kind == "continuous":
            unit = f" {self.unit}" if self.unit and self.unit != "fraction" else ""
            rng = (f"; trials {self.lower:.3g}-{self.upper:.3g}{unit}"
                   if self.lower is not None and self.upper is not None else "")
            if self.scaling != SCALING:  # a transform of an earlier version (per SD)
                return f"per 1 SD of {self.source} (SD = {self.scale:.3g}{unit}; centred at {self.center:.3g}{unit})"
            return f"per {self.unit_text()} (centred at {self.center:.3g}{unit}{rng})"
        if self.kind == "binary":
            return f"{self.source}: yes vs no"
        return f"{self.source}: {self.level} vs {self.reference}"

    def to_dict(self) -> dict:
        d = asdict(self)
        # the range and the scaling convention exist for continuous covariates only; left
        # out otherwise so that 0/1 transforms serialise exactly as before they existed
        for k in ("lower", "upper", "scaling"):
            if d[k] is None:
                del d[k]
        return d


@dataclass
class Design:
    """Arrays, coordinates, covariate transforms and study usage of one core model.

    Arm arrays are aligned with ``arm_ids``; ``arm_study`` indexes ``study_ids``.
    ``X_effect`` is (n_arm, n_covariate) with column names ``effect_names``;
    ``Z_baseline`` is (n_study, n_baseline_covariate) with names ``baseline_names``.
    """

    outcome: str
    direction: str
    treat: tuple[str, ...]
    baseline: str
    study_ids: list[str]
    arm_ids: list[str]
    arm_study: np.ndarray
    treated: np.ndarray
    events: np.ndarray
    n: np.ndarray
    X_effect: np.ndarray
    effect_names: list[str]
    Z_baseline: np.ndarray
    baseline_names: list[str]
    transforms: dict[str, CovariateTransform]
    usage: pd.DataFrame
    contrasts: pd.DataFrame
    arms: pd.DataFrame  # the included arms with their columns (arm_id, treated, ...)
    fingerprint: str = ""
    excluded_arms: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def n_studies(self) -> int:
        return len(self.study_ids)

    @property
    def n_arms(self) -> int:
        return len(self.arm_ids)

    @property
    def coords(self) -> dict[str, list[str]]:
        c = {"study": list(self.study_ids), "arm": list(self.arm_ids)}
        if self.effect_names:
            c["covariate"] = list(self.effect_names)
        if self.baseline_names:
            c["baseline_covariate"] = list(self.baseline_names)
        return c

    @property
    def effect_transforms(self) -> list[CovariateTransform]:
        return [self.transforms[f"beta:{n}"] for n in self.effect_names]

    @property
    def baseline_transforms(self) -> list[CovariateTransform]:
        return [self.transforms[f"gamma:{n}"] for n in self.baseline_names]

    def shape_key(self) -> tuple:
        """Everything that fixes the compiled model apart from events and n: a refit
        with the same key can reuse a compiled model."""
        return (
            self.baseline,
            tuple(self.arm_study.tolist()),
            tuple(self.treated.tolist()),
            tuple(self.effect_names),
            tuple(self.baseline_names),
            hashlib.sha256(np.ascontiguousarray(self.X_effect).tobytes()).hexdigest(),
            hashlib.sha256(np.ascontiguousarray(self.Z_baseline).tobytes()).hexdigest(),
        )

    def transforms_json(self) -> str:
        return json.dumps({k: v.to_dict() for k, v in self.transforms.items()}, sort_keys=True)

    def summary_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "direction": self.direction,
            "treat": list(self.treat),
            "baseline": self.baseline,
            "n_studies": self.n_studies,
            "n_arms": self.n_arms,
            "effect_modifiers": list(self.effect_names),
            "baseline_covariates": list(self.baseline_names),
        }


# ----------------------------------------------------------------------------- input
def _fingerprint_frame(df: pd.DataFrame) -> str:
    cols = sorted(map(str, df.columns))
    text = df[cols].sort_values(["study", "arm"] if {"study", "arm"} <= set(df.columns) else cols).to_csv(index=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_arm_table(data, outcome: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The arm table for ``outcome`` from a TrialData or a DataFrame, the arms left out
    because their counts are unknown (study, arm, reason), and a data fingerprint.

    A DataFrame may be an arm table for this outcome (no ``outcome`` column) or the
    long format with an ``outcome`` column (rows of other outcomes are ignored)."""
    if hasattr(data, "arm_table") and not isinstance(data, pd.DataFrame):
        tab = data.arm_table(outcome)
        excluded = tab.attrs.get("excluded")
        fp = data.fingerprint() if hasattr(data, "fingerprint") else _fingerprint_frame(tab)
        tab = tab.copy()
    elif isinstance(data, pd.DataFrame):
        tab = data.copy()
        if "outcome" in tab.columns:
            present = sorted(set(tab["outcome"].dropna().astype(str)))
            if outcome not in present:
                raise ValueError(f"outcome {outcome!r} not in the data; outcomes present: {', '.join(present) or '(none)'}")
            tab = tab[tab["outcome"] == outcome].drop(columns="outcome")
        fp = _fingerprint_frame(tab)
        excluded = None
        need = {"study", "treatment", "events", "n"}
        missing = need - set(tab.columns)
        if missing:
            raise ValueError(f"arm table lacks column(s) {', '.join(sorted(missing))}; needs study, arm, treatment, events, n")
        if "arm" not in tab.columns:
            tab["arm"] = tab["treatment"]
        unknown = tab["events"].isna() | tab["n"].isna()
        if unknown.any():
            excluded = pd.DataFrame(
                {"study": tab.loc[unknown, "study"], "arm": tab.loc[unknown, "arm"], "reason": f"{outcome} count unknown (blank)"}
            ).reset_index(drop=True)
            tab = tab[~unknown]
    else:
        raise TypeError(f"data must be a TrialData or a pandas DataFrame, not {type(data).__name__}")
    if excluded is None:
        excluded = pd.DataFrame(columns=["study", "arm", "reason"])
    tab = tab.reset_index(drop=True)
    for col in ("study", "arm", "treatment"):
        tab[col] = tab[col].astype(str)
    if tab.empty:
        raise ValueError(f"no arm has known counts for outcome {outcome!r}")
    ev = pd.to_numeric(tab["events"], errors="raise")
    nn = pd.to_numeric(tab["n"], errors="raise")
    bad = (ev < 0) | (nn < 1) | (ev > nn) | (ev != np.round(ev)) | (nn != np.round(nn))
    if bad.any():
        rows = tab.loc[bad, ["study", "arm", "events", "n"]].to_dict("records")
        raise ValueError(f"invalid counts (need integers 0 <= events <= n, n >= 1): {rows}")
    tab["events"] = ev.astype(np.int64).to_numpy()
    tab["n"] = nn.astype(np.int64).to_numpy()
    dup = tab.duplicated(["study", "arm"], keep=False)
    if dup.any():
        raise ValueError(f"duplicate (study, arm) rows: {sorted(set(zip(tab.loc[dup, 'study'], tab.loc[dup, 'arm'])))}")
    return tab, excluded, fp


def outcome_direction(outcome: str, direction: str | None = None) -> str:
    if direction is not None:
        if direction not in ("benefit", "harm"):
            raise ValueError(f"direction must be 'benefit' or 'harm', not {direction!r}")
        return direction
    if outcome not in vocab.OUTCOMES:
        raise ValueError(
            f"unknown outcome {outcome!r}; known outcomes: {', '.join(vocab.OUTCOMES)} "
            "(for another outcome pass direction='benefit' or 'harm')"
        )
    return vocab.OUTCOMES[outcome]


# ----------------------------------------------------------------------------- helpers
def _as_names(x: str | Iterable[str] | None) -> tuple[str, ...]:
    if x is None:
        return ()
    if isinstance(x, str):
        return tuple(s.strip() for s in x.split(",") if s.strip())
    return tuple(x)


def _check_covariate_names(names: Sequence[str], allowed: Sequence[str], what: str, tab: pd.DataFrame) -> None:
    bad = [c for c in names if c not in allowed]
    if bad:
        raise ValueError(f"unknown {what}(s) {', '.join(map(repr, bad))}; known: {', '.join(allowed)}")
    dup = sorted({c for c in names if list(names).count(c) > 1})
    if dup:
        raise ValueError(f"{what}(s) given twice: {', '.join(dup)}")
    col_of = {"comparator": "treatment"}
    absent = [c for c in names if col_of.get(c, c) not in tab.columns]
    if absent:
        raise ValueError(f"{what}(s) {', '.join(absent)} not in the data (no such column)")


def _study_value(tab: pd.DataFrame, col: str) -> pd.Series:
    """One value per study of a study-level column (first arm's value; NA stays NA)."""
    return tab.groupby("study", sort=False)[col].agg(lambda s: s.iloc[0])


def _is_missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _fmt_arm(row) -> str:
    return f"{row['arm']} {int(row['events'])}/{int(row['n'])}"


# ----------------------------------------------------------------------------- design
def build_design(
    data,
    outcome: str,
    *,
    treat: str | Iterable[str] = ("tac",),
    baseline: str = "independent",
    effect_modifiers: str | Iterable[str] = (),
    baseline_covariates: str | Iterable[str] = (),
    direction: str | None = None,
    warn: bool = True,
    nonrandomised: str = "exclude",
) -> Design:
    """Build the :class:`Design` of the core model (no PyMC involved).

    ``nonrandomised``: what happens to studies whose ``design`` is stated and is not
    ``"rct"`` (cohort, case-control, single-arm series, or any other stated design):
    ``"exclude"`` (default) leaves them out, with a ``UserWarning`` and a usage row saying
    why (a randomised-only analysis); ``"bias"`` enters them with an explicit bias term:
    the effect-modifier column ``design:nonrandomised`` (1 on the treated arms of those
    studies), whose coefficient is the shift of a non-randomised study's log odds ratio
    (or, for a single-arm series under exchangeable baselines, of its treated arm's log
    odds) relative to what a randomised trial of the same population would show, with the
    effect-modifier prior (Normal(0, 1) unless ``beta_overrides`` sets
    ``design:nonrandomised``). Predictions are for randomised-trial conditions (the column
    is 0 for every target). A study with a blank design is included and its usage row says
    the design is not stated. Never silently pooled either way."""
    if baseline not in ("independent", "exchangeable"):
        raise ValueError(f"baseline must be 'independent' or 'exchangeable', not {baseline!r}")
    if nonrandomised not in ("exclude", "bias"):
        raise ValueError(f"nonrandomised must be 'exclude' or 'bias', not {nonrandomised!r}")
    direction = outcome_direction(outcome, direction)
    treat = _as_names(treat)
    if not treat:
        raise ValueError("treat must name at least one treatment (e.g. ('tac',))")
    effect_modifiers = _as_names(effect_modifiers)
    baseline_covariates = _as_names(baseline_covariates)
    tab, excluded_arms, fingerprint = load_arm_table(data, outcome)

    _check_covariate_names(effect_modifiers, EFFECT_MODIFIERS, "effect modifier", tab)
    _check_covariate_names(baseline_covariates, BASELINE_COVARIATES, "baseline covariate", tab)
    if baseline_covariates and baseline != "exchangeable":
        raise ValueError(
            "baseline covariates need exchangeable baselines (baseline='exchangeable'); "
            "with independent baselines each study has its own free mu_i"
        )

    labels = set(tab["treatment"])
    if "node" in tab.columns:
        labels |= set(tab["node"].dropna().astype(str))
        tab["treated"] = (tab["treatment"].isin(treat) | tab["node"].astype("string").isin(treat).fillna(False)).astype(bool)
    else:
        tab["treated"] = tab["treatment"].isin(treat)
    unknown_treat = [t for t in treat if t not in labels]
    if len(unknown_treat) == len(treat):
        raise ValueError(
            f"no arm has treatment {', '.join(map(repr, treat))} for outcome {outcome!r}; "
            f"treatments present: {', '.join(sorted(labels))}"
        )
    tab["arm_id"] = tab["study"] + ":" + tab["arm"]

    studies = list(dict.fromkeys(tab["study"]))
    usage: dict[str, dict] = {}
    struct_ok: dict[str, bool] = {}
    # one pass over plain records (a boolean filter per study was quadratic in the number of
    # studies, and pandas indexing of each study's few rows cost ~1 ms a study: 6 s and 10 s
    # of design building at 1,000 and 10,000 trials, benchmarks/perf.py "scaling")
    cols = ["study", "arm", "treated", "events", "n"] + (["regimen"] if "regimen" in tab.columns else [])
    by_study: dict[str, list[dict]] = {}
    for r in tab[cols].to_dict("records"):
        by_study.setdefault(r["study"], []).append(r)
    for s in studies:
        sub = by_study[s]
        treated_arms = [r["arm"] for r in sub if r["treated"]]
        control_arms = [r["arm"] for r in sub if not r["treated"]]
        nt, nc = len(treated_arms), len(control_arms)
        labels_s: list[str] = []
        ok = True
        k = len(sub)
        other = [r["arm"] for r in sub if isinstance(r.get("regimen"), str) and r["regimen"] == "other"]
        if nt >= 1 and nc >= 1:
            if k == 2:
                labels_s.append("two-arm contrast")
            else:
                parts = []
                if nc > 1:
                    parts.append(f"{nc} control arms ({', '.join(control_arms)}) share baseline")
                if nt > 1:
                    parts.append(f"{nt} treated arms ({', '.join(treated_arms)}) share delta_i")
                labels_s.append(f"{_arm_word(k)}: " + "; ".join(parts))
        elif baseline == "independent":
            ok = False
            if k == 1:
                labels_s.append("excluded: single-arm study needs exchangeable baselines")
            elif nt == 0:
                labels_s.append(f"excluded: no {'/'.join(treat)} arm (needs exchangeable baselines)")
            else:
                labels_s.append("excluded: no control arm (needs exchangeable baselines)")
        elif nt == 0 and other:
            # a study of another experimental treatment (e.g. MSC vs placebo) says
            # nothing about the baseline of a control arm
            ok = False
            labels_s.append(f"excluded: no {'/'.join(treat)} arm ({', '.join(other)}: another experimental treatment)")
        else:
            which = "control" if nt == 0 else "treated"
            if k == 1:
                if nt == 0:
                    labels_s.append("single-arm: baseline only (exchangeable)")
                else:
                    labels_s.append("single-arm: treated arm only, informs m + d via exchangeable baselines")
            else:
                labels_s.append(f"{_arm_word(k)}, {which} arms only: informs the exchangeable baseline model")
        if ok:
            ev = [r["events"] for r in sub]
            nn = [r["n"] for r in sub]
            if k >= 2 and all(e == 0 for e in ev):
                labels_s.append("double-zero: informs tau/d only through the likelihood")
            elif any(e == 0 for e in ev):
                labels_s.append("zero-event arm")
            if k >= 2 and all(e == m for e, m in zip(ev, nn)):
                labels_s.append("all arms 100% events: informs tau/d only through the likelihood")
            elif any(e == m for e, m in zip(ev, nn)):
                labels_s.append("arm with 100% events")
        struct_ok[s] = ok
        usage[s] = {
            "study": s,
            "included": ok,
            "usage": labels_s,
            "n_arms": k,
            "arms": "; ".join(_fmt_arm(r) for r in sub),
            "treated_arms": ", ".join(treated_arms),
            "control_arms": ", ".join(control_arms),
        }
    # arms without known counts (reported, never silently dropped)
    if len(excluded_arms):
        ex = excluded_arms.assign(study=excluded_arms["study"].astype(str), arm=excluded_arms["arm"].astype(str))
        for (s, reason), grp in ex.groupby(["study", "reason"], sort=False):
            arms_txt = ", ".join(grp["arm"])
            if s in usage:
                word = "arm" if len(grp) == 1 else "arms"
                usage[s]["usage"].append(f"{word} {arms_txt} not used: {reason}")
            else:
                u = usage.setdefault(
                    s,
                    {"study": s, "included": False, "usage": [], "n_arms": 0, "arms": "", "treated_arms": "", "control_arms": ""},
                )
                u["usage"].append(f"excluded: {reason} (arms {arms_txt})")
                struct_ok[s] = False

    # ------------------------------------------------------------------ study designs
    designs = _stated_designs(tab)
    for s in studies:
        if struct_ok[s] and designs.get(s) == "":
            usage[s]["usage"].append("design not stated (taken as comparable with the randomised trials)")
    nrs = {s: designs[s] for s in studies if struct_ok[s] and designs.get(s) not in (None, "", "rct")}
    if nrs and nonrandomised == "exclude":
        for s, d in nrs.items():
            struct_ok[s] = False
            usage[s]["included"] = False
            usage[s]["usage"] = [f"excluded: non-randomised ({d}); a randomised-only analysis (nonrandomised='bias' "
                                 "enters it with a bias term)"] + usage[s]["usage"]
        if warn:
            warnings.warn(
                f"{len(nrs)} non-randomised stud{'y' if len(nrs) == 1 else 'ies'} left out of the {outcome} model "
                f"(randomised trials only): {', '.join(f'{s} ({d})' for s, d in nrs.items())}; "
                "nonrandomised='bias' enters them with an explicit bias term",
                UserWarning,
                stacklevel=3,
            )
    elif nrs:
        for s, d in nrs.items():
            usage[s]["usage"].append(f"non-randomised ({d}): bias term design:nonrandomised")

    # ------------------------------------------------------------------ covariate values
    in_model = [s for s in studies if struct_ok[s]]
    any_treated = tab.groupby("study", sort=False)["treated"].any()
    has_treated = {s: bool(any_treated[s]) for s in studies}
    missing: dict[str, list[str]] = {}
    study_vals: dict[str, pd.Series] = {}
    for cov in dict.fromkeys(effect_modifiers + baseline_covariates):
        if cov == "comparator":
            continue
        if cov == "regimen":
            t = tab[tab["treated"]]
            vals = t.groupby("study", sort=False)["regimen"].agg(lambda s: s.isna().any())
            for s in in_model:
                if has_treated[s] and bool(vals.get(s, False)):
                    missing.setdefault(s, []).append("regimen")
            continue
        vals = _study_value(tab, cov)
        study_vals[cov] = vals
        for s in in_model:
            needed = (cov in baseline_covariates) or (cov in effect_modifiers and has_treated[s])
            if needed and _is_missing(vals[s]):
                missing.setdefault(s, []).append(cov)
    if missing:
        for s, covs in missing.items():
            struct_ok[s] = False
            usage[s]["included"] = False
            usage[s]["usage"] = [f"excluded from regression: missing {', '.join(covs)}"] + [
                x for x in usage[s]["usage"] if not x.startswith("excluded")
            ]
        if warn:
            detail = "; ".join(f"{s} ({', '.join(c)})" for s, c in missing.items())
            warnings.warn(
                f"{len(missing)} stud{'y' if len(missing) == 1 else 'ies'} left out of the {outcome} regression "
                f"because of missing covariate values: {detail}",
                UserWarning,
                stacklevel=3,
            )
    in_model = [s for s in studies if struct_ok[s]]
    if not in_model:
        raise ValueError(
            f"no study can enter the {outcome} model "
            + ("(independent baselines need a treated and a control arm in the same study)" if baseline == "independent" else "")
        )
    arms = tab[tab["study"].isin(in_model)].reset_index(drop=True)
    study_index = {s: i for i, s in enumerate(in_model)}
    arm_study = arms["study"].map(study_index).to_numpy(dtype=np.int64)
    treated = arms["treated"].to_numpy(dtype=np.int64)
    all_treated = arms.groupby("study", sort=False)["treated"].all()
    contrast_studies = [s for s in in_model if has_treated[s] and not bool(all_treated[s])]
    if not contrast_studies:
        msg = f"no included study compares {'/'.join(treat)} with a control arm: d is informed only through the exchangeable baselines"
        if warn:
            warnings.warn(msg, UserWarning, stacklevel=3)

    # ------------------------------------------------------------------ transforms
    transforms: dict[str, CovariateTransform] = {}
    x_cols: list[np.ndarray] = []
    x_names: list[str] = []
    effect_studies = [s for s in in_model if has_treated[s]]
    for cov in effect_modifiers:
        if cov == "comparator":
            ctrl = arms[~arms["treated"].astype(bool)]
            if ctrl.empty:
                raise ValueError("effect modifier 'comparator': no control arm among the included studies")
            counts = ctrl.groupby("treatment")["study"].nunique()
            levels = sorted(counts.index)
            if len(levels) < 2:
                raise ValueError(
                    f"effect modifier 'comparator' is constant: every control arm is {levels[0]!r}; it cannot be estimated"
                )
            reference = sorted(levels, key=lambda c: (-counts[c], c))[0]
            for lev in levels:
                if lev == reference:
                    continue
                name = f"comparator:{lev}"
                col = np.where((treated == 0) & (arms["treatment"] == lev).to_numpy(), -1.0, 0.0)
                transforms[f"beta:{name}"] = CovariateTransform(
                    name=name, source="comparator", kind="indicator", role="effect_modifier",
                    level=lev, reference=reference, n_studies=int(counts[lev]),
                )
                x_cols.append(col)
                x_names.append(name)
            continue
        if cov == "regimen":
            reg = arms["regimen"].astype("string")
            ind = (reg == "triple").fillna(False).to_numpy().astype(float)
            col = treated * ind
            t_studies = arms.loc[arms["treated"].astype(bool)]
            vals = (t_studies["regimen"].astype("string") == "triple").fillna(False)
            if vals.nunique() < 2:
                only = "triple" if bool(vals.iloc[0]) else "not triple"
                raise ValueError(f"effect modifier 'regimen' is constant ({only} in every treated arm); it cannot be estimated")
            name = "regimen:triple"
            transforms[f"beta:{name}"] = CovariateTransform(
                name=name, source="regimen", kind="indicator", role="effect_modifier",
                level="triple", reference="duo", n_studies=int(t_studies.loc[vals.to_numpy(), "study"].nunique()),
            )
            x_cols.append(col.astype(float))
            x_names.append(name)
            continue
        tr, xs = _study_transform(cov, study_vals[cov], effect_studies, role="effect_modifier")
        transforms[f"beta:{tr.name}"] = tr
        xi = np.array([xs.get(s, 0.0) for s in in_model], dtype=float)
        x_cols.append(treated * xi[arm_study])
        x_names.append(tr.name)
    bias = [s for s in in_model if s in nrs and has_treated[s]] if nonrandomised == "bias" else []
    if bias:
        is_nrs = np.array([s in bias for s in in_model], dtype=float)
        name = "design:nonrandomised"
        transforms[f"beta:{name}"] = CovariateTransform(
            name=name, source="design", kind="indicator", role="effect_modifier", level="non-randomised",
            reference="rct", n_studies=len(bias),
        )
        x_cols.append(treated * is_nrs[arm_study])
        x_names.append(name)
    X = np.column_stack(x_cols) if x_cols else np.zeros((len(arms), 0))

    z_cols: list[np.ndarray] = []
    z_names: list[str] = []
    for cov in baseline_covariates:
        tr, zs = _study_transform(cov, study_vals[cov], in_model, role="baseline")
        transforms[f"gamma:{tr.name}"] = tr
        z_cols.append(np.array([zs[s] for s in in_model], dtype=float))
        z_names.append(tr.name)
    Z = np.column_stack(z_cols) if z_cols else np.zeros((len(in_model), 0))
    if X.shape[1] > 1 and np.linalg.matrix_rank(X) < X.shape[1] and warn:
        warnings.warn(
            f"effect modifiers {', '.join(x_names)} are collinear among the included studies; "
            "their coefficients are identified only by the prior",
            UserWarning,
            stacklevel=3,
        )

    # ------------------------------------------------------------------ tables
    arms = arms.assign(arm_index=np.arange(len(arms)), study_index=arm_study)
    # every treated x control arm pair of each contrast study, in study order, then
    # treated-arm order, then control-arm order (a merge, not a filter per study)
    cols = ["study", "arm", "treatment", "events", "n", "arm_index"]
    in_c = arms["study"].isin(contrast_studies)
    tmask = arms["treated"].astype(bool).to_numpy()
    tt = pd.DataFrame({c: arms.loc[in_c & tmask, c].to_numpy() for c in cols})  # plain frames: no attrs
    cc = pd.DataFrame({c: arms.loc[in_c & ~tmask, c].to_numpy() for c in cols})
    pairs = tt.merge(cc, on="study", suffixes=("_t", "_c"))
    pos = {st: i for i, st in enumerate(contrast_studies)}
    pairs = pairs.assign(_pos=pairs["study"].map(pos)).sort_values(["_pos", "arm_index_t", "arm_index_c"], kind="stable")
    contrasts_df = pd.DataFrame({
        "study": pairs["study"].to_numpy(dtype=object), "treated_arm": pairs["arm_t"].to_numpy(dtype=object),
        "control_arm": pairs["arm_c"].to_numpy(dtype=object), "control_treatment": pairs["treatment_c"].to_numpy(dtype=object),
        "events_t": pairs["events_t"].to_numpy(dtype=np.int64), "n_t": pairs["n_t"].to_numpy(dtype=np.int64),
        "events_c": pairs["events_c"].to_numpy(dtype=np.int64), "n_c": pairs["n_c"].to_numpy(dtype=np.int64),
        "t_index": pairs["arm_index_t"].to_numpy(dtype=np.int64), "c_index": pairs["arm_index_c"].to_numpy(dtype=np.int64),
    })
    if "comparator" in effect_modifiers:
        for s in in_model:
            u = usage[s]["usage"]
            if u and "control arms" in u[0] and "share baseline" in u[0]:
                u[0] += " (comparator indicators separate them)"
    usage_df = pd.DataFrame(
        [{**u, "usage": "; ".join(u["usage"])} for u in usage.values()],
        columns=["study", "included", "usage", "n_arms", "arms", "treated_arms", "control_arms"],
    )
    return Design(
        outcome=outcome,
        direction=direction,
        treat=tuple(treat),
        baseline=baseline,
        study_ids=in_model,
        arm_ids=arms["arm_id"].tolist(),
        arm_study=arm_study,
        treated=treated,
        events=arms["events"].to_numpy(dtype=np.int64),
        n=arms["n"].to_numpy(dtype=np.int64),
        X_effect=X,
        effect_names=x_names,
        Z_baseline=Z,
        baseline_names=z_names,
        transforms=transforms,
        usage=usage_df,
        contrasts=contrasts_df,
        arms=arms,
        fingerprint=fingerprint,
        excluded_arms=excluded_arms,
    )


def _stated_designs(tab: pd.DataFrame) -> dict[str, str]:
    """``{study: design}`` as the arm table states it ("" when blank); empty without a
    ``design`` column (one pass over the table)."""
    if "design" not in tab.columns:
        return {}
    d = tab.groupby("study", sort=False)["design"].first()
    return {s: v if isinstance(v, str) and v.strip() else "" for s, v in d.items()}


def _arm_word(k: int) -> str:
    return {3: "three-arm", 4: "four-arm", 5: "five-arm"}.get(k, f"{k}-arm")


def _study_transform(
    cov: str, vals: pd.Series, studies: list[str], role: str
) -> tuple[CovariateTransform, dict[str, float]]:
    """Transform of one study-level covariate over ``studies`` (those that need it)."""
    v = vals.reindex(studies)
    if cov == "phase":
        x = (v.astype("string") == "maintenance").astype(float)
        if x.nunique() < 2:
            raise ValueError(f"covariate 'phase' is constant among the {len(studies)} studies used; it cannot be estimated")
        tr = CovariateTransform(
            name="phase:maintenance", source="phase", kind="indicator", role=role,
            level="maintenance", reference="induction (or induction_maintenance)", n_studies=len(studies),
        )
        return tr, dict(zip(studies, x.to_numpy()))
    kind = POPULATION.get(cov, "continuous")
    if kind == "flag":
        x = v.astype("boolean").astype(float)
        if x.nunique() < 2:
            raise ValueError(
                f"covariate {cov!r} is constant ({bool(x.iloc[0])}) among the {len(studies)} studies used; it cannot be estimated"
            )
        tr = CovariateTransform(name=cov, source=cov, kind="binary", role=role, n_studies=len(studies))
        return tr, dict(zip(studies, x.to_numpy()))
    x = pd.to_numeric(v.astype("Float64"), errors="raise").astype(float).to_numpy()
    if len(x) < 2 or not np.std(x) > 0:
        raise ValueError(
            f"covariate {cov!r} is constant among the {len(studies)} studies used; it cannot be centred and scaled or estimated"
        )
    # centred at the mean of the studies in the regression, in the covariate's natural
    # unit (not its SD across these studies: see the module docstring)
    center, scale = float(np.mean(x)), float(NATURAL_UNITS.get(cov, 1.0))
    tr = CovariateTransform(
        name=cov, source=cov, kind="continuous", role=role, center=center, scale=scale,
        unit=UNITS.get(cov, "fraction" if kind == "fraction" else None), n_studies=len(studies),
        lower=float(np.min(x)), upper=float(np.max(x)), scaling=SCALING,
    )
    return tr, dict(zip(studies, (x - center) / scale))
