"""Forest plots as journals print them - one implementation for the frequentist
meta-analysis of a contrast table and for a Bayesian run.

Layout (journal width, 7 in, 8 pt; 7 pt or a wider figure only when the columns do not
fit): a text table - study ("Author Year"), events/n per arm, the estimate with its
interval, one weight column per pooled model that has weights ("Weight (MH)",
"Weight (REML)": each the percent weight of the model that drew the diamond of that
name, so each sums to 100%) - with the effect axis in its middle; pooled diamonds,
prediction interval, heterogeneity line(s) and the published estimate below the studies;
"Favours <treatment>" / "Favours <control>" under the axis on the sides the outcome's
direction gives (a benefit such as renal response favours the treatment on the side of
more events, a harm such as infection on the side of fewer).

Every trial is one row and enters every weight once: the rows are the contrast table's
(``TrialData.contrasts``: the arms of a multi-arm trial on the same side pooled), and
a Bayesian run's rows are built the same way from the arms of its fit. The Bayesian
shrunken estimate of a pooled multi-arm trial is the odds ratio of the n-weighted mean
event probabilities of its treated and control arms, draw by draw (for a two-arm trial
exactly exp(eta_t - eta_c)).

The Bayesian pooled OR, tau and the prediction interval for a new study are the rows of
the run's summary (``result.summary()``, written as ``summary.csv``), never drawn again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesln.plots._style import (
    COLORS,
    FLAG,
    FONT,
    FONT_MIN,
    JOURNAL_WIDTH,
    SOURCE_COLORS,
    SOURCE_MARKERS,
    display_treatment,
    favours_labels,
    new_figure,
    ratio_axis,
    text_width,
    wrap,
)

__all__ = ["MEASURE_LABEL", "METHOD_LABEL", "METHOD_SHORT", "arm_labels", "forest_plot", "shrunken_pooled_or",
           "study_labels"]

MEASURE_LABEL = {"RR": "Risk ratio", "OR": "Odds ratio", "RD": "Risk difference"}
METHOD_LABEL = {
    "mh": "Mantel-Haenszel", "peto": "Peto", "iv": "Inverse variance",
    "dl": "DerSimonian-Laird", "reml": "REML", "pm": "Paule-Mandel",
}
METHOD_SHORT = {"mh": "MH", "peto": "Peto", "iv": "IV", "dl": "DL", "reml": "REML", "pm": "PM"}
#: comparison-table method -> row label of the RR panel
RR_METHOD_LABEL = {
    "binomial_normal_bayes_marginal": "Bayesian (averaged over trials)",
    "binomial_normal_bayes_pooled_baseline": "Bayesian (at pooled baseline risk)",
    "mantel_haenszel_fixed": "Mantel-Haenszel (common effect)",
    "dersimonian_laird_random": "DerSimonian-Laird (random effects)",
    "reml_random": "REML (random effects)",
    "inverse_variance_fixed": "Inverse variance (common effect)",
    "paule_mandel_random": "Paule-Mandel (random effects)",
    "peto_fixed": "Peto (common effect)",
}
_SOURCE_ORDER = {"bayesian": 0, "frequentist": 1, "recomputed": 2, "published": 3}


# ======================================================================================
# labels
# ======================================================================================
def _surname(author) -> str:
    """'Liu Z' -> 'Liu', 'Mok CC' -> 'Mok', 'van der Berg AB' -> 'van der Berg': the
    trailing initials (tokens of 1-3 capitals, dots allowed) are dropped."""
    toks = str(author).replace(",", " ").split()
    while len(toks) > 1 and re.fullmatch(r"(?:[A-Z]\.?){1,3}", toks[-1]):
        toks.pop()
    return " ".join(toks)


def study_labels(study_ids: Sequence[str], studies=None) -> list[str]:
    """"Author Year" for each study (``studies``: a ``TrialData``, or a table indexed by
    study - or with a ``study`` column - holding ``first_author`` and ``year``, e.g.
    ``TrialData.studies``); the study id where either is missing. Equal labels of
    different studies get a, b, ... ("Zhang 2006a", "Zhang 2006b"), as journals print
    them."""
    ids = [str(s) for s in study_ids]
    tab = getattr(studies, "studies", studies)
    if tab is not None and not isinstance(tab, pd.DataFrame):
        raise TypeError("studies must be a TrialData or a DataFrame with first_author and year")
    if tab is not None and "study" in tab.columns:
        tab = tab.set_index("study")
    labels = []
    for s in ids:
        lab = s
        if tab is not None and s in tab.index and {"first_author", "year"} <= set(tab.columns):
            a, y = tab.at[s, "first_author"], tab.at[s, "year"]
            if not (pd.isna(a) or pd.isna(y) or not str(a).strip()):
                lab = f"{_surname(a)} {int(y)}"
        labels.append(lab)
    counts = pd.Series(labels).value_counts()
    seen: dict[str, int] = {}
    out = []
    for s, lab in zip(ids, labels):
        if counts[lab] > 1 and lab != s:
            seen[lab] = seen.get(lab, 0) + 1
            lab = f"{lab}{chr(ord('a') + seen[lab] - 1)}"
        out.append(lab)
    return out


def _join_treatments(labels: Sequence[str], max_n: int = 2, other: str = "comparator") -> str:
    labs = [display_treatment(t) for t in dict.fromkeys(str(x) for x in labels if str(x).strip())]
    if not labs:
        return other
    return "/".join(labs) if len(labs) <= max_n else other


def arm_labels(result) -> tuple[str, str]:
    """(treatment, control) labels of a core fit as printed: its ``treat`` labels and the
    treatments of its control arms ("TAC", "IVCY/MMF"; "comparator" for more than two)."""
    design = result.design
    treat = _join_treatments(design.treat, other="Treatment")
    arms = design.arms
    ctrl = arms.loc[~arms["treated"].astype(bool), "treatment"].astype(str).tolist() if "treatment" in arms else []
    return treat, _join_treatments(ctrl, other="comparator")


def _direction_of(outcome) -> str | None:
    if outcome is None:
        return None
    from bayesln import vocab

    return vocab.OUTCOMES.get(str(outcome))


# ======================================================================================
# what is drawn: rows of a table with an axis
# ======================================================================================
@dataclass
class _Row:
    cells: dict  # column key -> text ("study", "treat", "control", "estimate", "w:<method>")
    kind: str = "text"  # study | diamond | interval | point | text | header
    est: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    color: str = "black"
    size: float = math.nan  # relative square size in [0, 1] (study rows)
    marker: str = "s"
    shrunken: tuple | None = None  # (est, lo, hi) of the Bayesian shrunken estimate
    bold: bool = False
    span: bool = False  # a text row whose first cell may run across the table
    height: int = 1  # rows it occupies (2 for the two-line header)
    linestyle: str = "-"
    flag: bool = False  # a red ring around the point (comparison plot: flagged rows)
    text_color: str = "black"


@dataclass
class _Panel:
    measure: str
    rows: list
    xlabel: str
    treat: str
    control: str
    direction: str | None
    favours: bool = True  # "Favours ..." labels under the axis


def _fmt_for(measure: str):
    return (lambda v: f"{v:.3f}") if measure == "RD" else (lambda v: f"{v:.2f}")


def _interval_text(fmt, est, lo, hi) -> str:
    return f"{fmt(est)} [{fmt(lo)}, {fmt(hi)}]"


def _het_text(row, label: str = "Heterogeneity") -> str:
    """Q, df, p, I2 and (random effects) tau2 of a frequentist summary row."""
    txt = (f"{label}: Q = {row['q']:.2f} (df = {int(row['q_df'])}, p = {row['q_pvalue']:.3g}), "
           f"I\u00b2 = {row['i2']:.0f}%")
    if np.isfinite(row["tau2"]):
        txt += f", \u03c4\u00b2 = {row['tau2']:.3g}"
    return txt


def _published_tuple(published):
    from bayesln.frequentist.errors import FrequentistInputError

    if published is None:
        return None
    if isinstance(published, pd.Series):
        published = published.to_dict()
    if isinstance(published, Mapping):
        try:
            est, lo, hi = (float(published[k]) for k in ("estimate", "ci_low", "ci_high"))
        except KeyError as exc:
            raise FrequentistInputError(f"published needs estimate, ci_low, ci_high (missing {exc})") from None
        label = published.get("label")
        if label is None or (isinstance(label, float) and math.isnan(label)):
            src = str(published.get("source", "Published"))
            reason = published.get("reason")
            if src == "published" and isinstance(reason, str) and reason.split(";")[0].strip():
                label = reason.split(";")[0].strip()  # a comparison-table row: "Kraaij et al.; ..."
            else:
                label = "Kraaij et al." if "kraaij" in src.lower() else src
        k = published.get("k")
        if (k is None or (isinstance(k, float) and math.isnan(k))) and isinstance(published.get("trials"), str):
            k = len([t for t in published["trials"].split(";") if t.strip()])
        label = f"{label} (published{f', k = {int(k)}' if k is not None and pd.notna(k) else ''})"
        return est, lo, hi, label, published.get("measure")
    seq = list(published)
    if len(seq) not in (3, 4):
        raise FrequentistInputError("published must be (estimate, ci_low, ci_high[, label]) or a mapping")
    label = str(seq[3]) if len(seq) == 4 else "Published"
    return float(seq[0]), float(seq[1]), float(seq[2]), f"{label} (published)", None


# ======================================================================================
# frequentist rows
# ======================================================================================
def _fits(contrasts, measure, fixed, random, hksj, level, tol):
    from bayesln.frequentist.analysis import meta_analysis

    fits = []
    if fixed is not None:
        fits.append(("fixed", meta_analysis(contrasts, measure, fixed, level=level, tol=tol,
                                            hksj=hksj and fixed == "iv")))
    if random is not None:
        fits.append(("random", meta_analysis(contrasts, measure, random, hksj=hksj, level=level, tol=tol)))
    return fits


def _weight_key(method: str) -> str:
    return f"w:{method}"


def _weight_header(method: str) -> str:
    return f"Weight\n({METHOD_SHORT[method]})"


def _study_rows(studies_tab, fits, measure, labels, level, *, observed_color=COLORS["study"]):
    """One row per study of the table the plotted fit pools (the random fit when there is
    one): counts, the study effect with its CI, each fit's weight."""
    fmt = _fmt_for(measure)
    weights = {}
    for _, res in fits:
        w = res.studies.set_index("study")["weight"]
        weights[res.fit.method] = w
    size_method = fits[-1][1].fit.method if fits else None
    size_w = weights.get(size_method)
    wmax = float(np.nanmax(size_w.to_numpy(float))) if size_w is not None and np.isfinite(size_w).any() else 1.0
    rows = []
    for i, (_, r) in enumerate(studies_tab.iterrows()):
        eff, lo, hi = float(r["effect"]), float(r["ci_low"]), float(r["ci_high"])
        cells = {"study": labels[i], "treat": f"{r['events_t']:g}/{r['n_t']:g}",
                 "control": f"{r['events_c']:g}/{r['n_c']:g}",
                 "estimate": _interval_text(fmt, eff, lo, hi) if np.isfinite(eff) else "not estimable"}
        for m, w in weights.items():
            v = float(w.get(r["study"], np.nan))
            cells[_weight_key(m)] = f"{v:.1f}%" if np.isfinite(v) else "-"
        sw = float(size_w.get(r["study"], np.nan)) if size_w is not None else math.nan
        rows.append(_Row(cells=cells, kind="study", est=eff, lo=lo, hi=hi, color=observed_color,
                         size=sw / wmax if np.isfinite(sw) and wmax > 0 else math.nan))
    return rows


