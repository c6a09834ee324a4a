"""The malformed-input corpus: every bad input the command line can be handed - data files,
specs, arguments, output locations, run folders - ends with exit 2 and one paragraph
naming the file and the key, line or column (and, for an edited run folder, both hashes);
never a traceback, never exit 1 (reserved for a failed diagnostics gate) or 3 (an internal
error), never a file written outside --out, never a change to a fit's files.

Reference: the exit-code contract in README.md ("0 ok, 1 failed gate, 2 bad input, 3
internal error, 130/143 interrupted") and the issue that listed the cases found to end in a
traceback (read-only or file-shadowed --out, truncated idata.nc, --tune 0, a comparison.csv
with other columns, priors with huge numbers or deeply nested signs, huge counts, counts
written as 1e3 / 1_0 / other scripts' digits, formula-like labels, /dev/zero as data).

Each case runs ``bayesln.cli.main`` in this process (the console script's entry point, so
argument-parsing errors are covered too); a few go through the installed script as a real
subprocess at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import pymc  # noqa: F401  (PyMC's log handler binds to the real stderr, not CliRunner's)
from bayesln import cli

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
BASE_SPEC = (MODELS / "total_response.toml").read_text(encoding="utf-8")
TINY = ["--draws", "60", "--tune", "60", "--chains", "2"]

GOOD_ROWS = [
    "study,treatment,outcome,events,n",
    "s1,tac,total_response,12,20",
    "s1,ivcy,total_response,8,20",
    "s2,tac,total_response,15,25",
    "s2,ivcy,total_response,10,25",
]


def run_cli(capsys, *args, cwd: Path | None = None) -> tuple[int, str, str]:
    """``bayesln ARGS`` through the console script's entry point, in this process."""
    argv, handlers, hook = sys.argv, {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}, sys.unraisablehook
    old_cwd = os.getcwd()
    sys.argv = ["bayesln", *[str(a) for a in args]]
    capsys.readouterr()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with pytest.raises(SystemExit) as ex:
            cli.main()
    finally:
        os.chdir(old_cwd)
        sys.argv = argv
        sys.unraisablehook = hook
        for s, h in handlers.items():
            signal.signal(s, h)
    out, err = capsys.readouterr()
    code = ex.value.code if isinstance(ex.value.code, int) else 0
    return code, out, err


def assert_refused(code: int, err: str, needles, *, exit_code: int = 2) -> None:
    assert code == exit_code, (code, err)
    assert "Traceback" not in err, err
    text = err.strip()
    assert text.startswith("error: "), err
    assert "\n\n" not in text, err
    for n in needles:
        assert n in err, (n, err)


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# =========================================================================== data files
def _rows(*replace: tuple[int, str]) -> str:
    rows = list(GOOD_ROWS)
    for i, line in replace:
        rows[i] = line
    return "\n".join(rows) + "\n"


