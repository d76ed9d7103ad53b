"""The `kdag` command: compile and run DAGs locally, and drive them on a cluster.

Exit codes: 0 success; 1 a definition mistake, bad input, a failed run or an API error (one line on stderr,
no traceback); 2 a usage error (unknown option, missing argument).
"""

from __future__ import annotations

from kdag.cli.app import app


def main() -> None:
    """Entry point of the `kdag` console script."""
    app()


__all__ = ["app", "main"]
