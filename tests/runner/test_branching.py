"""Branching in the runner: which tasks a branch, short-circuit, LatestOnly, weekday or datetime branch
skips (the `skipTasks` of its report) and the XCom rows it pushes, as Airflow 3's SkipMixin does."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kdag_runner import compat, context
from kdag_runner.airflow import (
    DAG,
    AirflowException,
    BaseBranchOperator,
    BranchDateTimeOperator,
    BranchDayOfWeekOperator,
    BranchPythonOperator,
    DagDefinitionError,
    DownstreamTasksSkipped,
    EmptyOperator,
    LatestOnlyOperator,
    PythonOperator,
    ShortCircuitOperator,
    TaskGroup,
    WeekDay,
    setup,
    task,
    teardown,
)
from kdag_runner.airflow.branching import cron_next, next_interval_end, target_times_as_dates
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.task_runner import SUCCESS, TaskOutcome, run_task
from kdag_runner.environment import TaskEnvironment
from kdag_runner.report import TERMINATION_MESSAGE_MAX
from kdag_runner.xcom import TaskInstance

from .runner_support import run_dag_file, task_env


def run(tmp_path: Path, operator: BaseOperator, **env: Any) -> tuple[TaskOutcome, dict[str, Any]]:
    """Run ``operator`` as the runner does; the outcome and the XComs it pushed."""
    environment = TaskEnvironment.from_env(task_env(tmp_path, operator.task_id, **env))
    ti = TaskInstance.from_environment(environment)
    ti.task = operator
    ti.params = {**(operator.dag.params if operator.dag else {}), **operator.params, **environment.params}
    ctx = context.build_context(environment, ti, operator, operator.dag)
    outcome = run_task(operator, ctx)
    assert outcome.error is None, outcome.error
    return outcome, {key: ti.xcom_pull(key=key) for key in ti.pushed_keys()}


def empties(*task_ids: str) -> list[EmptyOperator]:
    return [EmptyOperator(task_id=t) for t in task_ids]


# -- branches ------------------------------------------------------------------------------------------


def test_a_branch_skips_the_direct_downstream_tasks_it_does_not_follow(tmp_path: Path) -> None:
    with DAG("d"):
        branch = BranchPythonOperator(task_id="branch", python_callable=lambda: "left")
        left, right, third = empties("left", "right", "third")
        branch >> [left, right, third]
        right >> EmptyOperator(task_id="after_right")
    outcome, pushed = run(tmp_path, branch)
    assert outcome == TaskOutcome(SUCCESS, skip_tasks=("right", "third"))
    # Skipping ends execute with DownstreamTasksSkipped: Airflow pushes no return_value then.
    assert pushed == {"skipmixin_key": {"followed": ["left"]}}


def test_a_branch_that_skips_nothing_pushes_its_return_value(tmp_path: Path) -> None:
    with DAG("d"):
        branch = BranchPythonOperator(task_id="branch", python_callable=lambda: ["b", "a"])
        branch >> empties("a", "b")
    outcome, pushed = run(tmp_path, branch)
    assert outcome == TaskOutcome(SUCCESS)
    assert pushed == {"skipmixin_key": {"followed": ["a", "b"]}, "return_value": ["b", "a"]}


def test_none_skips_every_direct_downstream_task(tmp_path: Path) -> None:
    with DAG("d"):
        branch = BranchPythonOperator(task_id="branch", python_callable=lambda: None)
        first, second = empties("first", "second")
        branch >> [first, second]
        first >> EmptyOperator(task_id="grandchild")
    outcome, pushed = run(tmp_path, branch)
    assert outcome.skip_tasks == ("first", "second")  # the controller's trigger rules do the rest
    assert pushed == {"skipmixin_key": {"followed": []}}


def test_a_task_downstream_of_a_followed_branch_is_not_skipped(tmp_path: Path) -> None:
    with DAG("d"):
        branch = BranchPythonOperator(task_id="branch", python_callable=lambda: "via")
        via, join, other = empties("via", "join", "other")
        branch >> [via, join, other]
        via >> join
    outcome, pushed = run(tmp_path, branch)
    assert outcome.skip_tasks == ("other",)
    assert pushed["skipmixin_key"] == {"followed": ["via", "join"]}


def test_a_branch_without_downstream_tasks_pushes_only_its_value(tmp_path: Path) -> None:
    with DAG("d"):
        branch = BranchPythonOperator(task_id="branch", python_callable=lambda: "branch")
    outcome, pushed = run(tmp_path, branch)
    assert outcome == TaskOutcome(SUCCESS)
    assert pushed == {"return_value": "branch"}


def test_a_task_group_id_follows_the_group_roots(tmp_path: Path) -> None:
    with DAG("d"):
        branch = BranchPythonOperator(task_id="branch", python_callable=lambda: ["grp"])
        with TaskGroup("grp") as grp:
            one, two = empties("one", "two")
            one >> EmptyOperator(task_id="three")
        branch >> [grp, EmptyOperator(task_id="elsewhere")]
    outcome, pushed = run(tmp_path, branch)
    assert outcome.skip_tasks == ("elsewhere",)
    assert pushed["skipmixin_key"] == {"followed": ["grp.one", "grp.two"]}
    assert {one.task_id, two.task_id} == {"grp.one", "grp.two"}


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            "nowhere",
            r"'branch_task_ids' must contain only valid task_ids. Invalid tasks found: \{'nowhere'\}",
        ),
        ([1], r"returned invalid 'branch_task_ids': \{\(1, 'int'\)\}"),
        (3, r"returned invalid 'branch_task_ids': \{\(3, 'int'\)\}"),
    ],
)
def test_a_branch_to_something_else_fails_as_in_airflow(tmp_path: Path, returned: Any, message: str) -> None:
    with DAG("d"):
        branch = BranchPythonOperator(task_id="branch", python_callable=lambda: returned)
        branch >> EmptyOperator(task_id="a")
    environment = TaskEnvironment.from_env(task_env(tmp_path, "branch"))
    ti = TaskInstance.from_environment(environment)
    ti.task = branch
    outcome = run_task(branch, context.build_context(environment, ti, branch, branch.dag))
    assert outcome.state == "failed"
    assert isinstance(outcome.error, AirflowException)
    assert outcome.error is not None
    with pytest.raises(AirflowException, match=message):
        raise outcome.error


def test_base_branch_operator_subclass_and_task_branch(tmp_path: Path) -> None:
    class ByParam(BaseBranchOperator):
        def choose_branch(self, context: Any) -> Any:
            return context["params"]["go"]

    @task.branch
    def decide(value: int) -> str:
        return "small" if value < 10 else "big"

    with DAG("d", params={"go": "yes"}):
        by_param = ByParam(task_id="by_param")
        by_param >> empties("yes", "no")
        decided = decide(3)
        decided >> empties("small", "big")
    assert run(tmp_path, by_param)[0].skip_tasks == ("no",)
    decide_task = decided.operator
    assert isinstance(decide_task, BranchPythonOperator)
    assert run(tmp_path, decide_task)[0].skip_tasks == ("big",)  # type: ignore[arg-type]


def test_a_custom_operator_can_raise_downstream_tasks_skipped(tmp_path: Path) -> None:
    class Skipper(BaseOperator):
        def execute(self, context: Any) -> Any:
            raise DownstreamTasksSkipped(tasks=[("b", -1), "c"])

    with DAG("d"):
        skipper = Skipper(task_id="skipper")
        skipper >> empties("b", "c")
    assert run(tmp_path, skipper)[0] == TaskOutcome(SUCCESS, skip_tasks=("b", "c"))


# -- short-circuits ------------------------------------------------------------------------------------


def short_circuit_dag(ignore: bool, result: Any) -> ShortCircuitOperator:
    with DAG("d"):
        check = ShortCircuitOperator(
            task_id="check", python_callable=lambda: result, ignore_downstream_trigger_rules=ignore
        )
        a, b = empties("a", "b")
        c = EmptyOperator(task_id="c", trigger_rule="all_done")
        check >> [a, b]
        a >> c
    return check


def test_a_falsy_short_circuit_skips_everything_downstream(tmp_path: Path) -> None:
    outcome, pushed = run(tmp_path, short_circuit_dag(True, 0))
    assert outcome.skip_tasks == ("a", "b", "c")
    assert pushed == {"skipmixin_key": {"skipped": ["a", "b", "c"]}}


def test_a_short_circuit_that_respects_trigger_rules_skips_only_direct_tasks(tmp_path: Path) -> None:
    outcome, pushed = run(tmp_path, short_circuit_dag(False, ""))
    assert outcome.skip_tasks == ("a", "b")
    assert pushed == {"skipmixin_key": {"skipped": ["a", "b"]}}


def test_a_truthy_short_circuit_pushes_its_value_and_skips_nothing(tmp_path: Path) -> None:
    outcome, pushed = run(tmp_path, short_circuit_dag(True, {"go": 1}))
    assert outcome == TaskOutcome(SUCCESS)
    assert pushed == {"return_value": {"go": 1}}


def test_a_short_circuit_never_skips_teardowns(tmp_path: Path) -> None:
    @setup
    def create() -> None:
        return None

    @teardown
    def delete() -> None:
        return None

    @task.short_circuit
    def check() -> bool:
        return False

    with DAG("d"):
        created = create()
        checked = check()
        work = EmptyOperator(task_id="work")
        deleted = delete()
        created >> checked >> work >> deleted
        created >> deleted
    outcome, pushed = run(tmp_path, checked.operator)  # type: ignore[arg-type]
    assert outcome.skip_tasks == ("work",)
    assert pushed == {"skipmixin_key": {"skipped": ["work"]}}


def test_a_falsy_short_circuit_whose_downstream_is_only_teardowns_pushes_its_value(tmp_path: Path) -> None:
    with DAG("d"):
        check = ShortCircuitOperator(task_id="check", python_callable=lambda: False)
        cleanup = EmptyOperator(task_id="cleanup").as_teardown()
        check >> cleanup
    outcome, pushed = run(tmp_path, check)
    assert outcome == TaskOutcome(SUCCESS)
    assert pushed == {"return_value": False}


# -- LatestOnly, weekdays and datetimes ---------------------------------------------------------------


def test_latest_only_follows_everything_in_a_manual_run(tmp_path: Path) -> None:
    with DAG("d", schedule="@daily"):
        latest = LatestOnlyOperator(task_id="latest")
        latest >> empties("x", "y")
    outcome, pushed = run(tmp_path, latest)
    assert outcome == TaskOutcome(SUCCESS)
    assert pushed == {"skipmixin_key": {"followed": ["x", "y"]}, "return_value": ["x", "y"]}


def scheduled_latest(tmp_path: Path, schedule: Any, logical: datetime, **dag: Any) -> TaskOutcome:
    with DAG("d", schedule=schedule, **dag):
        latest = LatestOnlyOperator(task_id="latest")
        latest >> EmptyOperator(task_id="x")
    environment = TaskEnvironment.from_env(
        task_env(tmp_path, "latest", extra={"KDAG_LOGICAL_DATE": logical.isoformat()})
    )
    ti = TaskInstance.from_environment(environment)
    ti.task = latest
    ctx = context.build_context(environment, ti, latest, latest.dag)
    ctx["dag_run"] = context.DagRunView("d", "r", logical, {}, run_type="scheduled")
    return run_task(latest, ctx)


def test_latest_only_in_a_scheduled_run_compares_now_with_the_next_run(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    # The run of this hour's tick is the latest until the next tick; the one before is not any more.
    assert scheduled_latest(tmp_path, "0 * * * *", this_hour).skip_tasks == ()
    assert scheduled_latest(tmp_path, "0 * * * *", this_hour - timedelta(hours=1)).skip_tasks == ("x",)
    old = now - timedelta(days=3)
    assert scheduled_latest(tmp_path, timedelta(days=1), now - timedelta(hours=1)).skip_tasks == ()
    assert scheduled_latest(tmp_path, timedelta(hours=1), now - timedelta(hours=5)).skip_tasks == ("x",)
    # No next run (None, @once): the last run is the latest.
    assert scheduled_latest(tmp_path, "@once", old).skip_tasks == ()


def test_cron_next_reads_fields_presets_names_and_zones() -> None:
    at = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)  # a Saturday
    assert cron_next("0 * * * *", at) == datetime(2026, 11, 21, 11, 0, tzinfo=UTC)
    assert cron_next("@daily", at) == datetime(2026, 11, 22, tzinfo=UTC)
    assert cron_next("*/20 9-17 * * mon-fri", at) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert cron_next("0 0 1 jan *", at) == datetime(2027, 1, 1, tzinfo=UTC)
    assert cron_next("0 12 13 * 5", at) == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # 13th or a Friday
    assert cron_next("30 10 * * *", at) == datetime(2026, 11, 22, 10, 30, tzinfo=UTC)  # strictly after
    paris = ZoneInfo("Europe/Paris")
    assert cron_next("0 9 * * *", at, paris) == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    with pytest.raises(AirflowException, match="cannot read"):
        cron_next("61 * * * *", at)


def test_next_interval_end_of_each_kind_of_schedule() -> None:
    from kdag_runner import timetables

    end = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    assert next_interval_end(DAG("a", schedule="@daily"), end) == datetime(2026, 11, 22, tzinfo=UTC)
    assert next_interval_end(DAG("b", schedule=timedelta(hours=6)), end) == end + timedelta(hours=6)
    assert next_interval_end(DAG("c", schedule=None), end) is None
    trigger = timetables.CronTriggerTimetable("0 6 * * *", timezone="UTC")
    assert next_interval_end(DAG("d", schedule=trigger), end) == datetime(2026, 11, 21, 6, tzinfo=UTC)
    events = timetables.EventsTimetable([datetime(2026, 12, 1), datetime(2026, 1, 1)])
    assert next_interval_end(DAG("e", schedule=events), end) == datetime(2026, 12, 1, tzinfo=UTC)


def test_day_of_week_branch_reads_the_logical_date_or_today(tmp_path: Path) -> None:
    with DAG("d"):
        weekend = BranchDayOfWeekOperator(
            task_id="weekend",
            week_day={"Saturday", WeekDay.SUNDAY},
            use_task_logical_date=True,
            follow_task_ids_if_true="rest",
            follow_task_ids_if_false="work",
        )
        weekend >> empties("rest", "work")
        today = BranchDayOfWeekOperator(
            task_id="today",
            week_day=WeekDay(datetime.now(UTC).isoweekday()),
            follow_task_ids_if_true=["today_yes"],
            follow_task_ids_if_false=["today_no"],
        )
        today >> empties("today_yes", "today_no")
    # The runner's logical date is 2024-03-05, a Tuesday.
    assert run(tmp_path, weekend)[0].skip_tasks == ("rest",)
    assert run(tmp_path, today)[0].skip_tasks == ("today_no",)


def test_week_days_are_checked_when_the_dag_loads() -> None:
    assert WeekDay.validate_week_day(["monday", WeekDay.FRIDAY]) == {1, 5}
    with DAG("d"), pytest.raises(DagDefinitionError, match=r"task 'w': week_day: Invalid Week Day passed"):
        BranchDayOfWeekOperator(
            task_id="w", week_day="Caturday", follow_task_ids_if_true="a", follow_task_ids_if_false="b"
        )


def test_datetime_branch_compares_targets_with_the_logical_date(tmp_path: Path) -> None:
    with DAG("d"):
        inside = BranchDateTimeOperator(
            task_id="inside",
            use_task_logical_date=True,
            target_lower=time(6, 0),
            target_upper=time(7, 0),
            follow_task_ids_if_true="yes",
            follow_task_ids_if_false="no",
        )
        inside >> empties("yes", "no")
        before = BranchDateTimeOperator(
            task_id="before",
            use_task_logical_date=True,
            target_lower=datetime(2024, 3, 6, tzinfo=UTC),
            target_upper=None,
            follow_task_ids_if_true="late",
            follow_task_ids_if_false="early",
        )
        before >> empties("late", "early")
    # The logical date is 2024-03-05T06:07:08Z.
    assert run(tmp_path, inside)[0].skip_tasks == ("no",)
    assert run(tmp_path, before)[0].skip_tasks == ("late",)
    with DAG("e"), pytest.raises(DagDefinitionError, match="Both target_upper and target_lower are None"):
        BranchDateTimeOperator(
            task_id="t",
            target_lower=None,
            target_upper=None,
            follow_task_ids_if_true="a",
            follow_task_ids_if_false="b",
        )


def test_time_targets_wrap_past_midnight() -> None:
    base = datetime(2026, 11, 21, 23, 0)
    lower, upper = target_times_as_dates(base, time(22, 0), time(2, 0))
    assert (lower, upper) == (datetime(2026, 11, 21, 22, 0), datetime(2026, 11, 22, 2, 0))


# -- the termination report ----------------------------------------------------------------------------

BRANCH_FILE = """\
from datetime import datetime
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import BranchPythonOperator
from airflow.sdk import DAG