def _pooled_rows(fits, measure, *, pi: bool = True):
    fmt = _fmt_for(measure)
    rows = []
    for kind, res in fits:
        f = res.fit
        s = res.summary.iloc[0]
        label = f"{METHOD_LABEL[f.method]} ({f.model} effect{', HKSJ' if f.test == 'knha' else ''})"
        cells = {"study": label, "estimate": _interval_text(fmt, s["estimate"], s["ci_low"], s["ci_high"]),
                 _weight_key(f.method): "100.0%"}
        rows.append(_Row(cells=cells, kind="diamond", est=s["estimate"], lo=s["ci_low"], hi=s["ci_high"],
                         color=COLORS[kind], bold=True))
        if pi and kind == "random" and np.isfinite(s["pi_low"]):
            rows.append(_Row(cells={"study": f"Prediction interval ({METHOD_SHORT[f.method]})",
                                    "estimate": f"PI [{fmt(s['pi_low'])}, {fmt(s['pi_high'])}]"},
                             kind="interval", lo=s["pi_low"], hi=s["pi_high"], color=COLORS[kind], linestyle="--"))
    return rows


# ======================================================================================
# Bayesian rows
# ======================================================================================
def _design_contrasts(result) -> pd.DataFrame:
    """One row per study of the fit: the treated arms pooled against the control arms
    (events and n summed, as ``TrialData.contrasts(multi_arm="pool")``)."""
    des = result.design
    rows = []
    for i, s in enumerate(des.study_ids):
        J = np.flatnonzero((des.arm_study == i) & (des.n > 0))
        tr = des.treated[J] == 1
        if not tr.any() or tr.all():
            continue
        ids = np.asarray(des.arm_ids, dtype=object)
        rows.append({"study": s, "events_t": int(des.events[J][tr].sum()), "n_t": int(des.n[J][tr].sum()),
                     "events_c": int(des.events[J][~tr].sum()), "n_c": int(des.n[J][~tr].sum()),
                     "treat_arms": ",".join(str(a).split(":")[-1] for a in ids[J][tr]),
                     "control_arms": ",".join(str(a).split(":")[-1] for a in ids[J][~tr])})
    return pd.DataFrame(rows)


