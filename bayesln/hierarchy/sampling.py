"""Sampling backends: nutpie (default when installed), PyMC's NUTS, NumPyro (when jax
and numpyro are installed). Every call takes an explicit integer seed; the same seed
and the same backend give the same draws.

Compile caching (measured in benchmarks/perf.py -> benchmarks/results/perf.json):

* the core model (``fit_core``) does not go through PyTensor's code generation with nutpie:
  its log density is one hand-written Numba kernel (:mod:`bayesln.hierarchy.fastcore`)
  that Numba caches on disk, compiled once per machine and shared by every core model;
  what follows applies to the PyTensor route (the joint, ordinal and network families,
  and the core model with ``BAYESLN_FAST_KERNEL=0``);
* in a process, :func:`cached_nutpie_model` keeps compiled nutpie models by model
  structure (:func:`_structure_key`); a refit of the same structure (held-out study,
  leave-one-trial-out on two-arm trials, SBC and calibration datasets) swaps the data with
  ``with_data`` and does not compile (:func:`compile_stats` counts compiles and hits);
  every worker process of :mod:`bayesln.executor` keeps its own cache;
* between processes, PyTensor's compiledir (``~/.pytensor`` by default;
  ``PYTENSOR_FLAGS=base_compiledir=...`` moves it) keeps the C and Numba code of the
  model's kernels. nutpie's ``numba.cfunc`` wrappers around them cannot be cached by
  Numba, so each new process still compiles those (a few seconds; :func:`compile_nutpie`
  uses faster-compiling wrappers, ``BAYESLN_NUTPIE_WRAPPERS=nutpie`` restores nutpie's);
* the NumPyro backend turns on JAX's persistent compilation cache in
  ``cache_dir()/jax`` (``$BAYESLN_CACHE_DIR``, default ``~/.cache/bayesln``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pymc as pm
import xarray as xr

from bayesln import _arviz
from bayesln.hierarchy.sampler_defaults import DEFAULT_SAMPLER, check_seed  # noqa: F401  (re-exported)

__all__ = ["BACKENDS", "SamplerSettings", "cached_nutpie_model", "clear_compiled_cache", "compile_nutpie", "compile_stats", "resolve_backend", "sample_model", "sample_nutpie_compiled"]

BACKENDS = ("auto", "nutpie", "pymc", "numpyro")


@dataclass(frozen=True)
class SamplerSettings:
    draws: int = DEFAULT_SAMPLER["draws"]
    tune: int = DEFAULT_SAMPLER["tune"]
    chains: int = DEFAULT_SAMPLER["chains"]
    target_accept: float = DEFAULT_SAMPLER["target_accept"]
    cores: int | None = None

    def __post_init__(self):
        for k in ("draws", "tune", "chains"):
            v = getattr(self, k)
            # tune >= 1 too: nutpie stops with an internal panic without adaptation steps
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{k} must be a positive integer, got {v!r}")
        if not 0.5 <= self.target_accept < 1:
            raise ValueError(f"target_accept must be in [0.5, 1), got {self.target_accept}")


def _has(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def resolve_backend(backend: str = "auto") -> str:
    """``auto`` = nutpie if importable, else PyMC. ``numpyro`` needs jax and numpyro."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "auto":
        return "nutpie" if _has("nutpie") else "pymc"
    if backend == "nutpie" and not _has("nutpie"):
        raise ImportError("backend='nutpie' needs the nutpie package (pip install nutpie)")
    if backend == "numpyro" and not (_has("jax") and _has("numpyro")):
        raise ImportError("backend='numpyro' needs jax and numpyro (pip install numpyro)")
    return backend


def default_progressbar(progressbar: bool | None) -> bool:
    """Progress bar only when stderr is a terminal, unless set explicitly."""
    if progressbar is not None:
        return bool(progressbar)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _clean_posterior(ds: xr.Dataset) -> xr.Dataset:
    """Drop transformed (``*__``) variables that some backends store."""
    return _arviz.drop_variables(ds, [v for v in ds.data_vars if str(v).endswith("__")])


def _cores(settings: SamplerSettings) -> int:
    """Threads (nutpie) / processes (PyMC) for the chains: ``settings.cores``, else one
    per chain up to the cores of the machine, or of this executor worker's share
    (``BAYESLN_WORKER_THREADS``, set by :class:`bayesln.executor.LocalExecutor`). The
    draws do not depend on it."""
    if settings.cores is not None:
        return settings.cores
    avail = os.cpu_count() or 1
    share = os.environ.get("BAYESLN_WORKER_THREADS")
    if share and share.isdigit() and int(share) > 0:
        avail = min(avail, int(share))
    return max(1, min(settings.chains, avail))




