"""``bayesln.fit``: a one-line Bayesian meta-analysis, as Bambi and brms users expect.

    >>> import bayesln
    >>> res = bayesln.fit(df, outcome="tb", treat="bcg", control="control", direction="harm")  # doctest: +SKIP
    >>> res.summary()                                                                          # doctest: +SKIP

``data`` is a DataFrame or CSV path in the long arm-level format or the wide 2x2 layout
(``study, events_t, n_t, events_c, n_c`` or metafor's ``ai, n1i, ci, n2i``), a bundled
dataset name, or a :class:`~bayesln.data.TrialData`. The model is the core binomial-normal
random-effects model of :func:`bayesln.hierarchy.fit_core` with its default priors; the
sampler settings default to the shipped specs' (4 chains x 2000 draws after 1000 tuning
steps, target acceptance 0.995: measured to pass the diagnostics gate robustly, see
``benchmarks/seed_sweep.py``), so ::

    bayesln.fit("tacrolimus_ln", "total_response", phases="induction", designs="rct", seed=20261122)

is the main analysis that ``bayesln fit models/total_response.toml`` runs, draw for draw.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from bayesln.hierarchy.sampler_defaults import DEFAULT_SAMPLER

__all__ = ["SPEC_SAMPLER", "fit"]

#: the shipped core specs' sampler settings (models/*.toml): the defaults of specs and fit_core
SPEC_SAMPLER = dict(DEFAULT_SAMPLER)


def _labels(x) -> tuple[str, ...] | None:
    if x is None:
        return None
    if isinstance(x, str):
        return tuple(s.strip() for s in x.split(",") if s.strip())
    return tuple(x)


def _trial_data(data, outcome, treat, control):
    import bayesln
    from bayesln.data import TrialData

    if isinstance(data, TrialData):
        return data
    one = lambda x: x[0] if x and len(x) == 1 else None  # noqa: E731
    if isinstance(data, str) and data in bayesln.list_datasets():
        return bayesln.load_dataset(data)
    if isinstance(data, (str, pd.DataFrame)) or hasattr(data, "__fspath__"):
        return bayesln.read_trials(data, outcome=outcome, treat=one(treat), control=one(control))
    raise TypeError(f"data must be a DataFrame, a CSV path, a bundled dataset name or a TrialData, not "
                    f"{type(data).__name__}")


def fit(data, outcome: str | None = None, treat: str | Iterable[str] = "tac",
        control: str | Iterable[str] | None = None, *, direction: str | None = None,
        phases: str | Iterable[str] | None = None, designs: str | Iterable[str] | None = None,
        seed: int = 20261122, draws: int = SPEC_SAMPLER["draws"], tune: int = SPEC_SAMPLER["tune"],
        chains: int = SPEC_SAMPLER["chains"], target_accept: float = SPEC_SAMPLER["target_accept"], **model):
    """Fit the core model to ``data`` and return the :class:`~bayesln.hierarchy.result.FitResult`
    (``.summary()``, ``.study_effects()``, ``.predict(target, seed=...)``,
    ``.plot_forest()``, ``.diagnostics``).

    outcome : the outcome label (default: the only outcome in the data).
    treat, control : treatment labels of the two sides (comma-separated text or a list);
        ``control`` default every other arm. For a wide file without label columns they
        name the arms.
    direction : ``"benefit"`` or ``"harm"`` for an outcome outside the bundled
        vocabulary (which side "TAC better" means); bundled outcomes know theirs.
    phases, designs : keep only studies of these phases / designs.
    **model : further keywords of :func:`bayesln.hierarchy.fit_core` (``baseline``,
        ``effect_modifiers``, ``priors``, ``common_effect``, ``backend``, ...).
    """
    from bayesln.hierarchy import fit_core

    t, c = _labels(treat) or ("tac",), _labels(control)
    td = _trial_data(data, outcome, t, c)
    present = list(dict.fromkeys(td.outcomes.dropna(subset=["events", "n"])["outcome"].astype(str)))
    if outcome is None:
        if len(present) != 1:
            raise ValueError(f"give outcome=...: the data hold {len(present)} outcomes ({', '.join(present) or 'none'})")
        outcome = present[0]
    sel = td.select(phases=phases, designs=designs) if phases is not None or designs is not None else td
    if c is not None:
        sel = sel.select(treatments=t + c)
    return fit_core(sel, outcome, treat=t, direction=direction, seed=seed, draws=draws, tune=tune, chains=chains,
                    target_accept=target_accept, **model)
