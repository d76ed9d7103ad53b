"""The XCom write guard on a real cluster: a task token writes the XCom ConfigMap made for its own pod and
nothing else: not an unrelated ConfigMap named like its run and task, not one planted before its run, not
another run's, and the same holds for a renamed task ServiceAccount with the guard made for it.
tests/controller/test_xcom_guard_rules.py evaluates the same rules without a cluster.

The CRDs are applied here too (server-side dry run first), so the API server's CEL cost check of every
`x-kubernetes-validations` rule is exercised against the generated files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kdag import names, policy
from kdag.api.models import DAGSpec
from kdag.render import RunInfo, render_task_pod
from kdag.settings import ControllerSettings
from kube_helpers import (
    IMAGE_PULL_POLICY,
    RUNNER_IMAGE,
    KubectlError,
    create_namespace,
    delete_namespace,
    kubectl,
    kubectl_json,
    wait_for,
)

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
RUN = "lesson-0a1b2c3d"
RUN_UID = "8f14e45f-ceea-467f-a0e6-0123456789ab"
"""The uid of a run that need not exist, for writes that are refused anyway."""
RENAMED = "renamed-task"

# Runs in the task pod: one server-side apply per ConfigMap, exactly as the runner writes XComs.
APPLY_SCRIPT = """
import json, os, ssl, sys, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
base = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
token = open(sa + "/token").read()
namespace = open(sa + "/namespace").read()
context = ssl.create_default_context(cafile=sa + "/ca.crt")
owner = {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "name": os.environ["KDAG_RUN_ID"],
         "uid": os.environ["KDAG_RUN_UID"]}
def apply(name):
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "ownerReferences": [owner]},
            "data": {"return_value": "hello world"}}
    request = urllib.request.Request(
        "%s/api/v1/namespaces/%s/configmaps/%s?fieldManager=kdag-runner&force=true" % (base, namespace, name),
        data=json.dumps(body).encode(), method="PATCH",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/apply-patch+yaml"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as response:
            return [response.status, ""]
    except urllib.error.HTTPError as error:
        return [error.code, json.loads(error.read().decode()).get("message", "")]
print(json.dumps({"own": apply(os.environ["KDAG_XCOM_CONFIGMAP"]), "other": apply(sys.argv[1])}))
"""


def apply_objects(kubeconfig: str, objects: list[dict[str, Any]], *extra: str) -> str:
    return kubectl("apply", "-f", "-", *extra, kubeconfig=kubeconfig, input=yaml.safe_dump_all(objects))


def configmap(namespace: str, name: str, owner_uid: str | None = None, run: str = RUN) -> dict[str, Any]:
    """A ConfigMap as the runner applies it: owned by the DAGRun `run` of uid `owner_uid` (None: no owner)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner_uid is not None:
        owner = {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "name": run, "uid": owner_uid}
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {"return_value": "hello world"},
    }


def make_dagrun(kubeconfig: str, namespace: str, name: str) -> str:
    """A DAGRun (of a DAG that need not exist) to own XCom ConfigMaps, so the garbage collector keeps them;
    its uid."""
    run = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"dagRef": {"name": "absent"}},
    }
    kubectl("create", "-f", "-", kubeconfig=kubeconfig, input=yaml.safe_dump(run))
    return kubectl(
        "get", "dagrun", name, "-n", namespace, "-o", "jsonpath={.metadata.uid}", kubeconfig=kubeconfig
    ).strip()


