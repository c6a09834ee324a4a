"""The only module of bayesln that imports ArviZ.

Every call into ArviZ goes through the small functions below, so the move to ArviZ 1.x
(which reorganises the package into ``arviz_base`` / ``arviz_stats`` and replaces
``InferenceData`` by ``xarray.DataTree``) is one change in one file.

Conventions: draws are xarray objects with ``chain`` and ``draw`` dimensions; the
diagnostics are ArviZ's rank-normalised split-R-hat and bulk/tail ESS (Vehtari et al.
2021, Bayesian Analysis 16:667), the same definitions as R's ``posterior`` package.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import xarray as xr

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

# ArviZ jit-compiles its variance / KDE / histogram helpers with Numba when Numba is
# installed (it is: nutpie and PyTensor need it). Most of those helpers are not cached on
# disk, so every new process compiled them again on its first trace plot or ESS (~1-2 s;
# ~9 s on a machine with empty Numba caches, measured with pyinstrument on `bayesln fit`),
# for arrays of a few thousand draws where NumPy is as fast. Same results (to rounding).
az.Numba.disable_numba()

InferenceData = az.InferenceData

__all__ = [
    "InferenceData",
    "bfmi",
    "ess",
    "from_netcdf",
    "is_inference_data",
    "loo",
    "make_inference_data",
    "mcse",
    "plot_trace",
    "psislw",
    "rhat",
    "to_netcdf",
]


def is_inference_data(obj) -> bool:
    return isinstance(obj, az.InferenceData)


def make_inference_data(
    groups: Mapping[str, xr.Dataset], attrs: Mapping | None = None
) -> az.InferenceData:
    """An InferenceData from named xarray Datasets (``posterior``, ``prior``, ...)."""
    groups = {k: v for k, v in groups.items() if v is not None}
    with warnings.catch_warnings():
        # ArviZ warns about groups it does not know (we use only standard ones) and
        # about its upcoming refactor.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        idata = az.InferenceData(**groups)
    if attrs:
        idata.attrs = dict(attrs)
    return idata


def group(idata: az.InferenceData, name: str) -> xr.Dataset | None:
    """A group of an InferenceData, or None when it is absent."""
    return getattr(idata, name, None) if name in idata.groups() else None


def rhat(ds: xr.Dataset) -> xr.Dataset:
    """Rank-normalised split R-hat (max of bulk and folded), one value per element."""
    return az.rhat(ds, method="rank")


def ess(ds: xr.Dataset, method: str = "bulk") -> xr.Dataset:
    """Effective sample size, ``method`` in {"bulk", "tail", "mean", "median", ...}."""
    return az.ess(ds, method=method)


def mcse(ds: xr.Dataset, method: str = "mean", prob: float | None = None) -> xr.Dataset:
    """Monte-Carlo standard error of a mean, sd or quantile (``method="quantile"``,
    ``prob``); the quantile version matches ``posterior::mcse_quantile``."""
    if method == "quantile":
        return az.mcse(ds, method="quantile", prob=prob)
    return az.mcse(ds, method=method)


def bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain from an energy array of shape (chain, draw)."""
    return np.asarray(az.bfmi(np.asarray(energy, dtype=float)), dtype=float)


def loo(idata: az.InferenceData, var_name: str | None = None, pointwise: bool = True):
    """PSIS-LOO (with the per-study log-likelihood this is leave-one-study-out)."""
    return az.loo(idata, var_name=var_name, pointwise=pointwise)


def psislw(log_ratios: np.ndarray, reff: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed importance log weights and Pareto k (Vehtari et al. 2024, JMLR
    25:72); ``log_ratios`` has the draws on the last axis."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.psislw(log_ratios, reff=reff)


def plot_trace(idata: az.InferenceData, var_names: Iterable[str] | None = None):
    """Trace and rank plots (ArviZ ``plot_trace`` with rank bars) as one matplotlib figure."""
    with warnings.catch_warnings():  # ArviZ 0.23 vs matplotlib 3.11 deprecation noise
        warnings.simplefilter("ignore")
        axes = az.plot_trace(idata, var_names=None if var_names is None else list(var_names), kind="rank_bars",
                             compact=True, show=False)
    return np.asarray(axes).ravel()[0].figure


def to_netcdf(idata: az.InferenceData, path) -> str:
    """Write NetCDF through h5netcdf (a dependency; netCDF4 is not), never pickling."""
    return idata.to_netcdf(str(path), engine="h5netcdf")


def from_netcdf(path) -> az.InferenceData:
    """Read a run's NetCDF file; plain arrays and attributes only, no code is executed."""
    return az.from_netcdf(str(path), engine="h5netcdf")


def drop_variables(ds: xr.Dataset, names: Iterable[str]) -> xr.Dataset:
    names = [n for n in names if n in ds.data_vars]
    return ds.drop_vars(names) if names else ds
