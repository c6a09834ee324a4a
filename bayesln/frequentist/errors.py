"""Errors raised by :mod:`bayesln.frequentist`.

Every error is a :class:`ValueError` subclass so that the command line can map bad input
to exit code 2 with one ``except ValueError``.
"""

from __future__ import annotations


class FrequentistInputError(ValueError):
    """The contrast table or the options cannot be analysed (the message says why)."""


class DuplicateStudyError(FrequentistInputError):
    """A contrast table lists the same study more than once.

    The engine consumes exactly one two-arm contrast per study; multi-arm trials must be
    collapsed first (``TrialData.contrasts(..., multi_arm="pool")`` does that).
    """


class NotEstimableError(FrequentistInputError):
    """The pooled effect is not estimable from the data (e.g. every study is double-zero)."""
