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


def forest_plot(result, *, title: str | None = None, ci: float = 0.95, frequentist: pd.DataFrame | None = None,
                published: pd.DataFrame | None = None, rr_rows: pd.DataFrame | None = None):
    """Forest plot in the style of metafor's ``forest()``: one row per study with the
    observed OR (square sized by its weight, 0.5-corrected when a cell is zero) and the
    shrunken Bayesian OR beside it, the study's weight in the right margin (random-effects
    weights 1/(v_i + tau^2) with the REML tau^2 when a REML row is given, else inverse
    variance); below the studies the frequentist common/random diamonds (rows of a
    frequentist summary with ``measure == "OR"``), the pooled Bayesian diamond and the 95%
    prediction interval for a new study. ``published``: comparison rows with
    ``source == "published"`` (relative risks, so not on this OR axis) are listed under the
    plot. ``rr_rows``: comparison-table rows on the RR scale (``measure == "RR"``), drawn
    in a panel below the forest on their own RR axis - the Bayesian RRs from posterior arm
    probabilities, the recomputed Mantel-Haenszel / random-effects RRs and the published
    RR (marked in orange), so the published figure is shown on the scale it was published
    on."""
    import textwrap

    se = result.study_effects(ci)
    lo_col = [c for c in se.columns if c.startswith("or_q")][0]
    hi_col = [c for c in se.columns if c.startswith("or_q")][1]
    k = len(se)
    freq = frequentist[frequentist["measure"] == "OR"] if frequentist is not None else pd.DataFrame()
    n_pool = len(freq) + 2
    fig_h = 1.9 + 0.45 * (k + n_pool + 1)
    rr = rr_rows[(rr_rows["measure"] == "RR") & rr_rows["estimate"].notna()].reset_index(drop=True) \
        if rr_rows is not None and len(rr_rows) else pd.DataFrame()
    if len(rr):
        rr_h = 0.9 + 0.32 * len(rr)
        fig, (ax, ax_rr) = plt.subplots(2, 1, figsize=(9.5, fig_h + rr_h),
                                        gridspec_kw={"height_ratios": [fig_h, rr_h]})
    else:
        fig, ax = plt.subplots(figsize=(9.5, fig_h))
    ys = np.arange(k, 0, -1) + n_pool + 0.5
    v = se["observed_se"].to_numpy() ** 2
    tau2 = 0.0
    if len(freq) and "tau2" in freq.columns:
        t = freq["tau2"].dropna()
        tau2 = float(t.iloc[-1]) if len(t) else 0.0
    w = 1 / (v + tau2)
    wpct = 100 * w / w.sum()
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
    trans = ax.get_yaxis_transform()  # x in axes coordinates, y in data
    ax.text(1.02, ys[0] + 0.9, "weight", transform=trans, fontsize=8, ha="left", va="center", weight="bold")
    for y, wp in zip(ys, wpct):
        ax.text(1.02, y, f"{wp:.1f}%", transform=trans, fontsize=8, ha="left", va="center")
    ylab = {}
    y = n_pool
    for _, r in freq.iterrows():
        _diamond(ax, y, r["ci_low"], r["estimate"], r["ci_high"], "0.55", h=0.25)
        ylab[y] = f"{r['method'].upper()} OR {r['estimate']:.2f} ({r['ci_low']:.2f}-{r['ci_high']:.2f})"
        y -= 1
    post = result.idata.posterior
    d = post["d"].values.reshape(-1)
    q = np.exp(np.quantile(d, [(1 - ci) / 2, 0.5, (1 + ci) / 2]))
    _diamond(ax, 2, q[0], q[1], q[2], "tab:blue", label="pooled OR (Bayesian)")
    ylab[2] = f"Bayesian pooled OR {q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})"
    if "tau" in post:
        rng = np.random.default_rng(0)
        tau = post["tau"].values.reshape(-1)
        new = np.exp(d + tau * rng.standard_normal(d.size))
        p = np.quantile(new, [(1 - ci) / 2, (1 + ci) / 2])
        ax.hlines(1, p[0], p[1], color="tab:blue", lw=3, alpha=0.5, label="prediction interval (new study)")
        ylab[1] = f"prediction interval {p[0]:.2f}-{p[1]:.2f}"
    ax.axhline(n_pool + 0.5 - 0.5 + 0.25, color="0.8", lw=0.6)
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xscale("log")
    _ratio_axis(ax)
    ticks = list(ys) + sorted(ylab)
    ax.set_yticks(ticks, labels + [ylab[t] for t in sorted(ylab)])
    ax.set_ylim(0.3, ys[0] + 1.4)
    ax.set_xlabel("odds ratio (TAC vs comparator; log scale)")
    ax.set_title("\n".join(textwrap.wrap(title or f"{result.outcome}: study and pooled odds ratios", 70)), fontsize=10)
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    if published is not None and len(published) and not len(rr):  # else the RR panel shows it
        notes = [f"published ({r['method'].replace('_', ' ')}, {r['subgroup']}): RR {r['estimate']:.2f} "
                 f"({r['ci_low']:.2f}-{r['ci_high']:.2f}), k={r['k']}"
                 for _, r in published.iterrows() if pd.notna(r["estimate"])]
        if notes:
            fig.text(0.01, 0.005, "Kraaij et al. " + "; ".join(notes) + " - relative risks, see comparison.png",
                     fontsize=7, ha="left", va="bottom", wrap=True)
    if len(rr):
        _rr_panel(ax_rr, rr)
    footnote = published is not None and len(published) and not len(rr)
    fig.tight_layout(rect=(0, 0.04 if footnote else 0, 1, 1))
    return fig


