"""Network meta-analysis of treatments (arm-based consistency model, NICE DSU TSD2).

Treatments are the network nodes of the arms (``tac_duo``, ``tac_triple``, ``ivcy``,
``mmf``, ``aza``, ``placebo``, ``msc``: the ``node`` column of the arm table). The model
is the binomial / logit random-effects model of Dias et al. (NICE DSU Technical Support
Document 2, 2011, updated 2016, §2 and Appendix program 1(c))::

    r_ik ~ Binomial(n_ik, p_ik)
    logit p_ik = mu_i + delta_i,bk            (delta_i,bb = 0: study i's baseline arm)
    delta_i,bk ~ Normal(d_k - d_b, tau^2)     (random effects; fixed effects: = d_k - d_b)
    cov(delta_i,bk, delta_i,bl) = tau^2 / 2   (multi-arm trials)
    d_ref = 0,  d_k ~ Normal(0, 2.5),  mu_i ~ Normal(0, 2.5),  tau ~ HalfNormal(0.5)

The baseline arm of a study is its arm whose treatment comes first in the treatment order
(the reference first). Multi-arm trials: the ``a - 1`` relative effects of a study with
``a`` arms are jointly normal with variances tau^2 and covariances tau^2 / 2. TSD2 writes
this as a sequence of conditional normals (delta_i,k given delta_i,2..k-1 has mean
``d_k - d_b + mean_{j<k}(delta_i,j - d_j + d_b)`` and variance ``tau^2 k / (2 (k - 1))``);
here the same joint distribution is written non-centred,
``delta_i = D_i + tau * L_a z_i`` with ``L_a`` the Cholesky factor of the ``(a-1) x (a-1)``
matrix with 1 on the diagonal and 1/2 elsewhere and ``z_i ~ N(0, I)``; a study whose arms
pin its relative effects down more tightly than tau spreads them is sampled centred
instead (``delta_i ~ MVN(D_i, tau^2 L_a L_a')``, free variables ``delta_c<a-1>``), chosen
per study by ``parameterization="auto"`` (the default of :func:`fit_network`:
:func:`choose_network`); ``z`` is a posterior variable in every form. Every pair of
treatments has the relative effect ``d_k - d_l`` (log odds ratio) under consistency.

Disconnected networks: the connected component that contains the reference treatment is
fitted; studies in other components (in the bundled data MSC vs placebo, Deng 2017) are
listed in ``usage`` as excluded with the reason. Single-arm studies are excluded (no
comparison under independent study baselines).

Phase: induction and maintenance are kept apart by default (``phases``; default induction
only). ``phase_effect=True`` fits both phases (default ``phases`` = induction and maintenance)
with a meta-regression on the maintenance indicator x_i, the "common interaction" model of
NICE DSU TSD3 (Dias et al. 2011, updated 2018, §2.2, "exchangeable / common interaction
terms": beta_k = beta for every k != ref, beta_ref = 0)::

    delta_i,bk ~ Normal((d_k + beta_phase x_i 1[k != ref]) - (d_b + beta_phase x_i 1[b != ref]), tau^2)
    beta_phase ~ Normal(0, 1)          (``priors.beta_for("phase:maintenance")``)

i.e. in a maintenance trial every basic parameter (treatment vs the reference) is shifted by
the same beta_phase. Each arm of a multi-arm trial gets the shift of its own contrast with
the study baseline, so the relative effects within a trial stay consistent (a contrast of two
non-reference treatments has no shift: beta - beta = 0). ``d_k`` are the relative effects at
induction (x = 0); at maintenance the effect of k vs l is
``(d_k + beta 1[k != ref]) - (d_l + beta 1[l != ref])``.
:meth:`NetworkResult.relative_effects` and :meth:`NetworkResult.rank_probabilities` take
``phase="induction" | "maintenance"``. beta_phase is informed only by maintenance trials that
include the reference treatment, and only when the other treatment's basic parameter is also
estimable from induction trials; otherwise a warning says that beta_phase is identified by
its prior only (in the bundled data the one maintenance RCT, Chen 2012, compares TAC duo with
AZA: with IVCY as the reference its shift cancels). The selected studies must contain both
phases (ValueError otherwise); only the label ``maintenance`` sets x_i = 1.

Inconsistency:

* ``model="ume"``: unrelated mean effects (TSD4, Dias et al. 2011/2013): one free mean
  per observed baseline-vs-arm comparison; compare with the consistency model by
  leave-one-study-out LOO (:func:`compare_models`) and posterior mean residual deviance.
* :func:`node_split`: node-splitting (Dias et al. 2010, Stat Med 29:932; the split choice
  of van Valkenhoef et al. 2016, Res Synth Methods 7:80): for a comparison x-y, the
  studies containing both x and y use x as their baseline and give the y arm its own mean
  ``d_dir`` (direct evidence); the rest of the network, with the consistency parameters,
  gives the indirect estimate ``d_y - d_x``. A comparison is split only when x and y are
  still connected after removing every study that contains both (otherwise there is no
  independent indirect evidence; a loop formed only by a multi-arm trial is not a loop).
  The result lists direct, indirect and network estimates, their difference and a
  two-sided Bayesian p-value ``2 min(P(diff > 0), P(diff < 0))``.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy.special import expit, xlogy

from bayesln import vocab
from bayesln.hierarchy.diagnostics import GateThresholds
from bayesln.hierarchy.ordinal import (
    DEFAULT,
    FamilyDesign,
    FamilyFitResult,
    SummaryRows,
    _as_names,
    coerce_priors,
    effect_mask,
    family_form,
    record_forms,
    label_of,
    location_rv,
    long_table,
    mvn_chol,
    sample_family,
    sampler_config,
    scale_rv,
    select_phase_design,
)
from bayesln.hierarchy.priors import Priors, resolve_tau_prior
from bayesln.hierarchy.result import interval_columns
from bayesln.hierarchy.sampling import SamplerSettings, check_seed, resolve_backend

__all__ = [
    "NetworkDesign",
    "NetworkResult",
    "build_network_design",
    "build_network_model",
    "choose_network",
    "compare_models",
    "fit_network",
    "network_components",
    "node_split",
    "splittable_comparisons",
]

MODELS = ("consistency", "ume")


# ============================================================================ graph helpers
def network_components(study_nodes: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Connected components of the treatment graph (nodes joined by a study that has
    both), largest first."""
    parent: dict[str, str] = {}

    def find(a):
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for nodes in study_nodes.values():
        nodes = list(nodes)
        for a in nodes:
            find(a)
        for a, b in zip(nodes, nodes[1:]):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb
    comps: dict[str, set[str]] = {}
    for a in parent:
        comps.setdefault(find(a), set()).add(a)
    return sorted(comps.values(), key=lambda c: (-len(c), sorted(c)))


