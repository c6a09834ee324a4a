"""Build data/tacrolimus_ln/ from the extraction sheet in ../shared/evidence/.

    python scripts/build_tacrolimus_ln.py [--evidence ../shared/evidence]

The arm-level facts (counts, denominators, descriptors, notes) are copied from
``arms.csv`` of the sheet; the per-count provenance below is transcribed from the sheet's
``sources.md`` (one entry per count: read in a source, derived from a stated percentage
and denominator, or derived arithmetically from other counts). The script checks every
derived-from-percentage count (round(pct/100 × denominator) == count; for the sources
that truncate instead of rounding, floor(1000 × count / denominator) == 10 × pct) and
refuses to write anything when a check fails. Output is written to a temporary folder and renamed.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayesln import vocab  # noqa: E402
from bayesln.data import schema  # noqa: E402

OUT = ROOT / "data" / "tacrolimus_ln"
OUTCOME_COLS = list(vocab.OUTCOMES)

PMID = {"liu2015": "25383558", "bao2008": "18596121", "mok2016": "25550339", "deng2017": "28478399", "amudalapalli2025": "40653982"}

# ------------------------------------------------------------------------------ sources
SOURCES = [
    # source_id, kind, citation, doi, pmid, location, note
    ("liu2015_abstract", "abstract", "Liu Z, Zhang H, Liu Z, et al. Multitarget therapy for induction treatment of lupus nephritis: a randomized trial. Ann Intern Med 2015;162(1):18-26.", "10.7326/M14-1030", "25383558", "PubMed abstract copies (step2.medbullets.com/evidence/25383558; ard.bmj.com external-ref access_num=25383558)", "Full text not read; efficacy denominators not verified."),
    ("bao2008_pubmed", "abstract", "Bao H, Liu ZH, Xie HL, Hu WX, Zhang HT, Li LS. Successful treatment of class V+IV lupus nephritis with multitarget therapy. J Am Soc Nephrol 2008;19(10):2001-10.", "10.1681/ASN.2007121272", "18596121", "pubmed.gov/18596121", ""),
    ("bao2008_ncp", "secondary", "Nature Clinical Practice Rheumatology research summary of Bao et al. 2008.", "", "", "nature.com/articles/ncprheum0891", "Gives 18 [90%] vs 9 [45%] complete or partial remission at 6 months."),
    ("mok2016_pubmed", "abstract", "Mok CC, Ying KY, Yim CW, et al. Tacrolimus versus mycophenolate mofetil for induction therapy of lupus nephritis: a randomised controlled trial and long-term follow-up. Ann Rheum Dis 2016;75(1):30-6.", "10.1136/annrheumdis-2014-206456", "25550339", "ncbi.nlm.nih.gov/pubmed/25550339", "Arm sizes confirmed by ACR 2019 abstract 859."),
    ("chen2012_abstract", "abstract", "Chen W, Liu Q, Chen W, Tang X, Fu P, Liu F, et al. Outcomes of maintenance therapy with tacrolimus versus azathioprine for active lupus nephritis: a multicenter randomized clinical trial.", "", "", "abstract on globalauthorid.com", "Journal and DOI not found in what was read."),
    ("seed000", "seed", "Table 4 of a review of paediatric lupus nephritis treatment studies. Front Pediatr 2022;10:884634.", "10.3389/fped.2022.884634", "", "shared/seeds/000_c517153f0133ba14.txt", ""),
    ("seed002", "seed", "Gu F, Wang D, Zhang H, Feng X, Gilkeson GS, Shi S, Sun L. Allogeneic mesenchymal stem cell transplantation for lupus nephritis patients refractory to conventional therapy. Clin Rheumatol 2014.", "10.1007/s10067-014-2754-4", "", "shared/seeds/002_33d5a6186f5aa012.txt", ""),
    ("seed003", "seed", "News article on Zheng Z, Zhang H, Peng X, et al. Effect of tacrolimus vs intravenous cyclophosphamide on complete or partial response in patients with lupus nephritis: a randomized clinical trial. JAMA Netw Open 2022;5(3):e224492.", "", "", "shared/seeds/003_e0c597d19725d2d6.txt", "DOI not read directly."),
    ("seed004", "meta_analysis", "Kraaij T, et al. The role of tacrolimus in lupus nephritis: a systematic review and meta-analysis. Lupus Sci Med (about 2016).", "", "", "shared/seeds/004_ea5acae65f38655c.txt", "Seed has no DOI; source of the published pooled RRs."),
    ("fei2013_record", "abstract", "Fei Y, Wu Q, Zhang W, et al. Low-dose tacrolimus in treating lupus nephritis refractory to cyclophosphamide: a prospective cohort study. 2013.", "", "", "record on scholars.mssm.edu", "Journal and DOI not shown."),
    ("tanaka_karger", "abstract", "Tanaka et al. Long-term tacrolimus-based immunosuppressive treatment for young people with lupus nephritis: a prospective study in daily practice. Nephron Clin Pract 121(3-4):c165.", "", "", "karger.com nec/article-abstract/121/3-4/c165", "Year not printed in the text read."),
    ("deng2017_abstract", "abstract", "Deng D, Zhang P, Guo Y, Lim TO. A randomised double-blind, placebo-controlled trial of allogeneic umbilical cord-derived mesenchymal stem cell for lupus nephritis. Ann Rheum Dis 2017;76(8):1436-1439.", "10.1136/annrheumdis-2017-211073", "28478399", "PubMed mirror; ard.bmj.com/content/76/8/1436", ""),
    ("zhang2006_iv_abstract", "abstract", "Zhang et al. 2006 (ref. 25 of Zhou 2019 DDDT Table 1, PMC6420100): FK506 vs IV cyclophosphamide in class IV-G lupus nephritis (Chinese-language abstract).", "", "", "soolun.net/periodical/0397f3029466af1b923a692fd5127a99.html", "Authors, journal and title not read."),
    ("zhang_v_iv_abstract", "abstract", "Probably Zhang et al. 2006 (ref. 24 of Zhou 2019 DDDT Table 1): FK506 vs IV cyclophosphamide in class V+IV lupus nephritis (Chinese-language abstract).", "", "", "soolun.net/periodical/fde92d4d8a7487ae86d948ff9ab746c7.html", "Study id provisional; authors, year, journal not read."),
    ("amudalapalli2025_abstract", "abstract", "Amudalapalli A, et al. Comparative efficacy of intravenous cyclophosphamide, mycophenolate mofetil, and tacrolimus as induction therapy for lupus nephritis: a randomized controlled open-label trial. Lupus 2025;34(12):1211-1220.", "10.1177/09612033251361560", "40653982", "PubMed mirror", ""),
    ("evidence_sheet", "extraction_sheet", "bayesln extraction sheet (shared/evidence/arms.csv and sources.md, round 2): design and descriptor fields.", "", "", "shared/evidence/", "Where no single source holds a descriptor, the sheet's notes say how it was set."),
]

# ---------------------------------------------------------------------------- provenance
# Denominator provenance per arm: (status, source, detail) for the efficacy n and, where
# different, the safety n.
N_EFF = {
    ("liu2015", "tac"): ("assumed", "liu2015_abstract;seed004", "efficacy denominator assumed equal to the safety set '91 of 181' (abstract); Kraaij counts Liu as 362 patients"),
    ("liu2015", "ivcy"): ("assumed", "liu2015_abstract;seed004", "efficacy denominator assumed equal to the safety set '95 of 181' (abstract)"),
    ("bao2008", "tac"): ("read", "bao2008_ncp;bao2008_pubmed", "'18 [90%] vs 9 [45%]' gives 20 per arm; 40 randomised"),
    ("bao2008", "ivcy"): ("read", "bao2008_ncp;bao2008_pubmed", "'18 [90%] vs 9 [45%]' gives 20 per arm; 40 randomised"),
    ("mok2016", "tac"): ("read", "mok2016_pubmed", "'randomised (76 MMF, 74 TAC)'"),
    ("mok2016", "mmf"): ("read", "mok2016_pubmed", "'randomised (76 MMF, 74 TAC)'"),
    ("chen2012", "tac"): ("read", "chen2012_abstract", "'tacrolimus plus prednisone (n = 34)'"),
    ("chen2012", "aza"): ("read", "chen2012_abstract", "'azathioprine plus prednisone (n = 36)'"),
    ("zheng2022", "tac"): ("read", "seed003", "per-protocol set '117/141'"),
    ("zheng2022", "ivcy"): ("read", "seed003", "per-protocol set '93/124'"),
    ("tanaka_tac", "tac"): ("read", "tanaka_karger;seed000", "'Nineteen consecutive patients'"),
    ("fei2013", "tac"): ("read", "fei2013_record", "'A total of 26 LN patients'"),
    ("deng2017", "msc"): ("read", "deng2017_abstract", "'9 of 12 patients (75%) in the hUC-MSC group'"),
    ("deng2017", "placebo"): ("read", "deng2017_abstract", "'5 of 6 patients (83%) in the placebo group'"),
    ("gu2014", "msc"): ("read", "seed002", "'81 Chinese patients'"),
    ("zhang2006_iv", "tac"): ("read", "zhang2006_iv_abstract", "'FK506组[n=17'"),
    ("zhang2006_iv", "ivcy"): ("read", "zhang2006_iv_abstract", "'IVC组(n=17'"),
    ("zhang_v_iv", "tac"): ("read", "zhang_v_iv_abstract", "completers of 6-month induction: 'FK506组15例'"),
    ("zhang_v_iv", "ivcy"): ("read", "zhang_v_iv_abstract", "completers of 6-month induction: 'CTX组16例'"),
    ("amudalapalli2025", "tac"): ("read", "amudalapalli2025_abstract", "'IV CYC (28), MMF (27), and TAC (27)'; ITT"),
    ("amudalapalli2025", "mmf"): ("read", "amudalapalli2025_abstract", "'IV CYC (28), MMF (27), and TAC (27)'; ITT"),
    ("amudalapalli2025", "ivcy"): ("read", "amudalapalli2025_abstract", "'IV CYC (28), MMF (27), and TAC (27)'; ITT"),
}
N_SAFETY = {
    ("zheng2022", "tac"): ("read", "seed003", "safety set: '157 (52.5%) in the tacrolimus group'"),
    ("zheng2022", "ivcy"): ("read", "seed003", "safety set: '142 (47.5%) in the IVCY group'"),
    ("liu2015", "tac"): ("read", "liu2015_abstract", "safety set '91 of 181'"),
    ("liu2015", "ivcy"): ("read", "liu2015_abstract", "safety set '95 of 181'"),
}

R, P, A, Z = "read", "derived_percentage", "derived_arithmetic", "derived_absence"
# (study, arm, outcome): (status, source_id, percentage or None, detail)
EVENTS = {
    ("liu2015", "tac", "complete_response"): (P, "liu2015_abstract", 45.9, "'multitarget group (45.9%) ... showed complete remission'"),
    ("liu2015", "tac", "total_response"): (P, "liu2015_abstract", 83.5, "'overall response (83.5% vs. 63.0%)'; 151/181 = 83.4%"),
    ("liu2015", "tac", "partial_response"): (A, "liu2015_abstract", None, "total_response - complete_response (151 - 83)"),
    ("liu2015", "ivcy", "complete_response"): (P, "liu2015_abstract", 25.6, "'intravenous cyclophosphamide group (25.6%)'; 46/181 = 25.4%, uncertain by ±1"),
    ("liu2015", "ivcy", "total_response"): (P, "liu2015_abstract", 63.0, "'(83.5% vs. 63.0%)'"),
    ("liu2015", "ivcy", "partial_response"): (A, "liu2015_abstract", None, "total_response - complete_response (114 - 46)"),
    ("bao2008", "tac", "complete_response"): (P, "bao2008_pubmed", 50.0, "'complete remission ... at 6 and 9 mo (50 and 65%)'"),
    ("bao2008", "tac", "partial_response"): (R, "bao2008_pubmed", None, "'At 6 mo, eight (40%) patients in each group experienced partial remission'"),
    ("bao2008", "tac", "total_response"): (R, "bao2008_ncp", None, "'(18 [90%] vs 9 [45%]; P = 0.002)'"),
    ("bao2008", "tac", "death"): (R, "bao2008_pubmed", None, "'There were no deaths during this study.'"),
    ("bao2008", "ivcy", "complete_response"): (P, "bao2008_pubmed", 5.0, "'than with IVCY (5 and 15%, respectively)'"),
    ("bao2008", "ivcy", "partial_response"): (R, "bao2008_pubmed", None, "'eight (40%) patients in each group'"),
    ("bao2008", "ivcy", "total_response"): (R, "bao2008_ncp", None, "'(18 [90%] vs 9 [45%]'"),
    ("bao2008", "ivcy", "death"): (R, "bao2008_pubmed", None, "'There were no deaths during this study.'"),
    ("mok2016", "tac", "complete_response"): (P, "mok2016_pubmed", 62.0, "'the rate of CR was 59% in the MMF and 62% in the TAC group'"),
    ("mok2016", "tac", "severe_infection"): (P, "mok2016_pubmed", 5.4, "'Major infective episodes ... 5.4% patients treated with TAC'"),
    ("mok2016", "mmf", "complete_response"): (P, "mok2016_pubmed", 59.0, "'the rate of CR was 59% in the MMF'"),
    ("mok2016", "mmf", "severe_infection"): (P, "mok2016_pubmed", 9.2, "'Major infective episodes occurred in 9.2% patients treated with MMF'"),
    ("chen2012", "tac", "complete_response"): (R, "seed004", None, "'56% achieved a complete remission (19 out of 34)'"),
    ("chen2012", "tac", "partial_response"): (R, "seed004", None, "'44% achieved a partial remission (15 out of 34)'"),
    ("chen2012", "tac", "total_response"): (A, "seed004", None, "complete + partial (19 + 15); 'maintained' response at 6 months"),
    ("chen2012", "tac", "leucopenia"): (P, "seed000", 9.0, "'Leucopenia was significantly more frequent in the AZA group than the TAC group (47% vs. 9%'"),
    ("chen2012", "aza", "complete_response"): (R, "seed004", None, "'64% achieved complete remission (23 out of 36)'"),
    ("chen2012", "aza", "partial_response"): (R, "seed004", None, "'31% a partial remission (11 out of 36)'"),
    ("chen2012", "aza", "total_response"): (A, "seed004", None, "complete + partial (23 + 11)"),
    ("chen2012", "aza", "leucopenia"): (P, "seed000", 47.0, "'(47% vs. 9%'"),
    ("zheng2022", "tac", "total_response"): (R, "seed003", None, "'83.0% (117/141) in the tacrolimus group'"),
    ("zheng2022", "tac", "complete_response"): (P, "seed003", 49.6, "'complete remission rate of tacrolimus was 49.6%'"),
    ("zheng2022", "tac", "partial_response"): (P, "seed003", 33.3, "'the partial remission rate was 33.3%'; 70 + 47 = 117"),
    ("zheng2022", "tac", "severe_infection"): (P, "seed003", 8.9, "'The most common serious study drug-related TEAE was infection (8.9% vs 16.2%)' on the safety set; treat with caution"),
    ("zheng2022", "tac", "serious_adverse_event"): (R, "seed003", None, "'Serious adverse events (TEAEs) were reported in 29 patients (18.5%)'"),
    ("zheng2022", "ivcy", "total_response"): (R, "seed003", None, "'75.0% (93/124) in the IVCY group'"),
    ("zheng2022", "ivcy", "complete_response"): (P, "seed003", 36.3, "'cyclophosphamide was 36.3%'"),
    ("zheng2022", "ivcy", "partial_response"): (P, "seed003", 38.7, "'partial ... 38.7%'; 45 + 48 = 93"),
    ("zheng2022", "ivcy", "severe_infection"): (P, "seed003", 16.2, "'infection (8.9% vs 16.2%)' on the safety set"),
    ("zheng2022", "ivcy", "serious_adverse_event"): (R, "seed003", None, "'and 35 patients (24.6%) in the IVCY group'"),
    ("tanaka_tac", "tac", "complete_response"): (R, "seed000", None, "'Complete response-12/19 (63%)'"),
    ("tanaka_tac", "tac", "partial_response"): (R, "seed000", None, "'Partial response-5/19 (26%)'"),
    ("tanaka_tac", "tac", "total_response"): (A, "seed000", None, "complete + partial (12 + 5); 'No response-2/19'"),
    ("tanaka_tac", "tac", "serious_adverse_event"): (R, "seed000", None, "'No serious adverse effects were observed.'"),
    ("fei2013", "tac", "complete_response"): (R, "seed000", None, "'Complete remission at 6 months: 10/26 patients (38.5%)'"),
    ("fei2013", "tac", "partial_response"): (R, "seed000", None, "'Partial remission at 6 months: 13/26 (50%)'"),
    ("fei2013", "tac", "total_response"): (A, "seed000;fei2013_record", None, "complete + partial (10 + 13); abstract: 'Complete or partial response was observed in 88.46%' = 23/26"),
    ("fei2013", "tac", "severe_infection"): (R, "fei2013_record", None, "'one patient developed severe lung infection'"),
    ("deng2017", "msc", "total_response"): (R, "deng2017_abstract", None, "'Remission occurred in 9 of 12 patients (75%) in the hUC-MSC group'"),
    ("deng2017", "msc", "leucopenia"): (R, "deng2017_abstract", None, "'One patient on hUC-MSC had leucopenia, pneumonia and subcutaneous abscess'"),
    ("deng2017", "msc", "infection"): (R, "deng2017_abstract", None, "two patients with infection (one pneumonia + abscess, one died of severe pneumonia): at least 2"),
    ("deng2017", "msc", "severe_infection"): (R, "deng2017_abstract", None, "'another died of severe pneumonia': at least 1"),
    ("deng2017", "msc", "death"): (R, "deng2017_abstract", None, "'another died of severe pneumonia'"),
    ("deng2017", "placebo", "total_response"): (R, "deng2017_abstract", None, "'5 of 6 patients (83%) in the placebo group'"),
    ("deng2017", "placebo", "death"): (Z, "deng2017_abstract", None, "placebo AEs listed as 'a stroke' and 'ascites'; the only death reported was in the hUC-MSC arm"),
    ("gu2014", "msc", "total_response"): (R, "seed002", None, "'60.5 % (49/81) patients achieved renal remission during 12-month visit'"),
    ("gu2014", "msc", "death"): (A, "seed002", None, "81 - 77: 'the overall rate of survival was 95 % (77/81)'"),
    ("zhang2006_iv", "tac", "complete_response"): (R, "zhang2006_iv_abstract", None, "'FK506组有11例患者获得CR(11/17,64·7%)'"),
    ("zhang2006_iv", "tac", "total_response"): (P, "zhang2006_iv_abstract", 94.1, "'有效率分别为94·1%和82·4%'"),
    ("zhang2006_iv", "tac", "partial_response"): (A, "zhang2006_iv_abstract", None, "total_response - complete_response (16 - 11)"),
    ("zhang2006_iv", "tac", "leucopenia"): (R, "zhang2006_iv_abstract", None, "'FK506组...未见白细胞减少' (no leucopenia in the FK506 group)"),
    ("zhang2006_iv", "ivcy", "complete_response"): (R, "zhang2006_iv_abstract", None, "'高于IVC组(7/17,41·2%)'"),
    ("zhang2006_iv", "ivcy", "total_response"): (P, "zhang2006_iv_abstract", 82.4, "'有效率分别为94·1%和82·4%'"),
    ("zhang2006_iv", "ivcy", "partial_response"): (A, "zhang2006_iv_abstract", None, "total_response - complete_response (14 - 7)"),
    ("zhang_v_iv", "tac", "complete_response"): (R, "zhang_v_iv_abstract", None, "'FK506组4例患者获得CR(26·7%)'"),
    ("zhang_v_iv", "tac", "partial_response"): (R, "zhang_v_iv_abstract", None, "'10例患者PR(66·7%)'"),
    ("zhang_v_iv", "tac", "total_response"): (A, "zhang_v_iv_abstract", None, "complete + partial (4 + 10); agrees with the published 93.3% (14/15)"),
    ("zhang_v_iv", "ivcy", "complete_response"): (R, "zhang_v_iv_abstract", None, "'CTX组仅1例CR(6·3%)'"),
    ("zhang_v_iv", "ivcy", "partial_response"): (R, "zhang_v_iv_abstract", None, "'7例PR(43·8%)'"),
    ("zhang_v_iv", "ivcy", "total_response"): (A, "zhang_v_iv_abstract", None, "complete + partial (1 + 7); agrees with the published 50% (8/16)"),
    ("amudalapalli2025", "tac", "total_response"): (P, "amudalapalli2025_abstract", 62.9, "'renal response rates were 53.5%, 66.6%, and 62.9% in IV CYC, MMF, and, TAC groups' (figures truncated, not rounded)"),
    ("amudalapalli2025", "tac", "death"): (R, "amudalapalli2025_abstract", None, "'one patient in TAC group died due to serious infections'"),
    ("amudalapalli2025", "mmf", "total_response"): (P, "amudalapalli2025_abstract", 66.6, "'66.6%' in the MMF group (truncated)"),
    ("amudalapalli2025", "ivcy", "total_response"): (P, "amudalapalli2025_abstract", 53.5, "'53.5%' in the IV CYC group (truncated)"),
    ("amudalapalli2025", "ivcy", "death"): (R, "amudalapalli2025_abstract", None, "'Three patients in the IV CYC group ... died due to serious infections'"),
}
# Percentages that the source truncates rather than rounds (see sources.md).
TRUNCATED = {("amudalapalli2025", "tac"), ("amudalapalli2025", "mmf"), ("amudalapalli2025", "ivcy")}

STUDY_FROM_SHEET = ("design", "phase", "year", "first_author", "journal", "doi", "country")
ARM_FROM_SHEET = (
    "arm_label", "regimen", "n_randomized", "n_analysed", "n_safety", "timepoint_weeks", "asian_fraction",
    "mean_age", "female_fraction", "class_v_fraction", "class_iii_iv_fraction", "pediatric", "refractory",
    "tac_target_trough",
)


def check_percentage(key, value, pct, denom) -> str | None:
    exact = pct / 100 * denom
    if key[:2] in TRUNCATED:
        # the source truncates to one decimal: floor(1000 v / d) == 10 pct (integer arithmetic)
        ok = (1000 * value) // denom == round(10 * pct)
    else:
        ok = round(exact) == value
    return None if ok else f"{key}: {pct}% of {denom} = {exact:.2f} does not give {value}"


def build(evidence: Path) -> dict[str, str]:
    rows = list(csv.DictReader((evidence / "arms.csv").open(encoding="utf-8")))
    trials, prov, errors = [], [], []
    used = set()
    for r in rows:
        study, arm = r["study_id"], r["treatment"]
        base = {"study": study, "arm": arm, "treatment": arm}
        base.update({k: r[k] for k in ARM_FROM_SHEET})
        base["arm_notes"] = r["notes"]
        base.update({k: r[k] for k in STUDY_FROM_SHEET})
        base["pmid"] = PMID.get(study, "")
        found = False
        for outcome in OUTCOME_COLS:
            v = r[outcome]
            if v == "":
                continue
            found = True
            efficacy = outcome in vocab.EFFICACY_OUTCOMES
            n_col = "n_analysed" if efficacy or r["n_safety"] == "" else "n_safety"
            n = r[n_col]
            if n == "":
                errors.append(f"{study}/{arm}/{outcome}: no denominator")
                continue
            trials.append({**base, "outcome": outcome, "events": v, "n": n})
            key = (study, arm, outcome)
            if key not in EVENTS:
                errors.append(f"{key}: no provenance entry")
                continue
            used.add(key)
            status, src, pct, detail = EVENTS[key]
            denom = int(n)
            if status == P:
                err = check_percentage(key, int(v), pct, denom)
                if err:
                    errors.append(err)
            prov.append({"study": study, "arm": arm, "outcome": outcome, "field": "events", "value": v, "status": status,
                         "source_id": src, "percentage": "" if pct is None else repr(pct),
                         "denominator": str(denom) if status == P else "", "detail": detail})
            nsrc = (N_EFF if n_col == "n_analysed" else N_SAFETY).get((study, arm))
            if nsrc is None:
                errors.append(f"{key}: no provenance for the denominator ({n_col})")
                continue
            prov.append({"study": study, "arm": arm, "outcome": outcome, "field": "n", "value": n, "status": nsrc[0],
                         "source_id": nsrc[1], "percentage": "", "denominator": "", "detail": f"{n_col}: {nsrc[2]}"})
        if not found:
            trials.append({**base, "outcome": "", "events": "", "n": ""})
    errors += [f"{k}: provenance entry for a count the sheet does not have" for k in set(EVENTS) - used]
    if errors:
        raise SystemExit("refusing to build:\n  " + "\n  ".join(errors))

    def to_csv(records, cols):
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for rec in records:
            w.writerow({c: rec.get(c, "") for c in cols})
        return buf.getvalue()

    prov_cols = ["study", "arm", "outcome", "field", "value", "status", "source_id", "percentage", "denominator", "detail"]
    src_cols = ["source_id", "kind", "citation", "doi", "pmid", "location", "note"]
    files = {
        "trials.csv": to_csv(trials, list(schema.ORDER)),
        "provenance.csv": to_csv(prov, prov_cols),
        "sources.csv": to_csv([dict(zip(src_cols, s)) for s in SOURCES], src_cols),
        "published_pooled.csv": (evidence / "published_pooled.csv").read_text(encoding="utf-8"),
    }
    files["datapackage.json"] = json.dumps(datapackage(), indent=2, ensure_ascii=False) + "\n"
    return files


def datapackage() -> dict:
    s = lambda name, desc, **kw: {"name": name, "type": kw.pop("type", "string"), "description": desc, **kw}  # noqa: E731
    return {
        "profile": "tabular-data-package",
        "name": "tacrolimus_ln",
        "title": "Tacrolimus in lupus nephritis: arm-level trial counts with per-number provenance",
        "description": "16 studies (12 with outcome counts) from the bayesln extraction sheet; blank = unknown, never zero. Built by scripts/build_tacrolimus_ln.py.",
        "licenses": [{"name": "CC-BY-4.0"}],
        "resources": [
            {"name": "trials", "path": "trials.csv", "profile": "tabular-data-resource", "format": "csv", "encoding": "utf-8",
             "schema": schema.table_schema()},
            {"name": "provenance", "path": "provenance.csv", "profile": "tabular-data-resource", "format": "csv", "encoding": "utf-8",
             "schema": {"fields": [
                 s("study", "Study id.", constraints={"required": True}),
                 s("arm", "Arm id.", constraints={"required": True}),
                 s("outcome", "Outcome of the count.", constraints={"required": True, "enum": list(vocab.OUTCOMES)}),
                 s("field", "Which count: events or its denominator n.", constraints={"required": True, "enum": ["events", "n"]}),
                 s("value", "The count (equals trials.csv).", type="integer", constraints={"required": True}),
                 s("status", "read = printed in the source; derived_percentage = percentage x denominator, rounded; derived_arithmetic = sum/difference of other counts; derived_absence = zero from a complete listing that omits it; assumed = see detail.",
                   constraints={"required": True, "enum": ["read", "derived_percentage", "derived_arithmetic", "derived_absence", "assumed"]}),
                 s("source_id", "';'-separated ids in sources.csv.", constraints={"required": True}),
                 s("percentage", "Stated percentage, for derived_percentage.", type="number"),
                 s("denominator", "Denominator the percentage was applied to.", type="integer"),
                 s("detail", "Quote or arithmetic."),
             ], "primaryKey": ["study", "arm", "outcome", "field"],
                 "foreignKeys": [{"fields": "source_id", "reference": {"resource": "sources", "fields": "source_id"}}]}},
            {"name": "sources", "path": "sources.csv", "profile": "tabular-data-resource", "format": "csv", "encoding": "utf-8",
             "schema": {"fields": [
                 s("source_id", "Source id.", constraints={"required": True}),
                 s("kind", "Kind of source.", constraints={"required": True, "enum": ["abstract", "secondary", "seed", "meta_analysis", "extraction_sheet"]}),
                 s("citation", "Citation.", constraints={"required": True}),
                 s("doi", "DOI, when read."), s("pmid", "PubMed id, when read."),
                 s("location", "Where it was read."), s("note", "Caveats."),
             ], "primaryKey": ["source_id"]}},
            {"name": "published_pooled", "path": "published_pooled.csv", "profile": "tabular-data-resource", "format": "csv", "encoding": "utf-8",
             "schema": {"fields": [
                 s("source", "Publishing meta-analysis (kraaij_meta = seed004).", constraints={"required": True}),
                 s("outcome", "Outcome.", constraints={"required": True, "enum": list(vocab.OUTCOMES)}),
                 s("subgroup", "TAC regimen subgroup.", constraints={"required": True, "enum": ["all", "duo", "triple"]}),
                 s("trials", "';'-separated study ids pooled.", constraints={"required": True}),
                 s("measure", "Effect measure.", constraints={"required": True, "enum": ["RR", "OR", "RD"]}),
                 s("model", "Pooling model.", constraints={"required": True}),
                 s("estimate", "Pooled estimate.", type="number", constraints={"required": True}),
                 s("ci_low", "Lower 95% CI.", type="number", constraints={"required": True}),
                 s("ci_high", "Upper 95% CI.", type="number", constraints={"required": True}),
                 s("note", "Note."),
             ]}},
        ],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = ROOT.parent / "shared" / "evidence"
    ap.add_argument("--evidence", type=Path,
                    default=shared if (shared / "arms.csv").is_file() else ROOT / "validation" / "evidence",
                    help="the extraction sheet (default ../shared/evidence, else the snapshot in validation/evidence)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    files = build(a.evidence)
    readme = a.out / "README.md"
    keep_readme = readme.read_text(encoding="utf-8") if readme.exists() else None
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=a.out.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if keep_readme is not None:
            (tmp / "README.md").write_text(keep_readme, encoding="utf-8")
        if a.out.exists():
            shutil.rmtree(a.out)
        tmp.rename(a.out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    print(f"wrote {a.out} ({', '.join(sorted(files))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
