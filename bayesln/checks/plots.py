"""Figures of the checks; every function returns a matplotlib Figure."""

from __future__ import annotations

from bayesln.plots import plt  # headless unless MPLBACKEND chose a backend (see bayesln.plots)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["plot_comparison", "plot_influence", "plot_model_comparison", "plot_sensitivity", "ppc_figure"]

FLAG = "tab:red"


def ppc_figure(table: pd.DataFrame, *, title: str = "Posterior predictive check", ci: float = 0.95):
    """Per arm: replicated event proportions (posterior predictive interval thick, mixed
    predictive thin) and the observed proportion (dot, red when flagged)."""
    k = len(table)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.38 * max(k, 1)))
    y = np.arange(k)[::-1]
    n = table["n"].to_numpy(float)
    ax.hlines(y, table["rep_low"] / n, table["rep_high"] / n, color="tab:blue", lw=5, alpha=0.45,
              label=f"posterior predictive {100 * ci:g}%")
    if table["p_mixed"].notna().any():
        ax.hlines(y - 0.22, table["mixed_low"] / n, table["mixed_high"] / n, color="tab:orange", lw=1.5,
                  label=f"mixed predictive {100 * ci:g}% (effect redrawn)")
    col = np.where(table["flag"].to_numpy(bool), FLAG, "black")
    ax.scatter(table["events"] / n, y, color=col, zorder=3, s=22, label="observed")
    labels = [f"{r.study} {r.arm}{' (T)' if r.treated else ''}  {r.events}/{r.n}" for r in table.itertuples()]
    ax.set_yticks(y, labels, fontsize=8)
    for t, f in zip(ax.get_yticklabels(), table["flag"].to_numpy(bool)[::1]):
        if f:
            t.set_color(FLAG)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("event proportion")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_influence(table: pd.DataFrame, *, title: str = "Leave one study out"):
    """Pooled OR (left) and tau (right) without each study, with the all-study value as a
    vertical line; frequentist REML leave1out OR as open circles when present."""
    rows = table[table["study"] != "(none)"]
    full = table[table["study"] == "(none)"].iloc[0]
    has_tau = "tau_median" in table.columns and table["tau_median"].notna().any()
    k = len(rows)
    fig, axes = plt.subplots(1, 2 if has_tau else 1, figsize=(9 if has_tau else 5.5, 1.4 + 0.35 * k), squeeze=False)
    y = np.arange(k)[::-1]
    col = np.where(rows["flag"].to_numpy(bool), FLAG, "tab:blue")
    ax = axes[0, 0]
    ax.hlines(y, rows["or_low"], rows["or_high"], color=col, lw=1.5)
    ax.scatter(rows["or_median"], y, color=col, zorder=3, s=20, label="Bayesian OR without the study")
    ax.axvline(full["or_median"], color="0.3", ls="--", lw=1, label="all studies")
    ax.axvspan(full["or_low"], full["or_high"], color="0.85", zorder=0)
    if "reml_log_or" in rows and rows["reml_log_or"].notna().any():
        ax.scatter(np.exp(rows["reml_log_or"]), y, facecolors="none", edgecolors="0.2", s=26, zorder=4,
                   label="REML OR without the study")
    ax.set_xscale("log")
    ax.axvline(1, color="black", lw=0.8)
    ax.set_yticks(y, [f"without {s}" for s in rows["study"]], fontsize=8)
    ax.set_xlabel("pooled odds ratio")
    ax.legend(fontsize=7, frameon=False, loc="best")
    if has_tau:
        ax2 = axes[0, 1]
        ax2.hlines(y, rows["tau_low"], rows["tau_high"], color=col, lw=1.5)
        ax2.scatter(rows["tau_median"], y, color=col, zorder=3, s=20)
        ax2.axvline(full["tau_median"], color="0.3", ls="--", lw=1)
        ax2.axvspan(full["tau_low"], full["tau_high"], color="0.85", zorder=0)
        ax2.set_yticks(y, [""] * k)
        ax2.set_xlabel("tau (between-study SD of the log OR)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_sensitivity(table: pd.DataFrame, *, title: str = "Prior sensitivity"):
    """Pooled OR (median and interval) under each prior; flagged rows in red."""
    t = table[np.isfinite(table["or_median"].astype(float))]
    k = len(t)
    fig, ax = plt.subplots(figsize=(7.5, 1.3 + 0.36 * k))
    y = np.arange(k)[::-1]
    col = np.where(t["flag"].to_numpy(bool), FLAG, np.where(t["changed"] == "reference", "black", "tab:blue"))
    ax.hlines(y, t["or_low"], t["or_high"], color=col, lw=1.6)
    ax.scatter(t["or_median"], y, color=col, s=22, zorder=3)
    ax.axvline(1, color="black", lw=0.8)
    ref = t[t["changed"] == "reference"]
    if len(ref):
        ax.axvline(float(ref["or_median"].iloc[0]), color="0.4", ls="--", lw=1)
    labels = [f"{r.changed}: {r.prior}  P(OR>1)={r.p_or_gt_1:.2f}"
              + (f", tau {r.tau_median:.2f}" if np.isfinite(r.tau_median) else "")
              for r in t.itertuples()]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("pooled odds ratio")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_model_comparison(table: pd.DataFrame, *, title: str = "Model comparison (LOO)"):
    """elpd difference to the best model with +/- 2 SE."""
    k = len(table)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * k))
    y = np.arange(k)[::-1]
    ax.errorbar(table["elpd_diff"], y, xerr=2 * table["se_diff"], fmt="o", color="tab:blue", capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    hk = table["n_high_k"] if "n_high_k" in table else [None] * k
    ax.set_yticks(y, [f"{r.model}  (elpd {r.elpd_loo:.1f} ± {r.se:.1f}" + (f"; k>0.7: {int(h)}" if h is not None else "")
                      + ")" for r, h in zip(table.itertuples(), hk)], fontsize=8)
    ax.set_xlabel("elpd difference to the best model (± 2 SE)")
    if "kind" in table and (table["kind"].str.contains("conditional")).any():
        title += "\nconditional PSIS-LOO: unreliable (see the table's warning)"
    elif "kind" in table:
        title += " — integrated PSIS-LOO per study"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_comparison(table: pd.DataFrame, *, outcome: str | None = None, title: str | None = None):
    """The comparison table as a forest of RRs: published, recomputed, MH / DL / REML and
    Bayesian (marginal and pooled-baseline) per subgroup; flagged rows in red."""
    t = table[(table["measure"] == "RR") & np.isfinite(table["estimate"].astype(float))]
    if outcome is not None:
        t = t[t["outcome"] == outcome]
    k = len(t)
    fig, ax = plt.subplots(figsize=(8.5, 1.3 + 0.3 * max(k, 1)))
    y = np.arange(k)[::-1]
    colors = {"published": "tab:purple", "recomputed": "tab:green", "frequentist": "0.3", "bayesian": "tab:blue"}
    col = [FLAG if f else colors.get(s, "0.3") for s, f in zip(t["source"], t["flag"].astype(bool))]
    ax.hlines(y, t["ci_low"], t["ci_high"], color=col, lw=1.5)
    ax.scatter(t["estimate"], y, color=col, s=18, zorder=3)
    ax.axvline(1, color="black", lw=0.8)
    lab = [f"{r.outcome if outcome is None else ''} {r.subgroup} | {r.source} {r.method}".strip() for r in t.itertuples()]
    ax.set_yticks(y, lab, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("relative risk (95% interval)")
    ax.set_title(title or f"Bayesian vs frequentist RRs{': ' + outcome if outcome else ''}", fontsize=10)
    fig.tight_layout()
    return fig
