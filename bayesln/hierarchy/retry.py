"""An honest automatic retry when a fit misses its diagnostics gate.

Every family samples through :func:`sample_gated`: it samples, applies the gate and, when
the gate fails and retrying is on (the default: ``retry=True`` of the ``fit_*`` functions,
``[sampler] retry`` of a spec), tries again within a fixed budget:

1. **The sampler diverged, or E-BFMI is low** (the geometry is the problem, more draws of
   the same chains would not help): the model is sampled once more from scratch with a
   higher target acceptance, ``1 - (1 - target_accept) / 10`` (0.99 -> 0.999, 0.995 ->
   0.9995, at most 0.9999), and, under ``parameterization="auto"`` when the data-driven
   choice had centred some studies, with every study non-centred (the form that removes the
   funnel when tau is small; :mod:`bayesln.hierarchy.parameterize` for the core family,
   ``choose_ordinal`` / ``choose_joint`` / ``choose_network`` for the others, whose
   exchangeable baselines fall back to non-centred too).
   The first attempt's draws are discarded: they came from another sampler.
2. **Only R-hat or the effective sample sizes fall short** (the chains mix, there are too
   few draws): more chains of the same model and settings are added, each batch as many
   chains as the fit asked for, with their own seed ``derive_seed(seed, "chains", k)``, and
   the gate is applied to all chains together. At most :data:`MAX_EXTRA_BATCHES` batches
   (so at most three times the requested draws).

The gate applies to the final posterior; a fit that still fails is reported as failed as
before. Every retry is recorded (``Diagnostics.retries``, written to ``diagnostics.json``
and the run's config, printed by ``bayesln fit``): what failed, what was done, the seed.
Without retries the behaviour is the one-attempt fit of earlier versions (``retry=False``).

The number of sampler runs is at most 1 + 1 + MAX_EXTRA_BATCHES = 4 (with their time);
``benchmarks/calibration.py`` measures how often each step is taken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import xarray as xr

__all__ = ["MAX_EXTRA_BATCHES", "derive_seed", "higher_target_accept", "record_retries", "sample_gated", "structural"]

#: at most this many batches of extra chains after an ESS / R-hat shortfall
MAX_EXTRA_BATCHES = 2


def derive_seed(seed: int, *keys) -> int:
    """A reproducible child seed of ``seed`` named by ``keys``."""
    import zlib

    parts = [int(seed) % (2**32)] + [zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence(parts).generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))


def higher_target_accept(ta: float) -> float:
    return float(min(0.9999, 1.0 - (1.0 - float(ta)) / 10.0))


def structural(diag) -> bool:
    """True when the gate failed on divergences or E-BFMI (not only on R-hat / ESS)."""
    th = diag.thresholds
    return diag.divergences > th.divergences_max or bool(np.any(np.asarray(diag.bfmi) < th.bfmi_min))


def _concat_chains(a: xr.Dataset | None, b: xr.Dataset | None) -> xr.Dataset | None:
    if a is None or b is None:
        return a if b is None else b
    n = a.sizes["chain"]
    b = b.assign_coords(chain=np.arange(n, n + b.sizes["chain"]))
    common = [v for v in a.data_vars if v in b.data_vars and a[v].dims == b[v].dims and "chain" in a[v].dims]
    return xr.concat([a[common], b[common]], dim="chain", data_vars="all", coords="minimal", compat="override",
                     join="override")


def _short(problems) -> str:
    return "; ".join(problems)


def sample_gated(sample: Callable, gate: Callable, *, settings, seed: int, retry: bool = True,
                 alternative: Callable | None = None):
    """Sample, gate and retry as the module docstring says.

    ``sample(settings, seed, alternative_form: bool) -> (posterior, sample_stats, backend)``;
    ``gate(posterior, sample_stats) -> Diagnostics``; ``alternative`` (or None): a short
    description of the other form the structural retry samples (``sample`` is then called
    with ``alternative_form=True``), e.g. "every study non-centred".

    Returns ``(posterior, sample_stats, backend, diagnostics, final settings,
    alternative_form used)``; ``diagnostics.retries`` lists the retries.
    """
    posterior, stats, used = sample(settings, seed, False)
    diag = gate(posterior, stats)
    retries: list[dict] = []
    alt = False
    if retry and not diag.passed and structural(diag):
        new = replace(settings, target_accept=higher_target_accept(settings.target_accept))
        alt = alternative is not None
        what = f"refitted with target_accept {new.target_accept:g}"
        if alt:
            what += f" and {alternative()}"
        retries.append({"reason": _short(diag.problems), "action": what, "seed": int(seed),
                        "kind": "refit"})
        settings = new
        posterior, stats, used = sample(settings, seed, alt)
        diag = gate(posterior, stats)
    batch = 0
    while retry and not diag.passed and not structural(diag) and batch < MAX_EXTRA_BATCHES:
        batch += 1
        s2 = derive_seed(seed, "chains", batch)
        p2, st2, _ = sample(settings, s2, alt)
        reason = _short(diag.problems)
        posterior = _concat_chains(posterior, p2)
        stats = _concat_chains(stats, st2)
        diag = gate(posterior, stats)
        retries.append({"reason": reason, "kind": "more_chains", "seed": int(s2),
                        "action": f"added {settings.chains} chains of {settings.draws} draws (seed {s2}); "
                                  f"{posterior.sizes['chain']} chains in all"})
    diag.retries = retries
    return posterior, stats, used, diag, settings, alt


def record_retries(config: dict, diag, final, posterior) -> None:
    """Write the retries of :func:`sample_gated` into a fit's ``config`` (nothing when there
    were none): ``retries``, and the final ``target_accept`` / number of chains beside the
    requested ones in ``config["sampler"]``."""
    if not diag.retries:
        return
    config["retries"] = diag.retries
    sampler = config.setdefault("sampler", {})
    sampler["target_accept_final"] = final.target_accept
    sampler["chains_final"] = int(posterior.sizes["chain"])
