"""Reading and validating arm-level trial tables.

Every problem in a file is collected (file, line, column, value, message) and reported
together in one :class:`DataValidationError`; nothing is returned when anything is
wrong. Line numbers are the lines a user sees in an editor (the header is line 1).
For a DataFrame, "line" is the row's index label.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayesln import vocab
from bayesln.data import schema


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | str | None
    column: str | None
    value: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        v = self.value
        if v is not None and len(v) > 80:
            v = v[:60] + f"... ({len(v):,} characters)"
        val = "" if v is None else f" (value {v!r})"
        return f"{', '.join(where)}: {self.message}{val}"


class DataValidationError(ValueError):
    """Raised with the complete list of problems found in one input."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found; nothing was loaded:"
        super().__init__("\n".join([head] + [f"  - {p}" for p in self.problems]))


# ----------------------------------------------------------------------------- reading


def _read_text(path: Path, label: str) -> str:
    if not path.exists():
        raise DataValidationError([Problem(label, None, None, None, "file not found")])
    if path.is_dir():
        raise DataValidationError([Problem(label, None, None, None, "is a directory, not a CSV file")])
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DataValidationError([Problem(label, None, None, None, f"cannot be read: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise DataValidationError([Problem(
            label, None, None, None,
            f"is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB, the most a data file may hold (is it the right file?)")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 1].hex()
        raise DataValidationError(
            [
                Problem(
                    label, line, None, f"0x{bad}",
                    f"the file is not UTF-8 text (undecodable byte at offset {exc.start}); "
                    "save it as UTF-8 CSV",
                )
            ]
        ) from None
    if not text.strip():
        raise DataValidationError([Problem(label, None, None, None, "the file is empty")])
    return text


def _rows_from_text(
    text: str, label: str
) -> tuple[list[str], list[tuple[int, list[str]]], int, list[Problem]]:
    """Header, well-formed rows, the header's line, and one problem per ragged row (a row
    whose field count differs from the header's; it is left out of further checks so that
    the other rows' problems are still reported)."""
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    start = 1
    try:
        for rec in reader:
            line = start
            start = reader.line_num + 1
            if header is None:
                if not any(c.strip() for c in rec):
                    continue
                header = [c.strip() for c in rec]
                header_line = line
                continue
            if not any(c.strip() for c in rec):
                continue
            rows.append((line, rec))
    except csv.Error as exc:
        raise DataValidationError([Problem(label, reader.line_num, None, None, f"malformed CSV: {exc}")]) from None
    if header is None:  # only separators and blanks
        raise DataValidationError([Problem(label, None, None, None, "the file has no header row (only empty cells)")])
    problems: list[Problem] = []
    if len(header) == 1:
        for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if sep in header[0]:
                raise DataValidationError(
                    [
                        Problem(
                            label, header_line, None, header[0][:60],
                            f"the header looks {name}-delimited; the arm-level format is comma-separated "
                            "(e.g. re-export as 'CSV UTF-8 (comma delimited)')",
                        )
                    ]
                )
    good = []
    for line, rec in rows:
        if len(rec) != len(header):
            problems.append(
                Problem(label, line, None, None, f"has {len(rec)} fields but the header has {len(header)}")
            )
        else:
            good.append((line, rec))
    if problems and not good:
        raise DataValidationError(problems)
    return header, good, header_line, problems


def _rows_from_frame(frame: pd.DataFrame) -> tuple[list[str], list[tuple[int | str, list[str]]]]:
    header = [str(c).strip() for c in frame.columns]
    rows = []
    for idx, rec in zip(frame.index, frame.itertuples(index=False, name=None)):
        cells = []
        for v in rec:
            if v is None or v is pd.NA or v is pd.NaT:
                cells.append("")
            elif isinstance(v, (bool, np.bool_)):
                cells.append("true" if v else "false")
            elif isinstance(v, (float, np.floating)):
                # repr of the Python float: exact, and never numpy's "np.float64(24.0)";
                # integers held in a float column (pandas upcasts when NaN is present)
                # are read back as whole numbers by the integer columns
                # (pandas upcasts an integer column with NaN to float): whole floats are
                # written as integers, the way a CSV holds counts
                f = float(v)
                if math.isnan(f):
                    cells.append("")
                elif f.is_integer() and abs(f) < 2**53:
                    cells.append(str(int(f)))
                else:
                    cells.append(repr(f))
            elif isinstance(v, (int, np.integer)):
                cells.append(str(int(v)))
            else:
                cells.append(str(v))
        rows.append((idx, cells))
    return header, rows


# ----------------------------------------------------------------------------- parsing


#: the largest count (events, n and the arm sizes) the format accepts (see schema.COUNT_MAX)
COUNT_MAX = schema.COUNT_MAX
#: the largest data file read (bytes): a CSV of this size holds millions of rows; reading
#: stops there, so a wrong path (a device, a huge log) is refused instead of filling memory
MAX_FILE_BYTES = 64 * 1024 * 1024
#: cells read as missing in integer, number and boolean columns besides the empty cell;
#: in text columns "NA" is text (a study called NA, the country code of Namibia)
MISSING_WORDS = frozenset({"NA"})
#: leading characters that make spreadsheet programs run a cell as a formula ("CSV
#: injection"): refused at the start of any text cell, so no export can carry one
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_INTEGER_RE = re.compile(r"-?[0-9]+")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


#: identifier columns: one line of printable text (free-text columns may hold line breaks)
LABEL_COLUMNS = frozenset({"study", "arm", "treatment", "outcome", "regimen", "design", "phase"})


def _text_problem(column: str, s: str) -> str | None:
    """Why a text cell cannot be taken (formula start, control characters), or None."""
    if s.startswith(FORMULA_START) and s != "-":  # a lone dash ("not reported") runs nothing
        return (f"text beginning with {s[0]!r} is refused: spreadsheet programs run such a cell as a formula "
                "when an exported CSV is opened (remove the leading character)")
    allowed = "" if column in LABEL_COLUMNS else "\n\r\t"
    if any((ord(ch) < 32 or ord(ch) == 127) and ch not in allowed for ch in s):
        what = "a label must be one line of printable text" if column in LABEL_COLUMNS else "text must be printable"
        return f"contains a control character (tab, line break, NUL, ...); {what}"
    return None


#: a label of an open vocabulary (a user's own outcome or treatment): letters, digits and
#: ``_ . + -`` and inner spaces, at most 80 characters (commas separate labels on the
#: command line)
LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.+\- ]{0,78}[A-Za-z0-9_.+\-])?")