RR_COLORS = {"bayesian": "tab:blue", "frequentist": "0.3", "published": "tab:orange", "recomputed": "tab:green"}


def _rr_panel(ax, rr: pd.DataFrame) -> None:
    """Relative risks with intervals, one row each (the published one orange, a diamond)."""
    ys = np.arange(len(rr), 0, -1)
    labels = []
    for y, (_, r) in zip(ys, rr.iterrows()):
        col = RR_COLORS.get(r["source"], "k")
        if r["source"] == "published":
            _diamond(ax, y, r["ci_low"], r["estimate"], r["ci_high"], col, h=0.3)
        else:
            ax.hlines(y, r["ci_low"], r["ci_high"], color=col, lw=2)
            ax.plot(r["estimate"], y, "o", color=col, ms=5)
        name = "Kraaij et al. (published)" if r["source"] == "published" else f"{r['source']}: {r['method'].replace('_', ' ')}"
        labels.append(f"{name} RR {r['estimate']:.2f} ({r['ci_low']:.2f}-{r['ci_high']:.2f}), k={r['k']}")
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_ylim(0.4, len(rr) + 0.6)
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xscale("log")
    _ratio_axis(ax)
    ax.set_xlabel("relative risk (log scale): Bayesian from posterior arm probabilities, frequentist, published", fontsize=8)


def comparison_plot(comparison: pd.DataFrame, *, title: str | None = None):
    """Bayesian vs frequentist vs published RRs with 95% intervals (flagged rows in red)."""
    c = comparison[comparison["measure"] == "RR"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.5, 1.4 + 0.42 * len(c)))
    ys = np.arange(len(c), 0, -1)
    colors = RR_COLORS
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


def save_run_figures(analysis, folder: Path, predictions=None) -> None:
    """The run's figures: forest and comparison plots (core family), the targets'
    predicted probabilities (with targets) and trace/rank plots of the pooled parameters
    (every family)."""
    from bayesln import _arviz

    idata = analysis.result.idata
    if analysis.spec.model.family == "core":
        from bayesln.frequentist import meta_analysis

        try:
            rows = [meta_analysis(analysis.contrasts, "OR", m).summary for m in ("mh", "reml")]
            freq = pd.concat(rows, ignore_index=True)
        except ValueError:  # fewer than two studies with counts: no pooled frequentist row
            freq = None
        comp = analysis.comparison
        pub = comp[(comp["source"] == "published") & (comp["subgroup"] == "all")] if len(comp) else None
        rr_rows = comp[(comp["subgroup"] == "all") & (comp["measure"] == "RR")] if len(comp) else None
        save_figure(forest_plot(analysis.result, title=analysis.spec.analysis.title or None, frequentist=freq,
                                published=pub, rr_rows=rr_rows), folder, "forest")
        save_figure(comparison_plot(analysis.comparison), folder, "comparison")
    if predictions is not None and len(predictions):
        from bayesln.predict.plots import plot_targets

        save_figure(plot_targets(predictions, title=analysis.spec.analysis.title or None), folder, "predictions")
    names = [v for v in ("d", "tau", "rho") if v in idata.posterior.data_vars]
    if names:
        save_figure(_arviz.plot_trace(idata, var_names=names), folder, "trace")
