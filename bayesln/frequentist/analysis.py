"""DataFrame-level meta-analysis: tidy results from a table of two-arm contrasts.

Input: a *contrast table*, one row per study, with columns ``study, events_t, n_t,
events_c, n_c`` (treatment = ``_t``, control = ``_c``) and optionally ``year`` and any
grouping column (e.g. ``regimen``). This is what ``TrialData.contrasts(outcome, ...)``
returns; multi-arm trials are already collapsed there (arms on the same side pooled), so
the engine never sees a study twice: a repeated study raises
:class:`~bayesln.frequentist.errors.DuplicateStudyError`.

Missing counts (NaN / ``pd.NA``; blank is unknown) exclude the study with a reported
reason (``.excluded``); impossible counts (negative, events > n, an empty arm, +/-inf)
raise :class:`~bayesln.frequentist.errors.FrequentistInputError` listing every problem.

Tidy summary columns (one row per outcome x subgroup x method):

==================  ==================================================================
outcome, subgroup   labels passed by the caller (subgroup ``"all"`` by default)
method, model       ``mh|peto|iv|dl|reml|pm``; ``common`` or ``random``
measure, test       ``RR|OR|RD``; ``z`` (Wald) or ``knha`` (Hartung-Knapp-Sidik-Jonkman)
k                   studies in the model
estimate, ci_low,   pooled effect and ``level``% CI on the natural scale (ratio for RR/OR,
ci_high             difference for RD)
log_estimate, se    estimate and SE on the analysis scale (log RR / log OR; RD itself)
statistic, df       z statistic (df NaN) or t statistic with df = k-1 (knha)
pvalue              two-sided p-value of the effect
tau2, tau2_ci_*     tau^2 and its Q-profile CI (random effects; NaN for common-effect
                    models, which assume tau^2 = 0)
i2, i2_ci_*, h2     I^2 (percent) and H^2 (metafor's definitions, see models.py); I^2 CI
                    from the tau^2 CI (random effects only)
q, q_df, q_pvalue   Cochran's Q test of heterogeneity
pi_low, pi_high     prediction interval for a new study (random effects only), natural scale
level               confidence level (percent)
excluded            studies left out, with the reason (``;``-separated)
note                anything that explains a missing number (k = 1, ...)
==================  ==================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ._zeroin import R_UNIROOT_TOL
from .effects import check_measure, double_zero, escalc, validate_counts, zero_cell
from .errors import DuplicateStudyError, FrequentistInputError, NotEstimableError
from .models import (
    RANDOM_METHODS,
    PooledEstimate,
    check_method,
    mantel_haenszel,
    peto,
    rma_uni,
)

REQUIRED_COLUMNS = ("study", "events_t", "n_t", "events_c", "n_c")
COUNT_COLUMNS = REQUIRED_COLUMNS[1:]

SUMMARY_COLUMNS = (
    "outcome", "subgroup", "method", "model", "measure", "test", "k",
    "estimate", "ci_low", "ci_high", "log_estimate", "se", "statistic", "df", "pvalue",
    "tau2", "tau2_ci_low", "tau2_ci_high", "i2", "i2_ci_low", "i2_ci_high", "h2",
    "q", "q_df", "q_pvalue", "pi_low", "pi_high", "level", "excluded", "note",
)

STUDY_COLUMNS = (
    "study", "events_t", "n_t", "events_c", "n_c", "yi", "vi", "se", "effect", "ci_low", "ci_high",
    "weight", "included", "note",
)


# ---------------------------------------------------------------------------------------
# input
# ---------------------------------------------------------------------------------------


def _attrs_excluded(contrasts: pd.DataFrame) -> list[tuple[str, str]]:
    """Studies the data layer already excluded (``.attrs["excluded"]``), as (study, reason)."""
    ex = contrasts.attrs.get("excluded") if hasattr(contrasts, "attrs") else None
    out: list[tuple[str, str]] = []
    if ex is None:
        return out
    if isinstance(ex, pd.DataFrame):
        if len(ex) == 0:
            return out
        scol = "study" if "study" in ex.columns else ex.columns[0]
        rcol = next((c for c in ("reason", "why", "message") if c in ex.columns), None)
        for _, r in ex.iterrows():
            out.append((str(r[scol]), str(r[rcol]) if rcol else "excluded by the data layer"))
    elif isinstance(ex, dict):
        out.extend((str(s), str(r)) for s, r in ex.items())
    else:
        for item in ex:
            if isinstance(item, (tuple, list)) and len(item) >= 2:
                out.append((str(item[0]), str(item[1])))
            elif isinstance(item, dict):
                out.append((str(item.get("study")), str(item.get("reason", "excluded by the data layer"))))
            else:
                out.append((str(item), "excluded by the data layer"))
    return out


def prepare_contrasts(contrasts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check a contrast table; return ``(usable rows, excluded)``.

    ``excluded`` has columns ``study, reason`` (missing counts here, plus whatever the
    data layer listed in ``contrasts.attrs["excluded"]``).
    """
    if not isinstance(contrasts, pd.DataFrame):
        raise FrequentistInputError(
            f"expected a pandas DataFrame of contrasts with columns {', '.join(REQUIRED_COLUMNS)}, "
            f"got {type(contrasts).__name__}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in contrasts.columns]
    if missing:
        raise FrequentistInputError(
            f"contrast table lacks column(s) {', '.join(missing)} "
            f"(needs {', '.join(REQUIRED_COLUMNS)})"
        )
    df = contrasts.copy()
    df.attrs = {}
    if df["study"].isna().any():
        raise FrequentistInputError("contrast table has rows without a study id")
    df["study"] = df["study"].astype(str)
    dup = df["study"][df["study"].duplicated()].unique().tolist()
    if dup:
        raise DuplicateStudyError(
            "study listed more than once in the contrast table: " + ", ".join(dup)
            + ". The engine needs one two-arm contrast per study; pool multi-arm trials first "
            "(TrialData.contrasts(..., multi_arm='pool'))."
        )
    for c in COUNT_COLUMNS:
        try:
            df[c] = pd.to_numeric(df[c], errors="raise").astype(float)
        except (TypeError, ValueError) as exc:
            raise FrequentistInputError(f"column {c}: counts must be numeric ({exc})") from None
    excluded = _attrs_excluded(contrasts)
    na = df[list(COUNT_COLUMNS)].isna()
    for i in np.flatnonzero(na.any(axis=1).to_numpy()):
        cols = [c for c in COUNT_COLUMNS if na.iloc[i][c]]
        excluded.append((df["study"].iloc[i], f"missing count(s): {', '.join(cols)}"))
    df = df[~na.any(axis=1)].reset_index(drop=True)
    if len(df) == 0:
        raise FrequentistInputError(
            "no study has complete counts"
            + (": " + "; ".join(f"{s} ({r})" for s, r in excluded) if excluded else "")
        )
    validate_counts(df["events_t"], df["n_t"], df["events_c"], df["n_c"], df["study"].tolist())
    return df, pd.DataFrame(excluded, columns=["study", "reason"])


def _excluded_text(excluded: pd.DataFrame) -> str:
    return "; ".join(f"{s} ({r})" for s, r in zip(excluded["study"], excluded["reason"]))


def _natural(measure: str, x: float) -> float:
    return math.exp(x) if measure in ("RR", "OR") and x == x else x


def _check_not_all_double_zero(df: pd.DataFrame, measure: str) -> None:
    dz = double_zero(df["events_t"], df["n_t"], df["events_c"], df["n_c"])
    if dz.all():
        raise NotEstimableError(
            f"every study is double-zero (no events in either arm, or events in every patient "
            f"of both arms): {', '.join(df['study'])}; the pooled {measure} is not estimable"
        )


# ---------------------------------------------------------------------------------------
# result objects
# ---------------------------------------------------------------------------------------


@dataclass
class MetaAnalysis:
    """One pooled analysis: ``summary`` (one tidy row), ``studies`` (per-study table with
    ``weight`` in percent of the method's weights), ``excluded`` (study, reason) and the
    underlying :class:`~bayesln.frequentist.models.PooledEstimate` as ``fit``."""

    fit: PooledEstimate
    summary: pd.DataFrame
    studies: pd.DataFrame
    excluded: pd.DataFrame
    outcome: str | None = None
    subgroup: str = "all"

    def to_dict(self) -> dict:
        return _row_to_jsonable(self.summary.iloc[0].to_dict())


def _row_to_jsonable(row: dict) -> dict:
    out = {}
    for key, val in row.items():
        if isinstance(val, (float, np.floating)):
            out[key] = None if not np.isfinite(val) else float(val)
        elif isinstance(val, (np.integer,)):
            out[key] = int(val)
        elif val is pd.NA:
            out[key] = None
        else:
            out[key] = val
    return out


def summary_row(fit: PooledEstimate, *, outcome: str | None = None, subgroup: str = "all",
                excluded: pd.DataFrame | None = None, extra_notes: Sequence[str] = ()) -> dict:
    """The tidy summary row (dict) of a :class:`PooledEstimate` (columns: SUMMARY_COLUMNS)."""
    m = fit.measure
    random = fit.method in RANDOM_METHODS
    nan = math.nan
    notes = list(fit.notes) + list(extra_notes)
    return {
        "outcome": outcome,
        "subgroup": subgroup,
        "method": fit.method,
        "model": fit.model,
        "measure": m,
        "test": fit.test,
        "k": int(fit.k),
        "estimate": _natural(m, fit.beta),
        "ci_low": _natural(m, fit.ci_lb),
        "ci_high": _natural(m, fit.ci_ub),
        "log_estimate": fit.beta,
        "se": fit.se,
        "statistic": fit.statistic,
        "df": fit.df,
        "pvalue": fit.pvalue,
        "tau2": fit.tau2 if random else nan,
        "tau2_ci_low": fit.tau2_ci_lb if random else nan,
        "tau2_ci_high": fit.tau2_ci_ub if random else nan,
        "i2": fit.i2,
        "i2_ci_low": fit.i2_ci_lb if random else nan,
        "i2_ci_high": fit.i2_ci_ub if random else nan,
        "h2": fit.h2,
        "q": fit.q,
        "q_df": int(fit.q_df),
        "q_pvalue": fit.q_pvalue,
        "pi_low": _natural(m, fit.pi_lb) if random else nan,
        "pi_high": _natural(m, fit.pi_ub) if random else nan,
        "level": fit.level,
        "excluded": _excluded_text(excluded) if excluded is not None and len(excluded) else "",
        "note": "; ".join(notes),
    }


def _fit(df: pd.DataFrame, measure: str, method: str, test: str, level: float, add, to, drop00,
         tol: float, confint: bool = True, reml_control: dict | None = None):
    """Fit one model to a prepared contrast table. Returns (fit, study_notes, dropped_mask)."""
    a, n1, c, n2 = (df[col].to_numpy(float) for col in COUNT_COLUMNS)
    labels = df["study"].tolist()
    k = len(df)
    notes = [""] * k
    dz = double_zero(a, n1, c, n2)
    zc = zero_cell(a, n1, c, n2)
    dropped = np.zeros(k, dtype=bool)
    if method in ("mh", "peto"):
        d00 = True if drop00 is None else drop00
        add_yi = add[0] if isinstance(add, (tuple, list)) else add
        add_est = add[1] if isinstance(add, (tuple, list)) else 0.0
        est_note = ("the estimate uses raw counts" if add_est == 0 else f"{add_est:g} added for the estimate")
        if method == "mh":
            fit = mantel_haenszel(a, n1, c, n2, measure, add=add, to=to, drop00=d00, level=level, labels=labels)
        else:
            fit = peto(a, n1, c, n2, add=add, to=to, drop00=d00, level=level, labels=labels)
        d_first = d00[0] if isinstance(d00, (tuple, list)) else d00
        d_second = d00[1] if isinstance(d00, (tuple, list)) else False
        for i in range(k):
            if dz[i]:
                if d_second:
                    notes[i] = "double-zero: dropped (drop00)"
                    dropped[i] = True
                elif measure == "RD" and method == "mh":
                    notes[i] = "double-zero: in the MH RD estimate; no yi, not in the Q test"
                else:
                    notes[i] = "double-zero: no information on the ratio (weight 0); not in the Q test"
            elif zc[i]:
                notes[i] = f"zero cell: {add_yi:g} added for yi/vi ({est_note})"
        return fit, notes, dropped
    d00 = False if drop00 is None else drop00
    if isinstance(d00, (tuple, list)) or isinstance(add, (tuple, list)) or isinstance(to, (tuple, list)):
        raise FrequentistInputError("add/to/drop00 pairs apply to the mh and peto methods only")
    es = escalc(a, n1, c, n2, measure, add=add, to=to, drop00=d00, studies=labels)
    ok = ~es.dropped
    if not ok.any():
        raise NotEstimableError("every study was dropped as double-zero (drop00=True)")
    fit = rma_uni(es.yi[ok], es.vi[ok], method, test=test, level=level, tol=tol, confint=confint,
                  measure=measure, labels=[lab for lab, o in zip(labels, ok) if o], reml_control=reml_control)
    wts = np.full(k, np.nan)
    wts[ok] = fit.weights
    fit = replace(fit, weights=wts, yi=es.yi.copy(), vi=es.vi.copy())
    for i in range(k):
        if es.dropped[i]:
            notes[i] = "double-zero: dropped (drop00=True)"
            dropped[i] = True
        elif es.corrected[i]:
            notes[i] = f"{es.add:g} added to each cell (to={es.to!r})" + (" ; double-zero" if dz[i] else "")
    return fit, notes, dropped


def _studies_table(df: pd.DataFrame, fit: PooledEstimate, notes, dropped, level: float) -> pd.DataFrame:
    m = fit.measure
    crit = stats.norm.isf((1 - level / 100) / 2)
    yi, vi = fit.yi, fit.vi
    se = np.sqrt(vi)
    lo, hi = yi - crit * se, yi + crit * se
    tr = np.exp if m in ("RR", "OR") else (lambda x: x)
    with np.errstate(invalid="ignore", over="ignore"):
        out = pd.DataFrame({
            "study": df["study"].to_numpy(),
            "events_t": df["events_t"].to_numpy(),
            "n_t": df["n_t"].to_numpy(),
            "events_c": df["events_c"].to_numpy(),
            "n_c": df["n_c"].to_numpy(),
            "yi": yi,
            "vi": vi,
            "se": se,
            "effect": tr(yi),
            "ci_low": tr(lo),
            "ci_high": tr(hi),
            "weight": fit.weights,
            "included": ~np.asarray(dropped),
            "note": notes,
        })
    for extra in ("year", "regimen", "subgroup"):
        if extra in df.columns and extra not in out.columns:
            out[extra] = df[extra].to_numpy()
    return out


def _resolve_test(method: str, hksj: bool) -> str:
    if hksj and method in ("mh", "peto"):
        raise FrequentistInputError(
            f"the Hartung-Knapp-Sidik-Jonkman adjustment (hksj) applies to inverse-variance models "
            f"(iv, dl, reml, pm), not to method {method!r}"
        )
    return "knha" if hksj else "z"


def meta_analysis(contrasts: pd.DataFrame, measure: str = "RR", method: str = "mh", *,
                  hksj: bool = False, level: float = 95.0, add=0.5, to="only0", drop00=None,
                  outcome: str | None = None, subgroup: str = "all",
                  tol: float = R_UNIROOT_TOL, reml_control: dict | None = None) -> MetaAnalysis:
    """Pool a contrast table with one method.

    Parameters
    ----------
    contrasts : DataFrame
        One row per study: ``study, events_t, n_t, events_c, n_c`` (+ optional columns).
    measure : ``"RR"`` | ``"OR"`` | ``"RD"``
    method : ``"mh"`` (Mantel-Haenszel, metafor ``rma.mh``), ``"peto"`` (OR only,
        ``rma.peto``), ``"iv"`` (inverse-variance common effect, ``rma(method="EE")``),
        ``"dl"``, ``"reml"``, ``"pm"`` (random effects, ``rma(method=...)``).
    hksj : bool
        Hartung-Knapp-Sidik-Jonkman CI and test (metafor ``test="knha"``; t with k-1 df,
        no truncation of the scale factor). Inverse-variance methods only.
    add, to, drop00
        Zero-cell handling, metafor's semantics and defaults: for ``iv/dl/reml/pm`` these are
        the ``escalc`` options (defaults 1/2, ``"only0"``, ``drop00=False``: double-zero
        studies kept, with 1/2 added to their cells). For ``mh``/``peto`` they apply to the per-study
        yi/vi used in the Q test and the study table, while the pooled estimate uses the raw
        counts (metafor ``add=c(1/2,0), to=c("only0","none"), drop00=c(TRUE,FALSE)``);
        ``drop00=None`` means the metafor default of the method. Pairs
        ``(yi/vi, estimate)`` are accepted for ``mh``/``peto``.
    tol : float
        Root-finding tolerance for PM and the Q-profile CI (metafor's default
        ``eps^0.25``; smaller values give the exact roots).
    reml_control : dict, optional
        ``threshold``/``maxiter``/``stepadj`` of metafor's REML Fisher scoring (defaults
        1e-5, 100, 1); ``{"stepadj": 0.5}`` rescues fits where metafor's default fails.
    """
    measure = check_measure(measure)
    method = check_method(method)
    if method == "peto" and measure != "OR":
        raise FrequentistInputError("Peto's method estimates odds ratios; use measure='OR'")
    test = _resolve_test(method, hksj)
    df, excluded = prepare_contrasts(contrasts)
    _check_not_all_double_zero(df, measure)
    fit, notes, dropped = _fit(df, measure, method, test, level, add, to, drop00, tol,
                               reml_control=reml_control)
    if dropped.any():
        excluded = pd.concat([excluded, pd.DataFrame({"study": df["study"][dropped],
                                                      "reason": "double-zero study dropped (drop00)"})],
                             ignore_index=True)
    studies = _studies_table(df, fit, notes, dropped, level)
    row = summary_row(fit, outcome=outcome, subgroup=subgroup, excluded=excluded)
    summary = pd.DataFrame([row], columns=list(SUMMARY_COLUMNS))
    return MetaAnalysis(fit=fit, summary=summary, studies=studies, excluded=excluded,
                        outcome=outcome, subgroup=subgroup)


def pool(contrasts: pd.DataFrame, measure: str = "RR", methods: Sequence[str] = ("mh", "reml"), *,
         hksj: bool = False, level: float = 95.0, outcome: str | None = None,
         subgroup: str = "all", **kwargs) -> pd.DataFrame:
    """Tidy summary rows for several methods (``hksj`` is applied to inverse-variance
    methods only; MH and Peto rows always use the Wald test)."""
    rows = []
    for m in methods:
        m = check_method(m)
        h = hksj and m not in ("mh", "peto")
        rows.append(meta_analysis(contrasts, measure, m, hksj=h, level=level, outcome=outcome,
                                  subgroup=subgroup, **kwargs).summary)
    return pd.concat(rows, ignore_index=True)


# ---------------------------------------------------------------------------------------
# subgroups
# ---------------------------------------------------------------------------------------


@dataclass
class SubgroupAnalysis:
    """Separate fits per subgroup plus the test of subgroup differences.

    ``summary``: one tidy row per subgroup and one for all studies (``subgroup="all"``);
    ``test``: ``q_between, df, pvalue`` and a description; ``studies``: the per-study table
    with a ``subgroup`` column and weights within each subgroup.
    """

    summary: pd.DataFrame
    test: dict
    studies: pd.DataFrame
    fits: dict = field(default_factory=dict)
    excluded: pd.DataFrame | None = None


def subgroup_test(estimates: Sequence[float], ses: Sequence[float]) -> tuple[float, int, float]:
    """Test of subgroup differences: ``Q_between = sum w_g (b_g - b_bar)^2`` with
    ``w_g = 1/se_g^2`` and ``b_bar`` the weighted mean, chi^2 with G-1 df.

    This is metafor's recipe (separate fits, then ``rma(yi=estimate, sei=se,
    mods=~factor(group), method="FE")``: QM), i.e. the RevMan/Cochrane test of subgroup
    differences. For inverse-variance common-effect fits it equals the QM of
    ``rma(yi, vi, mods=~factor(group), method="EE")``.
    """
    b = np.asarray(estimates, float)
    s = np.asarray(ses, float)
    w = 1 / s**2
    mu = (w * b).sum() / w.sum()
    q = float((w * (b - mu) ** 2).sum())
    df = b.size - 1
    return q, df, float(stats.chi2.sf(q, df)) if df > 0 else math.nan


def subgroup_analysis(contrasts: pd.DataFrame, by: str, measure: str = "RR", method: str = "mh", *,
                      hksj: bool = False, level: float = 95.0, outcome: str | None = None,
                      **kwargs) -> SubgroupAnalysis:
    """Fit ``method`` separately within each level of column ``by`` (levels in order of
    first appearance) and test for subgroup differences (:func:`subgroup_test`).

    The per-subgroup models are independent (each has its own tau^2 for random effects).
    Subgroups whose estimate is not available (not estimable, or a zero/undefined SE, e.g.
    k = 1 under HKSJ) are reported and left out of the test. Rows with a missing ``by``
    value are excluded with a reason.
    """
    if not isinstance(contrasts, pd.DataFrame):
        raise FrequentistInputError("expected a pandas DataFrame of contrasts")
    if by not in contrasts.columns:
        raise FrequentistInputError(
            f"subgroup column {by!r} not in the contrast table (columns: {', '.join(map(str, contrasts.columns))})"
        )
    df_all, excluded = prepare_contrasts(contrasts)
    miss = df_all[by].isna()
    if miss.any():
        excluded = pd.concat([excluded, pd.DataFrame({"study": df_all["study"][miss],
                                                      "reason": f"missing subgroup ({by})"})], ignore_index=True)
        df_all = df_all[~miss].reset_index(drop=True)
    if len(df_all) == 0:
        raise FrequentistInputError(f"no study has a value in subgroup column {by!r}")
    groups = list(pd.unique(df_all[by].astype(str)))
    rows, tables, fits = [], [], {}
    est, ses, used = [], [], []
    for g in groups:
        sub = df_all[df_all[by].astype(str) == g].reset_index(drop=True)
        try:
            res = meta_analysis(sub, measure, method, hksj=hksj, level=level, outcome=outcome,
                                subgroup=g, **kwargs)
        except NotEstimableError as exc:
            row = {c: math.nan for c in SUMMARY_COLUMNS}
            row.update(outcome=outcome, subgroup=g, method=check_method(method), measure=check_measure(measure),
                       k=len(sub), note=f"not estimable: {exc}", excluded="", test="knha" if hksj else "z",
                       model="random" if check_method(method) in RANDOM_METHODS else "common", level=level)
            rows.append(pd.DataFrame([row], columns=list(SUMMARY_COLUMNS)))
            continue
        fits[g] = res
        rows.append(res.summary)
        t = res.studies.copy()
        if "subgroup" in t.columns:
            t = t.drop(columns="subgroup")
        t.insert(0, "subgroup", g)
        tables.append(t)
        if np.isfinite(res.fit.se) and res.fit.se > 0 and np.isfinite(res.fit.beta):
            est.append(res.fit.beta)
            ses.append(res.fit.se)
            used.append(g)
    overall = meta_analysis(df_all, measure, method, hksj=hksj, level=level, outcome=outcome,
                            subgroup="all", **kwargs)
    # studies left out before the split (missing counts, missing subgroup, data layer)
    overall.excluded = pd.concat([excluded, overall.excluded], ignore_index=True).drop_duplicates()
    overall.summary.loc[0, "excluded"] = _excluded_text(overall.excluded)
    fits["all"] = overall
    rows.append(overall.summary)
    if len(used) >= 2:
        q, qdf, p = subgroup_test(est, ses)
    else:
        q, qdf, p = math.nan, max(len(used) - 1, 0), math.nan
    test = {
        "q_between": q,
        "df": qdf,
        "pvalue": p,
        "subgroups": used,
        "left_out": [g for g in groups if g not in used],
        "method": ("test of subgroup differences: Q between the separate subgroup estimates, "
                   "weights 1/se^2, chi^2(G-1) (metafor: rma(estimate, sei=se, mods=~factor(group), "
                   "method='FE') QM)"),
    }
    summary = pd.concat(rows, ignore_index=True)
    summary["q_between"] = q
    summary["q_between_df"] = qdf
    summary["q_between_pvalue"] = p
    studies = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["subgroup", *STUDY_COLUMNS])
    return SubgroupAnalysis(summary=summary, test=test, studies=studies, fits=fits, excluded=excluded)


