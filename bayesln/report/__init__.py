"""What a guideline panel reads: the Summary-of-Findings table (:mod:`.sof`) and the
self-contained HTML report of one or more run folders (:mod:`.html`, ``bayesln report``)."""

from bayesln.report.sof import SOF_COLUMNS, summary_of_findings

__all__ = ["SOF_COLUMNS", "build_report", "summary_of_findings", "write_report"]


def __getattr__(name: str):
    if name in ("build_report", "write_report"):
        from bayesln.report import html

        return getattr(html, name)
    raise AttributeError(f"module 'bayesln.report' has no attribute {name!r}")