#: name -> (file content (str or bytes), needles besides the file name)
DATA_CASES: dict[str, tuple[str | bytes, list[str]]] = {
    "empty": ("", ["empty"]),
    "only-whitespace": ("  \n\n \n", ["empty"]),
    "only-commas": (",,,\n,,\n", ["no header"]),
    "header-only": (GOOD_ROWS[0] + "\n", ["no data rows"]),
    "semicolons": (_rows().replace(",", ";"), ["line 1", "semicolon"]),
    "tabs": (_rows().replace(",", "\t"), ["line 1", "tab"]),
    "missing-events-column": ("study,treatment,outcome,n\ns1,tac,total_response,20\n", ["events", "missing required"]),
    "missing-n-column": ("study,treatment,outcome,events\ns1,tac,total_response,2\n", ["'n'", "missing required"]),
    "duplicate-column": ("study,treatment,outcome,events,n,n\ns1,tac,total_response,2,20,20\n", ["'n'", "duplicate column"]),
    "ragged-long-row": (_rows((2, "s1,ivcy,total_response,8,20,extra")), ["line 3", "6 fields"]),
    "ragged-short-row": (_rows((2, "s1,ivcy,total_response,8")), ["line 3", "4 fields"]),
    "latin1-byte": (_rows().encode() + b"s3,tac,total_response,1,2\xe9\n", ["line 6", "not UTF-8"]),
    "utf16": (_rows().encode("utf-16"), ["not UTF-8"]),
    "nul-byte": (_rows().encode().replace(b"s2,tac", b"s\x002,tac"), ["line 4", "control character"]),
    "huge-field": (_rows((1, "s1,tac,total_response,12,20")) + "s3," + "x" * 200_000 + ",total_response,1,2\n",
                   ["malformed CSV"]),
    "negative-events": (_rows((1, "s1,tac,total_response,-3,20")), ["line 2", "'events'", "≥ 0"]),
    "zero-n": (_rows((1, "s1,tac,total_response,0,0")), ["line 2", "'n'", "n = 0"]),
    "negative-n": (_rows((1, "s1,tac,total_response,0,-4")), ["line 2", "'n'"]),
    "events-exceed-n": (_rows((1, "s1,tac,total_response,21,20")), ["line 2", "'events'", "exceed"]),
    "fractional-count": (_rows((1, "s1,tac,total_response,1.5,20")), ["line 2", "'events'", "whole number", "1.5"]),
    "whole-float-count": (_rows((1, "s1,tac,total_response,12.0,20")), ["line 2", "'events'", "whole number"]),
    "exponent-count": (_rows((1, "s1,tac,total_response,1e1,20")), ["line 2", "'events'", "whole number", "1e1"]),
    "underscore-count": (_rows((1, "s1,tac,total_response,1_0,20")), ["line 2", "'events'", "whole number", "1_0"]),
    "arabic-indic-digits": (_rows((1, "s1,tac,total_response,\u0661\u0662,20")), ["line 2", "'events'", "whole number"]),
    "fullwidth-digits": (_rows((1, "s1,tac,total_response,\uff11\uff12,20")), ["line 2", "'events'", "whole number"]),
    "superscript-digit": (_rows((1, "s1,tac,total_response,\u00b2,20")), ["line 2", "'events'", "whole number"]),
    "plus-sign-count": (_rows((1, "s1,tac,total_response,+5,20")), ["line 2", "'events'", "whole number"]),
    "hex-count": (_rows((1, "s1,tac,total_response,0x10,20")), ["line 2", "'events'", "whole number"]),
    "inf-count": (_rows((1, "s1,tac,total_response,inf,20")), ["line 2", "'events'", "whole number"]),
    "nan-word-count": (_rows((1, "s1,tac,total_response,NaN,20")), ["line 2", "'events'", "whole number"]),
    "word-count": (_rows((1, "s1,tac,total_response,twelve,20")), ["line 2", "'events'", "whole number"]),
    "thousands-separator": (_rows((1, 's1,tac,total_response,12,"1,000"')), ["line 2", "'n'", "whole number"]),
    "space-inside-count": (_rows((1, "s1,tac,total_response,1 2,20")), ["line 2", "'events'", "whole number"]),
    "count-2-63": (_rows((1, "s1,tac,total_response,1,9223372036854775808")), ["line 2", "'n'", "at most"]),
    "count-2-53-plus-1": (_rows((1, "s1,tac,total_response,1,9007199254740993")), ["line 2", "'n'", "at most"]),
    "count-10-15": (_rows((1, "s1,tac,total_response,1,1000000000000000")), ["line 2", "'n'", "at most"]),
    "count-5000-digits": (_rows((1, "s1,tac,total_response,1," + "9" * 5000)), ["line 2", "'n'", "at most"]),
    "n-randomized-huge": ("study,treatment,outcome,events,n,n_randomized\ns1,tac,total_response,1,2,10000000000\n",
                          ["line 2", "'n_randomized'", "at most"]),
    "events-without-n": (_rows((1, "s1,tac,total_response,12,")), ["line 2", "'n'", "blank"]),
    "counts-without-outcome": (_rows((1, "s1,tac,,12,20")), ["line 2", "'outcome'"]),
    "outcome-not-a-label": (_rows((1, "s1,tac,remission!,12,20")), ["line 2", "'outcome'", "not an outcome label"]),
    "treatment-not-a-label": (_rows((1, 's1,"tac, new",total_response,12,20')), ["line 2", "'treatment'",
                                                                                "not a treatment label"]),
    "treatment-label-too-long": (_rows((1, f"s1,{'t' * 90},total_response,12,20")), ["line 2", "'treatment'",
                                                                                    "80 characters"]),
    "blank-study": (_rows((1, ",tac,total_response,12,20")), ["line 2", "'study'", "blank"]),
    "blank-treatment": (_rows((1, "s1,,total_response,12,20")), ["line 2", "'treatment'", "blank"]),
    "formula-study-equals": (_rows((1, '"=HYPERLINK(""http://x"",""y"")",tac,total_response,12,20')),
                             ["line 2", "'study'", "formula"]),
    "formula-study-plus": (_rows((1, "+cmd|' /C calc'!A0,tac,total_response,12,20")), ["line 2", "'study'", "formula"]),
    "formula-study-minus": (_rows((1, "-2+3,tac,total_response,12,20")), ["line 2", "'study'", "formula"]),
    "formula-study-at": (_rows((1, "@SUM(A1),tac,total_response,12,20")), ["line 2", "'study'", "formula"]),
    "formula-study-tab": (_rows((1, '"\t=1+1",tac,total_response,12,20')), ["line 2", "'study'", "formula"]),
    "formula-study-cr": (_rows((1, '"\r=1+1",tac,total_response,12,20')), ["line 2", "'study'", "formula"]),
    "formula-arm": ("study,arm,treatment,outcome,events,n\ns1,=A1,tac,total_response,1,2\n", ["line 2", "'arm'", "formula"]),
    "formula-arm-label": ("study,treatment,outcome,events,n,arm_label\ns1,tac,total_response,1,2,=A1\n",
                          ["line 2", "'arm_label'", "formula"]),
    "formula-first-author": ("study,treatment,outcome,events,n,first_author\ns1,tac,total_response,1,2,@x\n",
                             ["line 2", "'first_author'", "formula"]),
    "formula-country": ("study,treatment,outcome,events,n,country\ns1,tac,total_response,1,2,=1\n",
                        ["line 2", "'country'", "formula"]),
    "newline-in-study": (_rows((1, '"s\n1",tac,total_response,12,20')), ["line 2", "'study'", "control character"]),
    "duplicate-row": (_rows((2, "s1,tac,total_response,8,20")), ["line 3", "duplicate"]),
    "arm-level-differs": ("study,treatment,outcome,events,n,regimen\ns1,tac,total_response,1,2,duo\n"
                          "s1,tac,complete_response,1,2,triple\n", ["line 3", "'regimen'", "differs"]),
    "study-level-differs": ("study,treatment,outcome,events,n,design\ns1,tac,total_response,1,2,rct\n"
                            "s1,ivcy,total_response,1,2,cohort\n", ["line 3", "'design'", "differs"]),
    "cr-plus-pr-not-total": ("study,treatment,outcome,events,n\ns1,tac,total_response,10,20\n"
                             "s1,tac,complete_response,5,20\ns1,tac,partial_response,4,20\n",
                             ["line 2", "'events'", "≠ total_response"]),
    "cr-exceeds-total": ("study,treatment,outcome,events,n\ns1,tac,total_response,3,20\n"
                         "s1,tac,complete_response,5,20\n", ["line 3", "'events'", "exceeds total_response"]),
    "fraction-above-one": ("study,treatment,outcome,events,n,asian_fraction\ns1,tac,total_response,1,2,1.5\n",
                           ["line 2", "'asian_fraction'", "out of range"]),
    "fraction-negative": ("study,treatment,outcome,events,n,class_v_fraction\ns1,tac,total_response,1,2,-0.1\n",
                          ["line 2", "'class_v_fraction'", "out of range"]),
    "fraction-percent": ("study,treatment,outcome,events,n,female_fraction\ns1,tac,total_response,1,2,50%\n",
                         ["line 2", "'female_fraction'", "not a number"]),
    "fraction-nondecimal-digits": ("study,treatment,outcome,events,n,asian_fraction\ns1,tac,total_response,1,2,\u0660.5\n",
                                   ["line 2", "'asian_fraction'", "not a number"]),
    "age-out-of-range": ("study,treatment,outcome,events,n,mean_age\ns1,tac,total_response,1,2,200\n",
                         ["line 2", "'mean_age'", "out of range"]),
    "age-infinite": ("study,treatment,outcome,events,n,mean_age\ns1,tac,total_response,1,2,1e999\n",
                     ["line 2", "'mean_age'", "finite"]),
    "age-underscore": ("study,treatment,outcome,events,n,mean_age\ns1,tac,total_response,1,2,3_0\n",
                       ["line 2", "'mean_age'", "not a number"]),
    "year-out-of-range": ("study,treatment,outcome,events,n,year\ns1,tac,total_response,1,2,1800\n",
                          ["line 2", "'year'", "1900"]),
    "year-float": ("study,treatment,outcome,events,n,year\ns1,tac,total_response,1,2,2015.0\n",
                   ["line 2", "'year'", "whole number"]),
    "boolean-word": ("study,treatment,outcome,events,n,pediatric\ns1,tac,total_response,1,2,maybe\n",
                     ["line 2", "'pediatric'", "boolean"]),
    "unknown-regimen": ("study,treatment,outcome,events,n,regimen\ns1,tac,total_response,1,2,quad\n",
                        ["line 2", "'regimen'", "known labels"]),
    "unknown-design": ("study,treatment,outcome,events,n,design\ns1,tac,total_response,1,2,anecdote\n",
                       ["line 2", "'design'", "known labels"]),
    "unknown-phase": ("study,treatment,outcome,events,n,phase\ns1,tac,total_response,1,2,remission\n",
                      ["line 2", "'phase'", "known labels"]),
    "zero-n-randomized": ("study,treatment,outcome,events,n,n_randomized\ns1,tac,total_response,1,2,0\n",
                          ["line 2", "'n_randomized'"]),
    "na-in-study-is-text-but-na-count-word": (_rows((1, "NA,tac,total_response,NA,na")), ["line 2", "'n'", "whole number"]),
}