def cache_dir() -> Path:
    """bayesln's on-disk cache folder: ``$BAYESLN_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/bayesln`` (default ``~/.cache/bayesln``)."""
    env = os.environ.get("BAYESLN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bayesln"


def enable_jax_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache in ``cache_dir()/jax`` (unless the user
    configured one), so the NumPyro backend's XLA programs survive between processes.
    Returns the folder, or None when JAX is missing or the cache cannot be set."""
    try:
        import jax
    except ImportError:
        return None
    try:
        current = jax.config.jax_compilation_cache_dir
        if current:
            return Path(current)
        path = cache_dir() / "jax"
        path.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(path))
        return path
    except Exception:  # noqa: BLE001 - an old JAX or a read-only home: no cache, still correct
        return None


def compile_nutpie(model: pm.Model):
    """Compile a PyMC model for nutpie once; swap data with ``compiled.with_data(
    events_data=..., n_data=...)`` for refits of the same shape. Faster-compiling gradient
    wrappers unless ``BAYESLN_NUTPIE_WRAPPERS=nutpie`` (:mod:`bayesln.hierarchy.nutpie_adapter`,
    the one module that touches nutpie's internals)."""
    from bayesln.hierarchy import nutpie_adapter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return nutpie_adapter.compile_pymc_model(model, fast=os.environ.get("BAYESLN_NUTPIE_WRAPPERS") != "nutpie")


#: compiled nutpie models of this process, keyed by model structure (see _structure_key)
_COMPILED: dict[tuple, object] = {}
_COMPILED_MAX = 8
#: compile-cache counters of this process (each worker process of an executor has its own)
_STATS = {"compiles": 0, "hits": 0}


def clear_compiled_cache() -> None:
    _COMPILED.clear()


def compile_stats() -> dict:
    """``{"compiles": ..., "hits": ..., "cached": ...}`` of this process's nutpie
    compile cache (:func:`cached_nutpie_model`)."""
    return {**_STATS, "cached": len(_COMPILED)}


def reset_compile_stats() -> None:
    _STATS.update(compiles=0, hits=0)


def _structure_key(design) -> tuple:
    """What fixes the compiled model apart from its data containers: the arm-to-study
    map and treated flags (constants of the graph), the covariate names and the shapes of
    the covariate matrices (data containers), and the length (not the labels) of every
    coordinate. Two designs with the same key share one compiled model: events, n,
    X_effect and Z_baseline are swapped with ``with_data`` and the coordinates relabelled.
    Leave-one-trial-out refits of two-arm trials, prior-predictive SBC datasets and
    held-out refits all hit the same entry."""
    return (
        design.baseline,
        tuple(design.arm_study.tolist()),
        tuple(design.treated.tolist()),
        tuple(design.effect_names),
        tuple(design.baseline_names),
        tuple(design.X_effect.shape),
        tuple(design.Z_baseline.shape),
        tuple((k, len(v)) for k, v in design.coords.items()),
    )


def _relabel(compiled, design):
    """The compiled model with ``design``'s data and coordinate labels."""
    import dataclasses

    import pandas as pd

    data = {"events_data": design.events, "n_data": design.n}
    shared = getattr(compiled, "shared_data", None) or getattr(compiled, "_shared_data", {})
    if "binom_const" in shared:
        from bayesln.hierarchy.model import binomial_log_coefficient

        data["binom_const"] = binomial_log_coefficient(design.events, design.n)
    if "X_effect" in shared:
        data["X_effect"] = design.X_effect
    if "Z_baseline" in shared:
        data["Z_baseline"] = design.Z_baseline
    out = compiled.with_data(**data)
    coords = getattr(out, "_coords", None)
    if coords is not None:
        new = dict(coords)
        for k, v in design.coords.items():
            if k in new:
                new[k] = pd.Index(list(v))
        try:
            out = dataclasses.replace(out, _coords=new)
        except (TypeError, ValueError):  # pragma: no cover - another nutpie model class
            pass
    return out


def cached_nutpie_model(model: pm.Model, design, key: tuple = (), compile=None):
    """A compiled nutpie model for ``model``, reusing one compiled earlier in this
    process for a model of the same structure (see :func:`_structure_key`; ``key`` adds
    the priors and options); the data are swapped with ``with_data`` and the coordinate
    labels replaced. ``model`` may be a function returning the model (called only when
    nothing is cached); ``compile`` (a function of no arguments) replaces
    :func:`compile_nutpie` (the core model's cached kernel, :mod:`bayesln.hierarchy.fastcore`).
    Counts compiles and hits in :func:`compile_stats`."""
    full_key = (_structure_key(design), key)
    compiled = _COMPILED.get(full_key)
    if compiled is None:
        if compile is not None:
            compiled = compile()
        else:
            if not isinstance(model, pm.Model) and callable(model):
                model = model()
            compiled = compile_nutpie(model)
        _STATS["compiles"] += 1
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[full_key] = compiled
    else:
        _STATS["hits"] += 1
    return _relabel(compiled, design)


def sample_nutpie_compiled(compiled, settings: SamplerSettings, seed: int, progressbar: bool = False):
    """Posterior and sample_stats (xarray Datasets) from a compiled nutpie model."""
    import nutpie

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        idata = nutpie.sample(
            compiled,
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=_cores(settings),
            seed=seed,
            progress_bar=progressbar,
            target_accept=settings.target_accept,
            save_warmup=False,
        )
    return _clean_posterior(idata.posterior), idata.sample_stats


def sample_model(
    model: pm.Model,
    *,
    settings: SamplerSettings,
    seed: int,
    backend: str = "auto",
    progressbar: bool | None = None,
    compiled=None,
) -> tuple[xr.Dataset, xr.Dataset, str]:
    """Run NUTS on ``model``; returns (posterior, sample_stats, backend used).

    ``compiled`` (nutpie only) is a model compiled by :func:`compile_nutpie` to reuse.
    """
    seed = check_seed(seed)
    used = resolve_backend(backend)
    progressbar = default_progressbar(progressbar)
    if used == "nutpie":
        if compiled is None:
            compiled = compile_nutpie(model)
        post, stats = sample_nutpie_compiled(compiled, settings, seed, progressbar)
        return post, stats, used
    kwargs = dict(
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        target_accept=settings.target_accept,
        random_seed=seed,
        progressbar=progressbar,
        compute_convergence_checks=False,
        return_inferencedata=True,
        idata_kwargs={"log_likelihood": False},
    )
    if used == "pymc":
        kwargs["cores"] = _cores(settings)
        kwargs["nuts_sampler"] = "pymc"
    else:
        enable_jax_cache()
        kwargs["nuts_sampler"] = "numpyro"
        kwargs["cores"] = _cores(settings)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        idata = pm.sample(**kwargs)
    return _clean_posterior(idata.posterior), idata.sample_stats, used