def _connected(study_nodes: Mapping[str, Iterable[str]], x: str, y: str) -> bool:
    for comp in network_components(study_nodes):
        if x in comp:
            return y in comp
    return False


def splittable_comparisons(study_nodes: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Every directly compared pair with whether it can be node-split (x and y stay
    connected after removing all studies that contain both) and why not."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for s, nodes in study_nodes.items():
        for a, b in itertools.combinations(sorted(set(nodes)), 2):
            pairs.setdefault((a, b), []).append(s)
    out = []
    for (a, b), studies in sorted(pairs.items()):
        rest = {s: n for s, n in study_nodes.items() if s not in studies}
        ok = _connected(rest, a, b)
        multi_only = all(len(set(study_nodes[s])) > 2 for s in studies)
        if ok:
            why = "indirect evidence independent of the direct studies"
        elif any(len(set(n)) > 1 for n in rest.values()) and multi_only and _loop_through(study_nodes, studies, a, b):
            why = f"loop formed only by multi-arm trial(s) {', '.join(studies)}: no independent indirect evidence"
        else:
            why = "no indirect evidence once the direct studies are removed"
        out.append({"x": a, "y": b, "direct_studies": studies, "n_direct": len(studies), "splittable": ok, "reason": why})
    return pd.DataFrame(out, columns=["x", "y", "direct_studies", "n_direct", "splittable", "reason"])


def _loop_through(study_nodes, studies, a, b) -> bool:
    """Whether a and b are joined by a path of length >= 2 using all studies (a loop)."""
    nbr: dict[str, set[str]] = {}
    for nodes in study_nodes.values():
        for u, v in itertools.permutations(set(nodes), 2):
            nbr.setdefault(u, set()).add(v)
    return any(b in nbr.get(c, set()) for c in nbr.get(a, set()) if c != b)


# ============================================================================ design
@dataclass
class NetworkDesign(FamilyDesign):
    treatments: list[str] = field(default_factory=list)  # reference first
    reference: str = ""
    arms: pd.DataFrame = field(default_factory=pd.DataFrame)
    C: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # arm x treatment (consistency means)
    U: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # arm x extra (ume / split means)
    extra_names: list[str] = field(default_factory=list)
    M: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # nonbase x nonbase (multi-arm Cholesky)
    nonbase_arm: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # arm index of each nonbase row
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    components: list[set[str]] = field(default_factory=list)
    excluded_components: list[dict] = field(default_factory=list)
    model: str = "consistency"
    split: tuple[str, str] | None = None
    study_nodes: dict[str, list[str]] = field(default_factory=dict)
    phases: tuple[str, ...] = ()
    #: common-interaction meta-regression on the maintenance indicator (``beta_phase``)
    phase_effect: bool = False
    #: per arm: coefficient of beta_phase in the arm's mean, x_i (1[k != ref] - 1[b != ref])
    #: (0 for baseline arms and for induction trials); zeros without phase_effect
    phase_shift: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: whether beta_phase is identified by the data (False: prior only; phase_effect only)
    phase_identified: bool = True

    @property
    def nonref(self) -> list[str]:
        return self.treatments[1:]

    def summary_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "direction": self.direction,
            "model": self.model,
            "split": list(self.split) if self.split else None,
            "reference": self.reference,
            "treatments": list(self.treatments),
            "n_studies": self.n_studies,
            "n_arms": self.n_arms,
            "phases": list(self.phases),
            **({"phase_effect": True, "phase_identified": bool(self.phase_identified),
                "maintenance_studies": list(dict.fromkeys(self.arms.loc[self.arms["maintenance"] == 1, "study"]))}
               if self.phase_effect else {}),
            "excluded_components": [
                {"treatments": sorted(c["treatments"]), "studies": c["studies"], "reason": c["reason"]}
                for c in self.excluded_components
            ],
        }


def _cs_cholesky(k: int) -> np.ndarray:
    """Cholesky factor of the k x k matrix with 1 on the diagonal and 1/2 elsewhere."""
    S = np.full((k, k), 0.5) + 0.5 * np.eye(k)
    return np.linalg.cholesky(S)


