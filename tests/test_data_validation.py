"""Malformed arm-level files: every problem is reported at once, naming file, line,
column and value; nothing is loaded when anything is wrong; blank is never zero.

Reference: the rules of the documented format (README "Your own data", schema.py
column table). Line numbers are the lines an editor shows (header = line 1), worked out
by hand for each small file below.
"""

from __future__ import annotations

import io
import numpy as np
import pandas as pd
import pytest

import bayesln
from bayesln import DataValidationError, read_trials
from bayesln.data import Problem

HEADER = "study,arm,treatment,outcome,events,n,asian_fraction,design\n"
ROW2 = "s1,tac,tac,total_response,5,10,0.5,rct\n"  # line 2
ROW3 = "s1,ivcy,ivcy,total_response,3,10,0.5,rct\n"  # line 3
VALID = HEADER + ROW2 + ROW3


def write(tmp_path, text: str | bytes, name: str = "trials.csv"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def problems_of(source, **kw) -> list[Problem]:
    from bayesln.data.validate import parse_table

    with pytest.raises(DataValidationError) as info:
        if "vocabulary" in kw:  # the closed vocabulary of the bundled datasets
            parse_table(source, **kw)
        else:
            read_trials(source, **kw)
    err = info.value
    assert err.problems, "a DataValidationError must list its problems"
    # every problem is in the message, one line each
    for p in err.problems:
        assert str(p) in str(err)
    return err.problems


def only_problem(source, **kw) -> Problem:
    probs = problems_of(source, **kw)
    assert len(probs) == 1, [str(p) for p in probs]
    return probs[0]


def test_valid_file_loads(tmp_path):
    td = read_trials(write(tmp_path, VALID))
    assert list(td.studies.index) == ["s1"]
    assert list(td.outcomes["events"]) == [5, 3]


# (replacement for the text, line, column, value, words the message must contain)
CELL_CASES = {
    "non-integer count": (HEADER + ROW2.replace(",5,", ",2.5,") + ROW3, 2, "events", "2.5", "whole number"),
    "non-numeric count": (HEADER + ROW2 + ROW3.replace(",3,", ",three,"), 3, "events", "three", "whole number"),
    "negative count": (HEADER + ROW2.replace(",5,", ",-1,") + ROW3, 2, "events", "-1", "≥ 0"),
    "negative n": (HEADER + ROW2 + ROW3.replace(",3,10,", ",0,-4,"), 3, "n", "-4", "≥ 1"),
    "events > n": (HEADER + ROW2.replace(",5,10,", ",11,10,") + ROW3, 2, "events", "11", "exceed"),
    "n = 0": (HEADER + ROW2.replace(",5,10,", ",0,0,") + ROW3, 2, "n", "0", "n = 0"),
    "fraction above 1": (HEADER + ROW2 + ROW3.replace(",0.5,", ",1.2,"), 3, "asian_fraction", "1.2", "[0, 1]"),
    "fraction below 0": (HEADER + ROW2.replace(",0.5,", ",-0.1,") + ROW3, 2, "asian_fraction", "-0.1", "[0, 1]"),
    "unknown design": (HEADER + ROW2.replace(",rct", ",RCT") + ROW3, 2, "design", "RCT", "rct"),
    "duplicate (study, arm, outcome)": (VALID + "s1,tac,tac,total_response,4,10,0.5,rct\n", 4, "arm", "tac", "duplicate"),
    "inconsistent arm-level value": (
        HEADER + ROW2 + ROW3 + "s1,tac,tac,death,0,10,0.6,rct\n", 4, "asian_fraction", "0.6", "arm-level"
    ),
    "inconsistent study-level value": (
        HEADER + ROW2 + ROW3.replace(",rct", ",cohort"), 3, "design", "cohort", "study-level"
    ),
    "treatment differs within an arm": (
        HEADER + ROW2 + ROW3 + "s1,tac,mmf,death,0,10,0.5,rct\n", 4, "treatment", "mmf", "arm-level"
    ),
    "events without n": (HEADER + ROW2.replace(",5,10,", ",5,,") + ROW3, 2, "n", "", "n is blank"),
    "blank study": (HEADER + ROW2.replace("s1,", ",", 1) + ROW3, 2, "study", "", "blank"),
}


@pytest.mark.parametrize("case", list(CELL_CASES))
def test_one_bad_cell_gives_one_precise_problem(tmp_path, case):
    text, line, column, value, words = CELL_CASES[case]
    path = write(tmp_path, text)
    p = only_problem(path)
    assert p.file == str(path)
    assert (p.line, p.column, p.value) == (line, column, value)
    assert words in p.message
    s = str(p)
    assert str(path) in s and f"line {line}" in s and f"column '{column}'" in s and repr(value) in s


def test_inconsistent_arm_value_is_found_even_when_the_first_row_is_blank(tmp_path):
    # line 2 leaves asian_fraction blank; lines 3 and 4 (same arm) disagree: 0.5 vs 0.6
    text = (HEADER + "s1,tac,tac,death,0,10,,rct\n" + "s1,tac,tac,total_response,5,10,0.5,rct\n"
            + "s1,tac,tac,leucopenia,1,10,0.6,rct\n")
    p = only_problem(write(tmp_path, text))
    assert (p.line, p.column, p.value) == (4, "asian_fraction", "0.6")
    assert "line 3" in p.message and "0.5" in p.message


def test_unknown_outcome_lists_the_known_ones(tmp_path):
    """In the closed vocabulary (the bundled datasets); users' files take their own labels
    (tests/test_user_data.py)."""
    p = only_problem(write(tmp_path, HEADER + ROW2.replace("total_response", "remission") + ROW3), vocabulary="closed")
    assert (p.line, p.column, p.value) == (2, "outcome", "remission")
    # the vocabulary of the format (README): all ten outcomes are listed
    for o in ("complete_response", "partial_response", "total_response", "leucopenia", "infection",
              "severe_infection", "hyperglycaemia", "creatinine_rise", "serious_adverse_event", "death"):
        assert o in p.message


def test_unknown_outcome_accepted_when_declared(tmp_path):
    td = read_trials(write(tmp_path, HEADER + ROW2.replace("total_response", "remission") + ROW3),
                     extra_outcomes=["remission"])
    assert set(td.outcomes["outcome"]) == {"remission", "total_response"}
    # and without declaring it: a user's own outcome
    td = read_trials(write(tmp_path, HEADER + ROW2.replace("total_response", "remission") + ROW3))
    assert set(td.outcomes["outcome"]) == {"remission", "total_response"}


def test_unknown_treatment_lists_the_known_ones(tmp_path):
    p = only_problem(write(tmp_path, HEADER + ROW2 + ROW3.replace("s1,ivcy,ivcy,", "s1,ivcy,fk506,")),
                     vocabulary="closed")
    assert (p.line, p.column, p.value) == (3, "treatment", "fk506")
    for t in ("tac", "ivcy", "mmf", "aza", "placebo"):
        assert t in p.message
    td = read_trials(write(tmp_path, HEADER + ROW2 + ROW3.replace("s1,ivcy,ivcy,", "s1,ivcy,fk506,")),
                     extra_treatments=["fk506"])
    assert set(td.arms["treatment"]) == {"tac", "fk506"}


RESP = "study,arm,treatment,outcome,events,n\n"


def test_complete_plus_partial_must_equal_total(tmp_path):
    text = RESP + "s1,tac,tac,complete_response,2,10\ns1,tac,tac,partial_response,2,10\ns1,tac,tac,total_response,5,10\n"
    p = only_problem(write(tmp_path, text))
    assert (p.line, p.column, p.value) == (4, "events", "5")
    assert "complete (2) + partial (2) = 4" in p.message


def test_consistent_response_sum_is_valid(tmp_path):
    text = RESP + "s1,tac,tac,complete_response,2,10\ns1,tac,tac,partial_response,3,10\ns1,tac,tac,total_response,5,10\n"
    assert len(read_trials(write(tmp_path, text)).outcomes) == 3


@pytest.mark.parametrize("part", ["complete_response", "partial_response"])
def test_a_part_cannot_exceed_the_total(tmp_path, part):
    text = RESP + f"s1,tac,tac,total_response,5,10\ns1,tac,tac,{part},6,10\n"
    p = only_problem(write(tmp_path, text))
    assert (p.line, p.column, p.value) == (3, "events", "6")
    assert part in p.message and "total_response" in p.message


def test_single_arm_study_is_an_error_only_when_a_contrast_is_required(tmp_path):
    path = write(tmp_path, VALID + "s2,tac,tac,total_response,4,9,,single_arm\n")
    assert len(read_trials(path).studies) == 2
    p = only_problem(path, require_contrast=True)
    assert (p.line, p.column, p.value) == (4, "study", "s2")
    assert "one arm" in p.message


# ----------------------------------------------------------------------------- whole-file problems


@pytest.mark.parametrize("missing", ["n", "events", "study"])
def test_missing_required_column(tmp_path, missing):
    df = pd.read_csv(io.StringIO(VALID), dtype=str)
    path = tmp_path / "t.csv"
    df.drop(columns=[missing]).to_csv(path, index=False)
    p = only_problem(path)
    assert p.column == missing and p.file == str(path) and p.line == 1
    assert "missing required column" in p.message
    assert "study, treatment, outcome, events, n" in p.message


@pytest.mark.parametrize("text", ["", "\n\n", "   \n"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    p = only_problem(path)
    assert p.file == str(path) and "empty" in p.message


def test_header_only_file(tmp_path):
    path = write(tmp_path, HEADER)
    p = only_problem(path)
    assert p.file == str(path) and "no data rows" in p.message


@pytest.mark.parametrize("sep,word", [(";", "semicolon"), ("\t", "tab")])
def test_wrong_delimiter(tmp_path, sep, word):
    path = write(tmp_path, VALID.replace(",", sep))
    p = only_problem(path)
    assert p.file == str(path) and p.line == 1 and p.value.startswith("study" + sep)
    assert word in p.message and "comma" in p.message


def test_wrong_encoding(tmp_path):
    # latin-1 bytes: 'ü' is 0xfc, invalid as UTF-8; it sits on line 3
    text = "study,arm,treatment,outcome,events,n,first_author\n" \
           "s1,tac,tac,death,0,10,Muller\ns1,ivcy,ivcy,death,1,10,Müller\n"
    path = write(tmp_path, text.encode("latin-1"))
    p = only_problem(path)
    assert (p.file, p.line, p.value) == (str(path), 3, "0xfc")
    assert "UTF-8" in p.message


def test_utf8_with_bom_is_fine(tmp_path):
    td = read_trials(write(tmp_path, ("\ufeff" + VALID).encode("utf-8")))
    assert len(td.outcomes) == 2


def test_ragged_row(tmp_path):
    path = write(tmp_path, HEADER + ROW2 + "s1,ivcy,ivcy,total_response,3,10\n")
    p = only_problem(path)
    assert p.line == 3 and "6 fields" in p.message and "8" in p.message


def test_ragged_rows_are_reported_with_the_other_problems(tmp_path):
    text = HEADER + "s1,tac,tac,total_response,x,10,0.5,rct\n" + "s1,ivcy,ivcy,death,0,10\n" + ROW3
    probs = problems_of(write(tmp_path, text))
    assert [(p.line, p.column) for p in probs] == [(2, "events"), (3, None)]


def test_missing_file_and_directory(tmp_path):
    p = only_problem(tmp_path / "nope.csv")
    assert "not found" in p.message
    p = only_problem(tmp_path)
    assert "directory" in p.message


def test_line_numbers_count_blank_lines_and_multiline_fields(tmp_path):
    text = ("study,arm,treatment,outcome,events,n,arm_label\n"
            's1,tac,tac,death,0,10,"TAC\n+ steroids"\n'  # lines 2-3
            "\n"  # line 4, blank
            "s1,ivcy,ivcy,death,11,10,IVCY\n")  # line 5
    p = only_problem(write(tmp_path, text))
    assert (p.line, p.column, p.value) == (5, "events", "11")


# ----------------------------------------------------------------------------- all at once


def test_three_different_problems_are_reported_together(tmp_path):
    text = (HEADER
            + "s1,tac,tac,total_response,2.5,10,0.5,rct\n"  # line 2: not a whole number
            + "s1,ivcy,ivcy,remission!,3,10,0.5,rct\n"  # line 3: not an outcome label
            + "s1,ivcy,ivcy,death,12,10,0.5,rct\n")  # line 4: events > n
    path = write(tmp_path, text)
    probs = problems_of(path)
    assert [(p.line, p.column, p.value) for p in probs] == [
        (2, "events", "2.5"), (3, "outcome", "remission!"), (4, "events", "12")]
    with pytest.raises(DataValidationError, match="3 problems found; nothing was loaded"):
        read_trials(path)


def test_nothing_is_constructed_when_validation_fails(tmp_path, monkeypatch):
    made = []
    import bayesln.data.io as io_mod

    real = io_mod.TrialData
    monkeypatch.setattr(io_mod, "TrialData", lambda *a, **k: made.append(1) or real(*a, **k))
    with pytest.raises(DataValidationError):
        read_trials(write(tmp_path, HEADER + ROW2.replace(",5,", ",-5,") + ROW3))
    assert made == []
    read_trials(write(tmp_path, VALID))
    assert made == [1]


# ----------------------------------------------------------------------------- blank = unknown


def test_blank_counts_stay_missing(tmp_path):
    text = (RESP + "s1,tac,tac,total_response,,10\n"  # events unknown, n known
            + "s1,ivcy,ivcy,total_response,,\n"  # both unknown
            + "s1,ivcy,ivcy,death,NA,12\n"  # 'NA' is blank too
            + "s2,tac,tac,,,\n")  # arm listed without any outcome
    td = read_trials(write(tmp_path, text))
    out = td.outcomes
    assert str(out["events"].dtype) == "Int64" and str(out["n"].dtype) == "Int64"
    assert out["events"].isna().all()
    assert list(out["n"].astype("Float64").fillna(-1)) == [10, -1, 12]
    assert (out["events"].fillna(-1) != 0).all()
    # the outcome-less arm is kept, listed, and has no outcome rows
    assert "s2" in td.studies.index and td.outcomes[td.outcomes["study"] == "s2"].empty
    at = td.arm_table("total_response")
    assert at.empty
    reasons = dict(zip(zip(at.attrs["excluded"]["study"], at.attrs["excluded"]["arm"]), at.attrs["excluded"]["reason"]))
    assert reasons == {("s1", "tac"): "total_response count unknown (blank)",
                       ("s1", "ivcy"): "total_response count unknown (blank)",
                       ("s2", "tac"): "total_response not reported"}
    # writing it out and reading it back keeps the blanks blank
    back = read_trials(td.to_csv(tmp_path / "back.csv"))
    assert back.outcomes["events"].isna().all() and back.equals(td)


def test_blank_covariates_stay_missing(tmp_path):
    td = read_trials(write(tmp_path, HEADER + ROW2.replace(",0.5,", ",,") + ROW3.replace(",0.5,", ",,")))
    assert td.arms["asian_fraction"].isna().all()
    assert pd.isna(td.studies.loc["s1", "asian_fraction"])


# ----------------------------------------------------------------------------- DataFrame input


def test_dataframe_input_uses_the_index_label_as_line():
    df = pd.DataFrame(
        {"study": ["s1", "s1", "s1"], "treatment": ["tac", "ivcy", "ivcy"],
         "outcome": ["total_response", "total_response", "death"],
         "events": [5, 30, 1], "n": [10, 10, 10]},
        index=["row_a", "row_b", "row_c"],
    )
    p = only_problem(df)
    assert (p.file, p.line, p.column, p.value) == ("<DataFrame>", "row_b", "events", "30")
    assert "line row_b" in str(p)


def test_dataframe_input_with_nan_and_float_counts():
    df = pd.DataFrame(
        {"study": ["s1", "s1", "s1"], "treatment": ["tac", "ivcy", "ivcy"],
         "outcome": ["total_response", "total_response", "death"],
         "events": [5.0, np.nan, 1.0], "n": [10, 10, 10],
         "pediatric": [True, True, np.nan], "mean_age": [30.5, np.nan, np.nan]},
    )
    td = read_trials(df)
    assert str(td.outcomes["events"].dtype) == "Int64"
    assert td.outcomes["events"].iloc[0] == 5 and pd.isna(td.outcomes["events"].iloc[1])
    assert td.arms.set_index("arm").loc["tac", "mean_age"] == 30.5
    assert bool(td.arms.set_index("arm").loc["tac", "pediatric"]) is True


def test_dataframe_input_rejects_fractional_counts_and_empty_frames():
    df = pd.DataFrame({"study": ["s1"], "treatment": ["tac"], "outcome": ["death"], "events": [0.5], "n": [10]})
    p = only_problem(df)
    assert (p.line, p.column, p.value) == (0, "events", "0.5")
    p = only_problem(df.iloc[:0])
    assert "no rows" in p.message
    p = only_problem(df.drop(columns=["outcome"]))
    assert p.column == "outcome" and "missing required column" in p.message


def test_unknown_columns_are_ignored_with_a_warning(tmp_path):
    path = write(tmp_path, VALID.replace("design\n", "design,my_note\n", 1).replace(",rct\n", ",rct,x\n"))
    with pytest.warns(UserWarning, match="my_note"):
        td = read_trials(path)
    assert "my_note" not in td.long().columns


def test_problem_formatting():
    p = Problem("f.csv", 7, "events", "2.5", "not a whole number")
    assert str(p) == "f.csv, line 7, column 'events': not a whole number (value '2.5')"
    e = DataValidationError([p, Problem("f.csv", None, None, None, "the file is empty")])
    assert str(e).splitlines() == [
        "2 problems found; nothing was loaded:",
        "  - f.csv, line 7, column 'events': not a whole number (value '2.5')",
        "  - f.csv: the file is empty",
    ]
    assert isinstance(e, ValueError)
    assert bayesln.DataValidationError is DataValidationError


def test_trailing_unnamed_empty_columns_from_spreadsheets_are_dropped(tmp_path):
    # Excel-style export: trailing separators give blank-named, empty columns
    td = read_trials(write(tmp_path, "study,treatment,outcome,events,n,,\ns1,tac,death,0,10,,\ns1,ivcy,death,1,10,,\n"))
    assert len(td.outcomes) == 2


def test_unnamed_column_with_values_is_named_in_the_warning(tmp_path):
    path = write(tmp_path, "study,treatment,outcome,events,n,\ns1,tac,death,0,10,\ns1,ivcy,death,1,10,x\n")
    with pytest.warns(UserWarning, match=r"\(unnamed column 6\)"):
        td = read_trials(path)
    assert len(td.outcomes) == 2
