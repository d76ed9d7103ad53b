"""Who may write XComs (the 403), and manifests refused at apply time with a message naming the fault."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from controller_support import ControllerProcess, kubectl
from e2e_helpers import apply, dag_manifest, get, python_task, runs_of, wait_for_run, wait_until, xcoms

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
            # The webhook's (whole-graph checks left CEL so a DAG may hold 10,000 tasks).
            "task 'a' (spec.tasks[0].upstream[0]): 'missing' is not a task of this DAG",
            id="unknown-upstream",
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


# --- everything that would fail later is refused at apply, naming task, field and value ----------------


@pytest.mark.parametrize(
    ("name", "tasks", "extra", "expected"),
    [
        pytest.param(
            "quota", [_cmd("a", resources={"limits": {"memory": "lots"}})], {},
            "task 'a' (spec.tasks[0].resources.limits.memory): 'lots' is not a Kubernetes quantity",
            id="quantity-webhook",
        ),
        pytest.param(
            "envs", [_cmd("a", env=[{"name": "REGION", "value": "eu"}])],
            {"defaults": {"env": [{"name": "REGION", "value": "us"}]}},
            "task 'a' (spec.tasks[0].env[0].name): 'REGION' is also set in spec.defaults.env",
            id="env-after-defaults-webhook",
        ),
        pytest.param("ids", [_cmd("_x")], {}, 'spec.tasks[0].id: Invalid value: "_x"', id="label-id-schema"),
        pytest.param(
            "dagid", [_cmd("a")], {"dagId": "my dag"}, 'spec.dagId: Invalid value: "my dag"',
            id="dag-id-schema",
        ),
        pytest.param(
            "l" * 159, [_cmd("a")], {}, "a DAG name may have at most 158", id="long-name-webhook"
        ),
    ],
)
def test_what_would_fail_later_is_refused_at_apply(
    kubeconfig: str,
    controller: ControllerProcess,
    e2e_namespace: str,
    name: str,
    tasks: list[dict[str, object]],
    extra: dict[str, object],
    expected: str,
) -> None:
    controller.ensure_webhook()
    message = _apply_refused(kubeconfig, e2e_namespace, dag_manifest(name, tasks, **extra))
    assert expected in message, message


def test_a_runs_params_are_checked_at_apply_unless_its_dag_is_not_there_yet(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    controller.ensure_webhook()
    schemas = {"count": {"type": "integer", "minimum": 1}}
    typed = dag_manifest("typed", [_cmd("a")], paramSchemas=schemas, params={"count": 1})
    apply(kubeconfig, e2e_namespace, typed)

    def run(name: str, dag: str, **params: object) -> dict[str, object]:
        return {
            "apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "metadata": {"name": name},
            "spec": {"dagRef": {"name": dag}, "params": params},
        }

    message = _apply_refused(kubeconfig, e2e_namespace, run("bad", "typed", count=0))
    assert "spec.params.count: 0 is less than the minimum of 1 (rule 'minimum')" in message, message
    # A run applied with (or before) its DAG is admitted: the controller holds it until the DAG exists.
    apply(kubeconfig, e2e_namespace, run("early", "not-yet", count=0))


def test_a_dag_can_be_edited_and_deleted_while_the_controller_is_down(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    """No finalizer waits for the controller, and the webhook (its configuration left behind by a killed
    controller, failurePolicy Fail) judges only spec changes: labels, annotations and deletes go through."""
    controller.ensure_webhook()
    apply(kubeconfig, e2e_namespace, dag_manifest("while-down", [_cmd("a")], schedule="@hourly"))
    wait_until(
        lambda: (get(kubeconfig, e2e_namespace, "dag", "while-down").get("status") or {}).get("taskCount"),
        "the controller to see the DAG",
    )
    assert not get(kubeconfig, e2e_namespace, "dag", "while-down")["metadata"].get("finalizers")
    controller.kill()  # SIGKILL: the webhook configuration stays, pointing at nobody
    try:
        kubectl(kubeconfig, "label", "dag", "while-down", "-n", e2e_namespace, "team=a")
        kubectl(kubeconfig, "annotate", "dag", "while-down", "-n", e2e_namespace, "note=down")
        edited = dag_manifest("while-down", [_cmd("b")], schedule="@hourly")
        assert "dags.kdag.dev" in _apply_refused(kubeconfig, e2e_namespace, edited)  # a spec change waits
        kubectl(kubeconfig, "delete", "dag", "while-down", "-n", e2e_namespace, "--timeout=30s")
        gone = kubectl(kubeconfig, "get", "dag", "while-down", "-n", e2e_namespace, "--ignore-not-found")
        assert gone.strip() == ""
    finally:
        controller.start()


def test_deleting_a_dag_deletes_the_runs_kdag_trigger_started(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    apply(kubeconfig, e2e_namespace, dag_manifest("owned", [_cmd("a")]))
    kdag = str(Path(sys.executable).parent / "kdag")
    done = subprocess.run(
        [kdag, "trigger", "owned", "-n", e2e_namespace, "--kubeconfig", kubeconfig, "--wait"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    run = get(kubeconfig, e2e_namespace, "dagrun", done.stdout.strip().splitlines()[0])
    dag_uid = get(kubeconfig, e2e_namespace, "dag", "owned")["metadata"]["uid"]
    assert [o["uid"] for o in run["metadata"]["ownerReferences"]] == [dag_uid]
    assert run["metadata"]["labels"]["kdag.dev/run-type"] == "manual"
    kubectl(kubeconfig, "delete", "dag", "owned", "-n", e2e_namespace)
    wait_until(lambda: runs_of(kubeconfig, e2e_namespace, "owned") == [], "the garbage collector", timeout=60)
