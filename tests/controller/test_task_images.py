"""The image a Python task runs in: `executor_config={"pod_override": ...}` (KubernetesExecutor's spelling,
per task or for the whole DAG through `default_args`) becomes the TaskSpec's image, resources and env, and
the rendered pod's task container carries them; the rest of a pod_override is warned about."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kdag import compile as compiler
from kdag import names
from kdag.api.models import DAGSpec
from kdag.compile.executor_config import executor_config_fields
from kdag.render import RunInfo, render_task_pod
from kdag.settings import ControllerSettings

SETTINGS = ControllerSettings(runner_image="localhost/kdag-runner:dev")
HEADER = """\
from airflow import DAG
from airflow.providers.standard.operators.python import PythonOperator
"""

# A task importing yaml needs an image with PyYAML (and the runner): README, "Your own dependencies".
POD_OVERRIDE = """\
YAML_POD = {"pod_override": {"spec": {"containers": [{
    "name": "base",
    "image": "registry.example/team/kdag-runner-yaml:1",
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    "env": [
        {"name": "MODE", "value": "fast"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
        {"name": "REGION", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "region"}}},
    ],
}]}}}
"""


def dag_file(tmp_path: Path, body: str, prelude: str = "") -> Path:
    path = tmp_path / "images.py"
    path.write_text(HEADER + prelude + textwrap.dedent(body), encoding="utf-8")
    return path


def tasks_of(path: Path) -> dict[str, dict[str, Any]]:
    spec = compiler.load(path).spec.to_kube()
    return {task["id"]: task for task in spec["tasks"]}


def test_a_tasks_pod_override_gives_its_image_resources_and_env(tmp_path: Path) -> None:
    path = dag_file(
        tmp_path,
        prelude=POD_OVERRIDE,
        body="""\
        with DAG('images', schedule=None) as dag:
            PythonOperator(task_id='parse', python_callable=print, executor_config=YAML_POD)
            PythonOperator(task_id='plain', python_callable=print)
        """,
    )
    tasks = tasks_of(path)
    assert tasks["parse"]["image"] == "registry.example/team/kdag-runner-yaml:1"
    assert tasks["parse"]["python"] == {"fromDagFile": True}  # still the runner's entry point
    assert tasks["parse"]["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert tasks["parse"]["env"] == [
        {"name": "MODE", "value": "fast"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
        {"name": "REGION", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "region"}}},
    ]
    assert not {"image", "resources", "env"} & set(tasks["plain"])


def test_default_args_give_every_task_the_image_and_a_task_replaces_it(tmp_path: Path) -> None:
    path = dag_file(
        tmp_path,
        prelude=POD_OVERRIDE,
        body="""\
        OTHER = {"pod_override": {"spec": {"containers": [{"name": "base", "image": "other:2"}]}}}
        with DAG('images', schedule=None, default_args={"executor_config": YAML_POD}) as dag:
            PythonOperator(task_id='a', python_callable=print)
            PythonOperator(task_id='b', python_callable=print, executor_config=OTHER)
        """,
    )
    tasks = tasks_of(path)
    assert tasks["a"]["image"] == "registry.example/team/kdag-runner-yaml:1"
    assert tasks["a"]["env"][0] == {"name": "MODE", "value": "fast"}
    # As in Airflow, a task's executor_config replaces default_args' whole (no merging of pods).
    assert tasks["b"]["image"] == "other:2"
    assert "env" not in tasks["b"] and "resources" not in tasks["b"]
    assert compiler.load(path).warnings == ()


class FakeV1Pod:
    """What kubernetes.client.V1Pod.to_dict() returns: Python attribute names, None for unset fields."""

    def to_dict(self) -> dict[str, Any]:
        container = {
            "name": "base",
            "image": "team/runner-ml:3",
            "command": None,
            "env": [
                {"name": "MODE", "value": "x", "value_from": None},
                {
                    "name": "TOKEN",
                    "value": None,
                    "value_from": {
                        "secret_key_ref": {"name": "api", "key": "token", "optional": None},
                        "config_map_key_ref": None,
                        "field_ref": None,
                    },
                },
            ],
            "resources": {"limits": {"cpu": 0.5, "nvidia.com/gpu": 1}, "requests": None, "claims": None},
            "volume_mounts": None,
        }
        return {
            "api_version": None,
            "kind": None,
            "metadata": None,
            "spec": {"containers": [container], "volumes": None, "node_selector": None},
            "status": None,
        }


def test_a_v1pod_object_is_read_through_to_dict(tmp_path: Path) -> None:
    fields, ignored = executor_config_fields("task 't'", _Task({"pod_override": FakeV1Pod()}))
    assert fields == {
        "image": "team/runner-ml:3",
        "resources": {"limits": {"cpu": "0.5", "nvidia.com/gpu": 1}},
        "env": [
            {"name": "MODE", "value": "x"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
        ],
    }
    assert ignored == []


class _Task:
    def __init__(self, executor_config: object) -> None:
        self.options = {"executor_config": executor_config}


def test_the_rest_of_a_pod_override_is_warned_about_one_line_per_field(tmp_path: Path) -> None:
    path = dag_file(
        tmp_path,
        """\
        POD = {"pod_override": {
            "metadata": {"labels": {"team": "a"}},
            "spec": {
                "tolerations": [{"key": "gpu", "operator": "Exists"}],
                "containers": [
                    {"name": "base", "image": "x:1", "command": ["sh"],
                     "resources": {"claims": [{"name": "c"}]}},
                    {"name": "sidecar", "image": "proxy:1"},
                ],
            },
        }, "KubernetesExecutor": {"image": "old:1"}}
        with DAG('images', schedule=None, default_args={"executor_config": POD}) as dag:
            PythonOperator(task_id='a', python_callable=print)
            PythonOperator(task_id='b', python_callable=print)
        """,
    )
    loaded = compiler.load(path)
    where = f"DAG file '{path}', DAG 'images'"
    why = (
        "kdag reads only the image, resources and env of the pod_override's container 'base', and the"
        " pod's nodeSelector and tolerations"
    )
    fields = [
        "['KubernetesExecutor']",
        "pod_override.metadata",
        "pod_override.spec.containers['base'].command",
        "pod_override.spec.containers['base'].resources.claims",
        "pod_override.spec.containers['sidecar']",
    ]
    expected = {
        f"{where}: executor_config {field} (tasks 'a', 'b') is accepted but not honoured: {why}"
        for field in fields
    }
    assert set(loaded.warnings) == expected
    assert {t.id: t.image for t in loaded.spec.tasks} == {"a": "x:1", "b": "x:1"}
    # Where the pod may run is read: the tolerations become the tasks' own.
    assert [t.to_kube() for t in loaded.spec.tasks[0].tolerations or []] == [
        {"key": "gpu", "operator": "Exists"}
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "'big'",
            "task 't': executor_config must be a dict such as {'pod_override': k8s.V1Pod(...)}, not str",
        ),
        (
            "{'pod_override': 3}",
            "task 't': executor_config's pod_override must be a kubernetes V1Pod or a dict",
        ),
        (
            "{'pod_override': {'spec': {'containers': [{'name': 'base',"
            " 'env': [{'name': 'KDAG_X', 'value': '1'}]}]}}}",
            "task 't' (spec.tasks[0].env[0].name): 'KDAG_X' may not start with KDAG_",
        ),
    ],
)
def test_an_executor_config_kdag_cannot_read_is_refused(tmp_path: Path, config: str, message: str) -> None:
    path = dag_file(
        tmp_path,
        f"""\
        with DAG('images', schedule=None) as dag:
            PythonOperator(task_id='t', python_callable=print, executor_config={config})
        """,
    )
    with pytest.raises(compiler.DefinitionError) as raised:
        compiler.load(path)
    assert message in str(raised.value)


def render(spec: DAGSpec, task_id: str) -> dict[str, Any]:
    run = RunInfo(
        namespace="team-a",
        dag_name="images",
        name="images-abc12345",
        uid="uid-run",
        logical_date=datetime(2026, 1, 2, tzinfo=UTC),
        dag=spec,
        params={},
        conf={},
    )
    return render_task_pod(
        run=run,
        task=spec.resolved_task(task_id, SETTINGS.runner_image),
        taskrun_name=names.taskrun_name(run.name, task_id),
        taskrun_uid="uid-tr",
        attempt=1,
        settings=SETTINGS,
    )


def test_the_pod_runs_the_runner_in_the_tasks_image_with_its_resources_and_env(tmp_path: Path) -> None:
    path = dag_file(
        tmp_path,
        prelude=POD_OVERRIDE,
        body="""\
        with DAG('images', schedule=None) as dag:
            PythonOperator(task_id='parse', python_callable=print, executor_config=YAML_POD)
            PythonOperator(task_id='plain', python_callable=print)
        """,
    )
    spec = compiler.load(path).spec
    (container,) = render(spec, "parse")["spec"]["containers"]
    assert container["name"] == "task"
    assert container["image"] == "registry.example/team/kdag-runner-yaml:1"
    assert container["command"] == ["python3", "-m", "kdag_runner", "run"]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["MODE"] == {"name": "MODE", "value": "fast"}
    assert env["TOKEN"] == {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
    assert env["REGION"]["valueFrom"] == {"configMapKeyRef": {"name": "settings", "key": "region"}}
    assert env["KDAG_TASK_ID"]["value"] == "parse"
    (plain,) = render(spec, "plain")["spec"]["containers"]
    assert plain["image"] == SETTINGS.runner_image
    assert not {"MODE", "TOKEN"} & {e["name"] for e in plain["env"]}


def test_a_local_run_ignores_the_image_and_passes_plain_env(tmp_path: Path) -> None:
    from kdag.local.run import LocalDag, run_local

    path = dag_file(
        tmp_path,
        """\
        import os
        POD = {"pod_override": {"spec": {"containers": [
            {"name": "base", "image": "no-such-registry.invalid/runner:0",
             "env": [{"name": "MODE", "value": "fast"}]}
        ]}}}

        def mode():
            assert os.environ["MODE"] == "fast"
            return os.environ["MODE"]

        with DAG('images', schedule=None) as dag:
            PythonOperator(task_id='t', python_callable=mode, executor_config=POD)
        """,
    )
    loaded = compiler.load(path)
    result = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "work")
    assert result.as_json()["tasks"] == {"t": "success"}