def shrunken_pooled_or(result, study_ids: Sequence[str], ci: float = 0.95) -> pd.DataFrame:
    """Bayesian shrunken OR of each study's pooled contrast: per draw, the odds ratio of
    the n-weighted mean event probability of the study's treated arms vs its control
    arms (exp(eta_t - eta_c) for a two-arm trial). Median and central ``ci`` interval;
    NaN for a study not in the fit."""
    from scipy.special import expit, logit

    des = result.design
    eta = np.asarray(result.idata.posterior["eta"].values, float)
    eta = eta.reshape((-1,) + eta.shape[2:])
    out = []
    for s in study_ids:
        if s not in des.study_ids:
            out.append((s, np.nan, np.nan, np.nan))
            continue
        J = np.flatnonzero((des.arm_study == des.study_ids.index(s)) & (des.n > 0))
        tr = des.treated[J] == 1
        if not tr.any() or tr.all():
            out.append((s, np.nan, np.nan, np.nan))
            continue
        n = des.n[J].astype(float)
        p = expit(eta[:, J])
        pt = p[:, tr] @ (n[tr] / n[tr].sum())
        pc = p[:, ~tr] @ (n[~tr] / n[~tr].sum())
        lor = logit(pt) - logit(pc)
        lo, med, hi = np.quantile(lor, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
        out.append((s, math.exp(med), math.exp(lo), math.exp(hi)))
    return pd.DataFrame(out, columns=["study", "or_median", "or_low", "or_high"])


def _summary_rows(summary: pd.DataFrame, ci: float):
    """The run summary indexed by quantity, and its (low, high) interval columns for ci."""
    s = summary.set_index("quantity") if "quantity" in summary.columns else summary
    lo = f"q{round(100 * (1 - ci) / 2, 6):g}"
    hi = f"q{round(100 * (1 + ci) / 2, 6):g}"
    if lo not in s.columns or hi not in s.columns:
        have = [c for c in s.columns if re.fullmatch(r"q\d+(\.\d+)?", str(c))]
        raise ValueError(f"the summary has no {100 * ci:g}% interval columns ({lo}, {hi}); it has {have}: "
                         f"pass ci= matching the summary")
    return s, lo, hi


def _rr_panel_rows(rr_rows: pd.DataFrame, published):
    """Rows of the relative-risk panel: the comparison table's RRs (Bayesian from
    posterior arm probabilities, frequentist, recomputed) and the published one."""
    fmt = _fmt_for("RR")
    rows = [_Row(cells={"study": "Relative risks, all trials", "estimate": "RR [95% CI]"}, kind="header", bold=True)]
    t = rr_rows if rr_rows is not None else pd.DataFrame(columns=["source"])
    if len(t):
        t = t[(t["measure"] == "RR") & np.isfinite(pd.to_numeric(t["estimate"], errors="coerce"))]
        t = t.assign(_o=t["source"].map(_SOURCE_ORDER).fillna(9)).sort_values("_o", kind="stable")
    for _, r in t.iterrows():
        src = str(r["source"])
        k = int(r["k"]) if pd.notna(r.get("k")) else None
        if src == "published":
            who = str(r.get("reason") or "").split(";")[0].strip() or "Published"
            label = f"{who} (published{', k = ' + str(k) if k is not None else ''})"
        elif src == "recomputed":
            label = f"Recomputed, published trials (k = {k})"
        else:
            label = RR_METHOD_LABEL.get(str(r["method"]), str(r["method"]).replace("_", " "))
        rows.append(_Row(cells={"study": label, "estimate": _interval_text(fmt, r["estimate"], r["ci_low"], r["ci_high"])},
                         kind="point", est=float(r["estimate"]), lo=float(r["ci_low"]), hi=float(r["ci_high"]),
                         color=SOURCE_COLORS.get(src, "black"), marker=SOURCE_MARKERS.get(src, "o")))
    if published is not None:
        est, lo, hi, label, _ = published
        rows.append(_Row(cells={"study": label, "estimate": _interval_text(fmt, est, lo, hi)},
                         kind="point", est=est, lo=lo, hi=hi, color=SOURCE_COLORS["published"], marker="D"))
    return rows if len(rows) > 1 else []


# ======================================================================================
# rendering
# ======================================================================================
def _axis_limits(panel: _Panel):
    ratio = panel.measure in ("RR", "OR")
    xs = []
    for r in panel.rows:
        for v in (r.est, r.lo, r.hi) + (tuple(r.shrunken) if r.shrunken else ()):
            if v is not None and np.isfinite(v) and (v > 0 or not ratio):
                xs.append(float(v))
    null = 1.0 if ratio else 0.0
    if not xs:
        return (0.1, 10.0) if ratio else (-1.0, 1.0)
    lo, hi = min(min(xs), null), max(max(xs), null)
    if ratio:
        lo, hi = max(lo, null / 200), min(hi, null * 200)  # very wide intervals run off with an arrow
        return lo / 1.15, hi * 1.15
    lo, hi = max(lo, -1.0), min(hi, 1.0)
    span = hi - lo or 1.0
    return lo - 0.05 * span, hi + 0.05 * span


def _y_positions(rows):
    """Data y of each row (rows are 1 unit; the header 2), top row near 0."""
    ys, y = [], 0.0
    for r in rows:
        ys.append(y - (r.height - 1) / 2)
        y -= r.height
    return ys, y + 1  # y of the last unit row


def _render(panels: list[_Panel], *, weights: list, title: str | None, width: float | None,
            fontsize: float, legend: list, footnotes: list[str], ax=None, height: float | None = None):
    from matplotlib.transforms import blended_transform_factory

    fs = float(fontsize)
    W = float(width or JOURNAL_WIDTH)
    margin, gap = 0.08, 0.1
    min_plot = 1.5
    keys = ["study", "treat", "control", "estimate"] + [k for k, _ in weights]
    # long arm names in the count headers wrap (over "events/n") instead of widening the table
    for p in panels:
        for r in p.rows:
            if r.kind == "header" and "treat" in r.cells:
                for k in ("treat", "control"):
                    name, _, rest = r.cells[k].rpartition("\n")
                    longest = max([text_width(wd, fs, "bold") for wd in name.split()] + [0.0])
                    r.cells[k] = (wrap(name, max(1.0, longest, text_width(rest, fs, "bold")), fs, "bold")
                                  + "\n" + rest)
                r.height = max(2, *(r.cells[k].count("\n") + 1 for k in ("treat", "control")))

    def widths(fs):
        w = dict.fromkeys(keys, 0.0)
        overflow = 0.0  # labels of rows without counts may run into the count columns
        for p in panels:
            for r in p.rows:
                if r.span:
                    continue
                for k, v in r.cells.items():
                    tw = text_width(v, fs, "bold" if (r.bold or r.kind == "header") else "normal")
                    if k == "study" and not (r.kind == "study" or (r.kind == "header" and "treat" in r.cells)):
                        overflow = max(overflow, tw)
                    elif k in w:
                        w[k] = max(w[k], tw)
        left = w["study"] + sum(gap + w[k] for k in ("treat", "control") if w[k] > 0)
        if overflow > left:
            w["study"] += overflow - left
            left = overflow
        right = w["estimate"] + sum(gap + w[k] for k, _ in weights)
        return w, left, right

    if ax is None:
        while True:
            w, left, right = widths(fs)
            plot_w = W - 2 * margin - left - right - 2 * gap
            if plot_w >= min_plot or fs <= FONT_MIN:
                break
            fs = FONT_MIN
        if plot_w < min_plot:
            W += min_plot - plot_w
            plot_w = min_plot
        plot_x0 = margin + left + gap
    else:
        fig = ax.figure
        W = fig.get_figwidth()
        w, left, right = widths(fs)
        pos = ax.get_position()
        plot_x0, plot_w = pos.x0 * W, pos.width * W
    # column anchors (inches from the figure's left edge); header and cells share them
    x_study = plot_x0 - gap - left
    x_treat = x_study + w["study"] + (gap if w["treat"] > 0 else 0.0)
    x_control = x_treat + w["treat"] + (gap if w["control"] > 0 else 0.0)
    anchors = {"study": (x_study, "left"),
               "treat": (x_treat + w["treat"] / 2, "center"),
               "control": (x_control + w["control"] / 2, "center"),
               "estimate": (plot_x0 + plot_w + gap, "left")}
    xr = plot_x0 + plot_w + gap + w["estimate"]
    for key, _ in weights:
        xr += gap + w[key]
        anchors[key] = (xr, "right")
    table_left, table_right = x_study, xr
    for p in panels:
        for r in p.rows:
            if r.span and "study" in r.cells:
                r.cells["study"] = wrap(r.cells["study"].replace("\n", " "), table_right - table_left, fs)
                r.height = r.cells["study"].count("\n") + 1

    row_h = 1.7 * fs / 72
    small = max(FONT_MIN, fs - 1)
    # vertical budget (inches)
    axis_hs = [(3.5 + 3.5 + 1.3 * fs + 3 + (1.35 * fs + 3 if p.favours else 0.0) + 1.45 * fs + 4) / 72
               for p in panels]
    title_txt = wrap(title, max(table_right - table_left, W - 2 * margin), fs + 1, "bold") if title else None
    title_h = (title_txt.count("\n") + 1) * (fs + 1) * 1.3 / 72 + 0.08 if title_txt else 0.04
    foot_txt = wrap("\n".join(footnotes), W - 2 * margin, small) if footnotes else ""
    foot_h = (foot_txt.count("\n") + 1) * small * 1.3 / 72 + 0.04 if foot_txt else 0.0
    leg_cols = 2
    leg_h = math.ceil(len(legend) / leg_cols) * small * 1.75 / 72 + 0.06 if legend else 0.0
    panel_hs = [sum(r.height for r in p.rows) * row_h for p in panels]
    gap_panels = 0.12
    H = title_h + sum(panel_hs) + sum(axis_hs) + gap_panels * (len(panels) - 1) + leg_h + foot_h + 0.08
    if height is not None:
        H = max(H, float(height))

    if ax is None:
        fig = new_figure(W, H)
        axes = []
        top = H - title_h
        for p, ph, axh in zip(panels, panel_hs, axis_hs):
            a = fig.add_axes((plot_x0 / W, (top - ph) / H, plot_w / W, ph / H))
            axes.append(a)
            top -= ph + axh + gap_panels
    else:
        if len(panels) > 1:
            raise ValueError("a forest plot with a relative-risk panel needs its own figure (ax=None)")
        axes = [ax]
    if title_txt and ax is None:
        fig.text(table_left / W, 1 - 0.06 / H, title_txt, ha="left", va="top", fontsize=fs + 1, weight="bold")
    elif title_txt:
        axes[0].set_title(title_txt, loc="left", fontsize=fs + 1, weight="bold", x=(table_left - plot_x0) / plot_w)

    for p, a in zip(panels, axes):
        _draw_panel(fig, a, p, anchors, fs, row_h, table_left, table_right, blended_transform_factory)

    y_bottom = leg_h + foot_h + 0.04
    if legend and ax is None:
        handles, labels = zip(*legend)
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(table_left / W, (y_bottom) / H),
                   ncol=leg_cols, fontsize=small, frameon=False, handlelength=1.8, borderaxespad=0.0,
                   borderpad=0.2, columnspacing=1.2, handletextpad=0.5)
    if foot_txt and ax is None:
        fig.text(margin / W, (foot_h - 0.02) / H, foot_txt, ha="left", va="top", fontsize=small, color="0.2")
    return fig


