"""The CRDs' schemas and CEL rules as the real API server applies them (server-side dry runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import KubectlError, kubectl

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def crds(kubeconfig: str) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"), kubeconfig=kubeconfig)
    for plural in ("dags", "dagruns", "taskruns", "dagversions"):
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.kdag.dev", kubeconfig=kubeconfig)


def dag(*tasks: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": "rules"},
        "spec": {"tasks": list(tasks), **spec},
    }


def cmd(task_id: str, *upstream: str, **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "command": ["true"], "upstream": list(upstream), **fields}


def refusal(kubeconfig: str, namespace: str, manifest: dict[str, Any]) -> str:
    """The API server's refusal of a create (dry run), or empty when it would accept it."""
    try:
        kubectl(
            "create",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            "-",
            kubeconfig=kubeconfig,
            input=yaml.safe_dump(manifest),
        )
    except KubectlError as error:
        return error.stderr
    return ""


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (dag(cmd("a"), cmd("a")), 'spec.tasks[1]: Duplicate value: map[string]interface {}{"id":"a"}'),
        (dag(cmd("a"), cmd("b", "a", "a")), 'spec.tasks[1].upstream[1]: Duplicate value: "a"'),
        (
            dag(cmd("a", env=[{"name": "X", "value": "1"}, {"name": "X", "value": "2"}])),
            "spec.tasks[0].env[1]: Duplicate value",
        ),
        # CEL runs before any webhook: its messages name the task and the value. (Unknown or self upstream
        # ids are the webhook's: a rule comparing every task with every other is O(tasks^2) in CEL.)
        (dag({"id": "a"}), "task a needs exactly one of python or command"),
        (
            dag({"id": "a", "command": ["x"], "python": {"source": "s", "callable": "f"}}),
            "task a needs exactly one of python or command",
        ),
        (dag({"id": "a", "python": {"source": "s"}}), "python needs either source and callable"),
        (
            dag({"id": "a", "python": {"fromDagFile": True}}),
            "task a: python.fromDagFile needs spec.pythonFile",
        ),
        (dag(cmd("bad id")), "spec.tasks[0].id"),
        (dag(cmd("x" * 64)), "spec.tasks[0].id: Too long"),
        (
            dag(cmd("a"), cmd("b", "a", xcomInputs=[{"env": "KDAG_X", "task": "a"}])),
            "xcomInputs[].env KDAG_X may not start with KDAG_",
        ),
        (dag(cmd("a", triggerRule="sometimes")), "spec.tasks[0].triggerRule: Unsupported value"),
        (dag(cmd("a", setup=True, teardown=True)), "task a may be a setup or a teardown, not both"),
        (dag(cmd("a", failRunOnFailure=True)), "task a: failRunOnFailure is for teardown tasks only"),
        (
            dag(cmd("a", setup=True, failRunOnFailure=True)),
            "task a: failRunOnFailure is for teardown tasks only",
        ),
        (dag(cmd("a", retries=-1)), "spec.tasks[0].retries"),
        # Task ids are label values of their TaskRuns and pods.
        (dag(cmd("..")), 'spec.tasks[0].id: Invalid value: ".."'),
        (dag(cmd("_x")), 'spec.tasks[0].id: Invalid value: "_x"'),
        (dag(cmd("x.")), 'spec.tasks[0].id: Invalid value: "x."'),
        (
            dag(cmd("a", env=[{"name": "KDAG_TASK_ID", "value": "x"}])),
            "env name KDAG_TASK_ID may not start with KDAG_",
        ),
        (
            dag(cmd("a", env=[{"name": "MY VAR", "value": "x"}])),
            'spec.tasks[0].env[0].name: Invalid value: "MY VAR"',
        ),
        (dag(cmd("a"), dagId="my dag"), 'spec.dagId: Invalid value: "my dag"'),
        (
            dag(cmd("a"), schedule="@daily", timetable={"cron": "@daily"}),
            "give schedule or timetable, not both (schedule is @daily)",
        ),
        (dag(), "spec.tasks"),
        (
            {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "metadata": {"name": "r"}, "spec": {}},
            "spec.dagRef: Required value",
        ),
    ],
)
def test_api_server_refuses_bad_manifests_naming_the_rule(
    kubeconfig: str, namespace: str, crds: None, manifest: dict[str, Any], message: str
) -> None:
    assert message in refusal(kubeconfig, namespace, manifest)


