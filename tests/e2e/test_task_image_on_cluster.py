"""A Python task that imports yaml runs on the cluster in its own image: `executor_config`'s pod_override
names `localhost/kdag-runner-yaml:dev` (tests/cluster/build-images: the runner plus PyYAML, built as README's
"Your own dependencies" says), while a task without one runs in the runner image, which has no yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from controller_support import ControllerProcess
from e2e_helpers import apply, get, trigger, wait_for_run, xcoms
from kdag import compile as compiler
from kdag_runner import store
from kube_helpers import RUNNER_IMAGE

pytestmark = pytest.mark.cluster

YAML_IMAGE = "localhost/kdag-runner-yaml:dev"

DAG_FILE = f'''
from airflow.sdk import DAG, task

POD = {{"pod_override": {{"spec": {{"containers": [
    {{"name": "base", "image": "{YAML_IMAGE}", "env": [{{"name": "DOC", "value": "a: 1"}}]}}
]}}}}}}


@task(executor_config=POD)
def parse():
    import os

    import yaml

    return yaml.safe_load(os.environ["DOC"])


@task
def has_yaml():
    import importlib.util

    return importlib.util.find_spec("yaml") is not None


with DAG("task_image_on_cluster", schedule=None) as dag:
    parse()
    has_yaml()
'''


def test_a_task_runs_in_the_image_its_executor_config_names(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "task_image_on_cluster.py"
    path.write_text(DAG_FILE)
    loaded = compiler.load(path)
    assert {t.id: t.image for t in loaded.spec.tasks} == {"parse": YAML_IMAGE, "has_yaml": None}
    for manifest in loaded.manifests:
        apply(kubeconfig, e2e_namespace, manifest)
    run_name = trigger(kubeconfig, e2e_namespace, loaded.name)
    run = wait_for_run(kubeconfig, e2e_namespace, loaded.name, timeout=300)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    pods = get(kubeconfig, e2e_namespace, "pods", "-l", f"kdag.dev/dagrun={run_name}")["items"]
    images = {
        p["metadata"]["labels"]["kdag.dev/task"]: [c["image"] for c in p["spec"]["containers"]] for p in pods
    }
    assert images == {"parse": [YAML_IMAGE], "has_yaml": [RUNNER_IMAGE]}
    assert store.decode(xcoms(kubeconfig, e2e_namespace, run_name, "parse"))["return_value"] == {"a": 1}
    # The runner image has no yaml: the task image is what made `parse` work.
    assert store.decode(xcoms(kubeconfig, e2e_namespace, run_name, "has_yaml"))["return_value"] is False