with DAG("report", start_date=datetime(2024, 1, 1), schedule=None):
    branch = BranchPythonOperator(task_id="branch", python_callable=lambda: "{follow}")
    branch >> [EmptyOperator(task_id=f"t{{i}}_with_a_longer_id") for i in range({count})]
"""


def test_the_report_names_the_tasks_to_skip(tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(BRANCH_FILE.format(follow="t1_with_a_longer_id", count=3))
    result = run_dag_file(tmp_path, dag_file, [("branch", [])])["branch"]
    assert result.returncode == 0, result.stderr
    assert result.termination == {
        "xcomKeys": ["skipmixin_key"],
        "bytes": result.termination["bytes"] if result.termination else None,
        "skipTasks": ["t0_with_a_longer_id", "t2_with_a_longer_id"],
        "xcomLengths": {"skipmixin_key": 1},  # every pushed list or dict's length (mapping)
    }
    assert result.xcoms == {"skipmixin_key": {"followed": ["t1_with_a_longer_id"]}}
    assert "kdag: skipping tasks ['t0_with_a_longer_id', 't2_with_a_longer_id']" in result.stderr


def test_a_report_too_long_for_the_kubelet_fails_the_attempt(tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(BRANCH_FILE.format(follow="t0_with_a_longer_id", count=400))
    result = run_dag_file(tmp_path, dag_file, [("branch", [])])["branch"]
    assert result.returncode == 1
    assert result.termination is not None
    assert "skipTasks" not in result.termination
    assert result.termination["error"].startswith("the 399 tasks to skip do not fit the 4096-byte")
    line = json.dumps(result.termination, separators=(",", ":"))
    assert len(line.encode()) < TERMINATION_MESSAGE_MAX


def test_skipped_and_failed_reports_never_carry_skip_tasks(tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(
        textwrap.dedent(
            """\
            from airflow.sdk import DAG, BaseOperator
            from airflow.exceptions import AirflowSkipException

            class Skips(BaseOperator):
                def execute(self, context):
                    raise AirflowSkipException("no")

            with DAG("report"):
                Skips(task_id="skips") >> BaseOperator(task_id="after")
            """
        )
    )
    result = run_dag_file(tmp_path, dag_file, [("skips", [])])["skips"]
    assert result.returncode == 4
    assert result.termination is not None and result.termination["skipped"] == "no"
    assert "skipTasks" not in result.termination


def test_import_paths_of_the_branching_operators() -> None:
    from kdag_runner.airflow import branching

    compat.install()
    try:
        namespace: dict[str, Any] = {}
        exec(
            textwrap.dedent(
                """\
                from airflow.operators.python import BranchPythonOperator, ShortCircuitOperator
                from airflow.operators.branch import BaseBranchOperator
                from airflow.operators.latest_only import LatestOnlyOperator
                from airflow.operators.weekday import BranchDayOfWeekOperator
                from airflow.operators.datetime import BranchDateTimeOperator
                from airflow.providers.standard.operators.python import ShortCircuitOperator as SC
                from airflow.providers.standard.operators.branch import BaseBranchOperator as BB
                from airflow.providers.standard.operators.latest_only import LatestOnlyOperator as LO
                from airflow.providers.standard.operators.weekday import BranchDayOfWeekOperator as DW
                from airflow.providers.standard.operators.datetime import BranchDateTimeOperator as DT
                from airflow.models.skipmixin import SkipMixin
                from airflow.models.baseoperator import BaseOperator
                from airflow.sdk import BaseOperator as SdkOperator, BaseBranchOperator as SdkBranch, task
                from airflow.utils.weekday import WeekDay
                from airflow.providers.standard.utils.weekday import WeekDay as StandardWeekDay
                """
            ),
            namespace,
        )
    finally:
        compat.uninstall()
    assert namespace["BranchPythonOperator"] is BranchPythonOperator
    assert namespace["ShortCircuitOperator"] is namespace["SC"] is ShortCircuitOperator
    assert namespace["BaseBranchOperator"] is namespace["BB"] is namespace["SdkBranch"] is BaseBranchOperator
    assert namespace["LatestOnlyOperator"] is namespace["LO"] is LatestOnlyOperator
    assert namespace["BranchDayOfWeekOperator"] is namespace["DW"] is BranchDayOfWeekOperator
    assert namespace["BranchDateTimeOperator"] is namespace["DT"] is BranchDateTimeOperator
    assert namespace["SkipMixin"] is branching.SkipMixin
    assert namespace["BaseOperator"] is namespace["SdkOperator"] is BaseOperator
    assert namespace["WeekDay"] is namespace["StandardWeekDay"] is WeekDay
    assert callable(namespace["task"].branch) and callable(namespace["task"].short_circuit)


def test_python_operator_is_still_not_a_branch() -> None:
    with DAG("d"):
        plain = PythonOperator(task_id="plain", python_callable=lambda: "x")
    assert not isinstance(plain, BranchPythonOperator)
