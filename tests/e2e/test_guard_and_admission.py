"""Who may write XComs (the 403), and manifests refused at apply time with a message naming the fault."""

from __future__ import annotations

import json
import subprocess

import pytest
from controller_support import ControllerProcess
from e2e_helpers import apply, dag_manifest, python_task, runs_of, wait_for_run, xcoms

pytestmark = pytest.mark.cluster

WRITE_OTHER = '''
import json, os, ssl, urllib.error, urllib.request

def write_other(**_):
    """Try to write two ConfigMaps that are not this task's own, with this pod's token."""
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    with open(sa + "/token") as token_file:
        token = token_file.read().strip()
    ns = os.environ["KDAG_NAMESPACE"]
    server = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
    context = ssl.create_default_context(cafile=sa + "/ca.crt")
    answers = {}
    for target in (os.environ["KDAG_RUN_ID"] + "-victim", os.environ["KDAG_RUN_ID"] + "-elsewhere"):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": target, "namespace": ns},
                "data": {"return_value": "forged"}}
        request = urllib.request.Request(
            server + "/api/v1/namespaces/%s/configmaps/%s?fieldManager=kdag-runner&force=true" % (ns, target),
            data=json.dumps(body).encode(), method="PATCH",
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/apply-patch+yaml"})
        try:
            with urllib.request.urlopen(request, context=context) as response:
                answers[target.rsplit("-", 1)[1]] = {"status": response.status, "message": ""}
        except urllib.error.HTTPError as error:
            answers[target.rsplit("-", 1)[1]] = {"status": error.code,
                                                 "message": json.loads(error.read()).get("message", "")}
    return answers
'''


def test_a_task_cannot_write_another_tasks_xcoms(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    manifest = dag_manifest(
        "guard",
        [
            python_task("victim", "def victim(**_):\n    return 'genuine'\n", "victim"),
            python_task("attacker", WRITE_OTHER, "write_other", upstream=["victim"]),
        ],
        schedule="@once",
    )
    apply(kubeconfig, e2e_namespace, manifest)
    run = wait_for_run(kubeconfig, e2e_namespace, "guard")
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    answers = json.loads(xcoms(kubeconfig, e2e_namespace, name, "attacker")["return_value"])
    for target in ("victim", "elsewhere"):
        assert answers[target]["status"] == 403, answers
        assert "may write only their own XCom ConfigMap" in answers[target]["message"], answers
    assert xcoms(kubeconfig, e2e_namespace, name, "victim")["return_value"] == "genuine"


def _apply_refused(kubeconfig: str, namespace: str, manifest: dict[str, object]) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "apply", "-n", namespace, "-f", "-"],
        input=json.dumps(manifest), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0, f"kubectl apply accepted {manifest['metadata']}: {result.stdout}"
    return result.stderr


def _cmd(task_id: str, **fields: object) -> dict[str, object]:
    return {"id": task_id, "image": "busybox:1.35", "command": ["true"], **fields}


@pytest.mark.parametrize(
    ("tasks", "extra", "expected"),
    [
        pytest.param(
            [_cmd("a", upstream=["c"]), _cmd("b", upstream=["a"]), _cmd("c", upstream=["b"])], {},
            "tasks form a cycle: a -> b -> c -> a", id="cycle-webhook",
        ),
        # tasks is a list-map keyed by id: the API server names the duplicate entry.
        pytest.param(
            [_cmd("a"), _cmd("a")], {}, 'spec.tasks[1]: Duplicate value: map[string]interface {}{"id":"a"}',
            id="duplicate-id-schema",
        ),
        pytest.param(
            [_cmd("a", upstream=["missing"])], {},
            "every upstream id must name a task of this DAG", id="unknown-upstream-cel",
        ),
        pytest.param(
            [_cmd("a"), _cmd("b", xcomInputs=[{"env": "X", "task": "a"}])], {},
            "task 'b' (spec.tasks[1].xcomInputs[0].task): 'a' is not an upstream ancestor",
            id="xcom-input-not-ancestor",
        ),
        pytest.param([_cmd("a")], {"schedule": "every day"}, "spec.schedule", id="bad-schedule"),
    ],
)
def test_bad_manifests_are_refused_at_apply(
    kubeconfig: str,
    controller: ControllerProcess,
    e2e_namespace: str,
    tasks: list[dict[str, object]],
    extra: dict[str, object],
    expected: str,
) -> None:
    controller.ensure_webhook()
    manifest = dag_manifest("bad", tasks, **extra)
    message = _apply_refused(kubeconfig, e2e_namespace, manifest)
    assert expected in message, message
    assert runs_of(kubeconfig, e2e_namespace, "bad") == []
