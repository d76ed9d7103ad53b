"""A mapped task group runs index by index (tests/local/test_local_mapping.py): instance 1 of the group's
second task runs while instance 0 of its first task is still running (that instance waits for the file
instance 1 of the second task writes), and an instance of the group's task is retried on its own."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task, task_group

with DAG(
    "mapping_group_per_index", start_date=datetime(2024, 1, 1), schedule=None, params={"flags": "."}
) as dag:

    @task_group
    def op(n):
        @task
        def first(n, params=None):
            if n == 0:
                flag = Path(params["flags"]) / "second-1-done"
                deadline = time.monotonic() + 60
                while not flag.exists():
                    if time.monotonic() > deadline:
                        raise TimeoutError("op.second[1] did not run while op.first[0] was running")
                    time.sleep(0.05)
            return n

        @task
        def second(n, params=None, ti=None):
            if ti.map_index == 1:
                (Path(params["flags"]) / "second-1-done").touch()
            return n * 10

        @task(retries=1, retry_delay=timedelta(seconds=0))
        def flaky(n, ti=None):
            if n == 1 and ti.try_number == 1:
                raise ValueError("the first try of instance 1 fails")
            return n

        done = second(first(n))
        done >> flaky(n)
        return done

    @task
    def total(values):
        return sum(values)

    total(op.expand(n=[0, 1]))
