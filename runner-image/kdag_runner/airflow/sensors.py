"""Sensors: ``BaseSensorOperator`` (a subclass's ``poke(context)`` says whether the wait is over),
``PokeReturnValue``, ``PythonSensor``, ``TimeDeltaSensor`` and ``DateTimeSensor`` (with their ``...Async``
names), ``poke_mode_only``; ``@task.sensor`` (taskflow.py) makes ``DecoratedSensorOperator``.

A sensor waits as Airflow 3's ``BaseSensorOperator.execute`` (task SDK, ``airflow.sdk.bases.sensor``) does:
it pokes; a truthy answer (a ``PokeReturnValue`` whose ``is_done``) ends the task, the ``xcom_value`` becoming
its ``return_value`` XCom; otherwise, once more than ``timeout`` seconds passed, it fails with
``AirflowSensorTimeout``, which is never retried (``soft_fail``: it skips instead); otherwise it waits the
next interval and pokes again:

- ``mode="poke"``: it sleeps in the same process (pod) and pokes again; the timeout counts from this
  attempt's first poke, as Airflow counts it (a retry starts the count again).
- ``mode="reschedule"``: it raises ``AirflowRescheduleException`` and the attempt ends: the runner exits
  with code 5 and the report ``{"reschedule": "<RFC 3339 time>"}``, no pod is held while waiting, and the
  controller starts the next attempt at that time (docs/design.md, "Delivery into a task pod"). Nothing
  but the environment survives between attempts, so the timeout counts from the task's first attempt
  (``ti.get_first_reschedule_date``: ``KDAG_TASK_START``, the TaskRun's startTime).

The interval is ``poke_interval``; with ``exponential_backoff`` it is Airflow's: ``poke_interval *
2**(n-2)`` for the n-th poke (at least 1 s), plus a jitter below as much again taken from a sha1 of the
DAG, task, start and n, never past the timeout; in reschedule mode n is estimated from the time since the
first poke, as Airflow does. ``max_wait`` caps it.

Time sensors compare the clock with a target: ``TimeDeltaSensor`` the run's ``data_interval_end`` plus
``delta`` (a number is minutes), ``DateTimeSensor`` its ``target_time`` (templated; a string is parsed as
ISO 8601, naive means UTC). kdag runs them in reschedule mode unless told ``mode="poke"`` (Airflow pokes:
holding a pod to watch a clock wastes a node's resources). Their ``...Async`` names, and
``deferrable=True``, would defer to a trigger firing at the target; with no triggerer they are rescheduled
once, at the target, and end as Airflow's ``execute_complete`` does (no XCom; a ``TimeDeltaSensor`` whose
target had passed before it first ran returns True, as Airflow's does). A deferred ``TimeDeltaSensor``
still times out after ``timeout``, as the trigger's timeout fails it in Airflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from kdag_runner.airflow.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    DagDefinitionError,
)
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.python import callable_kwargs, check_callable_arguments

DEFAULT_TIMEOUT_SECONDS = 7 * 24 * 60 * 60
"""Airflow's ``[sensors] default_timeout``: seven days."""
VALID_MODES = ("poke", "reschedule")
_SOFT_FAILURES = (AirflowSensorTimeout, AirflowFailException)
"""What ``soft_fail`` (and ``never_fail``) turn into a skip when a poke raises it (Airflow's list, less
``AirflowTaskTimeout``, which kdag never raises: a pod past its deadline is killed)."""


def utcnow() -> datetime:
    """Now, in UTC (the sensors' clock; tests replace it)."""
    return datetime.now(UTC)


class PokeReturnValue:
    """What ``poke`` may return: whether the sensor is done, and the value to push as ``return_value``."""

    def __init__(self, is_done: bool, xcom_value: Any | None = None) -> None:
        self.is_done = is_done
        self.xcom_value = xcom_value

    def __bool__(self) -> bool:
        return bool(self.is_done)

    def __repr__(self) -> str:
        return f"PokeReturnValue(is_done={self.is_done!r}, xcom_value={self.xcom_value!r})"


