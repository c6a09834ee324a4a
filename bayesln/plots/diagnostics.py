"""MCMC diagnostics figure: every hyperparameter of a fit, whatever its family.

:func:`trace_plot` draws one row per scalar component of each hyperparameter (core:
d, tau, and m, sigma_mu, beta[...], gamma[...] where present; ordinal: d, tau, m,
sigma_mu, kappa_mean, gamma_phase, beta, psi; joint: d, tau, m, sigma_mu, rho,
beta_phase per outcome; network: d per treatment, d_extra, tau, beta_phase) with three
panels - the posterior density of each chain, the trace of each chain, and the rank
histogram of each chain (uniform when the chains mix) - and the component's R-hat and
bulk / tail ESS from the fit's diagnostics table in its row title. Chains differ by colour
and line style. Rows are subfigures with their own titles (constrained layout), so titles
never overlap and no axis label is clipped.
"""

from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pandas as pd

from bayesln.plots._style import FONT_MIN, JOURNAL_WIDTH, new_figure, wrap

__all__ = ["HYPERPARAMETERS", "hyperparameters", "trace_plot"]

#: population-level parameters of the families, in the order they are drawn; per-study
#: or per-arm variables (mu, z, delta, eta, ...) are never hyperparameters
HYPERPARAMETERS = ("d", "d_extra", "tau", "m", "sigma_mu", "kappa_mean", "beta", "gamma", "beta_phase", "gamma_phase",
                   "psi", "psi_beta", "rho")
#: dimensions of per-unit (study, arm, data row, target) variables
PER_UNIT_DIMS = {"study", "arm", "row", "so", "target", "nonbase_arm", "study_stage"}
CHAIN_STYLES = ("-", "--", ":", "-.")


def hyperparameters(posterior, names=None) -> list[tuple[str, np.ndarray]]:
    """``[(label, draws of shape (chain, draw))]`` for every non-constant scalar component
    of the hyperparameters in ``posterior`` (an xarray Dataset, e.g.
    ``idata.posterior``); labels are ``name`` or ``name[coord, ...]``."""
    out = []
    for name in names or HYPERPARAMETERS:
        if name not in posterior.data_vars:
            continue
        da = posterior[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if set(extra) & PER_UNIT_DIMS:
            continue
        values = np.asarray(da.transpose("chain", "draw", *extra).values, dtype=float)
        coords = [[str(c) for c in da[d].values] if d in da.coords else [str(i) for i in range(da.sizes[d])]
                  for d in extra]
        for idx in itertools.product(*[range(len(c)) for c in coords]) if extra else [()]:
            x = values[(slice(None), slice(None), *idx)]
            if not np.isfinite(x).all() or float(np.std(x)) == 0.0:
                continue  # a fixed reference (e.g. d of the network's reference) has nothing to diagnose
            label = name if not extra else f"{name}[{', '.join(coords[j][i] for j, i in enumerate(idx))}]"
            out.append((label, x))
    return out


def _diag_lookup(table: pd.DataFrame | None) -> dict:
    if table is None or not len(table) or "parameter" not in table.columns:
        return {}
    return {str(r["parameter"]): r for _, r in table.iterrows()}


def trace_plot(source, var_names=None, *, title: str | None = None, bins: int = 20, width: float = JOURNAL_WIDTH):
    """Density, trace and rank histogram of every hyperparameter component of a fit
    (``source``: a fit result with ``idata`` - and ``diagnostics`` for the R-hat / ESS in
    the row titles - or an InferenceData). ``var_names`` restricts the variables
    (default :data:`HYPERPARAMETERS`). Returns a matplotlib Figure."""
    idata = getattr(source, "idata", source)
    post = idata.posterior
    comps = hyperparameters(post, var_names)
    if not comps:
        raise ValueError("no hyperparameter to plot (looked for: " + ", ".join(var_names or HYPERPARAMETERS) + ")")
    diag = getattr(source, "diagnostics", None)
    lookup = _diag_lookup(getattr(diag, "table", None))
    n = len(comps)
    fig = new_figure(width, 0.45 + (1.3 if n <= 8 else 1.05) * n, layout="constrained")
    fig.get_layout_engine().set(w_pad=4 / 72, h_pad=4 / 72)
    subs = np.atleast_1d(fig.subfigures(n, 1))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (sf, (label, x)) in enumerate(zip(subs, comps)):
        a_den, a_tr, a_rk = sf.subplots(1, 3, width_ratios=(1.0, 1.6, 1.0))
        n_chain, n_draw = x.shape
        ranks = pd.Series(x.ravel()).rank(method="average").to_numpy().reshape(x.shape)
        edges = np.linspace(0.5, x.size + 0.5, bins + 1)
        lo, hi = np.quantile(x, [0.001, 0.999])
        pad = 0.05 * (hi - lo or 1.0)
        grid = np.linspace(lo - pad, hi + pad, 200)
        for c in range(n_chain):
            col, ls = colors[c % len(colors)], CHAIN_STYLES[c % len(CHAIN_STYLES)]
            xc = x[c]
            if np.ptp(xc) > 0:
                from scipy.stats import gaussian_kde

                a_den.plot(grid, gaussian_kde(xc)(grid), color=col, ls=ls, lw=1.0, label=f"chain {c + 1}")
            a_tr.plot(np.arange(n_draw), xc, color=col, ls=ls, lw=0.5, alpha=0.8)
            h, _ = np.histogram(ranks[c], bins=edges)
            h = h / (x.size / bins / n_chain)  # 1 = uniform
            a_rk.bar(0.5 * (edges[:-1] + edges[1:]), 0.42 * h, width=np.diff(edges) * 0.9, bottom=c,
                     color=col, alpha=0.75, align="center")
            a_rk.plot([edges[0], edges[-1]], [c + 0.42, c + 0.42], color="0.2", lw=0.6, ls="--")
        a_rk.set_yticks(np.arange(n_chain) + 0.42, [str(c + 1) for c in range(n_chain)])
        a_rk.set_ylabel("chain", fontsize=FONT_MIN)
        a_den.set_yticks([])
        a_tr.set_xlim(0, n_draw - 1)
        for a in (a_den, a_tr, a_rk):
            a.tick_params(labelsize=FONT_MIN, length=2.5, pad=2)
        if row == n - 1:
            a_den.set_xlabel("value (density per chain)", fontsize=FONT_MIN)
            a_tr.set_xlabel("draw (trace per chain)", fontsize=FONT_MIN)
            a_rk.set_xlabel("rank of the draw in all chains\n(dashed: uniform)", fontsize=FONT_MIN)
        d = lookup.get(label)
        stats = ""
        if d is not None:
            stats = (f"   R-hat {float(d['r_hat']):.3f}, ESS bulk {float(d['ess_bulk']):.0f}, "
                     f"tail {float(d['ess_tail']):.0f}")
        sf.suptitle(f"{label}{stats}", fontsize=8, x=0.01, ha="left", weight="bold")
        if row == 0 and n_chain > 1:
            a_den.legend(fontsize=FONT_MIN - 1 if FONT_MIN > 7 else FONT_MIN, frameon=False, loc="upper right",
                         handlelength=1.8, borderaxespad=0.1, labelspacing=0.2)
    if title:
        fig.suptitle(wrap(title, width - 0.3, 9), fontsize=9)
    fig.bayesln_parameters = [label for label, _ in comps]
    return fig
