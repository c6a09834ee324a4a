"""Figures of predictions for target populations (every function returns a Figure).

* :func:`plot_prediction`: one target - predictive densities of the response (or
  adverse-event) probability on the treatment and on the comparator, at the population
  level (solid) and for a new trial (dashed); and the risk difference with the margin.
* :func:`plot_targets`: several targets - treatment vs comparator probabilities with
  intervals, one row per target titled with the target's human-readable title (the
  ``title`` of ``models/targets.toml``); the arms differ by colour *and* marker (circle:
  treatment, square: comparator), prior-driven predictions by a dashed line and an open
  marker, with the share of the log-OR variance that comes from priors printed beside
  (ordinal predictions: one outcome, default CR or PR).
* :func:`plot_ordinal_prediction`: one target of an ordinal fit - P(CR) and P(CR or PR)
  on the treatment and the comparator (population solid, new trial dashed) and the
  CR / PR / NR split of each arm.
"""

from __future__ import annotations

import numpy as np

from bayesln.plots._style import (
    FONT_MIN,
    JOURNAL_WIDTH,
    display_treatment,
    new_figure,
    wrap,
)

__all__ = ["plot_ordinal_prediction", "plot_prediction", "plot_targets"]

TAC_COLOR, COMP_COLOR = "tab:blue", "tab:orange"
TAC_MARKER, COMP_MARKER = "o", "s"
FS = 8.0


def _density(ax, x, color, ls, label, lo=0.0, hi=1.0, prob=True):
    """Kernel density; for probabilities on the logit scale, transformed back (so the
    density respects the bounds 0 and 1)."""
    from scipy.special import logit
    from scipy.stats import gaussian_kde

    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if prob:
        x = np.clip(x, 1e-9, 1 - 1e-9)
        grid = np.linspace(max(lo, 1e-4), min(hi, 1 - 1e-4), 400)
        y = logit(x)
        if np.ptp(y) <= 0:
            ax.axvline(float(np.median(x)), color=color, ls=ls, lw=1.6, label=label)
            return
        dens = gaussian_kde(y)(logit(grid)) / (grid * (1 - grid))
    else:
        grid = np.linspace(lo, hi, 400)
        if np.ptp(x) <= 0:
            ax.axvline(float(np.median(x)), color=color, ls=ls, lw=1.6, label=label)
            return
        dens = gaussian_kde(x)(grid)
    ax.plot(grid, dens, color=color, ls=ls, lw=1.6, label=label)


def _comparator(pred) -> str:
    return display_treatment(pred.comparator)


def _tag(pred) -> str:
    rep = pred.extrapolation
    if not rep.outside_data:
        return ""
    return "\n[outside the data: " + ", ".join(rep.outside_data) + ("; prior-driven]" if rep.prior_driven else "]")


