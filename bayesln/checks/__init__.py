"""Checks: Bayesian results against the frequentist RRs, and model criticism."""

from bayesln.checks.compare import bayesian_rr_draws, comparison_table

__all__ = ["bayesian_rr_draws", "comparison_table"]
