"""The rich Consoles the commands print through: a terminal's as it is; a file's or a pipe's one line per row.

Written to a file or a pipe, rich would wrap at 80 columns (or at another stream's terminal width) and
`Live` would leave its last frame without a newline; so there, nothing is live and nothing wraps.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich.console import Console

UNWRAPPED_WIDTH = 100_000
"""The width of a file's or pipe's Console: wide enough that no table cell folds."""


def console_for(stream: TextIO | None = None) -> Console:
    """A Console writing to `stream` (stdout by default): a terminal's width there, else $COLUMNS when set,
    else no wrapping at all."""
    stream = stream if stream is not None else sys.stdout
    if is_terminal(stream):
        return Console(file=stream)
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else UNWRAPPED_WIDTH
    return Console(file=stream, width=width)


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is a terminal (a live view redraws in place only there)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())