# ---------------------------------------------------------------------------------------
# leave-one-out and cumulative
# ---------------------------------------------------------------------------------------

_SEQ_COLUMNS = ("k", "estimate", "ci_low", "ci_high", "log_estimate", "se", "statistic", "pvalue",
                "q", "q_df", "q_pvalue", "tau2", "i2", "h2", "note")


def _seq_row(df_sub: pd.DataFrame, measure, method, test, level, add, to, drop00, tol,
             reml_control=None) -> dict:
    try:
        _check_not_all_double_zero(df_sub, measure)
        fit, _, _ = _fit(df_sub, measure, method, test, level, add, to, drop00, tol, confint=False,
                         reml_control=reml_control)
    except NotEstimableError as exc:
        row = {c: math.nan for c in _SEQ_COLUMNS}
        row["k"] = len(df_sub)
        row["note"] = f"not estimable: {exc}"
        # with at most one informative study there is no heterogeneity to test: metafor
        # still reports Q = 0, p = 1, I^2 = 0, H^2 = 1 for such a refit
        d00 = (method in ("mh", "peto")) if drop00 is None else drop00
        d00 = d00[0] if isinstance(d00, (tuple, list)) else d00
        informative = (~double_zero(df_sub["events_t"], df_sub["n_t"], df_sub["events_c"], df_sub["n_c"])
                       if d00 else np.ones(len(df_sub), dtype=bool))
        if informative.sum() <= 1:
            row.update(q=0.0, q_df=0, q_pvalue=1.0, i2=0.0, h2=1.0)
        return row
    r = summary_row(fit)
    out = {c: r[c] for c in _SEQ_COLUMNS if c in r}
    out["tau2"] = fit.tau2 if fit.method in RANDOM_METHODS else math.nan
    return out


