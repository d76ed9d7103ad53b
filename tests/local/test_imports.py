"""Every import style of Airflow DAG files runs under `kdag run --local`: Airflow 2.x paths, Airflow 3's
`airflow.sdk`, the standard provider and `airflow.providers.common.compat`; pendulum is there for DAG files;
XCom keys of any string are shown as written; what kdag cannot run fails at load in one line naming the
file and line, and arguments it cannot honour are warned about."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from local_support import kdag, run_local_json

PUSH_AND_PULL = """
def push(**kwargs):
    ti = kwargs["ti"]
    ti.xcom_push(key="value from pusher 1", value=[1, 2, 3])
    ti.xcom_push(key="path/like key", value="p")
    ti.xcom_push(key="ключ", value={"ok": True})
    return pendulum.parse(kwargs["ds"]).add(days=1).to_date_string()


def pull(ti, **kwargs):
    return [
        ti.xcom_pull(task_ids="push", key="value from pusher 1"),
        ti.xcom_pull(task_ids="push", key="path/like key"),
        ti.xcom_pull(task_ids="push", key="ключ"),
        ti.xcom_pull(task_ids="push"),
    ]
"""

AIRFLOW_2 = (
    """
import pendulum
from airflow import DAG
from airflow.decorators import task
from airflow.exceptions import AirflowFailException, AirflowSkipException
from airflow.models import BaseOperator, TaskInstance
from airflow.models.baseoperator import chain, chain_linear, cross_downstream
from airflow.models.param import Param, ParamsDict
from airflow.models.xcom import XCOM_RETURN_KEY
from airflow.models.xcom_arg import XComArg
from airflow.operators.bash import BashOperator
from airflow.operators.dummy import DummyOperator
from airflow.operators.empty import EmptyOperator
from airflow.operators.python import (
    BranchPythonOperator,
    PythonOperator,
    ShortCircuitOperator,
    get_current_context,
)
from airflow.operators.python_operator import PythonOperator as OldPythonOperator
from airflow.timetables.trigger import CronTriggerTimetable
from airflow.utils.context import Context
from airflow.utils.dates import days_ago
from airflow.utils.edgemodifier import Label
from airflow.utils.helpers import chain as helpers_chain
from airflow.utils.state import DagRunState, State, TaskInstanceState
from airflow.utils.task_group import TaskGroup
from airflow.utils.timezone import utcnow
from airflow.utils.trigger_rule import TriggerRule
from airflow.utils.weight_rule import WeightRule
"""
    + PUSH_AND_PULL
    + """