def _near_miss(value: str, known: Iterable[str]) -> str | None:
    """A bundled-vocabulary label ``value`` looks like a typo of, if any."""
    import difflib

    hits = difflib.get_close_matches(value.lower(), sorted(known), n=1, cutoff=0.8)
    return hits[0] if hits and hits[0] != value else None


def _parse_cell(col: schema.Column, raw: str, allowed_enum: Iterable[str] | None):
    """Returns (value, error message or None). Blank -> (None, None).

    Counts and other integers are ASCII decimal digits only (an optional sign, surrounding
    spaces): no exponent, no decimal point, no '_' separators, no other scripts' digits,
    at most :data:`COUNT_MAX`. Numbers are ASCII decimals (with an optional exponent).
    ``NA`` means missing in integer, number and boolean columns only."""
    s = raw.strip(" ")
    if s == "" or (col.type != "string" and s in MISSING_WORDS):
        return None, None
    if col.type == "string":
        bad = _text_problem(col.name, s)
        if bad:
            return None, bad
        s = s.strip()
        if allowed_enum is not None and s not in allowed_enum:
            known = ", ".join(sorted(allowed_enum))
            return None, f"unknown {col.name} label; known labels: {known}"
        return s, None
    s = s.strip()
    if col.type == "integer":
        if not _INTEGER_RE.fullmatch(s):
            return None, "not a whole number (write the count in decimal digits 0-9 only, e.g. 12)"
        if len(s.lstrip("-")) > 12:
            return None, f"too large: counts are at most {COUNT_MAX:,}"
        v = int(s)
        if v > COUNT_MAX:
            return None, f"too large: counts are at most {COUNT_MAX:,}"
    elif col.type == "number":
        if not _NUMBER_RE.fullmatch(s) or len(s) > 40:
            return None, "not a number (write a decimal number such as 0.45)"
        v = float(s)
        if not math.isfinite(v):
            return None, "not a finite number"
    elif col.type == "boolean":
        low = s.lower()
        if low in schema.TRUE_WORDS:
            return True, None
        if low in schema.FALSE_WORDS:
            return False, None
        return None, "not a boolean (use true/false)"
    else:  # pragma: no cover - schema is static
        raise AssertionError(col.type)
    if col.minimum is not None and v < col.minimum:
        if col.name == "n" and v == 0:
            return None, "n = 0: an arm needs at least one patient"
        if col.name in ("events", "n") or col.type == "integer":
            return None, f"must be ≥ {col.minimum:g}"
        return None, f"out of range [{col.minimum:g}, {col.maximum:g}]" if col.maximum is not None else f"must be ≥ {col.minimum:g}"
    if col.maximum is not None and v > col.maximum:
        if col.minimum is not None:
            return None, f"out of range [{col.minimum:g}, {col.maximum:g}]"
        return None, f"must be ≤ {col.maximum:g}"
    return v, None


