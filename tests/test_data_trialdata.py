"""TrialData helpers: select, arm_table, contrasts, multi_arm_studies, fingerprint and
study-level covariates.

Reference numbers are copied by hand from the extraction sheet
(shared/evidence/arms.csv; the row is named next to each number) and the pooling rule
of ARCHITECTURE.md (multi-arm trials: arms on one side summed, Cochrane Handbook
§23.3.4). Small hand-made tables check the rules the bundled data does not exercise.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

import bayesln
from bayesln import ContrastError, read_trials


@pytest.fixture(scope="module")
def td():
    return bayesln.load_dataset("tacrolimus_ln")


def write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def arm_pairs(t):
    return set(zip(t.arms["study"], t.arms["arm"]))


# ----------------------------------------------------------------------------- select


def test_select_outcomes(td):
    sub = td.select(outcomes="total_response")
    assert set(sub.outcomes["outcome"]) == {"total_response"}
    both = td.select(outcomes=["death", "leucopenia"])
    assert set(both.outcomes["outcome"]) == {"death", "leucopenia"}
    # sheet: deaths known for bao2008 x2, deng2017 x2, gu2014, amudalapalli2025 tac + ivcy
    assert len(both.outcomes[both.outcomes["outcome"] == "death"]) == 7


def test_select_phases_and_designs(td):
    # sheet: chen2012 is the only maintenance study
    assert list(td.select(phases="maintenance").studies.index) == ["chen2012"]
    assert set(td.select(phases="induction_maintenance").studies.index) == {"wang2012", "yap_ccs", "tanaka_tac"}
    assert set(td.select(designs="single_arm").studies.index) == {"tanaka_tac", "fei2013", "gu2014"}
    assert set(td.select(designs="cohort,case_control").studies.index) == {"wang2012", "yap_ccs"}
    rct_ind = td.select(phases="induction", designs="rct")
    assert set(rct_ind.studies.index) == {
        "liu2015", "bao2008", "chen2011", "li2012", "mok2016", "zheng2022", "deng2017",
        "zhang2006_iv", "zhang_v_iv", "amudalapalli2025"}


def test_select_studies_and_exclude(td):
    assert list(td.select(studies=["liu2015", "bao2008"]).studies.index) == ["liu2015", "bao2008"]
    rest = td.select(exclude_studies="liu2015")
    assert len(rest.studies) == 15 and "liu2015" not in rest.studies.index
    # provenance follows the selection
    sub = td.select(studies="liu2015")
    assert set(sub.provenance["study"]) == {"liu2015"} and len(sub.provenance) == 12
    assert len(td.studies) == 16  # the original is unchanged


def test_select_treatments_by_label_and_node(td):
    # sheet: regimen "triple" only for the TAC arms of liu2015 and bao2008
    assert arm_pairs(td.select(treatments="tac_triple")) == {("liu2015", "tac"), ("bao2008", "tac")}
    assert arm_pairs(td.select(treatments="mmf")) == {("li2012", "mmf"), ("mok2016", "mmf"), ("amudalapalli2025", "mmf")}
    tac = td.select(treatments="tac")
    assert len(tac.arms) == 14 and set(tac.arms["treatment"]) == {"tac"}
    duo = td.select(treatments="tac_duo")
    assert len(duo.arms) == 12 and set(duo.arms["regimen"]) == {"duo"}
    # a node that exists in the vocabulary but not in this subset selects nothing
    assert len(td.select(studies="mok2016").select(treatments="tac_triple").arms) == 0


@pytest.mark.parametrize(
    "kw,known",
    [
        ({"outcomes": "remission"}, ["total_response", "death"]),
        ({"phases": "inducton"}, ["induction", "maintenance"]),
        ({"designs": "trial"}, ["rct", "cohort"]),
        ({"studies": "liu2016"}, ["liu2015", "amudalapalli2025"]),
        ({"exclude_studies": ["liu2015", "nope"]}, ["liu2015"]),
        ({"treatments": "fk506"}, ["tac", "tac_duo", "ivcy"]),
    ],
)
def test_select_unknown_names_raise_listing_the_known_ones(td, kw, known):
    bad = next(iter(kw.values()))
    bad = bad if isinstance(bad, str) else bad[-1]
    with pytest.raises(ValueError, match=re.escape(repr(bad))) as info:
        td.select(**kw)
    for k in known:
        assert k in str(info.value)


# ----------------------------------------------------------------------------- arm_table


def test_arm_table_lists_known_arms_and_reports_the_rest(td):
    at = td.arm_table("total_response")
    # sheet: total_response known for 20 arms; the other 10 arms of the 30 have none
    assert len(at) == 20
    assert at[["events", "n"]].notna().all().all()
    row = at[(at["study"] == "liu2015") & (at["arm"] == "tac")].iloc[0]
    assert (row["events"], row["n"], row["node"], row["design"]) == (151, 181, "tac_triple", "rct")
    ex = at.attrs["excluded"]
    assert len(ex) == 10
    assert set(ex["study"]) == {"chen2011", "li2012", "mok2016", "wang2012", "yap_ccs"}
    assert set(ex["reason"]) == {"total_response not reported"}
    assert arm_pairs(td) == set(zip(at["study"], at["arm"])) | set(zip(ex["study"], ex["arm"]))


def test_arm_table_unknown_outcome(td):
    with pytest.raises(ValueError, match="total_response"):
        td.arm_table("remission")


# ----------------------------------------------------------------------------- contrasts

# sheet rows (events/n): tac vs every other arm, total_response, n = n_analysed
TOTAL_RESPONSE = {
    "liu2015": (151, 181, 114, 181),
    "bao2008": (18, 20, 9, 20),
    "chen2012": (34, 34, 34, 36),
    "zheng2022": (117, 141, 93, 124),
    "zhang2006_iv": (16, 17, 14, 17),
    "zhang_v_iv": (14, 15, 8, 16),
    "amudalapalli2025": (17, 27, 18 + 15, 27 + 28),  # MMF + IVCY pooled
}


def test_contrasts_total_response(td):
    c = td.contrasts("total_response", treat="tac")
    got = {r.study: (r.events_t, r.n_t, r.events_c, r.n_c) for r in c.itertuples()}
    assert got == TOTAL_RESPONSE
    ex = c.attrs["excluded"]
    # every study is either a contrast row or excluded with a reason
    assert set(ex["study"]) | set(c["study"]) == set(td.studies.index)
    assert not set(ex["study"]) & set(c["study"])
    reasons = dict(zip(ex["study"], ex["reason"]))
    for s in ("yap_ccs", "tanaka_tac", "fei2013", "gu2014"):
        assert reasons[s] == "single-arm study"
    assert reasons["deng2017"] == "no treat arm"
    assert reasons["mok2016"] == "total_response not reported"
    assert reasons["li2012"] == "total_response not reported"
    assert (c["events_t"] <= c["n_t"]).all() and (c["events_c"] <= c["n_c"]).all()


def test_contrasts_multi_arm_pooling(td):
    c = td.contrasts("total_response", treat="tac").set_index("study")
    amu = c.loc["amudalapalli2025"]
    assert (amu["events_t"], amu["n_t"], amu["events_c"], amu["n_c"]) == (17, 27, 33, 55)
    assert amu["treat_arms"] == "tac" and set(amu["control_arms"].split(",")) == {"mmf", "ivcy"}
    # choosing the comparator picks one arm: sheet amudalapalli2025 ivcy 15/28
    iv = td.contrasts("total_response", treat="tac", control="ivcy").set_index("study")
    amu = iv.loc["amudalapalli2025"]
    assert (amu["events_t"], amu["n_t"], amu["events_c"], amu["n_c"]) == (17, 27, 15, 28)
    assert amu["control_arms"] == "ivcy"
    ex = dict(zip(iv.attrs["excluded"]["study"], iv.attrs["excluded"]["reason"]))
    assert ex["chen2012"] == "no control arm" and ex["mok2016"] == "no control arm"
    assert set(iv.index) == {"liu2015", "bao2008", "zheng2022", "zhang2006_iv", "zhang_v_iv", "amudalapalli2025"}


def test_contrasts_multi_arm_error(td):
    with pytest.raises(ContrastError, match="amudalapalli2025"):
        td.contrasts("total_response", treat="tac", multi_arm="error")
    # with one arm per side there is nothing to refuse
    c = td.contrasts("total_response", treat="tac", control="mmf", multi_arm="error")
    assert list(c["study"]) == ["amudalapalli2025"]


def test_contrasts_on_missing_error(td):
    with pytest.raises(ContrastError, match="single-arm study") as info:
        td.contrasts("total_response", treat="tac", on_missing="error")
    for s in ("chen2011", "li2012", "mok2016", "gu2014"):
        assert s in str(info.value)
    ok = td.select(studies=list(TOTAL_RESPONSE)).contrasts("total_response", on_missing="error")
    assert len(ok) == 7


def test_contrasts_by_node_and_adverse_event_denominators(td):
    c = td.contrasts("total_response", treat="tac_triple", control="ivcy")
    assert list(c["study"]) == ["liu2015", "bao2008"] and set(c["regimen"]) == {"triple"}
    sae = td.contrasts("serious_adverse_event", treat="tac").set_index("study")
    # sheet zheng2022: 29 (n_safety 157) vs 35 (n_safety 142)
    z = sae.loc["zheng2022"]
    assert (z["events_t"], z["n_t"], z["events_c"], z["n_c"]) == (29, 157, 35, 142)


def test_contrast_arguments_are_checked(td):
    with pytest.raises(ContrastError, match="both"):
        td.contrasts("total_response", treat="tac", control="tac")
    with pytest.raises(ValueError, match="fk506"):
        td.contrasts("total_response", treat="fk506")
    with pytest.raises(ValueError):
        td.contrasts("total_response", multi_arm="average")
    with pytest.raises(ValueError):
        td.contrasts("total_response", on_missing="drop")


def test_an_arm_is_never_on_both_sides(td):
    # liu2015's TAC arm is both "tac" and "tac_triple"
    with pytest.raises(ContrastError, match="liu2015.*one side"):
        td.contrasts("total_response", treat="tac_triple", control="tac")


def test_contrast_excludes_a_study_when_one_pooled_arm_is_unknown(tmp_path):
    text = ("study,arm,treatment,outcome,events,n\n"
            "s1,a,tac,death,1,10\ns1,b,mmf,death,2,10\ns1,c,ivcy,death,,10\n"
            "s2,a,tac,death,1,10\ns2,b,mmf,death,2,12\n")
    td = read_trials(write(tmp_path, text))
    c = td.contrasts("death")
    assert list(c["study"]) == ["s2"]
    ex = c.attrs["excluded"]
    assert list(ex["study"]) == ["s1"] and "c" in ex["reason"].iloc[0]


# ----------------------------------------------------------------------------- multi-arm, fingerprint


def test_multi_arm_studies(td):
    m = td.multi_arm_studies()
    # sheet: li2012 (tac, mmf, ivcy) and amudalapalli2025 (tac, mmf, ivcy) have three arms
    assert list(m.index) == ["li2012", "amudalapalli2025"]
    assert list(m["n_arms"]) == [3, 3]
    assert m.loc["amudalapalli2025", "nodes"] == "tac_duo,mmf,ivcy"


def test_fingerprint_is_stable_and_sensitive(td, tmp_path):
    fp = td.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", fp)
    assert bayesln.load_dataset("tacrolimus_ln").fingerprint() == fp
    assert read_trials(td.to_csv(tmp_path / "t.csv")).fingerprint() == fp
    long = td.long()
    i = long.index[(long["study"] == "bao2008") & (long["arm"] == "tac") & (long["outcome"] == "death")][0]
    long.loc[i, "events"] = 1  # sheet: 0
    changed = read_trials(long)
    assert changed.fingerprint() != fp
    assert not changed.equals(td)
    assert td.select(exclude_studies="gu2014").fingerprint() != fp


# ----------------------------------------------------------------------------- covariates


def test_study_level_covariate_is_the_n_weighted_arm_mean(td):
    # sheet chen2012: mean age 30.7 (TAC, n_analysed 34) and 33.1 (AZA, n_analysed 36)
    assert td.studies.loc["chen2012", "mean_age"] == pytest.approx((30.7 * 34 + 33.1 * 36) / 70, abs=1e-12)
    assert td.studies.loc["chen2012", "female_fraction"] == pytest.approx(0.871)
    assert td.studies.loc["mok2016", "mean_age"] == pytest.approx(35.5)
    assert pd.isna(td.studies.loc["liu2015", "mean_age"])
    assert bool(td.studies.loc["tanaka_tac", "pediatric"]) is True
    # the study-level value reaches the contrast rows
    c = td.contrasts("total_response").set_index("study")
    assert c.loc["chen2012", "mean_age"] == pytest.approx(31.934285714285714)


def test_study_level_covariate_is_missing_when_any_arm_is_missing(tmp_path):
    text = ("study,arm,treatment,outcome,events,n,n_analysed,mean_age,refractory\n"
            "s1,a,tac,death,0,10,10,30,true\ns1,b,ivcy,death,1,30,30,,\n"
            "s2,a,tac,death,0,10,10,30,false\ns2,b,ivcy,death,1,30,30,40,true\n")
    st = read_trials(write(tmp_path, text)).studies
    assert pd.isna(st.loc["s1", "mean_age"]) and pd.isna(st.loc["s1", "refractory"])
    assert st.loc["s2", "mean_age"] == pytest.approx((30 * 10 + 40 * 30) / 40)
    assert bool(st.loc["s2", "refractory"]) is True


def test_describe_and_repr(td):
    d = td.describe()
    assert len(d) == 16
    for s in ("chen2011", "li2012", "wang2012", "yap_ccs"):
        assert d.loc[s, "outcomes_with_counts"] == "(none known)"
    assert "16 studies (12 with outcome counts)" in repr(td)
