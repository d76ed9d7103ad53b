"""Sensors as Airflow 3's ``BaseSensorOperator`` runs them: poke mode (pokes in one process), reschedule
mode (one poke per attempt, ``AirflowRescheduleException``, runner exit code 5 and the report's
``reschedule``), the timeout (``AirflowSensorTimeout``, never retried; ``soft_fail`` skips), exponential
backoff and ``max_wait``, ``PokeReturnValue``, ``PythonSensor``, ``@task.sensor``, the time sensors and the
import paths."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kdag_runner.airflow import (
    DAG,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    BaseOperator,
    BaseSensorOperator,
    DagDefinitionError,
    DateTimeSensor,
    DateTimeSensorAsync,
    PokeReturnValue,
    PythonSensor,
    TimeDeltaSensor,
    TimeDeltaSensorAsync,
    poke_mode_only,
    sensors,
    task,
)
from kdag_runner.airflow.task_runner import FAILED, SKIPPED, SUCCESS, UP_FOR_RESCHEDULE, run_task
from kdag_runner.environment import RunnerConfigError, TaskEnvironment
from kdag_runner.report import EXIT_RESCHEDULE, EXIT_TASK_FAILED

from .runner_support import LOGICAL_DATE, prepared, pushed, run_dag_file, task_env

NOW = datetime(2024, 3, 5, 6, 7, 8, tzinfo=UTC)


class Clock:
    """A fake clock for the sensors module: ``sleep`` moves both the wall clock and the monotonic one."""

    def __init__(self) -> None:
        self.now = NOW
        self.ticks = 1000.0
        self.slept: list[float] = []

    def utcnow(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.ticks

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds if seconds > 0 else 0.25)  # a real poke takes some time

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.ticks += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(sensors, "utcnow", fake.utcnow)
    monkeypatch.setattr(sensors.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(sensors.time, "sleep", fake.sleep)
    yield fake


def counting(done_at: int, value: Any = None) -> Any:
    """A poke callable done at its `done_at`-th call (a PokeReturnValue carrying `value` when given)."""
    calls: list[int] = []

    def poke() -> Any:
        calls.append(1)
        if value is None:
            return len(calls) >= done_at
        return PokeReturnValue(len(calls) >= done_at, value)

    poke.calls = calls  # type: ignore[attr-defined]
    return poke


# -- poke mode ------------------------------------------------------------------------------------------


def test_poke_mode_pokes_in_one_attempt_and_pushes_the_poke_return_value(
    tmp_path: Path, clock: Clock
) -> None:
    poke = counting(3, {"rows": 7})
    with DAG("d"):
        wait = PythonSensor(task_id="wait", python_callable=poke, poke_interval=5)
    ctx, ti = prepared(tmp_path, wait)
    assert run_task(wait, ctx).state == SUCCESS
    assert len(poke.calls) == 3
    assert clock.slept == [5, 5]
    assert pushed(ti) == {"return_value": {"rows": 7}}


def test_a_plain_truthy_poke_pushes_nothing(tmp_path: Path, clock: Clock) -> None:
    with DAG("d"):
        wait = PythonSensor(task_id="wait", python_callable=lambda: "yes")
    ctx, ti = prepared(tmp_path, wait)
    assert run_task(wait, ctx).state == SUCCESS
    assert pushed(ti) == {}
    assert PokeReturnValue(False, 1).__bool__() is False
    assert bool(PokeReturnValue(True)) is True


def test_a_timeout_fails_without_a_retry_and_runs_the_failure_callbacks(tmp_path: Path, clock: Clock) -> None:
    called: list[str] = []
    with DAG("d"):
        wait = PythonSensor(
            task_id="wait",
            python_callable=lambda: False,
            poke_interval=10,
            timeout=25,
            retries=3,
            on_retry_callback=lambda c: called.append("retry"),
            on_failure_callback=lambda c: called.append("failure"),
        )
    ctx, _ = prepared(tmp_path, wait)
    outcome = run_task(wait, ctx)
    assert outcome.state == FAILED  # not up_for_retry: Airflow does not retry a sensor's timeout
    assert isinstance(outcome.error, AirflowSensorTimeout)
    assert str(outcome.error) == (
        "Sensor has timed out; run duration of 30.0 seconds exceeds the specified timeout of 25.0."
    )
    assert clock.slept == [10, 10, 10]
    assert called == ["failure"]


def test_soft_fail_skips_on_a_timeout(tmp_path: Path, clock: Clock) -> None:
    with DAG("d"):
        wait = PythonSensor(
            task_id="wait", python_callable=lambda: False, poke_interval=1, timeout=2, soft_fail=True
        )
    ctx, _ = prepared(tmp_path, wait)
    outcome = run_task(wait, ctx)
    assert outcome.state == SKIPPED
    assert str(outcome.error).startswith("Sensor has timed out; run duration of 3.0 seconds")


@pytest.mark.parametrize(
    ("options", "raised", "state"),
    [
        ({"soft_fail": True}, AirflowFailException("no"), SKIPPED),
        ({"soft_fail": True}, ValueError("broken"), FAILED),  # Airflow 3: soft_fail skips only its three
        ({"never_fail": True}, ValueError("broken"), SKIPPED),
        ({}, AirflowFailException("no"), FAILED),
    ],
)
def test_errors_in_a_poke(
    tmp_path: Path, clock: Clock, options: dict[str, Any], raised: Exception, state: str
) -> None:
    def poke() -> bool:
        raise raised

    with DAG("d"):
        wait = PythonSensor(task_id="wait", python_callable=poke, **options)
    ctx, _ = prepared(tmp_path, wait)
    assert run_task(wait, ctx).state == state


def test_silent_fail_pokes_on_after_an_error(tmp_path: Path, clock: Clock) -> None:
    calls: list[int] = []

    def poke() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("flaky")
        return True

    with DAG("d"):
        wait = PythonSensor(task_id="wait", python_callable=poke, silent_fail=True, poke_interval=1)
    ctx, _ = prepared(tmp_path, wait)
    assert run_task(wait, ctx).state == SUCCESS
    assert len(calls) == 2


# -- reschedule mode -----------------------------------------------------------------------------------


def test_reschedule_mode_ends_the_attempt_with_the_next_poke_time_and_runs_no_callbacks(
    tmp_path: Path, clock: Clock
) -> None:
    called: list[str] = []
    with DAG("d"):
        wait = PythonSensor(
            task_id="wait",
            python_callable=lambda: False,
            mode="reschedule",
            poke_interval=timedelta(minutes=2),
            on_retry_callback=lambda c: called.append("retry"),
            on_failure_callback=lambda c: called.append("failure"),
            on_success_callback=lambda c: called.append("success"),
        )
    ctx, _ = prepared(tmp_path, wait)
    outcome = run_task(wait, ctx)
    assert outcome.state == UP_FOR_RESCHEDULE
    assert isinstance(outcome.error, AirflowRescheduleException)
    assert outcome.error.reschedule_date == NOW + timedelta(minutes=2)
    assert called == []
    assert clock.slept == []


def test_reschedule_mode_counts_the_timeout_from_the_first_attempt(tmp_path: Path, clock: Clock) -> None:
    with DAG("d"):
        wait = PythonSensor(
            task_id="wait", python_callable=lambda: False, mode="reschedule", poke_interval=60, timeout=600
        )
    first = (NOW - timedelta(seconds=601)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Rescheduled twice before, the task having started 601 s ago: timed out.
    ctx, ti = prepared(tmp_path, wait, attempt=3, extra={"KDAG_TASK_START": first, "KDAG_RESCHEDULES": "2"})
    assert ti.try_number == 1  # reschedules are no tries
    assert ctx["task_reschedule_count"] == 2
    assert ti.get_first_reschedule_date(ctx) == NOW - timedelta(seconds=601)
    outcome = run_task(wait, ctx)
    assert outcome.state == FAILED
    assert isinstance(outcome.error, AirflowSensorTimeout)
    # Never rescheduled: the first poke is now, whatever KDAG_TASK_START says (as Airflow's None).
    ctx, ti = prepared(tmp_path, wait, extra={"KDAG_TASK_START": first})
    assert ti.get_first_reschedule_date(ctx) is None
    assert run_task(wait, ctx).state == UP_FOR_RESCHEDULE


def backoff_bounds(poke_interval: float, poke: int) -> tuple[int, int]:
    """Airflow's exponential backoff for the n-th poke lies in [least, 2*least): least = interval*2**(n-2)."""
    least = max(int(poke_interval * 2 ** (poke - 2)), 1)
    return least, 2 * least


