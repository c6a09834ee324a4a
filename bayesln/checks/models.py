"""Model comparison by leave-one-study-out (LOO) expected log predictive density.

Each model is a fit (core model or another family with a per-study ``study_loglik``), a
:class:`~bayesln.checks.loo.StudyLoo`, or a list of them ("separate" models of several
outcomes whose per-study elpds are added, to set against a joint model of the same
outcomes). All models must cover the same studies (the unit of LOO is the study).

Output columns, best model first (as ``loo_compare``): ``elpd_loo``, ``se``, ``p_loo``,
``elpd_diff`` (this model minus the best, <= 0), ``se_diff`` (sqrt(n var(elpd_i^A -
elpd_i^best)), Vehtari, Gelman & Gabry 2017), ``n_studies``, ``n_high_k`` (studies with
Pareto k > the threshold), ``n_exact`` (of them, replaced by an exact refit),
``n_high_k_psis`` (left at an unreliable PSIS value), ``kind`` (``integrated`` /
``conditional``), ``estimator`` (in words), ``warning`` (empty when the estimate is
reliable) and a ``note`` (a difference smaller than twice its SE is "not
distinguishable"). ``out.attrs["warning"]`` repeats the warnings for the whole table.

Estimators
----------
The unit is one study (all its outcomes for a joint model; for "separate" models the
per-study elpds of the outcome fits are added, so both sides predict the same data, the
whole study). Core fits and joint efficacy-safety fits are scored by the **integrated**
PSIS-LOO (:func:`bayesln.checks.loo.study_loo`: the study's own baselines and effects
integrated out, so Pareto k is a usable diagnostic; core fits get exact refits where k
> 0.7, the joint model does not, and its high-k studies are counted in
``n_high_k_psis``). When any model is of another family (ordinal, network), every model
is scored by the **conditional** PSIS-LOO of ``study_loglik`` (ArviZ), which
:mod:`bayesln.checks.loo` calls unreliable for leave-one-study-out (leaving a study out
returns its own parameters to the prior, so k is typically > 0.7 for every study); the
table then says so in ``warning``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayesln.checks.loo import K_THRESHOLD, StudyLoo, study_loo
from bayesln.checks.marginal import is_joint_fit
from bayesln.checks.refit import derive_seed, is_core_fit, refit, refit_batch

__all__ = ["compare_models", "model_variants"]


def _as_loo(m, **kw) -> StudyLoo:
    if isinstance(m, StudyLoo):
        return m
    return study_loo(m, **kw)


def _pointwise(m, **kw) -> tuple[pd.Series, StudyLoo | list]:
    if isinstance(m, Sequence) and not isinstance(m, (str, bytes)):
        parts = [_as_loo(x, **kw) for x in m]
        s = None
        for p in parts:
            e = p.pointwise.set_index("study")["elpd_loo"]
            s = e if s is None else s.add(e, fill_value=0.0)
        return s, parts
    lo = _as_loo(m, **kw)
    return lo.pointwise.set_index("study")["elpd_loo"], lo


def _fits(m) -> list:
    if isinstance(m, Sequence) and not isinstance(m, (str, bytes)):
        return list(m)
    return [m]


def compare_models(models: Mapping[str, object], *, k_threshold: float = K_THRESHOLD, refit: str = "auto",
                   kind: str = "auto", draws=None, tune=None, chains=None, progressbar: bool = False) -> pd.DataFrame:
    """LOO comparison of named models (see the module docstring). Raises ValueError
    when fewer than two models are given or they do not cover the same studies.

    ``kind``: ``"integrated"`` (core and joint fits: study parameters integrated out,
    exact refits where Pareto k is high for core fits), ``"conditional"`` (ArviZ
    PSIS-LOO of ``study_loglik``, any model family, no refits; unreliable, see the module
    docstring) or ``"auto"``: integrated when every model is a core or joint fit, else
    conditional for all, so that every model is scored by the same estimator."""
    if len(models) < 2:
        raise ValueError("compare_models needs at least two models")
    if kind == "auto":
        fits = [f for m in models.values() for f in _fits(m) if not isinstance(f, StudyLoo)]
        kind = "integrated" if all(is_core_fit(f) or is_joint_fit(f) for f in fits) else "conditional"
    kw = dict(k_threshold=k_threshold, refit=refit, draws=draws, tune=tune, chains=chains, progressbar=progressbar,
              kind=kind)
    pts, loos = {}, {}
    for name, m in models.items():
        pts[name], loos[name] = _pointwise(m, **kw)
    sets = {name: set(p.index) for name, p in pts.items()}
    first = next(iter(sets.values()))
    if any(s != first for s in sets.values()):
        detail = "; ".join(f"{n}: {', '.join(sorted(s))}" for n, s in sets.items())
        raise ValueError(f"models cover different studies, so their LOO cannot be compared study by study ({detail})")
    order = sorted(first)
    E = pd.DataFrame({n: p.reindex(order) for n, p in pts.items()})
    tot = E.sum()
    best = tot.idxmax()
    n = len(order)
    rows = []
    for name in E.columns:
        lo = loos[name]
        parts = lo if isinstance(lo, list) else [lo]
        diff = E[name] - E[best]
        se_diff = float(np.sqrt(n * np.var(diff.to_numpy()))) if name != best else 0.0
        e = E[name].to_numpy()
        d = float(tot[name] - tot[best])
        note = "best" if name == best else ("not distinguishable from the best (|diff| <= 2 SE)" if abs(d) <= 2 * se_diff
                                             else "worse than the best by more than 2 SE")
        n_high = int(sum(p.n_high_k for p in parts))
        n_exact = int(sum((p.pointwise["method"] == "exact").sum() for p in parts))
        kinds = sorted({p.kind for p in parts})
        n_psis = n_high - n_exact
        verdicts = [f.diagnostics.verdict for f in _fits(models[name]) if hasattr(f, "diagnostics")]
        rows.append({
            "model": name, "gate": "fail" if "fail" in verdicts else ("pass" if verdicts else ""),
            "elpd_loo": float(tot[name]), "se": float(np.sqrt(n * np.var(e))),
            "p_loo": float(sum(p.p_loo for p in parts)), "elpd_diff": d, "se_diff": se_diff, "n_studies": n,
            "n_high_k": n_high, "n_exact": n_exact, "n_high_k_psis": n_psis,
            "kind": "+".join(kinds), "estimator": _estimator(kinds, k_threshold),
            "warning": _warning(kinds, n_high, n_psis, k_threshold, len(parts)), "note": note,
        })
    out = pd.DataFrame(rows).sort_values("elpd_loo", ascending=False, kind="stable").reset_index(drop=True)
    if out["kind"].nunique() > 1:
        out["warning"] = [("; ".join(w for w in (x, "models scored by different LOO estimators: differences not comparable")
                                     if w)) for x in out["warning"]]
    out.attrs["pointwise"] = E
    out.attrs["warning"] = " | ".join(f"{m}: {w}" for m, w in zip(out["model"], out["warning"]) if w)
    return out


def _estimator(kinds: list[str], thr: float) -> str:
    words = {
        "integrated": f"integrated PSIS-LOO per study (study parameters integrated out; exact refits of core fits "
                      f"where Pareto k > {thr:g})",
        "conditional": "conditional PSIS-LOO of study_loglik (study parameters held at their draws)",
    }
    return " + ".join(words.get(k, k) for k in kinds)


def _warning(kinds: list[str], n_high: int, n_psis: int, thr: float, n_parts: int) -> str:
    out = []
    if "conditional" in kinds:
        out.append(f"conditional estimator, unreliable for leave-one-study-out: Pareto k > {thr:g} in {n_high} "
                   f"stud{'y' if n_high == 1 else 'ies'}" + (" (summed over the separate fits)" if n_parts > 1 else "")
                   + "; compare core or joint fits for the integrated estimator")
    elif n_psis > 0:
        out.append(f"{n_psis} stud{'y' if n_psis == 1 else 'ies'} with Pareto k > {thr:g} not refitted "
                   "(PSIS value unreliable)")
    return "; ".join(out)


def model_variants(result, *, seed: int | None = None, draws=None, tune=None, chains=None,
                   progressbar: bool = False) -> dict:
    """The fit and its variants on the same studies: the common-effect model for a
    random-effects fit (or the reverse), and the model without covariates when the fit
    has effect modifiers. Keys describe the model."""
    if not is_core_fit(result):
        raise ValueError("model_variants needs a core-model fit (bayesln.hierarchy.fit_core)")
    base = int(result.seed if seed is None else seed)
    kw = dict(draws=draws, tune=tune, chains=chains, progressbar=progressbar)
    ce = result.common_effect
    cov = list(result.design.effect_names)
    name = ("common effect" if ce else "random effects") + (f" + {', '.join(cov)}" if cov else "")
    out = {f"{name} (fitted)": result}
    other = "random effects" if ce else "common effect"
    with refit_batch(2 if cov else 1):
        out[other + (f" + {', '.join(cov)}" if cov else "")] = refit(
            result, common_effect=not ce, seed=derive_seed(base, "variant", "effect"), label=f"model variant: {other}",
            **kw)
        if cov:
            out[("common effect" if ce else "random effects") + " (no covariates)"] = refit(
                result, drop_effect_modifiers=True, seed=derive_seed(base, "variant", "nocov"),
                label="model variant: no covariates", **kw)
    return out
