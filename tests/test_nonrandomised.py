"""Non-randomised studies are never silently pooled with the randomised trials (issue 17):
left out of the core model by default, with a warning and a usage row, or entered with an
explicit bias term (``nonrandomised="bias"``: effect modifier ``design:nonrandomised``).

References: the bundled dataset's ``design`` column (tanaka_tac and fei2013 are single-arm
TAC series, gu2014 a single-arm MSC series; data/tacrolimus_ln/README.md) and design
matrices written out by hand for a small arm table.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesln
from bayesln.hierarchy.design import build_design

TD = bayesln.load_dataset("tacrolimus_ln")


def _usage(des, study):
    return des.usage.set_index("study").loc[study, "usage"]


def test_single_arm_tac_series_are_left_out_of_exchangeable_fits_by_default():
    with pytest.warns(UserWarning, match=r"non-randomised stud.*tanaka_tac \(single_arm\).*fei2013 \(single_arm\)"):
        des = build_design(TD, "total_response", baseline="exchangeable")
    assert "tanaka_tac" not in des.study_ids and "fei2013" not in des.study_ids
    assert _usage(des, "tanaka_tac").startswith("excluded: non-randomised (single_arm)")
    assert not des.usage.set_index("study").loc["fei2013", "included"]
    assert "design:nonrandomised" not in des.effect_names


def test_bias_enters_them_with_an_explicit_bias_column():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "left out" warning
        des = build_design(TD, "total_response", baseline="exchangeable", nonrandomised="bias", warn=False)
    assert {"tanaka_tac", "fei2013"} <= set(des.study_ids)
    k = des.effect_names.index("design:nonrandomised")
    col = des.X_effect[:, k]
    studies = np.asarray(des.study_ids)[des.arm_study]
    want = (np.isin(studies, ["tanaka_tac", "fei2013"]) & (des.treated == 1)).astype(float)
    np.testing.assert_array_equal(col, want)
    tr = des.transforms["beta:design:nonrandomised"]
    assert (tr.source, tr.kind, tr.n_studies) == ("design", "indicator", 2)
    assert "bias term design:nonrandomised" in _usage(des, "fei2013")


def test_independent_baselines_keep_their_structural_reason():
    des = build_design(TD.select(designs=["rct", "single_arm"]), "total_response", warn=False)
    assert _usage(des, "tanaka_tac").startswith("excluded: single-arm study needs exchangeable baselines")


def _cohort_frame(design_value):
    rows = []
    for s, d, (a, n1, c, n2) in (("r1", "rct", (10, 40, 6, 41)), ("r2", "rct", (12, 50, 9, 52)),
                                  ("c1", design_value, (20, 60, 10, 58))):
        rows += [{"study": s, "arm": "t", "treatment": "tac", "events": a, "n": n1, "design": d},
                 {"study": s, "arm": "c", "treatment": "ivcy", "events": c, "n": n2, "design": d}]
    return pd.DataFrame(rows)


def test_a_comparative_cohort_in_users_data():
    df = _cohort_frame("cohort")
    with pytest.warns(UserWarning, match="c1 \\(cohort\\)"):
        des = build_design(df, "total_response")
    assert des.study_ids == ["r1", "r2"]
    des = build_design(df, "total_response", nonrandomised="bias")
    # hand-written column: 1 on the cohort's TAC arm only
    np.testing.assert_array_equal(des.X_effect[:, 0], [0, 0, 0, 0, 1, 0])
    # a blank design is not refused, and the usage row says it was not stated
    des = build_design(_cohort_frame(""), "total_response", warn=False)
    assert "c1" in des.study_ids and "design not stated" in _usage(des, "c1")
    with pytest.raises(ValueError, match="nonrandomised must be"):
        build_design(df, "total_response", nonrandomised="pool")


def test_spec_key_and_its_validation(tmp_path):
    from bayesln.spec import SpecError, load_spec

    base = (bayesln_root() / "models" / "total_response.toml").read_text()
    p = tmp_path / "s.toml"
    p.write_text(base.replace("[model]", "[model]\nnonrandomised = \"bias\"", 1))
    assert load_spec(p).model.nonrandomised == "bias"
    p.write_text(base.replace("[model]", "[model]\nnonrandomised = \"pool\"", 1))
    with pytest.raises(SpecError, match="nonrandomised"):
        load_spec(p)


def bayesln_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def test_bias_fit_predicts_for_randomised_conditions():
    from bayesln.hierarchy import fit_core
    from bayesln.predict import predict

    res = fit_core(TD, "total_response", baseline="exchangeable", nonrandomised="bias", seed=11,
                   prior_predictive=False)
    assert res.config["nonrandomised"] == "bias"
    assert "design:nonrandomised" in list(res.idata.posterior["covariate"].values)
    if res.status != "ok":
        pytest.skip(f"fit failed its gate on this machine: {res.diagnostics.problems}")
    p = predict(res, "asian_class_iii_iv", seed=2)
    # the bias coefficient is not used by a target (its column is 0: randomised conditions)
    assert "design:nonrandomised" not in " ".join(map(str, p.extrapolation.modifiers.get("parameter", [])))


# ------------------------------------------------------------- the drop is stated
def test_studies_left_out_for_a_missing_covariate_are_stated_with_their_patients():
    """A class V modifier leaves out the trials that do not report class V (issue 17: ~70% of
    the patients); the prediction's notes say which and how many patients. Reference: the
    arm sizes of the bundled data, summed here."""
    from bayesln.predict.engine import dropped_study_notes

    td = TD.select(phases="induction", designs="rct")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        des = build_design(td, "complete_response", baseline="exchangeable", effect_modifiers=["class_v_fraction"])
    tab = td.arm_table("complete_response")
    lost = int(tab.loc[tab["study"].isin(["liu2015", "zheng2022"]), "n"].sum())
    total = int(tab.loc[tab["study"].isin(list(des.study_ids) + ["liu2015", "zheng2022"]), "n"].sum())
    (note,) = dropped_study_notes(des)
    assert f"{lost} of {total} patients ({100 * lost / total:.0f}%)" in note
    assert "liu2015 (missing class_v_fraction)" in note and "zheng2022" in note
    # nothing left out: no note
    assert dropped_study_notes(build_design(td, "complete_response", baseline="exchangeable", warn=False)) == []


def test_prediction_report_carries_the_note():
    from bayesln.hierarchy import fit_core
    from bayesln.predict import predict

    td = TD.select(phases="induction", designs="rct")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = fit_core(td, "complete_response", baseline="exchangeable", effect_modifiers=["class_v_fraction"],
                       seed=4, draws=300, tune=300, chains=2, prior_predictive=False, retry=False)
        p = predict(res, "asian_class_v", seed=1, allow_failed_gate=True)
    assert any("the fit left out 2 studies with counts" in n for n in p.extrapolation.notes)
    assert "the fit left out 2 studies" in p.extrapolation.text