def build_network_design(
    data,
    outcome: str,
    *,
    reference: str = "ivcy",
    treatments: Sequence[str] | None = None,
    model: str = "consistency",
    split: tuple[str, str] | None = None,
    phases=DEFAULT,
    designs=None,
    direction: str | None = None,
    phase_effect: bool = False,
) -> NetworkDesign:
    """Arms, baselines, mean and covariance structure of the network model (no PyMC).
    ``phase_effect=True``: induction and maintenance studies (default ``phases``) with the
    per-arm coefficient of the common maintenance shift (``phase_shift``)."""
    if model not in MODELS + ("split",):
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    if direction is None:
        if outcome not in vocab.OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; pass direction='benefit' or 'harm'")
        direction = vocab.OUTCOMES[outcome]
    if phases is DEFAULT:
        phases = ("induction", "maintenance") if phase_effect else ("induction",)
    phases = _as_names(phases)
    long, all_arms, fp = long_table(data)
    all_studies = list(dict.fromkeys(all_arms["study"]))
    long, excluded = select_phase_design(long, phases, designs)
    rows = long[long["outcome"] == outcome]
    known = rows.dropna(subset=["events", "n"]).copy()
    usage: dict[str, dict] = {}

    def note(s, included, text, comps=""):
        usage[s] = {"study": s, "included": included, "comparisons": comps, "usage": text}

    for s in all_studies:
        if s in excluded:
            note(s, False, f"excluded: {excluded[s]}")
    study_nodes: dict[str, list[str]] = {}
    for s in dict.fromkeys(rows["study"]):
        sub = known[known["study"] == s]
        unknown = rows[(rows["study"] == s) & (rows["events"].isna() | rows["n"].isna())]
        extra = f"; arm(s) {', '.join(unknown['arm'])} not used ({outcome} count unknown)" if len(unknown) else ""
        if len(sub) == 0:
            note(s, False, f"excluded: {outcome} counts unknown")
        elif len(sub) == 1:
            note(s, False, ("excluded: single-arm study (no comparison)" if len(unknown) == 0 else
                            "excluded: only one arm with known counts") + extra)
        elif sub["node"].nunique() == 1:
            note(s, False, f"excluded: every arm is {label_of(sub['node'].iloc[0])} (no comparison)" + extra)
        else:
            study_nodes[s] = list(sub["node"])
            usage[s] = {"study": s, "included": True, "comparisons": "", "usage": extra.lstrip("; ")}
    for s in all_studies:
        if s not in usage:
            note(s, False, f"excluded: {outcome} not reported")
    if not study_nodes:
        raise ValueError(f"no study compares two treatments for {outcome}")
    comps = network_components(study_nodes)
    ref_comp = next((c for c in comps if reference in c), None)
    if ref_comp is None:
        present = sorted(set().union(*comps))
        raise ValueError(f"reference treatment {reference!r} is not in the {outcome} network; treatments present: {', '.join(present)}")
    excl_comps = []
    for c in comps:
        if c is ref_comp:
            continue
        studies_c = [s for s, n in study_nodes.items() if set(n) <= c]
        reason = (f"disconnected from the network of {label_of(reference)}: component "
                  f"{{{', '.join(label_of(x) for x in sorted(c))}}} shares no trial with it")
        excl_comps.append({"treatments": set(c), "studies": studies_c, "reason": reason})
        for s in studies_c:
            usage[s].update(included=False, usage=f"excluded: {reason}")
            del study_nodes[s]
    if treatments is None:
        order = [reference] + sorted(ref_comp - {reference}, key=lambda x: (label_of(x).lower(), x))
    else:
        order = list(treatments)
        if order[0] != reference or set(order) != ref_comp:
            raise ValueError(f"treatments must start with the reference and list exactly {sorted(ref_comp)}")
    t_index = {t: k for k, t in enumerate(order)}

    studies = list(study_nodes)
    arms = known[known["study"].isin(studies)].copy()
    arms["node_index"] = arms["node"].map(t_index)
    arms["order_in_study"] = arms.groupby("study", sort=False).cumcount()
    x_split = y_split = None
    if model == "split":
        if not split or len(split) != 2:
            raise ValueError("model='split' needs split=(x, y)")
        x_split, y_split = split
    # sort arms within study: baseline first (x for split studies containing x and y)
    def base_key(r):
        nodes = set(study_nodes[r["study"]])
        if x_split is not None and {x_split, y_split} <= nodes:
            return (0 if r["node"] == x_split else 1, r["node_index"], r["order_in_study"])
        return (r["node_index"], r["order_in_study"], 0)

    arms["_k"] = arms.apply(base_key, axis=1)
    arms["study_index"] = arms["study"].map({s: i for i, s in enumerate(studies)})
    arms = arms.sort_values(["study_index", "_k"]).drop(columns="_k").reset_index(drop=True)
    arms["pos"] = arms.groupby("study_index").cumcount()
    arms["is_base"] = arms["pos"] == 0
    base_node = arms[arms["is_base"]].set_index("study_index")["node"]
    arms["base_node"] = arms["study_index"].map(base_node)
    arms["arm_id"] = arms["study"] + ":" + arms["arm"]
    arms["events"] = arms["events"].astype(np.int64)
    arms["n"] = arms["n"].astype(np.int64)
    n_arm, T = len(arms), len(order)

    # consistency means (and ume / split extra means)
    C = np.zeros((n_arm, T))
    extra: list[str] = []
    U_cols: dict[str, np.ndarray] = {}
    for j, r in arms.iterrows():
        if r["is_base"]:
            continue
        b, k = r["base_node"], r["node"]
        in_split = x_split is not None and {x_split, y_split} <= set(study_nodes[r["study"]]) and k == y_split and b == x_split
        if model == "ume":
            if b == k:
                continue
            name = f"{k} vs {b}"
            if name not in U_cols:
                U_cols[name] = np.zeros(n_arm)
                extra.append(name)
            U_cols[name][j] = 1.0
        elif in_split:
            name = f"direct: {y_split} vs {x_split}"
            if name not in U_cols:
                U_cols[name] = np.zeros(n_arm)
                extra.append(name)
            U_cols[name][j] = 1.0
        else:
            C[j, t_index[k]] += 1.0
            C[j, t_index[b]] -= 1.0
    C = C[:, 1:]  # d_ref = 0
    U = np.column_stack([U_cols[e] for e in extra]) if extra else np.zeros((n_arm, 0))
    if model == "split" and not extra:
        raise ValueError(f"no study compares {x_split} and {y_split} directly")
    # multi-arm covariance of the random effects
    nonbase = arms.index[~arms["is_base"]].to_numpy()
    M = np.zeros((len(nonbase), len(nonbase)))
    pos = 0
    for si in range(len(studies)):
        k = int((arms.loc[nonbase, "study_index"] == si).sum())
        M[pos:pos + k, pos:pos + k] = _cs_cholesky(k)
        pos += k

    # maintenance indicator and the common-interaction shift (TSD3): the arm's mean gets
    # beta_phase * x_i * (1[k != ref] - 1[b != ref]); nonzero only for a contrast with the reference
    arms["maintenance"] = (arms["phase"].astype("string") == "maintenance").fillna(False).to_numpy().astype(np.int64)
    G = np.zeros(n_arm)
    phase_identified = True
    if phase_effect:
        st_ph = arms.groupby("study_index")["phase"].first()
        phase_vals = sorted(set(st_ph.dropna().astype(str)))
        if "maintenance" not in phase_vals or len(phase_vals) < 2:
            raise ValueError(
                f"phase_effect needs induction and maintenance studies; phases present among the studies in the "
                f"{outcome} network: {', '.join(phase_vals) or '(none)'} (pass phases=('induction', 'maintenance'), "
                "or phase_effect=False to analyse one phase)"
            )
        nb = ~arms["is_base"].to_numpy()
        G = (nb * arms["maintenance"].to_numpy()
             * ((arms["node"] != reference).to_numpy().astype(float) - (arms["base_node"] != reference).to_numpy().astype(float)))
        X0 = np.column_stack([C, U])[nb]
        X1 = np.column_stack([X0, G[nb]])
        phase_identified = bool(np.linalg.matrix_rank(X1) > np.linalg.matrix_rank(X0))
        if not phase_identified:
            warnings.warn(
                f"network {outcome}: the maintenance shift beta_phase is not identified by the data (no maintenance "
                f"trial compares a treatment with the reference {label_of(reference)} whose effect the induction "
                "trials also estimate); it is informed by its prior only",
                UserWarning,
                stacklevel=3,
            )

    # direct comparisons and usage text
    comp_rows = []
    pairs: dict[tuple[str, str], list[str]] = {}
    for s in studies:
        nodes = list(dict.fromkeys(study_nodes[s]))
        for a, b in itertools.combinations(sorted(nodes, key=lambda x: t_index[x]), 2):
            pairs.setdefault((b, a), []).append(s)
    for (k, b), ss in pairs.items():
        comp_rows.append({"comparison": f"{label_of(k)} vs {label_of(b)}", "treatment": k, "versus": b,
                          "studies": ss, "n_studies": len(ss)})
    comparisons = pd.DataFrame(comp_rows, columns=["comparison", "treatment", "versus", "studies", "n_studies"])
    for s in studies:
        sub = arms[arms["study"] == s]
        b = sub["node"].iloc[0]
        txt = ", ".join(f"{label_of(r['node'])} vs {label_of(b)}" for _, r in sub.iloc[1:].iterrows())
        arms_txt = "; ".join(f"{r['arm']} {label_of(r['node'])} {r['events']}/{r['n']}" for _, r in sub.iterrows())
        kind = "multi-arm (within-trial covariance tau^2/2)" if len(sub) > 2 else "two-arm"
        usage[s]["comparisons"] = txt
        ph_txt = ""
        if phase_effect and sub["maintenance"].iloc[0] == 1:
            ph_txt = (f"maintenance: contrasts with {label_of(reference)} shifted by beta_phase"
                      if (G[sub.index] != 0).any() else
                      f"maintenance: no contrast with {label_of(reference)}, so no shift (beta_phase cancels)")
        usage[s]["usage"] = "; ".join(x for x in (f"{kind}: {arms_txt}", ph_txt, usage[s]["usage"]) if x)
    cols = ["study", "included", "comparisons", "usage"]
    if phase_effect:
        st_phase_all = all_arms.groupby("study", sort=False)["phase"].first()
        for s, u in usage.items():
            ph = st_phase_all.get(s, pd.NA)
            u["phase"] = "unknown" if pd.isna(ph) else str(ph)
        cols = ["study", "included", "phase", "comparisons", "usage"]
    usage_df = pd.DataFrame(list(usage.values()), columns=cols)
    usage_df = usage_df.set_index("study").reindex(all_studies).reset_index()
    return NetworkDesign(
        family="network",
        outcome=outcome,
        direction=direction,
        baseline="independent",
        study_ids=studies,
        arm_ids=arms["arm_id"].tolist(),
        usage=usage_df,
        fingerprint=fp,
        treatments=order,
        reference=reference,
        arms=arms,
        C=C,
        U=U,
        extra_names=extra,
        M=M,
        nonbase_arm=nonbase,
        comparisons=comparisons,
        components=comps,
        excluded_components=excl_comps,
        model=model,
        split=tuple(split) if split else None,
        study_nodes={s: list(study_nodes[s]) for s in studies},
        phases=phases,
        phase_effect=bool(phase_effect),
        phase_shift=G,
        phase_identified=phase_identified,
    )