def _write(tmp_path: Path, content: str | bytes, name: str = "trials.csv") -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8", newline="")
    return p


@pytest.mark.parametrize("case", list(DATA_CASES))
@pytest.mark.parametrize("command", ["validate", "frequentist", "fit"])
def test_bad_data_file(capsys, tmp_path, case, command):
    content, needles = DATA_CASES[case]
    data = _write(tmp_path, content)
    before = listing(tmp_path)
    if command == "validate":
        args = ["data", "validate", data]
    elif command == "frequentist":
        args = ["frequentist", data, "--outcome", "total_response"]
    else:
        args = ["fit", MODELS / "total_response.toml", "--data", data, "--out", tmp_path / "runs", *TINY, "--quiet"]
    code, _, err = run_cli(capsys, *args, cwd=tmp_path)
    assert_refused(code, err, [str(data), *needles])
    assert listing(tmp_path) == before  # nothing written, not even an empty --out


@pytest.mark.parametrize("where", ["directory", "missing", "dev-zero", "too-large"])
def test_unreadable_data_paths(capsys, tmp_path, where):
    if where == "directory":
        path, needle = tmp_path, "directory"
    elif where == "missing":
        path, needle = tmp_path / "nope.csv", "not"
    elif where == "dev-zero":
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero")
        path, needle = Path("/dev/zero"), "MiB"
    else:
        path, needle = tmp_path / "big.csv", "MiB"
        with open(path, "wb") as fh:  # sparse: no 65 MB written to disk
            fh.truncate(65 * 1024 * 1024)
    code, _, err = run_cli(capsys, "data", "validate", path)
    assert_refused(code, err, [str(path), needle])


# =========================================================================== specs
def _spec(**replace: str) -> str:
    text = BASE_SPEC
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


