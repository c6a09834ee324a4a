"""bayesln.hierarchy.nutpie_adapter is the one place that uses nutpie's internals; these
checks run against the installed nutpie (the supported range is pinned in pyproject.toml:
>= 0.16.8, < 0.17), so an upgrade that moves an internal fails here, by name, not inside a fit.

Reference: nutpie's own compile_pymc_model - the adapter's faster wrappers must give the same
log density and gradient (to 1e-12) at the same points.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pymc as pm
import pytest

from bayesln.hierarchy import nutpie_adapter


def test_the_installed_nutpie_is_supported_and_has_every_internal_used():
    v = importlib.metadata.version("nutpie")
    major, minor, *_ = (int(x) for x in v.split(".")[:3])
    assert (major, minor) == (0, 16), f"nutpie {v} is outside the supported range; check nutpie_adapter.INTERNALS"
    assert nutpie_adapter.missing_internals() == []


def test_fast_wrappers_give_nutpies_log_density_and_gradient():
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 2)
        sd = pm.HalfNormal("sd", 1)
        pm.Normal("y", mu, sd, observed=np.array([0.3, -1.2, 2.0, 0.7]))
    ours = nutpie_adapter.compile_pymc_model(model, fast=True)
    theirs = nutpie_adapter.compile_pymc_model(model, fast=False)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.normal(size=2)
        la, ga = _logp(ours, x)
        lb, gb = _logp(theirs, x)
        assert la == pytest.approx(lb, rel=1e-12) and np.allclose(ga, gb, rtol=1e-12)


def _logp(compiled, x):
    """Call the compiled C log-density callback through ctypes, as nutpie does."""
    import ctypes

    fn = compiled.compiled_logp_func
    out = np.zeros_like(x)
    logp = np.zeros(1)
    cfunc = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.POINTER(ctypes.c_double),
                             ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double), ctypes.c_void_p)(
        fn.address)
    user = compiled.user_data
    rc = cfunc(len(x), x.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
               out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
               logp.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), user.ctypes.data)
    assert rc == 0
    return float(logp[0]), out