with DAG(
    "imports_2x",
    start_date=pendulum.datetime(2021, 1, 1, tz="UTC"),
    schedule=None,
    params={"n": Param(2, type="integer")},
) as dag:
    start = DummyOperator(task_id="start")
    pusher = PythonOperator(task_id="push", python_callable=push)
    puller = OldPythonOperator(task_id="pull", python_callable=pull)
    branch = BranchPythonOperator(task_id="branch", python_callable=lambda: "left")
    left = EmptyOperator(task_id="left")
    right = EmptyOperator(task_id="right")
    join = EmptyOperator(task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    with TaskGroup("group") as group:
        echo = BashOperator(task_id="echo", bash_command="echo {{ ds }}")
    chain(start, pusher, puller, branch)
    branch >> Label("yes") >> left >> join
    branch >> right >> join
    join >> group
"""
)

AIRFLOW_3_SDK = """
import pendulum
from airflow.sdk import (
    DAG,
    BaseOperator,
    Context,
    CronTriggerTimetable,
    DagRunState,
    Label,
    Param,
    TaskGroup,
    TaskInstanceState,
    TriggerRule,
    WeightRule,
    XComArg,
    chain,
    chain_linear,
    cross_downstream,
    dag,
    get_current_context,
    setup,
    task,
    task_group,
    teardown,
    timezone,
)
from airflow.sdk.exceptions import AirflowSkipException
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.timetables.simple import NullTimetable


@dag(
    dag_id="imports_sdk",
    schedule=None,
    start_date=pendulum.datetime(2021, 1, 1, tz="Europe/Amsterdam"),
    catchup=False,
    params={"n": Param(2)},
)
def imports_sdk():
    @task
    def push(**context):
        ti = context["ti"]
        ti.xcom_push(key="value from pusher 1", value=[1, 2, 3])
        ti.xcom_push(key="path/like key", value="p")
        ti.xcom_push(key="ключ", value={"ok": True})
        return pendulum.parse(context["ds"]).add(days=1).to_date_string()

    @task
    def pull(pushed):
        ti = get_current_context()["ti"]
        return [
            ti.xcom_pull(task_ids="push", key="value from pusher 1"),
            ti.xcom_pull(task_ids="push", key="path/like key"),
            ti.xcom_pull(task_ids="push", key="ключ"),
            pushed,
        ]

    @task
    def skipped():
        raise AirflowSkipException("not today")

    pull(push()) >> skipped()


imports_sdk()
"""

STANDARD_PROVIDER = (
    """
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.latest_only import LatestOnlyOperator
from airflow.providers.standard.operators.python import (
    BranchPythonOperator,
    PythonOperator,
    ShortCircuitOperator,
)
from airflow.providers.standard.operators.weekday import BranchDayOfWeekOperator
from airflow.providers.standard.utils.weekday import WeekDay
from airflow.sdk import DAG
"""
    + PUSH_AND_PULL
    + """

with DAG("imports_standard", start_date=pendulum.datetime(2021, 1, 1), schedule=None) as dag:
    pusher = PythonOperator(task_id="push", python_callable=push)
    puller = PythonOperator(task_id="pull", python_callable=pull)
    gate = ShortCircuitOperator(task_id="gate", python_callable=lambda: True)
    done = BashOperator(task_id="done", bash_command="echo done")
    pusher >> puller >> gate >> done >> EmptyOperator(task_id="end")
"""
)

COMMON_COMPAT = (
    """
import pendulum
from airflow.providers.common.compat.sdk import (
    DAG,
    AirflowSkipException,
    BaseOperator,
    Param,
    TriggerRule,
    chain,
    task,
    timezone,
)
from airflow.providers.common.compat.standard.operators import (
    BaseBranchOperator,
    PythonOperator,
    ShortCircuitOperator,
    get_current_context,
)
"""
    + PUSH_AND_PULL
    + """

with DAG("imports_compat", start_date=timezone.datetime(2022, 1, 1), schedule=None) as dag:
    pusher = PythonOperator(task_id="push", python_callable=push)
    puller = PythonOperator(task_id="pull", python_callable=pull)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def last(value):
        return value[-1]

    chain(pusher, puller, last(puller.output))
"""
)

PULLED = [[1, 2, 3], "p", {"ok": True}, "2026-11-22"]
PUSHED_ROWS = [
    {"task_id": "push", "key": "value from pusher 1", "value": [1, 2, 3]},
    {"task_id": "push", "key": "path/like key", "value": "p"},
    {"task_id": "push", "key": "ключ", "value": {"ok": True}},
    {"task_id": "push", "key": "return_value", "value": "2026-11-22"},
]


def dag_file(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("source", "tasks"),
    [
        pytest.param(
            AIRFLOW_2,
            {
                "start": "success",
                "push": "success",
                "pull": "success",
                "branch": "success",
                "left": "success",
                "right": "skipped",
                "join": "success",
                "group.echo": "success",
            },
            id="airflow-2.x-paths",
        ),
        pytest.param(
            AIRFLOW_3_SDK, {"push": "success", "pull": "success", "skipped": "skipped"}, id="airflow.sdk"
        ),
        pytest.param(
            STANDARD_PROVIDER,
            dict.fromkeys(["push", "pull", "gate", "done", "end"], "success"),
            id="providers.standard",
        ),
        pytest.param(
            COMMON_COMPAT,
            dict.fromkeys(["push", "pull", "last"], "success"),
            id="providers.common.compat",
        ),
    ],
)
def test_each_import_style_runs_locally_with_keys_shown_as_written(
    tmp_path: Path, source: str, tasks: dict[str, str]
) -> None:
    result = run_local_json(dag_file(tmp_path, "imports.py", source), "--workdir", str(tmp_path / "run"))
    assert result["state"] == "success", result
    assert result["tasks"] == tasks
    rows = [row for row in result["xcoms"] if not row["key"].startswith("__")]
    assert [row for row in rows if row["task_id"] == "push"] == PUSHED_ROWS
    pulled = next(row["value"] for row in rows if row["task_id"] == "pull")
    assert pulled == PULLED
    # On disk (as in the ConfigMap) the keys are ConfigMap keys: escaped where they had to be.
    stored = {p.name for p in (tmp_path / "run" / "xcom" / "push").iterdir()}
    assert {"-value.20from.20pusher.201", "-path.2flike.20key", "-.d0.ba.d0.bb.d1.8e.d1.87"} <= stored


def test_an_unsupported_import_fails_at_load_naming_the_feature_file_and_line(tmp_path: Path) -> None:
    path = dag_file(
        tmp_path,
        "approval.py",
        """
        import pendulum
        from airflow.sdk import DAG
        from airflow.providers.standard.operators.hitl import ApprovalOperator
        """,
    )
    for command in (["compile", str(path)], ["run", "--local", str(path)]):
        done = kdag(*command)
        assert done.returncode == 1
        assert done.stderr == (
            f"error: DAG file '{path}', line 3: airflow.providers.standard.operators.hitl.ApprovalOperator "
            "is not supported by kdag: human-in-the-loop operators need Airflow's UI and API server\n"
        )


@pytest.mark.parametrize(
    ("line", "feature"),
    [
        ("from airflow.sdk import Asset", "airflow.sdk.Asset is not supported by kdag: assets and datasets"),
        (
            "from airflow.providers.standard.operators.python import PythonVirtualenvOperator",
            "airflow.providers.standard.operators.python.PythonVirtualenvOperator is not supported by kdag: "
            "virtualenv",
        ),
        (
            "from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator",
            "airflow.providers.amazon.aws.operators.s3.S3CreateObjectOperator is not supported by kdag: kdag "
            "serves the standard provider's operators",
        ),
        (
            "import airflow.providers.cncf.kubernetes.operators.pod",
            "airflow.providers.cncf.kubernetes.operators.pod is not supported by kdag",
        ),
        (
            "from airflow.models import Variable",
            "airflow.models.Variable is not supported by kdag: Variables",
        ),
        ("from airflow.sdk import NoSuchThing", "airflow.sdk.NoSuchThing is not supported by kdag: kdag's"),
    ],
)
def test_unsupported_names_and_modules_name_what_and_why(tmp_path: Path, line: str, feature: str) -> None:
    path = dag_file(tmp_path, "dag.py", f"from airflow.sdk import DAG\n\n{line}\n")
    done = kdag("compile", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: DAG file '{path}', line 3: {feature}"), done.stderr
    assert done.stderr.count("\n") == 1


def test_an_error_in_the_file_names_its_line(tmp_path: Path) -> None:
    path = dag_file(tmp_path, "broken.py", "from airflow.sdk import DAG\n\nx = 1\nundefined_name\n")
    done = kdag("compile", str(path))
    assert done.returncode == 1
    assert done.stderr == (
        f"error: DAG file '{path}', line 4: NameError: name 'undefined_name' is not defined\n"
    )


UNHONOURED = """
import pendulum
from airflow.sdk import DAG, task
from airflow.providers.standard.operators.bash import BashOperator

with DAG(
    "limits",
    start_date=pendulum.datetime(2021, 1, 1),
    schedule=None,
    max_active_runs=1,
    default_args={"queue": "fast", "priority_weight": 1},
) as dag:
    a = BashOperator(task_id="a", bash_command="true", pool="db", priority_weight=5)
    b = BashOperator(task_id="b", bash_command="true", pool="db", pool_slots=1, depends_on_past=True)

    @task(executor="CeleryExecutor", max_active_tis_per_dag=2)
    def c():
        return 1

    a >> b >> c()
"""


def test_arguments_kdag_cannot_honour_are_warned_once_per_argument(tmp_path: Path) -> None:
    path = dag_file(tmp_path, "limits.py", UNHONOURED)
    where = f"warning: DAG file '{path}', DAG 'limits'"
    expected = [
        f"{where}: max_active_runs is accepted but not honoured: kdag does not limit concurrent runs of "
        "a DAG",
        f"{where}: depends_on_past (task 'b') is accepted but not honoured: kdag runs never wait for "
        "earlier runs",
        f"{where}: priority_weight (task 'a') is accepted but not honoured: kdag starts every ready task at "
        "once: there is no queue to order",
        f"{where}: queue (tasks 'a', 'b', 'c') is accepted but not honoured: kdag has no executor queues: "
        "every task is a pod",
        f"{where}: pool (tasks 'a', 'b') is accepted but not honoured: kdag has no pools: every ready task "
        "starts at once (limit with a ResourceQuota)",
        f"{where}: max_active_tis_per_dag (task 'c') is accepted but not honoured: kdag does not limit "
        "concurrent instances of a task",
        f"{where}: executor (task 'c') is accepted but not honoured: every kdag task runs as a pod: there "
        "is no executor to choose",
    ]
    for command in (["compile", str(path)], ["run", "--local", str(path), "-o", "json"]):
        done = kdag(*command)
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert sorted(warnings) == sorted(expected)
    # Airflow's defaults (priority_weight=1 from default_args, pool_slots=1) are not warned about.
    assert "pool_slots" not in done.stderr


def test_pendulum_start_dates_and_time_zones_compile(tmp_path: Path) -> None:
    path = dag_file(
        tmp_path,
        "zoned.py",
        """
        import pendulum
        from airflow.sdk import DAG
        from airflow.providers.standard.operators.empty import EmptyOperator

        with DAG(
            "zoned",
            schedule="0 6 * * *",
            start_date=pendulum.datetime(2024, 3, 1, tz="Europe/Amsterdam"),
            end_date=pendulum.datetime(2030, 1, 1, tz="UTC"),
        ):
            EmptyOperator(task_id="t")
        """,
    )
    done = kdag("compile", str(path))
    assert done.returncode == 0, done.stderr
    assert re.search(r"timezone: Europe/Amsterdam", done.stdout)
    assert "start: '2024-02-29T23:00:00Z'" in done.stdout and "end: '2030-01-01T00:00:00Z'" in done.stdout


ESCAPED_INPUT = """
apiVersion: kdag.dev/v1alpha1
kind: DAG
metadata:
  name: odd-keys
spec:
  tasks:
    - id: produce
      command: [sh, -c]
      args:
        - |
          echo '[1, 2, 3]' > "$KDAG_XCOM_DIR/value from pusher 1.json"
    - id: consume
      upstream: [produce]
      xcomInputs:
        - {env: VALUES, task: produce, key: "-value.20from.20pusher.201"}
      python:
        callable: consume
        source: |
          import os
          def consume(ti, **_):
              return [os.environ['VALUES'], ti.xcom_pull(task_ids='produce', key='value from pusher 1')]
"""


def test_xcom_inputs_name_the_configmap_key_of_an_escaped_key(tmp_path: Path) -> None:
    from kdag.api.models import XCOM_KEY_PATTERN
    from kdag_runner import store

    assert XCOM_KEY_PATTERN == store.STORE_KEY_PATTERN
    path = dag_file(tmp_path, "odd-keys.yaml", ESCAPED_INPUT)
    result = run_local_json(path)
    assert result["state"] == "success", result
    assert {"task_id": "produce", "key": "value from pusher 1", "value": [1, 2, 3]} in result["xcoms"]
    consumed = next(row["value"] for row in result["xcoms"] if row["task_id"] == "consume")
    assert consumed == ["[1,2,3]", [1, 2, 3]]
