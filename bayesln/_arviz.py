"""The only module of bayesln that imports ArviZ.

Every call into ArviZ goes through the small functions below, so the move to ArviZ 1.x
(which reorganises the package into ``arviz_base`` / ``arviz_stats`` and replaces
``InferenceData`` by ``xarray.DataTree``) is one change in one file.

Conventions: draws are xarray objects with ``chain`` and ``draw`` dimensions; the
diagnostics are ArviZ's rank-normalised split-R-hat and bulk/tail ESS (Vehtari et al.
2021, Bayesian Analysis 16:667), the same definitions as R's ``posterior`` package.

**ArviZ's Numba switch is never changed for the process.** ArviZ jit-compiles its
variance / autocovariance / KDE / histogram helpers with Numba when Numba is installed (it
is: nutpie and PyTensor need it). Most of those helpers are not cached on disk, so every new
process compiles them again on its first ESS, LOO or trace plot (~0.1-2 s; ~9 s on a
machine with empty Numba caches, measured with pyinstrument on ``bayesln fit`` when it
still used ArviZ's ESS), for arrays of a few thousand draws where NumPy is as fast (same
results to rounding). bayesln used to call ``az.Numba.disable_numba()`` at import, which
switched Numba off for every other ArviZ user in the process. Now each function below
runs ArviZ inside :func:`numpy_kernels`, which sets ``az.Numba.numba_flag`` to False for
that call only and puts back the value it found (ArviZ reads the flag at call time, in
``arviz.utils.maybe_numba_fn.__call__`` and the ``Numba.numba_flag`` checks of
``arviz.stats``); importing bayesln changes no ArviZ setting (``tests/test_exports.py``).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import xarray as xr

_AZ = None


def _az():
    """ArviZ, imported on first use: importing it costs a second or more (its package init
    loads the plotting stack), and commands that only read a run's tables or draws
    (``bayesln summarize``, ``bayesln predict RUN``) do not need it."""
    global _AZ
    if _AZ is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import arviz

        _AZ = arviz
    return _AZ


def __getattr__(name: str):
    if name == "az":
        return _az()
    if name == "InferenceData":
        return _az().InferenceData
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

#: serialises bayesln's own ArviZ calls, so that two threads never interleave their
#: save / restore of the flag
_NUMBA_LOCK = threading.RLock()


@contextlib.contextmanager
def numpy_kernels() -> Iterator[None]:
    """Within the block ArviZ uses its NumPy code paths (``az.Numba.numba_flag`` False);
    the flag is restored to the value it had on entry, whatever happens in the block.
    Re-entrant. Another thread calling ArviZ outside bayesln during the block also sees
    the NumPy paths (same results to rounding, only the speed differs)."""
    with _NUMBA_LOCK:
        before = _az().Numba.numba_flag
        _az().Numba.numba_flag = False
        try:
            yield
        finally:
            _az().Numba.numba_flag = before


__all__ = [
    "InferenceData",
    "bfmi",
    "drop_variables",
    "ess",
    "from_netcdf",
    "is_inference_data",
    "lazy_dataarray",
    "NetCDFGroups",
    "loo",
    "make_inference_data",
    "mcse",
    "numpy_kernels",
    "plot_trace",
    "psislw",
    "replace_groups",
    "rhat",
    "to_netcdf",
    "unwrap",
]


def is_inference_data(obj) -> bool:
    return isinstance(obj, NetCDFGroups) or isinstance(obj, _az().InferenceData)


def make_inference_data(
    groups: Mapping[str, xr.Dataset], attrs: Mapping | None = None
) -> InferenceData:
    """An InferenceData from named xarray Datasets (``posterior``, ``prior``, ...)."""
    groups = {k: v for k, v in groups.items() if v is not None}
    with warnings.catch_warnings():
        # ArviZ warns about groups it does not know (we use only standard ones) and
        # about its upcoming refactor.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        idata = _az().InferenceData(**groups)
    if attrs:
        idata.attrs = dict(attrs)
    return idata


def group(idata: InferenceData, name: str) -> xr.Dataset | None:
    """A group of an InferenceData, or None when it is absent."""
    return getattr(idata, name, None) if name in idata.groups() else None


def rhat(ds: xr.Dataset) -> xr.Dataset:
    """Rank-normalised split R-hat (max of bulk and folded), one value per element."""
    with numpy_kernels():
        return _az().rhat(ds, method="rank")


def ess(ds: xr.Dataset, method: str = "bulk") -> xr.Dataset:
    """Effective sample size, ``method`` in {"bulk", "tail", "mean", "median", ...}."""
    with numpy_kernels():
        return _az().ess(ds, method=method)


def mcse(ds: xr.Dataset, method: str = "mean", prob: float | None = None) -> xr.Dataset:
    """Monte-Carlo standard error of a mean, sd or quantile (``method="quantile"``,
    ``prob``); the quantile version matches ``posterior::mcse_quantile``."""
    with numpy_kernels():
        if method == "quantile":
            return _az().mcse(ds, method="quantile", prob=prob)
        return _az().mcse(ds, method=method)


def bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain from an energy array of shape (chain, draw): the mean squared
    change of the energy between draws over its sample variance (ddof 1; Betancourt 2016), ArviZ 0.2x's
    ``az.bfmi`` written out (equal to it to rounding, tests/test_batchdiag.py) so that the
    gate never imports ArviZ."""
    e = np.atleast_2d(np.asarray(energy, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.square(np.diff(e, axis=1)).mean(axis=1) / np.var(e, axis=1, ddof=1)


def loo(idata: InferenceData, var_name: str | None = None, pointwise: bool = True, reff: float | None = None):
    """PSIS-LOO (with the per-study log-likelihood this is leave-one-study-out);
    ``reff=None`` lets ArviZ compute the relative efficiency from the posterior."""
    with numpy_kernels():
        return _az().loo(unwrap(idata), var_name=var_name, pointwise=pointwise, reff=reff)


def relative_eff(posterior: xr.Dataset) -> float:
    """The relative MCMC efficiency ``az.loo`` uses when it is not given one: the mean
    over every element of every posterior variable of ESS ("mean" method) / number of
    draws (1 with a single chain). ArviZ 0.2x ``arviz.stats.loo``."""
    n_chains, n_draws = int(posterior.sizes["chain"]), int(posterior.sizes["draw"])
    if n_chains == 1:
        return 1.0
    with numpy_kernels():
        e = _az().ess(posterior, method="mean")
    return float(np.hstack([e[v].values.flatten() for v in e.data_vars]).mean() / (n_chains * n_draws))


def psislw(log_ratios: np.ndarray, reff: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed importance log weights and Pareto k (Vehtari et al. 2024, JMLR
    25:72); ``log_ratios`` has the draws on the last axis."""
    with warnings.catch_warnings(), numpy_kernels():
        warnings.simplefilter("ignore")
        return _az().psislw(log_ratios, reff=reff)


def plot_trace(idata: InferenceData, var_names: Iterable[str] | None = None):
    """Trace and rank plots (ArviZ ``plot_trace`` with rank bars) as one matplotlib figure."""
    with warnings.catch_warnings(), numpy_kernels():  # ArviZ 0.23 vs matplotlib 3.11 deprecation noise
        warnings.simplefilter("ignore")
        axes = _az().plot_trace(unwrap(idata), var_names=None if var_names is None else list(var_names), kind="rank_bars",
                             compact=True, show=False)
    return np.asarray(axes).ravel()[0].figure


def to_netcdf(idata: InferenceData, path) -> str:
    """Write NetCDF through h5netcdf (a dependency; netCDF4 is not), never pickling."""
    return unwrap(idata).to_netcdf(str(path), engine="h5netcdf")


def from_netcdf(path) -> InferenceData:
    """Read a run's NetCDF file; plain arrays and attributes only, no code is executed."""
    return _az().from_netcdf(str(path), engine="h5netcdf")


class NetCDFGroups:
    """A run's ``idata.nc`` read group by group with xarray (h5netcdf), without importing
    ArviZ: ``posterior``, ``prior``, ``sample_stats``, ... are the same Datasets
    :func:`from_netcdf` gives (each read in full on first access), ``groups()`` and
    ``name in`` work as on an InferenceData, and anything else is delegated to the ArviZ
    InferenceData, read on first use (:meth:`full`). For commands that only read draws
    (``bayesln predict RUN``): ArviZ's import costs more than the prediction."""

    def __init__(self, path):
        import h5netcdf

        self._path = str(path)
        self._data: dict[str, xr.Dataset] = {}
        self._full = None
        with h5netcdf.File(self._path, "r") as f:
            self._names = list(f.groups)
            #: the file's root attributes: what ArviZ reads into ``InferenceData.attrs``
            self.attrs = dict(f.attrs)

    def groups(self) -> list[str]:
        return list(self._names)

    def __contains__(self, name) -> bool:
        return name in self._names

    def full(self) -> InferenceData:
        if self._full is None:
            self._full = from_netcdf(self._path)
        return self._full

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._names:
            if name not in self._data:
                with xr.open_dataset(self._path, group=name, engine="h5netcdf") as ds:
                    self._data[name] = ds.load()
            return self._data[name]
        return getattr(self.full(), name)


def unwrap(idata):
    """The ArviZ InferenceData behind ``idata`` (itself, or a :class:`NetCDFGroups`' full read)."""
    return idata.full() if isinstance(idata, NetCDFGroups) else idata


def drop_variables(ds: xr.Dataset, names: Iterable[str]) -> xr.Dataset:
    names = [n for n in names if n in ds.data_vars]
    return ds.drop_vars(names) if names else ds


def drop_unused_dims(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` without the dimension coordinates that no data variable uses any more."""
    used = {d for v in ds.data_vars.values() for d in v.dims}
    unused = [c for c in ds.coords if c in ds.dims and c not in used]
    return ds.drop_vars(unused) if unused else ds


def keep_variables(ds: xr.Dataset | None, allowed: Callable[[str], bool] | Iterable[str]) -> xr.Dataset | None:
    """``ds`` with only the data variables ``allowed`` accepts (a predicate or a list of
    names), and without the dimension coordinates that only the dropped ones used."""
    if ds is None:
        return None
    ok = allowed if callable(allowed) else set(allowed).__contains__
    return drop_unused_dims(drop_variables(ds, [str(v) for v in ds.data_vars if not ok(str(v))]))


def replace_groups(idata: InferenceData, groups: Mapping[str, xr.Dataset | None]) -> InferenceData:
    """A new InferenceData: ``idata``'s groups with those in ``groups`` replaced, added,
    or (value None) removed; the same attributes."""
    current = {g: getattr(idata, g) for g in idata.groups()}
    for name, ds in groups.items():
        if ds is None:
            current.pop(name, None)
        else:
            current[name] = ds
    return make_inference_data(current, attrs=dict(idata.attrs) if idata.attrs else None)


# ----------------------------------------------------------------------- lazy values
try:  # xarray's documented interface for backends' lazily loaded arrays
    from xarray.backends import BackendArray as _BackendArray
    from xarray.core import indexing as _indexing
except ImportError:  # pragma: no cover - very old xarray: values computed at once
    _BackendArray = None


class _LazyValues(_BackendArray if _BackendArray is not None else object):
    """An array whose values ``compute()`` makes the first time they are read (through
    xarray's lazy indexing, as a NetCDF variable is read from disk), then kept."""

    def __init__(self, shape, compute: Callable[[], np.ndarray]):
        self.shape = tuple(int(x) for x in shape)
        self.dtype = np.dtype(float)
        self._compute = compute
        self._values = None
        self._lock = threading.Lock()

    def values(self) -> np.ndarray:
        with self._lock:
            if self._values is None:
                v = np.asarray(self._compute(), dtype=float)
                if v.shape != self.shape:
                    raise ValueError(f"lazy values: expected shape {self.shape}, computed {v.shape}")
                v.setflags(write=False)
                self._values = v
            return self._values

    def __getitem__(self, key):
        return _indexing.explicit_indexing_adapter(key, self.shape, _indexing.IndexingSupport.BASIC, self._get)

    def _get(self, key):
        return np.array(self.values()[key])

    def __deepcopy__(self, memo):  # immutable once computed: copies share it
        return self

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def lazy_dataarray(dims: tuple[str, ...], coords: Mapping, compute: Callable[[], np.ndarray],
                   attrs: Mapping | None = None) -> xr.DataArray:
    """A float DataArray of the given dims / coords whose values are computed by
    ``compute()`` on first read (``.values``, ``az.loo``, writing the NetCDF file), once.
    ``compute`` must be picklable with the standard library (a module-level function
    or a ``functools.partial`` of one) so that a result can go to a worker process."""
    shape = [len(coords[d]) for d in dims]
    if _BackendArray is None:  # pragma: no cover
        data = np.asarray(compute(), dtype=float)
    else:
        data = _indexing.LazilyIndexedArray(_LazyValues(shape, compute))
    var = xr.Variable(dims, data, attrs=dict(attrs or {}))
    return xr.DataArray(var, coords={d: coords[d] for d in dims})
