"""`kdag compile`: the manifests that run a Python DAG on a cluster, and `kdag graph`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kdag import names
from kdag.api.models import DAGSpec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "python"
KDAG = str(Path(sys.executable).parent / "kdag")


def kdag(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KDAG, *args], capture_output=True, text=True, timeout=60, check=False)


def compiled(path: Path) -> list[dict[str, Any]]:
    done = kdag("compile", str(path))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_compile_gives_the_source_configmap_then_the_dag() -> None:
    source, dag = compiled(EXAMPLES / "xcom_lesson.py")
    assert source["kind"] == "ConfigMap"
    assert source["data"] == {"xcom_lesson.py": (EXAMPLES / "xcom_lesson.py").read_text()}
    # Named by its content and immutable: the DAG spec that names it pins one version of the code.
    assert source["metadata"]["name"] == names.source_configmap_name("etl-dag", source["data"])
    assert source["immutable"] is True
    # Never pruned by Argo CD or Flux while a run may still mount it (issue 10: GitOps pruning).
    assert source["metadata"]["annotations"] == {
        "argocd.argoproj.io/sync-options": "Prune=false",
        "kustomize.toolkit.fluxcd.io/prune": "disabled",
    }
    assert dag["apiVersion"] == "kdag.dev/v1alpha1"
    assert dag["kind"] == "DAG"
    assert dag["metadata"]["name"] == "etl-dag"
    spec = DAGSpec.model_validate(dag["spec"])
    assert spec.dag_id == "etl_dag"
    assert spec.python_file is not None
    assert spec.python_file.config_map == source["metadata"]["name"]
    assert spec.python_file.key == "xcom_lesson.py"
    assert [(t.id, t.upstream_ids, t.python.from_dag_file if t.python else None) for t in spec.tasks] == [
        ("sql_task", [], True),
        ("hello_task", [], True),
        ("goodbye_task", ["hello_task"], True),
    ]


def test_compile_keeps_params_retries_timeouts_and_trigger_rules(tmp_path: Path) -> None:
    path = tmp_path / "options.py"
    path.write_text(
        textwrap.dedent(
            """\
            from datetime import datetime, timedelta
            from airflow import DAG
            from airflow.providers.standard.operators.bash import BashOperator
            with DAG('Options.DAG', schedule='@daily', params={'n': 1},
                     default_args={'retries': 2, 'retry_delay': timedelta(seconds=30)}) as dag:
                first = BashOperator(task_id='first', bash_command='echo 1', params={'m': 2},
                                     execution_timeout=timedelta(minutes=5))
                steady = BashOperator(task_id='steady', bash_command='echo 2', retries=0,
                                      trigger_rule='all_done')
                backoff = BashOperator(task_id='backoff', bash_command='echo 3',
                                       retry_exponential_backoff=True,
                                       max_retry_delay=timedelta(seconds=600))
                first >> [steady, backoff]
            """
        )
    )
    _, dag = compiled(path)
    assert dag["metadata"]["name"] == "options-dag"
    spec = dag["spec"]
    assert spec["schedule"] == "@daily"
    assert spec["params"] == {"n": 1}
    first, steady, backoff = spec["tasks"]
    assert first == {
        "id": "first",
        "python": {"fromDagFile": True},
        "retries": 2,
        "retryDelaySeconds": 30,
        "maxRetryDelaySeconds": 30,
        "timeoutSeconds": 300,
        "params": {"m": 2},
    }
    assert steady == {
        "id": "steady",
        "python": {"fromDagFile": True},
        "upstream": ["first"],
        "triggerRule": "all_done",
    }
    assert backoff["retryDelaySeconds"] == 30
    assert backoff["maxRetryDelaySeconds"] == 600


def test_compile_to_a_directory_writes_one_file_per_object(tmp_path: Path) -> None:
    done = kdag("compile", str(EXAMPLES / "bash_templates.py"), "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    source = yaml.safe_load((tmp_path / "out" / files[0]).read_text())
    assert files == [f"configmap-{source['metadata']['name']}.yaml", "dag-bash-templates.yaml"]
    dag = yaml.safe_load((tmp_path / "out" / "dag-bash-templates.yaml").read_text())
    assert [t["id"] for t in dag["spec"]["tasks"]] == [
        "make_name",
        "greet",
        "dated",
        "last_line",
        "which_run",
    ]


def test_a_gitops_folder_holds_one_version_of_the_source(tmp_path: Path) -> None:
    """Compiling an unchanged file changes nothing in the folder; a changed one replaces the source file
    (the old version leaves the repository, so the GitOps tool prunes it) and the DAG names the new one."""
    dag_file, out = tmp_path / "versioned.py", tmp_path / "out"
    text = (
        "from airflow import DAG\nfrom airflow.operators.python import PythonOperator\n"
        "dag = DAG('versioned')\n"
        "PythonOperator(task_id='step1', python_callable=lambda: 'VERSION', dag=dag)\n"
    )
    dag_file.write_text(text.replace("VERSION", "v1"))
    assert kdag("compile", str(dag_file), "-o", str(out)).returncode == 0
    first = {p.name: p.read_text() for p in out.iterdir()}
    again = kdag("compile", str(dag_file), "-o", str(out))
    assert again.returncode == 0 and "removed" not in again.stdout
    assert {p.name: p.read_text() for p in out.iterdir()} == first
    (out / "configmap-versioned-source.yaml").write_text("# what an earlier kdag wrote\n")
    (out / "configmap-other-source-0123456789.yaml").write_text("# another DAG's\n")
    dag_file.write_text(text.replace("VERSION", "v2"))
    done = kdag("compile", str(dag_file), "-o", str(out))
    assert done.returncode == 0, done.stderr
    sources = sorted(p.name for p in out.glob("configmap-versioned-source*"))
    assert len(sources) == 1 and sources[0] not in first
    assert done.stdout.count("removed ") == 2
    assert (out / "configmap-other-source-0123456789.yaml").exists()
    dag = yaml.safe_load((out / "dag-versioned.yaml").read_text())
    assert f"configmap-{dag['spec']['pythonFile']['configMap']}.yaml" == sources[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "BashOperator(task_id='t', bash_command='true', trigger_rule='sometimes', dag=dag)",
            "error: task 't': trigger_rule 'sometimes' is not one of all_success, all_failed, all_done,",
        ),
        (
            "BashOperator(task_id='t' * 64, bash_command='true', dag=dag)",
            "longer than 63 characters (a Kubernetes label value)",
        ),
        (
            "dag.schedule = timedelta(seconds=30)\nBashOperator(task_id='t', bash_command='true', dag=dag)",
            "spec.timetable.everySeconds: Input should be greater than or equal to 60",
        ),
        (
            "dag.schedule = '@continuous'\nBashOperator(task_id='t', bash_command='true', dag=dag)",
            "spec.schedule: '@continuous' is not a cron expression",
        ),
        ("", "error: DAG 'limits': defines no tasks"),
        ("raise RuntimeError('the file itself fails')", "RuntimeError: the file itself fails"),
    ],
)
def test_what_a_cluster_cannot_run_is_refused_in_one_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "limits.py"
    path.write_text(
        "from datetime import timedelta\nfrom airflow import DAG\n"
        "from airflow.operators.bash import BashOperator\n"
        f"dag = DAG('limits')\n{body}\n"
    )
    done = kdag("compile", str(path))
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_every_problem_of_a_yaml_dag_is_named_on_one_line(tmp_path: Path) -> None:
    """The webhook's validator decides: python and command together, a KDAG_ env var, both named."""
    path = tmp_path / "both.yaml"
    path.write_text(
        "apiVersion: kdag.dev/v1alpha1\nkind: DAG\nmetadata: {name: both}\nspec:\n  tasks:\n"
        "    - id: a\n      command: [echo, hi]\n      python: {source: 'def f(): pass', callable: f}\n"
        "      env: [{name: KDAG_X, value: '1'}]\n"
    )
    done = kdag("compile", str(path))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        "error: DAG 'both': task 'a' (spec.tasks[0]): a task needs exactly one of python or command; "
        "task 'a' (spec.tasks[0].env[0].name): 'KDAG_X' may not start with KDAG_ (kdag's own variables)\n"
    )


