"""``TaskInstance``: Airflow 3's ``xcom_push``/``xcom_pull`` over kdag's per-task XCom stores.

Semantics follow Airflow 3's task SDK (``RuntimeTaskInstance.xcom_pull`` in
``task-sdk/src/airflow/sdk/execution_time/task_runner.py`` and ``XCom.get_one``/``get_all``/``set`` in
``task-sdk/src/airflow/sdk/bases/xcom.py``):

- ``task_ids`` a ``str`` or ``None`` (the current task) gives one value, ``None`` when missing; an
  iterable gives a list in the order asked, ``None`` where missing.
- ``map_indexes`` given explicitly: one lookup per (task, index) pair, ``default`` where missing; index
  ``-1``/``None`` is an unmapped task's value, ``i`` instance ``i`` of a mapped task. Without
  ``map_indexes`` Airflow 3.3 ignores ``default`` and gives ``None`` (checked against 3.3.2).
- Without ``map_indexes`` each task gives all its values (``XCom.get_all``): an unmapped task its one
  value, a mapped task those of its instances in map order, instances that pushed none left out, ``None``
  for a task with none at all; one task asked for and one value found gives the value itself, so a mapped
  task with a single value pulls as that value (Airflow 3.3.2, checked).
- An XComArg of a mapped task (a reduce: ``total(mapped.expand(...))``) resolves to its instances' values
  in map order, those that pushed none left out (Airflow 3's ``LazyXComSequence``; here a list).
- ``xcom_push(key, None)``: Airflow 3 stores a null that later pulls read as ``None``; kdag never stores
  ``None`` (design.md), so the push removes the key, which pulls see the same way.
- A task's ``return None`` pushes nothing (``_push_xcom_if_needed`` skips ``None``).
- XComs pushed before a task fails stay stored, as in Airflow (each push there is written at once).

kdag differences: only ancestors and the task itself are visible (a pull from another task returns
``None`` with a warning on stderr); ``dag_id``/``run_id`` other than the current ones and
``include_prior_dates`` are accepted but only the current run's XComs exist. Values are JSON (design.md):
a tuple comes back as a list, and a datetime or set fails the push, where Airflow 3's serde keeps them.
``key=None`` (Airflow 2's "any key") pulls the key pushed last.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdag_runner import store

if TYPE_CHECKING:
    from kdag_runner.environment import TaskEnvironment


class _NotSet:
    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()


class TaskInstance:
    """One attempt of one task: its identity, params, ``context`` and XComs."""

    def __init__(
        self,
        *,
        task_id: str,
        dag_id: str,
        run_id: str,
        try_number: int = 1,
        ancestors: Sequence[str] = (),
        xcom_in: Path | None = None,
        params: dict[str, Any] | None = None,
        max_tries: int = 0,
        task_start: datetime | None = None,
        map_index: int = -1,
        mapped: Mapping[str, int] | None = None,
        triggered_run: Mapping[str, Any] | None = None,
        external_runs: Mapping[str, Any] | None = None,
        ancestors_cut: bool = False,
    ) -> None:
        self.task_id = task_id
        self.dag_id = dag_id
        self.run_id = run_id
        self.try_number = try_number
        self.max_tries = max_tries
        self.task_start = task_start
        self.map_index = map_index
        self.mapped: dict[str, int] = dict(mapped or {})
        """Mapped ancestors -> instance counts: instance i's XComs are in ``{xcom_in}/{task}/{i}/``."""
        self.rendered_map_index: str | None = None
        self.triggered_run: dict[str, Any] = dict(triggered_run or {})
        """kdag's answer to this try's TriggerDagRunOperator request (``KDAG_TRIGGERED_RUN``), else empty."""
        self.external_runs: dict[str, Any] = dict(external_runs or {})
        """kdag's answer to an ExternalTaskSensor's latest question (``KDAG_EXTERNAL_RUNS``), else empty."""
        self.params: dict[str, Any] = params if params is not None else {}
        self.task: Any = None
        self.ancestors: tuple[str, ...] = tuple(ancestors)
        self.ancestors_cut = ancestors_cut
        """Only the nearest ancestors' XComs are delivered (a task deep in a DAG of thousands)."""
        self._xcom_in = xcom_in
        self._ancestor_data: dict[str, dict[str, str]] = {}
        self._texts: dict[str, str] = {}
        self._types: dict[str, str] = {}
        self._lengths: dict[str, int] = {}
        self._warned: set[str] = set()
        self.context: dict[str, Any] = self._inherited_context()

    @classmethod
    def from_environment(cls, env: TaskEnvironment) -> TaskInstance:
        """The task instance the ``KDAG_*`` environment describes."""
        return cls(
            task_id=env.task_id,
            dag_id=env.dag_id,
            run_id=env.run_id,
            try_number=env.try_number,
            task_start=env.task_start,
            ancestors=env.ancestors,
            xcom_in=env.xcom_in,
            params=dict(env.params),
            map_index=env.map_index,
            mapped=env.mapped,
            triggered_run=env.triggered_run,
            external_runs=env.external_runs,
            ancestors_cut=env.ancestors_cut,
        )

    def __repr__(self) -> str:
        return f"<TaskInstance: {self.dag_id}.{self.task_id} {self.run_id} [running]>"

    def get_first_reschedule_date(self, context: Any = None) -> datetime | None:
        """Airflow 3's: when a rescheduled sensor first poked (kdag: its task's first attempt started, the
        TaskRun's startTime), None while it has not been rescheduled (``task_reschedule_count`` 0)."""
        count = context.get("task_reschedule_count", 0) if isinstance(context, dict) else 0
        return self.task_start if count else None

    # -- pushing ---------------------------------------------------------------------------------

    def xcom_push(self, key: str, value: Any, execution_date: Any = None) -> None:
        """Store ``value`` under ``key`` for downstream tasks; encoded now, so later changes don't leak."""
        store.validate_key(key, self.task_id)
        self._store(key, value)

    def _store(self, key: str, value: Any) -> None:
        # A push moves the key to the end: the order of .types is the push order (``key=None`` pulls).
        self._texts.pop(key, None)
        self._types.pop(key, None)
        self._lengths.pop(key, None)
        if value is None:
            return
        self._texts[key], self._types[key] = store.encode_value(key, value, self.task_id)
        if isinstance(value, list | tuple | dict):
            # What a mapped task downstream may expand over: the controller needs only the length.
            self._lengths[key] = len(value)

    def push_return_value(self, value: Any) -> None:
        """Push a callable's result as ``return_value``; ``None`` is not pushed (Airflow)."""
        if value is not None:
            self._store(store.RETURN_KEY, value)

    def pushed_keys(self) -> list[str]:
        """The user keys pushed so far, in push order."""
        return list(self._texts)

    def store_data(self) -> dict[str, str]:
        """ConfigMap data of this attempt: the pushes plus ``__context`` when non-empty."""
        texts = dict(self._texts)
        types = dict(self._types)
        if self.context:
            texts[store.CONTEXT_KEY], types[store.CONTEXT_KEY] = store.encode_value(
                store.CONTEXT_KEY, self.context, self.task_id
            )
        return store.finish(texts, types, self.task_id)

    def xcom_lengths(self) -> dict[str, int]:
        """Length of every pushed value that is a list or dict, by ConfigMap key, in push order (the
        termination report's ``xcomLengths``)."""
        return {store.encode_key(key): n for key, n in self._lengths.items() if key in self._texts}

    def pushed_data_unchecked(self) -> dict[str, str]:
        """ConfigMap data of the pushes alone, without ``__context`` and without the size check."""
        return store.stored_form(self._texts, self._types)

    # -- pulling ---------------------------------------------------------------------------------

    def xcom_pull(
        self,
        task_ids: str | Iterable[str] | None = None,
        dag_id: str | None = None,
        key: str | None = store.RETURN_KEY,
        include_prior_dates: bool = False,
        *,
        map_indexes: int | Iterable[int] | None = NOTSET,
        default: Any = None,
        run_id: str | None = None,
        **_ignored: Any,
    ) -> Any:
        """Pull XComs of ancestors or of this task (``task_ids=None``); see the module docstring."""
        single_task = task_ids is None or isinstance(task_ids, str)
        if task_ids is None:
            ids = [self.task_id]
        elif isinstance(task_ids, str):
            ids = [task_ids]
        else:
            ids = list(task_ids)
        other_run = (dag_id is not None and dag_id != self.dag_id) or (
            run_id is not None and run_id != self.run_id
        )
        if other_run:
            self._warn(
                f"run {dag_id or self.dag_id}/{run_id or self.run_id}",
                "kdag tasks see only XComs of their own run",
            )
        if map_indexes is NOTSET:
            values: list[Any] = []
            for t in ids:
                if self._is_mapped(t) and not other_run:
                    found_values = self._mapped_values(t, key)
                    values.extend(found_values or [None])
                else:
                    values.append(None if other_run else self._value(t, key))
            return values[0] if single_task and len(values) == 1 else values
        single_index = map_indexes is None or isinstance(map_indexes, int)
        indexes: list[int | None] = (
            [map_indexes] if single_index else list(map_indexes)  # type: ignore[list-item, arg-type]
        )
        found: list[Any] = []
        for t in ids:
            for index in indexes:
                if other_run:
                    value = None
                elif self._is_mapped(t):
                    value = self._instance_value(t, index, key)
                else:
                    value = self._value(t, key) if index in (None, -1) else None
                found.append(default if value is None else value)
        return found[0] if single_task and single_index else found

    def xcom_pull_mapped(self, task_id: str, key: str = store.RETURN_KEY) -> LazyXComSequence:
        """The values a mapped task's instances pushed under ``key``, in map order (Airflow 3's
        ``LazyXComSequence``): what an XComArg of a mapped task resolves to downstream."""
        if not self._is_mapped(task_id):
            value = self._value(task_id, key)
            return LazyXComSequence([] if value is None else [value])
        return LazyXComSequence(self._mapped_values(task_id, key))

    def _is_mapped(self, task_id: str) -> bool:
        return task_id != self.task_id and task_id in self.mapped

    def _mapped_values(self, task_id: str, key: str | None) -> list[Any]:
        values = (self._instance_value(task_id, i, key) for i in range(self.mapped[task_id]))
        return [value for value in values if value is not None]

    def _instance_value(self, task_id: str, index: int | None, key: str | None) -> Any:
        if index is None or not 0 <= index < self.mapped[task_id] or not self._visible(task_id):
            return None
        cache_key = f"{task_id}/{index}"
        if cache_key not in self._ancestor_data:
            path = self._xcom_in / task_id / str(index) if self._xcom_in is not None else None
            self._ancestor_data[cache_key] = store.read_task_dir(path) if path is not None else {}
        return store.value_of(self._ancestor_data[cache_key], key, task_id)

    def _value(self, task_id: str, key: str | None) -> Any:
        data = self._data_of(task_id)
        if data is None:
            return None
        # key=None is Airflow 2's "any key": the latest pushed, the last in push order.
        return store.value_of(data, key, task_id)

    def _visible(self, task_id: str) -> bool:
        if task_id == self.task_id or task_id in self.ancestors:
            return True
        if self.ancestors_cut:
            self._warn(
                f"task '{task_id}'",
                f"its XComs are not delivered to '{self.task_id}': kdag mounts the XComs of the nearest"
                f" {len(self.ancestors)} ancestors only (the controller's KDAG_MAX_XCOM_SOURCES); name it in"
                " the task's upstream or xcomInputs, or raise that limit",
            )
            return False
        self._warn(
            f"task '{task_id}'",
            f"it is not upstream of '{self.task_id}' and only ancestors' XComs are visible",
        )
        return False

    def _data_of(self, task_id: str) -> dict[str, str] | None:
        if task_id == self.task_id:
            return self.pushed_data_unchecked()
        if not self._visible(task_id):
            return None
        if task_id not in self._ancestor_data:
            self._ancestor_data[task_id] = (
                store.read_task_dir(self._xcom_in / task_id) if self._xcom_in is not None else {}
            )
        return self._ancestor_data[task_id]

    def _inherited_context(self) -> dict[str, Any]:
        """Merge every ancestor's ``__context`` in topological order (later ancestors win)."""
        merged: dict[str, Any] = {}
        if self._xcom_in is None:
            return merged
        for ancestor in self.ancestors:
            # A mapped ancestor's instances in map order: `{task}/{i}/__context`.
            count = self.mapped.get(ancestor)
            folders = [ancestor] if count is None else [f"{ancestor}/{i}" for i in range(count)]
            for folder in folders:
                path = self._xcom_in / folder / store.CONTEXT_KEY
                try:
                    text = path.read_text(encoding="utf-8")
                except (FileNotFoundError, NotADirectoryError):
                    continue
                try:
                    value = store.decode_value(text, store.JSON_TYPE)
                except ValueError as err:
                    raise store.XComError(f"__context of task '{ancestor}' does not parse: {err}") from None
                if isinstance(value, dict):
                    merged.update(value)
        return merged

    def _warn(self, what: str, why: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            print(f"kdag: xcom_pull from {what} returns None: {why}", file=sys.stderr)


class LazyXComSequence(list[Any]):
    """The values of a mapped task's instances, in map order (Airflow 3's ``LazyXComSequence``): a list,
    printed as Airflow prints the sequence; it is stored as a JSON list when a task returns it."""

    def __repr__(self) -> str:
        return f"LazyXComSequence([{len(self)} {'item' if len(self) == 1 else 'items'}])"

    def __str__(self) -> str:
        return repr(self)
