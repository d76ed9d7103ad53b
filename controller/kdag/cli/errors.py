"""How the command reports a mistake: one line on stderr naming what is wrong, exit status 1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

EXIT_OK = 0
EXIT_FAILED = 1
"""A definition mistake, bad input, a failed run, or an error from the API server."""
EXIT_USAGE = 2
"""An unknown option or a missing argument (typer's own)."""


class UserError(Exception):
    """A mistake in what the user asked for; its message is printed as is."""


def fail(message: str) -> typer.Exit:
    """Print `error: message` to stderr and return the Exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(EXIT_FAILED)


@contextmanager
def reported() -> Iterator[None]:
    """Turn kdag's known errors into one line on stderr and exit status 1, without a traceback.

    An error from the API server (or a cluster never reached) is one of them: its message names the call
    and carries the server's reason.
    """
    from kdag_runner.kube import KubeApiError

    from kdag.compile import DefinitionError
    from kdag.local.run import LocalRunError
    from kdag.topology import GraphError

    try:
        yield
    except (DefinitionError, GraphError, LocalRunError, UserError, KubeApiError) as err:
        raise fail(str(err)) from None
    except KeyboardInterrupt:
        raise fail("interrupted") from None
