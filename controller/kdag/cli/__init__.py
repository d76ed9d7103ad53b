"""The `kdag` command: compile and run DAGs locally, and drive them on a cluster.

Exit codes: 0 success; 1 a definition mistake, bad input, a failed run or an API error (one line on stderr,
no traceback); 2 a usage error (unknown option, missing argument).

The typer application (`kdag.cli.app`) is loaded on first use: `kdag run --local` starts without it when its
arguments are plain (`kdag.cli.local_run`).
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdag.cli.app import app


def main() -> None:
    """Entry point of the `kdag` console script."""
    try:
        if sys.argv[1:2] == ["run"]:
            from kdag.cli import local_run

            local_run.main(sys.argv[2:])  # exits when it ran the DAG; returns when typer should read them
        from kdag.cli.app import app

        app()
    finally:
        # What is left is freed with the process: the collection at exit would only walk it.
        gc.freeze()


def __getattr__(name: str) -> Any:
    if name == "app":
        from kdag.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
