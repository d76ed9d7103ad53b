"""Sensors, the same file for `kdag run --local` and Apache Airflow 3.3.2's `airflow dags test`
(tests/local/test_local_sensors.py; Airflow's results in `airflow_3_3_2.json` beside this file).

A poke-mode sensor counts its pokes in this process (one attempt pokes in one process); a reschedule-mode
sensor reads Airflow 3's `task_reschedule_count` from its context (each poke is a new attempt, a new pod on
a cluster, so nothing else survives between them).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.sensors.date_time import DateTimeSensor, DateTimeSensorAsync
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor, TimeDeltaSensorAsync
from airflow.sdk import DAG, PokeReturnValue, task

START = datetime(2026, 1, 1)
_pokes: dict[tuple[str, str], int] = {}


def third_poke(ti, run_id):
    """Done at the third poke of this attempt: its count the XCom."""
    key = (run_id, ti.task_id)
    _pokes[key] = _pokes.get(key, 0) + 1
    return PokeReturnValue(is_done=_pokes[key] >= 3, xcom_value=f"poked {_pokes[key]} times")


def third_reschedule_poke(**context):
    """Done at the third attempt of a reschedule-mode sensor (two reschedules before it)."""
    return context["task_reschedule_count"] >= 2


def never():
    return False


with DAG("sensor_poke", schedule=None, start_date=START):

    @task
    def shout(value):
        return value.upper()

    shout(PythonSensor(task_id="wait", python_callable=third_poke, poke_interval=0.2).output)


with DAG("sensor_reschedule", schedule=None, start_date=START):

    @task.sensor(poke_interval=1, mode="reschedule", timeout=120)
    def ready(**context):
        pokes = context["task_reschedule_count"] + 1
        return PokeReturnValue(is_done=pokes >= 3, xcom_value={"pokes": pokes})

    @task
    def count(value):
        return value["pokes"]

    plain = PythonSensor(
        task_id="plain", python_callable=third_reschedule_poke, mode="reschedule", poke_interval=1
    )
    plain >> count(ready())


with DAG("sensor_timeout", schedule=None, start_date=START):

    @task
    def after():
        return "never runs"

    waits = PythonSensor(
        task_id="waits", python_callable=never, poke_interval=0.5, timeout=1, retries=2, retry_delay=0
    )
    rescheduled = PythonSensor(
        task_id="rescheduled", python_callable=never, mode="reschedule", poke_interval=1, timeout=2
    )
    [waits, rescheduled] >> after()


with DAG("sensor_soft_fail", schedule=None, start_date=START):

    @task
    def after():
        return "never runs"

    (
        PythonSensor(task_id="gives_up", python_callable=never, poke_interval=0.5, timeout=1, soft_fail=True)
        >> after()
    )


# Run a few seconds before its logical date (the test passes one): the sensors wait until then.
with DAG("time_sensors", schedule=None, start_date=START):

    @task(trigger_rule="all_done")
    def done():
        return "all waited"

    [
        TimeDeltaSensor(task_id="delta", delta=timedelta(seconds=2), poke_interval=1, mode="reschedule"),
        TimeDeltaSensorAsync(task_id="delta_async", delta=timedelta(seconds=1)),
        TimeDeltaSensorAsync(task_id="delta_passed", delta=timedelta(hours=-1)),
        DateTimeSensor(
            task_id="at", target_time="{{ data_interval_end }}", mode="reschedule", poke_interval=1
        ),
        DateTimeSensorAsync(task_id="at_async", target_time="2020-01-01T00:00:00+00:00"),
    ] >> done()
