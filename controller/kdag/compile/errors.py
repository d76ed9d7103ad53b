"""What `kdag compile` refuses: `DefinitionError` (one line naming the file, DAG or task, and the
problem), and the validator's answer turned into one (`valid`)."""

from __future__ import annotations

from kdag.api import validation
from kdag.api.models import DAGSpec


class DefinitionError(Exception):
    """A DAG file kdag refuses; the message is one line naming the task (or DAG) and the problem."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail
        """Lines the command prints under the message: the traceback of an exception the file raised."""


def valid(where: str, checked: tuple[DAGSpec | None, list[validation.Problem]]) -> DAGSpec:
    """The spec of a validator's answer; DefinitionError listing every problem on one line otherwise,
    e.g. `DAG 'x': task 'a' (spec.tasks[0].env[0].name): ...; spec.schedule: ...`."""
    model, problems = checked
    if model is None or problems:
        raise DefinitionError(f"{where}: {validation.describe(problems)}")
    return model
