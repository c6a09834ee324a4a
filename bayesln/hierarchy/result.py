"""FitResult: the draws of one core-model fit plus everything needed to read them.

Summaries are in clinical terms: the pooled odds ratio of the treated arms (TAC) versus
control, the between-study SD, covariate effects as ratios of odds ratios, and the
posterior probability that the treatment helps (OR > 1 for benefit outcomes such as
renal response, OR < 1 for harms such as infection).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit

from bayesln import _arviz
from bayesln.hierarchy.design import Design
from bayesln.hierarchy.diagnostics import Diagnostics

__all__ = ["FitResult", "interval_columns"]


def interval_columns(ci: float) -> tuple[str, str]:
    """Column names of a central interval, e.g. ``("q2.5", "q97.5")`` for ci=0.95."""
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    lo, hi = 100 * (1 - ci) / 2, 100 * (1 + ci) / 2
    return f"q{round(lo, 6):g}", f"q{round(hi, 6):g}"


def _stats(x: np.ndarray, ci: float) -> dict:
    lo, hi = interval_columns(ci)
    ql, qm, qh = np.quantile(x, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
    return {"median": qm, lo: ql, hi: qh, "mean": float(np.mean(x)), "sd": float(np.std(x, ddof=1))}


@dataclass
class FitResult:
    """Result of :func:`bayesln.hierarchy.fit_core`.

    Attributes
    ----------
    idata : ArviZ InferenceData with groups posterior, posterior_derived (``or``,
        ``or_new``, ``rr``, ``rr_pooled_baseline``), sample_stats, prior,
        prior_predictive, posterior_predictive, observed_data, constant_data,
        log_likelihood (one variable, ``study_integrated``: each study's log-likelihood
        with its own parameters integrated out, the one ``bayesln check`` scores, so
        ``az.loo(idata)`` is leave-one-study-out) and log_likelihood_conditional
        (``study_loglik``: given the study's own parameters, the sum over its arms);
        dims ``study``, ``arm``, ``covariate``; attrs hold the model configuration
        (JSON), data fingerprint, bayesln version, seed and backend. Every variable is
        listed with its dims and meaning in
        :data:`bayesln.hierarchy.fit.CORE_EXPORT`. Refits
        (:mod:`bayesln.checks.refit`) have no log_likelihood and posterior_derived groups.
    design : the :class:`~bayesln.hierarchy.design.Design` (arrays, covariate transforms).
    diagnostics : the gate result; ``status`` is ``"ok"`` or ``"failed_gate"``.
    config : the model configuration (also in ``idata.attrs["model_config"]``).
    """

    idata: object
    design: Design
    diagnostics: Diagnostics
    config: dict
    seed: int
    backend: str
    _cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ basics
    @property
    def status(self) -> str:
        return "ok" if self.diagnostics.passed else "failed_gate"

    @property
    def usage(self) -> pd.DataFrame:
        """One row per study: whether and how it entered the model."""
        return self.design.usage

    @property
    def outcome(self) -> str:
        return self.design.outcome

    @property
    def direction(self) -> str:
        return self.design.direction

    @property
    def common_effect(self) -> bool:
        return bool(self.config.get("common_effect", False))

    def __repr__(self) -> str:
        inc = int(self.usage["included"].sum())
        return (
            f"<FitResult {self.outcome}: {inc} studies, {self.design.n_arms} arms, baseline={self.design.baseline}, "
            f"status={self.status}, backend={self.backend}, seed={self.seed}>"
        )

    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of a variable, chains pooled: shape (n_draws, *dims)."""
        da = self.idata.posterior[name]
        arr = np.asarray(da.values)
        return arr.reshape((-1,) + arr.shape[2:])

    def contrast_draws(self) -> np.ndarray:
        """Draws of each study's log odds ratio (treated arm vs control arm, one column
        per row of ``design.contrasts``), from the arm-level linear predictor."""
        if "contrast" not in self._cache:
            eta = self.draws("eta")
            c = self.design.contrasts
            self._cache["contrast"] = eta[:, c["t_index"].to_numpy()] - eta[:, c["c_index"].to_numpy()]
        return self._cache["contrast"]

    # ------------------------------------------------------------------ summaries
    def summary(self, ci: float = 0.95) -> pd.DataFrame:
        """Pooled log-OR and OR, tau, the predictive OR of a new study, covariate effects
        (ratio of odds ratios per unit of the transformed covariate), baseline terms,
        and the probability that the treatment helps."""
        lo, hi = interval_columns(ci)
        treat = "/".join(self.design.treat).upper()
        rows = []

        def add(quantity, parameter, x, note=""):
            rows.append({"quantity": quantity, "parameter": parameter, **_stats(np.asarray(x, float), ci), "note": note})

        d = self.draws("d")
        has_mod = bool(self.design.effect_names)
        at = " at the covariate reference values" if has_mod else ""
        add("pooled log-OR", "d", d, f"{treat} vs control, log odds ratio{at}")
        add("pooled OR", "exp(d)", np.exp(d), f"{treat} vs control, odds ratio{at}")
        if not self.common_effect:
            tau = self.draws("tau")
            add("tau", "tau", tau, "between-study SD of the log odds ratio")
            rng = np.random.default_rng([int(self.seed), 20240611])
            pred = d + tau * rng.standard_normal(d.shape)
            add("predictive OR (new study)", "exp(d + tau*e)", np.exp(pred), "odds ratio in a new study (prediction interval)")
        if has_mod:
            beta = self.draws("beta")
            for k, tr in enumerate(self.design.effect_transforms):
                add(f"OR ratio: {tr.name}", f"exp(beta[{tr.name}])", np.exp(beta[:, k]), tr.describe())
        if self.design.baseline == "exchangeable":
            m = self.draws("m")
            add("control risk (typical study)", "inv_logit(m)", expit(m), "event probability in a control arm of a typical study")
            add("sigma_mu", "sigma_mu", self.draws("sigma_mu"), "between-study SD of the baseline log odds")
            if self.design.baseline_names:
                gamma = self.draws("gamma")
                for k, tr in enumerate(self.design.baseline_transforms):
                    add(f"baseline OR: {tr.name}", f"exp(gamma[{tr.name}])", np.exp(gamma[:, k]), tr.describe())
        if self.direction == "benefit":
            p, q, note = float(np.mean(d > 0)), "P(OR > 1)", f"posterior probability that {treat} increases {self.outcome}"
        else:
            p, q, note = float(np.mean(d < 0)), "P(OR < 1)", f"posterior probability that {treat} reduces {self.outcome}"
        rows.append({"quantity": q, "parameter": "d", "median": np.nan, lo: np.nan, hi: np.nan, "mean": p, "sd": np.nan, "note": note})
        out = pd.DataFrame(rows).set_index("quantity")
        out["ci_level"] = ci
        return out[["parameter", "median", lo, hi, "mean", "sd", "ci_level", "note"]]

    def study_effects(self, ci: float = 0.95) -> pd.DataFrame:
        """Per study (per treated-vs-control arm pair): the shrunken log-OR and OR with
        intervals next to the observed log-OR (0.5 added to every cell of a study's 2x2
        table when a cell is zero)."""
        lo, hi = interval_columns(ci)
        c = self.design.contrasts
        if c.empty:
            return pd.DataFrame()
        draws = self.contrast_draws()
        a, n1, b, n2 = (c[k].to_numpy(float) for k in ("events_t", "n_t", "events_c", "n_c"))
        zero = (a == 0) | (a == n1) | (b == 0) | (b == n2)
        cc = np.where(zero, 0.5, 0.0)
        obs = np.log((a + cc) / (n1 - a + cc)) - np.log((b + cc) / (n2 - b + cc))
        se = np.sqrt(1 / (a + cc) + 1 / (n1 - a + cc) + 1 / (b + cc) + 1 / (n2 - b + cc))
        ql, qm, qh = np.quantile(draws, [(1 - ci) / 2, 0.5, (1 + ci) / 2], axis=0)
        out = c[["study", "treated_arm", "control_arm", "events_t", "n_t", "events_c", "n_c"]].copy()
        out["observed_log_or"] = obs
        out["observed_se"] = se
        out["corrected"] = zero
        out["log_or_median"] = qm
        out[f"log_or_{lo}"] = ql
        out[f"log_or_{hi}"] = qh
        out["or_median"] = np.exp(qm)
        out[f"or_{lo}"] = np.exp(ql)
        out[f"or_{hi}"] = np.exp(qh)
        out["ci_level"] = ci
        return out.reset_index(drop=True)

    # ------------------------------------------------------------------ misc
    def conditional_loglik(self):
        """The per-study log-likelihood given each study's own parameters, (chain, draw,
        study): ``log_likelihood_conditional["study_loglik"]`` (core and joint fits), or
        ``log_likelihood["study_loglik"]`` (ordinal and network fits, runs written before
        the integrated one was exported)."""
        for g in ("log_likelihood_conditional", "log_likelihood"):
            ds = _arviz.group(self.idata, g)
            if ds is not None and "study_loglik" in ds.data_vars:
                return ds["study_loglik"]
        raise KeyError("this fit has no per-study conditional log-likelihood (study_loglik)")

    def loo(self, kind: str = "auto", reff: float | None = None):
        """Leave-one-study-out PSIS-LOO by ArviZ (``az.loo``; ``reff`` None: ArviZ's own).

        ``kind``: ``"integrated"`` scores ``log_likelihood["study_integrated"]`` (the
        study's own parameters integrated out: what ``bayesln check`` uses; equal to
        ``az.loo(self.idata)``); ``"conditional"`` scores ``study_loglik`` given the study's
        own parameters (leaving a study out returns its own parameters to the prior, so
        Pareto k is usually > 0.7 for every study); ``"auto"`` (default): integrated when
        the fit has it (core and joint fits), else conditional (ordinal, network)."""
        if kind not in ("auto", "integrated", "conditional"):
            raise ValueError(f"kind must be 'auto', 'integrated' or 'conditional', not {kind!r}")
        ll = _arviz.group(self.idata, "log_likelihood")
        has_integrated = ll is not None and "study_integrated" in ll.data_vars
        if kind == "integrated" or (kind == "auto" and has_integrated):
            if not has_integrated:
                raise KeyError("this fit has no integrated log-likelihood (log_likelihood['study_integrated'])")
            return _arviz.loo(self.idata, var_name="study_integrated", reff=reff)
        cond = self.conditional_loglik()
        view = _arviz.make_inference_data({"posterior": self.idata.posterior,
                                           "log_likelihood": cond.to_dataset(name="study_loglik")})
        return _arviz.loo(view, var_name="study_loglik", reff=reff)

    def predict(self, target, *, seed: int, **kw):
        """Posterior predictive probabilities for a target population
        (:func:`bayesln.predict.predict`; refused when the fit failed its gate unless
        ``allow_failed_gate=True``)."""
        from bayesln.predict.prediction import predict

        return predict(self, target, seed=seed, **kw)

    def plot_forest(self, **kw):
        """The forest plot of this fit (:func:`bayesln.plots.forest_plot`)."""
        from bayesln.plots.forest import forest_plot

        return forest_plot(self, **kw)

    def to_netcdf(self, path) -> str:
        return _arviz.to_netcdf(self.idata, path)

    def to_dict(self, ci: float = 0.95) -> dict:
        """JSON-ready: status, diagnostics, configuration, summary and usage."""
        s = self.summary(ci).reset_index()
        return {
            "status": self.status,
            "diagnostics": self.diagnostics.to_dict(),
            "config": self.config,
            "summary": json.loads(s.to_json(orient="records")),
            "usage": json.loads(self.usage.to_json(orient="records")),
            "seed": self.seed,
            "backend": self.backend,
        }
