"""What fails in mapped task groups, as Airflow 3 runs them (tests/local/test_local_mapping.py): a failing
instance makes only the same instance of the next task of the group upstream-failed, trigger rules after the
group count every instance, a literal group after a failed task is upstream-failed instance by instance,
a group over the XCom of a failed task as a whole, a group's tasks a branch did not follow, and a branch
inside a mapped group (Airflow 3.3.2 skips nothing there)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task, task_group

with DAG("mapping_group_failures", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task_group
    def fragile(n):
        @task
        def check(n):
            if n == 2:
                raise ValueError("two is not allowed")
            return n

        @task
        def times_ten(n):
            return n * 10

        @task(trigger_rule="all_done")
        def anyway(n):
            return f"done {n}"

        checked = check(n)
        result = times_ten(checked)
        result >> anyway(n)
        return result

    out = fragile.expand(n=[1, 2, 3])

    @task(trigger_rule="all_done")
    def gather(values):
        return sorted(values)

    @task
    def strict(values):
        return list(values)

    gather(out)
    strict(out)

    @task
    def broken():
        raise ValueError("broken")

    @task_group
    def after_broken(x):
        @task
        def never(x):
            return x

        never(x)

    broken() >> after_broken.expand(x=[1, 2])

    @task
    def no_list():
        raise ValueError("no list")

    @task_group
    def over_failed(x):
        @task
        def first(x):
            return x

        @task
        def second(x):
            return x

        second(first(x))

    over_failed.expand(x=no_list())

    @task.branch
    def choose():
        return "chosen"

    @task
    def chosen():
        return "yes"

    @task
    def listed():
        return [1, 2]

    @task_group
    def literal_branch(x):
        @task
        def unfollowed(x):
            return x

        @task
        def next_one(x):
            return x

        next_one(unfollowed(x))

    @task_group
    def xcom_branch(x):
        @task
        def unfollowed_too(x):
            return x

        unfollowed_too(x)

    branch = choose()
    branch >> chosen()
    branch >> literal_branch.expand(x=[1, 2])
    branch >> xcom_branch.expand(x=listed())

    @task_group
    def inner_branch(n):
        @task.branch
        def pick(n):
            return "inner_branch.left" if n == 1 else "inner_branch.right"

        @task
        def left():
            return "left"

        @task
        def right():
            return "right"

        pick(n) >> [left(), right()]

    inner_branch.expand(n=[1, 2])