_DTYPES = {"string": "string", "integer": "Int64", "number": "Float64", "boolean": "boolean"}


def parse_table(
    source: str | os.PathLike | pd.DataFrame,
    *,
    extra_outcomes: Iterable[str] = (),
    extra_treatments: Iterable[str] = (),
    require_contrast: bool = False,
    label: str | None = None,
    vocabulary: str = "open",
    wide: dict | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Parse and validate an arm-level table into a typed long DataFrame.

    Returns ``(frame, ignored_columns)``. Raises :class:`DataValidationError` listing every
    problem. ``require_contrast=True`` makes a study with fewer than two arms an error
    (for analyses that form two-arm contrasts).

    The **wide 2x2 layout** (one row per study: ``study, events_t, n_t, events_c, n_c`` as
    in :meth:`TrialData.contrasts`, or metafor's ``ai, n1i, ci, n2i``) is read too: each
    row becomes its two arms, with the same validation and messages naming the file's own
    lines and columns. The arms' treatment labels come from the optional columns
    ``treatment_t`` / ``treatment_c`` (else ``wide["treat"]`` / ``wide["control"]``,
    default ``treatment`` / ``control``) and the outcome from an ``outcome`` column (else
    ``wide["outcome"]``, required then); every other column (design, year, covariates,
    ...) applies to both arms.

    ``vocabulary``: ``"open"`` (users' data: any outcome and treatment label that is a
    label - letters, digits, ``_ . + -``, inner spaces - is taken; one that looks like a
    typo of a bundled label is taken with a warning in ``frame.attrs["label_warnings"]``,
    e.g. "did you mean 'total_response'?") or ``"closed"`` (the bundled datasets: only the
    bundled vocabulary and ``extra_*``, others refused with the known labels listed).
    """
    if vocabulary not in ("open", "closed"):
        raise ValueError(f"vocabulary must be 'open' or 'closed', not {vocabulary!r}")
    problems: list[Problem] = []
    if isinstance(source, pd.DataFrame):
        label = label or "<DataFrame>"
        if source.shape[0] == 0:
            raise DataValidationError([Problem(label, None, None, None, "the table has no rows")])
        header, rows = _rows_from_frame(source)
        header_line = None
    else:
        path = Path(source)
        label = label or str(source)
        header, rows, header_line, problems = _rows_from_text(_read_text(path, label), label)
        if not rows:
            raise DataValidationError([Problem(label, None, None, None, "the file has a header but no data rows")])

    header, rows = _drop_unnamed_empty_columns(header, rows)
    column_names: dict = {}  # wide layout: (line, arm side) -> long column -> the file's column
    if is_wide(header):
        header, rows, column_names = _wide_to_long(header, rows, label, header_line, wide or {})
    header_problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, h in enumerate(header):
        if h in seen:
            header_problems.append(Problem(label, header_line, h, None, "duplicate column name"))
        seen[h] = i
    missing = [c for c in schema.REQUIRED if c not in seen]
    if missing:
        header_problems.append(
            Problem(
                label, header_line, ", ".join(missing), None,
                "missing required column(s); the arm-level format needs "
                + ", ".join(schema.REQUIRED),
            )
        )
    if header_problems:  # the cells cannot be read without a usable header
        raise DataValidationError(header_problems + problems)
    ignored = [h for h in header if h not in schema.BY_NAME]

    enums = {
        "outcome": set(vocab.OUTCOMES) | set(extra_outcomes),
        "treatment": set(vocab.TREATMENTS) | set(extra_treatments),
    }
    present = [c for c in schema.COLUMNS if c.name in seen]
    records: list[dict] = []
    lines: list[int | str] = []
    blank_outcome: list[bool] = []
    label_warnings: dict[tuple[str, str], str] = {}
    for line, cells in rows:
        blank_outcome.append(cells[seen["outcome"]].strip() == "")
        rec: dict = {}
        for col in present:
            raw = cells[seen[col.name]]
            if col.extensible and vocabulary == "open":
                allowed = None
            else:
                allowed = enums.get(col.name) if col.extensible else (col.enum if col.enum else None)
            val, err = _parse_cell(col, raw, allowed)
            if not err and val is not None and col.extensible and vocabulary == "open" and val not in enums[col.name]:
                if not LABEL_RE.fullmatch(val):
                    err = (f"not {'an' if col.name[0] in 'aeiou' else 'a'} {col.name} label: use letters, digits, "
                           "'_', '.', '+', '-' and inner spaces (at most 80 characters)")
                    val = None
                elif (col.name, val) not in label_warnings:
                    near = _near_miss(val, enums[col.name])
                    label_warnings[(col.name, val)] = (
                        f"{label}, line {line}: {col.name} {val!r} is not in the bundled vocabulary"
                        + (f" (did you mean {near!r}?)" if near else "") + "; taken as a label of your own")
            if err:
                problems.append(Problem(label, line, col.name, raw.strip(), err))
            rec[col.name] = val
        records.append(rec)
        lines.append(line)

    # row-level rules
    for line, rec, no_outcome in zip(lines, records, blank_outcome):
        if rec.get("study") is None and not _has_problem(problems, line, "study"):
            problems.append(Problem(label, line, "study", "", "study is blank"))
        if rec.get("treatment") is None and not any(
            p.line == line and p.column == "treatment" for p in problems
        ):
            problems.append(Problem(label, line, "treatment", "", "treatment is blank"))
        if rec.get("arm") is None:
            rec["arm"] = rec.get("treatment")
        ev, n = rec.get("events"), rec.get("n")
        if no_outcome and (ev is not None or n is not None):
            problems.append(Problem(label, line, "outcome", "", "events or n given without an outcome"))
        if ev is not None and n is not None and ev > n:
            problems.append(Problem(label, line, "events", str(ev), f"events exceed n ({n})"))
        if ev is not None and n is None and not _has_problem(problems, line, "n"):
            problems.append(Problem(label, line, "n", "", "events given but n is blank"))

    ok = [
        (line, rec)
        for line, rec in zip(lines, records)
        if rec.get("study") is not None and rec.get("arm") is not None
    ]
    _check_duplicates(ok, label, problems)
    _check_constant(ok, label, problems, schema.ARM_COLUMNS, ("study", "arm"), "arm")
    _check_constant(ok, label, problems, schema.STUDY_COLUMNS, ("study",), "study")
    _check_response_sums(ok, label, problems)
    if require_contrast:
        _check_two_arms(ok, label, problems)
    if problems and column_names:  # wide layout: name the file's own columns
        problems = [Problem(p.file, p.line, column_names[p.line].resolve(p.column, p.value) if p.line in column_names
                            else p.column, p.value, p.message) for p in problems]
    if problems:
        if isinstance(source, pd.DataFrame):  # index labels: keep the frame's row order
            order = {line: i for i, line in enumerate(lines)}
            key = lambda p: order.get(p.line, -1)  # noqa: E731
        else:  # editor line numbers (ragged rows included); whole-file problems first
            key = lambda p: -1 if p.line is None else p.line  # noqa: E731
        raise DataValidationError(sorted(problems, key=key))

    frame = pd.DataFrame.from_records(records, columns=[c.name for c in present] + (["arm"] if "arm" not in seen else []))
    for col in schema.COLUMNS:
        if col.name not in frame.columns:
            frame[col.name] = pd.Series([None] * len(frame), dtype=object)
        frame[col.name] = frame[col.name].astype(object).where(frame[col.name].notna(), None)
        frame[col.name] = pd.array(list(frame[col.name]), dtype=_DTYPES[col.type])
    frame = frame[list(schema.ORDER)]
    # only the near misses are worth a warning: a label of one's own is the normal case
    frame.attrs["label_warnings"] = [w for w in label_warnings.values() if "did you mean" in w]
    return frame, ignored


#: the wide 2x2 layouts: (events_t, n_t, events_c, n_c) column names
WIDE_LAYOUTS = (("events_t", "n_t", "events_c", "n_c"), ("ai", "n1i", "ci", "n2i"))


def is_wide(header) -> bool:
    """A header of the wide 2x2 layout (one row per study), not the long arm-level one."""
    h = set(header)
    return "treatment" not in h and any(set(cols) <= h for cols in WIDE_LAYOUTS)


def _wide_to_long(header, rows, label, header_line, wide: dict):
    """Rows of the wide layout as rows of the long one (two per study, same line numbers),
    and, per line, the map from a long column to the wide file's column (for messages)."""
    cols = next(c for c in WIDE_LAYOUTS if set(c) <= set(header))
    ev_t, n_t, ev_c, n_c = cols
    if "outcome" not in header and not wide.get("outcome"):
        raise DataValidationError([Problem(
            label, header_line, "outcome", None,
            "the wide 2x2 layout needs the outcome: an 'outcome' column, or the outcome given with the data "
            "(--outcome on the command line, outcome= in Python)")])
    shared = [h for h in header if h not in cols + ("treatment_t", "treatment_c", "arm")]
    long_header = shared + (["outcome"] if "outcome" not in shared else []) + ["arm", "treatment", "events", "n"]
    out_rows, names = [], {}
    pos = {h: i for i, h in enumerate(header)}
    for line, cells in rows:
        base = [cells[pos[h]] for h in shared] + ([wide["outcome"]] if "outcome" not in shared else [])
        t_lab = cells[pos["treatment_t"]] if "treatment_t" in pos else wide.get("treat") or "treatment"
        c_lab = cells[pos["treatment_c"]] if "treatment_c" in pos else wide.get("control") or "control"
        out_rows.append((line, base + [t_lab, t_lab, cells[pos[ev_t]], cells[pos[n_t]]]))
        out_rows.append((line, base + [c_lab, c_lab, cells[pos[ev_c]], cells[pos[n_c]]]))
    # a line holds both arms: a problem in 'events' is in whichever column the value came from
    for line, cells in rows:
        names[line] = _WideColumns(ev_t, n_t, ev_c, n_c, "treatment_t" in pos, cells, pos)
    return long_header, out_rows, names


class _WideColumns:
    """The wide file's column behind a long column of one line: 'events' / 'n' (and the
    arm labels) come from the treated or the control side, told apart by the value the
    problem quotes; both sides are named when they hold the same value."""

    def __init__(self, ev_t, n_t, ev_c, n_c, labelled, cells, pos):
        lab = ("treatment_t", "treatment_c") if labelled else (None, None)
        self.sides = {"events": (ev_t, ev_c), "n": (n_t, n_c), "treatment": lab, "arm": lab}
        self.cells, self.pos = cells, pos

    def resolve(self, column, value):
        t, c = self.sides.get(column, (None, None))
        if t is None:
            return column
        vt, vc = (self.cells[self.pos[x]].strip() for x in (t, c))
        if value is not None and vt != vc:
            return t if value == vt else c if value == vc else f"{t} / {c}"
        return f"{t} / {c}"


def _drop_unnamed_empty_columns(header, rows):
    """Spreadsheets often export trailing columns with a blank name and no values: they are
    dropped. A blank-named column that holds values is named "(unnamed column k)" (k is
    its 1-based position) so that it is reported, and ignored, like any unknown column."""
    unnamed = [i for i, h in enumerate(header) if h == ""]
    if not unnamed:
        return header, rows
    empty = {i for i in unnamed if all(not cells[i].strip() for _, cells in rows)}
    keep = [i for i in range(len(header)) if i not in empty]
    header = [header[i] or f"(unnamed column {i + 1})" for i in keep]
    rows = [(line, [cells[i] for i in keep]) for line, cells in rows]
    return header, rows


def _has_problem(problems: list[Problem], line, column) -> bool:
    return any(p.line == line and p.column == column for p in problems)


def _check_duplicates(ok, label, problems):
    first: dict[tuple, int | str] = {}
    for line, rec in ok:
        key = (rec["study"], rec["arm"], rec.get("outcome"))
        if key in first:
            what = f"outcome {key[2]!r}" if key[2] is not None else "an outcome-less row"
            problems.append(
                Problem(
                    label, line, "arm", rec["arm"],
                    f"duplicate (study, arm) for {what}: study {key[0]!r}, arm {key[1]!r} already on line {first[key]}",
                )
            )
        else:
            first[key] = line


def _check_constant(ok, label, problems, columns, key_cols, level):
    """A blank cell in an arm/study-level column is not a disagreement; every non-blank
    value must equal the first non-blank value of its arm/study (whichever row has it)."""
    firsts: dict[tuple, dict[str, tuple]] = {}
    for line, rec in ok:
        key = tuple(rec[k] for k in key_cols)
        known = firsts.setdefault(key, {})
        for c in columns:
            if c == "arm":
                continue
            b = rec.get(c)
            if b is None:
                continue
            if c not in known:
                known[c] = (line, b)
                continue
            fline, a = known[c]
            if a != b:
                problems.append(
                    Problem(
                        label, line, c, str(b),
                        f"{level}-level column differs within {level} {' / '.join(map(str, key))} "
                        f"(line {fline} has {a!r})",
                    )
                )


def _check_response_sums(ok, label, problems):
    by_arm: dict[tuple, dict[str, tuple]] = {}
    for line, rec in ok:
        o = rec.get("outcome")
        if o in ("complete_response", "partial_response", "total_response") and rec.get("events") is not None:
            by_arm.setdefault((rec["study"], rec["arm"]), {})[o] = (line, rec["events"])
    for (study, arm), d in by_arm.items():
        if "total_response" not in d:
            continue
        tline, total = d["total_response"]
        for part in ("complete_response", "partial_response"):
            if part in d and d[part][1] > total:
                problems.append(
                    Problem(
                        label, d[part][0], "events", str(d[part][1]),
                        f"{part} exceeds total_response ({total}, line {tline}) in study {study!r}, arm {arm!r}",
                    )
                )
        if "complete_response" in d and "partial_response" in d:
            cr, pr = d["complete_response"][1], d["partial_response"][1]
            if cr + pr != total:
                problems.append(
                    Problem(
                        label, tline, "events", str(total),
                        f"complete ({cr}) + partial ({pr}) = {cr + pr} ≠ total_response in study {study!r}, arm {arm!r}",
                    )
                )


def _check_two_arms(ok, label, problems):
    arms: dict[str, set] = {}
    first: dict[str, int | str] = {}
    for line, rec in ok:
        arms.setdefault(rec["study"], set()).add(rec["arm"])
        first.setdefault(rec["study"], line)
    for study, a in arms.items():
        if len(a) < 2:
            problems.append(
                Problem(
                    label, first[study], "study", study,
                    "has only one arm, but a two-arm contrast was requested",
                )
            )