def token_kubeconfig(admin: str, token: str, path: Path) -> str:
    """A kubeconfig for the same cluster that authenticates with `token` only."""
    view = kubectl_json("config", "view", "--raw", "--minify", "--flatten", kubeconfig=admin)
    cluster = view["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "task", "user": {"token": token}}],
        "contexts": [{"name": "task", "context": {"cluster": cluster["name"], "user": "task"}}],
        "current-context": "task",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def holder_pod(namespace: str, name: str, account: str = names.TASK_SERVICE_ACCOUNT) -> dict[str, Any]:
    """A pod that only exists so a token can be bound to it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serviceAccountName": account,
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
            "containers": [
                {
                    "name": "hold",
                    "image": RUNNER_IMAGE,
                    "imagePullPolicy": IMAGE_PULL_POLICY,
                    "command": ["python3", "-c", "import time; time.sleep(3600)"],
                }
            ],
        },
    }


def bound_token(kubeconfig: str, namespace: str, pod: str, account: str = names.TASK_SERVICE_ACCOUNT) -> str:
    """A token of the task ServiceAccount bound to `pod`, as the kubelet projects it into that pod."""
    uid = kubectl("get", "pod", pod, "-n", namespace, "-o", "jsonpath={.metadata.uid}", kubeconfig=kubeconfig)
    return kubectl(
        "create",
        "token",
        account,
        "-n",
        namespace,
        "--bound-object-kind=Pod",
        f"--bound-object-name={pod}",
        f"--bound-object-uid={uid}",
        kubeconfig=kubeconfig,
    ).strip()


def server_side_apply(
    kubeconfig: str, namespace: str, name: str, owner_uid: str | None = None, run: str = RUN
) -> str:
    """Apply ConfigMap `name` as the runner does, owned by DAGRun `run` of uid `owner_uid` (the garbage
    collector deletes it at once when no DAGRun of that name and uid exists)."""
    return kubectl(
        "apply",
        "--server-side",
        "--field-manager=kdag-runner",
        "--force-conflicts",
        "-f",
        "-",
        kubeconfig=kubeconfig,
        input=yaml.safe_dump(configmap(namespace, name, owner_uid, run)),
    )


def denied(kubeconfig: str, namespace: str, name: str, owner_uid: str | None = None) -> str:
    """The refusal message of a write, or empty when it was allowed."""
    try:
        server_side_apply(kubeconfig, namespace, name, owner_uid)
    except KubectlError as error:
        return error.stderr
    return ""


def task_config(
    kubeconfig: str,
    namespace: str,
    pod: str,
    path: Path,
    account: str = names.TASK_SERVICE_ACCOUNT,
) -> str:
    """A kubeconfig holding the token a task pod named `pod` gets (the pod is made to bind it to)."""
    apply_objects(kubeconfig, [holder_pod(namespace, pod, account)])
    return token_kubeconfig(kubeconfig, bound_token(kubeconfig, namespace, pod, account), path)


def data_of(kubeconfig: str, namespace: str, name: str) -> dict[str, str]:
    stored: dict[str, str] = kubectl_json("get", "configmap", name, "-n", namespace, kubeconfig=kubeconfig)[
        "data"
    ]
    return stored


@pytest.fixture(scope="module")
def guard(kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The guard applied and enforced (probed with a bound token in a scratch namespace), and the task
    ClusterRole that policy.task_rbac() binds."""
    kubectl("apply", "-f", str(ROOT / "deploy" / "xcom-guard.yaml"), kubeconfig=kubeconfig)
    kubectl("apply", "-f", str(ROOT / "deploy" / "task-clusterrole.yaml"), kubeconfig=kubeconfig)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"), kubeconfig=kubeconfig)
    for plural in ("dags", "dagruns", "taskruns"):
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.kdag.dev", kubeconfig=kubeconfig)
    scratch = create_namespace(kubeconfig, "kdag-guard-probe")
    try:
        apply_objects(kubeconfig, policy.task_rbac(scratch))
        apply_objects(kubeconfig, [holder_pod(scratch, "probe-1")])
        token = bound_token(kubeconfig, scratch, "probe-1")
        config = token_kubeconfig(kubeconfig, token, tmp_path_factory.mktemp("probe") / "kubeconfig")
        # `probe-1` writing `probe`: allowed by the guard before pods carried their run's uid (a policy an
        # earlier session applied may still be cached), refused by this one.
        wait_for(lambda: denied(config, scratch, "probe"), timeout=60, what="the XCom guard to deny")
        yield
    finally:
        delete_namespace(kubeconfig, scratch)


def test_crds_pass_the_api_servers_schema_and_cel_cost_checks(kubeconfig: str) -> None:
    kubectl("apply", "--dry-run=server", "-f", str(ROOT / "crds"), kubeconfig=kubeconfig)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"), kubeconfig=kubeconfig)
    for plural in ("dags", "dagruns", "taskruns"):
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.kdag.dev", kubeconfig=kubeconfig)


def test_bound_token_writes_only_its_own_configmap(
    kubeconfig: str, namespace: str, guard: None, tmp_path: Path
) -> None:
    apply_objects(kubeconfig, policy.task_rbac(namespace))
    uid = make_dagrun(kubeconfig, namespace, RUN)
    pod = names.pod_name(RUN, "push_task", 1, run_uid=uid)
    config = task_config(kubeconfig, namespace, pod, tmp_path / "kubeconfig")

    own = names.xcom_configmap_name(RUN, "push_task")
    server_side_apply(config, namespace, own, uid)
    server_side_apply(config, namespace, own, uid)  # a retry replaces its own XComs
    assert data_of(kubeconfig, namespace, own) == {"return_value": "hello world"}
    # Its own name, but not owned by its run (exactly): refused.
    assert "only with exactly one ownerReference, to its DAGRun" in denied(config, namespace, own)

    other = names.xcom_configmap_name(RUN, "pull_task")
    message = denied(config, namespace, other, uid)
    assert "Forbidden" in message
    assert f"pod {pod} may not write ConfigMap {other}" in message
    # A name that only starts like the pod's ConfigMap is refused too.
    assert "Forbidden" in denied(config, namespace, f"{own}-1", uid)
    # The admin is not a task: the guard leaves other writers alone.
    server_side_apply(kubeconfig, namespace, other)


def test_a_task_cannot_write_an_unrelated_configmap_named_like_its_run_and_task(
    kubeconfig: str, namespace: str, guard: None, tmp_path: Path
) -> None:
    """Run `app` with task `config` ran as pod `app-config-1`, which the guard let write ConfigMap
    `app-config`: anyone who may create DAGRuns could have a task overwrite an existing ConfigMap."""
    apply_objects(kubeconfig, policy.task_rbac(namespace))
    server_side_apply(kubeconfig, namespace, "app-config")
    uid = make_dagrun(kubeconfig, namespace, "app")
    pod = names.pod_name("app", "config", 1, run_uid=uid)
    config = task_config(kubeconfig, namespace, pod, tmp_path / "kubeconfig")
    message = denied(config, namespace, "app-config", uid)
    assert f"pod {pod} may not write ConfigMap app-config" in message
    assert data_of(kubeconfig, namespace, "app-config") == {"return_value": "hello world"}


def test_a_configmap_planted_before_the_run_is_refused_to_the_runs_task(
    kubeconfig: str, namespace: str, guard: None, tmp_path: Path
) -> None:
    """A ConfigMap of exactly the name the run's task will write, made before the run: the task's
    server-side apply would have kept the keys of another field manager. It is refused instead, whatever
    the task claims; a ConfigMap left from an earlier run of the same name is refused the same way."""
    apply_objects(kubeconfig, policy.task_rbac(namespace))
    own = names.xcom_configmap_name("later", "config")
    planted = {**configmap(namespace, own), "data": {"return_value": "planted"}}
    kubectl("apply", "--server-side", "--field-manager=planter", "-f", "-", kubeconfig=kubeconfig,
            input=yaml.safe_dump(planted))  # fmt: skip
    uid = make_dagrun(kubeconfig, namespace, "later")
    pod = names.pod_name("later", "config", 1, run_uid=uid)
    config = task_config(kubeconfig, namespace, pod, tmp_path / "kubeconfig")
    message = denied(config, namespace, own, uid)
    assert f"ConfigMap {own} was not made for the run of pod {pod}" in message
    assert data_of(kubeconfig, namespace, own) == {"return_value": "planted"}


def test_a_task_cannot_write_another_runs_configmap(
    kubeconfig: str, namespace: str, guard: None, tmp_path: Path
) -> None:
    """Run `a` with task `b-c` and run `a-b` with task `c` once shared the ConfigMap `a-b-c`; each now has
    its own, and neither pod may write the other's, before it exists or after."""
    apply_objects(kubeconfig, policy.task_rbac(namespace))
    first, second = make_dagrun(kubeconfig, namespace, "a"), make_dagrun(kubeconfig, namespace, "a-b")
    first_pod = names.pod_name("a", "b-c", 1, run_uid=first)
    second_pod = names.pod_name("a-b", "c", 1, run_uid=second)
    first_config = task_config(kubeconfig, namespace, first_pod, tmp_path / "first")
    second_config = task_config(kubeconfig, namespace, second_pod, tmp_path / "second")
    first_cm, second_cm = names.xcom_configmap_name("a", "b-c"), names.xcom_configmap_name("a-b", "c")
    assert first_cm != second_cm
    assert f"pod {first_pod} may not write ConfigMap {second_cm}" in denied(
        first_config, namespace, second_cm, first
    )
    server_side_apply(second_config, namespace, second_cm, second)
    assert "Forbidden" in denied(first_config, namespace, second_cm, second)  # claiming the other's owner
    server_side_apply(first_config, namespace, first_cm, first)
    assert "Forbidden" in denied(second_config, namespace, first_cm, second)


def test_bound_token_writes_nothing_in_another_namespace(
    kubeconfig: str, namespace: str, guard: None, tmp_path: Path
) -> None:
    """The task ClusterRole is bound per namespace: a task's token has no right at all in another one, even
    for its own ConfigMap name and where that namespace's own tasks may write."""
    apply_objects(kubeconfig, policy.task_rbac(namespace))
    other = create_namespace(kubeconfig, "kdag-guard-other")
    try:
        apply_objects(kubeconfig, policy.task_rbac(other))
        pod = names.pod_name(RUN, "push_task", 1, run_uid=RUN_UID)
        config = task_config(kubeconfig, namespace, pod, tmp_path / "kubeconfig")
        message = denied(config, other, names.xcom_configmap_name(RUN, "push_task"), RUN_UID)
        assert "forbidden" in message.lower(), message
        assert f"system:serviceaccount:{namespace}:kdag-task" in message
    finally:
        delete_namespace(kubeconfig, other)


def test_token_bound_to_no_pod_writes_nothing(
    kubeconfig: str, namespace: str, guard: None, tmp_path: Path
) -> None:
    apply_objects(kubeconfig, policy.task_rbac(namespace))
    token = kubectl(
        "create", "token", names.TASK_SERVICE_ACCOUNT, "-n", namespace, kubeconfig=kubeconfig
    ).strip()
    config = token_kubeconfig(kubeconfig, token, tmp_path / "kubeconfig")
    message = denied(config, namespace, names.xcom_configmap_name(RUN, "push_task"))
    assert "Forbidden" in message
    assert "pod (none) may not write" in message


def test_task_pod_token_gets_403_for_another_tasks_configmap(
    kubeconfig: str, namespace: str, guard: None
) -> None:
    apply_objects(kubeconfig, policy.task_rbac(namespace))
    uid = make_dagrun(kubeconfig, namespace, RUN)
    dag = DAGSpec.model_validate(
        {
            "tasks": [
                {"id": "push_task", "python": {"source": "def f(**k):\n    pass\n", "callable": "f"}},
                {"id": "pull_task", "upstream": ["push_task"], "command": ["true"]},
            ]
        }
    )
    run = RunInfo(
        namespace=namespace,
        dag_name="lesson",
        name=RUN,
        uid=uid,
        logical_date=datetime(2026, 1, 1, tzinfo=UTC),
        dag=dag,
    )
    settings = ControllerSettings(runner_image=RUNNER_IMAGE, image_pull_policy=IMAGE_PULL_POLICY)
    pod = render_task_pod(
        run=run,
        task=dag.resolved_task("push_task", RUNNER_IMAGE),
        taskrun_name=names.taskrun_name(RUN, "push_task"),
        taskrun_uid="0",
        attempt=1,
        settings=settings,
    )
    # No TaskRun exists here to own the pod; the rendered pod is otherwise unchanged.
    del pod["metadata"]["ownerReferences"]
    other = names.xcom_configmap_name(RUN, "pull_task")
    pod["spec"]["containers"][0]["command"] = ["python3", "-c", APPLY_SCRIPT, other]
    apply_objects(kubeconfig, [pod])
    name = pod["metadata"]["name"]

    def finished() -> str:
        phase = kubectl(
            "get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}", kubeconfig=kubeconfig
        )
        return phase if phase in ("Succeeded", "Failed") else ""

    try:
        phase = wait_for(finished, timeout=180, what=f"pod {name} to finish")
    except TimeoutError:
        described = kubectl("describe", "pod", name, "-n", namespace, kubeconfig=kubeconfig)
        raise AssertionError(f"pod {name} did not finish:\n{described[-3000:]}") from None
    logs = kubectl("logs", name, "-n", namespace, kubeconfig=kubeconfig)
    assert phase == "Succeeded", logs
    result = json.loads(logs.strip().splitlines()[-1])
    assert result["own"][0] in (200, 201), result
    assert result["other"][0] == 403, result
    assert f"pod {name} may not write ConfigMap {other}" in result["other"][1]


@pytest.fixture
def renamed_guard(kubeconfig: str, namespace: str, guard: None, tmp_path: Path) -> Iterator[None]:
    """A task ServiceAccount renamed to RENAMED (KDAG_TASK_SERVICE_ACCOUNT, the chart's
    taskRbac.serviceAccountName) with its RoleBinding, and the guard made for it beside the shared one, until
    it is enforced (a write of an unrelated ConfigMap refused). Removed afterwards."""
    guard_objects = policy.xcom_guard(RENAMED, name=f"{names.XCOM_GUARD}-{RENAMED}")
    apply_objects(kubeconfig, policy.task_rbac(namespace, RENAMED))
    apply_objects(kubeconfig, guard_objects)
    try:
        pod = names.pod_name("probe", "config", 1, run_uid=RUN_UID)
        config = task_config(kubeconfig, namespace, pod, tmp_path / "probe", account=RENAMED)
        server_side_apply(kubeconfig, namespace, "renamed-probe")
        wait_for(
            lambda: denied(config, namespace, "renamed-probe"), timeout=60, what="the renamed guard to deny"
        )
        yield
    finally:
        for obj in guard_objects:
            kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"], "--ignore-not-found",
                    kubeconfig=kubeconfig)  # fmt: skip


def test_a_renamed_task_service_account_is_held_to_the_same_rules(
    kubeconfig: str, namespace: str, renamed_guard: None, tmp_path: Path
) -> None:
    """The guard once named `kdag-task` whatever the account was: a renamed account's tasks could write any
    ConfigMap of their namespace. With the guard made for the name, they write their own XComs only."""
    server_side_apply(kubeconfig, namespace, "app-config")
    uid = make_dagrun(kubeconfig, namespace, "app")
    pod = names.pod_name("app", "config", 1, run_uid=uid)
    config = task_config(kubeconfig, namespace, pod, tmp_path / "kubeconfig", account=RENAMED)
    own = names.xcom_configmap_name("app", "config")
    server_side_apply(config, namespace, own, uid, run="app")
    assert data_of(kubeconfig, namespace, own) == {"return_value": "hello world"}
    assert f"pod {pod} may not write ConfigMap app-config" in denied(config, namespace, "app-config", uid)
    other = names.xcom_configmap_name("app", "other")
    assert f"pod {pod} may not write ConfigMap {other}" in denied(config, namespace, other, uid)
    assert data_of(kubeconfig, namespace, "app-config") == {"return_value": "hello world"}
