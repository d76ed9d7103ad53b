"""What a task cannot do to the containers beside it: plant code in the XCom collector, which holds the pod's
token; and XComs too large for an environment variable, which still reach a Python task and fail a command's
attempt with a message naming them. What an upstream task, a run's params or its conf hand a template is
data in task pods too, never a template; and a trigger's shell payload stays inert where the command
quotes it (the DAGs of `tests/local/security_dags/`, as `tests/local/test_local_template_injection.py`)."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from controller_support import REPO, ControllerProcess, kubectl
from e2e_helpers import (
    FINISHED,
    KDAG,
    apply,
    apply_dags,
    dag_manifest,
    get,
    pods,
    python_task,
    taskruns,
    wait_for_run,
    wait_until,
    xcoms,
)
from kdag import manifests

pytestmark = pytest.mark.cluster

MARKER = "KDAG-PLANTED-CODE-RAN"
TASK_LABEL = "kdag.dev/task"
PULLS = "def f(ti, **_):\n    return ti.xcom_pull(task_ids='plant')\n"
# What the collector imports only once the command has exited (measured: `kdag_runner.kube` and what
# `ssl` and `http.client` bring, and `encodings.idna` for the API server's address), and the runner itself,
# which a restarted collector would import again.
PLANTED_MODULES = (
    "ssl", "socket", "base64", "binascii", "calendar", "locale", "quopri", "select", "selectors", "string",
    "stringprep", "struct", "array", "unicodedata",
)
PLANTED_PACKAGES = ("http", "email", "kdag_runner")
PLANT = f"""\
set -e
cat > /tmp/planted.py <<'EOF'
import sys
sys.stderr.write("{MARKER}\\n")
raise SystemExit(97)
EOF
for dir in /tmp "$KDAG_XCOM_DIR"; do
  for name in {" ".join(PLANTED_MODULES)}; do cp /tmp/planted.py "$dir/$name.py"; done
  for name in {" ".join(PLANTED_PACKAGES)}; do
    mkdir -p "$dir/$name"; cp /tmp/planted.py "$dir/$name/__init__.py"
  done
