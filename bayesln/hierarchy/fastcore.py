"""A hand-written, disk-cached Numba log density for the core model, sampled by nutpie.

Why: with nutpie's default route, PyTensor writes the core model's log density and
gradient as Numba code and nutpie wraps it in ``numba.cfunc`` callbacks. On a machine
with empty caches Numba then type-infers and compiles that whole generated graph: about
12 s with a warm Numba cache of PyTensor's own helpers and 30 s with none (measured with
pyinstrument on ``bayesln fit models/total_response.toml``), and the callbacks cannot be
cached between processes. Here the same density, written once as two small loops with its
analytic gradient, is compiled by Numba with ``cache=True``: about 2-3 s the first time on
a machine, ~0.1 s to load afterwards in every new process, and the same code for every
dataset, covariate set and prior of the core model (the data, the priors and the model's
options are read from one float array at run time, so nothing is compiled per model).

What it computes is exactly :func:`bayesln.hierarchy.model.model_from_design`'s model: the
log density PyMC assigns to the unconstrained point (normalising constants and log
Jacobians of the log / interval transforms included), checked against PyMC's own
``model.compile_logp()`` and ``compile_dlogp()`` at random points in
``tests/test_fastcore.py``, for every prior family and model option. Posterior variables,
dims and coordinates are the same as the PyTensor route's (:func:`supports` lists the one
case it leaves to PyTensor: a coefficient vector whose elements mix normal and student_t
priors).

Initial points: every unconstrained coordinate at its prior's location (0 for the log of
a scale: log(scale); interval transform: the middle) plus Uniform(-1, 1) jitter, as
PyMC's ``jitter_rvs`` default, seeded by nutpie's per-chain seed. The draws are not the
same numbers as the PyTensor route's (another initial point and another order of floating
point operations), the same distribution.

``BAYESLN_FAST_KERNEL=0`` turns this off (PyTensor-generated code for every model).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["compile_fast_core", "enabled", "logp_and_grad", "expand", "supports"]

# ---------------------------------------------------------------------------- layout
# header slots of the user-data array (all float64)
_H_LEN, _H_A, _H_S, _H_P, _H_Q, _H_EXCH, _H_COMMON, _H_CDELTA, _H_CMU, _H_NDIM = range(10)
_H_OPRI, _H_OEV, _H_ON, _H_OCONST, _H_OSTUDY, _H_OTREAT, _H_OX, _H_OZ = range(10, 18)
_H_XMU, _H_XM, _H_XSIG, _H_XGAM, _H_XD, _H_XTAU, _H_XZ, _H_XBETA, _H_NEXP = range(18, 27)
_H_OCDEL = 27  # offset of the per-study centring flags of delta (1 centred, 0 non-centred)
_H_OCMU = 28  # offset of the per-study centring flags of exchangeable baselines mu
_HEADER = 29
_PSLOT = 5  # a prior: family, p1, p2, p3, log normalising constant
_PRI_D, _PRI_TAU, _PRI_MU, _PRI_M, _PRI_SIG = range(5)  # then beta (P), gamma (Q)

# families
_NORMAL, _STUDENT_T = 0, 1
_HALF_NORMAL, _HALF_CAUCHY, _HALF_T, _UNIFORM, _EXPONENTIAL, _LOGNORMAL = 10, 11, 12, 13, 14, 15
_LOG2PI = math.log(2 * math.pi)


def _encode_prior(prior) -> list[float]:
    """[family, p1, p2, p3, log normalising constant] of a Prior (locations and scales)."""
    p = prior.params
    lg = math.lgamma
    if prior.dist == "normal":
        return [_NORMAL, p["mu"], p["sigma"], 0.0, -math.log(p["sigma"]) - 0.5 * _LOG2PI]
    if prior.dist == "student_t":
        nu, s = p["nu"], p["sigma"]
        c = lg((nu + 1) / 2) - lg(nu / 2) - 0.5 * math.log(nu * math.pi) - math.log(s)
        return [_STUDENT_T, nu, p["mu"], s, c]
    if prior.dist == "half_normal":
        s = p["scale"]
        return [_HALF_NORMAL, s, 0.0, 0.0, math.log(2.0) - 0.5 * _LOG2PI - math.log(s)]
    if prior.dist == "half_cauchy":
        b = p["scale"]
        return [_HALF_CAUCHY, b, 0.0, 0.0, math.log(2.0 / math.pi) - math.log(b)]
    if prior.dist == "half_student_t":
        nu, s = p["nu"], p["scale"]
        c = math.log(2.0) + lg((nu + 1) / 2) - lg(nu / 2) - 0.5 * math.log(nu * math.pi) - math.log(s)
        return [_HALF_T, nu, s, 0.0, c]
    if prior.dist == "uniform":
        return [_UNIFORM, p["lower"], p["upper"], 0.0, 0.0]
    if prior.dist == "exponential":
        return [_EXPONENTIAL, p["rate"], 0.0, 0.0, math.log(p["rate"])]
    if prior.dist == "lognormal_tau2":  # log tau ~ N(mu / 2, sigma / 2), as model._scale_rv
        mu, s = p["mu"] / 2.0, p["sigma"] / 2.0
        return [_LOGNORMAL, mu, s, 0.0, -math.log(s) - 0.5 * _LOG2PI]
    raise ValueError(f"fast kernel: unsupported prior {prior}")  # pragma: no cover - see supports()


def _scale_value_name(name: str, prior) -> str:
    return f"{name}_interval__" if prior.dist == "uniform" else f"{name}_log__"


def _scale_start(prior) -> float:
    """Unconstrained start of a scale parameter (before jitter)."""
    p = prior.params
    if prior.dist in ("half_normal", "half_cauchy", "half_student_t"):
        return math.log(p["scale"])
    if prior.dist == "exponential":
        return -math.log(p["rate"])
    if prior.dist == "lognormal_tau2":
        return p["mu"] / 2.0
    return 0.0  # uniform: the middle of the interval


# ---------------------------------------------------------------------------- kernel
@numba.njit(cache=True, nogil=True)
def _softplus(e):
    if e > 0:
        return e + math.log1p(math.exp(-e))
    return math.log1p(math.exp(e))


@numba.njit(cache=True, nogil=True)
def _sigmoid(e):
    if e >= 0:
        return 1.0 / (1.0 + math.exp(-e))
    z = math.exp(e)
    return z / (1.0 + z)


@numba.njit(cache=True, nogil=True)
def _loc_lp(u, o, x):
    """log density and its derivative of a location prior at x (prior slot at u[o:])."""
    fam = u[o]
    if fam == _NORMAL:
        z = (x - u[o + 1]) / u[o + 2]
        return u[o + 4] - 0.5 * z * z, -z / u[o + 2]
    nu, s = u[o + 1], u[o + 3]
    r = (x - u[o + 2]) / s
    return u[o + 4] - 0.5 * (nu + 1.0) * math.log1p(r * r / nu), -(nu + 1.0) * r / (s * (nu + r * r))


@numba.njit(cache=True, nogil=True)
def _scale_lp(u, o, y):
    """A scale parameter from its unconstrained value y: (value t, log density in y
    including the log Jacobian, its derivative in y, dt/dy)."""
    fam = u[o]
    c = u[o + 4]
    if fam == _UNIFORM:
        lo, hi = u[o + 1], u[o + 2]
        sg = _sigmoid(y)
        t = lo + (hi - lo) * sg
        return t, -_softplus(-y) - _softplus(y), 1.0 - 2.0 * sg, (hi - lo) * sg * (1.0 - sg)
    if fam == _LOGNORMAL:
        t = math.exp(y)
        z = (y - u[o + 1]) / u[o + 2]
        return t, c - 0.5 * z * z, -z / u[o + 2], t
    t = math.exp(y)
    if fam == _HALF_NORMAL:
        s = u[o + 1]
        lp, dt = c - 0.5 * (t / s) ** 2, -t / (s * s)
    elif fam == _HALF_CAUCHY:
        b = u[o + 1]
        lp, dt = c - math.log1p((t / b) ** 2), -2.0 * t / (b * b + t * t)
    elif fam == _HALF_T:
        nu, s = u[o + 1], u[o + 2]
        lp, dt = c - 0.5 * (nu + 1.0) * math.log1p((t / s) ** 2 / nu), -(nu + 1.0) * t / (nu * s * s + t * t)
    else:  # exponential
        lam = u[o + 1]
        lp, dt = c - lam * t, -lam
    return t, lp + y, dt * t + 1.0, t


@numba.njit(cache=True, nogil=True, fastmath={"contract", "arcp", "reassoc"})
def _core(x, u, g, out):
    """Log density at x; writes the gradient into g (when g.size) and the expanded trace
    values into out (when out.size)."""
    A, S, P, Q = int(u[_H_A]), int(u[_H_S]), int(u[_H_P]), int(u[_H_Q])
    exch, common = u[_H_EXCH] > 0, u[_H_COMMON] > 0
    cdelta, cmu = u[_H_CDELTA] > 0, u[_H_CMU] > 0  # every study's delta / mu centred
    ocdel, ocmu = int(u[_H_OCDEL]), int(u[_H_OCMU])
    opri, oev, on, oc = int(u[_H_OPRI]), int(u[_H_OEV]), int(u[_H_ON]), int(u[_H_OCONST])
    ost, otr, ox, oz = int(u[_H_OSTUDY]), int(u[_H_OTREAT]), int(u[_H_OX]), int(u[_H_OZ])
    xmu, xm, xsig, xgam = int(u[_H_XMU]), int(u[_H_XM]), int(u[_H_XSIG]), int(u[_H_XGAM])
    xd, xtau, xz, xbeta = int(u[_H_XD]), int(u[_H_XTAU]), int(u[_H_XZ]), int(u[_H_XBETA])
    ndim = int(u[_H_NDIM])
    grad = g.size > 0
    if grad:
        for i in range(ndim):
            g[i] = 0.0
    lp = 0.0
    mu = np.empty(S)
    delta = np.empty(S)
    gmu = np.zeros(S)
    gdelta = np.zeros(S)

    # baselines
    sig = 0.0
    dsig_dy = 0.0
    gsig = 0.0
    if not exch:
        for s in range(S):
            v, dv = _loc_lp(u, opri + _PRI_MU * _PSLOT, x[xmu + s])
            lp += v
            mu[s] = x[xmu + s]
            if grad:
                g[xmu + s] += dv
    else:
        v, dv = _loc_lp(u, opri + _PRI_M * _PSLOT, x[xm])
        lp += v
        if grad:
            g[xm] += dv
        sig, v, dv, dsig_dy = _scale_lp(u, opri + _PRI_SIG * _PSLOT, x[xsig])
        lp += v
        if grad:
            g[xsig] += dv
        for q in range(Q):
            v, dv = _loc_lp(u, opri + (5 + P + q) * _PSLOT, x[xgam + q])
            lp += v
            if grad:
                g[xgam + q] += dv
        for s in range(S):
            loc = x[xm]
            for q in range(Q):
                loc += u[oz + s * Q + q] * x[xgam + q]
            if u[ocmu + s] > 0:  # mu_s ~ N(loc, sig)
                m_s = x[xmu + s]
                r = (m_s - loc) / sig
                lp += -0.5 * r * r - math.log(sig) - 0.5 * _LOG2PI
                mu[s] = m_s
                if grad:
                    gl = r / sig  # d/d loc
                    g[xmu + s] -= gl
                    g[xm] += gl
                    for q in range(Q):
                        g[xgam + q] += gl * u[oz + s * Q + q]
                    gsig += (r * r - 1.0) / sig
            else:  # mu_s = loc + sig * raw_s, raw_s ~ N(0, 1)
                raw = x[xmu + s]
                lp += -0.5 * raw * raw - 0.5 * _LOG2PI
                mu[s] = loc + sig * raw
                if grad:
                    g[xmu + s] -= raw

    # treatment effects
    d = x[xd]
    v, dv = _loc_lp(u, opri + _PRI_D * _PSLOT, d)
    lp += v
    if grad:
        g[xd] += dv
    tau = 0.0
    dtau_dy = 0.0
    gtau = 0.0
    if common:
        for s in range(S):
            delta[s] = d
    else:
        tau, v, dv, dtau_dy = _scale_lp(u, opri + _PRI_TAU * _PSLOT, x[xtau])
        lp += v
        if grad:
            g[xtau] += dv
        for s in range(S):
            zs = x[xz + s]
            if u[ocdel + s] > 0:  # delta_s ~ N(d, tau)
                r = (zs - d) / tau
                lp += -0.5 * r * r - math.log(tau) - 0.5 * _LOG2PI
                delta[s] = zs
                if grad:
                    g[xz + s] -= r / tau
                    g[xd] += r / tau
                    gtau += (r * r - 1.0) / tau
            else:
                lp += -0.5 * zs * zs - 0.5 * _LOG2PI
                delta[s] = d + tau * zs
                if grad:
                    g[xz + s] -= zs

    # effect-modifier priors
    for j in range(P):
        v, dv = _loc_lp(u, opri + (5 + j) * _PSLOT, x[xbeta + j])
        lp += v
        if grad:
            g[xbeta + j] += dv

    # likelihood: log C(n, k) + k eta - n softplus(eta)
    nexp = out.size > 0
    eoff = int(u[_H_NEXP]) - A
    for a in range(A):
        s = int(u[ost + a])
        t = u[otr + a]
        eta = mu[s] + t * delta[s]
        for j in range(P):
            eta += u[ox + a * P + j] * x[xbeta + j]
        k, n = u[oev + a], u[on + a]
        # softplus(eta) and inv_logit(eta) from one exp and one log, without branches; log(1 + z)
        # rather than log1p(z): glibc's log1p costs twice its log, and for z < eps the term it
        # would add (n z) is below the rounding of the log density's sum
        z = math.exp(-abs(eta))
        w = 1.0 + z
        lp += u[oc + a] + k * eta - n * (max(eta, 0.0) + math.log(w))
        if nexp:
            out[eoff + a] = eta
        if grad:
            ge = k - n * ((1.0 if eta >= 0 else z) / w)
            gmu[s] += ge
            gdelta[s] += t * ge
            for j in range(P):
                g[xbeta + j] += u[ox + a * P + j] * ge

    if grad:
        # chain rule back to the sampled parameters
        for s in range(S):
            if not exch or u[ocmu + s] > 0:
                g[xmu + s] += gmu[s]
            else:
                g[xmu + s] += sig * gmu[s]
                g[xm] += gmu[s]
                for q in range(Q):
                    g[xgam + q] += gmu[s] * u[oz + s * Q + q]
                gsig += gmu[s] * x[xmu + s]
            if common:
                g[xd] += gdelta[s]
            elif u[ocdel + s] > 0:
                g[xz + s] += gdelta[s]
            else:
                g[xd] += gdelta[s]
                g[xz + s] += tau * gdelta[s]
                gtau += gdelta[s] * x[xz + s]
        if exch:
            g[xsig] += gsig * dsig_dy
        if not common:
            g[xtau] += gtau * dtau_dy

    if nexp:
        for i in range(ndim):
            out[i] = x[i]
        c = ndim
        if not common:
            out[c] = tau
            c += 1
        if exch:
            out[c] = sig
            c += 1
            if not cmu:
                for s in range(S):
                    out[c + s] = mu[s]
                c += S
        if common or not cdelta:
            for s in range(S):
                out[c + s] = delta[s]
            c += S
    return lp


_LOGP_SIG = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                              numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
                              numba.types.CPointer(numba.types.double))
_EXPAND_SIG = numba.types.int64(numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
                                numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double))


@numba.cfunc(_LOGP_SIG, cache=True, nogil=True)
def _logp_cfunc(dim, x_, grad_, logp_, user_):
    # the user-data pointer nutpie passes is our float64 array (first slot: its length)
    u = numba.carray(user_, (int(user_[0]),))
    if dim != int(u[_H_NDIM]):
        return -1
    x = numba.carray(x_, (dim,))
    g = numba.carray(grad_, (dim,))
    lp = _core(x, u, g, np.empty(0))
    logp_[0] = lp
    for i in range(dim):
        if not np.isfinite(g[i]):
            return 3
    if not np.isfinite(lp):
        return 4
    return 0


@numba.cfunc(_EXPAND_SIG, cache=True, nogil=True)
def _expand_cfunc(dim, n_expanded, x_, out_, user_):
    u = numba.carray(user_, (int(user_[0]),))
    if dim != int(u[_H_NDIM]) or n_expanded != int(u[_H_NEXP]):
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (n_expanded,))
    _core(x, u, np.empty(0), out)
    return 0


# ---------------------------------------------------------------------------- Python side
def enabled() -> bool:
    """False when ``BAYESLN_FAST_KERNEL`` switches the kernel off."""
    from bayesln import _kernelwarm

    return not _kernelwarm.off()


def supports(design, priors) -> bool:
    """True when the kernel covers this core model: every option of
    :func:`~bayesln.hierarchy.model.model_from_design` except a coefficient vector whose
    elements mix normal and student_t priors (PyMC builds it from per-element raw
    variables, which this kernel does not name)."""
    for names, pick in ((design.effect_names, priors.beta_for), (design.baseline_names, priors.gamma_for)):
        if len({pick(c).dist for c in names}) > 1:
            return False
    return True


@dataclass
class _Layout:
    names: list[str]
    shapes: list[tuple[int, ...]]
    n_dim: int
    n_expanded: int
    start: np.ndarray  # initial point before jitter


def _shared_data(design, events=None, n=None, X=None, Z=None, const=None) -> dict[str, np.ndarray]:
    """The data a refit may swap (nutpie's ``with_data`` names, as the PyTensor route's
    containers): counts, their log binomial coefficients (computed from the counts unless
    given), covariates; read-only arrays."""
    from bayesln.hierarchy.model import binomial_log_coefficient

    ev = np.array(design.events if events is None else events, dtype=float)
    nn = np.array(design.n if n is None else n, dtype=float)
    const = binomial_log_coefficient(ev, nn) if const is None else np.array(const, dtype=float)
    shared = {"events_data": ev, "n_data": nn, "binom_const": const}
    if design.effect_names:
        shared["X_effect"] = np.array(design.X_effect if X is None else X, dtype=float)
    if design.baseline_names:
        shared["Z_baseline"] = np.array(design.Z_baseline if Z is None else Z, dtype=float)
    for v in shared.values():
        v.flags.writeable = False
    return shared


def _pack(design, priors, tau_prior, *, common_effect, parameterization, baseline_parameterization,
          events=None, n=None, X=None, Z=None, const=None):
    """The float64 user-data array and the parameter / trace layout (data from
    ``design`` unless given)."""
    from bayesln.hierarchy.priors import half_normal

    A, S = design.n_arms, design.n_studies
    P, Q = len(design.effect_names), len(design.baseline_names)
    exch = design.baseline != "independent"
    from bayesln.hierarchy.model import study_mask
    from bayesln.hierarchy.parameterize import mask_kind

    mask = study_mask(parameterization, S)
    kind = mask_kind(mask)
    cdelta = kind == "centered"
    bmask = study_mask(baseline_parameterization, S, what="baseline_parameterization")
    cmu = mask_kind(bmask) == "centered"
    shared = _shared_data(design, events, n, X, Z, const)
    events, n, const = shared["events_data"], shared["n_data"], shared["binom_const"]
    X = shared.get("X_effect", np.zeros((A, 0))).reshape(A, P)
    Z = shared.get("Z_baseline", np.zeros((S, 0))).reshape(S, Q)

    # parameters (unconstrained), in this order; PyMC's value-variable names
    names, shapes, start = [], [], []
    off = {}

    def add(key, name, shape, inits):
        """A parameter block at the next offset; ``inits`` one start value per element."""
        off[key] = len(start)
        names.append(name)
        shapes.append(shape)
        start.extend(inits)

    def loc(prior):
        return prior.params.get("mu", 0.0)

    if not exch:
        add("mu", "mu", (S,), [loc(priors.baseline)] * S)
    else:
        add("m", "m", (), [loc(priors.m)])
        add("sig", _scale_value_name("sigma_mu", priors.sigma_mu), (), [_scale_start(priors.sigma_mu)])
        if Q:
            add("gam", "gamma", (Q,), [loc(priors.gamma_for(c)) for c in design.baseline_names])
        add("mu", "mu" if cmu else "mu_raw", (S,), [loc(priors.m) if c else 0.0 for c in bmask])
    add("d", "d", (), [loc(priors.d)])
    if not common_effect:
        add("tau", _scale_value_name("tau", tau_prior), (), [_scale_start(tau_prior)])
        add("z", {"centered": "delta", "mixed": "delta_raw"}.get(kind, "z"), (S,),
            [loc(priors.d) if c else 0.0 for c in mask])
    if P:
        add("beta", "beta", (P,), [loc(priors.beta_for(c)) for c in design.effect_names])
    n_dim = len(start)
    # trace values after the parameters (PyMC's remaining unobserved variables)
    if not common_effect:
        names.append("tau")
        shapes.append(())
    if exch:
        names.append("sigma_mu")
        shapes.append(())
        if not cmu:
            names.append("mu")
            shapes.append((S,))
    if common_effect or not cdelta:
        names.append("delta")
        shapes.append((S,))
    names.append("eta")
    shapes.append((A,))
    n_expanded = sum(int(np.prod(s)) for s in shapes)

    pri = []
    for p in (priors.d, tau_prior if not common_effect else half_normal(1.0), priors.baseline, priors.m,
              priors.sigma_mu, *[priors.beta_for(c) for c in design.effect_names],
              *[priors.gamma_for(c) for c in design.baseline_names]):
        pri.extend(_encode_prior(p))
    blocks = [np.asarray(pri, float), events, n, const, design.arm_study.astype(float),
              design.treated.astype(float), X.ravel(), Z.ravel(), np.asarray(mask, dtype=float),
              np.asarray(bmask, dtype=float)]
    header = np.zeros(_HEADER)
    pos = _HEADER
    offsets = []
    for b in blocks:
        offsets.append(pos)
        pos += b.size
    header[_H_LEN] = pos
    header[_H_A], header[_H_S], header[_H_P], header[_H_Q] = A, S, P, Q
    header[_H_EXCH], header[_H_COMMON], header[_H_CDELTA], header[_H_CMU] = exch, common_effect, cdelta, cmu
    header[_H_NDIM] = n_dim
    header[_H_OPRI:_H_OZ + 1] = offsets[:-2]
    header[_H_OCDEL], header[_H_OCMU] = offsets[-2:]
    for slot, key in ((_H_XMU, "mu"), (_H_XM, "m"), (_H_XSIG, "sig"), (_H_XGAM, "gam"), (_H_XD, "d"),
                      (_H_XTAU, "tau"), (_H_XZ, "z"), (_H_XBETA, "beta")):
        header[slot] = off.get(key, -1)
    header[_H_NEXP] = n_expanded
    u = np.ascontiguousarray(np.concatenate([header, *blocks]))
    return u, _Layout(names, shapes, n_dim, n_expanded, np.asarray(start, float))


def logp_and_grad(x, u) -> tuple[float, np.ndarray]:
    """The kernel from Python (tests, diagnostics): log density and gradient at x."""
    x = np.ascontiguousarray(x, dtype=float)
    g = np.empty_like(x)
    return float(_core(x, u, g, np.empty(0))), g


def expand(x, u) -> np.ndarray:
    """The trace vector (parameters, then the derived variables) at x."""
    x = np.ascontiguousarray(x, dtype=float)
    out = np.empty(int(u[_H_NEXP]))
    _core(x, u, np.empty(0), out)
    return out


def _nutpie_class():
    from bayesln.hierarchy.nutpie_adapter import compiled_model_base

    CompiledPyMCModel = compiled_model_base()

    @dataclass(frozen=True)
    class FastCoreModel(CompiledPyMCModel):
        """nutpie's compiled-model record with this module's callbacks; ``with_data``
        repacks the counts / covariates into a new user-data array (same layout)."""

        pack_args: dict | None = None

        def with_data(self, **updates):
            unknown = set(updates) - set(self.shared_data)
            if unknown:
                raise KeyError(f"Unknown shared variable: {sorted(unknown)}")
            for k, v in updates.items():
                if np.shape(v) != self.shared_data[k].shape:
                    raise ValueError(f"{k}: new data have shape {np.shape(v)}, the compiled model "
                                     f"{self.shared_data[k].shape}")
            data = {k: updates.get(k, v) for k, v in self.shared_data.items()}
            if "events_data" in updates and "binom_const" not in updates:
                data["binom_const"] = None  # recomputed from the new counts
            a = self.pack_args
            new = dict(events=data["events_data"], n=data["n_data"], X=data.get("X_effect"), Z=data.get("Z_baseline"),
                       const=data["binom_const"])
            u, _ = _pack(a["design"], a["priors"], a["tau_prior"], common_effect=a["common_effect"],
                         parameterization=a["parameterization"], baseline_parameterization=a["baseline_parameterization"],
                         **new)
            return dataclasses.replace(self, shared_data=_shared_data(a["design"], **new), user_data=u)

    return FastCoreModel


_CLASS = None


def compile_fast_core(model, design, priors, tau_prior, *, common_effect=False, parameterization="noncentered",
                      baseline_parameterization="centered"):
    """A nutpie compiled model of the core ``model`` (built by model_from_design from
    ``design`` and ``priors``; ``tau_prior`` already resolved) using this module's cached
    kernel. ``model`` supplies only the dims and coordinates."""
    import pandas as pd

    global _CLASS
    if _CLASS is None:
        _CLASS = _nutpie_class()
    kw = dict(common_effect=common_effect, parameterization=parameterization,
              baseline_parameterization=baseline_parameterization)
    u, lay = _pack(design, priors, tau_prior, **kw)
    start = lay.start

    def initial_point(seed=None):
        rng = np.random.default_rng(seed)
        return start + rng.uniform(-1.0, 1.0, size=start.size)

    slices, c = [], 0
    for s in lay.shapes:
        k = int(np.prod(s))
        slices.append(slice(c, c + k))
        c += k
    coords = {name: pd.Index(list(v)) for name, v in design.coords.items()}
    unc = []
    for name, shape, sl in zip(lay.names, lay.shapes, slices):
        if sl.start >= lay.n_dim:
            break
        unc.extend([name] if shape == () else [f"{name}_{i}" for i in range(shape[0])])
    coords["unconstrained_parameter"] = pd.Index(unc)
    dims = {k: tuple(v) for k, v in model.named_vars_to_dims.items()}
    dims.setdefault("z", ("study",))
    dims.setdefault("delta_raw", ("study",))
    dims.setdefault("mu_raw", ("study",))
    return _CLASS(
        dims=dims,
        _n_dim=lay.n_dim,
        _coords=coords,
        _shapes={n: tuple(s) for n, s in zip(lay.names, lay.shapes)},
        compiled_logp_func=_logp_cfunc,
        compiled_expand_func=_expand_cfunc,
        initial_point_func=initial_point,
        shared_data=_shared_data(design),
        user_data=u,
        n_expanded=lay.n_expanded,
        shape_info=(lay.names, slices, lay.shapes),
        logp_func=None,
        expand_func=None,
        pack_args=dict(design=design, priors=priors, tau_prior=tau_prior, **kw),
    )