# ============================================================================ model
#: the posterior variables the gate of a network fit reads (z in every form of the study
#: effects); a run folder read back is gated on the same (bayesln.predict.command)
GATE_VARS = ("mu", "d", "d_extra", "beta_phase", "tau", "z")


def choose_network(design: NetworkDesign) -> tuple:
    """``parameterization="auto"`` of the network family: each non-baseline arm's Woolf log
    odds ratio against its study's baseline arm, its variance against ``tau_lo`` (the lower
    Q-profile limit of tau with the comparisons as moderators, so that differences between
    treatments are not read as heterogeneity); a study is centred when all its relative
    effects are (they share one multivariate normal). Returns (form or flags, record)."""
    from bayesln.hierarchy.parameterize import LEVEL, RATIO, centred_cells, family_choice, pooled_log_or

    arms = design.arms
    nonbase = design.nonbase_arm
    base_of = arms[arms["is_base"]].reset_index().set_index("study_index")["index"]
    si = arms.loc[nonbase, "study_index"].to_numpy()
    b = base_of.loc[si].to_numpy()
    k = len(nonbase)
    grp = np.concatenate([np.arange(k), np.arange(k)])
    tr = np.concatenate([np.ones(k, int), np.zeros(k, int)])
    ev = np.concatenate([arms.loc[nonbase, "events"].to_numpy(float), arms.loc[b, "events"].to_numpy(float)])
    nn = np.concatenate([arms.loc[nonbase, "n"].to_numpy(float), arms.loc[b, "n"].to_numpy(float)])
    y, v = pooled_log_or(grp, tr, ev, nn, k)
    comp = (arms.loc[nonbase, "base_node"].astype(str) + " -> " + arms.loc[nonbase, "node"].astype(str)).to_numpy()
    labels = sorted(set(comp))
    X = np.column_stack([(comp == c).astype(float) for c in labels[1:]]) if len(labels) > 1 else None
    flags, refs = centred_cells(y, v, X=X)
    rule = (f"study centred when var(log OR_ik) < {RATIO:g} * tau_lo^2 for each non-baseline arm k, tau_lo the lower "
            f"{LEVEL:g}% Q-profile limit of tau given the comparisons (bayesln.hierarchy.network.choose_network)")
    return family_choice(design.study_ids, si, flags, {"tau": refs["0"]}, rule)


