"""The diagnostics gate applied after every fit.

Defaults follow Vehtari et al. (2021, Bayesian Analysis 16:667) and the Stan
recommendations: rank-normalised split R-hat <= 1.01, bulk and tail ESS >= 400, no
divergent transitions, E-BFMI >= 0.3 in every chain (Betancourt 2016).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayesln import _arviz
from bayesln.gates import GateFailedError, gate_warning  # noqa: F401  (re-exported)

__all__ = ["Diagnostics", "GateFailedError", "GateThresholds", "gate_warning", "run_gate"]

#: posterior variables not gated (derived per-arm linear predictor)
NOT_GATED = ("eta",)


@dataclass(frozen=True)
class GateThresholds:
    r_hat_max: float = 1.01
    ess_bulk_min: float = 400.0
    ess_tail_min: float = 400.0
    divergences_max: int = 0
    bfmi_min: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Diagnostics:
    """Gate result: per-parameter table, divergences, E-BFMI per chain and verdict."""

    table: pd.DataFrame  # parameter, r_hat, ess_bulk, ess_tail, ok
    divergences: int
    bfmi: np.ndarray
    thresholds: GateThresholds
    problems: list[str] = field(default_factory=list)
    n_draws: int = 0
    n_chains: int = 0
    #: automatic retries before this verdict (bayesln.hierarchy.retry): reason, action, seed
    retries: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def to_dict(self) -> dict:
        t = self.table
        return {
            "verdict": self.verdict,
            "problems": list(self.problems),
            "divergences": int(self.divergences),
            "bfmi": [float(b) for b in self.bfmi],
            "max_r_hat": float(t["r_hat"].max()) if len(t) else None,
            "min_ess_bulk": float(t["ess_bulk"].min()) if len(t) else None,
            "min_ess_tail": float(t["ess_tail"].min()) if len(t) else None,
            "thresholds": self.thresholds.to_dict(),
            "chains": self.n_chains,
            "draws_per_chain": self.n_draws,
            "retries": [dict(r) for r in self.retries],
        }

    def __repr__(self) -> str:
        d = self.to_dict()
        return (
            f"<Diagnostics {d['verdict']}: max R-hat {d['max_r_hat']:.4f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
            f"min tail ESS {d['min_ess_tail']:.0f}, {d['divergences']} divergences, "
            f"E-BFMI {', '.join(f'{b:.2f}' for b in d['bfmi'])}>"
        )


def _flatten(ds: xr.Dataset) -> pd.Series:
    out = {}
    for name, da in ds.data_vars.items():
        if da.ndim == 0:
            out[str(name)] = float(da.values)
            continue
        stacked = da.stack(_e=da.dims) if da.ndim > 1 else da.rename({da.dims[0]: "_e"})
        labels = [
            ",".join(str(v) for v in (idx if isinstance(idx, tuple) else (idx,)))
            for idx in stacked["_e"].values
        ]
        for lab, val in zip(labels, np.asarray(stacked.values, dtype=float)):
            out[f"{name}[{lab}]"] = float(val)
    return pd.Series(out, dtype=float)


def _stacked(ds: xr.Dataset) -> tuple[np.ndarray, list[str]]:
    """All variables as one (chain, draw, parameter) array, with the parameter labels
    of :func:`_flatten` (``name[label,label]``, C order over the non-sample dims)."""
    blocks, labels = [], []
    for name, da in ds.data_vars.items():
        other = [d for d in da.dims if d not in ("chain", "draw")]
        da = da.transpose("chain", "draw", *other)
        arr = np.asarray(da.values, dtype=float)
        blocks.append(arr.reshape(arr.shape[0], arr.shape[1], -1))
        if not other:
            labels.append(str(name))
            continue
        idx = np.stack(np.meshgrid(*[np.arange(da.sizes[d]) for d in other], indexing="ij"), -1).reshape(-1, len(other))
        coords = [list(da[d].values) if d in da.coords else list(range(da.sizes[d])) for d in other]
        labels.extend(f"{name}[" + ",".join(str(coords[j][i]) for j, i in enumerate(row)) + "]" for row in idx)
    return np.concatenate(blocks, axis=2), labels


def _diagnostics_table(ds: xr.Dataset) -> pd.DataFrame:
    """R-hat (rank, max of bulk and tail), bulk and tail ESS of every gated value:
    ArviZ's definitions, computed for all parameters at once (:mod:`batchdiag`)."""
    from bayesln.hierarchy import batchdiag

    x, labels = _stacked(ds)
    r, eb, et = batchdiag.diagnostics(x)
    return pd.DataFrame({"parameter": labels, "r_hat": r, "ess_bulk": eb, "ess_tail": et})


