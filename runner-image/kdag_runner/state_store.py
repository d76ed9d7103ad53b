"""Airflow 3.3's task state store: ``context["task_state_store"]``, key/value state of one task instance that
its later attempts read back (see docs/design.md, "Task state store").

Semantics follow Airflow 3.3.2 (``TaskStateStoreAccessor`` in ``airflow/sdk/execution_time/context.py``, the
execution API's ``task_state_store`` routes and ``TaskStateStoreModel``):

- The state belongs to one task instance, (dag, run, task, map index): every attempt of it (retries and
  reschedules) shares it, each instance of a mapped task has its own, no other task sees it. That is the
  point: a retry reattaches to the work a failed try started instead of starting it again.
- ``get(key, default=None)``: the value, or ``default`` when the key is not set. ``set(key, value, *,
  retention=None)``: ``value`` is JSON (str, int, float, bool, lists and dicts of them; ``None`` is refused at
  the top, NaN and infinities anywhere). ``delete(key)``: a missing key is no error. ``clear()``: every key.
  Keys are non-empty strings of at most 512 characters (Airflow's column).
- Every change is stored at once, as Airflow sends each to its API server: a try that dies right after a
  ``set`` leaves the value for the next try.
- The state stays when the task succeeds: Airflow's ``[state_store] clear_on_success`` is False by default.

kdag's differences:

- ``retention`` (a ``timedelta``, ``NEVER_EXPIRE`` or ``None``) is checked and not recorded: every key lives
  as long as the run, whose deletion takes the state with it (the ConfigMap is owned by the DAGRun; Airflow's
  rows go with their dag run too). In Airflow an expiry only acts through its cleanup command, never on
  ``get``, so within a run the two agree.
- The state of an instance, as the JSON object ``.state``, must fit in ``store.STATE_SIZE_LIMIT`` bytes (it
  shares a ConfigMap with the XComs); Airflow only logs a warning past 64 KiB for one value.
- No async forms (``aget``, ``aset``, ...) and no custom backends: Airflow 3.3.2's accessor has neither, so
  its own ``example_task_state_store_async`` fails there on ``aget``, and under kdag alike.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from kdag_runner import store

if TYPE_CHECKING:
    from kdag_runner.environment import TaskEnvironment

NEVER_EXPIRE: timedelta = timedelta.max
"""Airflow's ``retention`` for a key that never expires (``airflow.sdk.execution_time.context``)."""
MAX_KEY_LENGTH = 512
"""Airflow's ``task_state_store.key`` column holds this many characters."""

_NOT_JSON_HINT = "store str, int, float, bool, or lists and dicts of them (a datetime as .isoformat())"


class TaskStateError(ValueError):
    """A key or value the task state store refuses (a ValueError, as Airflow's refusals are)."""


class StateHome(Protocol):
    """Where the state of one task instance lives across its attempts (``sinks``: its XCom ConfigMap, or its
    directory in a local run)."""

    def read_state(self) -> str | None:
        """The ``.state`` text earlier attempts left; None when there is none."""

    def write_state(self, text: str | None) -> None:
        """Replace the ``.state`` text at once; None removes it."""