def test_schedules_compile_as_airflow_3_reads_them(tmp_path: Path) -> None:
    """schedule=None stays no schedule (the DAG then runs only when triggered); a timedelta is Airflow 3's
    DeltaTriggerTimetable, its ticks aligned to start_date."""
    header = (
        "from datetime import datetime, timedelta\nfrom airflow import DAG\n"
        "from airflow.operators.bash import BashOperator\n"
    )
    unscheduled = tmp_path / "unscheduled.py"
    unscheduled.write_text(
        header + "with DAG('unscheduled', schedule=None, start_date=datetime(2024, 1, 1)) as dag:\n"
        "    BashOperator(task_id='t', bash_command='true')\n"
    )
    _, dag = compiled(unscheduled)
    assert "schedule" not in dag["spec"] and "timetable" not in dag["spec"]
    every = tmp_path / "every.py"
    every.write_text(
        header + "with DAG('every', schedule=timedelta(hours=1),\n"
        "         start_date=datetime(2024, 1, 1, 0, 30)) as dag:\n"
        "    BashOperator(task_id='t', bash_command='true')\n"
    )
    _, dag = compiled(every)
    assert dag["spec"]["timetable"] == {"everySeconds": 3600, "start": "2024-01-01T00:30:00Z"}


def test_once_schedule_is_kept(tmp_path: Path) -> None:
    """Airflow's @once: the controller runs the DAG once when it is created."""
    path = tmp_path / "once.py"
    path.write_text(
        "from airflow import DAG\nfrom airflow.operators.bash import BashOperator\n"
        "with DAG('once', schedule='@once') as dag:\n    BashOperator(task_id='t', bash_command='true')\n"
    )
    _, dag = compiled(path)
    assert dag["spec"]["schedule"] == "@once"