def _arviz_table(ds: xr.Dataset) -> pd.DataFrame:
    """The same table through ArviZ, one parameter at a time (the reference in tests)."""
    r = _flatten(_arviz.rhat(ds))
    eb = _flatten(_arviz.ess(ds, "bulk"))
    et = _flatten(_arviz.ess(ds, "tail"))
    return pd.DataFrame({"parameter": r.index, "r_hat": r.values, "ess_bulk": eb.reindex(r.index).values,
                         "ess_tail": et.reindex(r.index).values})


def _gated(posterior: xr.Dataset) -> xr.Dataset:
    keep = []
    for v, da in posterior.data_vars.items():
        if v in NOT_GATED or str(v).endswith("__"):
            continue
        # constant draws (e.g. delta under a common effect is d, fine; an exactly
        # constant variable has no R-hat) are skipped
        if float(da.std()) == 0.0:
            continue
        keep.append(v)
    return posterior[keep]


def run_gate(
    posterior: xr.Dataset,
    sample_stats: xr.Dataset | None,
    thresholds: GateThresholds = GateThresholds(),
    warn: bool = True,
) -> Diagnostics:
    """Compute R-hat, bulk/tail ESS, divergences and E-BFMI; warn when anything fails."""
    ds = _gated(posterior)
    if ds.data_vars:
        table = _diagnostics_table(ds)
    else:
        table = pd.DataFrame(columns=["parameter", "r_hat", "ess_bulk", "ess_tail"])
    th = thresholds
    bad_r = table["r_hat"].isna() | (table["r_hat"] > th.r_hat_max)
    bad_b = table["ess_bulk"].isna() | (table["ess_bulk"] < th.ess_bulk_min)
    bad_t = table["ess_tail"].isna() | (table["ess_tail"] < th.ess_tail_min)
    table["ok"] = ~(bad_r | bad_b | bad_t)

    divergences = 0
    bfmi = np.array([])
    if sample_stats is not None:
        if "diverging" in sample_stats:
            divergences = int(np.asarray(sample_stats["diverging"].values, dtype=bool).sum())
        if "energy" in sample_stats:
            energy = np.asarray(sample_stats["energy"].values, dtype=float)
            if energy.ndim == 2 and energy.shape[1] > 1:
                bfmi = _arviz.bfmi(energy)

    problems: list[str] = []

    def _list(mask, col, fmt):
        rows = table.loc[mask].sort_values(col, ascending=(col != "r_hat"))
        items = [f"{p} ({fmt(v)})" for p, v in zip(rows["parameter"], rows[col])]
        more = f" and {len(items) - 8} more" if len(items) > 8 else ""
        return ", ".join(items[:8]) + more

    if bad_r.any():
        problems.append(f"R-hat > {th.r_hat_max}: " + _list(bad_r, "r_hat", lambda v: f"{v:.3f}"))
    if bad_b.any():
        problems.append(f"bulk ESS < {th.ess_bulk_min:g}: " + _list(bad_b, "ess_bulk", lambda v: f"{v:.0f}"))
    if bad_t.any():
        problems.append(f"tail ESS < {th.ess_tail_min:g}: " + _list(bad_t, "ess_tail", lambda v: f"{v:.0f}"))
    if divergences > th.divergences_max:
        problems.append(f"{divergences} divergent transitions (allowed {th.divergences_max})")
    low = [f"chain {i}: {b:.2f}" for i, b in enumerate(bfmi) if not b >= th.bfmi_min]
    if low:
        problems.append(f"E-BFMI < {th.bfmi_min}: " + ", ".join(low))

    diag = Diagnostics(
        table=table.reset_index(drop=True),
        divergences=divergences,
        bfmi=np.asarray(bfmi, dtype=float),
        thresholds=th,
        problems=problems,
        n_draws=int(posterior.sizes.get("draw", 0)),
        n_chains=int(posterior.sizes.get("chain", 0)),
    )
    if problems and warn:
        warnings.warn("diagnostics gate failed: " + "; ".join(problems), UserWarning, stacklevel=3)
    return diag