class TaskStateStoreAccessor:
    """``context["task_state_store"]``: the state of this task instance (see the module docstring).

    The state is read on first use, so a task that never uses it costs nothing; it is one JSON object, kept
    here as each key's compact JSON text.
    """

    def __init__(self, task_id: str, map_index: int, home: Callable[[], StateHome]) -> None:
        self.task_id = task_id
        self.map_index = map_index
        self._home_factory = home
        self._home: StateHome | None = None
        self._texts: dict[str, str] | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_task(cls, env: TaskEnvironment) -> TaskStateStoreAccessor:
        """The accessor of the task instance ``env`` names, kept where its XComs go (``sinks``)."""

        def home() -> StateHome:
            from kdag_runner.sinks import sink_from_env

            return sink_from_env(env)

        return cls(env.task_id, env.map_index, home)

    def __repr__(self) -> str:
        return f"<TaskStateStoreAccessor task_id={self.task_id!r} map_index={self.map_index}>"

    def __deepcopy__(self, memo: dict[int, Any]) -> TaskStateStoreAccessor:
        # A handle on the instance's one state, as Airflow's accessor is: a copied context shares it.
        return self

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` (a fresh copy), or ``default`` when the key is not set."""
        self._check_key(key)
        with self._lock:
            text = self._state().get(key)
        return default if text is None else json.loads(text)

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None:
        """Store ``value`` under ``key`` now, replacing what it held; ``retention`` is checked, not recorded
        (the state lives as long as the run)."""
        self._check_key(key)
        if value is None:
            raise TaskStateError(
                f"task state key {key!r} of {self._owner()}: cannot set None (delete({key!r}) removes a key)"
            )
        if retention is not None and not isinstance(retention, timedelta):
            raise TypeError(
                f"task state key {key!r} of {self._owner()}: retention must be a timedelta, NEVER_EXPIRE or "
                f"None, got {type(retention).__name__}"
            )
        text = self._json_text(key, value)
        with self._lock:
            texts = dict(self._state())
            texts[key] = text
            self._write(texts, key)

    def delete(self, key: str) -> None:
        """Remove ``key``; a key that is not set is no error."""
        self._check_key(key)
        with self._lock:
            if key not in self._state():
                return
            texts = {k: v for k, v in self._state().items() if k != key}
            self._write(texts, key)

    def clear(self) -> None:
        """Remove every key of this task instance."""
        with self._lock:
            try:
                empty = not self._state()
            except TaskStateError:
                empty = False  # a damaged state: clearing it is the way out
            if not empty:
                self._write({}, None)

    # -- the stored form -------------------------------------------------------------------------

    def _state(self) -> dict[str, str]:
        if self._texts is None:
            self._texts = decode_state(self._home_or_new().read_state(), self._owner())
        return self._texts

    def _home_or_new(self) -> StateHome:
        if self._home is None:
            self._home = self._home_factory()
        return self._home

    def _write(self, texts: dict[str, str], key: str | None) -> None:
        text = encode_state(texts)
        if text is not None:
            size = len(store.STATE_KEY) + len(text.encode("utf-8"))
            if size > store.STATE_SIZE_LIMIT:
                which = f" with key {key!r}" if key is not None else ""
                raise TaskStateError(
                    f"task state of {self._owner()} would take {size} bytes{which}; the state of a task "
                    f"instance must fit in {store.STATE_SIZE_LIMIT} bytes (it shares one ConfigMap with the "
                    "XComs): keep ids, cursors and checkpoints there, and the data elsewhere"
                )
        self._home_or_new().write_state(text)
        self._texts = texts

    def _owner(self) -> str:
        return f"task '{self.task_id}'" + (f" (map index {self.map_index})" if self.map_index >= 0 else "")

    def _check_key(self, key: object) -> None:
        if not isinstance(key, str) or not key:
            shown = "an empty str" if key == "" else type(key).__name__
            raise TaskStateError(f"task state key of {self._owner()} must be a non-empty str, got {shown}")
        if len(key) > MAX_KEY_LENGTH:
            raise TaskStateError(
                f"task state key {key[:40]!r}... of {self._owner()} has {len(key)} characters; "
                f"keys are at most {MAX_KEY_LENGTH}"
            )

    def _json_text(self, key: str, value: Any) -> str:
        problem = _not_json(value, "value")
        if problem:
            raise TaskStateError(
                f"task state key {key!r} of {self._owner()} is not JSON: {problem}; {_NOT_JSON_HINT}"
            )
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise TaskStateError(
                f"task state key {key!r} of {self._owner()} is not valid UTF-8 text: {err.reason}"
            ) from None
        return text


def _not_json(value: Any, path: str) -> str:
    """What keeps ``value`` from being JSON that reads back as itself ("" when nothing does)."""
    if value is None or isinstance(value, str | bool | int):
        return ""
    if isinstance(value, float):
        return "" if math.isfinite(value) else f"{path} is {value!r} (NaN and infinities are not JSON)"
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _not_json(item, f"{path}[{index}]")
            if problem:
                return problem
        return ""
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                return f"{path} has a {type(name).__name__} key {name!r} (JSON keys are strings)"
            problem = _not_json(item, f"{path}[{name!r}]")
            if problem:
                return problem
        return ""
    return f"{path} is a {type(value).__name__}"


def encode_state(texts: dict[str, str]) -> str | None:
    """The ``.state`` text of keys and their compact JSON texts: one JSON object; None when empty."""
    if not texts:
        return None
    members = (f"{json.dumps(key, ensure_ascii=False)}:{text}" for key, text in texts.items())
    return "{" + ",".join(members) + "}"


def decode_state(text: str | None, owner: str = "the task") -> dict[str, str]:
    """Keys and compact JSON texts of a ``.state`` text (``{}`` for None)."""
    if text is None or not text.strip():
        return {}
    try:
        parsed = json.loads(text)
    except ValueError as err:
        raise TaskStateError(f"the stored task state of {owner} does not parse: {err}") from None
    if not isinstance(parsed, dict):
        raise TaskStateError(f"the stored task state of {owner} is not a JSON object")
    return {
        str(key): json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        for key, value in parsed.items()
    }
