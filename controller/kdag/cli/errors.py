"""How the command reports a mistake: one line on stderr naming what is wrong, exit status 1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_OK = 0
EXIT_FAILED = 1
"""A definition mistake, bad input, a failed run, or an error from the API server."""
EXIT_USAGE = 2
"""An unknown option or a missing argument (typer's own)."""


class UserError(Exception):
    """A mistake in what the user asked for; its message is printed as is."""


def fail(message: str, detail: str = "") -> SystemExit:
    """Print `error: message` to stderr (and `detail`, indented lines, under it) and return the exit to raise
    (a plain SystemExit, which typer lets through as it does its own Exit: no typer here, so that
    `kdag run --local` starts without it)."""
    to_stderr(f"error: {message}" + (f"\n{detail.rstrip()}" if detail else ""))
    return SystemExit(EXIT_FAILED)


def warn(message: str) -> None:
    """Print `warning: message` on its own line of stderr, after what stdout holds so far."""
    to_stderr(f"warning: {message}")


def to_stderr(text: str) -> None:
    """Write lines to stderr after flushing stdout: where both go to one file or pipe, each message stays
    on its own line, in the order the command printed them (stdout is buffered there, stderr is not)."""
    sys.stdout.flush()
    print(text, file=sys.stderr, flush=True)


@contextmanager
def reported() -> Iterator[None]:
    """Turn kdag's known errors into one line on stderr and exit status 1, without a traceback.

    An error from the API server (or a cluster never reached) is one of them: its message names the call
    and carries the server's reason.
    """
    from kdag.compile import DefinitionError
    from kdag.local.run import LocalRunError
    from kdag.topology import GraphError

    known: tuple[type[Exception], ...] = (DefinitionError, GraphError, LocalRunError, UserError)
    try:
        yield
    except Exception as err:
        # An API error comes from the client module, loaded then (a local run never loads it).
        kube = sys.modules.get("kdag_runner.kube")
        if isinstance(err, known) or (kube is not None and isinstance(err, kube.KubeApiError)):
            raise fail(str(err), getattr(err, "detail", "")) from None
        raise
    except KeyboardInterrupt:
        raise fail("interrupted") from None
