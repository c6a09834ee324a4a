"""The figures of a run folder (``<run>/figures/``), PNG and SVG.

========================  ==================================================================
forest                    core runs: the Bayesian forest plot (odds ratios, shrunken
                          estimates, MH / REML / Bayesian diamonds, Bayesian prediction
                          interval from summary.csv, RR panel with the published RR)
forest_frequentist        core runs with at least two trials: the frequentist forest of the
                          same trials (relative risks, MH and REML, published RR marked)
comparison                core runs: the comparison table (Bayesian vs frequentist vs published)
predictions               runs whose spec lists targets
trace                     every run: density, trace and rank plots of every hyperparameter
========================  ==================================================================
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bayesln.plots._style import plt

__all__ = ["save_figure", "save_run_figures"]

#: resolution of the PNG files (the SVG files are vector graphics)
PNG_DPI = 200


def save_figure(fig, folder: Path, stem: str, *, dpi: int = PNG_DPI) -> None:
    """Write ``<stem>.png`` and ``<stem>.svg`` into ``folder`` and close the figure."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(folder / f"{stem}.png", dpi=dpi)
        fig.savefig(folder / f"{stem}.svg")
    finally:
        plt.close(fig)


def _published_all(comparison: pd.DataFrame | None):
    """The published pooled RR of all trials (comparison row), as forest_plot's mapping."""
    if comparison is None or not len(comparison):
        return None
    p = comparison[(comparison["source"] == "published") & (comparison["subgroup"] == "all")
                   & (comparison["measure"] == "RR")]
    p = p[pd.to_numeric(p["estimate"], errors="coerce").notna()]
    if not len(p):
        return None
    r = p.iloc[0]
    who = str(r.get("reason") or "").split(";")[0].strip() or "Published"
    return {"estimate": float(r["estimate"]), "ci_low": float(r["ci_low"]), "ci_high": float(r["ci_high"]),
            "label": who, "k": r.get("k"), "measure": "RR"}


def save_run_figures(analysis, folder: Path, predictions=None) -> list[str]:
    """Write the run's figures into ``folder`` (see the module docstring); returns the
    stems written. ``analysis``: what ``bayesln.analysis.run_analysis`` returns;
    ``predictions``: the spec targets' PredictionSet, if any."""
    from bayesln.plots.comparison import comparison_plot
    from bayesln.plots.diagnostics import hyperparameters, trace_plot
    from bayesln.plots.forest import arm_labels, forest_plot
    from bayesln.plots.predictions import plot_targets

    folder = Path(folder)
    written = []
    title = analysis.spec.analysis.title or None
    if analysis.spec.model.family == "core":
        summary = analysis.summary()
        save_figure(forest_plot(analysis, summary=summary), folder, "forest")
        written.append("forest")
        con = analysis.contrasts
        if con is not None and len(con) >= 2:
            treat, control = arm_labels(analysis.result)
            try:
                fig = forest_plot(con, "RR", fixed="mh", random="reml", studies=analysis.data,
                                  outcome=analysis.spec.outcome, treat_label=treat, control_label=control,
                                  published=_published_all(analysis.comparison),
                                  title=f"{title} - frequentist relative risks" if title else None)
            except ValueError:  # e.g. every trial double-zero: no frequentist estimate
                fig = None
            if fig is not None:
                save_figure(fig, folder, "forest_frequentist")
                written.append("forest_frequentist")
        if analysis.comparison is not None and len(analysis.comparison):
            save_figure(comparison_plot(analysis.comparison, outcome=analysis.spec.outcome), folder, "comparison")
            written.append("comparison")
    if predictions is not None and len(predictions):
        save_figure(plot_targets(predictions, title=title), folder, "predictions")
        written.append("predictions")
    if hyperparameters(analysis.result.idata.posterior):
        save_figure(trace_plot(analysis.result, title=f"{analysis.spec.name}: MCMC diagnostics"), folder, "trace")
        written.append("trace")
    return written
