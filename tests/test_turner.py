"""Turner et al. (2015) heterogeneity priors (bayesln.hierarchy.turner).

Reference values: Turner RM et al., Stat Med 2015;34(6):984-998, Table IV, as
transcribed in two independent R packages that agree cell for cell:
``TurnerEtAlParameters`` in bayesmeta (R/bayesmeta.R, C. Roever) and
``table_tau2_prior(measure = "OR")`` in rnmamod (L. M. Spineli). The
signs/symptoms x pharmacological-vs-placebo cell (-2.06, 1.51) is also quoted, with the
paper's PMID 25475839, in published network meta-analysis code. The general-setting
prior LN(-2.56, 1.74^2) is from p. 993 of the paper (as used by bayesmeta for
``TurnerEtAlPrior(NA)``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from bayesln.hierarchy import turner as T
from bayesln.hierarchy.turner import (
    COMPARISON_TYPES,
    DEFAULT_OUTCOME_TYPE,
    OUTCOME_TYPES,
    TURNER_GENERAL,
    TurnerPrior,
    default_turner_prior,
    turner_prior,
)

# (outcome_type, comparison_type, mu, sigma) from Table IV (see module docstring).
PUBLISHED = [
    ("all_cause_mortality", "pharma_vs_placebo", -3.95, 1.34),
    ("all_cause_mortality", "pharma_vs_pharma", -4.18, 1.41),
    ("all_cause_mortality", "non_pharma_vs_pharma", -2.92, 1.02),
    ("obstetric", "non_pharma_vs_placebo", -3.74, 1.91),
    ("internal_structure", "non_pharma_vs_placebo", -2.93, 1.92),
    ("adverse_events", "pharma_vs_placebo", -1.87, 1.52),
    ("adverse_events", "pharma_vs_pharma", -2.10, 1.58),
    ("infection_new_disease", "pharma_vs_pharma", -2.73, 1.58),
    ("signs_symptoms", "pharma_vs_placebo", -2.06, 1.51),
    ("signs_symptoms", "pharma_vs_pharma", -2.29, 1.58),
    ("pain", "non_pharma_vs_pharma", -0.80, 1.25),
    ("quality_of_life", "non_pharma_vs_non_pharma", -2.10, 1.47),
    ("biological_markers", "pharma_vs_pharma", -2.00, 1.58),
    ("biological_markers", "non_pharma_vs_pharma", -0.74, 1.24),
    ("subjective", "non_pharma_vs_non_pharma", -2.26, 1.45),
]


@pytest.mark.parametrize(("outcome", "comparison", "mu", "sigma"), PUBLISHED)
def test_table_values_match_publication(outcome, comparison, mu, sigma):
    p = turner_prior(outcome, comparison)
    assert (p.mu, p.sigma) == (mu, sigma)
    assert (p.outcome_type, p.comparison_type) == (outcome, comparison)
    assert "10.1002/sim.6381" in p.citation


def test_table_is_complete_16_by_5():
    assert len(OUTCOME_TYPES) == 16
    assert COMPARISON_TYPES == (
        "pharma_vs_placebo",
        "pharma_vs_pharma",
        "non_pharma_vs_placebo",
        "non_pharma_vs_pharma",
        "non_pharma_vs_non_pharma",
    )
    cells = {(o, c): turner_prior(o, c) for o in OUTCOME_TYPES for c in COMPARISON_TYPES}
    assert len(cells) == 80
    for p in cells.values():
        assert -4.2 <= p.mu <= -0.7
        assert 1.0 <= p.sigma <= 1.95


def test_table_structure_guards_transcription():
    # Table IV comes from a model additive on log(tau^2): within every outcome type the
    # comparison types are ordered the same way (lowest heterogeneity for pharma vs
    # pharma, highest for non-pharma vs pharma) and the shift between two comparison types
    # is the same, to rounding, in every row. A mistyped cell breaks one of these.
    for o in OUTCOME_TYPES:
        mus = {c: turner_prior(o, c).mu for c in COMPARISON_TYPES}
        assert mus["pharma_vs_pharma"] == min(mus.values())
        assert mus["non_pharma_vs_pharma"] == max(mus.values())
        base = mus["pharma_vs_placebo"]
        assert base - mus["pharma_vs_pharma"] == pytest.approx(0.235, abs=0.011)
        assert base - mus["non_pharma_vs_placebo"] == pytest.approx(0.22, abs=0.011)
        assert mus["non_pharma_vs_pharma"] - base == pytest.approx(1.03, abs=0.011)
        assert mus["non_pharma_vs_non_pharma"] - base == pytest.approx(0.445, abs=0.011)


def test_general_setting_prior():
    assert (TURNER_GENERAL.mu, TURNER_GENERAL.sigma) == (-2.56, 1.74)


@pytest.mark.parametrize(("outcome", "comparison", "mu", "sigma"), PUBLISHED[:5])
def test_tau_quantiles_closed_form(outcome, comparison, mu, sigma):
    p = turner_prior(outcome, comparison)
    # median of tau = exp(mu / 2)
    assert p.tau_quantiles(0.5) == pytest.approx(math.exp(mu / 2), rel=1e-12)
    q = np.array([0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975])
    z = stats.norm.ppf(q)
    expected = np.exp((mu + sigma * z) / 2)
    np.testing.assert_allclose(p.tau_quantiles(q), expected, rtol=1e-12)
    np.testing.assert_allclose(p.tau2_quantiles(q), expected**2, rtol=1e-12)
    # tau ~ LogNormal(mu/2, sigma/2)
    lognorm = stats.lognorm(s=sigma / 2, scale=math.exp(mu / 2))
    np.testing.assert_allclose(p.tau_quantiles(q), lognorm.ppf(q), rtol=1e-10)
    assert (p.tau_mu, p.tau_sigma) == (mu / 2, sigma / 2)


def test_tau_quantiles_known_number_and_shapes():
    # all-cause mortality, pharma vs placebo: exp(-3.95/2) = 0.138761...
    p = turner_prior("all_cause_mortality", "pharma_vs_placebo")
    assert float(p.tau_quantiles(0.5)) == pytest.approx(0.1387613, abs=5e-8)
    assert np.shape(p.tau_quantiles(0.5)) == ()
    assert p.tau_quantiles([[0.1, 0.9]]).shape == (1, 2)
    lo, hi = p.tau_quantiles([0.0, 1.0])
    assert lo == 0.0 and np.isinf(hi)
    assert np.all(np.diff(p.tau_quantiles(np.linspace(0.01, 0.99, 50))) > 0)


@pytest.mark.parametrize("bad", [-0.1, 1.5, [0.5, 2.0], float("nan")])
def test_tau_quantiles_rejects_bad_probabilities(bad):
    p = turner_prior("pain", "pharma_vs_pharma")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        p.tau_quantiles(bad)


def test_paper_labels_are_accepted():
    a = turner_prior(
        "Signs / symptoms reflecting continuation / end of condition",
        "Pharmacological vs. placebo / control",
    )
    b = turner_prior("signs_symptoms", "pharma_vs_placebo")
    assert a == b
    assert turner_prior("biological markers (dichotomised)", "PHARMA_VS_PHARMA").mu == -2.00
    assert a.outcome_label.startswith("Signs / symptoms")
    assert a.comparison_label == "Pharmacological vs. placebo / control"


def test_unknown_outcome_type_lists_allowed():
    with pytest.raises(ValueError) as exc:
        turner_prior("renal_response", "pharma_vs_pharma")
    msg = str(exc.value)
    assert "unknown Turner et al. (2015) outcome type 'renal_response'" in msg
    for key in OUTCOME_TYPES:
        assert key in msg


def test_unknown_comparison_type_lists_allowed():
    with pytest.raises(ValueError) as exc:
        turner_prior("pain", "non_pharma")
    msg = str(exc.value)
    assert "comparison type 'non_pharma'" in msg
    for key in COMPARISON_TYPES:
        assert key in msg


def test_non_string_key_raises_value_error():
    with pytest.raises(ValueError, match="outcome type None"):
        turner_prior(None, "pharma_vs_pharma")  # type: ignore[arg-type]


def test_default_mapping_covers_bayesln_outcomes():
    from bayesln.vocab import OUTCOMES

    assert set(DEFAULT_OUTCOME_TYPE) == set(OUTCOMES)
    assert set(DEFAULT_OUTCOME_TYPE.values()) <= set(OUTCOME_TYPES)
    assert DEFAULT_OUTCOME_TYPE["death"] == "all_cause_mortality"
    assert DEFAULT_OUTCOME_TYPE["serious_adverse_event"] == "adverse_events"
    assert DEFAULT_OUTCOME_TYPE["severe_infection"] == "infection_new_disease"
    assert DEFAULT_OUTCOME_TYPE["total_response"] == "signs_symptoms"
    assert T.DEFAULT_COMPARISON_TYPE == "pharma_vs_pharma"
    p = default_turner_prior("total_response")
    assert (p.mu, p.sigma) == (-2.29, 1.58)
    with pytest.raises(ValueError, match="no default Turner"):
        default_turner_prior("headache")


def test_prior_is_frozen_and_validated():
    p = turner_prior("pain", "pharma_vs_pharma")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.mu = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="sigma"):
        TurnerPrior("pain", "pharma_vs_pharma", -2.0, 0.0, "x")
    assert "tau median" in p.describe()
