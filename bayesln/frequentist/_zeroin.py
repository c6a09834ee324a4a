"""Brent's root finder exactly as R's ``uniroot()`` runs it (``R_zeroin2`` in
``src/library/stats/src/zeroin.c``).

metafor finds the Paule-Mandel tau^2 and the Q-profile confidence limits with
``uniroot(..., tol = .Machine$double.eps^0.25)``, a loose absolute tolerance (~1.2e-4).
``scipy.optimize.brentq`` is a different variant of Brent's method and stops at different
points, so to reproduce metafor's numbers (not only the exact root) this module follows
the same iteration: same interpolation rules, same acceptance tests, same tolerance
formula ``2 * DBL_EPSILON * |b| + tol / 2``, same initial bracket and function values.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

DBL_EPSILON = 2.220446049250313e-16
#: R's default ``.Machine$double.eps^0.25``.
R_UNIROOT_TOL = DBL_EPSILON**0.25


def zeroin2(
    f: Callable[[float], float],
    ax: float,
    bx: float,
    fa: float,
    fb: float,
    tol: float,
    maxit: int,
) -> tuple[float, int, float]:
    """Root of ``f`` in ``[ax, bx]`` given ``fa = f(ax)``, ``fb = f(bx)`` of opposite sign.

    Returns ``(root, iterations, estimated precision)``; ``iterations`` is -1 when the
    iteration limit was reached (R warns and still returns the last approximation).
    """
    a, b = float(ax), float(bx)
    c, fc = a, fa
    if fa == 0.0:
        return a, 0, 0.0
    if fb == 0.0:
        return b, 0, 0.0
    for it in range(maxit + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            # swap so that b is the best approximation
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * DBL_EPSILON * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return b, it, abs(c - b)
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                # linear interpolation
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                # inverse quadratic interpolation
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2.0) and p < abs(prev_step * q / 2.0):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0.0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0.0 and fc > 0.0) or (fb < 0.0 and fc < 0.0):
            c, fc = a, fa
    return b, -1, abs(c - b)


def uniroot(
    f: Callable[[float], float],
    lower: float,
    upper: float,
    *,
    tol: float = R_UNIROOT_TOL,
    maxiter: int = 1000,
) -> float:
    """R's ``uniroot(f, c(lower, upper), tol = tol, maxiter = maxiter)$root``.

    Raises :class:`ValueError` when ``f`` has the same sign at both ends (as R does) and
    warns (as R does) when the iteration limit is reached.
    """
    f_lower = f(lower)
    f_upper = f(upper)
    if math.isnan(f_lower) or math.isnan(f_upper):
        raise ValueError("uniroot: f() is NaN at an end point")
    if not (math.copysign(1.0, f_lower) * math.copysign(1.0, f_upper) <= 0 or f_lower == 0 or f_upper == 0):
        raise ValueError("uniroot: f() values at end points not of opposite sign")
    root, it, _ = zeroin2(f, lower, upper, f_lower, f_upper, tol, maxiter)
    if it < 0:
        warnings.warn(f"uniroot: iteration limit {maxiter} reached", RuntimeWarning, stacklevel=2)
    return root
