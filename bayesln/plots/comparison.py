"""The comparison table as a figure: Bayesian vs frequentist vs published relative risks.

One row per relative risk of the table (``bayesln.checks.compare``: published,
recomputed, Mantel-Haenszel / DL / REML, Bayesian marginal and pooled-baseline), grouped
by outcome and subgroup, with its interval and value printed beside the axis. Colour and
marker both encode the source (legend); a flagged row gets a red ring and a numbered note
whose text is the table's ``reason``; rows without an estimate (not recomputable,
skipped subgroups) are listed with "not estimated" and their reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesln.plots._style import FLAG, FONT, SOURCE_COLORS, SOURCE_MARKERS
from bayesln.plots.forest import RR_METHOD_LABEL, _legend_handles, _Panel, _render, _Row

__all__ = ["comparison_plot", "plot_comparison"]

SOURCE_LABEL = {"bayesian": "Bayesian", "frequentist": "Frequentist", "published": "Published",
                "recomputed": "Recomputed", "skipped": "Skipped"}
SUBGROUP_LABEL = {"all": "All trials", "duo": "TAC duo (TAC + steroids)", "triple": "TAC triple (multitarget)",
                  "induction": "Induction", "maintenance": "Maintenance"}


def _row_label(r) -> str:
    src = str(r["source"])
    k = f" (k = {int(r['k'])})" if pd.notna(r.get("k")) else ""
    if src == "published":
        who = str(r.get("reason") or "").split(";")[0].strip() or "Published"
        return f"{who}, published{k}"
    if src == "recomputed":
        return f"Recomputed on the published trials{k}"
    if src == "skipped":
        return f"Subgroup skipped{k}"
    return f"{RR_METHOD_LABEL.get(str(r['method']), str(r['method']).replace('_', ' '))}{k}"


def comparison_plot(comparison: pd.DataFrame, *, outcome: str | None = None, subgroup: str | None = None,
                    title: str | None = None, width: float | None = None, fontsize: float = FONT):
    """The comparison table's relative risks with 95% intervals (``measure == "RR"``;
    ``outcome`` / ``subgroup`` select rows), grouped by outcome and subgroup; a legend for
    the sources' colours and markers and for flagged rows, whose reasons are numbered
    notes under the plot. Returns a matplotlib Figure."""
    t = comparison[comparison["measure"] == "RR"] if "measure" in comparison.columns else comparison.iloc[0:0]
    if outcome is not None and "outcome" in t.columns:
        t = t[t["outcome"] == outcome]
    if subgroup is not None:
        t = t[t["subgroup"] == subgroup]
    t = t.reset_index(drop=True)
    many_outcomes = "outcome" in t.columns and t["outcome"].nunique() > 1
    rows = [_Row(cells={"study": "Relative risk of", "estimate": "RR [95% CI]"}, kind="header")]
    reasons: dict[str, int] = {}
    flagged_any = False
    keys = ["outcome", "subgroup"] if "outcome" in t.columns else ["subgroup"]
    for group, g in t.groupby(keys, sort=False):
        group = group if isinstance(group, tuple) else (group,)
        sg = SUBGROUP_LABEL.get(str(group[-1]), str(group[-1]))
        head = f"{group[0].replace('_', ' ')}: {sg}" if many_outcomes else sg
        rows.append(_Row(cells={"study": head}, kind="text", bold=True))
        for _, r in g.iterrows():
            flag = bool(r.get("flag")) if pd.notna(r.get("flag")) else False
            note = ""
            if flag:
                reason = str(r.get("reason") or "").strip() or "flagged (no reason given)"
                num = reasons.setdefault(reason, len(reasons) + 1)
                note = f" [{num}]"
                flagged_any = True
            est = pd.to_numeric(pd.Series([r["estimate"]]), errors="coerce").iloc[0]
            src = str(r["source"])
            label = "   " + _row_label(r) + note
            if np.isfinite(est):
                rows.append(_Row(cells={"study": label,
                                        "estimate": f"{r['estimate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"},
                                 kind="point", est=float(r["estimate"]), lo=float(r["ci_low"]), hi=float(r["ci_high"]),
                                 color=SOURCE_COLORS.get(src, "0.4"), marker=SOURCE_MARKERS.get(src, "o"),
                                 flag=flag, text_color=FLAG if flag else "black"))
            else:
                if not flag and str(r.get("reason") or "").strip():
                    num = reasons.setdefault(str(r["reason"]).strip(), len(reasons) + 1)
                    label += f" [{num}]"
                rows.append(_Row(cells={"study": label, "estimate": "not estimated"}, kind="text",
                                 text_color=FLAG if flag else "0.3"))
    panel = _Panel(measure="RR", rows=rows, xlabel="Relative risk (95% interval), log scale", treat="", control="",
                   direction=None, favours=False)
    present = [s for s in SOURCE_LABEL if s in set(t["source"])] if len(t) else []
    legend = []
    for s in present:
        if s in SOURCE_COLORS:
            legend.append(("marker:" + SOURCE_MARKERS[s], SOURCE_COLORS[s], SOURCE_LABEL[s]))
    if flagged_any:
        legend.append(("flag", FLAG, "Flagged: disagrees with MH or not reproduced [n] = note"))
    notes = [f"[{n}] {reason}" for reason, n in reasons.items()]
    default_title = "Bayesian vs frequentist vs published relative risks"
    if outcome is not None:
        default_title += f": {outcome.replace('_', ' ')}"
    fig = _render([panel], weights=[], title=title or default_title, width=width, fontsize=fontsize,
                  legend=_legend_handles(legend), footnotes=notes)
    fig.bayesln_notes = {n: reason for reason, n in reasons.items()}
    return fig


#: the name ``bayesln.checks`` used for the same figure
plot_comparison = comparison_plot
