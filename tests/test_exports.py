"""What a fit exports for ArviZ users: the InferenceData written as a run's ``idata.nc``.

* ``az.loo`` on the written file scores the per-study log-likelihood that ``bayesln check``
  scores (reference: :func:`bayesln.checks.loo.study_loo` on the run rebuilt from its
  folder, as ``bayesln check`` does, and an independent recomputation of the integrated
  log-likelihood from the stored posterior);
* the derived variables equal their definitions draw by draw (references: the formulas,
  the summary's predictive OR and the comparison table's RR functions);
* the exported variable names are exactly the documented ones
  (``bayesln.hierarchy.fit.CORE_EXPORT``, ``bayesln.hierarchy.joint.JOINT_EXPORT``);
* importing bayesln changes no ArviZ setting (reference: ArviZ's own state before the
  import, in a fresh interpreter).

MCMC is tiny (2 chains x 200 draws after 200 tuning steps) and marked slow.
"""

from __future__ import annotations

import copy
import functools
import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import bayesln
from bayesln import _arviz

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(draws=200, tune=200, chains=2)


# --------------------------------------------------------------------------- ArviZ settings
_PROBE = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import arviz as az
def state():
    rc = {k: repr(v) for k, v in az.rcParams.items()}
    return {"numba_flag": bool(az.Numba.numba_flag), "rc": rc}
want = sys.argv[1]
if want == "on":
    az.Numba.enable_numba()
elif want == "off":
    az.Numba.disable_numba()
before = state()
import bayesln, bayesln._arviz, bayesln.hierarchy, bayesln.hierarchy.fit, bayesln.checks, bayesln.analysis, bayesln.cli
after_import = state()
# one of bayesln's own ArviZ calls: runs with ArviZ's NumPy code, then puts the flag back
import numpy as np, xarray as xr
seen = []
orig = az.ess
def spy(*a, **k):
    seen.append(bool(az.Numba.numba_flag))
    return orig(*a, **k)
