"""Empirical heterogeneity priors of Turner et al. (2015) for log odds ratios.

Reference
---------
Turner RM, Jackson D, Wei Y, Thompson SG, Higgins JPT. Predictive distributions for
between-study heterogeneity and simple methods for their application in Bayesian
meta-analysis. *Statistics in Medicine* 2015;34(6):984-998. doi:10.1002/sim.6381.

From 14,886 binary-outcome meta-analyses in the Cochrane Database of Systematic Reviews
the paper derives predictive distributions for the between-study variance tau^2 of log
odds ratios in a new meta-analysis, in 80 settings (16 outcome types x 5 intervention
comparison types), **Table IV**:

    log(tau^2) ~ Normal(mu, sigma^2)      i.e. tau^2 ~ LogNormal(mu, sigma^2)

so tau = sqrt(tau^2) ~ LogNormal(mu / 2, (sigma / 2)^2) and the median of tau is
exp(mu / 2). ``sigma`` below is the standard deviation (Table IV prints it as sigma^2
with sigma given, e.g. "-3.95, 1.34^2"). The priors apply on the log odds-ratio scale only.

The 80 (mu, sigma) pairs below were transcribed from Table IV as reproduced in two
independent R sources, which agree value for value: ``TurnerEtAlParameters`` in the CRAN
package bayesmeta (C. Roever; ``R/bayesmeta.R``, "see Tab.IV") and ``table_tau2_prior()``
in the CRAN package rnmamod (L. M. Spineli). The "general healthcare setting" prior
(Turner et al. 2015, p. 993; all settings pooled) is :data:`TURNER_GENERAL`.

Machine keys
------------
Comparison types (columns of Table IV):

============================ ===========================================
key                          Turner et al. (2015) label
============================ ===========================================
``pharma_vs_placebo``        Pharmacological vs. placebo / control
``pharma_vs_pharma``         Pharmacological vs. pharmacological
``non_pharma_vs_placebo``    Non-pharmacological vs. placebo / control
``non_pharma_vs_pharma``     Non-pharmacological vs. pharmacological
``non_pharma_vs_non_pharma`` Non-pharmacological vs. non-pharmacological
============================ ===========================================

The paper has five comparison columns; there is no single "non-pharmacological" column
(that grouping is Rhodes et al. 2015's, for continuous outcomes).

Outcome types (rows of Table IV): see :data:`OUTCOME_LABELS`. Either the key or the
paper's label (case-insensitive) is accepted by :func:`turner_prior`.

bayesln defaults (:data:`DEFAULT_OUTCOME_TYPE`, :data:`DEFAULT_COMPARISON_TYPE`)
--------------------------------------------------------------------------------
* Renal response (complete / partial / total) -> ``signs_symptoms``. Complete and
  partial renal response in lupus nephritis trials is *remission* of the nephritis:
  the outcome says whether the condition has ended (or continues), which is the
  definition of Turner's "signs / symptoms reflecting continuation / end of condition"
  category (from Davey et al. 2011's outcome classification: cure, remission, relapse,
  persistence). The remission criteria happen to be written as laboratory thresholds
  (proteinuria, serum creatinine / eGFR, urinary sediment), so "biological markers
  (dichotomized)" is the natural sensitivity analysis; its priors are slightly wider
  (pharma vs pharma: mu -2.00 vs -2.29, same sigma 1.58).
* leucopenia, hyperglycaemia, creatinine_rise, serious_adverse_event -> ``adverse_events``:
  each is collected and reported as a treatment-emergent adverse event (drug toxicity),
  even where it is defined from a laboratory value.
* infection, severe_infection -> ``infection_new_disease``.
* death -> ``all_cause_mortality``.
* Tacrolimus vs cyclophosphamide / mycophenolate (each on a steroid background) is
  ``pharma_vs_pharma``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from scipy.special import ndtri

__all__ = [
    "CITATION",
    "COMPARISON_LABELS",
    "COMPARISON_TYPES",
    "DEFAULT_COMPARISON_TYPE",
    "DEFAULT_OUTCOME_TYPE",
    "OUTCOME_LABELS",
    "OUTCOME_TYPES",
    "TURNER_GENERAL",
    "TurnerPrior",
    "default_turner_prior",
    "turner_prior",
]

CITATION = (
    "Turner RM, Jackson D, Wei Y, Thompson SG, Higgins JPT. Predictive distributions for "
    "between-study heterogeneity and simple methods for their application in Bayesian "
    "meta-analysis. Stat Med 2015;34(6):984-998. doi:10.1002/sim.6381"
)

#: Comparison-type key -> label of the column in Turner et al. (2015), Table IV.
COMPARISON_LABELS = MappingProxyType(
    {
        "pharma_vs_placebo": "Pharmacological vs. placebo / control",
        "pharma_vs_pharma": "Pharmacological vs. pharmacological",
        "non_pharma_vs_placebo": "Non-pharmacological vs. placebo / control",
        "non_pharma_vs_pharma": "Non-pharmacological vs. pharmacological",
        "non_pharma_vs_non_pharma": "Non-pharmacological vs. non-pharmacological",
    }
)
COMPARISON_TYPES: tuple[str, ...] = tuple(COMPARISON_LABELS)

#: Outcome-type key -> label of the row in Turner et al. (2015), Table IV.
OUTCOME_LABELS = MappingProxyType(
    {
        "all_cause_mortality": "All-cause mortality",
        "obstetric": "Obstetric outcomes",
        "cause_specific_mortality": (
            "Cause-specific mortality / major morbidity event / composite "
            "(mortality or morbidity)"
        ),
        "resource_use": "Resource use / hospital stay / process",
        "surgical_device": "Surgical / device related success / failure",
        "withdrawals": "Withdrawals / drop-outs",
        "internal_structure": "Internal / structure-related outcomes",
        "general_physical_health": "General physical health indicators",
        "adverse_events": "Adverse events",
        "infection_new_disease": "Infection / onset of new disease",
        "signs_symptoms": "Signs / symptoms reflecting continuation / end of condition",
        "pain": "Pain",
        "quality_of_life": "Quality of life / functioning (dichotomized)",
        "mental_health": "Mental health indicators",
        "biological_markers": "Biological markers (dichotomized)",
        "subjective": "Subjective outcomes (various)",
    }
)
OUTCOME_TYPES: tuple[str, ...] = tuple(OUTCOME_LABELS)

# Table IV: per outcome type, (mu, sigma) of log(tau^2) for the five comparison types in
# COMPARISON_TYPES order: pharma_vs_placebo, pharma_vs_pharma, non_pharma_vs_placebo,
# non_pharma_vs_pharma, non_pharma_vs_non_pharma.
_TABLE_IV: dict[str, tuple[tuple[float, float], ...]] = {
    "all_cause_mortality": (
        (-3.95, 1.34), (-4.18, 1.41), (-4.17, 1.55), (-2.92, 1.02), (-3.50, 1.26)),
    "obstetric": (
        (-3.52, 1.74), (-3.75, 1.79), (-3.74, 1.91), (-2.49, 1.50), (-3.08, 1.68)),
    "cause_specific_mortality": (
        (-3.71, 1.74), (-3.95, 1.79), (-3.93, 1.91), (-2.68, 1.51), (-3.27, 1.68)),
    "resource_use": (
        (-2.34, 1.74), (-2.58, 1.79), (-2.56, 1.91), (-1.31, 1.50), (-1.90, 1.68)),
    "surgical_device": (
        (-2.14, 1.74), (-2.37, 1.79), (-2.36, 1.91), (-1.11, 1.50), (-1.69, 1.68)),
    "withdrawals": (
        (-2.99, 1.74), (-3.23, 1.79), (-3.21, 1.91), (-1.96, 1.51), (-2.55, 1.68)),
    "internal_structure": (
        (-2.71, 1.74), (-2.94, 1.79), (-2.93, 1.92), (-1.67, 1.51), (-2.26, 1.68)),
    "general_physical_health": (
        (-2.29, 1.53), (-2.53, 1.58), (-2.51, 1.72), (-1.26, 1.25), (-1.85, 1.46)),
    "adverse_events": (
        (-1.87, 1.52), (-2.10, 1.58), (-2.10, 1.71), (-0.84, 1.24), (-1.43, 1.45)),
    "infection_new_disease": (
        (-2.49, 1.52), (-2.73, 1.58), (-2.71, 1.71), (-1.46, 1.24), (-2.05, 1.45)),
    "signs_symptoms": (
        (-2.06, 1.51), (-2.29, 1.58), (-2.28, 1.71), (-1.03, 1.24), (-1.61, 1.45)),
    "pain": (
        (-1.83, 1.52), (-2.06, 1.58), (-2.05, 1.71), (-0.80, 1.25), (-1.38, 1.45)),
    "quality_of_life": (
        (-2.54, 1.54), (-2.78, 1.60), (-2.77, 1.73), (-1.51, 1.27), (-2.10, 1.47)),
    "mental_health": (
        (-2.12, 1.53), (-2.35, 1.60), (-2.34, 1.72), (-1.09, 1.27), (-1.67, 1.47)),
    "biological_markers": (
        (-1.77, 1.52), (-2.00, 1.58), (-1.99, 1.71), (-0.74, 1.24), (-1.33, 1.45)),
    "subjective": (
        (-2.70, 1.52), (-2.93, 1.58), (-2.92, 1.71), (-1.67, 1.25), (-2.26, 1.45)),
}

#: bayesln outcome name (``bayesln.vocab.OUTCOMES``) -> Turner outcome type (see module
#: docstring for the reasons).
DEFAULT_OUTCOME_TYPE = MappingProxyType(
    {
        "complete_response": "signs_symptoms",
        "partial_response": "signs_symptoms",
        "total_response": "signs_symptoms",
        "leucopenia": "adverse_events",
        "hyperglycaemia": "adverse_events",
        "creatinine_rise": "adverse_events",
        "serious_adverse_event": "adverse_events",
        "infection": "infection_new_disease",
        "severe_infection": "infection_new_disease",
        "death": "all_cause_mortality",
    }
)

#: Tacrolimus vs cyclophosphamide / mycophenolate: two drug regimens.
DEFAULT_COMPARISON_TYPE = "pharma_vs_pharma"


@dataclass(frozen=True)
class TurnerPrior:
    """Log-normal predictive distribution for tau^2: ``log(tau^2) ~ Normal(mu, sigma)``.

    ``sigma`` is a standard deviation. Equivalently ``tau ~ LogNormal(mu/2, sigma/2)``
    (see :attr:`tau_mu`, :attr:`tau_sigma`, e.g. ``pm.LogNormal("tau", mu=p.tau_mu,
    sigma=p.tau_sigma)``).
    """

    outcome_type: str
    comparison_type: str
    mu: float
    sigma: float
    citation: str = CITATION

    def __post_init__(self) -> None:
        if not np.isfinite(self.mu):
            raise ValueError(f"mu must be finite, got {self.mu!r}")
        if not (np.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be finite and > 0, got {self.sigma!r}")

    @property
    def tau_mu(self) -> float:
        """Location of log(tau): mu / 2."""
        return self.mu / 2.0

    @property
    def tau_sigma(self) -> float:
        """Scale of log(tau): sigma / 2."""
        return self.sigma / 2.0

    @property
    def outcome_label(self) -> str:
        return OUTCOME_LABELS.get(self.outcome_type, self.outcome_type)

    @property
    def comparison_label(self) -> str:
        return COMPARISON_LABELS.get(self.comparison_type, self.comparison_type)

    def tau2_quantiles(self, q) -> np.ndarray:
        """Quantiles of tau^2: exp(mu + sigma * Phi^-1(q))."""
        z = ndtri(_probabilities(q))
        return np.exp(self.mu + self.sigma * z)

    def tau_quantiles(self, q) -> np.ndarray:
        """Quantiles of tau = sqrt(tau^2): exp((mu + sigma * Phi^-1(q)) / 2).

        ``q`` is a probability or an array of them in [0, 1]; the result has its shape
        (0 -> 0, 1 -> inf).
        """
        return np.sqrt(self.tau2_quantiles(q))

    def describe(self) -> str:
        lo, med, hi = self.tau_quantiles([0.025, 0.5, 0.975])
        return (
            f"log(tau^2) ~ N({self.mu:.2f}, {self.sigma:.2f}^2) "
            f"[{self.outcome_label}; {self.comparison_label}]: "
            f"tau median {med:.3f}, 95% interval {lo:.3f} to {hi:.3f}"
        )


def _probabilities(q) -> np.ndarray:
    arr = np.asarray(q, dtype=float)
    if np.any(np.isnan(arr)) or np.any((arr < 0) | (arr > 1)):
        raise ValueError(f"quantile probabilities must lie in [0, 1], got {q!r}")
    return arr


def _normalise(value: str) -> str:
    text = str(value).lower().replace("dichotomised", "dichotomized")
    return "".join(ch for ch in text if ch not in ". \t\n-_")


def _lookup(labels) -> dict[str, str]:
    """Normalised key and normalised paper label -> key."""
    table = {_normalise(k): k for k in labels}
    table.update({_normalise(v): k for k, v in labels.items()})
    return table


_OUTCOME_LOOKUP = _lookup(OUTCOME_LABELS)
_COMPARISON_LOOKUP = _lookup(COMPARISON_LABELS)


def _resolve(value: str, lookup: dict[str, str], what: str, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str):
        key = lookup.get(_normalise(value))
        if key is not None:
            return key
    raise ValueError(
        f"unknown Turner et al. (2015) {what} {value!r}; allowed: {', '.join(allowed)}"
    )


def turner_prior(outcome_type: str, comparison_type: str) -> TurnerPrior:
    """The Turner et al. (2015, Table IV) prior for one outcome type x comparison type.

    Both arguments take a machine key (:data:`OUTCOME_TYPES`, :data:`COMPARISON_TYPES`)
    or the paper's label (case-insensitive). Unknown values raise ``ValueError`` listing
    the allowed keys.

    >>> p = turner_prior("signs_symptoms", "pharma_vs_pharma")
    >>> (p.mu, p.sigma)
    (-2.29, 1.58)
    """
    outcome = _resolve(outcome_type, _OUTCOME_LOOKUP, "outcome type", OUTCOME_TYPES)
    comparison = _resolve(
        comparison_type, _COMPARISON_LOOKUP, "comparison type", COMPARISON_TYPES
    )
    mu, sigma = _TABLE_IV[outcome][COMPARISON_TYPES.index(comparison)]
    return TurnerPrior(outcome, comparison, mu, sigma, CITATION)


def default_turner_prior(
    outcome: str, comparison_type: str = DEFAULT_COMPARISON_TYPE
) -> TurnerPrior:
    """The prior bayesln uses by default for a bayesln outcome name (e.g. ``"death"``)."""
    if outcome not in DEFAULT_OUTCOME_TYPE:
        raise ValueError(
            f"no default Turner et al. (2015) outcome type for bayesln outcome "
            f"{outcome!r}; known: {', '.join(DEFAULT_OUTCOME_TYPE)} "
            f"(or call turner_prior() with one of: {', '.join(OUTCOME_TYPES)})"
        )
    return turner_prior(DEFAULT_OUTCOME_TYPE[outcome], comparison_type)


#: Turner et al. (2015), p. 993: predictive distribution for a meta-analysis in a general
#: healthcare setting (no particular outcome or comparison type).
TURNER_GENERAL = TurnerPrior("any", "any", -2.56, 1.74, CITATION)