R = {  # short names of lines of models/total_response.toml
    "name": 'name = "total_response"',
    "title": 'title = "Total (complete or partial) renal response: TAC vs comparator, induction RCTs"',
    "source": 'source = "tacrolimus_ln"',
    "outcome": 'outcome = "total_response"',
    "phases": 'phases = ["induction"]',
    "designs": 'designs = ["rct"]',
    "family": 'family = "core"',
    "treat": 'treat = ["tac"]',
    "baseline": 'baseline = "independent"',
    "d": 'd = "normal(0, 2.5)"',
    "tau": 'tau = "half_normal(0.5)"',
}
# the sampler lines as the shipped spec has them today (its settings change with measurements)
R.update({short: next(line for line in BASE_SPEC.splitlines() if line.startswith(key + " ="))
          for short, key in (("draws", "draws"), ("tune", "tune"), ("chains", "chains"), ("ta", "target_accept"),
                             ("seed", "seed"))})

#: name -> (spec text (or bytes), needles besides the spec's path)
SPEC_CASES: dict[str, tuple[str | bytes, list[str]]] = {
    "not-toml": ("[analysis\nname = 1\n", ["not valid TOML"]),
    "not-utf8": (BASE_SPEC.encode("utf-8").replace(b"Total", b"Tot\xe9l"), ["not UTF-8"]),
    "empty": ("", ["missing required key 'analysis'"]),
    "duplicate-toml-key": (_spec(**{R["draws"]: R["draws"] + "\ndraws = 5"}), ["not valid TOML"]),
    "deep-nesting": ("x = " + "[" * 20000 + "\n", ["not valid TOML", "nested"]),
    "too-large-file": (BASE_SPEC + "\n# " + "x" * 300_000 + "\n", ["KiB"]),
    "unknown-top-level-key": (BASE_SPEC + "\n[extras]\na = 1\n", ["unknown key 'extras'"]),
    "unknown-analysis-key": (_spec(**{R["name"]: R["name"] + "\nauthor = 'x'"}), ["unknown key 'author'", "[analysis]"]),
    "name-with-slash": (_spec(**{R["name"]: 'name = "a/b"'}), ["analysis.name"]),
    "name-dotdot": (_spec(**{R["name"]: 'name = ".."'}), ["analysis.name"]),
    "name-too-long": (_spec(**{R["name"]: f'name = "{"a" * 81}"'}), ["analysis.name"]),
    "name-not-text": (_spec(**{R["name"]: "name = 3"}), ["analysis.name"]),
    "title-too-long": (_spec(**{R["title"]: f'title = "{"t" * 2000}"'}), ["analysis.title", "300"]),
    "title-10mb": (_spec(**{R["title"]: f'title = "{"t" * 10_000_000}"'}), ["KiB"]),
    "description-too-long": (_spec(**{R["title"]: R["title"] + f'\ndescription = "{"d" * 6000}"'}),
                             ["analysis.description"]),
    "long-text-value": (_spec(**{R["source"]: f'source = "{"s" * 5000}"'}), ["data.source", "longer than"]),
    "unknown-outcome": (_spec(**{R["outcome"]: 'outcome = "remission"'}), ["data.outcome", "remission", "allowed"]),
    "no-outcome": (_spec(**{R["outcome"]: ""}), ["data.outcome", "missing"]),
    "outcomes-for-core": (_spec(**{R["outcome"]: 'outcomes = ["total_response", "death"]'}), ["data.outcomes"]),
    "unknown-phase": (_spec(**{R["phases"]: 'phases = ["remission"]'}), ["data.phases"]),
    "unknown-design": (_spec(**{R["designs"]: 'designs = ["anecdote"]'}), ["data.designs"]),
    "exclude-not-list": (_spec(**{R["designs"]: R["designs"] + '\nexclude_studies = "liu2015"'}),
                         ["data.exclude_studies"]),
    "source-missing-csv": (_spec(**{R["source"]: 'source = "nope.csv"'}), ["data.source", "nope.csv"]),
    "source-unknown-dataset": (_spec(**{R["source"]: 'source = "no_such_data"'}), ["data.source", "no_such_data"]),
    "unknown-family": (_spec(**{R["family"]: 'family = "bart"'}), ["model.family", "bart"]),
    "other-family-key": (_spec(**{R["family"]: R["family"] + "\nlkj_eta = 2.0"}), ["model.lkj_eta", "family 'core'"]),
    "unknown-effect-modifier": (_spec(**{R["baseline"]: R["baseline"] + '\neffect_modifiers = ["shoe_size"]'}),
                                ["model.effect_modifiers", "shoe_size"]),
    "bad-baseline": (_spec(**{R["baseline"]: 'baseline = "weird"'}), ["model.baseline", "weird"]),
    "unknown-treat-label": (_spec(**{R["treat"]: 'treat = ["bcg"]'}), ["model.treat", "bcg"]),
    "draws-zero": (_spec(**{R["draws"]: "draws = 0"}), ["sampler.draws"]),
    "draws-negative": (_spec(**{R["draws"]: "draws = -1"}), ["sampler.draws"]),
    "draws-huge": (_spec(**{R["draws"]: "draws = 10000000"}), ["sampler.draws"]),
    "draws-text": (_spec(**{R["draws"]: 'draws = "many"'}), ["sampler.draws"]),
    "draws-fraction": (_spec(**{R["draws"]: "draws = 1.5"}), ["sampler.draws"]),
    "draws-bigint": (_spec(**{R["draws"]: "draws = 99999999999999999999"}), ["sampler.draws"]),
    "tune-zero": (_spec(**{R["tune"]: "tune = 0"}), ["sampler.tune"]),
    "chains-zero": (_spec(**{R["chains"]: "chains = 0"}), ["sampler.chains"]),
    "chains-huge": (_spec(**{R["chains"]: "chains = 1000"}), ["sampler.chains"]),
    "target-accept-one": (_spec(**{R["ta"]: "target_accept = 1.0"}), ["sampler.target_accept"]),
    "target-accept-low": (_spec(**{R["ta"]: "target_accept = 0.3"}), ["sampler.target_accept"]),
    "target-accept-nan": (_spec(**{R["ta"]: "target_accept = nan"}), ["sampler.target_accept"]),
    "seed-negative": (_spec(**{R["seed"]: "seed = -1"}), ["sampler.seed"]),
    "seed-huge": (_spec(**{R["seed"]: "seed = 1099511627776"}), ["sampler.seed"]),
    "unknown-backend": (_spec(**{R["seed"]: R["seed"] + '\nbackend = "stan"'}), ["sampler.backend", "stan"]),
    "sampler-not-a-table": (_spec(**{"[sampler]": "[sampler_old]"}).replace("[sampler_old]", "[sampler_old]")
                            + "\nsampler = 3\n", ["unknown key 'sampler_old'"]),
    "gate-rhat-below-one": (BASE_SPEC + "\n[gate]\nr_hat = 0.9\n", ["gate.r_hat"]),
    "gate-unknown-key": (BASE_SPEC + "\n[gate]\nrhat = 1.05\n", ["unknown key 'rhat'"]),
    "prior-unknown-family": (_spec(**{R["tau"]: 'tau = "gaussian(0, 1)"'}), ["priors", "gaussian"]),
    "prior-unknown-key": (_spec(**{R["tau"]: R["tau"] + '\nomega = "normal(0, 1)"'}), ["unknown key 'omega'", "[priors]"]),
    "prior-not-a-call": (_spec(**{R["tau"]: 'tau = "0.5"'}), ["priors", "'0.5'"]),
    "prior-number-not-text": (_spec(**{R["tau"]: "tau = 0.5"}), ["priors.tau"]),
    "prior-negative-scale": (_spec(**{R["tau"]: 'tau = "half_normal(-1)"'}), ["priors.tau", "> 0"]),
    "prior-uniform-reversed": (_spec(**{R["tau"]: 'tau = "uniform(2, 1)"'}), ["priors.tau", "lower"]),
    "prior-overflow": (_spec(**{R["d"]: 'd = "normal(1e999, 1)"'}), ["priors", "1e999", "range of a float"]),
    "prior-huge-integer": (_spec(**{R["d"]: f'd = "normal({"9" * 150}, 1)"'}), ["priors.d", "1e+06"]),
    "prior-huge-scale": (_spec(**{R["tau"]: 'tau = "half_normal(1e300)"'}), ["priors.tau", "1e+06"]),
    "prior-5000-digit-integer": (_spec(**{R["d"]: f'd = "normal({"9" * 5000}, 1)"'}), ["priors", "characters"]),
    "prior-nested-minus": (_spec(**{R["d"]: f'd = "normal({"-" * 150}1, 1)"'}), ["priors", "unexpected '-'"]),
    "prior-deeply-nested-minus": (_spec(**{R["d"]: f'd = "normal({"-" * 100_000}1, 1)"'}), ["priors.d", "longer than"]),
    "prior-nested-parentheses": (_spec(**{R["d"]: f'd = "normal({"(" * 50}0{")" * 50}, 1)"'}), ["priors", "normal"]),
    "prior-duplicate-keyword": (_spec(**{R["d"]: 'd = "normal(mu=0, sigma=1, mu=5)"'}), ["priors", "'mu' given twice"]),
    "prior-positional-and-keyword": (_spec(**{R["d"]: 'd = "normal(0, 1, mu=5)"'}), ["priors", "given twice"]),
    "prior-unknown-parameter": (_spec(**{R["d"]: 'd = "normal(0, 1, nu=3)"'}), ["priors.d", "nu"]),
    "prior-too-many-arguments": (_spec(**{R["d"]: 'd = "normal(0, 1, 2)"'}), ["priors", "at most 2"]),
    "prior-call-expression": (_spec(**{R["d"]: 'd = "normal(abs(-1), 1)"'}), ["priors", "normal"]),
    "prior-python-code": (_spec(**{R["d"]: 'd = "normal(__import__(\'os\'), 1)"'}), ["priors", "normal"]),
    "prior-trailing-text": (_spec(**{R["d"]: 'd = "normal(0, 1) or 1"'}), ["priors", "normal"]),
    "prior-infinite-word": (_spec(**{R["d"]: 'd = "normal(inf, 1)"'}), ["priors", "inf"]),
    "prior-wrong-family-for-tau": (_spec(**{R["tau"]: 'tau = "normal(0, 1)"'}), ["priors", "tau"]),
    "unknown-target": ('targets = ["martians"]\n' + BASE_SPEC, ["targets", "martians"]),
}


