"""Model comparison by leave-one-study-out (LOO) expected log predictive density.

Each model is a fit (core model or another family with a per-study ``study_loglik``), a
:class:`~bayesln.checks.loo.StudyLoo`, or a list of them ("separate" models of several
outcomes whose per-study elpds are added, to set against a joint model of the same
outcomes). All models must cover the same studies (the unit of LOO is the study).

Output columns, best model first (as ``loo_compare``): ``elpd_loo``, ``se``, ``p_loo``,
``elpd_diff`` (this model minus the best, <= 0), ``se_diff`` (sqrt(n var(elpd_i^A -
elpd_i^best)), Vehtari, Gelman & Gabry 2017), ``n_studies``, ``n_high_k``, ``n_exact``,
``kind`` and a ``note`` (a difference smaller than twice its SE is "not distinguishable").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayesln.checks.loo import K_THRESHOLD, StudyLoo, study_loo
from bayesln.checks.refit import derive_seed, is_core_fit, refit

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

    ``kind``: ``"integrated"`` (core fits: study parameters integrated out, exact refits
    where Pareto k is high), ``"conditional"`` (ArviZ PSIS-LOO of ``study_loglik``, any
    model family, no refits) or ``"auto"``: integrated when every model is a core fit,
    else conditional for all, so that every model is scored by the same estimator."""
    if len(models) < 2:
        raise ValueError("compare_models needs at least two models")
    if kind == "auto":
        fits = [f for m in models.values() for f in _fits(m) if not isinstance(f, StudyLoo)]
        kind = "integrated" if all(is_core_fit(f) for f in fits) else "conditional"
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
        rows.append({
            "model": name, "elpd_loo": float(tot[name]), "se": float(np.sqrt(n * np.var(e))),
            "p_loo": float(sum(p.p_loo for p in parts)), "elpd_diff": d, "se_diff": se_diff, "n_studies": n,
            "n_high_k": int(sum(p.n_high_k for p in parts)),
            "n_exact": int(sum((p.pointwise["method"] == "exact").sum() for p in parts)),
            "kind": "+".join(sorted({p.kind for p in parts})), "note": note,
        })
    out = pd.DataFrame(rows).sort_values("elpd_loo", ascending=False, kind="stable").reset_index(drop=True)
    out.attrs["pointwise"] = E
    return out


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
    out[other + (f" + {', '.join(cov)}" if cov else "")] = refit(
        result, common_effect=not ce, seed=derive_seed(base, "variant", "effect"), label=other, **kw)
    if cov:
        out[("common effect" if ce else "random effects") + " (no covariates)"] = refit(
            result, drop_effect_modifiers=True, seed=derive_seed(base, "variant", "nocov"), label="no covariates", **kw)
    return out