def _draw_panel(fig, ax, p: _Panel, anchors, fs, row_h, table_left, table_right, blended):
    trans = blended(fig.dpi_scale_trans, ax.transData)
    ratio = p.measure in ("RR", "OR")
    null = 1.0 if ratio else 0.0
    ys, y_last = _y_positions(p.rows)
    ax.set_ylim(y_last - 0.5, 0.5)
    if ratio:
        ax.set_xscale("log")
    lo_x, hi_x = _axis_limits(p)
    ax.set_xlim(lo_x, hi_x)
    if ratio:
        ratio_axis(ax, lo_x, hi_x, max_ticks=6)
    ax.set_yticks([])
    ax.patch.set_alpha(0)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="x", labelsize=fs, length=3.5, pad=3.5)

    def txt(key, y, s, bold=False, **kw):
        x, ha = anchors[key]
        ax.text(x, y, s, transform=trans, ha=ha, va="center", fontsize=fs, clip_on=False,
                weight="bold" if bold else "normal", **kw)

    drawn = [y for y, r in zip(ys, p.rows) if r.kind in ("study", "diamond", "interval", "point")]
    for y, r in zip(ys, p.rows):
        if r.kind == "header":
            for key, s in r.cells.items():
                txt(key, y, s, bold=True)
            continue
        for key, s in r.cells.items():
            if key in anchors:
                txt(key, y, s, bold=r.bold, color=r.text_color, style="italic" if r.span else "normal")
        if r.kind == "study" and np.isfinite(r.est):
            off = 0.16 if r.shrunken else 0.0
            ax.plot([r.lo, r.hi], [y + off, y + off], color=r.color, lw=0.9, solid_capstyle="butt")
            size = 9 + 63 * (r.size if np.isfinite(r.size) else 0.0)
            ax.scatter([r.est], [y + off], marker="s", s=size, color=r.color, zorder=3, linewidths=0)
            _arrows(ax, r.lo, r.hi, y + off, lo_x, hi_x, r.color)
            if r.shrunken and np.isfinite(r.shrunken[0]):
                e, lo, hi = r.shrunken
                ax.plot([lo, hi], [y - 0.2, y - 0.2], color=COLORS["shrunken"], lw=0.9)
                ax.scatter([e], [y - 0.2], marker="o", s=10, color=COLORS["shrunken"], zorder=3, linewidths=0)
                _arrows(ax, lo, hi, y - 0.2, lo_x, hi_x, COLORS["shrunken"])
        elif r.kind == "diamond":
            ax.fill([r.lo, r.est, r.hi, r.est], [y, y + 0.3, y, y - 0.3], color=r.color, zorder=3, lw=0)
        elif r.kind == "interval":
            ax.plot([r.lo, r.hi], [y, y], color=r.color, lw=1.4, ls=r.linestyle)
            _arrows(ax, r.lo, r.hi, y, lo_x, hi_x, r.color)
        elif r.kind == "point":
            ax.plot([r.lo, r.hi], [y, y], color=r.color, lw=1.1)
            face = "white" if r.marker == "D" else r.color
            ax.scatter([r.est], [y], marker=r.marker, s=22, facecolors=face, edgecolors=r.color, zorder=3,
                       linewidths=1.0)
            if r.flag:
                ax.scatter([r.est], [y], marker="o", s=90, facecolors="none", edgecolors=FLAG, zorder=4,
                           linewidths=1.2)
            _arrows(ax, r.lo, r.hi, y, lo_x, hi_x, r.color)
    if drawn:
        ax.plot([null, null], [min(drawn) - 0.5, max(drawn) + 0.5], color="0.35", lw=0.7, zorder=1)
    # a rule under the column headers
    hdr = [y - r.height / 2 for y, r in zip(ys, p.rows) if r.kind == "header"]
    for yh in hdr:
        ax.plot([table_left, table_right], [yh, yh], transform=blended(fig.dpi_scale_trans, ax.transData),
                color="0.6", lw=0.6, clip_on=False)
    # favours labels under the tick labels, then the axis label
    if p.favours:
        left, right = favours_labels(p.treat, p.control, p.direction)
        drop = 3.5 + 3.5 + 1.3 * fs + 3
        ax.annotate(f"\u2190 {left}", xy=(null, 0), xycoords=("data", "axes fraction"), xytext=(-3, -drop),
                    textcoords="offset points", ha="right", va="top", fontsize=fs)
        ax.annotate(f"{right} \u2192", xy=(null, 0), xycoords=("data", "axes fraction"), xytext=(3, -drop),
                    textcoords="offset points", ha="left", va="top", fontsize=fs)
    ax.set_xlabel(p.xlabel, fontsize=fs, labelpad=(1.35 * fs + 6) if p.favours else 3.5)


