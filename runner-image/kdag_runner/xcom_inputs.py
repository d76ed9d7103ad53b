"""``xcomInputs``: XComs of ancestor tasks that a task receives as environment variables (docs/design.md,
"Delivery into a task pod").

Linux refuses to start a program when one of its environment strings (``NAME=value``) is longer than
``ENV_STRING_MAX`` bytes, and an XCom may fill a whole ConfigMap (1 MB). So a Python task's pod spec does not
carry them: its runner reads them from the ancestors' stores (``KDAG_XCOM_IN``) and sets them in its own
environment before the task's code loads, whatever their size (``export``). A command task's container gets
them from the kubelet, so ``problem`` is checked first (its pod's ``xcom-inputs`` init container; a local
run before it starts the command): a value the command could not start with fails the attempt with a
message naming the task, the XCom and the limit, instead of a container that fails to start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

from kdag_runner import store
from kdag_runner.environment import RunnerConfigError, XComInput

ENV_STRING_MAX = 131_072
"""Linux's MAX_ARG_STRLEN (32 pages of 4 KiB): the most bytes one ``NAME=value`` string, its NUL included,
may take when a program starts; longer, execve fails with E2BIG ("argument list too long")."""

_STORE_KEY = re.compile(store.STORE_KEY_PATTERN)


def read(inputs: Iterable[XComInput], xcom_in: Path | None) -> dict[str, str]:
    """The text form of each input whose XCom is stored, by variable name; one whose task pushed no such
    key (or whose store is absent, or is a mapped task's) stays unset, as an optional configMapKeyRef leaves
    it."""
    inputs = list(inputs)
    if not inputs:
        return {}
    if xcom_in is None:
        raise RunnerConfigError("KDAG_XCOM_IN is not set; xcomInputs are read from the XComs there")
    values: dict[str, str] = {}
    for inp in inputs:
        if inp.task in (".", "..") or "/" in inp.task or not _STORE_KEY.fullmatch(inp.key):
            raise RunnerConfigError(f"KDAG_XCOM_INPUTS: no XCom is stored as {inp.task!r}/{inp.key!r}")
        try:
            values[inp.env] = (xcom_in / inp.task / inp.key).read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except (OSError, UnicodeDecodeError) as err:
            raise store.XComError(f"xcomInputs: cannot read {_name(inp)}: {err}") from None
    return values


def export(
    task_id: str, inputs: Iterable[XComInput], xcom_in: Path | None, environ: MutableMapping[str, str]
) -> None:
    """Set each stored input in ``environ`` (the runner's own environment: no exec, so no size limit)."""
    by_env = {inp.env: inp for inp in inputs}
    for name, text in read(by_env.values(), xcom_in).items():
        try:
            environ[name] = text
        except ValueError:  # putenv refuses a NUL; the kubelet could not have set it either
            raise store.XComError(
                f"xcomInputs of task '{task_id}': {_name(by_env[name])} holds a NUL character, which no"
                f" environment variable can hold; read it with xcom_pull"
            ) from None


def problem(task_id: str, inputs: Iterable[XComInput], values: Mapping[str, str]) -> str:
    """Why the command of task ``task_id`` could not start with these input ``values`` (by variable name),
    naming the first input over ``ENV_STRING_MAX``; "" when it can."""
    for inp in inputs:
        text = values.get(inp.env)
        if text is None:
            continue
        size = len(inp.env.encode()) + 1 + len(text.encode()) + 1
        if size > ENV_STRING_MAX:
            return (
                f"xcomInputs of task '{task_id}': {_name(inp)} takes {size} bytes as the environment"
                f" variable {inp.env}, over Linux's limit of {ENV_STRING_MAX} bytes for one variable"
                " (MAX_ARG_STRLEN, 'NAME=value' counted), so the command could not start; read the file"
                f" $KDAG_XCOM_IN/{inp.task}/{inp.key} instead, or use a Python task (its runner sets"
                " variables of any size)"
            )
    return ""


def _name(inp: XComInput) -> str:
    """XCom 'key' of task 'id', the key as written (``inp.key`` is its ConfigMap key)."""
    try:
        key = store.decode_key(inp.key)
    except store.XComError:
        key = inp.key
    return f"XCom '{key}' of task '{inp.task}'"
