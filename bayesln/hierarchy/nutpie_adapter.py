"""The one module that uses nutpie's internals (nutpie 0.16; ``pyproject.toml`` caps
nutpie below 0.17 for this reason, and ``tests/test_nutpie_adapter.py`` checks every use
against the installed version).

Two uses:

* :func:`compile_pymc_model`: nutpie's ``compile_pymc_model`` with faster-compiling
  gradient / trace wrappers swapped in for nutpie's ``_make_c_logp_func`` and
  ``_make_c_expand_func`` (same functions; the copy is a loop instead of a fancy setitem
  whose Numba lowering alone takes 1.5-2.5 s per model and process). When the internals are
  not the expected ones, nutpie's own wrappers are used (same results, slower compile).
* :func:`compiled_model_base`: nutpie's compiled-model record class
  (``nutpie.compile_pymc.CompiledPyMCModel``), which :mod:`bayesln.hierarchy.fastcore`
  subclasses to hand nutpie the core model's hand-written kernel as C callbacks.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["INTERNALS", "compile_pymc_model", "compiled_model_base", "missing_internals"]

#: the private names of ``nutpie.compile_pymc`` this module relies on
INTERNALS = ("make_extraction_fn", "_make_c_logp_func", "_make_c_expand_func", "CompiledPyMCModel")

_PATCH_LOCK = threading.Lock()


def missing_internals() -> list[str]:
    """The names of :data:`INTERNALS` the installed nutpie lacks (empty when all are there)."""
    try:
        import nutpie.compile_pymc as cp
    except ImportError:  # pragma: no cover
        return list(INTERNALS)
    return [a for a in INTERNALS if not hasattr(cp, a)]


def compiled_model_base():
    """nutpie's compiled-model record class (to subclass with other callbacks)."""
    from nutpie.compile_pymc import CompiledPyMCModel

    return CompiledPyMCModel


def _fast_c_wrappers():
    """Replacements for nutpie's numba.cfunc wrappers (nutpie 0.16): the same functions,
    but the gradient / trace values are copied with a loop instead of ``out[...] = x``,
    whose Numba lowering (fancy setitem) alone takes 1.5-2.5 s of compilation per model
    and process. The wrappers cannot be cached by Numba in either form (they close over
    the data layout). Returns None when nutpie's internals are not the expected ones."""
    try:
        import nutpie.compile_pymc as cp
    except ImportError:  # pragma: no cover
        return None
    if not all(hasattr(cp, a) for a in ("make_extraction_fn", "_make_c_logp_func", "_make_c_expand_func")):
        return None

    def make_logp(n_dim, logp_fn, user_data, shared_logp, shared_data):
        import numba

        extract = cp.make_extraction_fn(logp_fn, shared_data, shared_logp, user_data.dtype)
        c_sig = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                                  numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
                                  numba.types.voidptr)

        def logp_numba(dim, x_, out_, logp_, user_data_):
            if dim != n_dim:
                return -1
            try:
                x = numba.carray(x_, (n_dim,))
                logp_val, grad = extract(x, user_data_)
                logp_[0] = logp_val
                finite = True
                for i in range(n_dim):
                    g = grad[i]
                    out_[i] = g
                    if not np.isfinite(g):
                        finite = False
                if not finite:
                    return 3
                if not np.isfinite(logp_val):
                    return 4
            except Exception:  # noqa: BLE001 - mirrors nutpie's wrapper
                return 1
            return 0

        return logp_numba, c_sig

    def make_expand(n_dim, n_expanded, expand_fn, user_data, shared_vars, shared_data):
        import numba

        extract = cp.make_extraction_fn(expand_fn, shared_data, shared_vars, user_data.dtype)
        c_sig = numba.types.int64(numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
                                  numba.types.CPointer(numba.types.double), numba.types.voidptr)

        def expand_numba(dim, expanded, x_, out_, user_data_):
            if dim != n_dim:
                return -1
            if expanded != n_expanded:
                return -1
            try:
                x = numba.carray(x_, (n_dim,))
                (values,) = extract(x, user_data_)
                for i in range(n_expanded):
                    out_[i] = values[i]
            except Exception:  # noqa: BLE001 - mirrors nutpie's wrapper
                return -2
            return 0

        return expand_numba, c_sig

    return cp, make_logp, make_expand


def compile_pymc_model(model, *, fast: bool = True):
    """``nutpie.compile_pymc_model(model)``, with the faster-compiling wrappers when ``fast``
    and nutpie's internals are the expected ones."""
    import nutpie

    wrappers = _fast_c_wrappers() if fast else None
    if wrappers is None:
        return nutpie.compile_pymc_model(model)
    cp, make_logp, make_expand = wrappers
    with _PATCH_LOCK:
        saved = cp._make_c_logp_func, cp._make_c_expand_func
        cp._make_c_logp_func, cp._make_c_expand_func = make_logp, make_expand
        try:
            return nutpie.compile_pymc_model(model)
        finally:
            cp._make_c_logp_func, cp._make_c_expand_func = saved
