"""Figures in the style clinicians know. Every function returns a matplotlib Figure;
``save_run_figures`` writes PNG and SVG into a run folder."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

# headless by default (the command line), but keep a backend the user or Jupyter chose
# (ipykernel sets MPLBACKEND to the inline backend; forcing Agg there hides every figure)
if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _ratio_axis(ax) -> None:
    """Plain-number ticks (0.5, 1, 1.5, 2, ...) on a log ratio axis: matplotlib's default
    labels overlap ("1.1x10^0 1.2x10^0 ...") when the range lies within one decade."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = ax.get_xlim()
    e_lo, e_hi = int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1
    ticks = [1.0]
    for mant in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        inside = [t for t in sorted({round(m * 10.0**e, 10) for e in range(e_lo, e_hi + 1) for m in mant}) if lo <= t <= hi]
        if len(inside) > 8:
            break
        if inside:
            ticks = inside
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


def _diamond(ax, y, lo, mid, hi, color, label=None, h=0.3):
    ax.fill([lo, mid, hi, mid], [y, y + h, y, y - h], color=color, label=label, zorder=3)


def forest_plot(result, *, title: str | None = None, ci: float = 0.95, frequentist: pd.DataFrame | None = None):
    """Study rows with the observed OR (square sized by inverse variance, 0.5-corrected
    when a cell is zero) and the shrunken Bayesian OR beside it; pooled Bayesian diamond,
    optional frequentist fixed/random diamonds (rows of a frequentist summary with
    ``measure == "OR"``), and the 95% prediction interval for a new study."""
    se = result.study_effects(ci)
    lo_col = [c for c in se.columns if c.startswith("or_q")][0]
    hi_col = [c for c in se.columns if c.startswith("or_q")][1]
    k = len(se)
    fig_h = 1.6 + 0.45 * (k + 4)
    fig, ax = plt.subplots(figsize=(8.5, fig_h))
    ys = np.arange(k, 0, -1) + 3
    w = 1 / se["observed_se"].to_numpy() ** 2
    size = 30 + 170 * w / w.max()
    obs = np.exp(se["observed_log_or"].to_numpy())
    olo = np.exp(se["observed_log_or"] - 1.96 * se["observed_se"]).to_numpy()
    ohi = np.exp(se["observed_log_or"] + 1.96 * se["observed_se"]).to_numpy()
    ax.hlines(ys + 0.15, olo, ohi, color="0.25", lw=1)
    ax.scatter(obs, ys + 0.15, s=size, marker="s", color="0.25", label="observed OR (95% CI)", zorder=3)
    ax.hlines(ys - 0.15, se[lo_col], se[hi_col], color="tab:blue", lw=1.5)
    ax.scatter(se["or_median"], ys - 0.15, marker="o", color="tab:blue", s=25, label="shrunken Bayesian OR", zorder=3)
    dup = se["study"].duplicated(keep=False)
    labels = [
        f"{r.study}{' (vs ' + str(r.control_arm).split(':')[-1] + ')' if dup.iloc[i] else ''}  "
        f"{r.events_t}/{r.n_t} vs {r.events_c}/{r.n_c}"
        for i, r in enumerate(se.itertuples())
    ]
    post = result.idata.posterior
    d = post["d"].values.reshape(-1)
    q = np.exp(np.quantile(d, [(1 - ci) / 2, 0.5, (1 + ci) / 2]))
    _diamond(ax, 2, q[0], q[1], q[2], "tab:blue", label="pooled OR (Bayesian)")
    ylab = {2: f"Bayesian pooled OR {q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})"}
    if "tau" in post:
        rng = np.random.default_rng(0)
        tau = post["tau"].values.reshape(-1)
        new = np.exp(d + tau * rng.standard_normal(d.size))
        p = np.quantile(new, [(1 - ci) / 2, (1 + ci) / 2])
        ax.hlines(1, p[0], p[1], color="tab:blue", lw=3, alpha=0.5, label="prediction interval (new study)")
        ylab[1] = f"prediction interval {p[0]:.2f}-{p[1]:.2f}"
    if frequentist is not None:
        y = 3 + k + 0.9
        for _, r in frequentist[frequentist["measure"] == "OR"].iterrows():
            _diamond(ax, y, r["ci_low"], r["estimate"], r["ci_high"], "0.55", h=0.25)
            ylab[y] = f"{r['method'].upper()} OR {r['estimate']:.2f} ({r['ci_low']:.2f}-{r['ci_high']:.2f})"
            y += 0.8
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xscale("log")
    _ratio_axis(ax)
    ticks = list(ys) + sorted(ylab)
    ax.set_yticks(ticks, labels + [ylab[t] for t in sorted(ylab)])
    ax.set_xlabel("odds ratio (TAC vs comparator; log scale)")
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(title or f"{result.outcome}: study and pooled odds ratios", 70)), fontsize=10)
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def comparison_plot(comparison: pd.DataFrame, *, title: str | None = None):
    """Bayesian vs frequentist vs published RRs with 95% intervals (flagged rows in red)."""
    c = comparison[comparison["measure"] == "RR"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.5, 1.4 + 0.42 * len(c)))
    ys = np.arange(len(c), 0, -1)
    colors = {"bayesian": "tab:blue", "frequentist": "0.3", "published": "tab:orange", "recomputed": "tab:green"}
    for y, (_, r) in zip(ys, c.iterrows()):
        col = colors.get(r["source"], "k")
        ax.hlines(y, r["ci_low"], r["ci_high"], color=col, lw=2)
        ax.plot(r["estimate"], y, "o", color=col, mec="red" if bool(r["flag"]) else col, mew=2)
    ax.set_yticks(ys, [f"{r['source']}: {r['method']} [{r['subgroup']}] (k={r['k']})" for _, r in c.iterrows()], fontsize=8)
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xscale("log")
    _ratio_axis(ax)
    ax.set_xlabel("relative risk (log scale)")
    ax.set_title(title or "Bayesian vs frequentist vs published relative risks")
    fig.tight_layout()
    return fig


def save_figure(fig, folder: Path, stem: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{stem}.png", dpi=120)
    fig.savefig(folder / f"{stem}.svg")
    plt.close(fig)


def save_run_figures(analysis, folder: Path) -> None:
    """The run's figures: forest and comparison plots (core family) and trace/rank plots
    of the pooled parameters (every family)."""
    from bayesln import _arviz

    idata = analysis.result.idata
    if analysis.spec.model.family == "core":
        from bayesln.frequentist import meta_analysis

        try:
            rows = [meta_analysis(analysis.contrasts, "OR", m).summary for m in ("mh", "reml")]
            freq = pd.concat(rows, ignore_index=True)
        except ValueError:  # fewer than two studies with counts: no pooled frequentist row
            freq = None
        save_figure(forest_plot(analysis.result, title=analysis.spec.analysis.title or None, frequentist=freq), folder, "forest")
        save_figure(comparison_plot(analysis.comparison), folder, "comparison")
    names = [v for v in ("d", "tau", "rho") if v in idata.posterior.data_vars]
    if names:
        save_figure(_arviz.plot_trace(idata, var_names=names), folder, "trace")
