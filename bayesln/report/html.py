"""``bayesln report RUN... --out FILE.html``: one self-contained HTML page for a panel.

For each run folder (read through :func:`bayesln.analysis.load_run`, so every file is
verified against the hashes in ``run.json`` first): the question (spec title and
description), the data and their provenance, the pooled results (``summary.csv``), the
forest plots (the run's own SVG files, inlined), Bayesian vs frequentist vs published
estimates with the reasons of every flag (``comparison.csv``), small-study effects
(Egger / Begg / trim-and-fill, as metafor computes them, with the Cochrane warning below
10 trials), predictions with their extrapolation warnings (``predictions.csv``), the
Summary of Findings (``summary_of_findings.csv``), the diagnostics gate, and the exact spec
and package versions. Several runs (an efficacy and an adverse-event spec, say) make one
page with a combined Summary of Findings at the top.

The page needs nothing else: CSS and SVG are inline, there is no script and no link to
the network, so it can be mailed or archived. Numbers are printed rounded; every number
taken from a run file also carries its exact value in a ``data-value`` attribute (and
``data-quantity`` / ``data-stat`` for the pooled results), so a test can compare the page
with the files.
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["build_report", "write_report"]

CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.3em;border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin-top:1.4em}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.6em .8em;margin:.8em 0}
.fail{background:#f8d7da;border:1px solid #d08080;padding:.6em .8em;margin:.8em 0}
.ok{color:#256029}.flag{color:#a00;font-weight:bold}.muted{color:#666;font-size:.85em}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
"""


