"""Mapped task groups run index by index (tests/handlers/test_mapped_group_handler.py, and on the cluster
tests/e2e/test_mapping_on_cluster.py): op maps each of its tasks with the group's length over an upstream
XCom, a failed instance of op.add_1 makes only the same instance of op.mul_2 UpstreamFailed, op.mul_2's
XComArg and xcom_pull read the same map index, and total (all_done) reads every instance; lit is Airflow's
example_task_group_mapping, a group over a literal list."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task, task_group

with DAG("mapping_group_upstream_failed", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

    @task
    def numbers():
        return [1, 2, 3]

    @task_group
    def op(num, base):
        @task
        def add_1(num, base):
            if num == 2:
                raise ValueError("two is not allowed")
            return num + base

        @task
        def mul_2(value, ti=None):
            return {"value": value * 2, "mine": ti.xcom_pull(task_ids="op.add_1", map_indexes=ti.map_index)}

        return mul_2(add_1(num, base))

    @task(trigger_rule="all_done")
    def total(values):
        return sorted(v["value"] for v in values)

    total(op.partial(base=1).expand(num=numbers()))

    @task_group
    def lit(num):
        @task
        def add_one(num):
            return num + 1

        @task
        def times_two(num):
            return num * 2

        return times_two(add_one(num))

    lit.expand(num=[1, 2, 3])
