"""The loggers tasks write to (``BaseOperator.log``): under ``airflow.task``, INFO and above to stderr, in
Airflow's format, so a task's log reads as it would in Airflow.
"""

from __future__ import annotations

import sys
from typing import Any

_loggers: dict[str, Any] = {}


def task_logger(name: str) -> Any:
    """A logger under ``airflow.task`` that prints INFO and above to stderr (logging is imported here,
    on first use, so the runner starts without it)."""
    logger = _loggers.get(name)
    if logger is None:
        import logging

        class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
            """Writes to the sys.stderr of the moment (tests swap it)."""

            @property
            def stream(self) -> Any:
                return sys.stderr

            @stream.setter
            def stream(self, value: Any) -> None:
                pass

        root = logging.getLogger("airflow.task")
        if not root.handlers:
            handler = StderrHandler()
            handler.setFormatter(
                logging.Formatter("[%(asctime)s] {%(filename)s:%(lineno)d} %(levelname)s - %(message)s")
            )
            root.addHandler(handler)
            root.setLevel(logging.INFO)
            root.propagate = False
        logger = _loggers[name] = logging.getLogger(name)
    return logger
