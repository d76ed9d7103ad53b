"""`kdag apply`, `trigger --wait`, `status`, `xcom -o json`, `logs` and `graph` against the real cluster.

The example DAG files compiled and applied give, through `kdag xcom -o json`, the rows `kdag run --local`
gives and Apache Airflow gave for the same files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from controller_support import ControllerProcess, kubectl

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "python"
KDAG = str(Path(sys.executable).parent / "kdag")
LOGICAL_DATE = "2026-11-21"


def kdag(
    kubeconfig: str, namespace: str, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KDAG, *args, "-n", namespace, "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def local_rows(path: Path) -> dict[str, object]:
    done = subprocess.run(
        [KDAG, "run", "--local", str(path), "-o", "json", "--logical-date", LOGICAL_DATE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def comparable(result: dict[str, object]) -> list[str]:
    run_id = str(result["run_id"])
    rows = result["xcoms"]
    assert isinstance(rows, list)
    return sorted(json.dumps(row, sort_keys=True).replace(run_id, "<run_id>") for row in rows)


def apply_and_trigger(kubeconfig: str, namespace: str, path: Path, dag_name: str) -> str:
    applied = kdag(kubeconfig, namespace, "apply", str(path))
    assert applied.returncode == 0, applied.stderr
    assert f"dag/{dag_name} applied" in applied.stdout
    triggered = kdag(kubeconfig, namespace, "trigger", dag_name, "--logical-date", LOGICAL_DATE, "--wait")
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    run = triggered.stdout.strip().splitlines()[0]
    assert run.startswith(f"{dag_name}-manual-")
    return run


@pytest.mark.parametrize(
    ("file_name", "dag_name"),
    [
        ("xcom_lesson.py", "etl-dag"),
        ("xcom_three_ways.py", "xcom-three-ways"),
        ("xcom_semantics.py", "xcom-semantics"),
        ("bash_templates.py", "bash-templates"),
    ],
)
def test_compiled_dag_on_the_cluster_gives_the_local_rows(
    kubeconfig: str, controller: ControllerProcess, namespace: str, file_name: str, dag_name: str
) -> None:
    run = apply_and_trigger(kubeconfig, namespace, EXAMPLES / file_name, dag_name)
    shown = kdag(kubeconfig, namespace, "xcom", run, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    on_cluster = json.loads(shown.stdout)
    local = local_rows(EXAMPLES / file_name)
    assert on_cluster["state"] == local["state"] == "success"
    assert on_cluster["tasks"] == local["tasks"]
    assert on_cluster["dag_id"] == local["dag_id"]
    assert comparable(on_cluster) == comparable(local)


def test_status_logs_and_graph_of_a_run(
    kubeconfig: str, controller: ControllerProcess, namespace: str
) -> None:
    run = apply_and_trigger(kubeconfig, namespace, EXAMPLES / "xcom_three_ways.py", "xcom-three-ways")
    status = kdag(kubeconfig, namespace, "status", run, "-o", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["phase"] == "Succeeded"
    assert json.loads(status.stdout)["progress"] == "5/5"
    for task_id in ("pull_task", "get_context_task", "use_value_task"):
        logs = kdag(kubeconfig, namespace, "logs", run, task_id)
        assert logs.returncode == 0, logs.stderr
        assert "Value: some value" in logs.stdout
    text = kdag(kubeconfig, namespace, "status", run)
    assert text.returncode == 0, text.stderr
    assert f"{run}: Succeeded (5/5)" in text.stdout
    assert "set_context_task" in text.stdout
    table = kdag(kubeconfig, namespace, "xcom", run)
    assert table.returncode == 0, table.stderr
    assert '"some value"' in table.stdout and "__context" in table.stdout
    drawn = kdag(kubeconfig, namespace, "graph", "xcom-three-ways")
    assert drawn.returncode == 0, drawn.stderr
    assert "get_context_task  <- set_context_task" in drawn.stdout


@pytest.mark.parametrize(
    ("returned", "message_start"),
    [
        ("{1, 2}", "XCom 'return_value' of task 'produce' is not JSON-serialisable: set"),
        ("'x' * 1_100_000", "XComs of task 'produce' take "),
    ],
    ids=["not-json", "over-limit"],
)
def test_an_xcom_failure_fails_the_run_as_it_does_locally(
    kubeconfig: str,
    controller: ControllerProcess,
    namespace: str,
    tmp_path: Path,
    returned: str,
    message_start: str,
) -> None:
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    path = tmp_path / "fails.py"
    path.write_text(
        "from airflow import DAG\nfrom airflow.operators.python import PythonOperator\n"
        "dag = DAG('fails_on_cluster')\n"
        f"produce = PythonOperator(task_id='produce', python_callable=lambda: {returned}, dag=dag)\n"
        "after = PythonOperator(task_id='after', python_callable=print, dag=dag)\n"
        "produce >> after\n"
    )
    assert kdag(kubeconfig, namespace, "apply", str(path)).returncode == 0
    triggered = kdag(kubeconfig, namespace, "trigger", "fails-on-cluster", "--wait")
    assert triggered.returncode == 1
    run = triggered.stdout.strip().splitlines()[0]
    # Which task failed, why, and where its log is (issue 12).
    assert f"run {run} failed" in triggered.stderr
    assert f"  produce: failed: {message_start}" in triggered.stderr
    assert "  not run (upstream failed): after" in triggered.stderr
    assert f"its log: kdag logs {run} produce -n {namespace}" in triggered.stderr
    never = kdag(kubeconfig, namespace, "logs", run, "after")
    assert never.returncode == 1
    assert never.stderr.startswith(f"error: task 'after' of run '{run}' was never run: UpstreamFailed")
    sidecar = kdag(kubeconfig, namespace, "logs", run, "produce", "-c", "xcom")
    assert sidecar.returncode == 1
    assert "has no container 'xcom' (its containers: task)" in sidecar.stderr, sidecar.stderr
    first = kdag(kubeconfig, namespace, "logs", run, "produce", "--attempt", "1")
    assert first.returncode == 0, first.stderr
    assert kdag(kubeconfig, namespace, "logs", run, "produce").stdout == first.stdout
    beyond = kdag(kubeconfig, namespace, "logs", run, "produce", "--attempt", "2")
    assert "has had 1 attempt; --attempt takes 1 to 1" in beyond.stderr
    shown = json.loads(kdag(kubeconfig, namespace, "xcom", run, "-o", "json").stdout)
    assert shown["state"] == "failed"
    assert shown["tasks"] == {"produce": "failed", "after": "upstream_failed"}
    assert shown["xcoms"] == []
    status = json.loads(kdag(kubeconfig, namespace, "status", run, "-o", "json").stdout)
    assert status["messages"]["produce"].startswith(message_start)

    loaded = compiler.load(path)
    local = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "local")
    assert local.as_json()["tasks"] == shown["tasks"]
    assert local.tasks["produce"].message == status["messages"]["produce"]


def test_unknown_objects_are_one_line_errors(kubeconfig: str, namespace: str) -> None:
    for args, message in [
        (("trigger", "no-such-dag"), f"error: DAG 'no-such-dag' not found in namespace '{namespace}'"),
        (("status", "no-such-run"), f"error: DAGRun 'no-such-run' not found in namespace '{namespace}'"),
        (("xcom", "no-such-run"), f"error: DAGRun 'no-such-run' not found in namespace '{namespace}'"),
    ]:
        done = kdag(kubeconfig, namespace, *args)
        assert done.returncode == 1
        assert done.stderr.strip() == message


def test_trigger_params_override_like_local_params(
    kubeconfig: str, controller: ControllerProcess, namespace: str
) -> None:
    path = EXAMPLES / "xcom_semantics.py"
    assert kdag(kubeconfig, namespace, "apply", str(path)).returncode == 0
    triggered = kdag(
        kubeconfig, namespace, "trigger", "xcom-semantics", "-p", "who=cli", "-p", "greeting=hi", "--wait"
    )
    assert triggered.returncode == 0, triggered.stderr
    run = triggered.stdout.strip().splitlines()[0]
    on_cluster = json.loads(kdag(kubeconfig, namespace, "xcom", run, "-o", "json").stdout)
    consume = next(r for r in on_cluster["xcoms"] if r["task_id"] == "consume" and r["key"] == "return_value")
    assert (consume["value"]["who"], consume["value"]["greeting"]) == ("cli", "hi")


def test_a_yaml_manifest_applies_and_runs_like_locally(
    kubeconfig: str, controller: ControllerProcess, namespace: str
) -> None:
    path = REPO / "examples" / "xcom-lesson.yaml"
    run = apply_and_trigger(kubeconfig, namespace, path, "etl-dag")
    on_cluster = json.loads(kdag(kubeconfig, namespace, "xcom", run, "-o", "json").stdout)
    local = local_rows(path)
    assert on_cluster["tasks"] == local["tasks"]
    assert comparable(on_cluster) == comparable(local)


RENAMED = (
    "from airflow import DAG\nfrom airflow.operators.python import PythonOperator\n"
    "with DAG('renamed', schedule=None):\n"
    "    PythonOperator(task_id='step1', python_callable=lambda: 1)"
    " >> PythonOperator(task_id='STEP2', python_callable=lambda: 2)"
    " >> PythonOperator(task_id='step3', python_callable=lambda: 3)\n"
)


def dag_spec(kubeconfig: str, namespace: str, dag: str) -> dict[str, Any]:
    dag_object = json.loads(kubectl(kubeconfig, "get", "dag", dag, "-n", namespace, "-o", "json"))
    spec: dict[str, Any] = dag_object["spec"]
    return spec


def task_ids(kubeconfig: str, namespace: str, dag: str) -> list[str]:
    return [task["id"] for task in dag_spec(kubeconfig, namespace, dag)["tasks"]]


def test_kdag_apply_then_kubectl_server_side_apply_leaves_the_second_task_list(
    kubeconfig: str, controller: ControllerProcess, namespace: str, tmp_path: Path
) -> None:
    """Two ways of applying one DAG never leave a merge of both task lists: the last apply owns the spec."""
    path = tmp_path / "renamed.py"
    path.write_text(RENAMED.replace("STEP2", "step2"))
    assert kdag(kubeconfig, namespace, "apply", str(path)).returncode == 0
    assert task_ids(kubeconfig, namespace, "renamed") == ["step1", "step2", "step3"]
    path.write_text(RENAMED.replace("STEP2", "step2_renamed"))
    compiled = subprocess.run([KDAG, "compile", str(path)], capture_output=True, text=True, timeout=60)
    assert compiled.returncode == 0, compiled.stderr
    kubectl(kubeconfig, "apply", "--server-side", "-n", namespace, "-f", "-", stdin=compiled.stdout)
    assert task_ids(kubeconfig, namespace, "renamed") == ["step1", "step2_renamed", "step3"]
    triggered = kdag(kubeconfig, namespace, "trigger", "renamed", "--wait")
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    run = triggered.stdout.strip().splitlines()[0]
    shown = json.loads(kdag(kubeconfig, namespace, "status", run, "-o", "json").stdout)
    assert shown["tasks"] == {"step1": "Succeeded", "step2_renamed": "Succeeded", "step3": "Succeeded"}
    # And back: kdag apply of the first version takes the DAG over from kubectl's apply the same way.
    path.write_text(RENAMED.replace("STEP2", "step2"))
    assert kdag(kubeconfig, namespace, "apply", str(path)).returncode == 0
    assert task_ids(kubeconfig, namespace, "renamed") == ["step1", "step2", "step3"]


@pytest.mark.parametrize(
    "kubectl_apply",
    [
        ("apply", "--server-side", "--field-manager", "argocd-controller"),
        ("apply", "--server-side"),
        ("apply",),
        ("create",),
    ],
    ids=["server-side-argocd", "server-side-kubectl", "client-side", "create"],
)
def test_kdag_apply_of_a_python_file_takes_over_a_dag_applied_from_yaml(
    kubeconfig: str,
    controller: ControllerProcess,
    namespace: str,
    tmp_path: Path,
    kubectl_apply: tuple[str, ...],
) -> None:
    """A DAG of inline sources applied by kubectl — server-side under another field manager (as Argo CD
    would) or kubectl's own, client-side, or created — then the same name from a Python file with
    `kdag apply`: the DAG is the Python file's alone (its fields once owned by the YAML's manager included),
    and runs. (Issue 12: `python needs either source and callable, or fromDagFile`.)"""
    yaml_dag = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": "renamed"},
        "spec": {
            "schedule": "@daily",
            "tasks": [
                {"id": "step1", "python": {"source": "def f():\n    return 0\n", "callable": "f"}},
                {"id": "old", "command": ["true"], "upstream": ["step1"]},
            ],
        },
    }
    kubectl(kubeconfig, *kubectl_apply, "-n", namespace, "-f", "-", stdin=json.dumps(yaml_dag))
    path = tmp_path / "renamed.py"
    path.write_text(RENAMED.replace("STEP2", "step2"))
    done = kdag(kubeconfig, namespace, "apply", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    spec = dag_spec(kubeconfig, namespace, "renamed")
    assert [t["id"] for t in spec["tasks"]] == ["step1", "step2", "step3"]
    assert all(t["python"] == {"fromDagFile": True} for t in spec["tasks"])
    assert "schedule" not in spec, "a field only the YAML set went with it"
    triggered = kdag(kubeconfig, namespace, "trigger", "renamed", "--wait")
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