def leave_one_out(contrasts: pd.DataFrame, measure: str = "RR", method: str = "mh", *, hksj: bool = False,
                  level: float = 95.0, add=0.5, to="only0", drop00=None,
                  tol: float = R_UNIROOT_TOL, reml_control: dict | None = None) -> pd.DataFrame:
    """metafor ``leave1out``: the model refitted without each study in turn.

    One row per omitted study (column ``omitted``), in table order, with the pooled
    estimate (natural and analysis scale), CI, test, Q, tau^2, I^2, H^2 of the remaining
    studies. A refit that is not estimable gives NaN numbers and says why in ``note``.
    """
    measure = check_measure(measure)
    method = check_method(method)
    test = _resolve_test(method, hksj)
    df, _ = prepare_contrasts(contrasts)
    if len(df) < 2:
        raise FrequentistInputError("leave-one-out needs at least two studies")
    rows = []
    for i in range(len(df)):
        sub = df.drop(index=i).reset_index(drop=True)
        r = _seq_row(sub, measure, method, test, level, add, to, drop00, tol, reml_control)
        rows.append({"omitted": df["study"].iloc[i], **r})
    out = pd.DataFrame(rows, columns=["omitted", *_SEQ_COLUMNS])
    out.insert(1, "method", method)
    out.insert(2, "measure", measure)
    out.insert(3, "test", test)
    return out