def test_exponential_backoff_and_max_wait_in_poke_mode(tmp_path: Path, clock: Clock) -> None:
    with DAG("d"):
        wait = PythonSensor(
            task_id="wait", python_callable=counting(6), poke_interval=10, exponential_backoff=True
        )
        capped = PythonSensor(
            task_id="capped",
            python_callable=counting(6),
            poke_interval=10,
            exponential_backoff=True,
            max_wait=timedelta(seconds=30),
        )
    ctx, _ = prepared(tmp_path, wait)
    assert run_task(wait, ctx).state == SUCCESS
    assert len(clock.slept) == 5
    for n, slept in enumerate(clock.slept, start=1):
        least, below = backoff_bounds(10, n)
        assert least <= slept < below
    clock.slept.clear()
    ctx, _ = prepared(tmp_path, capped)
    assert run_task(capped, ctx).state == SUCCESS
    assert max(clock.slept) <= 30
    assert clock.slept[-1] == 30


def test_exponential_backoff_never_waits_past_the_timeout(tmp_path: Path, clock: Clock) -> None:
    with DAG("d"):
        wait = PythonSensor(
            task_id="wait",
            python_callable=lambda: False,
            poke_interval=50,
            timeout=60,
            exponential_backoff=True,
        )
    ctx, _ = prepared(tmp_path, wait)
    assert run_task(wait, ctx).state == FAILED
    assert sum(clock.slept[:-1]) <= 60
    assert clock.slept[1] <= 60 - clock.slept[0]


