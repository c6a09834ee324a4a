"""The core model against the pinned brms reference (validation/fixtures/brms_core.json,
produced by validation/brms/reference_core.R: brms 2.18 / Stan 2.21, 4 x 5000 draws).

Same model and priors: events | trials(n) ~ 0 + study + treat + (0 + treat | study),
normal(0, 2.5) on the study intercepts and treat, half-normal(0.5) on the SD. The
posterior median and the 2.5% / 97.5% quantiles of d and tau must agree within
4 x the combined Monte-Carlo standard error, sqrt(mcse_brms^2 + mcse_bayesln^2), where
the brms MCSE is posterior::mcse_quantile (in the fixture) and the bayesln MCSE is
ArviZ's quantile MCSE (same definition, Vehtari et al. 2021).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesln import _arviz
from bayesln.hierarchy import fit_core

from _mcmc import SANITY_GATE, assert_sane

FIXTURE = Path(__file__).resolve().parents[1] / "validation" / "fixtures" / "brms_core.json"
QUANTILES = {"q2.5": 0.025, "q50": 0.5, "q97.5": 0.975}
K_MCSE = 4.0

pytestmark = [pytest.mark.slow, pytest.mark.r_reference]


@pytest.fixture(scope="module")
def fixture():
    if not FIXTURE.exists():
        pytest.skip(f"{FIXTURE} not generated yet (Rscript validation/brms/reference_core.R)")
    return json.loads(FIXTURE.read_text())


def arm_table(data: dict) -> pd.DataFrame:
    df = pd.DataFrame(data)
    # treat = 1 rows are the "treated" arm (TAC or BCG vaccine); every other arm keeps
    # its own label as treatment and shares the study's baseline.
    df["treatment"] = np.where(df["treat"] == 1, "treated", df["arm"].str.lower())
    df["arm"] = df["arm"].str.lower()
    return df[["study", "arm", "treatment", "events", "n"]]


@pytest.mark.parametrize("name", ["total_response", "bcg", "complete_response", "complete_response_zeros"])
def test_core_matches_brms(fixture, name):
    ref = fixture["datasets"][name]
    df = arm_table(ref["data"])
    # the agreement within MCSE is the test; the fit is held to the sanity bounds of
    # tests/_mcmc.py, not to one CPU's trajectory through the strict gate
    res = fit_core(
        df, name, treat=("treated",), direction="benefit", seed=20240611,
        draws=2500, tune=1000, chains=4, prior_predictive=False, gate=SANITY_GATE,
    )
    assert_sane(res)
    assert len(res.design.study_ids) == ref["n_studies"] and res.design.n_arms == ref["n_arms"]
    post = res.idata.posterior
    report = []
    for par in ("d", "tau"):
        draws = res.draws(par)
        for key, prob in QUANTILES.items():
            ours = float(np.quantile(draws, prob))  # numpy "linear" = R quantile type 7
            mcse_ours = float(_arviz.mcse(post[[par]], method="quantile", prob=prob)[par])
            theirs = ref[par]["quantiles"][key]
            mcse_theirs = ref[par]["mcse_quantiles"][key]
            tol = K_MCSE * np.hypot(mcse_ours, mcse_theirs)
            report.append((par, key, ours, theirs, abs(ours - theirs), tol))
    bad = [r for r in report if r[4] > r[5]]
    assert not bad, "\n".join(f"{p} {k}: bayesln {o:.4f} brms {t:.4f} |diff| {d:.4f} > tol {tol:.4f}" for p, k, o, t, d, tol in bad)


# The brms fixtures were fitted on arm rows copied into validation/brms/reference_core.R;
# this ties them to the bundled data (as the shipped specs select it), so a change to the
# bundled counts cannot leave the brms comparison silently testing old numbers.
@pytest.mark.parametrize("name", ["total_response", "complete_response"])
def test_brms_fixture_data_are_the_bundled_data(fixture, name):
    import bayesln
    from bayesln.analysis import select_for_spec
    from bayesln.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[1] / "models" / f"{name}.toml")
    td = select_for_spec(bayesln.load_dataset("tacrolimus_ln"), spec)
    from bayesln.hierarchy import build_design

    design = build_design(td, name, treat=tuple(spec.model.treat))  # the arms the core model uses
    bundled = {(a.split(":")[0], a.split(":")[1].lower()): (int(e), int(n))
               for a, e, n in zip(design.arm_ids, design.events, design.n)}
    ref = pd.DataFrame(fixture["datasets"][name]["data"])
    pinned = {(r.study, r.arm.lower()): (int(r.events), int(r.n)) for r in ref.itertuples()}
    assert pinned == bundled
