"""Running a whole DAG on this machine, through the same runner and scheduling decisions as a cluster."""

from __future__ import annotations

from kdag.local.run import LocalDag, LocalRunError, LocalRunResult, TaskReport, XComRow, run_local

__all__ = ["LocalDag", "LocalRunError", "LocalRunResult", "TaskReport", "XComRow", "run_local"]
