"""Design of the core model: arms, studies, usage table, covariate transforms, error
messages. No MCMC here."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesln
from bayesln.hierarchy import EFFECT_MODIFIERS, build_design


def arms(rows, **study_cols):
    """Arm table from (study, arm, treatment, events, n[, regimen]) tuples."""
    recs = []
    for r in rows:
        s, a, t, e, n = r[:5]
        reg = r[5] if len(r) > 5 else ("duo" if t == "tac" else "control")
        recs.append({"study": s, "arm": a, "treatment": t, "regimen": reg, "events": e, "n": n})
    df = pd.DataFrame(recs)
    for col, mapping in study_cols.items():
        df[col] = df["study"].map(mapping)
    return df


EDGE = arms(
    [
        ("two", "tac", "tac", 12, 20), ("two", "ivcy", "ivcy", 8, 20),
        ("zero1", "tac", "tac", 0, 25), ("zero1", "ivcy", "ivcy", 3, 25),
        ("dz", "tac", "tac", 0, 30), ("dz", "ivcy", "ivcy", 0, 30),
        ("single", "tac", "tac", 17, 19),
        ("three", "tac", "tac", 17, 27), ("three", "mmf", "mmf", 18, 27), ("three", "ivcy", "ivcy", 15, 28),
    ]
)


@pytest.fixture(scope="module")
def td():
    return bayesln.load_dataset("tacrolimus_ln")


def usage_of(design, study):
    row = design.usage.set_index("study").loc[study]
    return bool(row["included"]), row["usage"]


# ----------------------------------------------------------------------------- usage
def test_bundled_total_response_independent(td):
    d = build_design(td, "total_response")
    # brief: the bundled total-response arms (liu2015 151/181 vs 114/181, ...)
    assert d.study_ids == ["liu2015", "bao2008", "chen2012", "zheng2022", "zhang2006_iv", "zhang_v_iv", "amudalapalli2025"]
    assert d.arm_ids[:2] == ["liu2015:tac", "liu2015:ivcy"]
    i = d.arm_ids.index("liu2015:tac")
    assert (d.events[i], d.n[i], d.treated[i]) == (151, 181, 1)
    i = d.arm_ids.index("amudalapalli2025:mmf")
    assert (d.events[i], d.n[i], d.treated[i]) == (18, 27, 0)
    assert usage_of(d, "liu2015") == (True, "two-arm contrast")
    inc, u = usage_of(d, "amudalapalli2025")
    assert inc and u == "three-arm: 2 control arms (mmf, ivcy) share baseline"
    for s in ("fei2013", "tanaka_tac"):
        assert usage_of(d, s) == (False, "excluded: single-arm study needs exchangeable baselines")
    # studies without total-response counts are listed, not dropped
    inc, u = usage_of(d, "mok2016")
    assert not inc and "total_response not reported" in u
    # the three-arm trial's control arms share the study baseline
    s3 = d.study_ids.index("amudalapalli2025")
    assert (d.arm_study[d.arms["study"].to_numpy() == "amudalapalli2025"] == s3).all()


def test_bundled_exchangeable_uses_single_arm_studies(td):
    # single-arm series are non-randomised: entered only with their bias term (by default they
    # are left out, tests/test_nonrandomised.py)
    d = build_design(td, "total_response", baseline="exchangeable", nonrandomised="bias")
    assert "fei2013" in d.study_ids and "tanaka_tac" in d.study_ids
    inc, u = usage_of(d, "fei2013")
    assert inc and u.startswith("single-arm:")
    # an MSC study has no TAC arm and its experimental arm is no baseline
    inc, u = usage_of(d, "gu2014")
    assert not inc and "another experimental treatment" in u


def test_edge_cases_usage():
    d = build_design(EDGE, "total_response", baseline="exchangeable")
    assert usage_of(d, "two") == (True, "two-arm contrast")
    assert usage_of(d, "zero1") == (True, "two-arm contrast; zero-event arm")
    assert usage_of(d, "dz") == (True, "two-arm contrast; double-zero: informs tau/d only through the likelihood")
    inc, u = usage_of(d, "single")
    assert inc and u.startswith("single-arm")
    assert usage_of(d, "three") == (True, "three-arm: 2 control arms (mmf, ivcy) share baseline")
    # no continuity correction: the zero counts enter as they are
    assert d.events[d.arm_ids.index("dz:tac")] == 0
    d2 = build_design(EDGE, "total_response")
    assert usage_of(d2, "single") == (False, "excluded: single-arm study needs exchangeable baselines")
    assert "single" not in d2.study_ids
    # contrasts: one per (treated arm, control arm) pair
    c = d2.contrasts
    assert list(c.loc[c["study"] == "three", "control_arm"]) == ["mmf", "ivcy"]
    d3 = build_design(EDGE, "total_response", effect_modifiers=["comparator"])
    assert usage_of(d3, "three")[1] == "three-arm: 2 control arms (mmf, ivcy) share baseline (comparator indicators separate them)"


def test_two_treated_arms_share_delta():
    df = arms([("s", "tac_lo", "tac", 5, 20), ("s", "tac_hi", "tac", 8, 20), ("s", "ivcy", "ivcy", 4, 20),
               ("t", "tac", "tac", 9, 20), ("t", "ivcy", "ivcy", 4, 20)])
    d = build_design(df, "total_response")
    assert usage_of(d, "s") == (True, "three-arm: 2 treated arms (tac_lo, tac_hi) share delta_i")


def test_long_format_and_unknown_counts():
    df = EDGE.assign(outcome="total_response")
    extra = pd.DataFrame(
        [{"study": "two", "arm": "tac", "treatment": "tac", "regimen": "duo", "events": 3, "n": 20, "outcome": "infection"},
         {"study": "gap", "arm": "tac", "treatment": "tac", "regimen": "duo", "events": None, "n": None, "outcome": "total_response"},
         {"study": "gap", "arm": "ivcy", "treatment": "ivcy", "regimen": "control", "events": None, "n": None, "outcome": "total_response"}]
    )
    d = build_design(pd.concat([df, extra], ignore_index=True), "total_response")
    assert d.events[d.arm_ids.index("two:tac")] == 12  # the infection row is ignored
    inc, u = usage_of(d, "gap")
    assert not inc and "count unknown" in u
    with pytest.raises(ValueError, match="outcome 'death' not in the data"):
        build_design(df, "death")


# ----------------------------------------------------------------------------- covariates
AGES = {"a": 20.0, "b": 30.0, "c": 40.0, "d": 50.0}
COV = arms(
    [(s, "tac", "tac", 10 + k, 30, "triple" if s in "ab" else "duo") for k, s in enumerate("abcd")]
    + [(s, "ivcy" if s != "d" else "mmf", "ivcy" if s != "d" else "mmf", 8, 30) for s in "abcd"],
    mean_age=AGES,
    asian_fraction={"a": 1.0, "b": 0.5, "c": None, "d": 0.0},
    pediatric={"a": True, "b": False, "c": False, "d": True},
    phase={"a": "induction", "b": "induction", "c": "maintenance", "d": "induction"},
)


def test_continuous_covariate_centred_in_its_natural_unit():
    """mean_age: centred at the mean of the study values, per 10 years (its natural unit),
    never per SD across the trials; the fitted range is stored with the transform."""
    d = build_design(COV, "total_response", effect_modifiers=["mean_age"])
    tr = d.transforms["beta:mean_age"]
    ages = np.array(list(AGES.values()))
    # independent reference: numpy mean, min and max of the four study values; the unit is
    # the documented 10 years (not the SD, 12.9 here)
    assert tr.kind == "continuous" and tr.center == pytest.approx(ages.mean()) and tr.scale == 10.0
    assert (tr.lower, tr.upper) == (ages.min(), ages.max()) and tr.scaling == "natural_unit"
    x = d.X_effect[:, 0]
    for s, age in AGES.items():
        t = d.arm_ids.index(f"{s}:tac")
        assert x[t] == pytest.approx((age - 35.0) / 10.0)
    # control arms carry no effect-modifier term
    assert (x[d.treated == 0] == 0).all()
    assert tr.apply([35.0]) == pytest.approx([0.0])
    assert tr.apply([45.0]) == pytest.approx([1.0])  # one unit = ten years
    assert tr.clip(12.0) == 20.0 and tr.clip(70.0) == 50.0 and tr.clip(33.0) == 33.0
    assert "per 10 years of mean_age" in tr.describe() and "1 SD" not in tr.describe()


def test_fraction_covariate_is_per_full_switch_of_the_population():
    """A fraction's coefficient is per 0 -> 1 (scale 1), centred at the study mean: with
    class V fractions 0, 0, 0.19 the design column is x - 0.0633, not (x - mean) / SD."""
    df = COV.assign(class_v_fraction=COV["study"].map({"a": 0.0, "b": 0.0, "c": 0.19, "d": 0.0}))
    d = build_design(df, "total_response", effect_modifiers=["class_v_fraction"], baseline="exchangeable",
                     baseline_covariates=["class_v_fraction"])
    for key in ("beta:class_v_fraction", "gamma:class_v_fraction"):
        tr = d.transforms[key]
        assert tr.scale == 1.0 and tr.center == pytest.approx(0.19 / 4) and (tr.lower, tr.upper) == (0.0, 0.19)
        assert "full switch of the population (0 -> 1) of class_v_fraction" in tr.describe()
    x = pd.Series(d.X_effect[:, 0], index=d.arm_ids)
    assert x["c:tac"] == pytest.approx(0.19 - 0.0475) and x["a:tac"] == pytest.approx(-0.0475)
    assert d.Z_baseline[:, 0] == pytest.approx(np.array([-0.0475, -0.0475, 0.1425, -0.0475]))


def test_categorical_transforms_serialise_as_before():
    """0/1 transforms carry no range or scaling keys: their JSON (stored in every run's
    idata) is byte for byte what it was before natural units, so runs of categorical-only
    specs keep loading. Reference: the JSON a categorical run wrote before the change."""
    import json

    d = build_design(COV, "total_response", effect_modifiers=["regimen", "phase"])
    before = {"beta:phase:maintenance": {"center": 0.0, "kind": "indicator", "level": "maintenance", "n_studies": 4,
                                         "name": "phase:maintenance", "reference": "induction (or induction_maintenance)",
                                         "role": "effect_modifier", "scale": 1.0, "source": "phase", "unit": None},
              "beta:regimen:triple": {"center": 0.0, "kind": "indicator", "level": "triple", "n_studies": 2,
                                      "name": "regimen:triple", "reference": "duo", "role": "effect_modifier",
                                      "scale": 1.0, "source": "regimen", "unit": None}}
    assert json.loads(d.transforms_json()) == before


def test_binary_and_indicator_covariates():
    d = build_design(COV, "total_response", effect_modifiers=["pediatric", "regimen", "comparator", "phase"])
    assert d.effect_names == ["pediatric", "regimen:triple", "comparator:mmf", "phase:maintenance"]
    X = pd.DataFrame(d.X_effect, index=d.arm_ids, columns=d.effect_names)
    assert X.loc["a:tac", "pediatric"] == 1 and X.loc["b:tac", "pediatric"] == 0  # not scaled
    assert d.transforms["beta:pediatric"].kind == "binary"
    assert X.loc["a:tac", "regimen:triple"] == 1 and X.loc["c:tac", "regimen:triple"] == 0
    # comparator indicators sit on the control arm with a minus sign (reference = ivcy)
    assert d.transforms["beta:comparator:mmf"].reference == "ivcy"
    assert X.loc["d:mmf", "comparator:mmf"] == -1 and X.loc["d:tac", "comparator:mmf"] == 0
    assert X.loc["a:ivcy", "comparator:mmf"] == 0
    assert X.loc["c:tac", "phase:maintenance"] == 1 and X.loc["c:ivcy", "phase:maintenance"] == 0


def test_missing_covariate_excludes_study_with_warning():
    with pytest.warns(UserWarning, match=r"c \(asian_fraction\)"):
        d = build_design(COV, "total_response", effect_modifiers=["asian_fraction"])
    assert "c" not in d.study_ids
    assert usage_of(d, "c") == (False, "excluded from regression: missing asian_fraction; two-arm contrast")
    # centred over the studies actually in the regression (a, b, d), never zero-filled
    assert d.transforms["beta:asian_fraction"].center == pytest.approx(0.5)
    assert d.transforms["beta:asian_fraction"].n_studies == 3


def test_baseline_covariates(td):
    d = build_design(COV, "total_response", baseline="exchangeable", baseline_covariates=["mean_age"])
    assert d.baseline_names == ["mean_age"] and d.Z_baseline.shape == (4, 1)
    assert d.Z_baseline[:, 0].mean() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="baseline covariates need exchangeable baselines"):
        build_design(COV, "total_response", baseline_covariates=["mean_age"])
    with pytest.raises(ValueError, match="unknown baseline covariate"):
        build_design(COV, "total_response", baseline="exchangeable", baseline_covariates=["regimen"])


# ----------------------------------------------------------------------------- errors
def test_error_messages(td):
    with pytest.raises(ValueError, match="unknown outcome 'remission'.*total_response"):
        build_design(td, "remission")
    with pytest.raises(ValueError, match="unknown outcome 'remission'"):
        build_design(EDGE, "remission")
    with pytest.raises(ValueError, match="unknown effect modifier.*'bmi'.*asian_fraction"):
        build_design(td, "total_response", effect_modifiers=["bmi"])
    with pytest.raises(ValueError, match="no arm has treatment 'voclo'"):
        build_design(td, "total_response", treat=("voclo",))
    with pytest.raises(ValueError, match="baseline must be"):
        build_design(td, "total_response", baseline="shared")
    with pytest.raises(ValueError, match="constant"):
        build_design(COV.assign(mean_age=30.0), "total_response", effect_modifiers=["mean_age"])
    with pytest.raises(ValueError, match="not in the data"):
        build_design(EDGE, "total_response", effect_modifiers=["mean_age"])
    bad = EDGE.copy()
    bad.loc[0, "events"] = 25
    with pytest.raises(ValueError, match="invalid counts"):
        build_design(bad, "total_response")
    with pytest.raises(TypeError, match="TrialData or a pandas DataFrame"):
        build_design([1, 2], "total_response")
    assert "comparator" in EFFECT_MODIFIERS and "regimen" in EFFECT_MODIFIERS


def test_treat_by_node(td):
    d = build_design(td, "total_response", treat=("tac_triple",), baseline="independent")
    # only the triple (multitarget) arms are treated; duo TAC arms become "control"
    treated_arms = [a for a, t in zip(d.arm_ids, d.treated) if t]
    assert treated_arms == ["liu2015:tac", "bao2008:tac"]


def test_fingerprint_and_shape_key(td):
    d1 = build_design(td, "total_response")
    d2 = build_design(td.long(), "total_response")
    assert d1.fingerprint == td.fingerprint()
    assert d2.fingerprint.startswith("sha256:")
    assert d1.shape_key() == d2.shape_key()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_design(td, "complete_response")  # no warning for a plain design