def _arrows(ax, lo, hi, y, lo_x, hi_x, color):
    """An arrow head where an interval runs off the axis."""
    if np.isfinite(lo) and lo < lo_x:
        ax.plot([lo_x], [y], marker="<", ms=3.5, color=color, clip_on=False, zorder=3)
    if np.isfinite(hi) and hi > hi_x:
        ax.plot([hi_x], [y], marker=">", ms=3.5, color=color, clip_on=False, zorder=3)


def _legend_handles(items):
    from matplotlib.lines import Line2D

    out = []
    for kind, color, label in items:
        if kind == "square":
            h = Line2D([], [], color=color, marker="s", ms=5, lw=0.9)
        elif kind == "circle":
            h = Line2D([], [], color=color, marker="o", ms=3.5, lw=0.9)
        elif kind == "diamond":
            h = Line2D([], [], color=color, marker="D", ms=5, lw=0, markeredgewidth=0)
        elif kind == "open_diamond":
            h = Line2D([], [], color=color, marker="D", ms=4.5, lw=1.0, markerfacecolor="white")
        elif kind.startswith("marker:"):
            m = kind.split(":", 1)[1]
            h = Line2D([], [], color=color, marker=m, ms=4.5, lw=1.1,
                       markerfacecolor="white" if m == "D" else color)
        elif kind == "flag":
            h = Line2D([], [], color=color, marker="o", ms=8, lw=0, markerfacecolor="none", markeredgewidth=1.2)
        else:  # dashed line
            h = Line2D([], [], color=color, lw=1.4, ls="--")
        out.append((h, label))
    return out


