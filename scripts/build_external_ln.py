"""Build data/external_ln/ from the evidence sheet's external_candidates.csv.

    python scripts/build_external_ln.py [--evidence ../shared/evidence]

Evidence *beyond* the tacrolimus trials: non-Asian TAC case series, refractory and
paediatric series, an observational duo-vs-triple comparison, and other drugs' trials and
subgroups (voclosporin, ciclosporin, MMF vs IV cyclophosphamide) that show how ethnicity
and biopsy class modify induction effects. Every row keeps its drug (``treatment``) and
design, and the bundle is read by :func:`bayesln.data.external.load_external_evidence`
into an :class:`~bayesln.data.external.ExternalEvidence`, which no fit function accepts:
it informs priors (:mod:`bayesln.predict.informed`), it is never pooled as TAC.

Traceability (the rule of data/): every count is a number of the row's ``notes``, which
quote the source the row's ``source_id`` names in ``sources.csv``. The script checks that
every non-blank count appears in the notes as a number; the few that the notes state in
words or as a sum are listed in :data:`WORDED` with the words or arithmetic, checked
here too. Any other count refuses the build. Output is written to a temporary folder and
renamed.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "external_ln"

COUNT_COLUMNS = ("n_randomized", "n_analysed", "n_safety", "complete_response", "partial_response", "total_response",
                 "leucopenia", "infection", "severe_infection", "hyperglycaemia", "creatinine_rise",
                 "serious_adverse_event", "death")
DESCRIPTOR_COLUMNS = ("timepoint_weeks", "asian_fraction", "mean_age", "female_fraction", "class_v_fraction",
                      "class_iii_iv_fraction", "pediatric", "refractory")

#: counts stated in words or as a sum in the notes: (study_id, treatment, column) ->
#: (value, the words / arithmetic in the notes that give it)
WORDED = {
    ("lanata2010", "tac", "total_response"): (4, "One patient achieved a complete renal remission, while three "
                                                 "achieved partial remission"),
    ("aurora2", "voclosporin", "death"): (0, "There were no deaths in the voclosporin arm"),
    ("aurora2", "placebo", "death"): (4, "four deaths occured in the control arm"),
    ("tanaka2009_ped", "tac", "n_analysed"): (11, "Eleven consecutive patients"),
    ("tanaka2009_ped", "tac", "total_response"): (10, "total DERIVED 8+2"),
    ("tanaka2009_ped", "tac", "serious_adverse_event"): (0, "No serious adverse effects were observed"),
    ("ijpam2018_ped", "tac", "n_analysed"): (3, "Three children"),
}

#: the sheet's designs, as written (rct_subgroup: one subgroup of a randomised trial)
DESIGNS = ("rct", "rct_subgroup", "cohort", "case_series", "single_arm")


def _arm_ids(rows: list[dict]) -> list[str]:
    """One arm id per row, unique within its study: the treatment, with the regimen or a
    dose label when a study has two arms of one treatment."""
    out = []
    for r in rows:
        same = [x for x in rows if x["study_id"] == r["study_id"] and x["treatment"] == r["treatment"]]
        if len(same) == 1:
            out.append(r["treatment"])
            continue
        if len({x["regimen"] for x in same}) == len(same) and r["regimen"]:
            out.append(f"{r['treatment']}_{r['regimen']}")
            continue
        label = r["arm_label"].lower()
        tag = "low" if "low dose" in label else "high" if "high dose" in label else str(same.index(r) + 1)
        out.append(f"{r['treatment']}_{tag}")
    return out


def _source_location(notes: str) -> str:
    m = re.match(r"\s*(?:Authors[^.]*\.\s*)?Sources?:\s*(.*?)(?:\.\s+Read:|\s+Read:|$)", notes)
    return m.group(1).strip() if m else ""


def check_traceable(rows: list[dict]) -> list[str]:
    """Problems: counts that are neither a number in the row's notes nor in WORDED."""
    problems = []
    for r in rows:
        numbers = set(re.findall(r"(?<![0-9.])[0-9]+(?![0-9])", r["notes"]))
        for c in COUNT_COLUMNS:
            v = r[c]
            if v == "":
                continue
            key = (r["study_id"], r["treatment"], c)
            if key in WORDED:
                want, words = WORDED[key]
                if int(float(v)) != want or words not in r["notes"]:
                    problems.append(f"{key}: {v} vs the worded entry {WORDED[key]}")
                continue
            if str(int(float(v))) not in numbers:
                problems.append(f"{r['study_id']} / {r['treatment']} / {c} = {v}: not a number of the row's notes")
    return problems


def build(evidence: Path, out: Path) -> None:
    with open(evidence / "external_candidates.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    bad = [r["design"] for r in rows if r["design"] not in DESIGNS]
    if bad:
        raise SystemExit(f"unknown design(s) {sorted(set(bad))}; known: {DESIGNS}")
    problems = check_traceable(rows)
    if problems:
        raise SystemExit("not traceable:\n" + "\n".join(problems))
    arms = _arm_ids(rows)
    if len(set(zip((r["study_id"] for r in rows), arms))) != len(rows):
        raise SystemExit("arm ids are not unique within studies")
    fields = ["study", "arm", "treatment", "design", "phase", "arm_label", "regimen", *COUNT_COLUMNS,
              *DESCRIPTOR_COLUMNS, "country", "first_author", "year", "journal", "doi", "source_id", "notes"]
    sources = {}
    for r in rows:
        sources.setdefault(r["study_id"], {
            "source_id": r["study_id"], "first_author": r["first_author"], "year": r["year"], "journal": r["journal"],
            "doi": r["doi"], "design": r["design"], "location": _source_location(r["notes"]),
        })
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
    try:
        with open(tmp / "evidence.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
            w.writeheader()
            for r, arm in zip(rows, arms):
                w.writerow({**{k: r.get(k, "") for k in fields}, "study": r["study_id"], "arm": arm,
                            "source_id": r["study_id"]})
        with open(tmp / "sources.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(next(iter(sources.values()))), lineterminator="\n")
            w.writeheader()
            w.writerows(sources.values())
        meta = {
            "name": "external_ln",
            "title": "Evidence beyond the tacrolimus trials: other drugs' subgroups and non-randomised TAC series",
            "description": ("From shared/evidence/external_candidates.csv; blank = unknown, never zero; each row's drug "
                            "in `treatment` and design in `design`. Not for pooling as TAC: "
                            "bayesln.data.external.load_external_evidence. Built by scripts/build_external_ln.py."),
            "resources": [{"name": "evidence", "path": "evidence.csv"}, {"name": "sources", "path": "sources.csv"},
                          {"name": "modifiers", "path": "modifiers.toml"}],
            "worded_counts": [{"study": k[0], "treatment": k[1], "column": k[2], "value": v[0], "words": v[1]}
                              for k, v in WORDED.items()],
        }
        (tmp / "datapackage.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        for keep in ("modifiers.toml", "README.md"):
            if (out / keep).exists():
                shutil.copy2(out / keep, tmp / keep)
        old = out.with_name(f".old-{out.name}")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evidence", type=Path, default=ROOT.parent / "shared" / "evidence")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    build(a.evidence, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