def test_authoring_package_builds_the_dag_compile_uses() -> None:
    from kdag.authoring import DAG, PythonOperator
    from kdag.compile.python_dags import python_dag_spec

    with DAG("built_in_python", params={"a": 1}) as dag:
        first = PythonOperator(task_id="first", python_callable=print, retries=1, retry_delay=timedelta(0))
        second = PythonOperator(task_id="second", python_callable=print)
        second.set_upstream(first)
    spec = python_dag_spec(dag, "built-in-python-source", "dag.py")
    assert [(t.id, t.upstream_ids, t.retries) for t in spec.tasks] == [
        ("first", [], 1),
        ("second", ["first"], None),
    ]


def test_graph_prints_layers_and_writes_svg(tmp_path: Path) -> None:
    svg = tmp_path / "graph.svg"
    done = kdag("graph", str(EXAMPLES / "xcom_semantics.py"), "--svg", str(svg))
    assert done.returncode == 0, done.stderr
    assert "layer 0" in done.stdout and "layer 1" in done.stdout
    assert "consume" in done.stdout.split("layer 1")[1]
    text = svg.read_text()
    assert text.startswith("<svg")
    for task_id in ("produce_mapping", "produce_text", "produce_number", "produce_nothing", "consume"):
        assert f'id="task-{task_id}"' in text
    assert text.count("<line ") == 4


def test_every_command_has_help() -> None:
    for command in ("run", "compile", "graph", "apply", "trigger", "status", "xcom", "logs"):
        done = kdag(command, "--help")
        assert done.returncode == 0, (command, done.stderr)
        assert "Usage" in done.stdout
    top = kdag("--help")
    assert "Exit codes" in top.stdout


def test_kdag_does_not_shadow_an_installed_airflow(tmp_path: Path) -> None:
    """With a real `airflow` importable, kdag refuses to load the file rather than hide that Airflow."""
    fake = tmp_path / "site" / "airflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("REAL_AIRFLOW = True\n")
    done = subprocess.run(
        [KDAG, "compile", str(EXAMPLES / "xcom_lesson.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    )
    assert done.returncode == 1
    assert "Apache Airflow is importable here" in done.stderr
    assert done.stderr.count("\n") == 1


def test_graph_writes_png(tmp_path: Path) -> None:
    png = tmp_path / "graph.png"
    done = kdag("graph", str(EXAMPLES / "xcom_lesson.py"), "--png", str(png))
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_graph_png_without_rsvg_convert_is_one_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    done = subprocess.run(
        [KDAG, "graph", str(EXAMPLES / "xcom_lesson.py"), "--png", str(tmp_path / "g.png")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": str(bin_dir)},
    )
    assert done.returncode == 1
    assert done.stderr == (
        "error: PNG output needs rsvg-convert (Debian: apt-get install librsvg2-bin); --svg needs nothing\n"
    )
    assert not (tmp_path / "g.png").exists()
