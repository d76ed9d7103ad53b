"""The airflow.* import shim and the DAG file loader, on the project's example DAG files too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from kdag_runner import authoring, compat, context
from kdag_runner.authoring import DagDefinitionError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


@pytest.fixture
def shim() -> Iterator[None]:
    assert compat.install()
    yield
    compat.uninstall()


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.mark.usefixtures("shim")
def test_airflow_imports_resolve_to_kdag_classes() -> None:
    from airflow import DAG  # type: ignore[import-not-found]
    from airflow.exceptions import AirflowException  # type: ignore[import-not-found]
    from airflow.models import BaseOperator  # type: ignore[import-not-found]
    from airflow.operators.bash import BashOperator  # type: ignore[import-not-found]
    from airflow.operators.bash_operator import BashOperator as OldBash  # type: ignore[import-not-found]
    from airflow.operators.empty import EmptyOperator  # type: ignore[import-not-found]
    from airflow.operators.python import PythonOperator, get_current_context  # type: ignore[import-not-found]
    from airflow.operators.python_operator import PythonOperator as Old  # type: ignore[import-not-found]
    from airflow.providers.standard.operators.bash import BashOperator as Std  # type: ignore[import-not-found]
    from airflow.providers.standard.operators.python import (  # type: ignore[import-not-found]
        PythonOperator as StdPy,
    )
    from airflow.sdk import DAG as SdkDag  # type: ignore[import-not-found]
    from airflow.utils.dates import days_ago  # type: ignore[import-not-found]
    from airflow.utils.trigger_rule import TriggerRule  # type: ignore[import-not-found]

    assert DAG is SdkDag is authoring.DAG
    assert PythonOperator is Old is StdPy is authoring.PythonOperator
    assert BashOperator is OldBash is Std is authoring.BashOperator
    assert EmptyOperator is authoring.EmptyOperator and BaseOperator is authoring.BaseOperator
    assert TriggerRule.ALL_DONE == "all_done" and AirflowException is authoring.AirflowException
    assert get_current_context is context.get_current_context
    start = days_ago(2)
    assert (start.hour, start.minute, start.second, start.tzinfo is not None) == (0, 0, 0, True)


@pytest.mark.usefixtures("shim")
def test_other_airflow_modules_stay_unimportable() -> None:
    with pytest.raises(ModuleNotFoundError):
        import airflow.providers.cncf.kubernetes  # type: ignore[import-not-found]  # noqa: F401


def test_uninstall_removes_the_shim_modules() -> None:
    compat.install()
    import airflow.operators.python  # type: ignore[import-not-found]

    compat.uninstall()
    assert not [name for name in sys.modules if name == "airflow" or name.startswith("airflow.")]
    with pytest.raises(ModuleNotFoundError):
        import airflow  # noqa: F401


def test_importing_the_runner_never_installs_the_shim() -> None:
    code = "import kdag_runner, kdag_runner.main, kdag_runner.authoring, kdag_runner.compat\nimport airflow"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 1
    assert "No module named 'airflow'" in completed.stderr


def test_a_real_airflow_is_never_shadowed(tmp_path: Path) -> None:
    package = tmp_path / "airflow"
    package.mkdir()
    (package / "__init__.py").write_text("REAL = True\n", encoding="utf-8")
    code = "from kdag_runner import compat\nprint(compat.install())\nimport airflow\nprint(airflow.REAL)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert completed.stdout.split() == ["False", "True"]


def test_load_dag_file_finds_the_one_dag(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "one.py",
        """
        from airflow import DAG
        from airflow.operators.python import PythonOperator
        with DAG("one") as dag:
            PythonOperator(task_id="t", python_callable=print)
        """,
    )
    try:
        dag = compat.load_dag_file(path)
    finally:
        compat.uninstall()
    assert dag.dag_id == "one" and dag.task_ids == ["t"] and dag.fileloc == str(path)


def test_load_dag_file_refuses_none_or_several(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.py", "x = 1\n")
    two = write(tmp_path, "two.py", "from airflow import DAG\nDAG('a')\nDAG('b')\n")
    twice = write(tmp_path, "twice.py", "from airflow import DAG\nDAG('a')\nDAG('a')\n")
    try:
        with pytest.raises(DagDefinitionError, match=r"^DAG file '.*empty.py': defines no DAG$"):
            compat.load_dag_file(empty)
        with pytest.raises(DagDefinitionError, match=r"defines 2 DAGs \(a, b\); name the one to use$"):
            compat.load_dag_file(two)
        assert compat.load_dag_file(two, "b").dag_id == "b"
        with pytest.raises(DagDefinitionError, match=r"defines no DAG 'c' \(it defines: a, b\)$"):
            compat.load_dag_file(two, "c")
        with pytest.raises(DagDefinitionError, match=r"^DAG 'a': defined twice in '.*twice.py'$"):
            compat.load_dag_file(twice)
        with pytest.raises(DagDefinitionError, match=r"^DAG file '.*missing.py': not found$"):
            compat.load_dag_file(tmp_path / "missing.py")
    finally:
        compat.uninstall()


def test_the_lesson_as_written_is_refused_naming_the_task(tmp_path: Path) -> None:
    """Seed 000 passes ``python_callable=dag``; like Airflow, the loader refuses it."""
    path = write(
        tmp_path,
        "lesson.py",
        """
        from datetime import datetime, timedelta
        from airflow import DAG
        from airflow.operators.python_operator import PythonOperator
        dag = DAG(dag_id = 'etl_dag', start_date = datetime.now() - timedelta(days = 1))
        def hello_world():
            return 'hello world'
        sql_task = PythonOperator(
            task_id='sql_task',
            python_callable=dag,
            dag=dag)
        """,
    )
    try:
        with pytest.raises(
            DagDefinitionError, match=r"^task 'sql_task': python_callable must be callable, got DAG$"
        ):
            compat.load_dag_file(path)
    finally:
        compat.uninstall()


@pytest.mark.parametrize(
    ("file", "dag_id", "edges"),
    [
        ("xcom_lesson.py", "etl_dag", {"goodbye_task": {"hello_task"}}),
        (
            "xcom_three_ways.py",
            "xcom_three_ways",
            {"pull_task": {"push_task"}, "get_context_task": {"set_context_task"}},
        ),
        (
            "xcom_semantics.py",
            "xcom_semantics",
            {"consume": {"produce_mapping", "produce_text", "produce_number", "produce_nothing"}},
        ),
        (
            "bash_templates.py",
            "bash_templates",
            {"greet": {"make_name"}, "last_line": {"greet"}, "which_run": {"dated"}},
        ),
    ],
)
def test_example_dag_files_load(file: str, dag_id: str, edges: dict[str, set[str]]) -> None:
    try:
        dag = compat.load_dag_file(EXAMPLES / file)
    finally:
        compat.uninstall()
    assert dag.dag_id == dag_id
    found = {t.task_id: t.upstream_task_ids for t in dag.tasks if t.upstream_task_ids}
    assert found == edges
