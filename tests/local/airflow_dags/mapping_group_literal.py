"""Mapped task groups over literals, as Airflow 3 runs them (tests/local/test_local_mapping.py): every task
of the group runs once per element, the group function's parameters are each instance's own element,
partial() arguments are constant, XComArgs between tasks of the group give the same map index, xcom_pull
without map_indexes includes the instance's own value, a plain group nested inside, the cross product of two
expand() arguments and a dict's pairs, and a task after the group reading all its values."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, TaskGroup, task, task_group

with DAG("mapping_group_literal", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task_group
    def op(num, base):
        @task
        def add(num, base):
            return num + base

        @task
        def double(value):
            return value * 2

        @task
        def pull(value, ti=None):
            # Index by index, op.pull[i] waits for op.add[i] only: how many other instances of op.add have
            # ended by then is a race (Airflow's `dags test` runs one task at a time; kdag runs them at once).
            # What is certain: the instances pulled without map_indexes include this one's own value.
            mine = ti.xcom_pull(task_ids="op.add", map_indexes=ti.map_index)
            return {
                "value": value,
                "index": ti.map_index,
                "all_has_mine": mine in ti.xcom_pull(task_ids="op.add"),
                "mine": mine,
            }

        added = add(num, base)
        doubled = double(added)
        pull(added)
        with TaskGroup("inner"):

            @task
            def deeper(value, num):
                return f"{num}->{value}"

            deeper(doubled, num)
        return doubled

    @task
    def total(values):
        return {"sum": sum(values), "all": list(values)}

    total(op.partial(base=10).expand(num=[1, 2, 3]))

    @task_group
    def grid(letter, number):
        @task
        def combine(letter, number):
            return f"{letter}{number}"

        combine(letter, number)

    grid.expand(letter=["a", "b"], number=[1, 2, 3])

    @task_group
    def pairs(item):
        @task
        def show(item):
            return f"{item[0]}={item[1]}"

        show(item)

    pairs.expand(item={"x": 1, "y": 2})