done
ls /tmp/*.py | wc -l > "$KDAG_XCOM_DIR/planted.json"
echo '{{"collected": true}}' > "$KDAG_XCOM_DIR/return.json"
"""


def container_log(kubeconfig: str, namespace: str, pod: str, container: str, tries: int = 5) -> str:
    """One container's log; retried, since the API server reaches the kubelet for it."""
    for _ in range(tries - 1):
        try:
            return kubectl(kubeconfig, "logs", "-n", namespace, pod, "-c", container)
        except AssertionError:
            time.sleep(2)
    return kubectl(kubeconfig, "logs", "-n", namespace, pod, "-c", container)


def pods_of(kubeconfig: str, namespace: str, run: str, task_id: str) -> list[dict[str, Any]]:
    return [p for p in pods(kubeconfig, namespace, run) if p["metadata"]["labels"][TASK_LABEL] == task_id]


def test_code_a_command_plants_never_runs_in_the_collector_holding_the_token(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    manifest = dag_manifest(
        "planted",
        [
            {"id": "plant", "image": "busybox:1.35", "command": ["sh", "-c", PLANT]},
            python_task("after", PULLS, "f", upstream=["plant"]),
        ],
        schedule="@once",
    )
    apply(kubeconfig, e2e_namespace, manifest)
    run = wait_for_run(kubeconfig, e2e_namespace, "planted")
    name = run["metadata"]["name"]
    tasks = taskruns(kubeconfig, e2e_namespace, name)
    assert tasks["plant"]["status"]["phase"] == "Succeeded", tasks["plant"]["status"]
    assert run["status"]["phase"] == "Succeeded"
    stored = xcoms(kubeconfig, e2e_namespace, name, "plant")
    # The command did write every module (and planted.py) in its /tmp: the test is not vacuous.
    assert stored["planted"] == str(len(PLANTED_MODULES) + 1)
    assert stored["return_value"] == '{"collected":true}'
    assert xcoms(kubeconfig, e2e_namespace, name, "after")["return_value"] == '{"collected":true}'
    (pod,) = pods_of(kubeconfig, e2e_namespace, name, "plant")
    collector = container_log(kubeconfig, e2e_namespace, pod["metadata"]["name"], "xcom")
    assert MARKER not in collector
    assert "kdag: pushed XComs" in collector
    (status,) = [s for s in pod["status"]["initContainerStatuses"] if s["name"] == "xcom"]
    assert status["restartCount"] == 0 and status["state"]["terminated"]["exitCode"] == 0


def _task_container_state(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    state: dict[str, Any] = next((s.get("state") or {} for s in statuses if s["name"] == "task"), {})
    return state


def test_an_xcom_input_too_large_for_the_environment_reaches_python_and_fails_a_command_naming_it(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    # 1 MB fits a ConfigMap, but Linux starts no program with a 128 KiB environment string.
    manifest = dag_manifest(
        "big-input",
        [
            python_task("big", "def f(**_):\n    return 'x' * 1000000\n", "f"),
            python_task(
                "python",
                "import os\ndef f(**_):\n    return len(os.environ['BIG'])\n",
                "f",
                upstream=["big"],
                xcomInputs=[{"env": "BIG", "task": "big"}],
            ),
            {
                "id": "command",
                "image": "busybox:1.35",
                "command": ["sh", "-c", 'echo "${#BIG}" > "$KDAG_XCOM_DIR/return.json"'],
                "upstream": ["big"],
                "retries": 2,
                "retryDelaySeconds": 1,
                "xcomInputs": [{"env": "BIG", "task": "big"}],
            },
        ],
        schedule="@once",
    )
    apply(kubeconfig, e2e_namespace, manifest)
    run = wait_for_run(kubeconfig, e2e_namespace, "big-input")
    name = run["metadata"]["name"]
    tasks = taskruns(kubeconfig, e2e_namespace, name)
    assert {t: tr["status"]["phase"] for t, tr in tasks.items()} == {
        "big": "Succeeded",
        "python": "Succeeded",
        "command": "Failed",
    }
    assert xcoms(kubeconfig, e2e_namespace, name, "python")["return_value"] == "1000000"
    command = tasks["command"]["status"]
    assert command["attempts"] == 1  # the value will not shrink: never retried
    assert command["message"].startswith(
        "xcomInputs of task 'command': XCom 'return_value' of task 'big' takes 1000005 bytes as the"
        " environment variable BIG, over Linux's limit of 131072 bytes for one variable"
    ), command["message"]
    (pod,) = pods_of(kubeconfig, e2e_namespace, name, "command")
    # The check ran before the command: its container never started (and so never failed to start).
    assert not {"running", "terminated"} & set(_task_container_state(pod))


SECURITY_DAGS = REPO / "tests" / "local" / "security_dags"
PAYLOAD = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
SHELL_PAYLOAD = "x; touch pwned"


def return_values(kubeconfig: str, namespace: str, run: str) -> dict[str, Any]:
    """Each task's `return_value` (`kdag xcom -o json`), a mapped task's as `task[i]`."""
    done = subprocess.run(
        [KDAG, "xcom", run, "-n", namespace, "--kubeconfig", kubeconfig, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = {}
    for row in json.loads(done.stdout)["xcoms"]:
        if row["key"] == "return_value":
            index = row.get("map_index")
            found[row["task_id"] if index is None else f"{row['task_id']}[{index}]"] = row["value"]
    return found


def finished_run(kubeconfig: str, namespace: str, name: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = get(kubeconfig, namespace, "dagrun", name)
        return run if (run.get("status") or {}).get("phase") in FINISHED else None

    found: dict[str, Any] = wait_until(finished, f"run {name} to finish", timeout=600)
    return found


def test_xcoms_params_and_conf_reach_templates_in_task_pods_as_data_never_as_templates(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    path = SECURITY_DAGS / "template_injection.py"
    (dag,) = apply_dags(kubeconfig, e2e_namespace, path, "template_injection")
    run_name = "injected"
    apply(
        kubeconfig,
        e2e_namespace,
        manifests.dagrun_manifest(
            dag.name, run_name, params={"x": PAYLOAD, "cmd": SHELL_PAYLOAD}, conf={"c": PAYLOAD}
        ),
    )
    run = finished_run(kubeconfig, e2e_namespace, run_name)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    got = return_values(kubeconfig, e2e_namespace, run_name)
    # (1) an upstream XCom pulled by a template or given as an XComArg, mapped over, or handed to @task.bash
    assert got["pulled"] == {"value": PAYLOAD, "listed": [PAYLOAD, PAYLOAD], "templated": PAYLOAD}
    assert got["pulled_by_bash"] == PAYLOAD
    for task in ("echo", "group.echo_in_group", "mapped_env"):
        assert (got[f"{task}[0]"], got[f"{task}[1]"]) == (PAYLOAD, "{{ ds }}"), task
    assert (got["pair[0]"], got["pair[1]"]) == ([PAYLOAD, PAYLOAD], [PAYLOAD, "{{ ds }}"])
    assert got["bash_function"] == PAYLOAD
    # (2) a run param and a conf key (declared by no param) rendered into a BashOperator's command
    assert got["param_x"] == PAYLOAD
    assert got["conf_c"] == f"{PAYLOAD} {PAYLOAD}"
    # a trigger's shell payload: inert in the environment or through shell_quote, shell code pasted in
    assert (got["env_quoted"], got["filter_quoted"]) == (SHELL_PAYLOAD, SHELL_PAYLOAD)
    assert got["unquoted"] == "pwned"
    assert not any("uid=" in json.dumps(value) for value in got.values())


def test_a_native_rendering_dag_never_renders_an_xcom_in_task_pods(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    (dag,) = apply_dags(
        kubeconfig, e2e_namespace, SECURITY_DAGS / "template_injection_native.py", "template_injection_native"
    )
    apply(kubeconfig, e2e_namespace, manifests.dagrun_manifest(dag.name, "native"))
    run = finished_run(kubeconfig, e2e_namespace, "native")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    got = return_values(kubeconfig, e2e_namespace, "native")
    # Rendered unsandboxed, instance 0 would return the output of `id`.
    assert (got["echo[0]"], got["echo[1]"]) == (PAYLOAD, "{{ ds }}")
    assert got["pulled"] == [PAYLOAD, "{{ ds }}"]