# ======================================================================================
# the public function
# ======================================================================================
def forest_plot(source, measure: str | None = None, *, fixed: str | None = "mh", random: str | None = "reml",
                hksj: bool = False, level: float | None = None, ci: float | None = None, published=None,
                title: str | None = None, labels: Sequence[str] | None = None, studies=None,
                treat_label: str | None = None, control_label: str | None = None, outcome: str | None = None,
                direction: str | None = None, summary: pd.DataFrame | None = None,
                comparison: pd.DataFrame | None = None, rr_rows: pd.DataFrame | None = None,
                contrasts: pd.DataFrame | None = None, tol: float | None = None, ax=None, figsize=None,
                width: float | None = None, fontsize: float = FONT):
    """Draw a forest plot and return the matplotlib ``Figure``.

    ``source`` is either

    * a **contrast table** (one row per study: ``study, events_t, n_t, events_c, n_c``;
      ``TrialData.contrasts(...)``): the frequentist forest of ``measure`` (default RR)
      with the diamonds of ``fixed`` (default Mantel-Haenszel) and ``random`` (default
      REML; HKSJ interval with ``hksj``) and the random-effects prediction interval; the
      study rows show the effect sizes the random-effects model pools (metafor ``escalc``
      defaults: 1/2 added to the cells of a study with a zero cell) when ``random`` is
      given, else those of the fixed-effect model (for ``mh``/``peto`` a double-zero study
      is "not estimable"); or
    * a **Bayesian core fit** (``FitResult``) or an **analysis** (``run_analysis(...)``,
      which brings its data, contrasts, comparison table and summary): the odds-ratio
      forest with the observed OR of each trial (0.5-corrected when a cell is zero)
      beside its shrunken Bayesian OR, the ``fixed`` / ``random`` frequentist diamonds
      of the same trials, the Bayesian pooled OR, tau and the prediction interval for a
      new study taken from ``summary`` (default ``result.summary(ci)``: the rows the run
      writes to ``summary.csv``), and a relative-risk panel with the comparison table's
      RRs (``comparison`` or ``rr_rows``: Bayesian from posterior arm probabilities,
      MH / DL / REML, recomputed) and the published RR marked.

    Weight columns: one per frequentist model drawn ("Weight (MH)", "Weight (REML)"):
    the percent weights of that model (summing to 100%), each trial once. Squares are
    sized by the random-effects weight (fixed-effect without ``random``).

    Other options: ``published`` (mapping with ``estimate, ci_low, ci_high[, label]``, a
    tuple, or a row of ``TrialData.published``: drawn as an open diamond marker on the
    main axis when it is on the plot's measure, else in the RR panel); ``studies``
    (``TrialData`` or its ``studies`` table: "Author Year" labels; the study id when
    absent) or ``labels`` (one per row); ``treat_label`` / ``control_label`` (column
    headers and "Favours ..." labels; by default from the data's treatment labels);
    ``outcome`` or ``direction`` (``"benefit"`` / ``"harm"``) for the sides of the
    favours labels (by default the contrast table's outcome / the fit's direction);
    ``level`` (percent, default 95) or ``ci`` (fraction); ``width`` (inches, default 7,
    widened only if the columns cannot fit at 7 pt), ``fontsize`` (default 8 pt);
    ``figsize`` (width, minimum height); ``ax``: draw into an existing Axes (its figure
    is returned; the text columns are placed beside it, no RR panel, legend or notes).

    The fits drawn are ``fig.bayesln_results`` and the printed table ``fig.bayesln_table``.
    """
    from bayesln.frequentist._zeroin import R_UNIROOT_TOL
    from bayesln.frequentist.effects import check_measure
    from bayesln.frequentist.errors import FrequentistInputError

    tol = R_UNIROOT_TOL if tol is None else tol
    if level is None:
        level = 100.0 * ci if ci is not None else 95.0
    level = float(level)
    if figsize is not None:
        width = width or float(figsize[0])
    height = float(figsize[1]) if figsize is not None else None
    analysis = None
    if hasattr(source, "result") and hasattr(source, "spec"):  # an Analysis
        analysis, source = source, source.result
    bayes = hasattr(source, "idata")
    if not bayes and not isinstance(source, pd.DataFrame):
        raise TypeError("forest_plot needs a contrast table (DataFrame), a core-model fit or an analysis, "
                        f"not {type(source).__name__}")
    if isinstance(published, pd.DataFrame):  # comparison-table rows (source "published")
        if bayes:
            rr_rows = published if rr_rows is None else pd.concat([rr_rows, published]).drop_duplicates()
            published = None
        else:
            ok = published[pd.to_numeric(published["estimate"], errors="coerce").notna()]
            if "measure" in ok.columns:
                ok = ok[ok["measure"].astype(str).str.upper() == str(measure or "RR").upper()]
            published = ok.iloc[0] if len(ok) else None
    pub = _published_tuple(published)
    footnotes: list[str] = []

    if not bayes:
        measure = check_measure(measure or "RR")
        if fixed is None and random is None:
            raise FrequentistInputError("forest_plot needs at least one of fixed= and random=")
        con = source
        fits = _fits(con, measure, fixed, random, hksj, level, tol)
        tab = fits[-1][1].studies
        ids = tab["study"].astype(str).tolist()
        if labels is not None:
            names = [str(x) for x in labels]
            if len(names) != len(ids):
                raise FrequentistInputError("labels must have one entry per study in the plot")
        else:
            names = study_labels(ids, studies)
        attrs = getattr(con, "attrs", {}) or {}
        treat = treat_label or _join_treatments(attrs.get("treat") or (), other="Treatment")
        ctrl_src = attrs.get("control") or ()
        if not ctrl_src and "control_arms" in con.columns:
            ctrl_src = [a for v in con["control_arms"].dropna().astype(str) for a in v.split(",")]
        control = control_label or _join_treatments(ctrl_src, other="Control")
        direction = direction or _direction_of(outcome or attrs.get("outcome"))
        rows = [_Row(cells={"study": "Study", "treat": f"{treat}\nevents/n", "control": f"{control}\nevents/n",
                            "estimate": f"{measure} [{level:g}% CI]",
                            **{_weight_key(r.fit.method): _weight_header(r.fit.method) for _, r in fits}},
                     kind="header", height=2)]
        rows += _study_rows(tab, fits, measure, names, level)
        rows.append(_Row(cells={}, kind="text"))
        rows += _pooled_rows(fits, measure)
        if pub is not None and (pub[4] is None or str(pub[4]).upper() == measure):
            fmt = _fmt_for(measure)
            rows.append(_Row(cells={"study": pub[3], "estimate": _interval_text(fmt, *pub[:3])},
                             kind="point", est=pub[0], lo=pub[1], hi=pub[2], color=COLORS["published"], marker="D"))
        rows.append(_Row(cells={"study": _het_text(fits[-1][1].summary.iloc[0])}, kind="text", span=True))
        panel = _Panel(measure=measure, rows=rows, xlabel=f"{MEASURE_LABEL[measure]} ({level:g}% CI)"
                       + (", log scale" if measure != "RD" else ""), treat=treat, control=control,
                       direction=direction)
        size_by = METHOD_SHORT[fits[-1][1].fit.method]
        legend = [("square", COLORS["study"], f"Study {measure} ({level:g}% CI); size: {size_by} weight"),
                  ("diamond", COLORS["fixed"] if fixed else COLORS["random"], "Pooled estimate (CI)")]
        if random is not None and np.isfinite(fits[-1][1].summary.iloc[0]["pi_low"]):
            legend.append(("dashed", COLORS["random"], "Prediction interval (new study)"))
        if pub is not None:
            legend.append(("open_diamond", COLORS["published"], "Published estimate"))
        zero = [n for n, note in zip(names, tab.get("note", pd.Series([""] * len(tab))).fillna("")) if note]
        if zero:
            footnotes.append(f"Zero cells ({', '.join(zero)}): 1/2 added to every cell for the study's "
                             f"{measure}; Mantel-Haenszel and Peto pool the raw counts.")
        multi = _multi_arm_note(con, names, ids)
        if multi:
            footnotes.append(multi)
        panels = [panel]
        results = [r for _, r in fits]
        weights = [(_weight_key(r.fit.method), _weight_header(r.fit.method)) for _, r in fits]
    else:
        if measure is not None and str(measure).upper() != "OR":
            raise ValueError("the Bayesian forest plot is on the odds-ratio scale (the model's); "
                             "relative risks are in its RR panel")
        measure = "OR"
        result = source
        cif = level / 100.0
        if analysis is not None:
            studies = studies if studies is not None else analysis.data
            contrasts = contrasts if contrasts is not None else analysis.contrasts
            comparison = comparison if comparison is not None else analysis.comparison
            summary = summary if summary is not None else analysis.summary()
            title = title if title is not None else (analysis.spec.analysis.title or None)
        con = contrasts if contrasts is not None else _design_contrasts(result)
        in_fit = set(result.design.study_ids)
        con = con[con["study"].astype(str).isin(in_fit)].reset_index(drop=True)
        if summary is None:
            summary = result.summary(cif)
        summ, qlo, qhi = _summary_rows(summary, cif)
        try:
            fits = _fits(con, "OR", fixed, random, False, level, tol) if (fixed or random) else []
        except ValueError as exc:  # fewer than two trials with counts: no frequentist diamond
            fits = []
            footnotes.append(f"No frequentist pooled estimate: {str(exc).splitlines()[0]}.")
        if fits:
            tab = fits[-1][1].studies
        else:
            from bayesln.frequentist.analysis import meta_analysis

            tab = meta_analysis(con, "OR", "iv", level=level).studies if len(con) > 1 else _escalc_table(con, level)
        ids = tab["study"].astype(str).tolist()
        names = [str(x) for x in labels] if labels is not None else study_labels(ids, studies)
        design = result.design
        treat0, control0 = arm_labels(result)
        treat, control = treat_label or treat0, control_label or control0
        direction = direction or result.direction
        fmt = _fmt_for("OR")
        rows = [_Row(cells={"study": "Study", "treat": f"{treat}\nevents/n", "control": f"{control}\nevents/n",
                            "estimate": f"OR [{level:g}% CI]",
                            **{_weight_key(r.fit.method): _weight_header(r.fit.method) for _, r in fits}},
                     kind="header", height=2)]
        srows = _study_rows(tab, fits, "OR", names, level)
        shr = shrunken_pooled_or(result, ids, cif).set_index("study")
        for r, s in zip(srows, ids):
            v = shr.loc[s]
            r.shrunken = (float(v["or_median"]), float(v["or_low"]), float(v["or_high"]))
        rows += srows
        rows.append(_Row(cells={}, kind="text"))
        rows += _pooled_rows(fits, "OR", pi=False)
        common = "tau" not in summ.index
        po = summ.loc["pooled OR"]
        mod = "\u2020" if design.effect_names else ""
        if mod:
            footnotes.append("\u2020 Bayesian pooled OR and prediction interval at the covariate reference values "
                             f"(effect modifiers: {', '.join(design.effect_names)}).")
        rows.append(_Row(cells={"study": f"Bayesian {'common' if common else 'random'} effect{mod}",
                                "estimate": _interval_text(fmt, po["median"], po[qlo], po[qhi])},
                         kind="diamond", est=float(po["median"]), lo=float(po[qlo]), hi=float(po[qhi]),
                         color=COLORS["bayes"], bold=True))
        if "predictive OR (new study)" in summ.index:
            pr = summ.loc["predictive OR (new study)"]
            rows.append(_Row(cells={"study": "Prediction interval (Bayesian)",
                                    "estimate": f"PI [{fmt(pr[qlo])}, {fmt(pr[qhi])}]"},
                             kind="interval", lo=float(pr[qlo]), hi=float(pr[qhi]), color=COLORS["bayes"],
                             linestyle="--"))
        if pub is not None and str(pub[4] or "RR").upper() == "OR":
            rows.append(_Row(cells={"study": pub[3], "estimate": _interval_text(fmt, *pub[:3])},
                             kind="point", est=pub[0], lo=pub[1], hi=pub[2], color=COLORS["published"], marker="D"))
            pub = None
        if not common:
            t = summ.loc["tau"]
            rows.append(_Row(cells={"study": f"Heterogeneity (Bayesian): \u03c4 = {t['median']:.2f} "
                                             f"[{level:g}% CrI {t[qlo]:.2f}, {t[qhi]:.2f}]"}, kind="text", span=True))
        else:
            rows.append(_Row(cells={"study": "Heterogeneity (Bayesian): common effect (\u03c4 = 0)"},
                             kind="text", span=True))
        rand = [r for k, r in fits if k == "random"]
        if rand:
            rows.append(_Row(cells={"study": _het_text(rand[0].summary.iloc[0],
                                                       f"Heterogeneity ({METHOD_SHORT[rand[0].fit.method]})")},
                             kind="text", span=True))
        panels = [_Panel(measure="OR", rows=rows, xlabel="Odds ratio, log scale", treat=treat, control=control,
                         direction=direction)]
        if rr_rows is None and comparison is not None and len(comparison):
            rr_rows = comparison[(comparison["subgroup"] == "all") & (comparison["measure"] == "RR")]
        rr = _rr_panel_rows(rr_rows, pub) if ax is None else []
        if rr:
            panels.append(_Panel(measure="RR", rows=rr, xlabel="Relative risk, log scale", treat=treat,
                                 control=control, direction=direction))
        size_by = METHOD_SHORT[fits[-1][1].fit.method] if fits else None
        legend = [("square", COLORS["study"], f"Observed OR ({level:g}% CI)" + (f"; size: {size_by} weight" if size_by else "")),
                  ("circle", COLORS["shrunken"], f"Bayesian shrunken OR ({level:g}% CrI)"),
                  ("diamond", COLORS["bayes"], "Pooled OR: MH / REML / Bayesian" if fits else "Pooled OR")]
        if "predictive OR (new study)" in summ.index:
            legend.append(("dashed", COLORS["bayes"], "Prediction interval (new study)"))
        if rr:
            legend.append(("open_diamond", COLORS["published"], "Published RR"))
        footnotes.append(("Bayesian pooled OR: " if common else "Bayesian pooled OR, \u03c4 and prediction interval: ")
                         + f"posterior median and {level:g}% interval, as in the fit's summary (a run's summary.csv).")
        zero = [n for n, note in zip(names, tab.get("note", pd.Series([""] * len(tab))).fillna("")) if note]
        if zero:
            footnotes.append(f"Zero cells ({', '.join(zero)}): observed OR with 1/2 added to every cell.")
        multi = _multi_arm_note(con, names, ids)
        if multi:
            footnotes.append(multi)
        results = [r for _, r in fits]
        weights = [(_weight_key(r.fit.method), _weight_header(r.fit.method)) for _, r in fits]

    fig = _render(panels, weights=weights, title=title, width=width, fontsize=fontsize,
                  legend=_legend_handles(legend), footnotes=footnotes, ax=ax, height=height)
    fig.bayesln_results = results
    fig.bayesln_table = pd.DataFrame([{"study": s, **r.cells} for s, r in zip(ids, [r for r in panels[0].rows
                                                                                     if r.kind == "study"])])
    return fig