def test_exponential_backoff_in_reschedule_mode_estimates_the_poke_from_the_time_elapsed(
    tmp_path: Path, clock: Clock
) -> None:
    with DAG("d"):
        wait = PythonSensor(
            task_id="wait",
            python_callable=lambda: False,
            mode="reschedule",
            poke_interval=10,
            exponential_backoff=True,
        )
    intervals = []
    first = NOW
    for reschedules in range(4):
        extra = {
            "KDAG_TASK_START": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "KDAG_RESCHEDULES": str(reschedules),
        }
        ctx, _ = prepared(tmp_path, wait, attempt=reschedules + 1, extra=extra)
        outcome = run_task(wait, ctx)
        assert outcome.state == UP_FOR_RESCHEDULE
        assert isinstance(outcome.error, AirflowRescheduleException)
        interval = (outcome.error.reschedule_date - clock.now).total_seconds()
        intervals.append(interval)
        clock.advance(interval)
    # Each reschedule waits longer, within the bounds of the poke number its elapsed time gives.
    assert intervals == sorted(intervals)
    assert intervals[-1] > 2 * intervals[0]


# -- arguments ------------------------------------------------------------------------------------------


def test_arguments_are_checked_and_default_args_give_them(clock: Clock) -> None:
    with pytest.raises(DagDefinitionError, match="task 'w': mode must be one of 'poke', 'reschedule'"):
        PythonSensor(task_id="w", python_callable=print, mode="sleepy")
    with pytest.raises(DagDefinitionError, match="soft_fail and never_fail are mutually exclusive"):
        PythonSensor(task_id="w", python_callable=print, soft_fail=True, never_fail=True)
    with pytest.raises(DagDefinitionError, match="task 'w': poke_interval must be a timedelta object or a"):
        PythonSensor(task_id="w", python_callable=print, poke_interval=-1)
    with DAG("d", default_args={"mode": "reschedule", "poke_interval": 30, "timeout": 90, "retries": 1}):
        wait = PythonSensor(task_id="wait", python_callable=print)
    assert (wait.mode, wait.poke_interval, wait.timeout, wait.retries) == ("reschedule", 30.0, 90.0, 1)
    assert wait.reschedule
    plain = PythonSensor(task_id="plain", python_callable=print)
    assert (plain.mode, plain.poke_interval, plain.timeout, plain.max_wait) == ("poke", 60.0, 604800.0, None)