def _spec_file(tmp_path: Path, content: str | bytes) -> Path:
    p = tmp_path / "spec.toml"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_bad_spec(capsys, tmp_path, case):
    content, needles = SPEC_CASES[case]
    spec = _spec_file(tmp_path, content)
    before = listing(tmp_path)
    code, _, err = run_cli(capsys, "fit", spec, "--out", tmp_path / "runs", *TINY, "--quiet", cwd=tmp_path)
    assert_refused(code, err, [str(spec), *needles])
    assert listing(tmp_path) == before


@pytest.mark.parametrize("case", ["missing", "directory"])
def test_spec_path_that_is_not_a_file(capsys, tmp_path, case):
    spec = tmp_path / "nope.toml" if case == "missing" else tmp_path
    code, _, err = run_cli(capsys, "fit", spec, "--out", tmp_path / "runs", "--quiet")
    assert_refused(code, err, [str(spec), "not found"])


# =========================================================================== arguments and output locations
SPEC = MODELS / "total_response.toml"

ARG_CASES: dict[str, tuple[list, list[str]]] = {
    "fit-draws-zero": (["fit", SPEC, "--draws", "0"], ["--draws", "1 to"]),
    "fit-draws-negative": (["fit", SPEC, "--draws", "-5"], ["--draws"]),
    "fit-draws-huge": (["fit", SPEC, "--draws", "5000000"], ["--draws", "1,000,000"]),
    "fit-draws-text": (["fit", SPEC, "--draws", "many"], ["--draws", "integer"]),
    "fit-tune-zero": (["fit", SPEC, "--tune", "0"], ["--tune", "1 to"]),
    "fit-chains-zero": (["fit", SPEC, "--chains", "0"], ["--chains"]),
    "fit-chains-huge": (["fit", SPEC, "--chains", "1000"], ["--chains", "64"]),
    "fit-seed-negative": (["fit", SPEC, "--seed", "-1"], ["--seed"]),
    "fit-seed-huge": (["fit", SPEC, "--seed", str(2**40)], ["--seed"]),
    "fit-unknown-option": (["fit", SPEC, "--colour", "red"], ["--colour"]),
    "fit-missing-spec": (["fit"], ["Missing argument 'spec'"]),
    "fit-name-with-slash": (["fit", SPEC, "--name", "a/b"], ["--name", "a/b"]),
    "fit-name-dotdot": (["fit", SPEC, "--name", ".."], ["--name"]),
    "fit-data-missing": (["fit", SPEC, "--data", "{tmp}/nope.csv"], ["--data", "nope.csv"]),
    "fit-data-unknown-dataset": (["fit", SPEC, "--data", "no_such_dataset"], ["--data", "no_such_dataset"]),
    "fit-out-is-a-file": (["fit", SPEC, "--out", "{tmp}/afile"], ["--out", "afile", "not a folder"]),
    "fit-out-under-a-file": (["fit", SPEC, "--out", "{tmp}/afile/runs"], ["--out", "afile", "which is a file"]),
    "fit-out-unwritable": (["fit", SPEC, "--out", "/proc/bayesln-runs"], ["--out", "/proc/bayesln-runs", "cannot write"]),
    "predict-ci-high": (["predict", MODELS / "predict_total_response.toml", "--ci", "1.5"], ["--ci"]),
    "predict-pred-draws-zero": (["predict", MODELS / "predict_total_response.toml", "--pred-draws", "0"], ["--pred-draws"]),
    "predict-unknown-target": (["predict", MODELS / "predict_total_response.toml", "--target", "martians"], ["martians"]),
    "predict-format": (["predict", MODELS / "predict_total_response.toml", "--format", "xml"], ["--format"]),
    "predict-tune-zero": (["predict", MODELS / "predict_total_response.toml", "--tune", "0"], ["--tune"]),
    "predict-out-under-a-file": (["predict", MODELS / "predict_total_response.toml", "--out", "{tmp}/afile/x"],
                                 ["--out", "which is a file"]),
    "predict-missing": (["predict", "{tmp}/nothing"], ["nothing"]),
    "summarize-missing": (["summarize", "{tmp}/nothing"], ["nothing", "no such run folder"]),
    "summarize-a-file": (["summarize", "{tmp}/afile"], ["afile"]),
    "summarize-format": (["summarize", "{tmp}", "--format", "xml"], ["--format"]),
    "check-missing": (["check", "{tmp}/nothing"], ["nothing", "no such run folder"]),
    "check-format": (["check", "{tmp}", "--format", "csv"], ["--format"]),
    "check-draws-zero": (["check", "{tmp}", "--draws", "0"], ["--draws"]),
    "check-tune-zero": (["check", "{tmp}", "--tune", "0"], ["--tune"]),
    "frequentist-method": (["frequentist", "tacrolimus_ln", "--outcome", "total_response", "--method", "bayes"],
                           ["bayes"]),
    "frequentist-measure": (["frequentist", "tacrolimus_ln", "--outcome", "total_response", "--measure", "HR"], ["HR"]),
    "frequentist-outcome": (["frequentist", "tacrolimus_ln", "--outcome", "remission"], ["remission"]),
    "frequentist-treat": (["frequentist", "tacrolimus_ln", "--outcome", "total_response", "--treat", "bcg"], ["bcg"]),
    "frequentist-subgroup": (["frequentist", "tacrolimus_ln", "--outcome", "total_response", "--subgroup", "shoe"],
                             ["shoe"]),
    "frequentist-missing-file": (["frequentist", "{tmp}/nope.csv", "--outcome", "total_response"], ["nope.csv"]),
    "bias-measure": (["bias", "tacrolimus_ln", "--outcome", "total_response", "--measure", "RD"], ["measure", "'RD'"]),
    "bias-side": (["bias", "tacrolimus_ln", "--outcome", "total_response", "--side", "up"], ["--side", "'up'"]),
    "bias-estimator": (["bias", "tacrolimus_ln", "--outcome", "total_response", "--estimator", "Q0"], ["Q0"]),
    "bias-outcome": (["bias", "tacrolimus_ln", "--outcome", "remission"], ["remission"]),
    "bias-missing-file": (["bias", "{tmp}/nope.csv", "--outcome", "total_response"], ["nope.csv"]),
    "data-show-unknown": (["data", "show", "no_such_dataset"], ["no_such_dataset"]),
    "data-show-format": (["data", "show", "tacrolimus_ln", "--format", "xml"], ["--format"]),
    "unknown-command": (["fitt", SPEC], ["fitt"]),
}