def build_network_model(design: NetworkDesign, *, priors: Priors | dict | None = None, effects: str = "random",
                        parameterization="noncentered") -> pm.Model:
    """PyMC model of a :class:`NetworkDesign`. Posterior variables: ``mu`` (study),
    ``d`` (treatment: the non-reference treatments, log-OR vs the reference; consistency
    and split models), ``d_extra`` (comparison: UME means / the split's direct mean),
    ``tau``, ``z`` (nonbase_arm); with ``design.phase_effect`` the scalar ``beta_phase``
    (common maintenance shift of every basic parameter vs the reference, TSD3). Events / n
    are ``pm.Data``. ``parameterization``: ``"noncentered"`` (default here), ``"centered"``,
    ``"auto"`` (:func:`choose_network`) or one flag per study (see the module docstring)."""
    if effects not in ("random", "fixed"):
        raise ValueError("effects must be 'random' or 'fixed'")
    pr = coerce_priors(priors, Priors)
    form, _ = family_form(parameterization, lambda: choose_network(design), random_effects=effects == "random")
    arms = design.arms
    coords = {"study": design.study_ids, "arm": design.arm_ids}
    if design.model != "ume":
        coords["treatment"] = design.nonref
    if design.extra_names:
        coords["comparison"] = design.extra_names
    nonbase = design.nonbase_arm
    if effects == "random" and len(nonbase):
        coords["nonbase_arm"] = [design.arm_ids[j] for j in nonbase]
    a_s = arms["study_index"].to_numpy()
    with pm.Model(coords=coords) as model:
        events = pm.Data("events_data", arms["events"].to_numpy(), dims="arm")
        n = pm.Data("n_data", arms["n"].to_numpy(), dims="arm")
        mu = location_rv("mu", pr.baseline, dims="study")
        mean = pt.zeros(len(arms))
        if design.model != "ume":
            d = location_rv("d", pr.d, dims="treatment")
            mean = mean + pt.dot(design.C, d)
        if design.extra_names:
            de = location_rv("d_extra", pr.d, dims="comparison")
            mean = mean + pt.dot(design.U, de)
        if design.phase_effect:
            bph = location_rv("beta_phase", pr.beta_for("phase:maintenance"))
            mean = mean + design.phase_shift * bph
        if effects == "random" and len(nonbase):
            tau = scale_rv("tau", resolve_tau_prior(pr.tau, design.outcome))
            centred = effect_mask(form, design.n_studies)[arms.loc[nonbase, "study_index"].to_numpy()]
            if not centred.any():
                z = pm.Normal("z", 0.0, 1.0, dims="nonbase_arm")
                re = tau * pt.dot(design.M, z)
                mean = pt.set_subtensor(mean[nonbase], mean[nonbase] + re)
            else:
                mean = _centred_network_effects(design, mean, tau, centred)
        theta = mu[a_s] + mean
        pm.Binomial("y", n=n, logit_p=theta, observed=events, dims="arm")
        pm.Deterministic("theta", theta, dims="arm")
    return model


def _centred_network_effects(design: NetworkDesign, mean, tau, centred: np.ndarray):
    """``mean`` with the random effects of the non-baseline arms added: non-centred arms
    as ``tau * M z_nc``, the arms of centred studies as free ``delta_c<k> ~ MVN(mean_i,
    tau^2 L_k L_k')`` per study with k relative effects; ``z`` (every non-baseline arm's
    whitened effect) as a Deterministic."""
    nonbase = design.nonbase_arm
    si = design.arms.loc[nonbase, "study_index"].to_numpy()
    loc = mean[nonbase]
    vals = loc
    zs = pt.zeros(len(nonbase))
    nc = np.flatnonzero(~centred)
    if len(nc):
        z_nc = pm.Normal("z_nc", 0.0, 1.0, shape=len(nc))
        vals = pt.set_subtensor(vals[nc], loc[nc] + tau * pt.dot(design.M[np.ix_(nc, nc)], z_nc))
        zs = pt.set_subtensor(zs[nc], z_nc)
    blocks: dict[int, list[np.ndarray]] = {}
    for s in dict.fromkeys(si[centred].tolist()):
        pos = np.flatnonzero(si == s)
        blocks.setdefault(len(pos), []).append(pos)
    for k, poss in sorted(blocks.items()):
        P = np.array(poss)  # (studies, k) positions among the non-baseline arms
        Lk = _cs_cholesky(k)
        dc, w = mvn_chol(f"delta_c{k}", loc[P], tau * Lk, P.shape)
        vals = pt.set_subtensor(vals[P.reshape(-1)], dc.reshape((-1,)))
        zs = pt.set_subtensor(zs[P.reshape(-1)], w.reshape((-1,)))
    pm.Deterministic("z", zs, dims="nonbase_arm")
    return pt.set_subtensor(mean[nonbase], vals)