def _e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _isnum(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(float(v))


def _num(v, nd: int = 2, attrs: str = "") -> str:
    """A table cell with the rounded number shown and the exact value in data-value."""
    if not _isnum(v):
        return f'<td class="num"{attrs}>NA</td>'
    return f'<td class="num" data-value="{float(v)!r}"{attrs}>{float(v):.{nd}f}</td>'


def _table(df: pd.DataFrame, cols: list[str], *, num: dict[str, int] | None = None, cls: str = "") -> str:
    num = num or {}
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = []
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r.get(c)
            if c in num:
                cells.append(_num(v, num[c]))
            else:
                cells.append(f"<td>{_e('' if v is None or (isinstance(v, float) and np.isnan(v)) else v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _svg(path: Path) -> str:
    """An SVG file for inlining: without its XML declaration and DOCTYPE (not allowed
    inside HTML), with matplotlib's fixed size kept as the natural size."""
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"<\?xml[^>]*\?>", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>", "", text, flags=re.S)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # creator / date (RDF)
    return text.strip()


def _csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


# ----------------------------------------------------------------------------- sections
def _summary_section(summary: pd.DataFrame) -> str:
    lo, hi = [c for c in summary.columns if re.fullmatch(r"q\d+(\.\d+)?", str(c))][:2]
    rows = []
    for _, r in summary.iterrows():
        q = _e(r["quantity"])
        if pd.isna(r["median"]):  # a probability: its mean
            rows.append(f"<tr><td>{q}</td>" + _num(r["mean"], 3, f' data-quantity="{q}" data-stat="mean"')
                        + "<td></td><td></td></tr>")
        else:
            rows.append(f"<tr><td>{q}</td>" + _num(r["median"], 2, f' data-quantity="{q}" data-stat="median"')
                        + _num(r[lo], 2, f' data-quantity="{q}" data-stat="{_e(lo)}"')
                        + _num(r[hi], 2, f' data-quantity="{q}" data-stat="{_e(hi)}"') + "</tr>")
    return ("<table><thead><tr><th>quantity</th><th>median (probabilities: mean)</th>"
            f"<th>{_e(lo)}</th><th>{_e(hi)}</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _gate_box(diag: dict) -> str:
    if diag.get("verdict") == "pass":
        return (f'<p class="ok">Diagnostics gate: <b>passed</b> (max R-hat {diag.get("max_r_hat", float("nan")):.4f}, '
                f'min bulk ESS {diag.get("min_ess_bulk", 0):.0f}, min tail ESS {diag.get("min_ess_tail", 0):.0f}, '
                f'{diag.get("divergences", 0)} divergent transitions).</p>')
    probs = "".join(f"<li>{_e(p)}</li>" for p in diag.get("problems", []))
    return ('<div class="fail"><b>This fit FAILED its diagnostics gate.</b> Its numbers are not to be trusted; '
            f"refit it with more draws.<ul>{probs}</ul></div>")


def _data_section(run, data: pd.DataFrame, usage: pd.DataFrame | None) -> str:
    sp = run.spec
    out = sp.outcome
    long = data[data["outcome"].astype(str) == str(out)] if "outcome" in data else data
    cols = [c for c in ("first_author", "year", "design", "phase", "country") if c in data.columns]
    studies = data.drop_duplicates("study").set_index("study")
    parts = []
    for s, g in long.groupby("study", sort=False):
        meta = studies.loc[s, cols] if cols else pd.Series(dtype=object)
        author = meta.get("first_author")
        year = meta.get("year")
        label = " ".join(str(x) for x in (author, None if pd.isna(year) else int(year))
                         if x is not None and not (isinstance(x, float) and np.isnan(x)) and str(x).strip())
        arms = "; ".join(f"{a['arm']}: {'' if pd.isna(a['events']) else int(a['events'])}/"
                         f"{'' if pd.isna(a['n']) else int(a['n'])}" for _, a in g.iterrows())
        parts.append({"study": s, "label": label or s, "design": meta.get("design", ""), "phase": meta.get("phase", ""),
                      "country": meta.get("country", ""), f"{out}: events/n per arm": arms})
    t = pd.DataFrame(parts)
    html_ = (f"<p>Data: <b>{_e(sp.data.source)}</b>; outcome <b>{_e(out)}</b>; model family "
             f"<b>{_e(sp.model.family)}</b>. {len(t)} studies report this outcome in the run's data.</p>")
    if len(t):
        html_ += _table(t, list(t.columns))
    if usage is not None and len(usage):
        html_ += "<h3>How each study was used</h3>" + _table(usage, list(usage.columns))
    prov = _provenance_note(sp.data.source, list(t["study"]) if len(t) else [], out)
    if prov:
        html_ += f"<p class='muted'>{prov}</p>"
    return html_


def _provenance_note(source: str, studies: list[str], outcome: str) -> str:
    import bayesln

    if source not in bayesln.list_datasets():
        return "Provenance: the run's data came from a user file (data.csv in the run folder)."
    td = bayesln.load_dataset(source)
    pv = td.provenance
    if pv is None or not len(pv):
        return ""
    sel = pv[pv["study"].isin(studies) & (pv["outcome"].astype(str) == str(outcome))]
    counts = sel["status"].value_counts()
    what = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items())
    return (f"Provenance of the {len(sel)} counts of this outcome (bundled dataset {source!r}, provenance.csv: "
            f"each number with its source and quote): {what}.")


def _comparison_section(comp: pd.DataFrame | None) -> str:
    if comp is None or not len(comp):
        return "<p class='muted'>No frequentist comparison for this model family.</p>"
    cols = [c for c in ("source", "method", "subgroup", "measure", "k", "estimate", "ci_low", "ci_high", "flag", "reason")
            if c in comp.columns]
    t = comp[cols].copy()
    if "flag" in t:
        t["flag"] = ["FLAG" if bool(f) else "" for f in t["flag"]]
    return _table(t, cols, num={"estimate": 2, "ci_low": 2, "ci_high": 2})


def _bias_section(run, data_csv: Path) -> str:
    if run.spec.model.family != "core":
        return "<p class='muted'>Small-study effects are computed for single-outcome (core) runs.</p>"
    from bayesln.data import read_trials
    from bayesln.frequentist import small_study_effects

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        td = read_trials(data_csv)
        con = td.contrasts(run.spec.data.outcome, treat=tuple(run.spec.model.treat))
    con = con.dropna(subset=["events_t", "n_t", "events_c", "n_c"])
    if len(con) < 3:
        return f"<p class='muted'>Small-study effects need at least 3 trials; this run has {len(con)}.</p>"
    try:
        res = small_study_effects(con, "RR").to_dict()
    except ValueError as exc:
        return f"<p class='muted'>Small-study effects not estimable: {_e(exc)}</p>"
    e, b, t = res["egger"], res["begg"], res["trimfill"]
    warn = f'<div class="warn">{_e(res["warning"])}</div>' if res.get("warning") else ""
    rows = pd.DataFrame([
        {"test": f"Egger regression ({e['model']}, predictor {e['predictor']})", "statistic": e["statistic"],
         "p": e["pvalue"], "detail": f"limit estimate (log RR) {e['limit_estimate']:.3f}"},
        {"test": "Begg rank correlation", "statistic": b["tau"], "p": b["pvalue"],
         "detail": "exact" if b["exact"] else "normal approximation"},
        {"test": f"trim-and-fill ({t['estimator']}, side {t['side']})", "statistic": np.nan, "p": np.nan,
         "detail": f"{t['k0']} studies filled; RR {np.exp(t['estimate']):.2f} "
                   f"({np.exp(t['ci_low']):.2f}-{np.exp(t['ci_high']):.2f})"},
    ])
    return warn + _table(rows, ["test", "statistic", "p", "detail"], num={"statistic": 3, "p": 3}) + \
        "<p class='muted'>As metafor's regtest / ranktest / trimfill, on log risk ratios.</p>"


def _predictions_section(pred: pd.DataFrame | None) -> str:
    if pred is None or not len(pred):
        return "<p class='muted'>The spec lists no prediction targets.</p>"
    warn = ""
    if "warning" in pred and pred["warning"].fillna("").astype(str).str.len().gt(0).any():
        warn = f'<div class="fail">{_e(pred["warning"].dropna().iloc[0])}</div>'
    p = pred[(pred["level"] == "population") & pred["quantity"].isin(["p_tac", "p_comparator", "rd", "or"])].copy()
    p["prior-driven"] = ["PRIOR-DRIVEN" if bool(x) else "" for x in p["prior_driven"]]
    cols = ["target", "outcome", "quantity", "median", "lower", "upper", "outside_data", "prior_share", "prior-driven"]
    return warn + _table(p, cols, num={"median": 3, "lower": 3, "upper": 3, "prior_share": 2}) + \
        ("<p class='muted'>Population level (a typical trial in the target population). <i>outside_data</i>: "
         "covariates on which the target lies outside the trials; <i>prior_share</i>: share of the predictive "
         "variance that comes from priors; at 0.5 or more the prediction is driven by the prior, not the data.</p>")


def _sof_table(sof: pd.DataFrame) -> str:
    if sof is None or not len(sof):
        return "<p class='muted'>No Summary-of-Findings rows.</p>"
    rows = []
    for i, r in enumerate(sof.itertuples(index=False), start=1):
        def risk(med, lo, hi):
            if not _isnum(med):
                return "<td>NA</td>"
            span = f" ({lo:.0f} to {hi:.0f})" if _isnum(lo) and _isnum(hi) else ""
            return f'<td class="num" data-value="{float(med)!r}">{med:.0f}{span}</td>'

        rel = (f"{r.relative_measure} {r.relative_median:.2f} ({r.relative_low:.2f} to {r.relative_high:.2f})"
               if _isnum(r.relative_median) else "")
        signals = r.certainty_signals if isinstance(r.certainty_signals, str) else ""
        rows.append(
            f"<tr><td>{_e(r.outcome)}</td><td>{_e(r.population_label)}</td><td class='num'>{int(r.n_trials)} "
            f"({int(r.n_participants)})</td>{risk(r.comparator_risk_per_1000, r.comparator_low_per_1000, r.comparator_high_per_1000)}"
            f"{risk(r.tac_risk_per_1000, r.tac_low_per_1000, r.tac_high_per_1000)}"
            f"{risk(r.difference_per_1000, r.difference_low_per_1000, r.difference_high_per_1000)}"
            f"<td>{_e(rel)}</td><td class='{'flag' if signals else ''}'>{_e(signals or 'none')}</td>"
            f"<td class='num'>[{i}]</td></tr>")
    notes = "".join(f"<li>[{i}] {_e(f)}</li>" for i, f in enumerate(sof["footnote"].fillna(""), start=1))
    return ("<table><thead><tr><th>outcome</th><th>population</th><th>trials (patients)</th>"
            "<th>comparator risk per 1,000</th><th>TAC risk per 1,000 (95% interval)</th>"
            "<th>difference per 1,000</th><th>relative effect</th><th>certainty signals</th><th>note</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table><ol class='muted' style='list-style:none;padding:0'>{notes}</ol>")


def _run_section(path: Path, idx: int) -> tuple[str, pd.DataFrame | None]:
    from bayesln.analysis import load_run

    run = load_run(path)  # verifies every file against run.json first
    sp = run.spec
    usage = _csv(path / "usage.csv")
    data = pd.read_csv(path / "data.csv", keep_default_na=False, na_values=[""])
    pred = _csv(path / "predictions.csv")
    sof = _csv(path / "summary_of_findings.csv")
    figs = path / "figures"
    forest = _svg(figs / "forest.svg")
    freq = _svg(figs / "forest_frequentist.svg")
    trace = _svg(figs / "trace.svg")
    versions = run.info.get("versions", {})
    anchor = f"run{idx}"
    s = [f'<h2 id="{anchor}">{idx}. {_e(sp.analysis.title or sp.name)}</h2>',
         f"<p class='muted'>Run <code>{_e(sp.name)}</code> ({_e(path)}), outcome <b>{_e(sp.outcome)}</b>, "
         f"seed {_e(run.info.get('seed'))}, written by bayesln {_e(versions.get('bayesln'))}.</p>",
         _gate_box(run.diagnostics)]
    if sp.analysis.description:
        s.append(f"<p>{_e(sp.analysis.description)}</p>")
    s.append("<h3>Question and data</h3>" + _data_section(run, data, usage))
    s.append("<h3>Pooled results</h3>" + _summary_section(run.summary))
    if forest:
        s.append(f"<h3>Forest plot</h3><figure>{forest}</figure>")
    if freq:
        s.append(f"<h3>Frequentist forest plot</h3><figure>{freq}</figure>")
    s.append("<h3>Bayesian vs frequentist vs published</h3>" + _comparison_section(run.comparison))
    s.append("<h3>Small-study effects</h3>" + _bias_section(run, path / "data.csv"))
    s.append("<h3>Predictions for target populations</h3>" + _predictions_section(pred))
    s.append("<h3>Summary of Findings</h3>" + _sof_table(sof))
    d = run.diagnostics
    s.append("<h3>Diagnostics</h3>" + _gate_box(d)
             + f"<p class='muted'>{d.get('chains')} chains x {d.get('draws_per_chain')} draws; thresholds "
               f"{_e(json.dumps(d.get('thresholds')))}; E-BFMI {_e(d.get('bfmi'))}.</p>")
    if trace:
        s.append(f"<details><summary>Trace plots</summary><figure>{trace}</figure></details>")
    s.append("<h3>Exact spec and versions</h3><pre>" + _e(json.dumps(sp.canonical(), indent=1)) + "</pre>"
             + "<pre>" + _e(json.dumps(versions, indent=1)) + "</pre>"
             + f"<p class='muted'>Every file of the run was verified against the sha256 in run.json "
               f"({len(run.info.get('sha256', {}))} files) before this report was written.</p>")
    return "\n".join(s), sof


def build_report(runs, *, title: str | None = None) -> str:
    """The HTML text of the report of one or more run folders (see the module docstring).
    Raises :class:`bayesln.runs.RunError` for a folder that is not a verified run."""
    paths = [Path(r) for r in runs]
    if not paths:
        raise ValueError("report: give at least one run folder")
    sections, sofs = [], []
    for i, p in enumerate(paths, start=1):
        sec, sof = _run_section(p, i)
        sections.append(sec)
        if sof is not None and len(sof):
            sofs.append(sof)
    heading = title or ("bayesln report: " + ", ".join(p.name for p in paths))
    toc = "".join(f'<li><a href="#run{i}">{_e(p.name)}</a></li>' for i, p in enumerate(paths, start=1))
    combined = ""
    if len(paths) > 1 and sofs:
        combined = "<h2>Summary of Findings, all runs</h2>" + _sof_table(pd.concat(sofs, ignore_index=True))
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(heading)}</title><style>{CSS}</style></head><body>"
            f"<h1>{_e(heading)}</h1><p class='muted'>Written {stamp} from {len(paths)} run folder(s). "
            "Self-contained: no script, no network.</p>"
            f"<ol>{toc}</ol>{combined}{''.join(sections)}</body></html>\n")


def write_report(runs, out: str | os.PathLike, *, title: str | None = None) -> Path:
    """Write the report to ``out`` atomically (a temporary file beside it, then renamed)."""
    from bayesln.runs import RunError

    out = Path(out)
    if out.exists() and out.is_dir():
        raise RunError(f"--out {out}: is a folder; give the HTML file to write")
    text = build_report(runs, title=title)
    parent = out.parent if str(out.parent) else Path(".")
    tmp = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-report-", suffix=".html", dir=parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide a report meant to be sent
        os.replace(tmp, out)
        tmp = None
    except OSError as exc:
        raise RunError(f"--out {out}: cannot be written ({exc.strerror or exc})") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return out