az.ess = spy
ds = xr.Dataset({"x": (("chain", "draw"), np.random.default_rng(1).normal(size=(2, 50)))})
bayesln._arviz.ess(ds)
after_call = state()
print(json.dumps({"before": before, "after_import": after_import, "after_call": after_call, "seen": seen}))
"""


@pytest.mark.parametrize("flag", ["on", "off"])
def test_import_leaves_arviz_settings_unchanged(flag):
    """In a fresh interpreter, ArviZ's Numba flag (set on or off first) and every rcParam are
    the same before and after importing bayesln and its modules, and after one of bayesln's
    ArviZ calls; inside that call the flag was off (bayesln's NumPy choice)."""
    pytest.importorskip("numba")  # ArviZ refuses enable_numba() without it
    out = subprocess.run([sys.executable, "-c", _PROBE, flag], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["before"]["numba_flag"] is (flag == "on")
    assert r["after_import"] == r["before"]
    assert r["after_call"] == r["before"]
    assert r["seen"] == [False]


def test_numpy_kernels_restores_the_flag_on_error_and_nests():
    az = _arviz.az
    before = az.Numba.numba_flag
    try:
        for start in (True, False):
            az.Numba.numba_flag = start
            with pytest.raises(RuntimeError):
                with _arviz.numpy_kernels():
                    with _arviz.numpy_kernels():
                        assert az.Numba.numba_flag is False
                    assert az.Numba.numba_flag is False
                    raise RuntimeError("boom")
            assert az.Numba.numba_flag is start
    finally:
        az.Numba.numba_flag = before


# --------------------------------------------------------------------------- ArviZ's choice
def test_arviz_loo_refuses_to_choose_between_several_log_likelihoods():
    """Why log_likelihood holds one variable: ArviZ 0.2x does not pick one of several
    when var_name is not given (arviz.stats.stats_utils.get_log_likelihood raises)."""
    rng = np.random.default_rng(0)
    post = xr.Dataset({"d": (("chain", "draw"), rng.normal(size=(2, 100)))})
    ll = xr.Dataset({"a": (("chain", "draw", "study"), -rng.random((2, 100, 3))),
                     "b": (("chain", "draw", "study"), -rng.random((2, 100, 3)))})
    idata = _arviz.make_inference_data({"posterior": post, "log_likelihood": ll})
    with pytest.raises(TypeError, match="several log likelihood"):
        _arviz.loo(idata)
    one = _arviz.make_inference_data({"posterior": post, "log_likelihood": ll[["a"]]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert float(_arviz.loo(one).elpd_loo) == pytest.approx(float(_arviz.loo(idata, var_name="a").elpd_loo), abs=0)


# --------------------------------------------------------------------------- lazy values
_CALLS: list[int] = []


def _values(shape, seed):
    _CALLS.append(1)
    return -np.random.default_rng(seed).random(shape)


def test_lazy_dataarray_computes_once_on_first_read(tmp_path):
    """The values appear when read (not when built, shown or copied), once; they survive
    NetCDF (h5netcdf), pickle (standard library) and deepcopy. Reference: the function's
    own output."""
    _CALLS.clear()
    shape = (2, 5, 3)
    coords = {"chain": np.arange(2), "draw": np.arange(5), "study": ["a", "b", "c"]}
    da = _arviz.lazy_dataarray(("chain", "draw", "study"), coords, functools.partial(_values, shape, 7),
                               attrs={"inner": 3})
    ds = xr.Dataset({"v": da}).assign_coords(outcome="x")
    repr(ds)
    copy.deepcopy(ds)
    assert _CALLS == []
    want = _values(shape, 7)
    _CALLS.clear()
    assert np.array_equal(ds["v"].values, want) and ds["v"].attrs["inner"] == 3
    assert np.array_equal(ds["v"].sel(study="b").values, want[:, :, 1])
    assert _CALLS == [1]
    again = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(again["v"].values, want)
    idata = _arviz.make_inference_data({"posterior": xr.Dataset({"d": (("chain", "draw"), np.zeros((2, 5)))}),
                                        "log_likelihood": ds})
    _arviz.to_netcdf(idata, tmp_path / "x.nc")
    back = _arviz.from_netcdf(tmp_path / "x.nc")
    assert np.array_equal(back.log_likelihood["v"].values, want)
    assert _CALLS == [1]


def test_lazy_dataarray_refuses_a_wrong_shape():
    da = _arviz.lazy_dataarray(("chain", "draw"), {"chain": [0], "draw": [0, 1]}, functools.partial(_values, (3, 3), 1))
    with pytest.raises(ValueError, match="expected shape"):
        da.values  # noqa: B018


# --------------------------------------------------------------------------- exported names
def test_assemble_idata_keeps_only_documented_variables():
    """Without MCMC: a fake posterior with PyMC's scalar building blocks (beta_raw_0) and a
    stray variable goes in; only the documented names come out."""
    from bayesln.hierarchy.design import build_design
    from bayesln.hierarchy.fit import CORE_EXPORT, assemble_idata, exported_names

    td = bayesln.load_dataset("tacrolimus_ln").select(phases="induction", designs="rct")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        des = build_design(td, "total_response", treat=("tac",), warn=False)
    rng = np.random.default_rng(3)
    C, D = 2, 10
    dims = {"chain": np.arange(C), "draw": np.arange(D), "study": des.study_ids, "arm": des.arm_ids}
    post = xr.Dataset({
        "mu": (("chain", "draw", "study"), rng.normal(size=(C, D, des.n_studies))),
        "d": (("chain", "draw"), rng.normal(size=(C, D))),
        "beta_raw_0": (("chain", "draw"), rng.normal(size=(C, D))),
        "something_else": (("chain", "draw"), rng.normal(size=(C, D))),
        "eta": (("chain", "draw", "arm"), rng.normal(size=(C, D, des.n_arms))),
    }, coords=dims)
    idata = assemble_idata(des, post, None, seed=1)
    names = exported_names(idata)
    assert names["posterior"] == {"mu", "d", "eta"}
    assert names["log_likelihood_conditional"] == {"study_loglik"}
    for g, vs in names.items():
        assert vs <= set(CORE_EXPORT[g]), (g, vs - set(CORE_EXPORT[g]))


# --------------------------------------------------------------------------- MCMC
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The main analysis (models/total_response.toml) with tiny sampler settings, written
    as a run folder by bayesln's own writer, as ``bayesln fit`` does."""
    from bayesln.analysis import run_analysis, save_analysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = run_analysis(ROOT / "models" / "total_response.toml", **TINY, seed=20261122)
        path = save_analysis(analysis, tmp_path_factory.mktemp("runs"), figures=False)
    return analysis, Path(path)


@pytest.fixture(scope="module")
def checked(run):
    """The fit rebuilt from the run folder exactly as ``bayesln check`` does."""
    from bayesln.checks.command import fit_from_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result, td, _loaded, _ = fit_from_run(run[1])
    return result, td


def _az_loo(idata, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k warnings of a tiny run
        return _arviz.az.loo(idata, **kw)


@pytest.mark.slow
def test_az_loo_on_the_written_file_equals_bayesln_check(run, checked):
    """``az.loo`` on idata.nc read back by ArviZ scores the same draws as bayesln check's
    leave-one-study-out: equal elpd and Pareto k (to 1e-9) with the same relative
    efficiency (check: 1.0; ``reff="arviz"``: ArviZ's own default)."""
    from bayesln.checks.loo import study_loo

    result, _ = checked
    idata = _arviz.az.from_netcdf(str(run[1] / "idata.nc"), engine="h5netcdf")
    assert list(idata.log_likelihood.data_vars) == ["study_integrated"]
    ours = study_loo(result, refit="none", reff=1.0)
    theirs = _az_loo(idata, reff=1.0, pointwise=True)
    assert float(theirs.elpd_loo) == pytest.approx(ours.elpd, abs=1e-9)
    assert np.allclose(theirs.pareto_k.values, ours.pointwise["pareto_k"].to_numpy(), atol=1e-9)
    assert np.allclose(theirs.loo_i.values, ours.pointwise["elpd_psis"].to_numpy(), atol=1e-9)
    default = _az_loo(idata, pointwise=True)  # no var_name, no reff: ArviZ's defaults
    same_reff = study_loo(result, refit="none")  # bayesln check's default: ArviZ's relative efficiency
    assert float(default.elpd_loo) == pytest.approx(same_reff.elpd, abs=1e-9)
    assert np.allclose(default.pareto_k.values, same_reff.pointwise["pareto_k"].to_numpy(), atol=1e-9)
    # the FitResult's own loo is the same computation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        own = result.loo()
    assert float(own.elpd_loo) == pytest.approx(float(default.elpd_loo), abs=1e-12)


@pytest.mark.slow
def test_exported_loglik_is_the_integration_seeded_by_the_fit(run, checked):
    """The stored values equal a fresh integration of the stored posterior with the fit's
    seed (bayesln.checks.marginal; no shortcut through the stored values), and differ with
    another seed: the integration is deterministic given the fit's seed."""
    from bayesln.checks.marginal import integrated_study_loglik

    result, _ = checked
    stored = np.asarray(result.idata.log_likelihood["study_integrated"].values).reshape(-1, len(result.design.study_ids))
    studies, fresh = integrated_study_loglik(result)
    assert studies == [str(s) for s in result.idata.log_likelihood["study"].values]
    assert np.array_equal(stored, fresh)
    in_memory = np.asarray(run[0].result.idata.log_likelihood["study_integrated"].values).reshape(stored.shape)
    assert np.array_equal(in_memory, stored)
    _, other = integrated_study_loglik(result, seed=result.seed + 1)
    assert not np.array_equal(other, fresh)
    assert np.allclose(other, fresh, atol=0.5)  # the same quantity, other Monte-Carlo noise


@pytest.mark.slow
def test_derived_variables_equal_their_definitions(run, checked):
    """or = exp(d); or_new = exp(d + tau e) with the summary's generator (so its median is
    the summary's predictive OR); rr / rr_pooled_baseline = the comparison table's RR draws
    (bayesln.checks.compare.bayesian_rr_draws on the data's own contrast table), whose
    medians are the comparison table's estimates."""
    from bayesln.checks.compare import bayesian_rr_draws

    analysis, path = run
    result, td = checked
    idata = _arviz.az.from_netcdf(str(path / "idata.nc"), engine="h5netcdf")
    post, der = idata.posterior, idata.posterior_derived
    assert set(der.data_vars) == {"or", "or_new", "rr", "rr_pooled_baseline"}
    for v in der.data_vars.values():
        assert v.dims == ("chain", "draw") and v.attrs["description"]
    d, tau = post["d"].values, post["tau"].values
    assert np.array_equal(der["or"].values, np.exp(d))
    e = np.random.default_rng([int(result.seed), 20240611]).standard_normal(d.size).reshape(d.shape)
    assert np.allclose(der["or_new"].values, np.exp(d + tau * e), rtol=1e-12, atol=0)
    s = analysis.result.summary()
    assert s.loc["predictive OR (new study)", "median"] == pytest.approx(float(np.median(der["or_new"].values)),
                                                                         rel=1e-12)
    contrasts = td.contrasts("total_response", treat=("tac",))
    rr = bayesian_rr_draws(result, contrasts)
    assert np.allclose(der["rr"].values.reshape(-1), rr["bayes_marginal"], rtol=1e-12, atol=0)
    assert np.allclose(der["rr_pooled_baseline"].values.reshape(-1), rr["bayes_pooled_baseline"], rtol=1e-12, atol=0)
    comp = analysis.comparison
    row = comp[(comp["subgroup"] == "all") & (comp["method"] == "binomial_normal_bayes_marginal")].iloc[0]
    assert row["estimate"] == pytest.approx(float(np.median(der["rr"].values)), rel=1e-9)


@pytest.mark.slow
def test_core_export_has_exactly_the_documented_names(run):
    """The main analysis (independent baselines, non-centred random effects): the
    documented names of CORE_EXPORT that apply to this model, and no other."""
    from bayesln.hierarchy.fit import CORE_EXPORT, exported_names

    idata = _arviz.az.from_netcdf(str(run[1] / "idata.nc"), engine="h5netcdf")
    names = exported_names(idata)
    assert names.pop("sample_stats")  # the sampler's own statistics, not listed
    assert names == {
        "posterior": {"mu", "d", "tau", "z", "delta", "eta"},
        "posterior_derived": {"or", "or_new", "rr", "rr_pooled_baseline"},
        "log_likelihood": {"study_integrated"},
        "log_likelihood_conditional": {"study_loglik"},
        "posterior_predictive": {"events"},
        "prior": {"mu", "d", "tau", "z", "delta", "eta"},
        "prior_predictive": {"events"},
        "observed_data": {"events"},
        "constant_data": {"n", "treated", "arm_study"},
    }
    for g, vs in names.items():
        assert vs <= set(CORE_EXPORT[g])
        for v in vs:  # the documented dims
            assert getattr(idata, g)[v].dims == CORE_EXPORT[g][v][0], (g, v)
    # no coordinate that no variable uses
    for g in idata.groups():
        ds = getattr(idata, g)
        used = {d for v in ds.data_vars.values() for d in v.dims}
        assert {c for c in ds.coords if c in ds.dims} <= used | {"chain", "draw"}, g


@pytest.mark.slow
def test_core_export_drops_pymc_building_blocks():
    """Exchangeable non-centred baselines, centred effects and two effect modifiers whose
    priors are of different families (PyMC samples beta_raw_0 / beta_raw_1 and stacks them):
    only documented names are exported."""
    from bayesln.hierarchy import fit_core
    from bayesln.hierarchy.fit import CORE_EXPORT, exported_names

    td = bayesln.load_dataset("tacrolimus_ln")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_core(td, "total_response", baseline="exchangeable", effect_modifiers=("regimen", "phase"),
                       parameterization="centered", baseline_parameterization="noncentered",
                       priors={"beta_overrides": {"regimen:triple": "student_t(3, 0, 1)"}}, seed=5, progressbar=False,
                       **TINY)
    names = exported_names(res.idata)
    want = {"m", "sigma_mu", "mu_raw", "mu", "d", "tau", "delta", "beta", "eta"}
    assert names["posterior"] == want and names["prior"] == want
    assert names["constant_data"] == {"n", "treated", "arm_study", "X_effect"}
    assert list(res.idata.posterior["beta"]["covariate"].values) == list(res.design.effect_names)
    for g, vs in names.items():
        if g != "sample_stats":
            assert vs <= set(CORE_EXPORT[g]), (g, vs - set(CORE_EXPORT[g]))
    assert res.status in ("ok", "failed_gate")  # tiny run: the gate is not this test's subject


@pytest.fixture(scope="module")
def joint_fit():
    from bayesln.hierarchy.joint import fit_joint

    td = bayesln.load_dataset("tacrolimus_ln")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_joint(td, ("total_response", "severe_infection"), seed=11, progressbar=False, **TINY)


@pytest.mark.slow
def test_joint_export_names_and_loo(joint_fit, tmp_path):
    """Joint family: no tau_0 / tau_1 / cpc (nor their coordinate), the documented names
    only; az.loo on the written file equals study_loo (integrated, joint) with reff 1."""
    from bayesln.checks.loo import study_loo
    from bayesln.hierarchy.fit import exported_names
    from bayesln.hierarchy.joint import JOINT_EXPORT

    res = joint_fit
    res.to_netcdf(tmp_path / "joint.nc")
    idata = _arviz.az.from_netcdf(str(tmp_path / "joint.nc"), engine="h5netcdf")
    names = exported_names(idata)
    names.pop("sample_stats")
    post = {"mu", "d", "tau", "rho", "z", "delta"}
    assert names == {
        "posterior": post, "prior": post,
        "posterior_derived": {"or", "or_new"},
        "log_likelihood": {"study_integrated"},
        "log_likelihood_conditional": {"study_loglik"},
        "posterior_predictive": {"y"}, "prior_predictive": {"y"}, "observed_data": {"y"},
        "constant_data": {"n", "treated", "row_study", "row_outcome"},
    }
    for g, vs in names.items():
        for v in vs:
            assert getattr(idata, g)[v].dims == JOINT_EXPORT[g][v][0], (g, v)
    assert "cpc_pair" not in idata.posterior.coords
    ours = study_loo(res, refit="none", reff=1.0)
    theirs = _az_loo(idata, reff=1.0, pointwise=True)
    assert float(theirs.elpd_loo) == pytest.approx(ours.elpd, abs=1e-9)
    assert np.allclose(theirs.pareto_k.values, ours.pointwise["pareto_k"].to_numpy(), atol=1e-9)
    # derived: or = exp(d); or_new = the summary's new-study draws
    d = idata.posterior["d"]
    assert np.array_equal(idata.posterior_derived["or"].transpose(*d.dims).values, np.exp(d.values))
    pred, outcomes = res.tradeoff_draws(predictive=True)
    assert list(idata.posterior_derived["outcome"].values) == outcomes
    assert np.allclose(idata.posterior_derived["or_new"].values.reshape(-1, len(outcomes)), np.exp(pred), rtol=1e-12)
