"""Forest plot (matplotlib) of a contrast table with fixed- and random-effects summaries."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ._zeroin import R_UNIROOT_TOL
from .analysis import MetaAnalysis, meta_analysis
from .effects import check_measure
from .errors import FrequentistInputError

MEASURE_LABEL = {"RR": "Risk ratio", "OR": "Odds ratio", "RD": "Risk difference"}
METHOD_LABEL = {
    "mh": "Mantel-Haenszel", "peto": "Peto", "iv": "Inverse variance",
    "dl": "DerSimonian-Laird", "reml": "REML", "pm": "Paule-Mandel",
}


def _published_tuple(published) -> tuple[float, float, float, str] | None:
    if published is None:
        return None
    if isinstance(published, Mapping):
        try:
            est, lo, hi = (float(published[k]) for k in ("estimate", "ci_low", "ci_high"))
        except KeyError as exc:
            raise FrequentistInputError(f"published needs estimate, ci_low, ci_high (missing {exc})") from None
        label = str(published.get("label", published.get("source", "Published")))
        return est, lo, hi, label
    if isinstance(published, pd.Series):
        return _published_tuple(published.to_dict())
    seq = list(published)
    if len(seq) not in (3, 4):
        raise FrequentistInputError("published must be (estimate, ci_low, ci_high[, label]) or a mapping")
    return float(seq[0]), float(seq[1]), float(seq[2]), str(seq[3]) if len(seq) == 4 else "Published"


def _ratio_ticks(ax, lo: float, hi: float) -> None:
    """Plain-number ticks (0.5, 1, 2, ...) on a log axis: the densest 'nice' set with at
    most 7 ticks in range."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    e_lo, e_hi = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    ticks: list[float] = [1.0]
    for mant in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        cand = sorted({round(m * 10.0**e, 10) for e in range(e_lo, e_hi + 1) for m in mant})
        inside = [t for t in cand if lo <= t <= hi]
        if len(inside) > 7:
            break
        if len(inside) >= 1:
            ticks = inside
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


