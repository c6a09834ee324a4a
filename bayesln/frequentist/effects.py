"""Study-level effect sizes from arm counts, with metafor's ``escalc()`` semantics.

Notation (metafor's): for each study the 2x2 table is

==========  ========  ============
arm         events    non-events
==========  ========  ============
treatment   ``ai``    ``bi = n1i - ai``
control     ``ci``    ``di = n2i - ci``
==========  ========  ============

Measures (``yi`` and its sampling variance ``vi``):

* ``"RR"``: ``yi = log(ai/n1i) - log(ci/n2i)``, ``vi = 1/ai - 1/n1i + 1/ci - 1/n2i``;
* ``"OR"``: ``yi = log(ai*di / (bi*ci))``, ``vi = 1/ai + 1/bi + 1/ci + 1/di``;
* ``"RD"``: ``yi = ai/n1i - ci/n2i``, ``vi = p1(1-p1)/n1i + p2(1-p2)/n2i`` (large-sample
  variance, metafor's ``vtype="LS"``);
* ``"PETO"``: Peto's log odds ratio ``(ai - E)/V``, ``vi = 1/V`` with
  ``E = (ai+ci) n1i/N`` and ``V = (ai+ci)(bi+di) n1i n2i / (N^2 (N-1))``.

Zero cells (metafor's defaults are the defaults here):

* ``add=0.5, to="only0"``: add 1/2 to **every** cell of a study that has a zero in any
  of its four cells (events or non-events), leave the other studies alone;
* ``to="all"``: add ``add`` to every cell of every study; ``to="if0all"``: to every study
  when at least one study has a zero cell; ``to="none"``: never;
* ``drop00=False``: keep *double-zero* studies (no events in either arm, or events in every
  patient of both arms); with ``drop00=True`` their ``yi``/``vi`` are NaN and the caller
  reports them as excluded. After the 1/2 correction a kept double-zero study has a
  ``yi`` near 0 (exactly 0 when both arms have the same size) and a large ``vi``.

Validation (:func:`validate_counts`) refuses counts that cannot be a 2x2 table (negative,
events above the denominator, an empty arm, non-finite values) with one error that lists
every offending study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bayesln.data.schema import COUNT_MAX

from .errors import FrequentistInputError

MEASURES = ("RR", "OR", "RD")
TO_OPTIONS = ("only0", "all", "if0all", "none")


def _as_float(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise FrequentistInputError(f"{name}: counts must be numeric ({exc})") from None
    return arr


def check_measure(measure: str, allowed: Sequence[str] = MEASURES) -> str:
    """Normalise and check a measure name (case-insensitive)."""
    if not isinstance(measure, str) or measure.upper() not in allowed:
        raise FrequentistInputError(
            f"unknown measure {measure!r}; expected one of {', '.join(allowed)}"
        )
    return measure.upper()


def validate_counts(ai, n1i, ci, n2i, studies: Sequence[str] | None = None) -> None:
    """Raise :class:`FrequentistInputError` listing every study whose counts are not a
    valid 2x2 table.

    Checked: all four values finite (NaN is reported here too: callers that want missing
    counts *excluded* must drop those rows first), non-negative, ``events <= n`` in each
    arm, ``n > 0`` in each arm (a study with an empty arm is a one-arm study and has no
    contrast) and every count at most ``COUNT_MAX`` (10^9, the arm-level format's bound).
    Non-integer counts are accepted (as in metafor).
    """
    ai, n1i, ci, n2i = (_as_float(v, nm) for v, nm in zip((ai, n1i, ci, n2i), ("ai", "n1i", "ci", "n2i")))
    shapes = {a.shape for a in (ai, n1i, ci, n2i)}
    if len(shapes) != 1:
        raise FrequentistInputError(f"count vectors differ in shape: {sorted(shapes)}")
    flat = [a.reshape(-1) for a in (ai, n1i, ci, n2i)]
    k = flat[0].size
    labels = list(studies) if studies is not None else [f"study #{i + 1}" for i in range(k)]
    problems: list[str] = []
    for i in range(k):
        a, n1, c, n2 = (v[i] for v in flat)
        lab = labels[i]
        vals = {"events_t": a, "n_t": n1, "events_c": c, "n_c": n2}
        bad = [nm for nm, v in vals.items() if not np.isfinite(v)]
        if bad:
            problems.append(f"{lab}: non-finite or missing {', '.join(bad)}")
            continue
        neg = [nm for nm, v in vals.items() if v < 0]
        if neg:
            problems.append(f"{lab}: negative {', '.join(neg)}")
            continue
        if n1 == 0 or n2 == 0:
            side = "treatment" if n1 == 0 else "control"
            problems.append(f"{lab}: empty {side} arm (n = 0); a one-arm study has no two-arm contrast")
            continue
        big = [nm for nm, v in vals.items() if v > COUNT_MAX]
        if big:
            problems.append(f"{lab}: {', '.join(big)} above {COUNT_MAX:,}, the largest count accepted (as in the "
                            "arm-level format; beyond it the variances lose their precision)")
            continue
        if a > n1:
            problems.append(f"{lab}: events_t = {a:g} exceeds n_t = {n1:g}")
        if c > n2:
            problems.append(f"{lab}: events_c = {c:g} exceeds n_c = {n2:g}")
    if problems:
        raise FrequentistInputError("invalid counts:\n  " + "\n  ".join(problems))


def _check_zero_options(add: float, to: str, drop00: bool) -> None:
    if to not in TO_OPTIONS:
        raise FrequentistInputError(f"unknown to={to!r}; expected one of {', '.join(TO_OPTIONS)}")
    if not np.isfinite(add) or add < 0:
        raise FrequentistInputError(f"add must be a finite non-negative number, got {add!r}")
    if not isinstance(drop00, (bool, np.bool_)):
        raise FrequentistInputError(f"drop00 must be True or False, got {drop00!r}")


def double_zero(ai, n1i, ci, n2i) -> np.ndarray:
    """metafor's double-zero flag: no events in both arms, or no non-events in both arms."""
    ai, n1i, ci, n2i = (np.asarray(v, dtype=float) for v in (ai, n1i, ci, n2i))
    bi, di = n1i - ai, n2i - ci
    with np.errstate(invalid="ignore"):
        return ((ai == 0) & (ci == 0)) | ((bi == 0) & (di == 0))


def zero_cell(ai, n1i, ci, n2i) -> np.ndarray:
    """True for studies with at least one zero among the four cells."""
    ai, n1i, ci, n2i = (np.asarray(v, dtype=float) for v in (ai, n1i, ci, n2i))
    bi, di = n1i - ai, n2i - ci
    with np.errstate(invalid="ignore"):
        return (ai == 0) | (bi == 0) | (ci == 0) | (di == 0)


def corrected_tables(ai, n1i, ci, n2i, *, add: float = 0.5, to: str = "only0", drop00: bool = False):
    """Apply metafor's zero-cell handling; return ``(ai, bi, ci, di)`` as float arrays.

    Works on arrays of any shape; with a 2-D input the ``"if0all"`` rule applies per row
    (one meta-analysis per row). NaN cells (padding) stay NaN.
    """
    _check_zero_options(add, to, bool(drop00))
    ai, n1i, ci, n2i = (np.array(v, dtype=float, copy=True) for v in (ai, n1i, ci, n2i))
    bi, di = n1i - ai, n2i - ci
    if drop00:
        id00 = double_zero(ai, n1i, ci, n2i)
        for arr in (ai, bi, ci, di):
            arr[id00] = np.nan
    with np.errstate(invalid="ignore"):
        id0 = (ai == 0) | (bi == 0) | (ci == 0) | (di == 0)
    if to == "all":
        sel = np.ones_like(ai, dtype=bool)
    elif to == "only0":
        sel = id0
    elif to == "if0all":
        if ai.ndim <= 1:
            sel = np.full(ai.shape, bool(id0.any()))
        else:
            sel = np.broadcast_to(id0.any(axis=-1, keepdims=True), ai.shape)
    else:
        sel = np.zeros_like(ai, dtype=bool)
    for arr in (ai, bi, ci, di):
        arr[sel] += add
    return ai, bi, ci, di


def escalc_arrays(ai, n1i, ci, n2i, measure: str = "RR", *, add: float = 0.5, to: str = "only0",
                  drop00: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(yi, vi)`` arrays, metafor ``escalc(measure, ai, n1i, ci, n2i, add, to, drop00)``.

    No validation beyond the options (see :func:`validate_counts`); with ``to="none"`` a
    zero cell gives a non-finite ``yi`` or ``vi``, exactly as in metafor. Dropped
    double-zero studies give NaN.
    """
    measure = check_measure(measure, MEASURES + ("PETO",))
    a, b, c, d = corrected_tables(ai, n1i, ci, n2i, add=add, to=to, drop00=drop00)
    n1, n2 = a + b, c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = a / n1, c / n2
        if measure == "RR":
            yi = np.log(p1) - np.log(p2)
            vi = 1 / a - 1 / n1 + 1 / c - 1 / n2
        elif measure == "OR":
            yi = np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2))
            vi = 1 / a + 1 / b + 1 / c + 1 / d
        elif measure == "RD":
            yi = p1 - p2
            vi = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
        else:  # PETO
            n = n1 + n2
            xt, yt = a + c, b + d
            e = xt * n1 / n
            v = xt * yt * (n1 / n) * (n2 / n) / (n - 1)
            yi = (a - e) / v
            vi = 1 / v
    return yi, vi


@dataclass(frozen=True)
class EffectSizes:
    """Per-study effect sizes: ``yi``, ``vi`` plus the zero-cell bookkeeping."""

    measure: str
    yi: np.ndarray
    vi: np.ndarray
    zero_cell: np.ndarray  # study had a zero cell (before correction)
    corrected: np.ndarray  # add was applied to this study's cells
    double_zero: np.ndarray
    dropped: np.ndarray  # yi/vi NaN because drop00=True
    add: float
    to: str
    drop00: bool


def escalc(ai, n1i, ci, n2i, measure: str = "RR", *, add: float = 0.5, to: str = "only0",
           drop00: bool = False, studies: Sequence[str] | None = None) -> EffectSizes:
    """Validated effect sizes (metafor ``escalc``; see the module docstring for formulas).

    Parameters
    ----------
    ai, n1i, ci, n2i : array-like
        Events and patients in the treatment (``ai``/``n1i``) and control (``ci``/``n2i``)
        arm of each study.
    measure : ``"RR"`` | ``"OR"`` | ``"RD"`` | ``"PETO"``
        Log risk ratio, log odds ratio, risk difference or Peto's log odds ratio.
    add, to, drop00
        Zero-cell handling; defaults are metafor's (1/2 added to all four cells of a study
        with a zero cell; double-zero studies kept).
    """
    validate_counts(ai, n1i, ci, n2i, studies)
    measure = check_measure(measure, MEASURES + ("PETO",))
    yi, vi = escalc_arrays(ai, n1i, ci, n2i, measure, add=add, to=to, drop00=drop00)
    zc = zero_cell(ai, n1i, ci, n2i)
    dz = double_zero(ai, n1i, ci, n2i)
    dropped = dz & bool(drop00)
    if to == "all":
        corrected = ~dropped
    elif to == "only0":
        corrected = zc & ~dropped
    elif to == "if0all":
        corrected = np.full(zc.shape, bool((zc & ~dropped).any())) & ~dropped
    else:
        corrected = np.zeros_like(zc)
    if add == 0:
        corrected = np.zeros_like(zc)
    return EffectSizes(measure, yi, vi, zc, corrected, dz, dropped, float(add), to, bool(drop00))
