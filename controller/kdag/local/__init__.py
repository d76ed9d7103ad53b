"""Running a whole DAG on this machine, through the same runner and scheduling decisions as a cluster.

The names are `kdag.local.run`'s, imported on first use: the fork server (`kdag.local.forkserver`) lives in
this package and must start without loading the rest of kdag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdag.local.run import LocalDag, LocalRunError, LocalRunResult, TaskReport, XComRow, run_local

__all__ = ["LocalDag", "LocalRunError", "LocalRunResult", "TaskReport", "XComRow", "run_local"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kdag.local import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
