"""Figures of the model checks (``bayesln check``): posterior predictive check, leave one
study out, prior sensitivity, LOO model comparison. Each takes the check's table and
returns a matplotlib Figure (7 in wide, fonts >= 7 pt, constrained layout). Flagged rows
are red and marked by a second encoding (label colour / marker) as well."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesln.plots._style import (
    FLAG,
    FONT_MIN,
    JOURNAL_WIDTH,
    new_figure,
    ratio_axis,
    wrap,
)

__all__ = ["plot_influence", "plot_model_comparison", "plot_sensitivity", "ppc_figure"]

FS = 8.0


def _figure(height: float, ncols: int = 1, width: float = JOURNAL_WIDTH, **kw):
    fig = new_figure(width, height, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, **kw)
    fig.get_layout_engine().set(w_pad=4 / 72, h_pad=4 / 72)
    return fig, axes[0]


def ppc_figure(table: pd.DataFrame, *, title: str = "Posterior predictive check", ci: float = 0.95):
    """Per arm: replicated event proportions (posterior predictive interval thick, mixed
    predictive thin) and the observed proportion (dot; a red cross and a red label when
    flagged)."""
    k = len(table)
    fig, (ax,) = _figure(1.3 + 0.2 * max(k, 1))
    y = np.arange(k)[::-1]
    n = table["n"].to_numpy(float)
    ax.hlines(y, table["rep_low"] / n, table["rep_high"] / n, color="tab:blue", lw=4, alpha=0.45,
              label=f"posterior predictive {100 * ci:g}%")
    if table["p_mixed"].notna().any():
        ax.hlines(y - 0.25, table["mixed_low"] / n, table["mixed_high"] / n, color="tab:orange", lw=1.3,
                  label=f"mixed predictive {100 * ci:g}% (effect redrawn)")
    flag = table["flag"].to_numpy(bool)
    ok = ~flag
    ax.scatter((table["events"] / n)[ok], y[ok], color="black", zorder=3, s=14, label="observed")
    if flag.any():
        ax.scatter((table["events"] / n)[flag], y[flag], color=FLAG, marker="X", zorder=3, s=30,
                   label="observed, flagged")
    labels = [f"{r.study} {r.arm}{' (T)' if r.treated else ''}  {r.events}/{r.n}" for r in table.itertuples()]
    ax.set_yticks(y, labels, fontsize=FONT_MIN)
    for t, f in zip(ax.get_yticklabels(), flag):
        if f:
            t.set_color(FLAG)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.8, k - 0.3)
    ax.set_xlabel("event proportion", fontsize=FS)
    ax.tick_params(axis="x", labelsize=FS)
    fig.suptitle(wrap(title, JOURNAL_WIDTH - 0.3, FS + 1), fontsize=FS + 1)
    fig.legend(fontsize=FONT_MIN, loc="outside lower center", frameon=False, ncol=4)
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_influence(table: pd.DataFrame, *, title: str = "Leave one study out"):
    """Pooled OR (left) and tau (right) without each study, with the all-study value as a
    vertical line; frequentist REML leave1out OR as open circles when present."""
    rows = table[table["study"] != "(none)"]
    full = table[table["study"] == "(none)"].iloc[0]
    has_tau = "tau_median" in table.columns and table["tau_median"].notna().any()
    k = len(rows)
    fig, axes = _figure(1.5 + 0.24 * k, ncols=2 if has_tau else 1, sharey=True)
    y = np.arange(k)[::-1]
    flag = rows["flag"].to_numpy(bool)
    col = np.where(flag, FLAG, "tab:blue")
    ax = axes[0]
    ax.hlines(y, rows["or_low"], rows["or_high"], color=col, lw=1.5)
    ax.scatter(rows["or_median"], y, color=col, zorder=3, s=18, label="Bayesian OR without the study")
    ax.axvline(full["or_median"], color="0.3", ls="--", lw=1, label="all studies")
    ax.axvspan(full["or_low"], full["or_high"], color="0.88", zorder=0)
    if "reml_log_or" in rows and rows["reml_log_or"].notna().any():
        ax.scatter(np.exp(rows["reml_log_or"]), y, facecolors="none", edgecolors="0.2", s=24, zorder=4,
                   label="REML OR without the study")
    ax.set_xscale("log")
    ratio_axis(ax)
    ax.axvline(1, color="black", lw=0.8)
    ax.set_yticks(y, [f"without {s}" + (" (flagged)" if f else "") for s, f in zip(rows["study"], flag)],
                  fontsize=FONT_MIN)
    for t, f in zip(ax.get_yticklabels(), flag):
        if f:
            t.set_color(FLAG)
    ax.set_xlabel("pooled odds ratio", fontsize=FS)
    ax.tick_params(axis="x", labelsize=FONT_MIN)
    if has_tau:
        ax2 = axes[1]
        ax2.hlines(y, rows["tau_low"], rows["tau_high"], color=col, lw=1.5)
        ax2.scatter(rows["tau_median"], y, color=col, zorder=3, s=18)
        ax2.axvline(full["tau_median"], color="0.3", ls="--", lw=1)
        ax2.axvspan(full["tau_low"], full["tau_high"], color="0.88", zorder=0)
        ax2.set_xlabel("tau (between-study SD of the log OR)", fontsize=FS)
        ax2.tick_params(axis="both", labelsize=FONT_MIN, labelleft=False)
    fig.legend(fontsize=FONT_MIN, loc="outside lower center", frameon=False, ncol=3)
    fig.suptitle(wrap(title, JOURNAL_WIDTH - 0.3, FS + 1), fontsize=FS + 1)
    return fig


def plot_sensitivity(table: pd.DataFrame, *, title: str = "Prior sensitivity"):
    """Pooled OR (median and interval) under each prior; the reference prior black with a
    dashed line, flagged rows red with a cross."""
    t = table[np.isfinite(table["or_median"].astype(float))]
    k = len(t)
    fig, (ax,) = _figure(1.3 + 0.24 * k)
    y = np.arange(k)[::-1]
    flag = t["flag"].to_numpy(bool)
    ref = (t["changed"] == "reference").to_numpy()
    col = np.where(flag, FLAG, np.where(ref, "black", "tab:blue"))
    ax.hlines(y, t["or_low"], t["or_high"], color=col, lw=1.6)
    for m, mask, lab in (("o", ~flag & ~ref, "alternative prior"), ("s", ref & ~flag, "reference prior"),
                         ("X", flag, "flagged (changes the conclusion)")):
        if mask.any():
            ax.scatter(t["or_median"][mask], y[mask], color=col[mask], marker=m, s=22, zorder=3, label=lab)
    ax.axvline(1, color="black", lw=0.8)
    if ref.any():
        ax.axvline(float(t["or_median"][ref].iloc[0]), color="0.4", ls="--", lw=1)
    labels = [f"{r.changed}: {r.prior}  P(OR>1)={r.p_or_gt_1:.2f}"
              + (f", tau {r.tau_median:.2f}" if np.isfinite(r.tau_median) else "")
              for r in t.itertuples()]
    ax.set_yticks(y, labels, fontsize=FONT_MIN)
    for lab, f in zip(ax.get_yticklabels(), flag):
        if f:
            lab.set_color(FLAG)
    ax.set_xscale("log")
    ratio_axis(ax)
    ax.tick_params(axis="x", labelsize=FONT_MIN)
    ax.set_xlabel("pooled odds ratio", fontsize=FS)
    fig.suptitle(wrap(title, JOURNAL_WIDTH - 0.3, FS + 1), fontsize=FS + 1)
    fig.legend(fontsize=FONT_MIN, loc="outside lower center", frameon=False, ncol=3)
    return fig


def plot_model_comparison(table: pd.DataFrame, *, title: str = "Model comparison (LOO)"):
    """elpd difference to the best model with +/- 2 SE."""
    k = len(table)
    fig, (ax,) = _figure(1.2 + 0.3 * k)
    y = np.arange(k)[::-1]
    ax.errorbar(table["elpd_diff"], y, xerr=2 * table["se_diff"], fmt="o", color="tab:blue", capsize=3, ms=4)
    ax.axvline(0, color="black", lw=0.8)
    hk = table["n_high_k"] if "n_high_k" in table else [None] * k
    ax.set_yticks(y, [f"{r.model}  (elpd {r.elpd_loo:.1f} \u00b1 {r.se:.1f}" + (f"; k>0.7: {int(h)}" if h is not None else "")
                      + ")" for r, h in zip(table.itertuples(), hk)], fontsize=FONT_MIN)
    ax.set_ylim(-0.6, k - 0.4)
    ax.set_xlabel("elpd difference to the best model (\u00b1 2 SE)", fontsize=FS)
    ax.tick_params(axis="x", labelsize=FONT_MIN)
    if "kind" in table and (table["kind"].str.contains("conditional")).any():
        title += "\nconditional PSIS-LOO: unreliable (see the table's warning)"
    elif "kind" in table:
        title += " \u2014 integrated PSIS-LOO per study"
    fig.suptitle(wrap(title, JOURNAL_WIDTH - 0.3, FS + 1), fontsize=FS + 1)
    return fig
