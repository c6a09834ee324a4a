"""The documented arm-level CSV format.

One row per study × arm × outcome. Only ``study, treatment, outcome, events, n`` are
required; every other column is optional. Columns have a *level*:

- ``outcome``: may differ on every row (events, n);
- ``arm``: must be the same on every row of one (study, arm);
- ``study``: must be the same on every row of one study.

An arm whose outcomes are all unknown may be listed with one row whose ``outcome``,
``events`` and ``n`` are blank, so the trial stays visible. Blank always means unknown:
it is never read as zero.

The same definitions generate the Frictionless-style ``datapackage.json`` of the bundled
datasets (:func:`table_schema`), so the file and the validator cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bayesln import vocab


#: the largest count (events, n, arm sizes) accepted anywhere: far above any trial and far
#: below 2**53, so every count and every product of two counts' sums stays exact enough in
#: float64 (the frequentist variances, the models)
COUNT_MAX = 10**9


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # "string" | "integer" | "number" | "boolean"
    level: str  # "outcome" | "arm" | "study"
    description: str
    required: bool = False
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = None
    extensible: bool = False  # enum can be extended per call (outcomes, treatments)
    tags: tuple[str, ...] = field(default_factory=tuple)


COLUMNS: tuple[Column, ...] = (
    Column("study", "string", "study", "Study identifier (e.g. liu2015).", required=True),
    Column("arm", "string", "arm", "Arm identifier within the study; defaults to the treatment label."),
    Column(
        "treatment", "string", "arm", "Treatment label of the arm.", required=True,
        enum=tuple(vocab.TREATMENTS), extensible=True,
    ),
    Column(
        "outcome", "string", "outcome",
        "Outcome counted in this row; blank only for an arm listed without any known outcome.",
        required=True, enum=tuple(vocab.OUTCOMES), extensible=True,
    ),
    Column("events", "integer", "outcome", "Patients with the outcome; blank = unknown.", required=True, minimum=0, unit="patients"),
    Column("n", "integer", "outcome", "Denominator for this outcome; blank = unknown.", required=True, minimum=1, unit="patients"),
    Column("arm_label", "string", "arm", "Regimen as described in the source."),
    Column(
        "regimen", "string", "arm",
        "duo = TAC + steroids; triple = TAC + mycophenolate + steroids; control = comparator arm; other = non-TAC experimental arm.",
        enum=vocab.REGIMENS,
    ),
    Column("n_randomized", "integer", "arm", "Patients randomised to the arm.", minimum=1, unit="patients"),
    Column("n_analysed", "integer", "arm", "Efficacy denominator.", minimum=1, unit="patients"),
    Column("n_safety", "integer", "arm", "Safety-set denominator, when it differs from n_analysed.", minimum=1, unit="patients"),
    Column("timepoint_weeks", "number", "arm", "Time of the outcome assessment (6 months = 26 weeks).", minimum=0, unit="weeks"),
    Column("asian_fraction", "number", "arm", "Fraction of patients of Asian ethnicity.", minimum=0, maximum=1, unit="fraction", tags=("covariate",)),
    Column("mean_age", "number", "arm", "Mean (or median when only that is given) age.", minimum=0, maximum=120, unit="years", tags=("covariate",)),
    Column("female_fraction", "number", "arm", "Fraction of women.", minimum=0, maximum=1, unit="fraction", tags=("covariate",)),
    Column("class_v_fraction", "number", "arm", "Fraction with pure class V (membranous) lupus nephritis.", minimum=0, maximum=1, unit="fraction", tags=("covariate",)),
    Column("class_iii_iv_fraction", "number", "arm", "Fraction with class III/IV (±V) lupus nephritis.", minimum=0, maximum=1, unit="fraction", tags=("covariate",)),
    Column("pediatric", "boolean", "arm", "Paediatric or mixed paediatric/young-adult population.", tags=("covariate",)),
    Column("refractory", "boolean", "arm", "Disease refractory to previous therapy.", tags=("covariate",)),
    Column("tac_target_trough", "string", "arm", "Tacrolimus target trough level as reported."),
    Column("arm_notes", "string", "arm", "Caveats for the arm's numbers."),
    Column("design", "string", "study", "Study design.", enum=vocab.DESIGNS),
    Column("phase", "string", "study", "Treatment phase.", enum=vocab.PHASES),
    Column("year", "integer", "study", "Publication year.", minimum=1900, maximum=2100),
    Column("first_author", "string", "study", "First author."),
    Column("journal", "string", "study", "Journal."),
    Column("doi", "string", "study", "DOI of the main publication."),
    Column("pmid", "string", "study", "PubMed id of the main publication."),
    Column("country", "string", "study", "Country where the trial ran."),
)

BY_NAME = {c.name: c for c in COLUMNS}
REQUIRED = tuple(c.name for c in COLUMNS if c.required)
ARM_COLUMNS = tuple(c.name for c in COLUMNS if c.level == "arm")
STUDY_COLUMNS = tuple(c.name for c in COLUMNS if c.level == "study" and c.name != "study")
COVARIATES = tuple(c.name for c in COLUMNS if "covariate" in c.tags)
ORDER = tuple(c.name for c in COLUMNS)

TRUE_WORDS = frozenset({"true", "yes", "1", "t", "y"})
FALSE_WORDS = frozenset({"false", "no", "0", "f", "n"})


def table_schema() -> dict:
    """Frictionless Table Schema of the documented format (used in datapackage.json)."""
    fields = []
    for c in COLUMNS:
        f: dict = {"name": c.name, "type": c.type, "description": c.description, "level": c.level}
        cons: dict = {}
        if c.required and c.name in ("study", "treatment"):
            cons["required"] = True
        if c.enum and not c.extensible:
            cons["enum"] = list(c.enum)
        if c.minimum is not None:
            cons["minimum"] = c.minimum
        if c.maximum is not None:
            cons["maximum"] = c.maximum
        if cons:
            f["constraints"] = cons
        if c.enum and c.extensible:
            f["known_values"] = list(c.enum)
        if c.unit:
            f["unit"] = c.unit
        fields.append(f)
    return {
        "fields": fields,
        "missingValues": [""],
        "primaryKey": ["study", "arm", "outcome"],
    }
