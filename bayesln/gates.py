"""A fit that failed its diagnostics gate never feeds anything silently.

The gate itself (R-hat, ESS, divergences, E-BFMI) is computed in
:mod:`bayesln.hierarchy.diagnostics`; this module holds what every consumer of a fit
(predictions, checks, reports, the command line) uses to refuse a failed one. It imports
nothing heavy, so the command line can catch :class:`GateFailedError` without importing
PyMC.
"""

from __future__ import annotations

__all__ = ["GateFailedError", "gate_warning"]


class GateFailedError(RuntimeError):
    """A fit that failed its diagnostics gate was handed to something that builds on it
    (predictions, checks, validation, prior sensitivity) without ``allow_failed_gate``.
    The command line reports it with exit code 1, as it does a failed fit."""


def gate_warning(result, use: str, allow_failed_gate: bool = False) -> str:
    """Downstream use of a fit: ``""`` when it passed its diagnostics gate; when it failed,
    raise :class:`GateFailedError` naming the problems - or, with ``allow_failed_gate``,
    return the warning that every table and file made from it must carry.

    ``use`` says what was refused ("predictions", "checks", ...). A result without a
    gate (``status`` missing) counts as passed."""
    status = getattr(result, "status", "ok")
    if status == "ok":
        return ""
    diag = getattr(result, "diagnostics", None)
    problems = "; ".join(getattr(diag, "problems", None) or [f"status {status!r}"])
    text = f"the fit failed its diagnostics gate ({problems})"
    if not allow_failed_gate:
        raise GateFailedError(f"{use} refused: {text}. Refit with more draws (or as the gate's report suggests); "
                              "allow_failed_gate=True / --allow-failed-gate shows them anyway, with this warning "
                              "on every output")
    return f"WARNING: {text}; {use} from it are not to be trusted"
