"""The HTML report: memory timeline against the limit, accounting, top growth, diff flame graph.

Pure, like `pprof` and `analysis`: snapshots and run records in, one HTML string out. Reading
folders and fetching from the archive happen at the edge (`oomforensics.cli.report`).
"""

from oomforensics.report.flame import DEFAULT_MIN_SHARE, FlameFrame, FlameGraph, diff_flame_graph
from oomforensics.report.model import (
    DEFAULT_THRESHOLDS,
    Report,
    RunEvidence,
    RunIdentity,
    RunReport,
    build_report,
    run_identity,
)
from oomforensics.report.page import render_report

__all__ = [
    "DEFAULT_MIN_SHARE",
    "DEFAULT_THRESHOLDS",
    "FlameFrame",
    "FlameGraph",
    "Report",
    "RunEvidence",
    "RunIdentity",
    "RunReport",
    "build_report",
    "diff_flame_graph",
    "render_report",
    "run_identity",
]
