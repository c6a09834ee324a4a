"""Parameter recovery and calibration for the issue-5 models (ordinal, joint, network).

Two modes, both fitting one compiled model per case (events and denominators are
``pm.Data``; each replicate swaps them in with nutpie's ``with_data``) and recording
whether the central 50 / 80 / 95 % posterior intervals cover the truth.

**Calibrated** (``--mode calibrated``, :func:`run_calibrated`, JSON ``"calibrated"``):
in every replicate the truth of *every* parameter (hyperparameters, study baselines,
study effects, correlation matrix) is drawn from the model's own documented prior, data
are simulated from it, and the model is fitted. Averaged over the prior, Bayesian
intervals cover the truth at exactly their nominal rate, and the rank of the truth among
thinned posterior draws is uniform (simulation-based calibration, Talts et al. 2018,
arXiv:1804.06788): a coverage more than 3 binomial MCSE from nominal, or a rank histogram
that fails the chi-square / KS uniformity tests (helpers of ``benchmarks/sbc_core.py``),
points to a bug in the model, its documentation or the sampler. The prior draws and the
data are generated with numpy from the *documented* model (module docstrings of
:mod:`bayesln.hierarchy.joint`, :mod:`~bayesln.hierarchy.ordinal`,
:mod:`~bayesln.hierarchy.network`; e.g. the LKJ matrix by the onion method, the
multi-arm covariance tau^2 / 2 as in TSD2), independently of the PyMC graph, so the check
also confirms that the PyMC model is the documented one; as a cross-check the numpy prior
is compared with ``pm.sample_prior_predictive`` of the compiled case (two-sample KS per
recorded quantity and per arm-level probability / effect). Cases: joint with 2 and 3
outcomes (studies reporting all or one of the outcomes; the opt-in ``joint3_pairs_cal``
adds studies reporting two of three), ordinal with both links (sequential and
cumulative), shared and cut-point-specific effects, independent (the default) and
exchangeable baselines, and a network with a three-arm and a four-arm trial. Recorded:
pooled effects ``d``, between-study SDs ``tau``, correlations ``rho``, cut-points /
baselines (``m``, ``kappa_mean``, ``sigma_mu``, or one study's baselines with independent
baselines), the reference-baseline outcome probabilities ``P_cr`` / ``P_resp`` and the
network's relative effects. Each case also records the coverage of a deliberately wrong
truth (the truth shifted by 3 prior SDs), which must be far below nominal.

**Fixed truth** (``--mode fixed``, :func:`run_case`, JSON ``"fixed_truth"``: *frequentist
coverage, not guaranteed nominal*): a fixed trial design is simulated ``n_rep`` times
from fixed hyperparameters (study baselines and study-level effects drawn afresh in every
replicate). Coverage of fixed-truth intervals is a frequentist property of Bayesian
intervals: close to nominal for well-identified parameters (pooled effects, cut-points),
while a between-study SD or a between-outcome correlation informed by few studies can be
over- or under-covered because of its prior (e.g. rho = 0.6 under LKJ(2), which pulls
towards 0).

The binomial Monte-Carlo SE of a coverage over ``n_rep`` replicates is
sqrt(p (1 - p) / n_rep) (0.015 for 95 % with 200 replicates).

Run (times on the shared 2-core machine)::

    python benchmarks/recovery_issue5.py --mode calibrated       # 7 cases x 200 replicates, about 27 min
    python benchmarks/recovery_issue5.py --mode calibrated --models joint3_pairs_cal   # opt-in, 50 replicates, slow
    python benchmarks/recovery_issue5.py --mode fixed            # the fixed-truth cases, 5 x 150, about 8-15 min
    python benchmarks/recovery_issue5.py --mode calibrated --reps 10 --models network_cal --out /tmp/r.json

Each mode replaces only its own section of the JSON file. The small versions used by the
``slow`` tests are :func:`run_case` and :func:`run_calibrated` with a few replicates.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import sys
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bayesln import _arviz  # noqa: E402
from bayesln.hierarchy.joint import build_joint_design, build_joint_model  # noqa: E402
from bayesln.hierarchy.network import build_network_design, build_network_model  # noqa: E402
from bayesln.hierarchy.ordinal import build_ordinal_design, build_ordinal_model  # noqa: E402
from bayesln.hierarchy.sampling import SamplerSettings, compile_nutpie, sample_model  # noqa: E402

LEVELS = (0.5, 0.8, 0.95)
OUT = ROOT / "benchmarks" / "results" / "recovery_issue5.json"


@dataclass
class Case:
    name: str
    description: str
    truth: dict[str, float]
    simulate: Callable[[np.random.Generator], tuple[pd.DataFrame, dict[str, float]]]
    build: Callable[[pd.DataFrame], tuple[object, object]]  # df -> (model, design)
    data_of: Callable[[object], dict[str, np.ndarray]]  # design -> pm.Data values
    extract: Callable[[object, object], dict[str, np.ndarray]]  # (posterior, design) -> draws per parameter


def _flat(post, name):
    a = np.asarray(post[name].values)
    return a.reshape((-1,) + a.shape[2:])


# ============================================================================ joint
def joint_case(n_studies: int = 16) -> Case:
    """2 outcomes (total_response: benefit; severe_infection: harm), 16 two-arm studies:
    10 report both, 3 response only, 3 infection only; n = 150 per arm."""
    truth = {"d[total_response]": 0.6, "d[severe_infection]": -0.4, "tau[total_response]": 0.4,
             "tau[severe_infection]": 0.4, "rho": 0.6}
    mu0 = {"total_response": (0.5, 0.5), "severe_infection": (-2.0, 0.5)}
    outs = ["total_response", "severe_infection"]
    both, only_r = 10, 3

    def simulate(rng):
        d = np.array([truth["d[total_response]"], truth["d[severe_infection]"]])
        tau = np.array([truth["tau[total_response]"], truth["tau[severe_infection]"]])
        R = np.array([[1, truth["rho"]], [truth["rho"], 1]])
        S = R * np.outer(tau, tau)
        rows = []
        for i in range(n_studies):
            delta = rng.multivariate_normal(d, S)
            rep = outs if i < both else ([outs[0]] if i < both + only_r else [outs[1]])
            for k, o in enumerate(outs):
                if o not in rep:
                    continue
                mu = rng.normal(*mu0[o])
                for arm, t in (("tac", 1), ("ivcy", 0)):
                    n = 150
                    y = rng.binomial(n, expit(mu + t * delta[k]))
                    rows.append({"study": f"s{i:02d}", "arm": arm, "treatment": arm, "regimen": "duo" if t else "control",
                                 "phase": "induction", "design": "rct", "outcome": o, "events": y, "n": n})
        return pd.DataFrame(rows), dict(truth)

    def build(df):
        des = build_joint_design(df, outs, warn=False)
        return build_joint_model(des, lkj_eta=2.0), des

    def extract(post, des):
        d, tau, rho = _flat(post, "d"), _flat(post, "tau"), _flat(post, "rho")
        return {"d[total_response]": d[:, 0], "d[severe_infection]": d[:, 1], "tau[total_response]": tau[:, 0],
                "tau[severe_infection]": tau[:, 1], "rho": rho[:, 0]}

    return Case("joint", "2 outcomes x 16 two-arm studies (10 both, 3 response only, 3 infection only), n=150/arm; "
                "d=(0.6,-0.4), tau=(0.4,0.4), rho=0.6, LKJ(2)", truth, simulate, build,
                lambda des: {"events_data": des.rows["events"].to_numpy(), "n_data": des.rows["n"].to_numpy()}, extract)


# ============================================================================ ordinal
def ordinal_case(n_studies: int = 12, link: str = "sequential", cutpoint_specific: bool = False) -> Case:
    """Exchangeable baselines; 8 studies report CR/PR/NR, 2 CR only, 2 CR-or-PR only;
    n = 100 per arm. Sequential link: step 1 (response) and step 2 (CR | response) with
    a shared or step-specific log-OR; cumulative link: logit P(>= PR) = a_i + t delta,
    logit P(CR) = a_i - exp(kappa_i) + t delta."""
    seq = link == "sequential"
    if seq:
        truth = {"m[response]": 0.8, "m[complete_given_response]": -0.2,
                 "sigma_mu[response]": 0.4, "sigma_mu[complete_given_response]": 0.4}
        if cutpoint_specific:
            truth |= {"d[response]": 0.7, "d[complete_given_response]": 0.3,
                      "tau[response]": 0.25, "tau[complete_given_response]": 0.25}
        else:
            truth |= {"d": 0.5, "tau": 0.25}
    else:
        truth = {"m": 0.8, "kappa_mean": 0.3, "sigma_mu[total]": 0.4, "sigma_mu[complete]": 0.3, "d": 0.5, "tau": 0.25}

    def simulate(rng):
        rows = []
        for i in range(n_studies):
            pat = "full" if i < 8 else ("cr" if i < 10 else "total")
            if seq:
                a1 = rng.normal(truth["m[response]"], truth["sigma_mu[response]"])
                a2 = rng.normal(truth["m[complete_given_response]"], truth["sigma_mu[complete_given_response]"])
                if cutpoint_specific:
                    dl1 = rng.normal(truth["d[response]"], truth["tau[response]"])
                    dl2 = rng.normal(truth["d[complete_given_response]"], truth["tau[complete_given_response]"])
                else:
                    dl1 = dl2 = rng.normal(truth["d"], truth["tau"])
            else:
                a = rng.normal(truth["m"], truth["sigma_mu[total]"])
                kap = rng.normal(truth["kappa_mean"], truth["sigma_mu[complete]"])
                dl = rng.normal(truth["d"], truth["tau"])
            for arm, t in (("tac", 1), ("ivcy", 0)):
                n = 100
                if seq:
                    p1, p2 = expit(a1 + t * dl1), expit(a2 + t * dl2)
                    probs = [p1 * p2, p1 * (1 - p2), 1 - p1]
                else:
                    ptot, pcr = expit(a + t * dl), expit(a - np.exp(kap) + t * dl)
                    probs = [pcr, ptot - pcr, 1 - ptot]
                y = rng.multinomial(n, probs)
                base = {"study": f"s{i:02d}", "arm": arm, "treatment": arm, "regimen": "duo" if t else "control",
                        "phase": "induction", "design": "rct", "n": n}
                if pat in ("full", "cr"):
                    rows.append({**base, "outcome": "complete_response", "events": y[0]})
                if pat == "full":
                    rows.append({**base, "outcome": "partial_response", "events": y[1]})
                if pat in ("full", "total"):
                    rows.append({**base, "outcome": "total_response", "events": y[0] + y[1]})
        return pd.DataFrame(rows), dict(truth)

    def build(df):
        des = build_ordinal_design(df, link=link, cutpoint_specific=cutpoint_specific, baseline="exchangeable")
        return build_ordinal_model(des), des

    def extract(post, des):
        out = {}
        for p in truth:
            name, _, idx = p.partition("[")
            x = _flat(post, name)
            if idx:
                x = x[:, list(des.stages).index(idx.rstrip("]"))]
            out[p] = x
        return out

    what = f"{link} logit, {'cut-point-specific' if cutpoint_specific else 'shared'} effect"
    return Case("ordinal" + ("_cutpoint_specific" if cutpoint_specific else "") + ("" if seq else "_cumulative"),
                f"{what}, exchangeable baselines; 12 two-arm studies (8 CR/PR/NR, 2 CR only, 2 CR-or-PR only), "
                f"n=100/arm; truth {truth}", truth, simulate, build,
                lambda des: {"events_data": des.rows["events"].to_numpy(), "n_data": des.rows["n"].to_numpy()}, extract)


# ============================================================================ network
NET_DESIGN = ([("A", "B")] * 3 + [("A", "C")] * 3 + [("B", "C")] * 2 + [("B", "D")] * 2 + [("C", "D")]
              + [("A", "E")] + [("D", "E")] + [("A", "B", "C")])


def network_case() -> Case:
    """5 treatments (A reference), 14 studies incl. a three-arm trial and several loops,
    n = 120 per arm; random effects tau = 0.3."""
    dtrue = {"A": 0.0, "B": 0.5, "C": 0.8, "D": 0.3, "E": -0.2}
    truth = {f"d[{k}]": v for k, v in dtrue.items() if k != "A"} | {"tau": 0.3}

    def simulate(rng):
        rows = []
        for i, trts in enumerate(NET_DESIGN):
            mu = rng.normal(-0.5, 0.5)
            b = trts[0]
            k = len(trts) - 1
            S = 0.3**2 * (np.full((k, k), 0.5) + 0.5 * np.eye(k))
            dl = rng.multivariate_normal([dtrue[t] - dtrue[b] for t in trts[1:]], S)
            for j, t in enumerate(trts):
                eff = 0.0 if j == 0 else dl[j - 1]
                n = 120
                rows.append({"study": f"s{i:02d}", "arm": t, "treatment": t, "regimen": pd.NA, "node": t,
                             "phase": "induction", "design": "rct", "outcome": "total_response",
                             "events": rng.binomial(n, expit(mu + eff)), "n": n})
        return pd.DataFrame(rows), dict(truth)

    def build(df):
        des = build_network_design(df, "total_response", reference="A", treatments=["A", "B", "C", "D", "E"])
        return build_network_model(des), des

    def extract(post, des):
        d = _flat(post, "d")
        return {f"d[{t}]": d[:, k] for k, t in enumerate(des.nonref)} | {"tau": _flat(post, "tau")}

    return Case("network", "5 treatments, 14 studies (A-Bx3, A-Cx3, B-Cx2, B-Dx2, C-D, A-E, D-E, A-B-C), n=120/arm; "
                "d=(B 0.5, C 0.8, D 0.3, E -0.2) vs A, tau=0.3", truth, simulate, build,
                lambda des: {"events_data": des.arms["events"].to_numpy(), "n_data": des.arms["n"].to_numpy()}, extract)


CASES = {
    "joint": joint_case,
    "ordinal": ordinal_case,
    "ordinal_cutpoint_specific": lambda: ordinal_case(cutpoint_specific=True),
    "ordinal_cumulative": lambda: ordinal_case(link="cumulative"),
    "network": network_case,
}


# ============================================================================ runner
def run_case(case: Case, n_rep: int, seed: int, draws: int = 500, tune: int = 500, chains: int = 2,
             target_accept: float = 0.95, verbose: bool = False) -> dict:
    """Fit ``n_rep`` simulated data sets with one compiled model; coverage per parameter."""
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, target_accept=target_accept, cores=min(chains, 2))
    rng0 = np.random.default_rng([seed, 0])
    df0, _ = case.simulate(rng0)
    model, des0 = case.build(df0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = compile_nutpie(model)
    compile_s = time.perf_counter() - t0
    names = list(case.truth)
    cover = {p: {lv: [] for lv in LEVELS} for p in names}
    post_q = {p: [] for p in names}
    err = {p: [] for p in names}
    sds = {p: [] for p in names}
    divs, min_ess, sample_s = [], [], []
    for r in range(n_rep):
        rng = np.random.default_rng([seed, r + 1])
        df, truth = case.simulate(rng)
        _, des = case.build(df)  # same shape as des0; only events / n differ
        t1 = time.perf_counter()
        c = compiled.with_data(**case.data_of(des))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post, stats, _ = sample_model(model, settings=settings, seed=seed * 1000 + r, backend="nutpie", compiled=c)
        sample_s.append(time.perf_counter() - t1)
        divs.append(int(np.asarray(stats["diverging"]).sum()))
        dr = case.extract(post, des)
        ess_min = np.inf
        for p in names:
            x = np.asarray(dr[p], float)
            tv = truth[p]
            for lv in LEVELS:
                lo, hi = np.quantile(x, [(1 - lv) / 2, (1 + lv) / 2])
                cover[p][lv].append(bool(lo <= tv <= hi))
            post_q[p].append(float(np.mean(x < tv)))
            err[p].append(float(np.median(x) - tv))
            sds[p].append(float(np.std(x, ddof=1)))
            da = xr.DataArray(x.reshape(chains, -1), dims=("chain", "draw"))
            ess_min = min(ess_min, float(_arviz.ess(xr.Dataset({"x": da}), "bulk")["x"]))
        min_ess.append(ess_min)
        if verbose:
            print(f"  {case.name} rep {r + 1}/{n_rep}: {sample_s[-1]:.1f}s, divergences {divs[-1]}, min ESS {ess_min:.0f}",
                  flush=True)
    out = {"description": case.description, "n_rep": n_rep, "seed": seed,
           "sampler": {"draws": draws, "tune": tune, "chains": chains, "target_accept": target_accept, "backend": "nutpie"},
           "compile_seconds": round(compile_s, 1), "sampling_seconds_total": round(float(np.sum(sample_s)), 1),
           "replicates_with_divergences": int(np.sum(np.array(divs) > 0)), "divergences_total": int(np.sum(divs)),
           "min_bulk_ess_median_over_reps": float(np.median(min_ess)), "parameters": {}}
    for p in names:
        cov = {f"{int(lv * 100)}%": float(np.mean(cover[p][lv])) for lv in LEVELS}
        mcse = {f"{int(lv * 100)}%": float(np.sqrt(lv * (1 - lv) / n_rep)) for lv in LEVELS}
        out["parameters"][p] = {
            "truth": case.truth[p], "coverage": cov, "nominal_mcse": mcse,
            "median_error_mean": float(np.mean(err[p])), "posterior_sd_mean": float(np.mean(sds[p])),
            "truth_quantile_mean": float(np.mean(post_q[p])),
        }
    return out


# ============================================================================ calibrated mode
#: label of each mode in the JSON (and the docstring)
FIXED_LABEL = "fixed truth: frequentist coverage, not guaranteed nominal"
CAL_LABEL = ("calibrated: every parameter drawn from the model's documented prior in each replicate; "
             "coverage nominal and SBC ranks uniform by construction if model, documentation and sampler agree")
SHIFT_SD = 3.0  # the deliberately wrong truth: truth + SHIFT_SD prior SDs


def _sbc_core():
    """benchmarks/sbc_core.py (its rank and uniformity helpers), loaded from its file."""
    mod = sys.modules.get("sbc_core")
    if mod is None or not hasattr(mod, "uniformity"):
        spec = importlib.util.spec_from_file_location("sbc_core", ROOT / "benchmarks" / "sbc_core.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["sbc_core"] = mod
        spec.loader.exec_module(mod)
    return mod


def lkj_onion(rng: np.random.Generator, K: int, eta: float) -> np.ndarray:
    """One LKJ(eta) correlation matrix by the onion method (Lewandowski, Kurowicka & Joe
    2009, J Multivar Anal 100:1989, §3.2), a different construction from the C-vine of
    :func:`bayesln.hierarchy.joint.lkj_cholesky` that the model uses."""
    if K == 1:
        return np.ones((1, 1))
    beta = eta + (K - 2) / 2.0
    r = 2.0 * rng.beta(beta, beta) - 1.0
    R = np.array([[1.0, r], [r, 1.0]])
    for k in range(2, K):
        beta -= 0.5
        y = rng.beta(k / 2.0, beta)
        u = rng.standard_normal(k)
        u /= np.linalg.norm(u)
        z = np.linalg.cholesky(R) @ (np.sqrt(y) * u)
        R = np.block([[R, z[:, None]], [z[None, :], np.ones((1, 1))]])
    return R


def _hn(rng, scale, size=None):
    return np.abs(rng.normal(0.0, scale, size))


@dataclass
class CalCase:
    """A calibrated case: a fixed trial design (``skeleton``), the model built on it, a
    numpy generator of (truth arrays named as the model's variables, ``pm.Data`` values)
    from the documented prior, and the recorded scalar quantities as functions of
    the model's variables (the same function maps truth and posterior draws)."""

    name: str
    description: str
    skeleton: pd.DataFrame
    build: Callable[[pd.DataFrame], tuple[object, object]]
    generate: Callable[[object], Callable[[np.random.Generator], tuple[dict, dict]]]  # design -> rng -> (truth, data)
    quantities: Callable[[object], Callable[[Callable[[str], np.ndarray]], dict[str, np.ndarray]]]
    crosscheck_vars: tuple[str, ...] = ()  # arm-level model variables compared elementwise with the PyMC prior
    reps: int | None = None  # default replicates of this case (None: the mode's default)
    sampler: dict = field(default_factory=dict)  # sampler overrides of this case (draws, tune)
    note: str = ""


# ---------------------------------------------------------------------------- joint
JOINT3_OUTCOMES = ["total_response", "severe_infection", "serious_adverse_event"]
#: reporting patterns (outcome indices per study) of the 3-outcome joint designs: "full"
#: (all three or one outcome) and "pairs" (also studies reporting two of the three, whose
#: effects use the Cholesky factor of a 2 x 2 sub-matrix of Omega; about 20 x slower to
#: fit, see the ``note`` of the case)
JOINT3_PATTERNS = {
    "full": [(0, 1, 2)] * 8 + [(0,)] * 3 + [(1,)] * 3 + [(2,)] * 2,
    "pairs": [(0, 1, 2)] * 6 + [(0, 1)] * 3 + [(0, 2)] * 2 + [(1, 2)] + [(0,)] * 2 + [(1,)] + [(2,)],
}


def joint3_skeleton(patterns: str = "full", n: int = 120) -> pd.DataFrame:
    rows = []
    for i, pat in enumerate(JOINT3_PATTERNS[patterns]):
        for k in pat:
            for arm, t in (("tac", 1), ("ivcy", 0)):
                rows.append({"study": f"s{i:02d}", "arm": arm, "treatment": arm, "regimen": "duo" if t else "control",
                             "phase": "induction", "design": "rct", "outcome": JOINT3_OUTCOMES[k], "events": n // 4, "n": n})
    return pd.DataFrame(rows)


def _joint_generate(des, eta: float = 2.0):
    """Documented joint model: mu_io ~ N(0, 2.5) per reported (study, outcome) cell, d_o ~
    N(0, 2.5), tau_o ~ HalfNormal(0.5), Omega ~ LKJ(eta), delta_i ~ MVN(d, diag(tau) Omega
    diag(tau)) (only the reported components are used: the marginal), events ~ Binomial."""
    K = len(des.outcomes)
    so, rows = des.so, des.rows
    s_i, o_i = so["study_index"].to_numpy(), so["outcome_index"].to_numpy()
    r_so, t, n = rows["so_index"].to_numpy(), rows["treated"].to_numpy(float), rows["n"].to_numpy()
    iu = np.triu_indices(K, 1)

    def gen(rng):
        d = rng.normal(0.0, 2.5, K)
        tau = _hn(rng, 0.5, K)
        R = lkj_onion(rng, K, eta)
        full = d + (rng.standard_normal((des.n_studies, K)) @ np.linalg.cholesky(R).T) * tau
        delta = full[s_i, o_i]
        mu = rng.normal(0.0, 2.5, len(so))
        y = rng.binomial(n, expit(mu[r_so] + t * delta[r_so]))
        return {"d": d, "tau": tau, "rho": R[iu], "mu": mu, "delta": delta}, {"events_data": y, "n_data": n}

    return gen


def _joint_quantities(des):
    outs, pairs = list(des.outcomes), des.pair_names

    def q(get):
        d, tau, rho = get("d"), get("tau"), get("rho")
        return ({f"d[{o}]": d[:, k] for k, o in enumerate(outs)} | {f"tau[{o}]": tau[:, k] for k, o in enumerate(outs)}
                | {f"rho[{p}]": rho[:, k] for k, p in enumerate(pairs)})

    return q


def joint_cal_case(k: int = 2, patterns: str = "full") -> CalCase:
    extra = {}
    if k == 2:
        skel = joint_case().simulate(np.random.default_rng(0))[0]
        outs = ["total_response", "severe_infection"]
        what = "2 outcomes x 16 two-arm studies (10 both, 3 response only, 3 infection only), n=150/arm"
        name = "joint2_cal"
    elif patterns == "full":
        skel, outs = joint3_skeleton("full"), JOINT3_OUTCOMES
        what = ("3 outcomes (total_response, severe_infection, serious_adverse_event) x 16 two-arm studies: "
                "8 all three, 3 R only, 3 SI only, 2 SAE only; n=120/arm")
        name = "joint3_cal"
    else:
        skel, outs = joint3_skeleton("pairs"), JOINT3_OUTCOMES
        what = ("3 outcomes (total_response, severe_infection, serious_adverse_event) x 16 two-arm studies: "
                "6 all three, 3 R+SI, 2 R+SAE, 1 SI+SAE, 2 R only, 1 SI only, 1 SAE only; n=120/arm")
        name = "joint3_pairs_cal"
        extra = {"reps": 50, "sampler": {"draws": 300, "tune": 300},
                 "note": ("fewer replicates and draws: studies reporting two of three outcomes use pt.linalg.cholesky of "
                          "a 2 x 2 sub-matrix of Omega, which makes a fit about 20 x slower (about 24 s instead of 1 s "
                          "with 2 x (500 + 500) iterations on the 2-core machine)")}

    def build(df):
        des = build_joint_design(df, outs, warn=False)
        return build_joint_model(des, lkj_eta=2.0), des

    return CalCase(name, f"{what}; independent baselines N(0, 2.5), d ~ N(0, 2.5), tau ~ HalfNormal(0.5), "
                   "Omega ~ LKJ(2)", skel, build, _joint_generate, _joint_quantities, ("delta",), **extra)


# ---------------------------------------------------------------------------- ordinal
def _ordinal_generate(des):
    """Documented ordinal model (module docstring of bayesln.hierarchy.ordinal), default
    priors: independent baselines ~ N(0, 2.5) (sequential: alpha_is; cumulative: a_i, and
    the log gap kappa_i ~ N(0, 1)); exchangeable: m ~ N(0, 2.5) (kappa_mean ~ N(0, 1)),
    sigma_mu ~ HalfNormal(1); d ~ N(0, 2.5), tau ~ HalfNormal(0.5), psi ~ N(0, 1); per arm
    (CR, PR, NR) ~ Multinomial, reduced to the rows the study reports."""
    seq = des.link == "sequential"
    cs, exch = des.cutpoint_specific, des.baseline == "exchangeable"
    two = cs and seq
    n_s, s_of, t = des.n_studies, des.arm_study, des.treated.astype(float)
    rows = des.rows
    kind, r_arm = rows["kind"].to_numpy(), rows["arm_index"].to_numpy()
    arm_n = rows[rows["kind"] != 1].groupby("arm_index")["n"].first().sort_index().to_numpy()
    assert len(arm_n) == len(t)
    tt = des.targets["treated"].to_numpy(float)
    ref1, ref2 = np.asarray(des.reference_studies["stage1"]), np.asarray(des.reference_studies["stage2"])

    def gen(rng):
        out = {}
        if seq:
            if exch:
                m, sig = rng.normal(0.0, 2.5, 2), _hn(rng, 1.0, 2)
                alpha = m + sig * rng.standard_normal((n_s, 2))
                out |= {"m": m, "sigma_mu": sig}
            else:
                alpha = rng.normal(0.0, 2.5, (n_s, 2))
            out["alpha"] = alpha
            b1, b2 = alpha[:, 0], alpha[:, 1]
        else:
            if exch:
                m, km, sig = rng.normal(0.0, 2.5), rng.normal(0.0, 1.0), _hn(rng, 1.0, 2)
                a = m + sig[0] * rng.standard_normal(n_s)
                kappa = km + sig[1] * rng.standard_normal(n_s)
                out |= {"m": m, "kappa_mean": km, "sigma_mu": sig}
            else:
                a, kappa = rng.normal(0.0, 2.5, n_s), rng.normal(0.0, 1.0, n_s)
            out |= {"a": a, "kappa": kappa}
            b1, b2 = a, kappa
        if two:
            d, tau = rng.normal(0.0, 2.5, 2), _hn(rng, 0.5, 2)
            delta = d + tau * rng.standard_normal((n_s, 2))
            e1, e2 = t * delta[s_of, 0], t * delta[s_of, 1]
            f1, f2 = tt * d[0], tt * d[1]
        else:
            d, tau = rng.normal(0.0, 2.5), _hn(rng, 0.5)
            delta = d + tau * rng.standard_normal(n_s)
            e1 = e2 = t * delta[s_of]
            f1 = f2 = tt * d
        out |= {"d": d, "tau": tau}
        psi = 0.0
        if not seq and cs:
            psi = rng.normal(0.0, 1.0)
            out["psi"] = psi
        if exch:
            r1, r2 = (m[0], m[1]) if seq else (m, km)
        else:
            r1, r2 = b1[ref1].mean(), b2[ref2].mean()
        if seq:
            p_resp = expit(b1[s_of] + e1)
            p_cr = p_resp * expit(b2[s_of] + e2)
            P_resp = expit(r1 + f1)
            P_cr = P_resp * expit(r2 + f2)
        else:
            th1 = b1[s_of] + e1
            p_resp, p_cr = expit(th1), expit(th1 - np.exp(b2[s_of] + t * psi))
            T1 = r1 + f1
            P_resp, P_cr = expit(T1), expit(T1 - np.exp(r2 + tt * psi))
        out |= {"p_resp": p_resp, "p_cr": p_cr, "P_resp": P_resp, "P_cr": P_cr}
        cr, pr = np.empty(len(t), np.int64), np.empty(len(t), np.int64)
        for j in range(len(t)):
            p = np.clip([p_cr[j], p_resp[j] - p_cr[j], 1.0 - p_resp[j]], 0.0, 1.0)
            cr[j], pr[j], _ = rng.multinomial(arm_n[j], p / p.sum())
        ev = np.where(kind == 0, (cr + pr)[r_arm], np.where(kind == 1, cr[r_arm], np.where(kind == 2, cr[r_arm], pr[r_arm])))
        nn = np.where(kind == 1, (cr + pr)[r_arm], arm_n[r_arm])
        return out, {"events_data": ev.astype(np.int64), "n_data": nn.astype(np.int64)}

    return gen


def _ordinal_quantities(des):
    seq = des.link == "sequential"
    cs, exch = des.cutpoint_specific, des.baseline == "exchangeable"
    stages, targets = list(des.stages), des.targets["target"].tolist()
    s0 = des.study_ids[0]

    def q(get):
        out = {}
        if cs and seq:
            d, tau = get("d"), get("tau")
            out |= {f"d[{s}]": d[:, k] for k, s in enumerate(stages)} | {f"tau[{s}]": tau[:, k] for k, s in enumerate(stages)}
        else:
            out |= {"d": get("d"), "tau": get("tau")}
        if cs and not seq:
            out["psi"] = get("psi")
        if exch:
            if seq:
                out |= {f"m[{s}]": get("m")[:, k] for k, s in enumerate(stages)}
            else:
                out |= {"m": get("m"), "kappa_mean": get("kappa_mean")}
            out |= {f"sigma_mu[{s}]": get("sigma_mu")[:, k] for k, s in enumerate(stages)}
        elif seq:
            out |= {f"alpha[{s0},{s}]": get("alpha")[:, 0, k] for k, s in enumerate(stages)}
        else:
            out |= {f"a[{s0}]": get("a")[:, 0], f"kappa[{s0}]": get("kappa")[:, 0]}
        pc, pr = get("P_cr"), get("P_resp")
        out |= {f"P_cr[{g}]": pc[:, k] for k, g in enumerate(targets)} | {f"P_resp[{g}]": pr[:, k] for k, g in enumerate(targets)}
        return out

    return q


def ordinal_cal_case(link: str = "sequential", cutpoint_specific: bool = False, baseline: str = "independent") -> CalCase:
    skel = ordinal_case().simulate(np.random.default_rng(0))[0]

    def build(df):
        des = build_ordinal_design(df, link=link, cutpoint_specific=cutpoint_specific, baseline=baseline)
        return build_ordinal_model(des), des

    what = f"{link} logit, {'cut-point-specific' if cutpoint_specific else 'shared'} effect, {baseline} baselines"
    name = "ordinal_" + ("seq" if link == "sequential" else "cum") + ("_cs" if cutpoint_specific else "") + (
        "_exch" if baseline == "exchangeable" else "") + "_cal"
    return CalCase(name, f"{what}; 12 two-arm studies (8 CR/PR/NR, 2 CR only, 2 CR-or-PR only), n=100/arm; default priors",
                   skel, build, _ordinal_generate, _ordinal_quantities, ("p_resp", "p_cr"))


# ---------------------------------------------------------------------------- network
#: calibrated network design: NET_DESIGN (with the three-arm A-B-C trial) plus a four-arm trial
NET_DESIGN_CAL = NET_DESIGN + [("A", "C", "D", "E")]


def network_skeleton(design=NET_DESIGN_CAL, n: int = 120) -> pd.DataFrame:
    rows = []
    for i, trts in enumerate(design):
        for t in trts:
            rows.append({"study": f"s{i:02d}", "arm": t, "treatment": t, "regimen": pd.NA, "node": t, "phase": "induction",
                         "design": "rct", "outcome": "total_response", "events": n // 2, "n": n})
    return pd.DataFrame(rows)


def _network_generate(des):
    """Documented TSD2 model: mu_i ~ N(0, 2.5), d_k ~ N(0, 2.5) (d_ref = 0), tau ~
    HalfNormal(0.5); the a - 1 relative effects of a study vs its baseline arm are MVN with
    means d_k - d_b, variances tau^2 and covariances tau^2 / 2; events ~ Binomial."""
    arms = des.arms
    t_idx = {t: k for k, t in enumerate(des.treatments)}
    si = arms["study_index"].to_numpy()
    node_k, base_k = arms["node"].map(t_idx).to_numpy(), arms["base_node"].map(t_idx).to_numpy()
    n = arms["n"].to_numpy()
    groups = [np.flatnonzero((si == s) & ~arms["is_base"].to_numpy()) for s in range(des.n_studies)]
    chol = {k: np.linalg.cholesky(np.full((k, k), 0.5) + 0.5 * np.eye(k)) for k in {len(g) for g in groups}}

    def gen(rng):
        mu = rng.normal(0.0, 2.5, des.n_studies)
        d = rng.normal(0.0, 2.5, len(des.treatments) - 1)
        tau = _hn(rng, 0.5)
        dfull = np.concatenate([[0.0], d])
        theta = mu[si].copy()
        for g in groups:
            theta[g] += dfull[node_k[g]] - dfull[base_k[g]] + tau * chol[len(g)] @ rng.standard_normal(len(g))
        y = rng.binomial(n, expit(theta))
        return {"mu": mu, "d": d, "tau": tau, "theta": theta}, {"events_data": y, "n_data": n}

    return gen


def _network_quantities(des):
    nonref = list(des.nonref)

    def q(get):
        d = get("d")
        out = {f"d[{t}]": d[:, k] for k, t in enumerate(nonref)} | {"tau": get("tau")}
        out["d[C]-d[B]"] = d[:, nonref.index("C")] - d[:, nonref.index("B")]
        out["d[E]-d[D]"] = d[:, nonref.index("E")] - d[:, nonref.index("D")]
        return out

    return q


def network_cal_case() -> CalCase:
    def build(df):
        des = build_network_design(df, "total_response", reference="A", treatments=["A", "B", "C", "D", "E"])
        return build_network_model(des), des

    return CalCase("network_cal", "5 treatments (A reference), 15 studies (A-Bx3, A-Cx3, B-Cx2, B-Dx2, C-D, A-E, D-E, "
                   "three-arm A-B-C, four-arm A-C-D-E), n=120/arm; random effects, default priors mu_i ~ N(0, 2.5), "
                   "d_k ~ N(0, 2.5), tau ~ HalfNormal(0.5)", network_skeleton(), build, _network_generate,
                   _network_quantities, ("theta",))


CAL_CASES = {
    "joint2_cal": lambda: joint_cal_case(2),
    "joint3_cal": lambda: joint_cal_case(3),
    "ordinal_seq_cal": lambda: ordinal_cal_case("sequential"),
    "ordinal_seq_cs_exch_cal": lambda: ordinal_cal_case("sequential", True, "exchangeable"),
    "ordinal_cum_cal": lambda: ordinal_cal_case("cumulative"),
    "ordinal_cum_cs_exch_cal": lambda: ordinal_cal_case("cumulative", True, "exchangeable"),
    "network_cal": network_cal_case,
    "joint3_pairs_cal": lambda: joint_cal_case(3, "pairs"),  # opt-in (slow): not in CAL_DEFAULT
}
#: the calibrated cases run by default (about 30 min on the shared 2-core machine);
#: ``--models all`` adds ``joint3_pairs_cal`` (about 20 s per fit, 50 replicates)
CAL_DEFAULT = [k for k in CAL_CASES if k != "joint3_pairs_cal"]


def _stack(draws: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([np.asarray(x[k], float) for x in draws]) for k in draws[0]}


def prior_crosscheck(case: CalCase, model, design, draws_np: dict[str, np.ndarray], seed: int) -> dict:
    """Two-sample KS tests of the numpy (documented) prior against PyMC's prior of the
    compiled model: every recorded quantity and every element of ``case.crosscheck_vars``."""
    import pymc as pm
    from scipy import stats

    n = len(next(iter(draws_np.values())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr = pm.sample_prior_predictive(draws=n, model=model, random_seed=seed).prior
    q_pm = case.quantities(design)(lambda k: _flat(pr, k))
    q_np = case.quantities(design)(lambda k: draws_np[k])
    per_q = {p: float(stats.ks_2samp(q_np[p], q_pm[p]).pvalue) for p in q_np}
    arm_p = []
    for v in case.crosscheck_vars:
        a, b = draws_np[v].reshape(n, -1), _flat(pr, v).reshape(n, -1)
        arm_p += [float(stats.ks_2samp(a[:, j], b[:, j]).pvalue) for j in range(a.shape[1])]
    allp = list(per_q.values()) + arm_p
    return {"draws_each": n, "ks_p_per_quantity": per_q, "arm_level_vars": list(case.crosscheck_vars),
            "arm_level_tests": len(arm_p), "arm_level_min_ks_p": float(min(arm_p)) if arm_p else None,
            "n_tests": len(allp), "bonferroni_min_p": float(min(1.0, min(allp) * len(allp)))}


def _coverage_summary(ind: list[bool], lv: float) -> dict:
    n = len(ind)
    p = float(np.mean(ind))
    nominal_mcse = float(np.sqrt(lv * (1 - lv) / n))
    return {"coverage": p, "mcse": float(np.sqrt(p * (1 - p) / n)), "nominal_mcse": nominal_mcse,
            "z": (p - lv) / nominal_mcse, "within_3_mcse": bool(abs(p - lv) <= 3 * nominal_mcse)}


def run_calibrated(case: CalCase, n_rep: int, seed: int, draws: int = 500, tune: int = 500, chains: int = 2,
                   target_accept: float = 0.95, prior_draws: int = 1000, crosscheck: bool = True,
                   alpha: float = 0.01, verbose: bool = False) -> dict:
    """Calibrated coverage and SBC ranks: ``n_rep`` replicates, each with every parameter
    drawn from the documented prior (numpy), data simulated from it and one fit of the
    model compiled once. ``prior_draws`` numpy prior draws give the prior SD of each
    quantity (for the shifted truth) and, with ``crosscheck``, the KS comparison with
    ``pm.sample_prior_predictive``."""
    sbc = _sbc_core()
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, target_accept=target_accept, cores=min(chains, 2))
    model, des = case.build(case.skeleton)
    gen, quant = case.generate(des), case.quantities(des)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = compile_nutpie(model)
    compile_s = time.perf_counter() - t0
    kids = np.random.SeedSequence([seed, zlib.crc32(case.name.encode())]).spawn(n_rep + 1)
    rng_p = np.random.default_rng(kids[-1])
    prior = _stack([gen(rng_p)[0] for _ in range(prior_draws)])
    q_prior = quant(lambda k: prior[k])
    names = list(q_prior)
    prior_sd = {p: float(np.std(q_prior[p], ddof=1)) for p in names}
    t1 = time.perf_counter()
    xcheck = prior_crosscheck(case, model, des, prior, int(rng_p.integers(2**31))) if crosscheck else None
    xcheck_s = time.perf_counter() - t1
    cover = {p: {lv: [] for lv in LEVELS} for p in names}
    cover_shift = {p: {lv: [] for lv in LEVELS} for p in names}
    ranks = {p: [] for p in names}
    contraction = {p: [] for p in names}
    divs, min_ess, sample_s = [], [], []
    for r in range(n_rep):
        rng = np.random.default_rng(kids[r])
        truth_arrays, data = gen(rng)
        truth = {p: float(v[0]) for p, v in quant(lambda k: np.asarray(truth_arrays[k], float)[None]).items()}
        t2 = time.perf_counter()
        c = compiled.with_data(**data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post, stats_, _ = sample_model(model, settings=settings, seed=int(rng.integers(2**31)), backend="nutpie",
                                           compiled=c)
        sample_s.append(time.perf_counter() - t2)
        divs.append(int(np.asarray(stats_["diverging"]).sum()))
        q = quant(lambda k: _flat(post, k))
        ess_min = np.inf
        for p in names:
            x = np.asarray(q[p], float)
            tv, ts = truth[p], truth[p] + SHIFT_SD * prior_sd[p]
            for lv in LEVELS:
                lo, hi = np.quantile(x, [(1 - lv) / 2, (1 + lv) / 2])
                cover[p][lv].append(bool(lo <= tv <= hi))
                cover_shift[p][lv].append(bool(lo <= ts <= hi))
            ranks[p].append(int(sbc.rank_of(tv, x, rng)))
            contraction[p].append(float(1.0 - np.var(x, ddof=1) / prior_sd[p] ** 2))
            da = xr.DataArray(x.reshape(chains, -1), dims=("chain", "draw"))
            ess_min = min(ess_min, float(_arviz.ess(xr.Dataset({"x": da}), "bulk")["x"]))
        min_ess.append(ess_min)
        if verbose and ((r + 1) % 25 == 0 or r + 1 == n_rep):
            print(f"  {case.name} rep {r + 1}/{n_rep}: mean fit {np.mean(sample_s):.2f}s, divergences so far "
                  f"{int(np.sum(divs))}, min ESS this rep {ess_min:.0f}", flush=True)
    out = {"description": case.description, "n_rep": n_rep, "seed": seed,
           "sampler": {"draws": draws, "tune": tune, "chains": chains, "target_accept": target_accept, "backend": "nutpie"},
           **({"note": case.note} if case.note else {}),
           "compile_seconds": round(compile_s, 1), "crosscheck_seconds": round(xcheck_s, 1),
           "sampling_seconds_total": round(float(np.sum(sample_s)), 1),
           "replicates_with_divergences": int(np.sum(np.array(divs) > 0)), "divergences_total": int(np.sum(divs)),
           "min_bulk_ess_median_over_reps": float(np.median(min_ess)), "min_bulk_ess_min_over_reps": float(np.min(min_ess)),
           "prior_crosscheck": xcheck, "parameters": {}}
    for p in names:
        u = sbc.uniformity(np.asarray(ranks[p]))
        u["uniform_at_alpha"] = bool(u["chisq_p"] > alpha and u["ks_p"] > alpha)
        out["parameters"][p] = {
            "prior_sd": prior_sd[p],
            "coverage": {f"{int(lv * 100)}%": _coverage_summary(cover[p][lv], lv) for lv in LEVELS},
            "shifted_truth_coverage": {f"{int(lv * 100)}%": float(np.mean(cover_shift[p][lv])) for lv in LEVELS},
            "posterior_contraction_mean": float(np.mean(contraction[p])),
            "sbc": {k: u[k] for k in ("chisq_p", "ks_p", "uniform_at_alpha", "histogram")},
            "ranks": ranks[p],
        }
    return out


def _dumps(obj) -> str:
    """JSON with lists of numbers kept on one line."""
    txt = json.dumps(obj, indent=2)
    return re.sub(r"\[\s*([-0-9.eE+,\s]*?)\s*\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", txt)


def _load_results(path: Path) -> dict:
    if not path.exists():
        return {}
    old = json.loads(path.read_text(encoding="utf-8"))
    if "cases" in old and "fixed_truth" not in old:  # layout before the calibrated mode: all fixed truth
        cases = old.pop("cases")
        return {"fixed_truth": {"label": FIXED_LABEL, **old, "cases": cases}}
    return old


def _versions() -> dict:
    import importlib.metadata as md

    return {k: md.version(k) for k in ("pymc", "pytensor", "nutpie", "numpy")} | {"python": platform.python_version()}


def _check_summary(cases: dict) -> dict:
    """Pooled view of a calibrated run: how many coverages are within 3 MCSE of nominal
    (about 0.27 % of independent checks fall outside by chance) and SBC uniformity."""
    checks = [(c, p, lv, v) for c, r in cases.items() for p, x in r["parameters"].items() for lv, v in x["coverage"].items()]
    off = [f"{c}: {p} {lv} = {v['coverage']:.3f} (z {v['z']:+.1f})" for c, p, lv, v in checks if not v["within_3_mcse"]]
    sbc = [(c, p, x["sbc"]) for c, r in cases.items() for p, x in r["parameters"].items()]
    return {"coverage_checks": len(checks), "within_3_mcse": len(checks) - len(off), "outside_3_mcse": off,
            "expected_outside_by_chance": round(len(checks) * 0.0027, 2),
            "sbc_parameters": len(sbc), "sbc_uniform_at_alpha": sum(u["uniform_at_alpha"] for *_, u in sbc),
            "sbc_not_uniform": [f"{c}: {p} (chi-square p {u['chisq_p']:.3g}, KS p {u['ks_p']:.3g})"
                                for c, p, u in sbc if not u["uniform_at_alpha"]]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("fixed", "calibrated", "both"), default="both")
    ap.add_argument("--reps", type=int, default=None, help="replicates per case (default: fixed 150, calibrated 200)")
    ap.add_argument("--models", default=None,
                    help="comma-separated case names, or 'all' (default: every case of the mode except joint3_pairs_cal)")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    out = Path(a.out)
    res = _load_results(out)
    res["generated_by"] = "benchmarks/recovery_issue5.py"
    res["modes"] = {"fixed_truth": FIXED_LABEL, "calibrated": CAL_LABEL}
    modes = ("fixed", "calibrated") if a.mode == "both" else (a.mode,)
    for mode in modes:
        table = CASES if mode == "fixed" else CAL_CASES
        default = list(CASES) if mode == "fixed" else CAL_DEFAULT
        names = default if not a.models else list(table) if a.models == "all" else a.models.split(",")
        names = [n for n in names if n in table]
        if not names:
            continue
        reps = a.reps or (150 if mode == "fixed" else 200)
        key = "fixed_truth" if mode == "fixed" else "calibrated"
        # a run of every default case replaces the section; a run of some cases updates them
        sec = {} if set(default) <= set(names) else res.get(key, {})
        sec.update({"label": FIXED_LABEL if mode == "fixed" else CAL_LABEL, "generated_by": "benchmarks/recovery_issue5.py",
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": _versions(), "levels": list(LEVELS)})
        sec.setdefault("cases", {})
        t0 = time.perf_counter()
        run = {"date": sec["date"], "models": names, "wall_seconds": 0.0}
        sec.setdefault("runs", []).append(run)
        for name in names:
            print(f"== [{key}] {name}", flush=True)
            t_case = time.perf_counter()
            if mode == "fixed":
                r = run_case(CASES[name](), reps, a.seed, a.draws, a.tune, a.chains, verbose=True)
                for p, v in r["parameters"].items():
                    print(f"   {p:40s} truth {v['truth']:+.2f}  coverage " + "  ".join(f"{k} {x:.2f}" for k, x in v["coverage"].items()))
            else:
                case = CAL_CASES[name]()
                sam = {"draws": a.draws, "tune": a.tune} | case.sampler
                r = run_calibrated(case, a.reps or case.reps or reps, a.seed, sam["draws"], sam["tune"], a.chains, verbose=True)
                for p, v in r["parameters"].items():
                    cov = "  ".join(f"{k} {x['coverage']:.3f}{'' if x['within_3_mcse'] else '*'}" for k, x in v["coverage"].items())
                    print(f"   {p:40s} {cov}   SBC chi2 p {v['sbc']['chisq_p']:.3f} KS p {v['sbc']['ks_p']:.3f}")
                print(f"   prior cross-check: Bonferroni min p {r['prior_crosscheck']['bonferroni_min_p']:.3f}; "
                      f"divergences {r['divergences_total']} in {r['replicates_with_divergences']} reps", flush=True)
            r["wall_seconds"] = round(time.perf_counter() - t_case, 1)
            sec["cases"][name] = r
            run["wall_seconds"] = round(time.perf_counter() - t0, 1)
            # a section may be filled by several invocations (e.g. the opt-in case later): the sum of their times
            sec["wall_seconds"] = round(sum(x["wall_seconds"] for x in sec["runs"]), 1)
            if mode == "calibrated":
                sec["summary"] = _check_summary(sec["cases"])
            res[key] = sec
            _write(res, out)  # after every case, so that an interrupted run keeps the finished cases
        if mode == "calibrated":
            print(json.dumps(sec["summary"], indent=1))
    print(f"wrote {out}")
    return 0


def _write(res: dict, out: Path) -> None:
    order = ["generated_by", "modes", "fixed_truth", "calibrated"]
    res = {k: res[k] for k in order if k in res} | {k: v for k, v in res.items() if k not in order}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_dumps(res) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
