"""Figures of predictions (matplotlib; every function returns a Figure).

* :func:`plot_prediction`: one target - predictive densities of the response (or
  adverse-event) probability on TAC and on the comparator, at the population level
  (solid) and for a new trial (dashed); and the risk difference with the margin.
* :func:`plot_targets`: several targets side by side - TAC vs comparator probabilities
  with intervals, prior-driven targets drawn hatched and labelled (ordinal predictions:
  one outcome, default CR or PR).
* :func:`plot_ordinal_prediction`: one target of an ordinal fit - P(CR) and P(CR or PR)
  on TAC and the comparator (population solid, new trial dashed) and the CR / PR / NR
  split of each arm.
"""

from __future__ import annotations

from bayesln.plots import plt  # headless unless MPLBACKEND chose a backend (see bayesln.plots)
import numpy as np  # noqa: E402

__all__ = ["plot_ordinal_prediction", "plot_prediction", "plot_targets"]

TAC_COLOR, COMP_COLOR = "tab:blue", "tab:orange"


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


def plot_prediction(pred, *, title: str | None = None):
    """Two panels: P(outcome) on TAC and comparator; risk difference TAC - comparator."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    pop, new = pred.draws["population"], pred.draws["new_trial"]
    comp = pred.comparator
    for d, ls, lev in ((pop, "-", "population"), (new, "--", "new trial")):
        _density(a1, d["p_tac"], TAC_COLOR, ls, f"TAC ({lev})")
        _density(a1, d["p_comparator"], COMP_COLOR, ls, f"{comp} ({lev})")
    a1.set_xlabel(f"P({pred.outcome})")
    a1.set_ylabel("predictive density")
    a1.set_xlim(0, 1)
    a1.legend(fontsize=7, frameon=False)
    lo = float(min(np.quantile(new["rd"], 0.001), -0.1))
    hi = float(max(np.quantile(new["rd"], 0.999), 0.1))
    for d, ls, lev in ((pop, "-", "population"), (new, "--", "new trial")):
        _density(a2, d["rd"], "0.2", ls, lev, lo, hi, prob=False)
    a2.axvline(0, color="0.6", lw=0.8)
    a2.axvline(pred.margin, color="tab:red", lw=0.8, ls=":", label=f"margin {pred.margin:g}")
    better = float(np.mean(pop["tac_better"]))
    a2.set_xlabel("risk difference (TAC - comparator)")
    a2.set_title(f"P(TAC better) = {better:.2f} (population)", fontsize=9)
    a2.legend(fontsize=7, frameon=False)
    rep = pred.extrapolation
    tag = ""
    if rep.outside_data:
        tag = "  [outside the data: " + ", ".join(rep.outside_data) + ("; prior-driven]" if rep.prior_driven else "]")
    fig.suptitle(title or f"{pred.target.label()} - {pred.outcome}{tag}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_targets(preds, *, level: str = "population", title: str | None = None, outcome: str | None = None):
    """Medians and intervals of P(outcome) on TAC and on the comparator for each target;
    hatched bars = prior-driven predictions, with the share of variance from priors.
    Ordinal predictions are drawn for ``outcome`` (default ``total_response``)."""
    preds = [p.predictions[outcome or "total_response"] if hasattr(p, "predictions") else p for p in preds]
    k = len(preds)
    fig, ax = plt.subplots(figsize=(8.5, 1.2 + 0.6 * k))
    ys = np.arange(k)[::-1]
    labels = []
    for y, p in zip(ys, preds):
        t = p.table()
        t = t[t["level"] == level].set_index("quantity")
        for q, dy, col in (("p_tac", 0.15, TAC_COLOR), ("p_comparator", -0.15, COMP_COLOR)):
            r = t.loc[q]
            ax.hlines(y + dy, r["lower"], r["upper"], color=col, lw=2.2 if not r["prior_driven"] else 1.2,
                      linestyles="-" if not r["prior_driven"] else (0, (4, 2)))
            ax.plot(r["median"], y + dy, "o", color=col, ms=5)
        rep = p.extrapolation
        labels.append(p.target.name + (" *" if rep.outside_data else ""))
        share = p.shares.get(level, {}).get("log_or", 0.0)
        if rep.outside_data or share > 0:
            ax.text(1.01, y, f"{100 * share:.0f}% of log-OR\nvariance from priors", ha="left", va="center", fontsize=6.5,
                    color="tab:red", transform=ax.get_yaxis_transform())
    ax.set_yticks(ys, labels[: len(ys)], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"P({preds[0].outcome if preds else ''}) - blue TAC, orange comparator ({level})")
    ax.set_title(title or "Predictions by target (* outside the data; dashed = prior-driven)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_ordinal_prediction(pred, *, title: str | None = None):
    """Three panels: P(CR) and P(CR or PR) on TAC and on the comparator (population
    solid, new trial dashed), and the median CR / PR / NR split of each arm (population)."""
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(13, 3.8))
    comp = pred.comparator
    for ax, cat, name in ((a1, "cr", "CR"), (a2, "resp", "CR or PR")):
        for level, ls, lev in (("population", "-", "population"), ("new_trial", "--", "new trial")):
            pr = pred.probabilities[level]
            _density(ax, pr["tac"][cat], TAC_COLOR, ls, f"TAC ({lev})")
            _density(ax, pr["comparator"][cat], COMP_COLOR, ls, f"{comp} ({lev})")
        ax.set_xlabel(f"P({name})")
        ax.set_xlim(0, 1)
        q = pred.predictions["complete_response" if cat == "cr" else "total_response"].draws["population"]
        ax.set_title(f"P(TAC better) = {float(np.mean(q['tac_better'])):.2f} (population)", fontsize=9)
    a1.set_ylabel("predictive density")
    a1.legend(fontsize=7, frameon=False)
    pop = pred.probabilities["population"]
    ys = [1, 0]
    for y, arm, lab in zip(ys, ("tac", "comparator"), (pred.regimen, comp)):
        left = 0.0
        for cat, col, nm in (("cr", "tab:green", "CR"), ("pr", "tab:olive", "PR"), ("nr", "0.75", "NR")):
            w = float(np.median(pop[arm][cat]))
            a3.barh(y, w, left=left, color=col, label=nm if y == 1 else None)
            if w > 0.06:
                a3.text(left + w / 2, y, f"{100 * w:.0f}%", ha="center", va="center", fontsize=7)
            left += w
    a3.set_yticks(ys, [str(pred.regimen), str(comp)], fontsize=8)
    a3.set_xlim(0, 1)
    a3.set_xlabel("median probability (population level)")
    a3.legend(fontsize=7, frameon=False, ncol=3, loc="lower right")
    rep = pred.extrapolation
    tag = ""
    if rep.outside_data:
        tag = "  [outside the data: " + ", ".join(rep.outside_data) + ("; prior-driven]" if rep.prior_driven else "]")
    fig.suptitle(title or f"{pred.target.label()} - CR / PR / NR{tag}", fontsize=10)
    fig.tight_layout()
    return fig