def test_a_subclass_pokes_and_poke_mode_only_holds_the_mode(tmp_path: Path, clock: Clock) -> None:
    class Ready(BaseSensorOperator):
        def __init__(self, *, threshold: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.threshold = threshold

        def poke(self, context: Any) -> bool:
            return int(context["ti"].try_number) >= self.threshold

    with DAG("d", default_args={"threshold": 1}):
        ready = Ready(task_id="ready")
    assert ready.threshold == 1
    ctx, _ = prepared(tmp_path, ready)
    assert run_task(ready, ctx).state == SUCCESS

    PokeOnly = poke_mode_only(type("PokeOnly", (Ready,), {}))
    with pytest.raises(ValueError, match=r"Cannot set mode to 'reschedule'\. Only 'poke' is acceptable"):
        PokeOnly(task_id="p", threshold=1, mode="reschedule")
    assert PokeOnly(task_id="q", threshold=1).mode == "poke"
    with pytest.raises(ValueError, match="only be applied to subclasses of BaseSensorOperator"):
        poke_mode_only(BaseOperator)  # type: ignore[type-var]

    class NoPoke(BaseSensorOperator):
        pass

    with DAG("e"):
        bare = NoPoke(task_id="bare")
    ctx, _ = prepared(tmp_path, bare)
    outcome = run_task(bare, ctx)
    assert outcome.state == FAILED and str(outcome.error) == "Override me."


# -- @task.sensor ---------------------------------------------------------------------------------------


def test_task_sensor_decorates_the_poke(tmp_path: Path, clock: Clock) -> None:
    calls: list[int] = []

    with DAG("d"):

        @task.sensor(poke_interval=2, timeout=60, mode="poke")
        def wait_for(limit: int, ti: Any = None) -> dict[str, int]:  # a mapping annotation: still one XCom
            calls.append(1)
            return PokeReturnValue(len(calls) >= limit, {"calls": len(calls)})  # type: ignore[return-value]

        first = wait_for(2)
        second = wait_for(1)
    sensor = first.operator
    assert isinstance(sensor, PythonSensor) and type(sensor).__name__ == "DecoratedSensorOperator"
    assert (sensor.task_id, second.operator.task_id) == ("wait_for", "wait_for__1")
    assert sensor.poke_interval == 2 and sensor.multiple_outputs is False
    ctx, ti = prepared(tmp_path, sensor)
    assert run_task(sensor, ctx).state == SUCCESS
    assert pushed(ti) == {"return_value": {"calls": 2}}
    assert clock.slept == [2]


# -- time sensors --------------------------------------------------------------------------------------

INTERVAL_END = "2024-03-05T06:07:08Z"


def time_context(tmp_path: Path, operator: BaseOperator, reschedules: int = 0) -> dict[str, Any]:
    extra = {"KDAG_DATA_INTERVAL_START": INTERVAL_END, "KDAG_DATA_INTERVAL_END": INTERVAL_END}
    if reschedules:
        extra |= {"KDAG_TASK_START": INTERVAL_END, "KDAG_RESCHEDULES": str(reschedules)}
    return prepared(tmp_path, operator, attempt=reschedules + 1, extra=extra)[0]


def test_time_delta_sensor_waits_past_the_data_interval_end_in_reschedule_mode(
    tmp_path: Path, clock: Clock
) -> None:
    with DAG("d"):
        delta = TimeDeltaSensor(task_id="delta", delta=timedelta(minutes=5), poke_interval=60)
        minutes = TimeDeltaSensor(task_id="minutes", delta=5)  # a number is minutes
    assert delta.mode == "reschedule"  # kdag's default for the time sensors
    outcome = run_task(delta, time_context(tmp_path, delta))
    assert outcome.state == UP_FOR_RESCHEDULE
    assert isinstance(outcome.error, AirflowRescheduleException)
    assert outcome.error.reschedule_date == NOW + timedelta(seconds=60)
    clock.advance(301)
    assert run_task(minutes, time_context(tmp_path, minutes, reschedules=1)).state == SUCCESS


def test_time_delta_sensor_async_reschedules_once_at_the_target(tmp_path: Path, clock: Clock) -> None:
    with DAG("d"):
        wait = TimeDeltaSensorAsync(task_id="wait", delta=timedelta(minutes=5))
        deferrable = TimeDeltaSensor(task_id="deferrable", delta=timedelta(minutes=5), deferrable=True)
        passed = TimeDeltaSensorAsync(task_id="passed", delta=timedelta(minutes=-5))
        short = TimeDeltaSensorAsync(task_id="short", delta=timedelta(hours=2), timeout=60, soft_fail=True)
    assert deferrable.deferrable is False  # kdag has no triggerer: `kdag compile` accepts it
    for sensor in (wait, deferrable):
        outcome = run_task(sensor, time_context(tmp_path, sensor))
        assert outcome.state == UP_FOR_RESCHEDULE
        assert isinstance(outcome.error, AirflowRescheduleException)
        assert outcome.error.reschedule_date == NOW + timedelta(minutes=5)
    clock.advance(301)
    ctx = time_context(tmp_path, wait, reschedules=1)
    assert run_task(wait, ctx).state == SUCCESS
    assert pushed(ctx["ti"]) == {}  # as Airflow's execute_complete
    ctx = time_context(tmp_path, passed)
    assert run_task(passed, ctx).state == SUCCESS
    assert pushed(ctx["ti"]) == {"return_value": True}  # Airflow's deferrable path when the target passed
    # The trigger's timeout: the reschedule is at the deadline, and there the sensor times out (soft: skips).
    clock.now = NOW
    outcome = run_task(short, time_context(tmp_path, short))
    assert isinstance(outcome.error, AirflowRescheduleException)
    assert outcome.error.reschedule_date == NOW + timedelta(seconds=60)
    clock.advance(61)
    assert run_task(short, time_context(tmp_path, short, reschedules=1)).state == SKIPPED


def test_date_time_sensor_renders_its_target(tmp_path: Path, clock: Clock) -> None:
    with DAG("d"):
        at = DateTimeSensor(
            task_id="at", target_time="{{ (data_interval_end + macros.timedelta(hours=1)).isoformat() }}"
        )
        naive = DateTimeSensor(task_id="naive", target_time=datetime(2024, 3, 5, 6, 0), mode="poke")
        later = DateTimeSensorAsync(task_id="later", target_time="2024-03-05T08:00:00+01:00")
    outcome = run_task(at, time_context(tmp_path, at))
    assert outcome.state == UP_FOR_RESCHEDULE
    assert at.target_time == "2024-03-05T07:07:08+00:00"
    assert run_task(naive, time_context(tmp_path, naive)).state == SUCCESS  # naive is UTC: passed
    outcome = run_task(later, time_context(tmp_path, later))
    assert isinstance(outcome.error, AirflowRescheduleException)
    assert outcome.error.reschedule_date == datetime(2024, 3, 5, 7, 0, tzinfo=UTC)
    clock.advance(3600)
    ctx = time_context(tmp_path, later, reschedules=1)
    assert run_task(later, ctx).state == SUCCESS
    assert pushed(ctx["ti"]) == {}


# -- the runner: exit code 5 and the report -------------------------------------------------------------

SENSOR_FILE = """\
from datetime import datetime
from airflow.sdk import DAG, PokeReturnValue
from airflow.providers.standard.sensors.python import PythonSensor

def poke(**context):
    done = context["task_reschedule_count"] >= 2
    return PokeReturnValue(done, {"try": context["ti"].try_number} if done else None)

with DAG("sensing", start_date=datetime(2024, 1, 1), schedule=None):
    PythonSensor(task_id="wait", python_callable=poke, mode="reschedule", poke_interval=30, retries=1)
    PythonSensor(task_id="late", python_callable=lambda: False, mode="reschedule", timeout=60, retries=3)
"""


def sensor_file(tmp_path: Path) -> Path:
    path = tmp_path / "sensing.py"
    path.write_text(textwrap.dedent(SENSOR_FILE), encoding="utf-8")
    return path


def run_one(tmp_path: Path, task_id: str, attempt: int, extra: dict[str, str]) -> Any:
    return run_dag_file(
        tmp_path, sensor_file(tmp_path), [(task_id, ())], dag_id="sensing", attempt=attempt, extra=extra
    )[task_id]


def test_the_runner_exits_5_with_the_reschedule_time_then_succeeds(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    result = run_one(tmp_path, "wait", 1, {})
    assert result.returncode == EXIT_RESCHEDULE == 5
    report = result.termination
    assert report is not None and {"xcomKeys", "bytes", "reschedule"} <= set(report)
    assert not {"error", "skipped", "retry"} & set(report)
    at = datetime.fromisoformat(report["reschedule"])
    assert report["reschedule"].endswith("Z") and at.microsecond == 0
    assert before + timedelta(seconds=30) <= at <= datetime.now(UTC) + timedelta(seconds=31)
    assert "kdag: rescheduling task: the next attempt starts at" in result.stderr
    # The third attempt, rescheduled twice: done, its try number still 1.
    extra = {"KDAG_TASK_START": LOGICAL_DATE, "KDAG_RESCHEDULES": "2"}
    result = run_one(tmp_path, "wait", 3, extra)
    assert result.returncode == 0
    assert result.xcoms == {"return_value": {"try": 1}}
    assert result.termination["xcomKeys"] == ["return_value"]
    assert not {"error", "skipped", "retry", "reschedule"} & set(result.termination)


def test_the_runner_reports_a_timeout_as_never_retried(tmp_path: Path) -> None:
    extra = {"KDAG_TASK_START": "2020-01-01T00:00:00Z", "KDAG_RESCHEDULES": "1"}
    result = run_one(tmp_path, "late", 2, extra)
    assert result.returncode == EXIT_TASK_FAILED
    assert result.termination["retry"] is False
    assert result.termination["error"].startswith("AirflowSensorTimeout: Sensor has timed out; run duration")


def test_the_environment_names_a_bad_reschedule_count(tmp_path: Path) -> None:
    env = task_env(tmp_path, "t", attempt=4, extra={"KDAG_RESCHEDULES": "2", "KDAG_TASK_START": LOGICAL_DATE})
    parsed = TaskEnvironment.from_env(env)
    assert (parsed.attempt, parsed.reschedules, parsed.try_number) == (4, 2, 2)
    assert parsed.task_start == datetime(2024, 3, 5, 6, 7, 8, tzinfo=UTC)
    with pytest.raises(RunnerConfigError, match="KDAG_RESCHEDULES must be an integer, got 'x'"):
        TaskEnvironment.from_env({**env, "KDAG_RESCHEDULES": "x"})


# -- import paths ---------------------------------------------------------------------------------------

IMPORTS: Sequence[tuple[str, str]] = [
    ("airflow.sensors.base", "BaseSensorOperator"),
    ("airflow.sensors.base", "PokeReturnValue"),
    ("airflow.sensors.base", "poke_mode_only"),
    ("airflow.sensors.python", "PythonSensor"),
    ("airflow.sensors.time_delta", "TimeDeltaSensor"),
    ("airflow.sensors.time_delta", "TimeDeltaSensorAsync"),
    ("airflow.sensors.date_time", "DateTimeSensor"),
    ("airflow.sensors.date_time", "DateTimeSensorAsync"),
    ("airflow.sdk", "BaseSensorOperator"),
    ("airflow.sdk", "PokeReturnValue"),
    ("airflow.sdk.bases.sensor", "BaseSensorOperator"),
    ("airflow.providers.standard.sensors.python", "PythonSensor"),
    ("airflow.providers.standard.sensors.time_delta", "TimeDeltaSensor"),
    ("airflow.providers.standard.sensors.time_delta", "TimeDeltaSensorAsync"),
    ("airflow.providers.standard.sensors.date_time", "DateTimeSensor"),
    ("airflow.providers.standard.sensors.date_time", "DateTimeSensorAsync"),
    ("airflow.providers.common.compat.sdk", "BaseSensorOperator"),
    ("airflow.exceptions", "AirflowSensorTimeout"),
    ("airflow.exceptions", "AirflowRescheduleException"),
    ("airflow.sdk.exceptions", "AirflowSensorTimeout"),
]


@pytest.mark.parametrize(("module", "name"), IMPORTS)
def test_airflow_import_paths_serve_the_sensors(module: str, name: str) -> None:
    import importlib

    from kdag_runner import compat

    compat.install()
    try:
        served = getattr(importlib.import_module(module), name)
    finally:
        compat.uninstall()
    assert served is getattr(sensors, name)


def test_other_sensors_still_say_why_they_are_not_supported() -> None:
    import importlib

    from kdag_runner import compat

    compat.install()
    try:
        unsupported = r"FileSensor is not supported by kdag: sensors .* PythonSensor"
        with pytest.raises(ImportError, match=unsupported):
            importlib.import_module("airflow.sensors.filesystem").FileSensor  # noqa: B018
    finally:
        compat.uninstall()
    assert json.dumps(sensors.VALID_MODES) == '["poke", "reschedule"]'