@pytest.mark.parametrize("case", list(ARG_CASES))
def test_bad_arguments(capsys, tmp_path, case):
    args, needles = ARG_CASES[case]
    (tmp_path / "afile").write_text("not a folder\n")
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    needles = [n.replace("{tmp}", str(tmp_path)) for n in needles]
    if args[0] in ("fit", "predict") and "--out" not in args:
        args += ["--out", str(tmp_path / "runs")] if args[0] == "fit" else []
    before = listing(tmp_path)
    code, _, err = run_cli(capsys, *args, cwd=tmp_path)
    assert_refused(code, err, needles)
    assert listing(tmp_path) == before


# =========================================================================== run folders
@pytest.fixture(scope="module")
def pristine_run(tmp_path_factory):
    """A real (tiny) run folder of the prediction spec (core family, with targets)."""
    from bayesln.analysis import run_analysis, save_analysis

    out = tmp_path_factory.mktemp("runs")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = run_analysis(MODELS / "predict_total_response.toml", draws=60, tune=60, chains=2, progressbar=False)
    return save_analysis(analysis, out, figures=True)


def _edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _comparison_other_columns(path: Path) -> None:
    path.write_text("a,b,c\n1,2,3\n", encoding="utf-8")


def _counts(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    head = lines[0].split(",")
    ev = head.index("events")
    cells = lines[1].split(",")
    cells[ev] = str(int(cells[ev]) + 1) if cells[ev] else "1"
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


#: name -> (file edited, how); every one must be refused naming the file and both hashes
TAMPER = {
    "spec-outcome-changed": ("spec.json", lambda p: _edit_text(p, '"total_response"', '"death"')),
    "spec-prior-changed": ("spec.json", lambda p: _edit_text(p, '"turner()"', '"half_normal(5)"')),
    "data-count-changed": ("data.csv", _counts),
    "idata-truncated": ("idata.nc", _truncate),
    "idata-bytes-flipped": ("idata.nc", _flip_bytes),
    "comparison-other-columns": ("comparison.csv", _comparison_other_columns),
    "summary-edited": ("summary.csv", lambda p: p.write_text(p.read_text().replace("0.", "9.", 1))),
    "diagnostics-edited": ("diagnostics.json", lambda p: _edit_text(p, '"verdict": "', '"verdict": "pass", "x": "')),
    "predictions-edited": ("predictions.csv", lambda p: p.write_text(p.read_text() + "\n")),
    "figure-replaced": ("figures/forest.png", lambda p: p.write_bytes(b"\x89PNG not the figure")),
}

#: damaged folders refused without a hash comparison: name -> (how, needles)
DAMAGE = {
    "run-json-missing": (lambda r: (r / "run.json").unlink(), ["run.json", "not a bayesln run folder"]),
    "run-json-garbage": (lambda r: (r / "run.json").write_text("{not json"), ["run.json", "JSON"]),
    "run-json-no-hashes": (lambda r: (r / "run.json").write_text(json.dumps({"name": "x", "files": []})),
                           ["run.json", "no file hashes"]),
    "run-json-escaping-path": (lambda r: (r / "run.json").write_text(json.dumps({"sha256": {"../../x": "0" * 64}})),
                               ["run.json", "malformed"]),
    "recorded-file-deleted": (lambda r: (r / "usage.csv").unlink(), ["usage.csv", "missing"]),
    "idata-missing": (lambda r: (r / "idata.nc").unlink(), ["not a bayesln run folder"]),
    "empty-folder": (lambda r: [shutil.rmtree(p) if p.is_dir() else p.unlink() for p in list(r.iterdir())],
                     ["not a bayesln run folder"]),
}


def _copy(pristine: Path, tmp_path: Path) -> Path:
    run = tmp_path / pristine.name
    shutil.copytree(pristine, run)
    return run


def _command(cmd: str, run: Path, tmp_path: Path) -> list:
    if cmd == "summarize":
        return ["summarize", run]
    if cmd == "predict":
        return ["predict", run, "--format", "csv", "--pred-draws", "20"]
    return ["check", run, "--no-sensitivity", "--no-models", "--quiet", "--draws", "20", "--tune", "20", "--chains", "1",
            "--out", tmp_path / "checks"]


@pytest.mark.parametrize("case", list(TAMPER))
@pytest.mark.parametrize("cmd", ["summarize", "predict", "check"])
def test_edited_run_folder_is_refused_with_both_hashes(capsys, tmp_path, pristine_run, case, cmd):
    from bayesln.runs import file_sha256

    run = _copy(pristine_run, tmp_path)
    rel, edit = TAMPER[case]
    recorded = json.loads((run / "run.json").read_text())["sha256"][rel]
    edit(run / rel)
    now = file_sha256(run / rel)
    assert now != recorded
    before = listing(tmp_path)
    code, _, err = run_cli(capsys, *_command(cmd, run, tmp_path), cwd=tmp_path)
    assert_refused(code, err, [str(run / rel), recorded, now])
    assert listing(tmp_path) == before  # check --out wrote nothing


@pytest.mark.parametrize("case", list(DAMAGE))
@pytest.mark.parametrize("cmd", ["summarize", "predict", "check"])
def test_damaged_run_folder_is_refused(capsys, tmp_path, pristine_run, case, cmd):
    run = _copy(pristine_run, tmp_path)
    damage, needles = DAMAGE[case]
    damage(run)
    code, _, err = run_cli(capsys, *_command(cmd, run, tmp_path), cwd=tmp_path)
    assert_refused(code, err, [str(run), *needles])


def test_load_run_refuses_an_edited_run(tmp_path, pristine_run):
    from bayesln.analysis import load_run
    from bayesln.runs import RunError

    run = _copy(pristine_run, tmp_path)
    assert load_run(run).spec.data.outcome == "total_response"
    _edit_text(run / "spec.json", '"total_response"', '"death"')
    with pytest.raises(RunError, match="spec.json: changed since the run was written"):
        load_run(run)


@pytest.mark.parametrize("where", ["the-run-folder", "inside-the-run-folder", "a-foreign-folder", "a-file"])
def test_check_out_never_writes_into_a_run_or_over_other_files(capsys, tmp_path, pristine_run, where):
    run = _copy(pristine_run, tmp_path)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me\n")
    (tmp_path / "afile").write_text("keep me too\n")
    out = {"the-run-folder": run, "inside-the-run-folder": run / "checks", "a-foreign-folder": foreign,
           "a-file": tmp_path / "afile"}[where]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, _, err = run_cli(capsys, "check", run, "--no-sensitivity", "--no-models", "--quiet", "--out", out)
    assert_refused(code, err, ["--out", str(out)])
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_later_commands_never_change_a_fits_files(capsys, tmp_path, pristine_run):
    """summarize, predict and check (with --out elsewhere) read a run; its files, and the
    list of them, are byte-identical afterwards; check's folder is written whole."""
    from bayesln.runs import folder_hashes

    run = _copy(pristine_run, tmp_path)
    before = folder_hashes(run)
    # the tiny fit fails its gate: predict and check need --allow-failed-gate (tested elsewhere)
    for args in (["summarize", run], ["summarize", run, "--format", "json"],
                 ["predict", run, "--format", "csv", "--pred-draws", "20", "--allow-failed-gate"],
                 ["check", run, "--no-sensitivity", "--no-models", "--quiet", "--draws", "30", "--tune", "30",
                  "--chains", "1", "--out", tmp_path / "checks", "--allow-failed-gate"]):
        code, _, err = run_cli(capsys, *args, cwd=tmp_path)
        assert code == 0, (args, err)
        assert folder_hashes(run) == before, args
    assert (tmp_path / "checks" / "checks.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    # a second check replaces the first checks folder in one rename
    code, _, err = run_cli(capsys, "check", run, "--no-sensitivity", "--no-models", "--quiet", "--draws", "30",
                           "--tune", "30", "--chains", "1", "--out", tmp_path / "checks", "--allow-failed-gate",
                           cwd=tmp_path)
    assert code == 0, err
    assert folder_hashes(run) == before


@pytest.mark.parametrize("cmd", ["predict", "check"])
def test_a_run_that_failed_its_gate_is_refused_downstream(capsys, tmp_path, pristine_run, cmd):
    """The tiny pristine run fails its gate: predictions and checks from it are refused
    with exit 1 (the failed-gate code) naming the problems, and nothing is written."""
    run = _copy(pristine_run, tmp_path)
    assert json.loads((run / "run.json").read_text())["status"] == "failed_gate"
    before = listing(tmp_path)
    code, out, err = run_cli(capsys, *_command(cmd, run, tmp_path), cwd=tmp_path)
    assert_refused(code, err, [f"{'predictions' if cmd == 'predict' else 'checks'} refused",
                               "failed its diagnostics gate", "--allow-failed-gate"], exit_code=1)
    assert out == "" and listing(tmp_path) == before


# =========================================================================== internal errors
def test_an_internal_error_exits_3_with_one_line_and_a_log(capsys, tmp_path, monkeypatch):
    """A bug (here: a library function made to raise) is not the user's input: exit 3, one
    line naming the error, the traceback in a log file whose path is printed."""
    import bayesln.frequentist.command as fc

    def broken(*a, **k):
        raise KeyError("an internal key")

    monkeypatch.setattr(fc, "frequentist_command", broken)
    monkeypatch.setenv("BAYESLN_LOG_DIR", str(tmp_path / "logs"))
    code, _, err = run_cli(capsys, "frequentist", "tacrolimus_ln", "--outcome", "total_response")
    assert code == 3, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "internal error" in err and "KeyError" in err
    logs = list((tmp_path / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    text = logs[0].read_text()
    assert "Traceback" in text and "an internal key" in text


# =========================================================================== the real console script
@pytest.mark.parametrize("args,needles", [
    (["data", "validate", "{bad}"], ["{bad}", "line 2", "'events'", "whole number"]),
    (["fit", str(SPEC), "--tune", "0"], ["--tune"]),
    (["fit", str(SPEC), "--out", "{tmp}/afile/runs"], ["--out", "which is a file"]),
])
def test_console_script(tmp_path, args, needles):
    bad = tmp_path / "bad.csv"
    bad.write_text(_rows((1, "s1,tac,total_response,1e3,2000")))
    (tmp_path / "afile").write_text("x\n")
    sub = {"{bad}": str(bad), "{tmp}": str(tmp_path)}

    def fill(s: str) -> str:
        for k, v in sub.items():
            s = s.replace(k, v)
        return s

    exe = Path(sys.executable).with_name("bayesln")
    proc = subprocess.run([str(exe) if exe.exists() else "bayesln", *map(fill, args)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert_refused(proc.returncode, proc.stderr, [fill(n) for n in needles])
    assert proc.stdout == ""
