"""Evidence-informed (robust MAP) priors for effect modifiers (bayesln.predict.informed)
and the bundled external evidence (data/external_ln, bayesln.data.external).

References, independent of the code under test:
* log odds ratios and their Woolf variances written out by hand from the counts quoted in
  evidence.csv's notes (ALMS Table 3: class V 16/29 vs 15/31, class III/IV 88/156 vs
  83/154; AURORA 1: 73/179 vs 40/178 overall, Black subgroup 12/26 vs 3/19);
* the meta-analytic-predictive distribution computed here with scipy.integrate.quad over
  the between-source SD (adaptive quadrature; the code uses a fixed grid), and its
  closed form with one source: mean y, variance s^2 + 2 E[omega^2];
* the two-component mixture's moments in closed form, its CDF from scipy.stats.norm.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import bayesln
from bayesln.data.external import load_external_evidence
from bayesln.hierarchy.priors import Prior, Priors
from bayesln.predict.informed import informed_prior, map_predictive, modifier_estimate
from bayesln.predict.priors import prior_mean, prior_quantile, prior_sd

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ev():
    return load_external_evidence()


def _woolf(a, n1, c, n2):
    return math.log(a / (n1 - a)) - math.log(c / (n2 - c)), 1 / a + 1 / (n1 - a) + 1 / c + 1 / (n2 - c)


# ------------------------------------------------------------------------- the bundle
def test_bundle_is_never_trial_data(ev):
    assert "external_ln" not in bayesln.list_datasets()
    assert bayesln.list_datasets(external=True) == ["external_ln"]
    with pytest.raises(ValueError, match="never pooled as TAC"):
        bayesln.load_dataset("external_ln")
    # every row names its drug and design; the other drugs are there, labelled as such
    assert set(ev.table["treatment"]) >= {"voclosporin", "mmf", "ivcy", "csa", "placebo", "tac"}
    assert set(ev.table["design"]) <= {"rct", "rct_subgroup", "cohort", "case_series", "single_arm"}
    assert "not TAC trial data" in repr(ev)


def test_blank_is_unknown_and_counts_are_the_quoted_numbers(ev):
    alms = ev.rows("alms_classV").set_index("arm")
    assert int(alms.loc["mmf", "total_response"]) == 16 and int(alms.loc["mmf", "n_analysed"]) == 29
    assert pd.isna(alms.loc["mmf", "complete_response"])  # not reported: blank, never 0
    # every count is a number of its row's notes, or a worded count of datapackage.json
    from bayesln.data.external import COUNT_COLUMNS, datapackage

    worded = {(w["study"], w["treatment"], w["column"]) for w in datapackage()["worded_counts"]}
    for _, r in ev.table.iterrows():
        numbers = set(re.findall(r"(?<![0-9.])[0-9]+(?![0-9])", r["notes"]))
        for c in COUNT_COLUMNS:
            if pd.notna(r[c]) and (r["study"], r["treatment"], c) not in worded:
                assert str(int(r[c])) in numbers, (r["study"], r["arm"], c)
        assert r["source_id"] in set(ev.sources["source_id"])


def test_build_refuses_an_untraceable_count():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_external_ln", ROOT / "scripts" / "build_external_ln.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    row = {c: "" for c in mod.COUNT_COLUMNS}
    row.update(study_id="x", treatment="tac", notes='Read: "12 of 30 responded"', total_response="12",
               n_analysed="30")
    assert mod.check_traceable([row]) == []
    row["total_response"] = "13"
    assert any("not a number of the row's notes" in p for p in mod.check_traceable([row]))


#: the sheet beside the checkout, else its byte-for-byte snapshot (validation/evidence/README.md)
SHEET = next(p for p in (ROOT.parent / "shared" / "evidence", ROOT / "validation" / "evidence")
             if (p / "external_candidates.csv").is_file())


def test_bundle_equals_the_evidence_sheet(ev):
    sheet = pd.read_csv(SHEET / "external_candidates.csv", dtype=str, keep_default_na=False)
    assert list(sheet["study_id"]) == list(ev.table["study"])
    for c in ("total_response", "complete_response", "n_analysed", "treatment", "design", "notes"):
        got = ["" if pd.isna(v) else str(v) for v in ev.table[c]]
        want = [v if v == "" or c in ("treatment", "design", "notes") else str(int(float(v))) for v in sheet[c]]
        assert got == want, c


def test_rebuild_from_the_sheet_gives_the_bundled_files(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_external_ln", ROOT / "scripts" / "build_external_ln.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "external_ln"
    mod.build(SHEET, out)
    for f in ("evidence.csv", "sources.csv", "datapackage.json"):
        assert (out / f).read_bytes() == (ROOT / "data" / "external_ln" / f).read_bytes(), f


def test_bad_evidence_files_are_refused_with_file_row_and_column(tmp_path, ev):
    from bayesln.data.validate import DataValidationError

    folder = tmp_path / "mine"
    folder.mkdir()
    t = ev.table.astype(object).where(ev.table.notna(), "")
    t.loc[3, "total_response"] = "2.5"
    t.to_csv(folder / "evidence.csv", index=False)
    ev.sources.to_csv(folder / "sources.csv", index=False)
    with pytest.raises(DataValidationError) as e:
        load_external_evidence(path=folder)
    msg = str(e.value)
    assert "mine/evidence.csv" in msg and "total_response" in msg and "2.5" in msg and "5" in msg  # line 5


# ------------------------------------------------------------------------- contrasts
def test_alms_class_contrast_is_the_hand_computed_ratio_of_odds_ratios(ev):
    (con,) = ev.contrasts_for("class_v_fraction")
    est = modifier_estimate(ev, con)
    ya, va = _woolf(16, 29, 15, 31)
    yb, vb = _woolf(88, 156, 83, 154)
    assert (est.x_a, est.x_b) == (1.0, 0.0)  # read from the rows' class_v_fraction
    assert est.estimate == pytest.approx(ya - yb, rel=1e-12)
    assert est.se == pytest.approx(math.sqrt(va + vb), rel=1e-12)


def test_complement_subgroup_is_the_trial_minus_the_subgroup(ev):
    (con,) = ev.contrasts_for("asian_fraction")
    est = modifier_estimate(ev, con)
    black = _woolf(12, 26, 3, 19)
    rest = _woolf(73 - 12, 179 - 26, 40 - 3, 178 - 19)
    # x = 0 for the Black subgroup, 1 for the rest: per unit = (black - rest) / (0 - 1)
    assert est.estimate == pytest.approx(-(black[0] - rest[0]), rel=1e-12)
    assert est.se == pytest.approx(math.sqrt(black[1] + rest[1]), rel=1e-12)
    derived = est.arms[est.arms["derived"] != ""]
    assert sorted(derived[["events", "n"]].itertuples(index=False, name=None)) == [(37, 159), (61, 153)]


# ------------------------------------------------------------------------------ MAP
def _map_by_quad(y, s, scale):
    """Predictive mean / SD with omega ~ HalfNormal(scale), flat prior on the mean, by
    adaptive quadrature (independent of the grid in the code)."""
    y, s = np.asarray(y, float), np.asarray(s, float)

    def parts(om):
        w = 1 / (s**2 + om**2)
        V = 1 / w.sum()
        m = V * (w * y).sum()
        ll = 0.5 * math.log(V) - 0.5 * np.log(s**2 + om**2).sum() - 0.5 * (w * (y - m) ** 2).sum()
        return stats.halfnorm(scale=scale).pdf(om) * math.exp(ll), m, V + om**2

    hi = 12 * scale
    z = integrate.quad(lambda o: parts(o)[0], 0, hi, epsabs=0, epsrel=1e-11, limit=400)[0]
    m1 = integrate.quad(lambda o: parts(o)[0] * parts(o)[1], 0, hi, epsabs=0, epsrel=1e-11, limit=400)[0] / z
    m2 = integrate.quad(lambda o: parts(o)[0] * (parts(o)[2] + parts(o)[1] ** 2), 0, hi, epsabs=0, epsrel=1e-11,
                        limit=400)[0] / z
    return m1, math.sqrt(m2 - m1**2)


@pytest.mark.parametrize("y,s,scale", [([0.7], [0.8], 0.5), ([0.2, -0.4, 0.9], [0.3, 0.5, 0.4], 0.5),
                                       ([1.1, 0.9, 1.3, 0.2], [0.2, 0.25, 0.3, 0.6], 0.25)])
def test_map_matches_adaptive_quadrature(y, s, scale):
    got = map_predictive(y, s, heterogeneity=f"half_normal({scale})")
    m, sd = _map_by_quad(y, s, scale)
    assert got["mean"] == pytest.approx(m, abs=1e-6)
    assert got["sd"] == pytest.approx(sd, rel=1e-6)


def test_map_closed_forms():
    # one source: omega is not learned, predictive N(y, s^2 + 2 E[omega^2]); E[omega^2] = scale^2
    got = map_predictive([0.7], [0.8], heterogeneity="half_normal(0.5)")
    assert got["mean"] == pytest.approx(0.7, abs=1e-9)
    assert got["sd"] == pytest.approx(math.sqrt(0.64 + 2 * 0.25), rel=1e-6)
    # no heterogeneity to speak of: the inverse-variance pooled estimate and its SE
    y, s = np.array([0.2, -0.4, 0.9]), np.array([0.3, 0.5, 0.4])
    got = map_predictive(y, s, heterogeneity="half_normal(1e-6)")
    w = 1 / s**2
    assert got["mean"] == pytest.approx((w * y).sum() / w.sum(), abs=1e-6)
    assert got["sd"] == pytest.approx(math.sqrt(1 / w.sum()), rel=1e-5)
    with pytest.raises(ValueError, match="standard error"):
        map_predictive([0.1], [0.0])


# ---------------------------------------------------------------- the robust mixture
def test_robust_normal_prior_moments_and_quantiles():
    p = Prior.parse("robust_normal(0.2, -0.7, 1.0, 0, 0.5)")
    assert prior_mean(p) == pytest.approx(0.8 * -0.7, rel=1e-12)
    second = 0.8 * (1.0 + 0.49) + 0.2 * 0.25
    assert prior_sd(p) == pytest.approx(math.sqrt(second - 0.56**2), rel=1e-12)
    u = np.array([1e-6, 0.025, 0.3, 0.5, 0.9, 0.975, 1 - 1e-6])
    x = prior_quantile(p, u)
    cdf = 0.8 * stats.norm.cdf(x, -0.7, 1.0) + 0.2 * stats.norm.cdf(x, 0, 0.5)
    np.testing.assert_allclose(cdf, u, atol=1e-11)
    # weight 0 / 1: exactly one normal
    np.testing.assert_allclose(prior_quantile(Prior.parse("robust_normal(0, 1, 2, 0, 0.5)"), u),
                               stats.norm.ppf(u, 1, 2), atol=1e-9)
    with pytest.raises(ValueError, match="weight"):
        Prior.parse("robust_normal(1.5, 0, 1, 0, 0.5)")


def test_robust_normal_is_refused_as_a_model_prior():
    with pytest.raises(ValueError):
        Priors(d="robust_normal(0.2, 0, 1, 0, 0.5)")


def test_informed_prior_is_the_robust_map(ev):
    ip = informed_prior("class_v_fraction", ev)
    est = ip.estimates[0]
    m, sd = _map_by_quad([est.estimate], [est.se], 0.5)
    q = ip.prior.params
    assert ip.prior.dist == "robust_normal" and q["weight"] == 0.2
    assert q["mu"] == pytest.approx(m, abs=1e-5) and q["sigma"] == pytest.approx(sd, rel=1e-5)
    assert (q["vague_mu"], q["vague_sigma"]) == (0.0, 0.5)  # the default extrapolation prior
    assert "alms_class" in q["source"]
    text = ip.text()
    assert "16/29" in text and "assumption" in text
    with pytest.raises(ValueError, match="no modifier contrast"):
        informed_prior("pediatric", ev)


# ----------------------------------------------------------------- in a prediction
@pytest.fixture(scope="module")
def exch_fit():
    from bayesln.hierarchy import fit_core

    data = bayesln.load_dataset("tacrolimus_ln").select(phases=["induction"], designs=["rct"])
    return fit_core(data, "total_response", baseline="exchangeable", seed=3, prior_predictive=False)


def test_compare_priors_side_by_side(exch_fit, ev):
    from bayesln.predict import predict
    from bayesln.predict.informed import compare_priors

    if exch_fit.status != "ok":  # the gate is part of the contract; the seed sweep covers this fit
        pytest.skip(f"fit failed its gate on this machine: {exch_fit.diagnostics.problems}")
    c = compare_priors(exch_fit, "non_asian_class_iii_iv", seed=5, evidence=ev)
    assert list(c.priors) == ["asian_fraction"]
    # the default half equals predict() itself; the informed half differs only through the term
    ref = predict(exch_fit, "non_asian_class_iii_iv", seed=5)
    pd.testing.assert_frame_equal(c.default.table(), ref.table())
    d0 = c.default.samples()
    d1 = c.informed.samples()
    np.testing.assert_array_equal(d0["p_comparator"], d1["p_comparator"])  # baseline terms unchanged
    # the log-OR shift is the prior's draw times the distance (-1: Asian 1 -> non-Asian 0)
    shift = d1["log_or"].to_numpy() - d0["log_or"].to_numpy()
    p0, p1 = Prior.parse("normal(0, 0.5)"), c.priors["asian_fraction"].prior
    n = len(shift)
    assert abs(shift.mean() - (-1) * (prior_mean(p1) - prior_mean(p0))) < 4 * math.sqrt(
        (prior_sd(p1) ** 2 + prior_sd(p0) ** 2) / n)
    t = c.table()
    assert set(t["prior_set"]) == {"default", "evidence-informed"}
    assert "12/26" in c.text() and "aurora1 minus aurora1_black" in c.text()
    # a target without an informed covariate: said so, one prediction
    same = compare_priors(exch_fit, "asian_class_iii_iv", seed=5, evidence=ev)
    assert same.informed is None and "the two predictions are the same" in same.text()