def cumulative(contrasts: pd.DataFrame, measure: str = "RR", method: str = "mh", *, order="year",
               hksj: bool = False, level: float = 95.0, add=0.5, to="only0", drop00=None,
               tol: float = R_UNIROOT_TOL, reml_control: dict | None = None) -> pd.DataFrame:
    """metafor ``cumul``: studies added one at a time in the order of ``order``.

    ``order`` is a column name (default ``"year"``) or a sequence of sort keys, one per
    row; ties keep table order (stable sort, like R's ``order()``) and missing keys go last.
    Row ``i`` is the model fitted to the first ``i`` studies (column ``added``).
    """
    measure = check_measure(measure)
    method = check_method(method)
    test = _resolve_test(method, hksj)
    df, _ = prepare_contrasts(contrasts)
    if isinstance(order, str):
        if order not in df.columns:
            raise FrequentistInputError(f"order column {order!r} not in the contrast table")
        key = pd.to_numeric(df[order], errors="coerce") if order == "year" else df[order]
        key_name = order
    else:
        if len(order) != len(contrasts):
            raise FrequentistInputError("order must have one value per row of the contrast table")
        key = pd.Series(list(order))
        if len(df) != len(contrasts):  # rows with missing counts were removed
            keep = ~contrasts[list(COUNT_COLUMNS)].isna().any(axis=1).to_numpy()
            key = key[keep]
        key = key.reset_index(drop=True)
        key_name = "order"
    idx = key.reset_index(drop=True).sort_values(kind="stable", na_position="last").index.to_numpy()
    df = df.iloc[idx].reset_index(drop=True)
    key = key.iloc[idx].reset_index(drop=True)
    rows = []
    for i in range(len(df)):
        sub = df.iloc[: i + 1].reset_index(drop=True)
        r = _seq_row(sub, measure, method, test, level, add, to, drop00, tol, reml_control)
        rows.append({"added": df["study"].iloc[i], key_name: key.iloc[i], **r})
    out = pd.DataFrame(rows, columns=["added", key_name, *_SEQ_COLUMNS])
    out.insert(2, "method", method)
    out.insert(3, "measure", measure)
    out.insert(4, "test", test)
    return out
