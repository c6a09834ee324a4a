"""The ``bayesln frequentist`` command as a plain function (the CLI only prints its text).

``bayesln frequentist DATA --outcome NAME --treat LABELS --control LABELS
[--measure RR|OR|RD] [--method mh|iv|peto|dl|reml|pm] [--hksj] [--subgroup COLUMN]
[--format table|csv|json]``
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import SUMMARY_COLUMNS, meta_analysis, subgroup_analysis
from .effects import check_measure
from .errors import FrequentistInputError
from .models import RANDOM_METHODS, check_method

FORMATS = ("table", "csv", "json")

#: keys of every JSON object; random-effects results add RANDOM_JSON_KEYS
JSON_KEYS = ("outcome", "subgroup", "method", "model", "measure", "test", "k", "estimate", "ci_low",
             "ci_high", "log_estimate", "se", "statistic", "df", "pvalue", "q", "q_df", "q_pvalue",
             "i2", "h2", "level", "excluded", "note")
RANDOM_JSON_KEYS = ("tau2", "tau2_ci_low", "tau2_ci_high", "i2_ci_low", "i2_ci_high", "pi_low", "pi_high")


def _labels(x: str | Iterable[str] | None) -> tuple[str, ...]:
    if x is None:
        return ()
    items = [x] if isinstance(x, str) else list(x)
    out: list[str] = []
    for item in items:
        out += [s.strip() for s in str(item).split(",") if s.strip()]
    return tuple(out)


def load_trials(data: str, *, outcome: str | None = None, treat=None, control=None):
    """A bundled dataset name or a path to a CSV in the documented arm-level format, long
    or wide (for the wide 2x2 layout: the outcome and the two arms' labels when the file
    does not name them; a single treat / control label names that side's arm)."""
    import bayesln

    if not isinstance(data, str) or not data.strip():
        raise FrequentistInputError("DATA must be a bundled dataset name or a CSV path")
    try:
        names = list(bayesln.list_datasets())
    except Exception:  # noqa: BLE001 - a broken dataset index must not hide a CSV path
        names = []
    if data in names:
        return bayesln.load_dataset(data)
    path = Path(data)
    if path.is_file():
        one = lambda x: x[0] if x and len(x) == 1 else None  # noqa: E731
        return bayesln.read_trials(path, outcome=outcome, treat=one(treat), control=one(control))
    raise FrequentistInputError(
        f"DATA {data!r} is neither a bundled dataset ({', '.join(names) or 'none found'}) nor an existing file"
    )


def _clean(v):
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if v is pd.NA:
        return None
    return v


def _json_records(summary: pd.DataFrame, extra: dict | None = None) -> list[dict]:
    recs = []
    for _, r in summary.iterrows():
        keys = JSON_KEYS + (RANDOM_JSON_KEYS if r["method"] in RANDOM_METHODS else ())
        rec = {k: _clean(r[k]) for k in keys}
        if extra:
            rec.update({k: _clean(v) for k, v in extra.items()})
        recs.append(rec)
    return recs


def _fmt(x, digits=2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "NA"
    return f"{x:.{digits}f}"


def _fmt_p(p) -> str:
    if p is None or not math.isfinite(p):
        return "NA"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _table_text(title: str, studies: pd.DataFrame, summary: pd.DataFrame, test: dict | None) -> str:
    lines = [title, ""]
    measure = summary["measure"].iloc[0]
    d = 2 if measure in ("RR", "OR") else 3
    for sub, st in ([(None, studies)] if "subgroup" not in studies.columns else list(studies.groupby("subgroup", sort=False))):
        if sub is not None:
            lines.append(f"[subgroup {sub}]")
        w = max([5] + [len(str(s)) for s in st["study"]])
        lines.append(f"{'study':<{w}}  {'treat':>9}  {'control':>9}  {measure + ' [95% CI]':<24} {'weight':>7}")
        for _, r in st.iterrows():
            eff = (f"{_fmt(r['effect'], d)} [{_fmt(r['ci_low'], d)}, {_fmt(r['ci_high'], d)}]"
                   if np.isfinite(r["effect"]) else "not shown")
            wt = f"{r['weight']:.1f}%" if np.isfinite(r["weight"]) else "-"
            lines.append(f"{r['study']:<{w}}  {int(r['events_t']):>4}/{int(r['n_t']):<4}  "
                         f"{int(r['events_c']):>4}/{int(r['n_c']):<4}  {eff:<24} {wt:>7}"
                         + (f"  ({r['note']})" if r["note"] else ""))
        lines.append("")
    for _, r in summary.iterrows():
        head = f"{r['subgroup']}: {r['method'].upper()} {r['model']} effect"
        if r["test"] == "knha":
            head += " (HKSJ)"
        lines.append(f"{head}, k = {int(r['k']) if r['k'] == r['k'] else 'NA'}")
        lines.append(f"  {measure} = {_fmt(r['estimate'], d)} [{_fmt(r['ci_low'], d)}, {_fmt(r['ci_high'], d)}], "
                     f"{'t' if r['test'] == 'knha' else 'z'} = {_fmt(r['statistic'])}, p = {_fmt_p(r['pvalue'])}")
        if r["q"] == r["q"]:
            lines.append(f"  heterogeneity: Q = {_fmt(r['q'])} (df = {int(r['q_df'])}, p = {_fmt_p(r['q_pvalue'])}), "
                         f"I2 = {_fmt(r['i2'], 1)}%, H2 = {_fmt(r['h2'])}")
        if r["method"] in RANDOM_METHODS and r["tau2"] == r["tau2"]:
            lines.append(f"  tau2 = {_fmt(r['tau2'], 4)} [{_fmt(r['tau2_ci_low'], 4)}, {_fmt(r['tau2_ci_high'], 4)}], "
                         f"prediction interval [{_fmt(r['pi_low'], d)}, {_fmt(r['pi_high'], d)}]")
        if r["excluded"]:
            lines.append(f"  excluded: {r['excluded']}")
        if r["note"]:
            lines.append(f"  note: {r['note']}")
    if test is not None:
        lines.append("")
        lines.append(f"test of subgroup differences: Q = {_fmt(test['q_between'])} (df = {test['df']}, "
                     f"p = {_fmt_p(test['pvalue'])})")
    return "\n".join(lines) + "\n"


def frequentist_command(data: str, outcome: str, treat: list[str], control: list[str] | None = None,
                        measure: str = "RR", method: str = "mh", hksj: bool = False,
                        subgroup: str | None = None, fmt: str = "table", phase: str | None = None) -> str:
    """Run a frequentist meta-analysis and return the text to print.

    ``data``: bundled dataset name or CSV path (``bayesln.load_dataset`` /
    ``bayesln.read_trials``). ``treat`` / ``control``: treatment labels or network nodes
    (comma-separated strings allowed); an empty ``control`` means every arm not on the
    treat side. ``subgroup``: a column of the contrast table (e.g. ``regimen``): separate
    fits per level, an overall fit and the test of subgroup differences. ``fmt``:
    ``table`` (human-readable), ``csv`` (the tidy summary) or ``json`` (a list with one
    object per pooled result: estimate, ci_low, ci_high on the natural scale, se of the
    log effect, method, measure, k, outcome, subgroup, ..., and for random effects tau2,
    i2, q, q_pvalue, pi_low, pi_high).

    ``phase`` (optional, e.g. ``"induction"``): keep only studies of that phase; the
    others are listed as excluded. By default every study with a contrast is pooled.

    Bad input raises :class:`ValueError` subclasses with a clear message.
    """
    if fmt not in FORMATS:
        raise FrequentistInputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    measure = check_measure(measure)
    method = check_method(method)
    t = _labels(treat)
    if not t:
        raise FrequentistInputError("--treat needs at least one treatment label")
    c = _labels(control) or None
    td = load_trials(data, outcome=outcome, treat=t, control=c)
    con = td.contrasts(outcome, treat=t, control=c, multi_arm="pool")
    if phase:
        if "phase" not in con.columns:
            raise FrequentistInputError("the contrast table has no phase column")
        keep = (con["phase"].astype("string") == phase).fillna(False).to_numpy(bool)
        ex = con.attrs.get("excluded")
        ex = ex if isinstance(ex, pd.DataFrame) else pd.DataFrame(columns=["study", "reason"])
        dropped = pd.DataFrame({"study": con.loc[~keep, "study"].to_numpy(),
                                "reason": [f"phase {p}, not {phase}" for p in con.loc[~keep, "phase"]]})
        attrs = dict(con.attrs)
        con = con[keep].reset_index(drop=True)
        attrs["excluded"] = pd.concat([ex, dropped], ignore_index=True)
        con.attrs = attrs
    if len(con) == 0:
        ex = con.attrs.get("excluded")
        why = "; ".join(f"{s}: {r}" for s, r in zip(ex["study"], ex["reason"])) if isinstance(ex, pd.DataFrame) else ""
        raise FrequentistInputError(f"no study gives a {outcome} contrast of {','.join(t)} vs "
                                    f"{','.join(c) if c else 'all other arms'}" + (f" ({why})" if why else ""))
    test = None
    if subgroup:
        sa = subgroup_analysis(con, subgroup, measure, method, hksj=hksj, outcome=outcome)
        summary, studies, test = sa.summary, sa.studies, sa.test
    else:
        res = meta_analysis(con, measure, method, hksj=hksj, outcome=outcome)
        summary, studies = res.summary, res.studies
    if fmt == "csv":
        return summary.to_csv(index=False)
    if fmt == "json":
        extra = None
        if test is not None:
            extra = {"q_between": test["q_between"], "q_between_df": test["df"],
                     "q_between_pvalue": test["pvalue"]}
        return json.dumps(_json_records(summary[list(SUMMARY_COLUMNS)], extra), indent=2) + "\n"
    title = (f"{getattr(td, 'name', data)}: {outcome}, {','.join(t)} vs {','.join(c) if c else 'all other arms'} "
             f"({measure}, {method}{', HKSJ' if hksj else ''})")
    return _table_text(title, studies, summary, test)