def forest_plot(contrasts: pd.DataFrame, measure: str = "RR", *, fixed: str | None = "mh",
                random: str | None = "reml", hksj: bool = False, level: float = 95.0,
                published=None, title: str | None = None, labels: Sequence[str] | None = None,
                treat_label: str = "Treatment", control_label: str = "Control",
                tol: float = R_UNIROOT_TOL, ax=None, figsize=None):
    """Draw a forest plot and return the matplotlib ``Figure``.

    Rows: one per study (point estimate as a square sized by the random-effects weight,
    or the fixed-effect weight when ``random=None``, with its ``level``% CI), then a
    diamond for the fixed-effect summary (method ``fixed``, default Mantel-Haenszel) and
    for the random-effects summary (method ``random``, default REML; HKSJ interval when
    ``hksj``) with its prediction interval drawn as a line through the diamond, and
    optionally a marker for a published estimate (``published``: mapping with
    ``estimate, ci_low, ci_high[, label]`` or a tuple, e.g. a row of
    ``TrialData.published``). Text columns: counts per arm, effect with CI, weights (%).
    Ratio measures use a log axis; the line of no effect is at 1 (RR/OR) or 0 (RD).

    The study rows show the effect sizes the random-effects model pools (metafor
    ``escalc`` defaults: a double-zero study is kept, with 1/2 added to its cells) when
    ``random`` is given, else those of the fixed-effect model (for ``mh``/``peto`` a
    double-zero study has no effect size, weight 0, and is shown as "not estimable").

    ``ax``: draw into an existing Axes (its figure is returned); otherwise a new
    ``matplotlib.figure.Figure`` is created (no pyplot state is touched).
    """
    measure = check_measure(measure)
    if fixed is None and random is None:
        raise FrequentistInputError("forest_plot needs at least one of fixed= and random=")
    fits: list[tuple[str, MetaAnalysis]] = []
    if fixed is not None:
        fits.append(("fixed", meta_analysis(contrasts, measure, fixed, level=level, tol=tol,
                                            hksj=hksj and fixed == "iv")))
    if random is not None:
        fits.append(("random", meta_analysis(contrasts, measure, random, hksj=hksj, level=level, tol=tol)))
    # the rows drawn are those of the model whose weights size the squares. The fixed fit's
    # rows can differ from what the random model pools: Peto rows are Peto log ORs, not the
    # escalc log ORs, and with MH/Peto a double-zero study has no yi (rma.mh drop00=TRUE
    # for yi) although the random model keeps it (escalc drop00=FALSE)
    studies = fits[-1][1].studies
    w_fixed = fits[0][1].studies["weight"].to_numpy() if fixed is not None else None
    w_random = fits[-1][1].studies["weight"].to_numpy() if random is not None else None
    size_w = w_random if w_random is not None else w_fixed
    pub = _published_tuple(published)

    k = len(studies)
    names = list(labels) if labels is not None else studies["study"].astype(str).tolist()
    if len(names) != k:
        raise FrequentistInputError("labels must have one entry per study in the plot")
    n_rows = k + len(fits) + (1 if pub else 0) + 3  # header, gap, heterogeneity
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize or (11, 0.38 * n_rows + 1.6))
        ax = fig.add_axes((0.36, 0.1, 0.3, 0.8))
    else:
        fig = ax.figure
    ratio = measure in ("RR", "OR")
    tr = np.exp if ratio else (lambda x: x)

    y_top = n_rows - 1
    ys = np.arange(y_top - 1, y_top - 1 - k, -1, dtype=float)
    yi, se = studies["yi"].to_numpy(float), studies["se"].to_numpy(float)
    lo, hi = studies["ci_low"].to_numpy(float), studies["ci_high"].to_numpy(float)
    eff = studies["effect"].to_numpy(float)
    wmax = np.nanmax(size_w) if np.isfinite(size_w).any() else 1.0
    xs_all = []
    for i in range(k):
        if not np.isfinite(yi[i]):
            continue
        ax.plot([lo[i], hi[i]], [ys[i], ys[i]], color="black", lw=1)
        s = 20 + 180 * (size_w[i] / wmax if np.isfinite(size_w[i]) else 0)
        ax.scatter([eff[i]], [ys[i]], marker="s", s=s, color="#3b5b92", zorder=3)
        xs_all += [lo[i], hi[i]]
    y = ys[-1] - 1 if k else y_top - 1
    summary_rows = []
    for kind, res in fits:
        f = res.fit
        row = res.summary.iloc[0]
        est, cl, ch = row["estimate"], row["ci_low"], row["ci_high"]
        color = "#b22222" if kind == "fixed" else "#1b7837"
        if kind == "random" and np.isfinite(row["pi_low"]):
            ax.plot([row["pi_low"], row["pi_high"]], [y, y], color=color, lw=1, ls="--")
            xs_all += [row["pi_low"], row["pi_high"]]
        ax.fill([cl, est, ch, est], [y, y + 0.3, y, y - 0.3], color=color, zorder=3)
        xs_all += [cl, ch]
        label = f"{METHOD_LABEL[f.method]} ({f.model} effect{', HKSJ' if f.test == 'knha' else ''})"
        summary_rows.append((y, label, est, cl, ch, row))
        y -= 1
    if pub:
        est, cl, ch, plabel = pub
        ax.plot([cl, ch], [y, y], color="#7b3294", lw=1.2)
        ax.scatter([est], [y], marker="D", facecolors="white", edgecolors="#7b3294", s=50, zorder=3)
        summary_rows.append((y, f"{plabel} (published)", est, cl, ch, None))
        xs_all += [cl, ch]
        y -= 1

    xs = np.array([x for x in xs_all if np.isfinite(x) and (x > 0 or not ratio)])
    null = 1.0 if ratio else 0.0
    if ratio:
        ax.set_xscale("log")
        lo_x = min(xs.min(), null) / 1.15 if xs.size else 0.1
        hi_x = max(xs.max(), null) * 1.15 if xs.size else 10
    else:
        span = (xs.max() - xs.min()) if xs.size else 1.0
        lo_x = min(xs.min(), null) - 0.05 * span if xs.size else -1
        hi_x = max(xs.max(), null) + 0.05 * span if xs.size else 1
    ax.set_xlim(lo_x, hi_x)
    if ratio:
        _ratio_ticks(ax, lo_x, hi_x)
    ax.axvline(null, color="grey", lw=0.8)
    ax.set_ylim(y - 0.5, y_top + 0.8)  # row y: heterogeneity text
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(f"{MEASURE_LABEL[measure]} ({level:g}% CI)")

    # text columns (axes-fraction x, data y)
    trans = ax.get_yaxis_transform()
    fmt = (lambda v: f"{v:.2f}") if ratio else (lambda v: f"{v:.3f}")

    def txt(x, yy, s, **kw):
        ax.text(x, yy, s, transform=trans, va="center", fontsize=8.5, clip_on=False, **kw)

    eff_text = [f"{fmt(eff[i])} [{fmt(lo[i])}, {fmt(hi[i])}]" if np.isfinite(eff[i]) else "not estimable"
                for i in range(k)]
    # weight columns (right-aligned) start after the widest effect text, so that long RD
    # or wide-CI texts do not run into them; width estimate: 0.6 em per character
    em = 8.5 / (fig.get_figwidth() * 72 * ax.get_position().width)  # 1 em in axes fraction
    eff_end = 1.05 + 0.6 * em * max([len(t) for t in eff_text] + [0])
    x_wf = max(1.55, eff_end + 0.03 + 0.6 * em * len("100.0%"))
    x_wr = x_wf + 0.23 if w_fixed is not None else x_wf
    txt(-1.18, y_top, "Study", weight="bold")
    txt(-0.62, y_top, f"{treat_label}\nevents/n", weight="bold", ha="center")
    txt(-0.28, y_top, f"{control_label}\nevents/n", weight="bold", ha="center")
    txt(1.05, y_top, f"{measure} [{level:g}% CI]", weight="bold")
    if w_fixed is not None:
        txt(x_wf, y_top, "Weight\nfixed", weight="bold", ha="right")
    if w_random is not None:
        txt(x_wr, y_top, "Weight\nrandom", weight="bold", ha="right")
    for i in range(k):
        r = studies.iloc[i]
        txt(-1.18, ys[i], names[i])
        txt(-0.62, ys[i], f"{r['events_t']:g}/{r['n_t']:g}", ha="center")
        txt(-0.28, ys[i], f"{r['events_c']:g}/{r['n_c']:g}", ha="center")
        txt(1.05, ys[i], eff_text[i])
        if w_fixed is not None:
            txt(x_wf, ys[i], f"{w_fixed[i]:.1f}%" if np.isfinite(w_fixed[i]) else "-", ha="right")
        if w_random is not None:
            txt(x_wr, ys[i], f"{w_random[i]:.1f}%" if np.isfinite(w_random[i]) else "-", ha="right")
    for yy, label, est, cl, ch, row in summary_rows:
        txt(-1.18, yy, label, weight="bold" if row is not None else "normal")
        txt(1.05, yy, f"{fmt(est)} [{fmt(cl)}, {fmt(ch)}]", weight="bold" if row is not None else "normal")
        if row is not None and row["model"] == "random" and np.isfinite(row["pi_low"]):
            txt(1.05, yy - 0.45, f"PI [{fmt(row['pi_low'])}, {fmt(row['pi_high'])}]", color="#1b7837")
    het = fits[-1][1].summary.iloc[0]
    het_text = (f"Heterogeneity: Q = {het['q']:.2f} (df = {int(het['q_df'])}, p = {het['q_pvalue']:.3g}), "
                f"I\u00b2 = {het['i2']:.0f}%")
    if np.isfinite(het["tau2"]):
        het_text += f", \u03c4\u00b2 = {het['tau2']:.3g}"
    txt(-1.18, y, het_text, style="italic")
    if title:
        ax.set_title(title, loc="left", x=-1.18, fontsize=11, weight="bold")
    fig.bayesln_results = [res for _, res in fits]  # the fits drawn, for callers and tests
    if not math.isfinite(lo_x):  # pragma: no cover - defensive
        raise FrequentistInputError("nothing to plot")
    return fig