def _escalc_table(con: pd.DataFrame, level: float) -> pd.DataFrame:
    """Per-study OR table (escalc defaults) for a single trial, where no model can pool."""
    from scipy.stats import norm

    from bayesln.frequentist.effects import escalc

    es = escalc(con["events_t"].to_numpy(float), con["n_t"].to_numpy(float), con["events_c"].to_numpy(float),
                con["n_c"].to_numpy(float), "OR", studies=con["study"].tolist())
    z = norm.ppf(0.5 + level / 200)
    se = np.sqrt(es.vi)
    out = con[["study", "events_t", "n_t", "events_c", "n_c"]].copy()
    out["effect"], out["ci_low"], out["ci_high"] = np.exp(es.yi), np.exp(es.yi - z * se), np.exp(es.yi + z * se)
    out["note"] = np.where(es.corrected, "0.5 added to each cell", "")
    return out


def _multi_arm_note(con: pd.DataFrame, names, ids) -> str:
    """'Multi-arm trials enter once: X (tac vs mmf + ivcy, arms pooled).'"""
    if "treat_arms" not in con.columns or "control_arms" not in con.columns:
        return ""
    lab = dict(zip(ids, names))
    bits = []
    for _, r in con.iterrows():
        t = [a for a in str(r["treat_arms"]).split(",") if a]
        c = [a for a in str(r["control_arms"]).split(",") if a]
        if len(t) + len(c) > 2:
            bits.append(f"{lab.get(str(r['study']), r['study'])} ({' + '.join(t)} vs {' + '.join(c)})")
    if not bits:
        return ""
    return ("Multi-arm trials enter once, their arms on the same side pooled: " + "; ".join(bits) + ".")
