"""TrialData: the tidy, typed trial table every later layer consumes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayesln import vocab
from bayesln.data import schema


class ContrastError(ValueError):
    """A two-arm contrast cannot be formed as requested."""


def _csv_field(s: str) -> str:
    """One CSV field, quoted when it holds a comma, a quote or a line break. (The csv
    module with a "\\n" line terminator leaves a bare "\\r" unquoted, which no CSV reader
    reads back.)"""
    if any(ch in s for ch in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def _as_tuple(x: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if x is None:
        return None
    if isinstance(x, str):
        return tuple(s.strip() for s in x.split(",") if s.strip())
    return tuple(x)


def _arm_label(arms: str) -> str:
    """The label of one side of a contrast: its arm, or its pooled arms joined by '+'."""
    return "+".join(a.strip() for a in str(arms).split(",") if a.strip())


class TrialData:
    """Arm-level trial data in three linked tables.

    Attributes
    ----------
    studies : DataFrame indexed by ``study``: design, phase, year, bibliographic columns,
        and study-level covariates: the n-weighted mean of the arms' values (weights
        n_analysed, else n_randomized, else equal), missing when any arm's value is
        missing; flags are true when any arm is flagged (missing when any is missing).
    arms : DataFrame, one row per (study, arm): treatment, regimen, ``node`` (network
        node, e.g. ``tac_triple``), denominators, arm-level covariates.
    outcomes : DataFrame, long: study, arm, outcome, events, n (nullable Int64). A blank
        count is unknown, never zero.
    provenance, sources, published : DataFrames for bundled datasets, else None.
    """

    def __init__(
        self,
        long: pd.DataFrame,
        *,
        name: str = "user data",
        provenance: pd.DataFrame | None = None,
        sources: pd.DataFrame | None = None,
        published: pd.DataFrame | None = None,
        extra_outcomes: Sequence[str] = (),
        extra_treatments: Sequence[str] = (),
    ):
        self.name = name
        self.provenance = provenance
        self.sources = sources
        self.published = published
        self.extra_outcomes = tuple(extra_outcomes)
        self.extra_treatments = tuple(extra_treatments)
        long = long.reset_index(drop=True)
        self._long = long
        self.arms = self._build_arms(long)
        self.studies = self._build_studies(long, self.arms)
        out = long.loc[long["outcome"].notna(), ["study", "arm", "outcome", "events", "n"]]
        self.outcomes = out.reset_index(drop=True)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _build_arms(long: pd.DataFrame) -> pd.DataFrame:
        cols = ["study"] + list(schema.ARM_COLUMNS)
        arms = long[cols].groupby(["study", "arm"], sort=False, dropna=False).first().reset_index()
        arms.insert(
            arms.columns.get_loc("regimen") + 1,
            "node",
            pd.array(
                [vocab.treatment_node(t, None if pd.isna(r) else r) for t, r in zip(arms["treatment"], arms["regimen"])],
                dtype="string",
            ),
        )
        return arms

    @staticmethod
    def _build_studies(long: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
        cols = ["study"] + list(schema.STUDY_COLUMNS)
        studies = long[cols].groupby("study", sort=False).first()
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(arms["study"]):
            groups.setdefault(s, []).append(i)
        studies.insert(0, "n_arms", pd.array([len(groups[s]) for s in studies.index], dtype="Int64"))
        # Arm weights for study-level covariates: the analysed n, else the randomised n;
        # when some arm has neither, the arms are weighted equally.
        n_an = arms["n_analysed"].to_numpy(dtype=float, na_value=np.nan)
        n_ra = arms["n_randomized"].to_numpy(dtype=float, na_value=np.nan)
        w_all = np.where(np.isnan(n_an), n_ra, n_an)
        for cov in schema.COVARIATES:
            col = schema.BY_NAME[cov]
            vals = arms[cov].to_numpy(dtype=object, na_value=None)
            out = []
            for study in studies.index:
                idx = groups[study]
                v = [vals[i] for i in idx]
                if any(x is None for x in v):
                    out.append(pd.NA)  # missing when any arm is missing (ARCHITECTURE.md)
                elif col.type == "boolean":
                    out.append(bool(any(v)))
                else:
                    w = w_all[idx]
                    if np.isnan(w).any():
                        w = np.ones(len(idx))
                    out.append(float(np.dot(np.asarray(v, dtype=float), w) / w.sum()))
            dtype = "boolean" if col.type == "boolean" else "Float64"
            studies[cov] = pd.array(out, dtype=dtype)
        return studies

    # ------------------------------------------------------------------ views
    def long(self) -> pd.DataFrame:
        """The documented long format: one row per study × arm × outcome."""
        return self._long.copy()

    @property
    def study_ids(self) -> list[str]:
        return list(self.studies.index)

    def __len__(self) -> int:
        return len(self.studies)

    def __repr__(self) -> str:
        k = len(self.studies)
        with_counts = self.outcomes.dropna(subset=["events", "n"])["study"].nunique()
        outs = sorted(self.outcomes["outcome"].unique())
        return (
            f"<TrialData {self.name!r}: {k} studies ({with_counts} with outcome counts), "
            f"{len(self.arms)} arms, outcomes: {', '.join(outs)}>"
        )

    def describe(self) -> pd.DataFrame:
        """One row per study: design, phase, arms, and which outcomes have known counts."""
        known = self.outcomes.dropna(subset=["events", "n"])
        rep = known.groupby("study")["outcome"].apply(lambda s: ", ".join(sorted(set(s))))
        out = self.studies[["design", "phase", "year", "n_arms"]].copy()
        out["treatments"] = self.arms.groupby("study", sort=False)["node"].apply(lambda s: ", ".join(s))
        out["outcomes_with_counts"] = rep.reindex(out.index).fillna("(none known)")
        return out

    # ------------------------------------------------------------------ selection
    def select(
        self,
        *,
        outcomes: str | Iterable[str] | None = None,
        phases: str | Iterable[str] | None = None,
        designs: str | Iterable[str] | None = None,
        studies: str | Iterable[str] | None = None,
        treatments: str | Iterable[str] | None = None,
        exclude_studies: str | Iterable[str] | None = None,
    ) -> TrialData:
        """A new TrialData restricted to the given outcomes / phases / designs / studies /
        treatments (treatment labels or nodes). Unknown names raise ValueError."""
        long = self._long
        keep = pd.Series(True, index=long.index)
        st = self.studies
        if outcomes is not None:
            o = self._check_names(_as_tuple(outcomes), set(self.outcomes["outcome"]) | set(vocab.OUTCOMES), "outcome")
            keep &= long["outcome"].isin(o).fillna(False).astype(bool)
        if phases is not None:
            p = self._check_names(_as_tuple(phases), set(vocab.PHASES), "phase")
            keep &= long["study"].isin(st.index[st["phase"].isin(p).fillna(False).astype(bool)])
        if designs is not None:
            d = self._check_names(_as_tuple(designs), set(vocab.DESIGNS), "design")
            keep &= long["study"].isin(st.index[st["design"].isin(d).fillna(False).astype(bool)])
        if studies is not None:
            s = self._check_names(_as_tuple(studies), set(st.index), "study")
            keep &= long["study"].isin(s)
        if exclude_studies is not None:
            s = self._check_names(_as_tuple(exclude_studies), set(st.index), "study")
            keep &= ~long["study"].isin(s)
        if treatments is not None:
            t = _as_tuple(treatments)
            nodes = set(self.arms["treatment"]) | set(self.arms["node"]) | set(self.extra_treatments)
            nodes |= {vocab.treatment_node("tac", r) for r in vocab.REGIMENS}
            self._check_names(t, nodes | set(vocab.TREATMENTS), "treatment")
            arm_ok = self.arms[self.arms["treatment"].isin(t) | self.arms["node"].isin(t)]
            pairs = set(zip(arm_ok["study"], arm_ok["arm"]))
            keep &= pd.Series([(a, b) in pairs for a, b in zip(long["study"], long["arm"])], index=long.index)
        sub = long[keep]
        return self._derived(sub)

    def _derived(self, long: pd.DataFrame) -> TrialData:
        prov = self.provenance
        if prov is not None:
            keys = set(zip(long["study"], long["arm"]))
            prov = prov[[(s, a) in keys for s, a in zip(prov["study"], prov["arm"])]].reset_index(drop=True)
        return TrialData(
            long, name=self.name, provenance=prov, sources=self.sources, published=self.published,
            extra_outcomes=self.extra_outcomes, extra_treatments=self.extra_treatments,
        )

    @staticmethod
    def _check_names(names, known, what):
        bad = [x for x in names if x not in known]
        if bad:
            raise ValueError(f"unknown {what}(s) {', '.join(map(repr, bad))}; known: {', '.join(sorted(map(str, known)))}")
        return names

    # ------------------------------------------------------------------ analysis tables
    def arm_table(self, outcome: str) -> pd.DataFrame:
        """One row per arm with known events and n for ``outcome``, with the arm's
        treatment, regimen and node and the study's design, phase, year and study-level
        covariates. Arms in this data without known counts are listed in
        ``.attrs["excluded"]`` (study, arm, reason) — never dropped silently."""
        self._check_names((outcome,), set(vocab.OUTCOMES) | set(self.outcomes["outcome"]) | set(self.extra_outcomes),
                          "outcome")
        rows = self.outcomes[self.outcomes["outcome"] == outcome]
        known = rows.dropna(subset=["events", "n"])
        arm_cols = ["study", "arm", "treatment", "regimen", "node", "arm_label", "timepoint_weeks"]
        out = known[["study", "arm", "events", "n"]].merge(self.arms[arm_cols], on=["study", "arm"], how="left")
        st = self.studies[["design", "phase", "year"] + list(schema.COVARIATES)]
        out = out.merge(st, left_on="study", right_index=True, how="left")
        out = out[arm_cols[:5] + ["events", "n"] + [c for c in out.columns if c not in arm_cols[:5] + ["events", "n"]]]
        have = set(zip(known["study"], known["arm"]))
        reported = set(zip(rows["study"], rows["arm"]))
        excl = []
        for s, a in zip(self.arms["study"], self.arms["arm"]):
            if (s, a) in have:
                continue
            reason = f"{outcome} count unknown (blank)" if (s, a) in reported else f"{outcome} not reported"
            excl.append({"study": s, "arm": a, "reason": reason})
        out = out.reset_index(drop=True)
        out.attrs["outcome"] = outcome
        out.attrs["excluded"] = pd.DataFrame(excl, columns=["study", "arm", "reason"])
        return out

    def contrasts(
        self,
        outcome: str,
        treat: str | Iterable[str] = ("tac",),
        control: str | Iterable[str] | None = None,
        *,
        multi_arm: str = "pool",
        on_missing: str = "exclude",
    ) -> pd.DataFrame:
        """Two-arm contrasts, one row per study.

        ``treat`` / ``control`` are treatment labels or network nodes (``tac_duo``); the
        default control is every arm not on the treat side. Where several arms fall on one
        side (Li 2012, Amudalapalli 2025) they are pooled (events and n summed, Cochrane
        Handbook §23.3.4; ``multi_arm="pool"``) or refused (``multi_arm="error"``); an arm
        is never used on both sides or twice. Studies that cannot give a contrast
        (single-arm, a side without known counts) are listed in ``.attrs["excluded"]`` with
        the reason, or raise :class:`ContrastError` when ``on_missing="error"``.
        """
        if multi_arm not in ("pool", "error"):
            raise ValueError("multi_arm must be 'pool' or 'error'")
        if on_missing not in ("exclude", "error"):
            raise ValueError("on_missing must be 'exclude' or 'error'")
        t = _as_tuple(treat) or ()
        c = _as_tuple(control)
        labels = set(self.arms["treatment"]) | set(self.arms["node"]) | set(vocab.TREATMENTS)
        labels |= {vocab.treatment_node("tac", r) for r in ("duo", "triple")}
        self._check_names(t, labels, "treatment")
        if c is not None:
            self._check_names(c, labels, "treatment")
            both = set(t) & set(c)
            if both:
                raise ContrastError(f"label(s) {sorted(both)} given for both treat and control")
        at = self.arm_table(outcome)
        rows, excluded = [], []
        # plain-Python records per study (pandas slicing per study cost ~0.1 s a call)
        flag_t = (self.arms["treatment"].isin(t) | self.arms["node"].isin(t)).tolist()
        flag_c = ([not x for x in flag_t] if c is None
                  else (self.arms["treatment"].isin(c) | self.arms["node"].isin(c)).tolist())
        arms_of: dict = {}
        for st, arm, ft, fc in zip(self.arms["study"], self.arms["arm"], flag_t, flag_c):
            arms_of.setdefault(st, []).append((arm, ft, fc))
        at_of: dict = {}
        for i, (st, arm) in enumerate(zip(at["study"], at["arm"])):
            at_of.setdefault(st, {})[arm] = i
        at_events, at_n = at["events"].tolist(), at["n"].tolist()
        at_regimen = at["regimen"].tolist()
        for study in self.studies.index:
            s_arms = arms_of.get(study, [])
            t_arms = [a for a, ft, _ in s_arms if ft]
            c_arms = [a for a, _, fc in s_arms if fc]
            both_arms = [a for a, ft, fc in s_arms if ft and fc]
            if both_arms:  # e.g. treat="tac_triple", control="tac"
                raise ContrastError(
                    f"study {study!r}: arm(s) {', '.join(both_arms)} match both the treat {list(t)} and the "
                    f"control {list(c)} labels; an arm can be on one side only"
                )
            known = at_of.get(study, {})
            tk = [known[a] for a in known if a in t_arms]  # in arm_table order
            ck = [known[a] for a in known if a in c_arms]
            reason = None
            if not t_arms and not c_arms:
                reason = "no arm matches the treat or control labels"
            elif not t_arms or not c_arms:
                side = "treat" if not t_arms else "control"
                reason = "single-arm study" if len(s_arms) == 1 else f"no {side} arm"
            elif not tk and not ck:
                reason = f"{outcome} not reported"
            elif not tk or not ck:
                reason = f"{outcome} counts unknown for the {'treat' if not tk else 'control'} arm(s)"
            elif len(tk) < len(t_arms) or len(ck) < len(c_arms):
                miss = sorted(set(t_arms + c_arms) - set(known))
                reason = f"{outcome} counts unknown for arm(s) {', '.join(miss)}"
            if reason is not None:
                excluded.append({"study": study, "reason": reason})
                continue
            if multi_arm == "error" and (len(tk) > 1 or len(ck) > 1):
                raise ContrastError(
                    f"study {study!r} has {len(tk)} treat and {len(ck)} control arms for {outcome}; "
                    "choose the arms with treat/control labels or use multi_arm='pool'"
                )
            first = at.iloc[min(known.values())]
            regs = sorted({at_regimen[i] for i in tk if not pd.isna(at_regimen[i])})
            row = {
                "study": study,
                "events_t": int(sum(at_events[i] for i in tk)), "n_t": int(sum(at_n[i] for i in tk)),
                "events_c": int(sum(at_events[i] for i in ck)), "n_c": int(sum(at_n[i] for i in ck)),
                "treat_arms": ",".join(a for a in known if a in t_arms),
                "control_arms": ",".join(a for a in known if a in c_arms),
                "regimen": "+".join(regs) if regs else pd.NA,
                "design": first["design"], "phase": first["phase"], "year": first["year"],
            }
            for cov in schema.COVARIATES:
                row[cov] = first[cov]
            rows.append(row)
        if excluded and on_missing == "error":
            lines = "; ".join(f"{e['study']}: {e['reason']}" for e in excluded)
            raise ContrastError(f"cannot form a {outcome} contrast for: {lines}")
        cols = ["study", "events_t", "n_t", "events_c", "n_c", "treat_arms", "control_arms", "regimen", "design", "phase", "year", *schema.COVARIATES]
        out = pd.DataFrame(rows, columns=cols)
        for k in ("events_t", "n_t", "events_c", "n_c"):
            out[k] = out[k].astype("int64")
        out["year"] = out["year"].astype("Int64")
        out.attrs.update(outcome=outcome, treat=t, control=c, multi_arm=multi_arm,
                         excluded=pd.DataFrame(excluded, columns=["study", "reason"]))
        return out

    def multi_arm_studies(self) -> pd.DataFrame:
        """Studies with more than two arms, with their arms and treatments."""
        g = self.arms.groupby("study", sort=False)
        out = pd.DataFrame({"n_arms": g.size(), "arms": g["arm"].apply(",".join), "nodes": g["node"].apply(",".join)})
        return out[out["n_arms"] > 2]

    # ------------------------------------------------------------------ output
    def to_wide(self, treat: str | Iterable[str] = ("tac",), control: str | Iterable[str] | None = None) -> pd.DataFrame:
        """The wide 2x2 layout (one row per study and outcome): ``study, outcome,
        treatment_t, events_t, n_t, treatment_c, events_c, n_c`` and the study-level
        columns and covariates, from :meth:`contrasts` of every outcome (arms on one side of
        a multi-arm trial pooled; their labels joined by ``+``). Read back by
        :func:`bayesln.read_trials` (the same contrasts)."""
        frames = []
        for o in dict.fromkeys(self.outcomes.dropna(subset=["events", "n"])["outcome"]):
            c = self.contrasts(o, treat=treat, control=control)
            if not len(c):
                continue
            w = pd.DataFrame({"study": c["study"], "outcome": o,
                              "treatment_t": [_arm_label(x) for x in c["treat_arms"]], "events_t": c["events_t"],
                              "n_t": c["n_t"],
                              "treatment_c": [_arm_label(x) for x in c["control_arms"]], "events_c": c["events_c"],
                              "n_c": c["n_c"]})
            st = self.studies.reindex(c["study"])
            for col in schema.STUDY_COLUMNS + schema.COVARIATES:
                if col in st.columns:
                    w[col] = st[col].to_numpy()
            frames.append(w)
        if not frames:
            raise ContrastError("no study has a two-arm contrast for any outcome with these labels")
        return pd.concat(frames, ignore_index=True)

    def to_wide_csv_text(self, treat: str | Iterable[str] = ("tac",), control: str | Iterable[str] | None = None) -> str:
        """:meth:`to_wide` as CSV (blank = unknown; columns blank everywhere left out)."""
        w = self.to_wide(treat, control)
        w = w[[c for c in w.columns if w[c].notna().any()]]
        out = []
        for c in w.columns:
            col = schema.BY_NAME.get(c)
            vals = w[c].to_numpy(dtype=object, na_value=None)
            kind = col.type if col is not None else ("integer" if c.startswith(("events_", "n_")) else "string")
            if kind == "boolean":
                out.append(["" if v is None else ("true" if v else "false") for v in vals])
            elif kind == "number":
                out.append(["" if v is None else repr(float(v)) for v in vals])
            elif kind == "integer":
                out.append(["" if v is None else str(int(v)) for v in vals])
            else:
                out.append(["" if v is None else _csv_field(str(v)) for v in vals])
        return "\n".join([",".join(w.columns)] + [",".join(r) for r in zip(*out)]) + "\n"

    def to_csv_text(self, *, drop_empty: bool = True) -> str:
        """The documented CSV format (blank = unknown). Optional columns that are blank
        everywhere are left out when ``drop_empty``."""
        df = self._long.copy()
        cols = [c for c in schema.ORDER if not (drop_empty and c not in schema.REQUIRED and df[c].isna().all())]
        out = []
        for c in cols:
            col = schema.BY_NAME[c]
            s = df[c].to_numpy(dtype=object, na_value=None)
            if col.type == "boolean":
                out.append(["" if v is None else ("true" if v else "false") for v in s])
            elif col.type == "number":
                out.append(["" if v is None else repr(float(v)) for v in s])
            elif col.type == "integer":
                out.append(["" if v is None else str(int(v)) for v in s])
            else:
                out.append(["" if v is None else _csv_field(str(v)) for v in s])
        lines = [",".join(cols)] + [",".join(row) for row in zip(*out)]
        return "\n".join(lines) + "\n"

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the documented CSV format atomically (temporary file, then rename)."""
        path = Path(path)
        text = self.to_csv_text()
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".csv", dir=path.parent if str(path.parent) else ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def fingerprint(self) -> str:
        """sha256 of the canonical CSV text (all columns): identifies the data of a run."""
        return hashlib.sha256(self.to_csv_text(drop_empty=False).encode()).hexdigest()

    def equals(self, other: TrialData) -> bool:
        return self.to_csv_text(drop_empty=False) == other.to_csv_text(drop_empty=False)
