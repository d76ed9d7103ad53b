"""Params on the cluster: a DAG's `paramSchemas` checked for every run before it starts.

A DAGRun applied with kubectl (so never checked by `kdag trigger`) whose params break a schema, or lack a
required param, is Stalled with reason InvalidParams (a Warning Event too) and starts no TaskRun or pod; a
valid one runs and its task sees the merged values (DAG < task < conf < run params). The webhook refuses a
DAG whose schema is not a JSON schema, or a scheduled DAG whose param has no valid default; `kdag trigger`
refuses an invalid param before it creates anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from controller_support import ControllerProcess, kubectl
from e2e_helpers import apply, dag_manifest, get, pods, python_task, runs_of, taskruns, wait_until, xcoms

pytestmark = pytest.mark.cluster

KDAG = str(Path(sys.executable).parent / "kdag")
SOURCE = "def report(params, **_):\n    return {k: params[k] for k in sorted(params)}\n"


def params_dag() -> dict[str, Any]:
    return dag_manifest(
        "checked",
        [python_task("report", SOURCE, "report", params={"count": 5})],
        params={"count": 2, "mode": "fast"},
        paramSchemas={
            "count": {"type": "integer", "minimum": 1, "maximum": 10},
            "mode": {"enum": ["fast", "slow"]},
            "who": {"type": "string", "pattern": "^[a-z]+$", "description": "Who runs it"},
        },
    )


def dagrun(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": name, "labels": {"kdag.dev/dag": "checked"}},
        "spec": {"dagRef": {"name": "checked"}, **spec},
    }


def stalled(kubeconfig: str, namespace: str, name: str) -> dict[str, Any]:
    def condition() -> dict[str, Any] | None:
        run = get(kubeconfig, namespace, "dagrun", name)
        found = {c["type"]: c for c in run.get("status", {}).get("conditions", [])}
        return found["Stalled"] if found.get("Stalled", {}).get("status") == "True" else None

    found: dict[str, Any] = wait_until(condition, f"DAGRun {name} to be Stalled")
    return found


@pytest.mark.parametrize(
    ("spec", "field", "detail"),
    [
        pytest.param(
            {"params": {"who": "ada", "count": 0}},
            "params.count",
            "0 is less than the minimum of 1 (rule 'minimum')",
            id="below-minimum",
        ),
        pytest.param(
            {"conf": {"who": "ada", "mode": "medium"}},
            "conf.mode",
            "'medium' is not one of ['fast', 'slow'] (rule 'enum')",
            id="conf-not-in-enum",
        ),
        pytest.param(
            {"params": {"count": 3}}, "params.who", "has no value: it has no default", id="required-missing"
        ),
    ],
)
def test_an_invalid_dagrun_is_refused_or_stalled_and_starts_no_pod(
    kubeconfig: str,
    controller: ControllerProcess,
    e2e_namespace: str,
    spec: dict[str, Any],
    field: str,
    detail: str,
) -> None:
    """Made after its DAG, a run whose params break the DAG's schemas is refused at admission, naming the
    field and the value; made before its DAG (one `kubectl apply` of both), it is admitted and held Stalled
    once the DAG is there, with an Event, and never starts a pod."""
    apply(kubeconfig, e2e_namespace, dagrun("bad-run", **spec))  # no DAG yet: admitted
    apply(kubeconfig, e2e_namespace, params_dag())
    param = field.split(".", 1)[1]
    message = f"param '{param}': {detail}"
    condition = stalled(kubeconfig, e2e_namespace, "bad-run")
    assert condition["reason"] == "InvalidParams"
    assert condition["message"].startswith(message), condition["message"]
    run = get(kubeconfig, e2e_namespace, "dagrun", "bad-run")
    assert run["status"]["phase"] == "Pending"
    assert "dagVersion" not in run["status"]  # never started: it follows no DAG version
    assert taskruns(kubeconfig, e2e_namespace, "bad-run") == {}
    assert pods(kubeconfig, e2e_namespace, "bad-run") == []
    events = json.loads(
        kubectl(
            kubeconfig,
            "get",
            "events",
            "-n",
            e2e_namespace,
            "--field-selector",
            "involvedObject.name=bad-run",
            "-o",
            "json",
        )
    )["items"]
    assert any(e["reason"] == "InvalidParams" and message in e["message"] for e in events), events

    with pytest.raises(AssertionError) as refused:
        apply(kubeconfig, e2e_namespace, dagrun("refused-run", **spec))
    assert f"spec.{field}: {detail}" in str(refused.value), refused.value
    assert taskruns(kubeconfig, e2e_namespace, "refused-run") == {}


def test_a_valid_dagrun_runs_with_the_merged_values(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    apply(kubeconfig, e2e_namespace, params_dag())
    apply(kubeconfig, e2e_namespace, dagrun("good-run", params={"who": "ada"}, conf={"mode": "slow", "x": 1}))

    def finished() -> dict[str, Any] | None:
        run = get(kubeconfig, e2e_namespace, "dagrun", "good-run")
        return run if run.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    run = wait_until(finished, "the valid run to finish", timeout=240)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    value = json.loads(xcoms(kubeconfig, e2e_namespace, "good-run", "report")["return_value"])
    # the task's plain `count` over the DAG's, conf keys over defaults (and as params), run params last
    assert value == {"count": 5, "mode": "slow", "who": "ada", "x": 1}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            {"paramSchemas": {"n": {"type": "integr"}}},
            "spec.paramSchemas.n: not a valid JSON schema at type",
            id="not-a-json-schema",
        ),
        pytest.param(
            {"schedule": "@daily", "paramSchemas": {"who": {"type": "string"}}},
            "spec.params.who: the DAG runs on a schedule, so every param needs a default",
            id="scheduled-without-default",
        ),
    ],
)
def test_the_webhook_refuses_bad_param_declarations(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, extra: dict[str, Any], expected: str
) -> None:
    controller.ensure_webhook()
    manifest = dag_manifest("bad-params", [python_task("t", SOURCE, "report")], **extra)
    result = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "apply", "-n", e2e_namespace, "-f", "-"],
        input=json.dumps(manifest),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert expected in result.stderr, result.stderr
    assert runs_of(kubeconfig, e2e_namespace, "bad-params") == []


def test_kdag_trigger_refuses_an_invalid_param_and_creates_no_run(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    apply(kubeconfig, e2e_namespace, params_dag())
    refused = subprocess.run(
        [
            KDAG,
            "trigger",
            "checked",
            "-p",
            "who=ada",
            "-p",
            "count=11",
            "-n",
            e2e_namespace,
            "--kubeconfig",
            kubeconfig,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: DAG 'checked': param 'count': 11 is greater than the maximum of 10 (rule 'maximum')"
    )
    assert runs_of(kubeconfig, e2e_namespace, "checked") == []
    done = subprocess.run(
        [
            KDAG,
            "trigger",
            "checked",
            "-p",
            "who=ada",
            "--wait",
            "-n",
            e2e_namespace,
            "--kubeconfig",
            kubeconfig,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (run,) = runs_of(kubeconfig, e2e_namespace, "checked")
    assert run["spec"]["params"] == {"who": "ada"}