def plot_prediction(pred, *, title: str | None = None):
    """Two panels: P(outcome) on the treatment and the comparator; risk difference."""
    fig = new_figure(JOURNAL_WIDTH, 3.2, layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    pop, new = pred.draws["population"], pred.draws["new_trial"]
    comp = _comparator(pred)
    treat = pred.regimen
    for d, ls, lev in ((pop, "-", "population"), (new, "--", "new trial")):
        _density(a1, d["p_tac"], TAC_COLOR, ls, f"{treat} ({lev})")
        _density(a1, d["p_comparator"], COMP_COLOR, ls, f"{comp} ({lev})")
    a1.set_xlabel(f"P({pred.outcome.replace('_', ' ')})", fontsize=FS)
    a1.set_ylabel("predictive density", fontsize=FS)
    a1.set_xlim(0, 1)
    a1.legend(fontsize=FONT_MIN, frameon=False)
    lo = float(min(np.quantile(new["rd"], 0.001), -0.1))
    hi = float(max(np.quantile(new["rd"], 0.999), 0.1))
    for d, ls, lev in ((pop, "-", "population"), (new, "--", "new trial")):
        _density(a2, d["rd"], "0.2", ls, lev, lo, hi, prob=False)
    a2.axvline(0, color="0.6", lw=0.8)
    a2.axvline(pred.margin, color="tab:red", lw=0.8, ls=":", label=f"margin {pred.margin:g}")
    better = float(np.mean(pop["tac_better"]))
    a2.set_xlabel(f"risk difference ({treat} - {comp})", fontsize=FS)
    a2.set_title(f"P(treatment better) = {better:.2f} (population)", fontsize=FS)
    a2.legend(fontsize=FONT_MIN, frameon=False)
    for a in (a1, a2):
        a.tick_params(labelsize=FONT_MIN)
    fig.suptitle(wrap(title or f"{pred.target.label()} - {pred.outcome.replace('_', ' ')}{_tag(pred)}",
                      JOURNAL_WIDTH - 0.3, FS + 1), fontsize=FS + 1)
    return fig


def plot_targets(preds, *, level: str = "population", title: str | None = None, outcome: str | None = None):
    """Medians and intervals of P(outcome) on the treatment and on the comparator for each
    target (row label: the target's title, the regimen and comparator); prior-driven
    predictions dashed with open markers, with the share of the log-OR variance from
    priors. Ordinal predictions are drawn for ``outcome`` (default ``total_response``)."""
    from matplotlib.lines import Line2D

    preds = [p.predictions[outcome or "total_response"] if hasattr(p, "predictions") else p for p in preds]
    k = len(preds)
    labels = [wrap(p.target.label(), 2.4, FONT_MIN) + f"\n{p.regimen} vs {_comparator(p)}"
              + (" \u2020" if p.extrapolation.outside_data else "") for p in preds]
    lines_per_row = max([lab.count("\n") + 1 for lab in labels] + [2])
    row_h = max(0.42, lines_per_row * FONT_MIN * 1.25 / 72 + 0.08)
    fig = new_figure(JOURNAL_WIDTH, 1.25 + row_h * max(k, 1), layout="constrained")
    ax = fig.subplots()
    ys = np.arange(k)[::-1].astype(float)
    any_prior = False
    for y, p in zip(ys, preds):
        t = p.table()
        t = t[t["level"] == level].set_index("quantity")
        for q, dy, col, mk in (("p_tac", 0.14, TAC_COLOR, TAC_MARKER), ("p_comparator", -0.14, COMP_COLOR, COMP_MARKER)):
            r = t.loc[q]
            prior = bool(r["prior_driven"])
            any_prior |= prior
            ax.hlines(y + dy, r["lower"], r["upper"], color=col, lw=2.0 if not prior else 1.3,
                      linestyles="-" if not prior else (0, (4, 2)))
            ax.plot(r["median"], y + dy, mk, color=col, ms=5, markerfacecolor="white" if prior else col,
                    markeredgewidth=1.2)
        share = p.shares.get(level, {}).get("log_or", 0.0)
        if p.extrapolation.outside_data or share > 0:
            ax.text(1.02, y, f"{100 * share:.0f}% of log-OR\nvariance from priors", ha="left", va="center",
                    fontsize=FONT_MIN, color="tab:red", transform=ax.get_yaxis_transform())
    ax.set_yticks(ys, labels, fontsize=FONT_MIN)
    ax.set_ylim(-0.6, k - 0.4)
    ax.set_xlim(0, 1)
    ax.tick_params(axis="x", labelsize=FONT_MIN)
    oc = preds[0].outcome.replace("_", " ") if preds else ""
    ax.set_xlabel(f"P({oc}), median and {100 * preds[0].ci:g}% interval ({level.replace('_', ' ')} level)"
                  if preds else "probability", fontsize=FS)
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], color=TAC_COLOR, marker=TAC_MARKER, lw=2, ms=5, label="treatment arm"),
               Line2D([], [], color=COMP_COLOR, marker=COMP_MARKER, lw=2, ms=5, label="comparator arm")]
    if any_prior:
        handles.append(Line2D([], [], color="0.3", marker="o", ls=(0, (4, 2)), lw=1.3, ms=5,
                              markerfacecolor="white", label="prior-driven"))
    if any(p.extrapolation.outside_data for p in preds):
        handles.append(Line2D([], [], lw=0, label="\u2020 outside the trials' covariate range"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=FONT_MIN, frameon=False)
    fig.suptitle(wrap(title or "Predictions by target population", JOURNAL_WIDTH - 0.3, FS + 1), fontsize=FS + 1)
    fig.bayesln_labels = labels
    return fig


def plot_ordinal_prediction(pred, *, title: str | None = None):
    """Three panels: P(CR) and P(CR or PR) on the treatment and on the comparator
    (population solid, new trial dashed), and the median CR / PR / NR split of each arm
    (population)."""
    fig = new_figure(JOURNAL_WIDTH, 2.9, layout="constrained")
    a1, a2, a3 = fig.subplots(1, 3)
    comp = _comparator(pred)
    for ax, cat, name in ((a1, "cr", "CR"), (a2, "resp", "CR or PR")):
        for level, ls, lev in (("population", "-", "population"), ("new_trial", "--", "new trial")):
            pr = pred.probabilities[level]
            _density(ax, pr["tac"][cat], TAC_COLOR, ls, f"{pred.regimen} ({lev})")
            _density(ax, pr["comparator"][cat], COMP_COLOR, ls, f"{comp} ({lev})")
        ax.set_xlabel(f"P({name})", fontsize=FS)
        ax.set_xlim(0, 1)
        q = pred.predictions["complete_response" if cat == "cr" else "total_response"].draws["population"]
        ax.set_title(f"P(better) = {float(np.mean(q['tac_better'])):.2f}", fontsize=FS)
    a1.set_ylabel("predictive density", fontsize=FS)
    a1.legend(fontsize=FONT_MIN - 1 if FONT_MIN > 7 else FONT_MIN, frameon=False)
    pop = pred.probabilities["population"]
    ys = [1, 0]
    for y, arm in zip(ys, ("tac", "comparator")):
        left = 0.0
        for cat, col, nm in (("cr", "tab:green", "CR"), ("pr", "tab:olive", "PR"), ("nr", "0.75", "NR")):
            w = float(np.median(pop[arm][cat]))
            a3.barh(y, w, left=left, color=col, label=nm if y == 1 else None,
                    hatch={"cr": "", "pr": "//", "nr": ".."}[cat], edgecolor="white")
            if w > 0.1:
                a3.text(left + w / 2, y, f"{100 * w:.0f}%", ha="center", va="center", fontsize=FONT_MIN)
            left += w
    a3.set_yticks(ys, [wrap(str(pred.regimen), 0.9, FONT_MIN), comp], fontsize=FONT_MIN)
    a3.set_xlim(0, 1)
    a3.set_xlabel("median probability (population)", fontsize=FS)
    a3.legend(fontsize=FONT_MIN, frameon=False, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0),
              handlelength=1.5, columnspacing=1.0)
    for a in (a1, a2, a3):
        a.tick_params(labelsize=FONT_MIN)
    fig.suptitle(wrap(title or f"{pred.target.label()} - CR / PR / NR{_tag(pred)}", JOURNAL_WIDTH - 0.3, FS + 1),
                 fontsize=FS + 1)
    return fig
