"""Property-based round trip of the arm-level format (hypothesis).

Random valid tables — studies with 1-3 arms, random outcomes and counts (events ≤ n),
blank counts and covariates, arm- and study-level columns repeated consistently on every
row of their arm / study, complete + partial = total wherever all three are known —
written with the ``csv`` module, must

* load, with exactly the generated values (the reference is the generated table itself;
  blank stays blank, never 0);
* survive read → ``to_csv`` → read unchanged (``TrialData.equals`` and equal long frames);
* load identically from a DataFrame holding the same values, and from ``td.long()``.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesln import read_trials

OUTCOMES = ("complete_response", "partial_response", "total_response", "leucopenia", "infection",
            "severe_infection", "hyperglycaemia", "creatinine_rise", "serious_adverse_event", "death")
RESPONSE = OUTCOMES[:3]
TREATMENTS = ("tac", "ivcy", "mmf", "aza", "placebo", "msc", "standard_care")

# Free text without surrounding blanks (the reader strips cells) and not beginning like a
# spreadsheet formula (=, +, -, @: refused by the validator); commas, quotes, newlines,
# non-ASCII letters and the word NA (text in text columns) are all allowed.
text = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs"), include_characters=',"\n\r'),
               min_size=1, max_size=12).filter(
    lambda s: s == s.strip() and s.strip() and s[0] not in "=+-@")
maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731
fraction = st.floats(0, 1, allow_nan=False)


@st.composite
def arm_values(draw):
    return {
        "arm_label": draw(maybe(text)),
        "regimen": draw(maybe(st.sampled_from(["duo", "triple", "control", "other"]))),
        "n_randomized": draw(maybe(st.integers(1, 1000))),
        "n_analysed": draw(maybe(st.integers(1, 1000))),
        "timepoint_weeks": draw(maybe(st.floats(0, 520, allow_nan=False))),
        "asian_fraction": draw(maybe(fraction)),
        "mean_age": draw(maybe(st.floats(0, 120, allow_nan=False))),
        "female_fraction": draw(maybe(fraction)),
        "pediatric": draw(maybe(st.booleans())),
    }


@st.composite
def study_values(draw):
    return {
        "design": draw(maybe(st.sampled_from(["rct", "cohort", "case_control", "single_arm"]))),
        "phase": draw(maybe(st.sampled_from(["induction", "maintenance", "induction_maintenance"]))),
        "year": draw(maybe(st.integers(1900, 2100))),
        "country": draw(maybe(text)),
    }


@st.composite
def outcome_rows(draw):
    """(outcome, events, n) rows of one arm; [] means the arm has no known outcome."""
    chosen = draw(st.lists(st.sampled_from(OUTCOMES), unique=True, max_size=5))
    rows = []
    n_resp = draw(st.integers(1, 400))
    cr = draw(st.integers(0, n_resp))
    pr = draw(st.integers(0, n_resp - cr))
    resp_events = {"complete_response": cr, "partial_response": pr, "total_response": cr + pr}
    for o in chosen:
        if o in RESPONSE:
            n = draw(maybe(st.just(n_resp)))
            ev = resp_events[o] if n is not None and draw(st.booleans()) else None
        else:
            n = draw(maybe(st.integers(1, 400)))
            ev = None if n is None else draw(maybe(st.integers(0, n)))
        rows.append((o, ev, n))
    return rows


@st.composite
def tables(draw):
    """A list of row dicts (None = blank) and the column order."""
    n_studies = draw(st.integers(1, 4))
    study_ids = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=n_studies,
                              max_size=n_studies, unique=True).filter(lambda xs: all(x.upper() not in ("NA", "NAN") for x in xs)))
    records = []
    for sid in study_ids:
        sv = draw(study_values())
        treatments = draw(st.lists(st.sampled_from(TREATMENTS), min_size=1, max_size=3))
        for k, t in enumerate(treatments):
            av = draw(arm_values())
            arm = f"{t}{k}"
            rows = draw(outcome_rows())
            base = {"study": sid, "arm": arm, "treatment": t, **av, **sv}
            if not rows:
                records.append({**base, "outcome": None, "events": None, "n": None})
            for o, ev, n in rows:
                records.append({**base, "outcome": o, "events": ev, "n": n})
    draw(st.randoms()).shuffle(records)  # row order is free
    optional = [c for c in records[0] if c not in ("study", "arm", "treatment", "outcome", "events", "n")]
    kept = draw(st.lists(st.sampled_from(optional), unique=True))
    columns = draw(st.permutations(["study", "arm", "treatment", "outcome", "events", "n", *kept]))
    return [{c: r[c] for c in columns} for r in records], list(columns)


def cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


# How the test files are written. (Python's csv writer with a "\n" terminator and minimal
# quoting leaves a bare "\r" unquoted, which no reader reads back, so that dialect is not
# used for generated text.)
DIALECTS = {"crlf-minimal": ("\r\n", csv.QUOTE_MINIMAL), "lf-quote-all": ("\n", csv.QUOTE_ALL)}
dialects = st.sampled_from(sorted(DIALECTS))


def write_csv(path: Path, records, columns, dialect="crlf-minimal"):
    terminator, quoting = DIALECTS[dialect]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator=terminator, quoting=quoting)
        w.writerow(columns)
        for r in records:
            w.writerow([cell(r[c]) for c in columns])


def same(a, b) -> bool:
    if a is None or (not isinstance(a, str) and pd.isna(a)):
        return b is None
    if isinstance(b, float):
        return float(a) == b
    if isinstance(b, bool):
        return bool(a) is b
    return a == b


def check_values(td, records, columns):
    """The loaded data holds exactly the generated values (reference: the generated rows)."""
    long = td.long()
    assert len(long) == len(records)
    for got, exp in zip(long.to_dict("records"), records):
        for c in columns:
            assert same(got[c], exp[c]), (c, got[c], exp[c])
        for c in set(got) - set(columns) - {"arm"}:
            assert pd.isna(got[c]), c
    assert str(td.outcomes["events"].dtype) == "Int64" and str(td.outcomes["n"].dtype) == "Int64"
    n_blank = sum(r["outcome"] is not None and r["events"] is None for r in records)
    assert int(td.outcomes["events"].isna().sum()) == n_blank


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), dialects)
def test_csv_round_trip(table, dialect):
    records, columns = table
    with tempfile.TemporaryDirectory() as d:
        p1, p2 = Path(d) / "in.csv", Path(d) / "out.csv"
        write_csv(p1, records, columns, dialect)
        td = read_trials(p1)
        check_values(td, records, columns)
        td.to_csv(p2)
        td2 = read_trials(p2)
    assert td.equals(td2)
    pd.testing.assert_frame_equal(td.long(), td2.long())
    pd.testing.assert_frame_equal(td.arms, td2.arms)
    pd.testing.assert_frame_equal(td.studies, td2.studies)
    assert td.fingerprint() == td2.fingerprint()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), dialects)
def test_dataframe_input_matches_csv_input(table, dialect):
    records, columns = table
    frame = pd.DataFrame(records, columns=columns)  # pandas' own dtypes: object / float with NaN
    td_frame = read_trials(frame)
    check_values(td_frame, records, columns)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "in.csv"
        write_csv(p, records, columns, dialect)
        td_file = read_trials(p)
    assert td_frame.equals(td_file)
    # and the typed long frame is valid input too
    td_long = read_trials(td_file.long())
    assert td_long.equals(td_file)
    pd.testing.assert_frame_equal(td_long.long(), td_file.long())


def test_round_trip_without_the_arm_column(tmp_path):
    # arm defaults to the treatment label; writing it out adds the column, reading gives the same
    p = tmp_path / "t.csv"
    p.write_text("study,treatment,outcome,events,n\ns1,tac,death,0,5\ns1,ivcy,death,1,6\n", encoding="utf-8")
    td = read_trials(p)
    assert list(td.arms["arm"]) == ["tac", "ivcy"]
    td2 = read_trials(td.to_csv(tmp_path / "o.csv"))
    assert td2.equals(td)
    assert io.StringIO(td.to_csv_text()).readline().startswith("study,arm,treatment,outcome,events,n")


@pytest.mark.parametrize("value", ["a\rb", " x", "NA"])
def test_text_that_does_not_round_trip_is_normalised_on_input(tmp_path, value):
    """Documented normalisation: cells are stripped and NA/NaN are blank, so what comes
    back is the normalised value — and from then on it round-trips."""
    df = pd.DataFrame({"study": ["s1"], "treatment": ["tac"], "outcome": ["death"], "events": [0], "n": [5],
                       "country": [value]})
    td = read_trials(df)
    td2 = read_trials(td.to_csv(tmp_path / "o.csv"))
    assert td2.equals(td)
