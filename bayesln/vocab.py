"""Controlled vocabularies shared by every layer.

Users can extend the outcome and treatment vocabularies per call
(``read_trials(..., extra_outcomes=..., extra_treatments=...)``); the lists here are
what the bundled data and the shipped specs use.
"""

from __future__ import annotations

from types import MappingProxyType

#: Outcomes and their direction. "benefit": more events is better (renal response);
#: "harm": more events is worse (adverse events). The direction decides which side
#: "the treatment helps" means (OR > 1 for benefits, OR < 1 for harms).
OUTCOMES = MappingProxyType(
    {
        "complete_response": "benefit",
        "partial_response": "benefit",
        "total_response": "benefit",  # complete or partial renal response
        "leucopenia": "harm",
        "infection": "harm",
        "severe_infection": "harm",
        "hyperglycaemia": "harm",
        "creatinine_rise": "harm",
        "serious_adverse_event": "harm",
        "death": "harm",
    }
)

#: Efficacy outcomes are counted on the efficacy denominator (n_analysed); the others on
#: the safety set (n_safety) when a trial reports one.
EFFICACY_OUTCOMES = frozenset(k for k, v in OUTCOMES.items() if v == "benefit")

#: Treatment labels (one per arm). Human-readable meaning in the schema.
TREATMENTS = MappingProxyType(
    {
        "tac": "tacrolimus-based regimen",
        "ivcy": "intravenous cyclophosphamide",
        "mmf": "mycophenolate mofetil",
        "aza": "azathioprine",
        "placebo": "placebo (on top of background therapy)",
        "msc": "mesenchymal stem cells",
        "cyclosporine": "ciclosporin",
        "voclosporin": "voclosporin",
        "rituximab": "rituximab",
        "belimumab": "belimumab",
        "standard_care": "standard of care / other background therapy",
    }
)

#: Regimen of an arm: TAC + steroids (duo), TAC + MMF + steroids (triple), a comparator
#: arm (control) or a non-TAC experimental arm (other).
REGIMENS = ("duo", "triple", "control", "other")
DESIGNS = ("rct", "cohort", "case_control", "single_arm")
PHASES = ("induction", "maintenance", "induction_maintenance")

#: Covariates used by the models: their kind decides the transform (fractions and
#: continuous values are centred and scaled, flags are 0/1).
POPULATION_COVARIATES = MappingProxyType(
    {
        "asian_fraction": "fraction",
        "class_v_fraction": "fraction",
        "class_iii_iv_fraction": "fraction",
        "female_fraction": "fraction",
        "mean_age": "continuous",
        "pediatric": "flag",
        "refractory": "flag",
    }
)


def treatment_node(treatment: str, regimen: str | None) -> str:
    """Network node of an arm: TAC arms split by regimen (``tac_duo``, ``tac_triple``);
    every other arm is its treatment label."""
    if treatment == "tac" and regimen in ("duo", "triple"):
        return f"tac_{regimen}"
    return treatment


def outcome_direction(outcome: str) -> str:
    """'benefit' or 'harm' (unknown user outcomes default to 'harm' only when named so)."""
    try:
        return OUTCOMES[outcome]
    except KeyError:
        raise ValueError(
            f"unknown outcome {outcome!r}; known outcomes: {', '.join(OUTCOMES)}"
        ) from None


#: the covariates a core model takes as effect modifiers and as baseline covariates (the
#: population covariates and the publication year, plus regimen / phase / comparator for
#: the effect and phase for the baseline); the spec validates against these without
#: importing the model layer (bayesln.hierarchy.design uses the same lists)
EFFECT_MODIFIERS: tuple[str, ...] = tuple(POPULATION_COVARIATES) + ("year", "regimen", "phase", "comparator")
BASELINE_COVARIATES: tuple[str, ...] = tuple(POPULATION_COVARIATES) + ("year", "phase")