class BaseSensorOperator(BaseOperator):
    """A task that pokes until ``poke(context)`` is truthy (see the module docstring)."""

    ui_color: str = "#e6f1f2"
    valid_modes: Sequence[str] = VALID_MODES
    _is_sensor = True

    def __init__(
        self,
        *,
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float | None = None,
        soft_fail: bool = False,
        mode: str = "poke",
        exponential_backoff: bool = False,
        max_wait: timedelta | float | None = None,
        silent_fail: bool = False,
        never_fail: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.poke_interval: float = _seconds(self.task_id, "poke_interval", poke_interval)
        self.timeout: float = (
            DEFAULT_TIMEOUT_SECONDS if timeout is None else _seconds(self.task_id, "timeout", timeout)
        )
        self.max_wait: timedelta | None = (
            None if max_wait is None else timedelta(seconds=_seconds(self.task_id, "max_wait", max_wait))
        )
        if soft_fail and never_fail:
            raise DagDefinitionError(
                f"task '{self.task_id}': soft_fail and never_fail are mutually exclusive, you can not"
                " provide both"
            )
        self.soft_fail = bool(soft_fail)
        self.never_fail = bool(never_fail)
        self.silent_fail = bool(silent_fail)
        self.exponential_backoff = bool(exponential_backoff)
        self.mode = mode
        if self.mode not in self.valid_modes:
            allowed = ", ".join(repr(m) for m in self.valid_modes)
            raise DagDefinitionError(f"task '{self.task_id}': mode must be one of {allowed}, got {mode!r}")

    @property
    def reschedule(self) -> bool:
        """Whether the sensor ends its attempt between pokes (``mode="reschedule"``)."""
        return self.mode == "reschedule"

    def poke(self, context: Any) -> bool | PokeReturnValue:
        """Whether the wait is over (override it)."""
        raise AirflowException("Override me.")

    def execute(self, context: Any) -> Any:
        started_at: datetime | float
        if self.reschedule:
            first = started_at = _first_poke(context)

            def run_duration() -> float:
                return (utcnow() - first).total_seconds()

        else:
            began = started_at = time.monotonic()

            def run_duration() -> float:
                return time.monotonic() - began

        poke_count = 1
        while True:
            done = self._poke_once(context)
            if done:
                self.log.info("Success criteria met. Exiting.")
                return done.xcom_value if isinstance(done, PokeReturnValue) else None
            elapsed = run_duration()
            if elapsed > self.timeout:
                self._time_out(
                    f"Sensor has timed out; run duration of {elapsed} seconds exceeds the specified"
                    f" timeout of {self.timeout}."
                )
            interval = self._get_next_poke_interval(started_at, run_duration, poke_count)
            if self.reschedule:
                raise AirflowRescheduleException(utcnow() + timedelta(seconds=interval))
            time.sleep(max(interval, 0.0))
            poke_count += 1

    def _poke_once(self, context: Any) -> bool | PokeReturnValue:
        """One poke, its errors handled as Airflow's sensor handles them."""
        try:
            return self.poke(context)
        except _SOFT_FAILURES as err:
            self._skip_if_soft(err)
            raise
        except AirflowSkipException:
            raise
        except Exception as err:
            if self.silent_fail:
                import traceback

                self.log.error("Sensor poke failed: \n %s", traceback.format_exc())
                return False
            if self.never_fail:
                raise AirflowSkipException("Skipping due to never_fail is set to True.") from err
            raise

    def _skip_if_soft(self, err: BaseException) -> None:
        if self.soft_fail:
            raise AirflowSkipException("Skipping due to soft_fail is set to True.") from err
        if self.never_fail:
            raise AirflowSkipException("Skipping due to never_fail is set to True.") from err

    def _time_out(self, message: str) -> None:
        """Fail (``AirflowSensorTimeout``, never retried) or, with ``soft_fail``, skip."""
        if self.soft_fail:
            raise AirflowSkipException(message)
        raise AirflowSensorTimeout(message)

    def _get_next_poke_interval(
        self, started_at: datetime | float, run_duration: Callable[[], float], poke_count: int
    ) -> float:
        """Seconds until the next poke: ``poke_interval``, or Airflow's exponential backoff (see the module
        docstring), capped by ``max_wait``."""
        if not self.exponential_backoff:
            return self.poke_interval
        if self.reschedule:
            # Nothing survives between attempts: find the poke number whose intervals add up past the
            # time elapsed since the first poke, as Airflow does.
            elapsed = run_duration()
            total, estimated = 0.0, 0
            while total <= elapsed:
                estimated += 1
                total += self._backoff(started_at, estimated)
            poke_count = estimated or poke_count
        interval = min(float(self.timeout - int(run_duration())), self._backoff(started_at, poke_count))
        if self.max_wait is not None:
            interval = min(self.max_wait.total_seconds(), interval)
        self.log.info("new %s interval is %s", self.mode, interval)
        return interval

    def _backoff(self, started_at: datetime | float, poke_count: int) -> float:
        """``poke_interval * 2**(poke_count-2)`` (at least 1) plus a jitter in [0, that) from a sha1."""
        import hashlib

        least = max(int(self.poke_interval * 2 ** min(poke_count - 2, 62)), 1)
        dag_id = self.dag.dag_id if self.dag is not None else ""
        seed = f"{dag_id}#{self.task_id}#{started_at}#{poke_count}".encode()
        digest = int(hashlib.sha1(seed, usedforsecurity=False).hexdigest(), 16)
        return float(min(least + digest % least, timedelta.max.total_seconds() - 1))


def _first_poke(context: Any) -> datetime:
    """When a reschedule-mode sensor first poked: the task's first attempt (``KDAG_TASK_START``) once it
    has been rescheduled, else now."""
    ti = context.get("ti") if isinstance(context, Mapping) else None
    get = getattr(ti, "get_first_reschedule_date", None)
    first = get(context) if callable(get) else None
    return first if isinstance(first, datetime) else utcnow()


_Sensor = TypeVar("_Sensor", bound=type[BaseSensorOperator])


def poke_mode_only(cls: _Sensor) -> _Sensor:
    """Airflow's class decorator for sensors that are safe only in poke mode: ``mode`` is always
    ``"poke"`` and setting it to anything else raises."""
    if not (isinstance(cls, type) and issubclass(cls, BaseSensorOperator)):
        raise ValueError(
            f"poke_mode_only decorator should only be applied to subclasses of BaseSensorOperator, got:{cls}."
        )

    def mode_getter(_self: Any) -> str:
        return "poke"

    def mode_setter(_self: Any, value: str) -> None:
        if value != "poke":
            raise ValueError(f"Cannot set mode to '{value}'. Only 'poke' is acceptable")

    setattr(cls, "mode", property(mode_getter, mode_setter))  # noqa: B010 (mypy refuses the assignment)
    return cls


class PythonSensor(BaseSensorOperator):
    """Pokes ``python_callable(*op_args, **kwargs)`` (kwargs: the context keys it names plus ``op_kwargs``
    and ``templates_dict``); a ``PokeReturnValue`` it returns is the answer, anything else its truth."""

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        check_callable_arguments(kwargs.get("task_id", "?"), python_callable, op_args, op_kwargs)
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.op_args: list[Any] = list(op_args or [])
        self.op_kwargs: dict[str, Any] = dict(op_kwargs or {})
        self.templates_dict: dict[str, Any] | None = dict(templates_dict) if templates_dict else None

    def poke(self, context: Any) -> PokeReturnValue:
        self.render_template_fields_once(context)
        merged = dict(context)
        merged.update(self.op_kwargs)
        merged["templates_dict"] = self.templates_dict
        kwargs = callable_kwargs(self.python_callable, self.op_args, merged)
        self.log.info("Poking callable: %s", str(self.python_callable))
        result = self.python_callable(*self.op_args, **kwargs)
        return result if isinstance(result, PokeReturnValue) else PokeReturnValue(bool(result))


class DecoratedSensorOperator(PythonSensor):
    """The operator of ``@task.sensor``: a PythonSensor whose callable is the decorated function."""

    template_fields: Sequence[str] = ("op_args", "op_kwargs")
    custom_operator_name = "@task.sensor"


class _TimeSensor(BaseSensorOperator):
    """What the time sensors share: poke = now is past the target; deferred, one reschedule at it."""

    deferred = False
    """Deferrable in Airflow (the ``...Async`` names, ``deferrable=True``): one reschedule at the target."""
    timeout_when_deferred = False
    """Whether Airflow's trigger carries the sensor's timeout."""

    def target(self, context: Any) -> datetime:
        raise NotImplementedError

    def poke(self, context: Any) -> bool:
        target = self.target(context)
        self.log.info("Checking if the time (%s) has come", target)
        return utcnow() > target

    def execute(self, context: Any) -> Any:
        if not self.deferred:
            return super().execute(context)
        target = self.target(context)
        now = utcnow()
        resumed = isinstance(context, Mapping) and bool(context.get("task_reschedule_count"))
        if now > target:
            return None if resumed else self.passed_before_deferring()
        wake = target
        if self.timeout_when_deferred:
            deadline = _first_poke(context) + timedelta(seconds=self.timeout)
            if resumed and now >= deadline:
                self._time_out(f"Trigger timeout: the target {target.isoformat()} was not reached in time")
            wake = min(target, deadline)
        raise AirflowRescheduleException(wake)

    def passed_before_deferring(self) -> Any:
        """What a deferrable sensor returns when its target passed before it could defer."""
        return None


class TimeDeltaSensor(_TimeSensor):
    """Waits until ``delta`` (a timedelta; a number is minutes) past the run's ``data_interval_end``."""

    template_fields: Sequence[str] = ("delta",)
    timeout_when_deferred = True

    def __init__(
        self,
        *,
        delta: timedelta | int,
        deferrable: bool = False,
        end_from_trigger: bool = False,
        mode: str = "reschedule",
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, **kwargs)
        self.delta = delta
        self.end_from_trigger = end_from_trigger
        if deferrable:
            self.deferred = True
        # kdag has no triggerer: a deferral is one reschedule, so the task is not deferrable to kdag compile.
        self.deferrable = False

    def target(self, context: Any) -> datetime:
        base = context.get("data_interval_end") if isinstance(context, Mapping) else None
        if base is None and isinstance(context, Mapping) and context.get("dag_run") is not None:
            base = getattr(context["dag_run"], "logical_date", None)
        if not isinstance(base, datetime):
            raise ValueError("`data_interval_end` returned non-datetime object")
        delta = self.delta if isinstance(self.delta, timedelta) else timedelta(minutes=int(self.delta))
        return _aware(base) + delta

    def passed_before_deferring(self) -> Any:
        return True  # Airflow's deferrable path returns True when the target has passed already


class TimeDeltaSensorAsync(TimeDeltaSensor):
    """Airflow's deprecated deferrable TimeDeltaSensor: one reschedule at the target in kdag."""

    def __init__(self, *, delta: timedelta | int, end_from_trigger: bool = False, **kwargs: Any) -> None:
        kwargs.pop("deferrable", None)
        super().__init__(delta=delta, deferrable=True, end_from_trigger=end_from_trigger, **kwargs)


class DateTimeSensor(_TimeSensor):
    """Waits until ``target_time`` (templated: a datetime, or an ISO 8601 string; naive means UTC)."""

    template_fields: Sequence[str] = ("target_time",)

    def __init__(self, *, target_time: str | datetime, mode: str = "reschedule", **kwargs: Any) -> None:
        super().__init__(mode=mode, **kwargs)
        self.target_time = target_time

    def target(self, context: Any) -> datetime:
        value: Any = self.target_time
        if isinstance(value, datetime):
            return _aware(value)
        if isinstance(value, str):
            return _aware(datetime.fromisoformat(value.strip()))
        raise TypeError(f"Expected str or datetime.datetime type for target_time. Got {type(value)}")


class DateTimeSensorAsync(DateTimeSensor):
    """Airflow's deferrable DateTimeSensor: one reschedule at the target in kdag."""

    deferred = True
    start_from_trigger = False

    def __init__(
        self,
        *,
        start_from_trigger: bool = False,
        end_from_trigger: bool = False,
        trigger_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Starting from the triggerer skips the worker in Airflow; kdag's first pod pokes either way.
        self.end_from_trigger = end_from_trigger


def _aware(value: datetime) -> datetime:
    """A datetime with a time zone (UTC when it has none)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _seconds(task_id: str, name: str, value: object) -> float:
    """A duration argument (timedelta, or non-negative seconds) in seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise DagDefinitionError(
        f"task '{task_id}': {name} must be a timedelta object or a non-negative number, got {value!r}"
    )