# ============================================================================ result
def _resdev(theta: np.ndarray, y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Residual deviance per draw (TSD2): 2 sum[y log(y/yhat) + (n-y) log((n-y)/(n-yhat))]."""
    p = expit(theta)
    yhat = n * p
    dev = 2 * (xlogy(y, y) - xlogy(y, yhat) + xlogy(n - y, n - y) - xlogy(n - y, n - yhat))
    return dev.sum(axis=-1)


@dataclass(repr=False)
class NetworkResult(FamilyFitResult):
    """Result of :func:`fit_network`: relative effects for every pair of treatments,
    tau, ranking probabilities (``rank_probabilities()``), residual deviance, excluded
    components and studies (``usage``, ``config["excluded_components"]``)."""

    @property
    def has_phase_shift(self) -> bool:
        return "beta_phase" in self.idata.posterior

    def effect_draws(self, phase: str = "induction") -> np.ndarray:
        """Draws (n, T) of every treatment's log-OR vs the reference (0 for the reference)
        at ``phase``: induction (x = 0: ``d``) or maintenance (``d_k + beta_phase``,
        needs a fit with ``phase_effect=True``)."""
        if phase not in ("induction", "maintenance"):
            raise ValueError(f"phase must be 'induction' or 'maintenance', not {phase!r}")
        d = self.draws("d")
        if phase == "maintenance":
            if not self.has_phase_shift:
                raise ValueError("effects at maintenance need a fit with phase_effect=True (maintenance shift beta_phase)")
            d = d + self.draws("beta_phase")[:, None]
        return np.concatenate([np.zeros((d.shape[0], 1)), d], axis=1)

    def relative_effects(self, ci: float = 0.95, phase: str = "induction") -> pd.DataFrame:
        """log-OR and OR of every pair (row treatment vs column treatment), consistency
        model; direct evidence count per pair. ``phase``: ``"induction"`` (default; x = 0)
        or ``"maintenance"`` (fits with ``phase_effect=True``; those fits add a ``phase``
        column)."""
        des: NetworkDesign = self.design
        if des.model == "ume":
            raise ValueError("relative effects of every pair need the consistency model (the UME model has one mean per observed comparison)")
        lo, hi = interval_columns(ci)
        full = self.effect_draws(phase)
        direct = {(r["treatment"], r["versus"]): r["n_studies"] for _, r in des.comparisons.iterrows()}
        out = []
        T = des.treatments
        for i, j in itertools.combinations(range(len(T)), 2):
            k, l = T[j], T[i]
            x = full[:, j] - full[:, i]
            ql, qm, qh = np.quantile(x, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
            nd = direct.get((k, l), direct.get((l, k), 0))
            rest = {s: n for s, n in des.study_nodes.items() if not {k, l} <= set(n)}
            ind = _connected(rest, k, l)
            evidence = ("direct + indirect" if ind else "direct only") if nd else "indirect only"
            out.append({
                "treatment": k, "versus": l, "comparison": f"{label_of(k)} vs {label_of(l)}",
                "log_or_median": qm, f"log_or_{lo}": ql, f"log_or_{hi}": qh, "log_or_mean": x.mean(), "log_or_sd": x.std(ddof=1),
                "or_median": np.exp(qm), f"or_{lo}": np.exp(ql), f"or_{hi}": np.exp(qh),
                "n_direct_studies": nd, "evidence": evidence, "ci_level": ci,
                **({"phase": phase} if self.has_phase_shift else {}),
            })
        return pd.DataFrame(out)

    def rank_probabilities(self, phase: str = "induction") -> pd.DataFrame:
        """P(rank = r) per treatment (rank 1 = best in the outcome's direction) and SUCRA,
        at ``phase`` (see :meth:`effect_draws`)."""
        des: NetworkDesign = self.design
        full = self.effect_draws(phase)
        score = full if des.direction == "benefit" else -full
        ranks = (-score).argsort(axis=1).argsort(axis=1) + 1
        T = len(des.treatments)
        P = np.stack([(ranks == r).mean(axis=0) for r in range(1, T + 1)], axis=1)
        cum = np.cumsum(P, axis=1)[:, :-1]
        sucra = cum.sum(axis=1) / (T - 1) if T > 1 else np.ones(T)
        out = pd.DataFrame(P, columns=[f"P(rank {r})" for r in range(1, T + 1)])
        out.insert(0, "treatment", [label_of(t) for t in des.treatments])
        out["mean_rank"] = (P * np.arange(1, T + 1)).sum(axis=1)
        out["SUCRA"] = sucra
        return out

    def residual_deviance(self) -> np.ndarray:
        theta = self.draws("theta")
        a = self.design.arms
        return _resdev(theta, a["events"].to_numpy(float), a["n"].to_numpy(float))

    def summary(self, ci: float = 0.95, ranks: bool = False) -> pd.DataFrame:
        des: NetworkDesign = self.design
        S = SummaryRows(ci)
        phase = self.has_phase_shift
        if des.model != "ume":
            rel = self.relative_effects(ci)
            full = self.effect_draws("induction")
            T = des.treatments
            at = "; at induction (maintenance indicator 0)" if phase else ""
            for (i, j) in itertools.combinations(range(len(T)), 2):
                k, l = T[j], T[i]
                x = full[:, j] - full[:, i]
                r = rel[(rel["treatment"] == k) & (rel["versus"] == l)].iloc[0]
                note = f"{r['evidence']} ({r['n_direct_studies']} direct stud{'y' if r['n_direct_studies'] == 1 else 'ies'}){at}"
                S.add(f"log-OR: {label_of(k)} vs {label_of(l)}", f"d[{k}] - d[{l}]", x, note, comparison=f"{k} vs {l}")
                S.add(f"OR: {label_of(k)} vs {label_of(l)}", f"exp(d[{k}] - d[{l}])", np.exp(x), note, comparison=f"{k} vs {l}")
            if phase:
                fm = self.effect_draws("maintenance")
                ref = des.reference
                for (i, j) in itertools.combinations(range(len(T)), 2):
                    k, l = T[j], T[i]
                    x = fm[:, j] - fm[:, i]
                    if l == ref:  # the reference comes first in the treatment order
                        par = f"d[{k}] + beta_phase"
                        note = "at maintenance: the induction log-OR + beta_phase"
                    else:
                        par = f"d[{k}] - d[{l}]"
                        note = "at maintenance: same as at induction (common interaction: both shifted by beta_phase)"
                    S.add(f"log-OR at maintenance: {label_of(k)} vs {label_of(l)}", par, x, note,
                          comparison=f"{k} vs {l} (maintenance)")
                    S.add(f"OR at maintenance: {label_of(k)} vs {label_of(l)}", f"exp({par})", np.exp(x), note,
                          comparison=f"{k} vs {l} (maintenance)")
        if des.extra_names:
            de = self.draws("d_extra")
            for k, nm in enumerate(des.extra_names):
                tr, _, vs = nm.replace("direct: ", "").partition(" vs ")
                lab = f"{label_of(tr)} vs {label_of(vs)}"
                what = "direct (node-split)" if nm.startswith("direct:") else "unrelated mean effect (UME)"
                S.add(f"log-OR ({what}): {lab}", f"d_extra[{nm}]", de[:, k], what, comparison=nm)
                S.add(f"OR ({what}): {lab}", f"exp(d_extra[{nm}])", np.exp(de[:, k]), what, comparison=nm)
        if phase:
            b = self.draws("beta_phase")
            ident = "" if des.phase_identified else "PRIOR ONLY (not identified by the data): "
            S.add("maintenance shift (log-OR ratio)", "beta_phase", b,
                  f"{ident}common interaction (TSD3): added to every treatment's log-OR vs {label_of(des.reference)} "
                  "in maintenance trials", comparison="phase:maintenance")
            S.add("OR ratio maintenance / induction", "exp(beta_phase)", np.exp(b),
                  f"{ident}ratio of each treatment's OR vs {label_of(des.reference)}, maintenance / induction",
                  comparison="phase:maintenance")
        if "tau" in self.idata.posterior:
            S.add("tau", "tau", self.draws("tau"), "between-study SD of the log odds ratios (common to all comparisons)")
        rd = self.residual_deviance()
        S.add("residual deviance", "resdev", rd, f"posterior mean vs {des.n_arms} data points (TSD2: close to the number of data points = adequate fit)")
        if ranks and des.model != "ume":
            rp = self.rank_probabilities()
            for _, r in rp.iterrows():
                S.prob(f"P(best): {r['treatment']}", "rank 1", r["P(rank 1)"], f"SUCRA {r['SUCRA']:.2f}, mean rank {r['mean_rank']:.2f}", comparison=r["treatment"])
        return S.frame(extra_cols=("comparison",))


# ============================================================================ fit
def fit_network(
    data,
    outcome: str,
    *,
    reference: str = "ivcy",
    model: str = "consistency",
    effects: str = "random",
    treatments: Sequence[str] | None = None,
    phases: str | Iterable[str] | None = DEFAULT,
    designs: str | Iterable[str] | None = None,
    direction: str | None = None,
    phase_effect: bool = False,
    priors: Priors | dict | None = None,
    split: tuple[str, str] | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    target_accept: float = 0.99,
    backend: str = "auto",
    seed: int,
    progressbar: bool | None = None,
    prior_predictive: bool = True,
    prior_draws: int = 500,
    posterior_predictive: bool = True,
    gate: GateThresholds = GateThresholds(),
    cores: int | None = None,
    retry: bool = True,
    parameterization="auto",
) -> NetworkResult:
    """Fit the arm-based network meta-analysis (see the module docstring).

    ``reference``: the reference treatment (node), d_ref = 0. ``model``:
    ``"consistency"`` (default) or ``"ume"`` (unrelated mean effects). ``effects``:
    ``"random"`` (default) or ``"fixed"``. ``treatments``: the order of the treatments
    (reference first; decides each study's baseline arm). ``phases``: default induction
    (induction and maintenance with ``phase_effect=True``). ``phase_effect``: common
    maintenance shift ``beta_phase`` of every basic parameter vs the reference (TSD3 common
    interaction; prior ``priors.beta_for("phase:maintenance")``, Normal(0, 1) by default).
    ``split``: internal (used by :func:`node_split`). ``parameterization``: ``"auto"``
    (default; per study from the data, :func:`choose_network`, recorded in
    ``config["parameterization_chosen"]``; the structural retry samples every study
    non-centred), ``"noncentered"``, ``"centered"`` or per-study flags. Sampler arguments
    as in :func:`bayesln.hierarchy.fit_core`."""
    seed = check_seed(seed)
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, target_accept=target_accept, cores=cores)
    used = resolve_backend(backend)
    pr = coerce_priors(priors, Priors)
    mdl = "split" if split is not None else model
    design = build_network_design(data, outcome, reference=reference, treatments=treatments, model=mdl, split=split,
                                  phases=phases, designs=designs, direction=direction, phase_effect=phase_effect)
    form, chosen = family_form(parameterization, lambda: choose_network(design), random_effects=effects == "random")
    pm_model = build_network_model(design, priors=pr, effects=effects, parameterization=form)
    resolved = pr.model_dump(mode="json")
    resolved["tau"] = resolve_tau_prior(pr.tau, outcome).model_dump(mode="json")
    if design.phase_effect:
        resolved["beta_phase"] = pr.beta_for("phase:maintenance").model_dump(mode="json")
    config = {
        "model": f"network meta-analysis, arm-based {mdl} model (NICE DSU TSD2), {effects} effects",
        "family": "network",
        **design.summary_dict(),
        "effects": effects,
        "common_effect": effects == "fixed",
        "phase_effect": bool(phase_effect),
        "designs": list(_as_names(designs)),
        "priors": resolved,
        "sampler": sampler_config(backend, used, settings, seed),
        "gate": gate.to_dict(),
    }
    fallback = record_forms(config, parameterization=(parameterization, form, chosen))
    a = design.arms
    const = xr.Dataset(
        {"n": (("arm",), a["n"].to_numpy()), "node": (("arm",), a["node"].to_numpy().astype(str)),
         "base_node": (("arm",), a["base_node"].to_numpy().astype(str)),
         "arm_study": (("arm",), a["study"].to_numpy().astype(str))},
        coords={"arm": design.arm_ids},
    )
    if design.phase_effect:
        const["maintenance"] = (("arm",), a["maintenance"].to_numpy().astype(int))
        const["phase_shift"] = (("arm",), design.phase_shift)
    idata, diag, used = sample_family(
        pm_model, design=design, config=config, seed=seed, settings=settings, backend=used, progressbar=progressbar,
        gate=gate, loglik_rows={"y": a["study_index"].to_numpy()}, gate_vars=GATE_VARS,
        prior_predictive=prior_predictive, prior_draws=prior_draws, posterior_predictive=posterior_predictive,
        constant_data=const, label=f"network {outcome} ({mdl})", retry=retry,
        alternative=((lambda: build_network_model(design, priors=pr, effects=effects, parameterization="noncentered"))
                     if fallback else None),
    )
    return NetworkResult(idata=idata, design=design, diagnostics=diag, config=config, seed=seed, backend=used)


def compare_models(results: Mapping[str, NetworkResult] | Sequence[NetworkResult]) -> pd.DataFrame:
    """Leave-one-study-out PSIS-LOO (elpd, p_loo, SE; difference to the best model with
    its SE) and posterior mean residual deviance of fits of the same data, e.g.
    ``{"consistency": fit_c, "ume": fit_u}``."""
    if not isinstance(results, Mapping):
        results = {r.config.get("model", str(i)): r for i, r in enumerate(results)}
    rows, pts = [], {}
    for name, r in results.items():
        loo = r.loo()
        pts[name] = np.asarray(loo.loo_i.values, dtype=float)
        rows.append({"model": name, "elpd_loo": float(loo.elpd_loo), "se": float(loo.se), "p_loo": float(loo.p_loo),
                     "resdev_mean": float(np.mean(r.residual_deviance())), "n_data_points": r.design.n_arms,
                     "status": r.status})
    out = pd.DataFrame(rows).set_index("model")
    best = out["elpd_loo"].idxmax()
    out["elpd_diff"] = [out.loc[m, "elpd_loo"] - out.loc[best, "elpd_loo"] for m in out.index]
    out["se_diff"] = [float(np.sqrt(len(pts[m]) * np.var(pts[m] - pts[best], ddof=1))) if m != best else 0.0 for m in out.index]
    return out


def node_split(
    data,
    outcome: str,
    *,
    reference: str = "ivcy",
    comparisons: Sequence[tuple[str, str]] | None = None,
    consistency: NetworkResult | None = None,
    ci: float = 0.95,
    **fit_kw,
) -> pd.DataFrame:
    """Node-splitting for every splittable comparison (or the given ones).

    Returns one row per comparison: direct, indirect and network (consistency) log-OR
    (median and interval), the difference direct - indirect with its interval, the
    two-sided Bayesian p-value and the gate status of the split fit. Comparisons that
    cannot be split are listed in ``.attrs["not_splittable"]`` with the reason (e.g. a
    loop formed only by a multi-arm trial); ``.attrs["consistency_status"]``."""
    lo, hi = interval_columns(ci)
    with warnings.catch_warnings():  # the fits below warn about the same design
        warnings.simplefilter("ignore", UserWarning)
        base = build_network_design(data, outcome, reference=reference, phases=fit_kw.get("phases", DEFAULT),
                                    designs=fit_kw.get("designs"), direction=fit_kw.get("direction"),
                                    phase_effect=fit_kw.get("phase_effect", False))
    cand = splittable_comparisons(base.study_nodes)
    t_index = {t: k for k, t in enumerate(base.treatments)}
    cand["label"] = [f"{label_of(y)} vs {label_of(x)}" for x, y in zip(cand["x"], cand["y"])]
    if comparisons is not None:
        want = {tuple(sorted(c)) for c in comparisons}
        sel = cand[[tuple(sorted((x, y))) in want for x, y in zip(cand["x"], cand["y"])]]
        bad = want - {tuple(sorted((x, y))) for x, y in zip(sel["x"], sel["y"])}
        if bad:
            raise ValueError(f"no direct evidence for comparison(s) {sorted(bad)}")
        todo = sel[sel["splittable"]]
    else:
        todo = cand[cand["splittable"]]
    not_split = cand[~cand["splittable"]][["label", "direct_studies", "reason"]].reset_index(drop=True)
    cols = ["comparison", "x", "y", "direct_studies", "direct_median", f"direct_{lo}", f"direct_{hi}",
            "indirect_median", f"indirect_{lo}", f"indirect_{hi}", "network_median", f"network_{lo}", f"network_{hi}",
            "diff_median", f"diff_{lo}", f"diff_{hi}", "p_value", "status", "ci_level"]
    if todo.empty:
        out = pd.DataFrame(columns=cols)
        out.attrs["not_splittable"] = not_split
        out.attrs["reason"] = "no comparison has indirect evidence independent of its direct studies"
        return out
    if consistency is None:
        consistency = fit_network(data, outcome, reference=reference, **fit_kw)
    dc = consistency.draws("d")
    full_c = np.concatenate([np.zeros((dc.shape[0], 1)), dc], axis=1)
    rows = []
    q = [(1 - ci) / 2, 0.5, (1 + ci) / 2]
    for _, c in todo.iterrows():
        # orient: x = earlier in the treatment order (baseline), y = later
        x, y = sorted((c["x"], c["y"]), key=lambda t: t_index[t])
        fit = fit_network(data, outcome, reference=reference, split=(x, y), **fit_kw)
        d = fit.draws("d")
        full = np.concatenate([np.zeros((d.shape[0], 1)), d], axis=1)
        ind = full[:, t_index[y]] - full[:, t_index[x]]
        dirr = fit.draws("d_extra")[:, 0]
        net = full_c[:, t_index[y]] - full_c[:, t_index[x]]
        m = min(len(ind), len(dirr))
        diff = dirr[:m] - ind[:m]
        p = 2 * min(np.mean(diff > 0), np.mean(diff < 0))
        r = {"comparison": f"{label_of(y)} vs {label_of(x)}", "x": x, "y": y, "direct_studies": ", ".join(c["direct_studies"])}
        for nm, v in (("direct", dirr), ("indirect", ind), ("network", net), ("diff", diff)):
            ql, qm, qh = np.quantile(v, q)
            r.update({f"{nm}_median": qm, f"{nm}_{lo}": ql, f"{nm}_{hi}": qh})
        r.update({"p_value": float(p), "status": fit.status, "ci_level": ci})
        rows.append(r)
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["not_splittable"] = not_split
    out.attrs["consistency_status"] = consistency.status
    return out