def test_api_server_accepts_every_trigger_rule_and_setup_teardown_tasks(
    kubeconfig: str, namespace: str, crds: None
) -> None:
    rules = [
        "all_success",
        "all_failed",
        "all_done",
        "all_done_min_one_success",
        "all_done_setup_success",
        "all_skipped",
        "one_success",
        "one_failed",
        "one_done",
        "none_failed",
        "none_failed_min_one_success",
        "none_skipped",
        "always",
    ]
    tasks = [cmd("a"), *(cmd(f"r{i}", "a", triggerRule=rule) for i, rule in enumerate(rules))]
    assert refusal(kubeconfig, namespace, dag(*tasks, defaults={"triggerRule": "always"})) == ""
    cluster = dag(
        cmd("create", setup=True, teardown=False),
        cmd("query", "create"),
        cmd("delete", "create", "query", teardown=True, failRunOnFailure=True),
        cmd("after", "delete", setup=False, failRunOnFailure=False),
    )
    assert refusal(kubeconfig, namespace, cluster) == ""


def test_api_server_accepts_a_dag_of_five_thousand_tasks_and_a_join_after_all(
    kubeconfig: str, namespace: str, crds: None
) -> None:
    """The issue's size: 5,000 tasks, one with 4,999 upstream tasks, within the CRD's bounds and CEL's
    budget (the API server checked the rules' estimated cost when the CRDs were applied)."""
    workers = [cmd(f"w{i}") for i in range(4999)]
    big = dag(*workers, cmd("join", *(w["id"] for w in workers)))
    assert refusal(kubeconfig, namespace, big) == ""


def test_api_server_keeps_any_json_in_conf(kubeconfig: str, namespace: str, crds: None) -> None:
    run = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": "r"},
        "spec": {
            "dagRef": {"name": "etl"},
            "conf": {"any": ["json", 1, {"x": None}]},
            "logicalDate": "2026-01-01T00:00:00Z",
        },
    }
    assert refusal(kubeconfig, namespace, run) == ""
    created = kubectl(
        "create", "-n", namespace, "-f", "-", "-o", "yaml", kubeconfig=kubeconfig, input=yaml.safe_dump(run)
    )
    assert yaml.safe_load(created)["spec"]["conf"] == {"any": ["json", 1, {"x": None}]}


def test_run_specs_cannot_change(kubeconfig: str, namespace: str, crds: None) -> None:
    run = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": "fixed"},
        "spec": {"dagRef": {"name": "etl"}, "params": {"n": 1}},
    }
    kubectl("create", "-n", namespace, "-f", "-", kubeconfig=kubeconfig, input=yaml.safe_dump(run))
    with pytest.raises(KubectlError, match="a DAGRun's spec cannot change; create another run"):
        kubectl(
            "patch",
            "dagrun",
            "fixed",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"spec":{"params":{"n":2}}}',
            kubeconfig=kubeconfig,
        )
    # Labels and annotations stay editable.
    kubectl("label", "dagrun", "fixed", "-n", namespace, "team=a", kubeconfig=kubeconfig)


def test_dag_versions_cannot_change_and_count_their_tasks(
    kubeconfig: str, namespace: str, crds: None
) -> None:
    """A DAGVersion is written once (by the controller): its spec never changes, and its taskCount (a
    printer column) is the number of its tasks."""
    version = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGVersion",
        "metadata": {"name": "etl-0123456789abcdef"},
        "spec": {"dagRef": {"name": "etl"}, "taskCount": 2, "dag": {"tasks": [cmd("a"), cmd("b", "a")]}},
    }
    miscounted = {**version, "spec": {**version["spec"], "taskCount": 3}}
    assert "taskCount must be the number of tasks of dag" in refusal(kubeconfig, namespace, miscounted)
    kubectl("create", "-n", namespace, "-f", "-", kubeconfig=kubeconfig, input=yaml.safe_dump(version))
    with pytest.raises(KubectlError, match="a DAGVersion cannot change; a changed DAG gets a new version"):
        kubectl(
            "patch",
            "dagversion",
            "etl-0123456789abcdef",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"spec":{"dag":{"tasks":[{"id":"a","command":["false"]}]},"taskCount":1}}',
            kubeconfig=kubeconfig,
        )
    columns = kubectl("get", "dagversion", "etl-0123456789abcdef", "-n", namespace, kubeconfig=kubeconfig)
    assert columns.split()[:6] == ["NAME", "DAG", "TASKS", "AGE", "etl-0123456789abcdef", "etl"]
