"""Analysis specs (``models/*.toml``): every shipped spec loads, overrides, the hash, CSV
sources relative to the spec file, and the error messages (file, key, allowed values).
No MCMC here.

Reference: the spec format documented in ``bayesln/spec.py`` and the exit-code contract
of the command line (bad input = one paragraph naming file and key).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import bayesln
from bayesln.spec import Spec, SpecError, load_spec, spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
#: TOML files in models/ that are not analysis specs (prediction targets, added later)
NON_SPECS = {"targets.toml"}
SPECS = sorted(p for p in MODELS.glob("*.toml") if p.name not in NON_SPECS)

MINIMAL = """\
[analysis]
name = "mini"

[data]
outcome = "total_response"
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_the_shipped_specs_are_found():
    names = {p.stem for p in SPECS}
    assert {"total_response", "complete_response", "partial_response", "death"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_loads(path):
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    assert raw["analysis"]["name"] == path.stem  # run folder name = file name, by convention
    family = raw.get("model", {}).get("family", "core")
    sp = load_spec(path)
    assert isinstance(sp, Spec)
    assert sp.name == path.stem
    assert sp.data.source == "tacrolimus_ln"
    assert sp.model.family == family
    if family in ("core", "network"):
        assert sp.data.outcome in bayesln.vocab.OUTCOMES
    elif family == "ordinal":
        assert sp.outcome == "renal_response"
    else:
        assert len(sp.data.outcomes) >= 2 and set(sp.data.outcomes) <= set(bayesln.vocab.OUTCOMES)
    assert sp.path == str(path)
    sp.priors_obj()  # the priors validate
    # the canonical form round-trips to the same spec (what a run folder stores)
    again = spec_from_dict(sp.canonical())
    assert again.hash() == sp.hash()


def test_minimal_spec_defaults(tmp_path):
    sp = load_spec(write(tmp_path, MINIMAL))
    assert sp.data.source == "tacrolimus_ln"
    assert sp.model.treat == ["tac"]
    assert sp.model.baseline == "independent"
    # the defaults measured by benchmarks/calibration.py (issue 21): 4 x 2000 at 0.995, retry on
    assert (sp.sampler.draws, sp.sampler.tune, sp.sampler.chains) == (2000, 1000, 4)
    assert sp.sampler.target_accept == 0.995 and sp.sampler.retry is True
    assert sp.model.parameterization == "auto"
    assert sp.data.phases is None and sp.data.exclude_studies == []


# ------------------------------------------------------------------ overrides and hash
def test_with_overrides_replaces_sampler_settings_only():
    sp = load_spec(MODELS / "total_response.toml")
    o = sp.with_overrides(draws=200, tune=100, chains=2, seed=7)
    assert (o.sampler.draws, o.sampler.tune, o.sampler.chains, o.sampler.seed) == (200, 100, 2, 7)
    assert o.sampler.target_accept == sp.sampler.target_accept
    assert o.data == sp.data and o.model == sp.model and o.priors == sp.priors
    assert o.path == sp.path  # CSV sources still resolve relative to the spec file
    # the original is unchanged (specs are frozen): the draws of models/total_response.toml
    assert sp.sampler.draws == 2000


def test_with_overrides_none_is_a_no_op():
    sp = load_spec(MODELS / "total_response.toml")
    assert sp.with_overrides(draws=None, seed=None) is sp
    assert sp.with_overrides(draws=None).hash() == sp.hash()


def test_with_overrides_are_validated():
    sp = load_spec(MODELS / "total_response.toml")
    with pytest.raises(SpecError, match=r"sampler\.chains"):
        sp.with_overrides(chains=0)
    with pytest.raises(SpecError, match=r"sampler\.draws"):
        sp.with_overrides(draws=-5)


def test_hash_is_stable():
    a = load_spec(MODELS / "total_response.toml")
    b = load_spec(MODELS / "total_response.toml")
    assert a.hash() == b.hash()
    assert len(a.hash()) == 64
    # the hash does not depend on where the file lives, only on its content
    c = spec_from_dict(a.canonical(), label="elsewhere")
    assert c.hash() == a.hash()


def test_hash_is_stable_under_formatting(tmp_path):
    """Comments, key order and whitespace do not change the hash."""
    a = load_spec(write(tmp_path, MINIMAL, "a.toml"))
    b = load_spec(write(tmp_path, '# a comment\n[data]\noutcome   =  "total_response"\n\n[analysis]\nname="mini"\n', "b.toml"))
    assert a.hash() == b.hash()


@pytest.mark.parametrize(
    "change",
    [
        {"draws": 999},
        {"seed": 1},
        {"tune": 1001},
        {"chains": 3},
    ],
)
def test_hash_changes_with_the_sampler(change):
    sp = load_spec(MODELS / "total_response.toml")
    assert sp.with_overrides(**change).hash() != sp.hash()


@pytest.mark.parametrize(
    "old,new",
    [
        ('tau = "half_normal(0.5)"', 'tau = "half_normal(0.25)"'),
        ('outcome = "total_response"', 'outcome = "complete_response"'),
        ('treat = ["tac"]', 'treat = ["tac_triple"]'),
        ('designs = ["rct"]', 'designs = ["rct", "cohort"]'),
        ('baseline = "independent"', 'baseline = "exchangeable"'),
    ],
)
def test_hash_changes_with_the_model(tmp_path, old, new):
    text = (MODELS / "total_response.toml").read_text(encoding="utf-8")
    assert old in text
    a = load_spec(write(tmp_path, text, "a.toml"))
    b = load_spec(write(tmp_path, text.replace(old, new), "b.toml"))
    assert a.hash() != b.hash()


# ------------------------------------------------------------------ data sources
def test_csv_source_resolves_relative_to_the_spec_file(tmp_path, monkeypatch):
    sub = tmp_path / "analyses"
    (sub / "data").mkdir(parents=True)
    csv = sub / "data" / "trials.csv"
    csv.write_text(bayesln.load_dataset("tacrolimus_ln").to_csv_text(), encoding="utf-8")
    p = write(sub, MINIMAL.replace("[data]\n", '[data]\nsource = "data/trials.csv"\n'))
    # run from somewhere else: the source must not depend on the working directory
    monkeypatch.chdir(tmp_path)
    sp = load_spec(p)
    src = sp.data_source()
    assert Path(src).is_absolute()
    assert Path(src) == csv.resolve()
    from bayesln.analysis import load_data_source

    td = load_data_source(src)
    assert td.fingerprint() == bayesln.load_dataset("tacrolimus_ln").fingerprint()


def test_absolute_csv_source_and_dataset_names_are_kept(tmp_path):
    csv = tmp_path / "x.csv"
    p = write(tmp_path, MINIMAL.replace("[data]\n", f'[data]\nsource = "{csv.as_posix()}"\n'))
    assert load_spec(p).data_source() == csv.as_posix()
    assert load_spec(MODELS / "total_response.toml").data_source() == "tacrolimus_ln"


# ------------------------------------------------------------------ errors
BASE = (MODELS / "total_response.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "text,needles",
    [
        ("foo = 1\n" + BASE, ["unknown key 'foo'", "top level", "allowed keys", "analysis", "sampler"]),
        (BASE.replace("chains = 4", "chains = 4\nthin = 2"), ["unknown key 'thin'", "[sampler]", "draws", "target_accept"]),
        (BASE.replace("[priors]", '[priors]\nrho = "normal(0, 1)"'), ["unknown key 'rho'", "[priors]", "tau"]),
        (BASE.replace("draws = 2000", 'draws = "many"'), ["sampler.draws", "'many'"]),
        (BASE.replace('outcome = "total_response"', 'outcome = "remission"'), ["data.outcome", "'remission'", "complete_response"]),
        (BASE.replace('baseline = "independent"', 'baseline = "independent"\neffect_modifiers = ["shoe_size"]'),
         ["model.effect_modifiers", "'shoe_size'", "asian_fraction", "regimen"]),
        (BASE.replace("chains = 4", "chains = 0"), ["sampler.chains", "greater than or equal to 1"]),
        (BASE.replace('tau = "half_normal(0.5)"', 'tau = "half_normal(-1)"'), ["priors.tau", "half_normal(-1)", "> 0"]),
        (BASE.replace('tau = "half_normal(0.5)"', 'tau = "gaussian(0,1)"'), ["priors.tau", "'gaussian'", "half_normal"]),
        (BASE.replace('phases = ["induction"]', 'phases = ["remission"]'), ["data.phases", "'remission'", "induction", "maintenance"]),
        (BASE.replace('name = "total_response"', 'name = "../evil"'), ["analysis.name", "'../evil'"]),
        (BASE.replace('[analysis]\nname = "total_response"\n', "[analysis]\n"), ["missing required key 'analysis.name'"]),
        (BASE + "\n[sampler\n", ["not valid TOML", "line"]),
    ],
    ids=["unknown-top", "unknown-section", "unknown-prior", "wrong-type", "outcome", "effect-modifier",
         "zero-chains", "prior-param", "prior-family", "phase", "name", "missing-name", "toml"],
)
def test_errors_name_file_key_and_allowed_values(tmp_path, text, needles):
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    msg = str(ei.value)
    assert msg.startswith(str(p)), msg
    for n in needles:
        assert n in msg, (n, msg)
    assert "\n" not in msg.strip() and "Traceback" not in msg
    assert "Value error," not in msg  # pydantic's prefix is not part of our message


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.toml")
    p = tmp_path / "latin1.toml"
    p.write_bytes("# caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(p)


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


# ------------------------------------------------------------------ model families
def test_the_family_specs_ship():
    """Issue 5: specs for the ordinal, joint and network analyses ship in models/, with the
    family's name in the file name."""
    fams = {load_spec(p).model.family: p.stem for p in SPECS}
    for fam in ("ordinal", "joint", "network"):
        assert fam in fams and fam in fams[fam], fams


def test_family_keys_reach_the_fit_function():
    sp = load_spec(MODELS / "ordinal_response.toml")
    kw = sp.model.family_kwargs()
    assert kw["link"] == "sequential" and kw["cutpoint_specific"] is False and kw["treat"] == ("tac",)
    assert "lkj_eta" not in kw and "reference" not in kw
    assert type(sp.priors_obj()).__name__ == "OrdinalPriors"  # gap / psi priors allowed
    net = load_spec(MODELS / "network_total_response.toml").model.family_kwargs()
    assert net == {"reference": "ivcy", "model": "consistency", "effects": "random", "inconsistency": "node_split",
                   "parameterization": "auto"}  # every family chooses its study effects' form from the data
    joint = load_spec(MODELS / "joint_efficacy_safety.toml")
    assert joint.model.family_kwargs()["lkj_eta"] == 2.0
    assert joint.outcome.startswith("total_response+severe_infection")


ORD = (MODELS / "ordinal_response.toml").read_text(encoding="utf-8")
JOINT = (MODELS / "joint_efficacy_safety.toml").read_text(encoding="utf-8")
NET = (MODELS / "network_total_response.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "text,needles",
    [
        (BASE.replace('baseline = "independent"', 'baseline = "independent"\nlkj_eta = 2.0'),
         ["model.lkj_eta", "not used by family 'core'", "effect_modifiers"]),
        (ORD.replace('link = "sequential"', 'link = "probit"'), ["model.link", "'probit'", "sequential", "cumulative"]),
        (ORD.replace('outcome = "renal_response"', 'outcome = "total_response"'), ["data.outcome", "family 'ordinal'", "renal_response"]),
        (ORD.replace('link = "sequential"', 'link = "sequential"\neffect_modifiers = ["asian_fraction"]'),
         ["model.effect_modifiers", "regimen, comparator, phase", "asian_fraction"]),
        (JOINT.replace('outcomes = ["total_response", "severe_infection", "serious_adverse_event", "leucopenia", "death"]',
                       'outcome = "total_response"'), ["data.outcomes", "family 'joint'", "two or more"]),
        (JOINT.replace('"leucopenia"', '"hair_loss"'), ["data.outcomes", "'hair_loss'", "leucopenia"]),
        (JOINT.replace("lkj_eta = 2.0", "lkj_eta = -1"), ["model.lkj_eta", "greater than 0"]),
        (NET.replace('effects = "random"', 'effects = "mixed"'), ["model.effects", "'mixed'", "random", "fixed"]),
        (NET.replace('reference = "ivcy"', 'reference = "ivcy"\nbaseline = "exchangeable"'),
         ["model.baseline", "not used by family 'network'", "reference"]),
        (NET.replace('outcome = "total_response"', 'outcome = "renal_response"'), ["data.outcome", "family 'ordinal'"]),
        (BASE.replace('[analysis]', 'targets = ["martians"]\n[analysis]'), ["targets", "martians"]),
        (NET.replace('[analysis]', 'targets = ["paediatric"]\n[analysis]'), ["targets", "family 'core'"]),
    ],
    ids=["core-with-joint-key", "ordinal-link", "ordinal-outcome", "ordinal-modifier", "joint-one-outcome",
         "joint-unknown-outcome", "joint-eta", "network-effects", "network-with-core-key", "network-ordinal-outcome",
         "unknown-target", "targets-on-network"],
)
def test_family_errors_name_the_key(tmp_path, text, needles):
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    msg = str(ei.value)
    assert msg.startswith(str(p)), msg
    for n in needles:
        assert n in msg, (n, msg)
    assert "\n" not in msg.strip() and "Value error," not in msg


def test_the_specs_covariate_lists_are_the_design_layers():
    """spec.py validates covariates against bayesln.vocab without importing the model
    layer; the lists must be the ones the design builds from."""
    from bayesln import vocab
    from bayesln.hierarchy import design

    assert vocab.EFFECT_MODIFIERS == design.EFFECT_MODIFIERS
    assert vocab.BASELINE_COVARIATES == design.BASELINE_COVARIATES
