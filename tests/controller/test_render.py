"""Pod rendering (the delivery contract of docs/design.md) and reading attempt results (kdag.attempts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kdag import names
from kdag.api.models import DAGSpec
from kdag.attempts import AttemptResult, Termination, attempt_result, parse_attempt_result
from kdag.render import RunInfo, render_task_pod
from kdag.settings import ControllerSettings

SETTINGS = ControllerSettings(runner_image="localhost/kdag-runner:dev")
DAG = DAGSpec.model_validate(
    {
        "dagId": "xcom_lesson",
        "params": {"greeting": "hi", "n": 1},
        "pythonFile": {"configMap": "lesson-source", "key": "lesson.py"},
        "tasks": [
            {
                "id": "hello_task",
                "python": {"source": "def hello(**kw):\n    return 'hello world'\n", "callable": "hello"},
            },
            {
                "id": "shell",
                "upstream": ["hello_task"],
                "image": "busybox:1.36",
                "command": ["sh", "-c"],
                "args": ["echo hi > $KDAG_XCOM_DIR/return.json"],
                "timeoutSeconds": 30,
                "resources": {"limits": {"memory": "64Mi", "cpu": 1}},
                "env": [{"name": "MODE", "value": "x"}],
            },
            {
                "id": "goodbye_task",
                "upstream": ["shell"],
                "python": {"fromDagFile": True},
                "params": {"n": 2},
                "xcomInputs": [
                    {"env": "GREETING", "task": "hello_task"},
                    {"env": "T", "task": "hello_task", "key": "execution_time"},
                ],
            },
        ],
    }
)
RUN = RunInfo(
    namespace="team-a",
    dag_name="lesson",
    name="lesson-abc12345",
    uid="uid-run",
    logical_date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    dag=DAG,
    params={"n": 3},
    conf={"k": "v"},
)


# What each task of the run pushed (its TaskRun's status.xcomKeys), as the controller passes it on.
PUSHED = {"hello_task": {"return_value", "execution_time", "__context"}, "shell": {"return_value"}}


def render(task_id: str, attempt: int = 1) -> dict[str, Any]:
    task = DAG.resolved_task(task_id, SETTINGS.runner_image)
    return render_task_pod(
        run=RUN,
        task=task,
        taskrun_name=names.taskrun_name(RUN.name, task_id),
        taskrun_uid="uid-tr",
        attempt=attempt,
        settings=SETTINGS,
        pushed=PUSHED,
    )


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_python_task_pod() -> None:
    pod = render("hello_task", attempt=2)
    assert pod["metadata"]["name"] == names.pod_name(RUN.name, "hello_task", 2, run_uid=RUN.uid)
    assert pod["metadata"]["namespace"] == "team-a"
    assert pod["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kdag",
        "kdag.dev/dag": "lesson",
        "kdag.dev/dagrun": "lesson-abc12345",
        "kdag.dev/task": "hello_task",
        "kdag.dev/attempt": "2",
    }
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "kdag.dev/v1alpha1",
            "kind": "TaskRun",
            "name": names.taskrun_name(RUN.name, "hello_task"),
            "uid": "uid-tr",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == "kdag-task"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 65532
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "initContainers" not in spec
    assert "activeDeadlineSeconds" not in spec
    (container,) = spec["containers"]
    assert container["name"] == "task"
    assert container["image"] == "localhost/kdag-runner:dev"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["python3", "-m", "kdag_runner", "run"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    env = env_of(container)
    assert env["KDAG_DAG_ID"] == "xcom_lesson"
    assert env["KDAG_TASK_ID"] == "hello_task"
    assert env["KDAG_RUN_ID"] == "lesson-abc12345"
    assert env["KDAG_RUN_UID"] == "uid-run"
    assert env["KDAG_NAMESPACE"] == "team-a"
    assert env["KDAG_LOGICAL_DATE"] == "2026-01-02T03:04:05Z"
    assert env["KDAG_ATTEMPT"] == "2"
    # conf keys are params too (Airflow's dag_run_conf_overrides_params, True by default)
    assert json.loads(env["KDAG_PARAMS"]) == {"greeting": "hi", "n": 3, "k": "v"}
    assert json.loads(env["KDAG_CONF"]) == {"k": "v"}
    assert json.loads(env["KDAG_ANCESTORS"]) == []
    assert env["KDAG_XCOM_IN"] == "/kdag/xcom/in"
    assert env["KDAG_XCOM_DIR"] == "/kdag/xcom/out"
    assert env["KDAG_XCOM_CONFIGMAP"] == names.xcom_configmap_name(RUN.name, "hello_task")
    assert env["HOME"] == "/tmp"
    assert env["KDAG_PYTHON_CALLABLE"] == "hello"
    assert env["KDAG_PYTHON_SOURCE"].startswith("def hello")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/kdag/xcom/out"] == "xcom-out"
    assert mounts["/tmp"] == "tmp"
    assert mounts["/var/run/secrets/kubernetes.io/serviceaccount"] == "kdag-token"
    assert spec["automountServiceAccountToken"] is False


def test_downstream_python_task_gets_ancestor_volumes_inputs_and_dag_file() -> None:
    pod = render("goodbye_task")
    (container,) = pod["spec"]["containers"]
    env = env_of(container)
    assert json.loads(env["KDAG_ANCESTORS"]) == ["hello_task", "shell"]
    # run params win over task params; conf keys are params too
    assert json.loads(env["KDAG_PARAMS"]) == {"greeting": "hi", "n": 3, "k": "v"}
    assert env["KDAG_DAG_FILE"] == "/kdag/dag/lesson.py"
    assert "KDAG_PYTHON_SOURCE" not in env
    # xcomInputs: the runner sets them from the mounted stores, so no size keeps the task from starting.
    assert "GREETING" not in env and "T" not in env
    assert json.loads(env["KDAG_XCOM_INPUTS"]) == [
        {"env": "GREETING", "task": "hello_task", "key": "return_value"},
        {"env": "T", "task": "hello_task", "key": "execution_time"},
    ]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    # One projected volume: each ancestor's ConfigMap, exactly the keys it pushed (and .types, __context).
    assert mounts["/kdag/xcom/in"] == {"name": "xcom-in", "mountPath": "/kdag/xcom/in", "readOnly": True}
    assert volumes["xcom-in"]["projected"]["sources"] == [
        {
            "configMap": {
                "name": names.xcom_configmap_name(RUN.name, task_id),
                "optional": True,
                "items": [{"key": key, "path": f"{task_id}/{key}"} for key in keys],
            }
        }
        for task_id, keys in (
            ("hello_task", ["__context", "execution_time", "return_value", ".types"]),
            ("shell", ["return_value", ".types", "__context"]),
        )
    ]
    assert volumes[mounts["/kdag/dag"]["name"]]["configMap"]["name"] == "lesson-source"
    assert volumes["xcom-out"] == {"name": "xcom-out", "emptyDir": {"sizeLimit": "8Mi"}}


def test_any_image_task_gets_the_xcom_sidecar_and_no_token() -> None:
    pod = render("shell")
    spec = pod["spec"]
    assert spec["activeDeadlineSeconds"] == 30
    (container,) = spec["containers"]
    assert container["image"] == "busybox:1.36"
    assert container["command"] == ["sh", "-c"]
    assert container["args"] == ["echo hi > $KDAG_XCOM_DIR/return.json"]
    assert container["resources"] == {"limits": {"memory": "64Mi", "cpu": 1}}
    assert env_of(container)["MODE"] == "x"
    assert env_of(container)["KDAG_TASK_ID"] == "shell"
    assert container["securityContext"]["readOnlyRootFilesystem"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert all(m["name"] != "kdag-token" for m in container["volumeMounts"])
    (sidecar,) = spec["initContainers"]
    assert sidecar["name"] == "xcom"
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == "localhost/kdag-runner:dev"
    assert sidecar["command"] == ["python3", "-I", "-m", "kdag_runner", "collect"]
    assert env_of(sidecar)["KDAG_XCOM_CONFIGMAP"] == names.xcom_configmap_name(RUN.name, "shell")
    assert "MODE" not in env_of(sidecar)
    assert "&id" not in yaml.safe_dump(pod)  # no object shared between containers
    sidecar_mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    assert sidecar_mounts["/kdag/xcom/out"] == "xcom-out"
    assert sidecar_mounts["/var/run/secrets/kubernetes.io/serviceaccount"] == "kdag-token"
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/kdag/xcom/out", "/kdag/xcom/in"}


def test_a_python_retry_mounts_the_task_state_its_own_configmap_keeps() -> None:
    """Attempts after the first see `.state` of the instance's own ConfigMap through the kubelet (the token
    gets no `get`); the first attempt and command tasks (no runner in the container) mount nothing more."""
    first, retry = render("hello_task", attempt=1), render("hello_task", attempt=2)
    assert "KDAG_STATE_IN" not in env_of(first["spec"]["containers"][0])
    assert all(v["name"] != "state-in" for v in first["spec"]["volumes"])
    (container,) = retry["spec"]["containers"]
    assert env_of(container)["KDAG_STATE_IN"] == "/kdag/state"
    assert {"name": "state-in", "mountPath": "/kdag/state", "readOnly": True} in container["volumeMounts"]
    volumes = {v["name"]: v for v in retry["spec"]["volumes"]}
    assert volumes["state-in"]["configMap"] == {
        "name": names.xcom_configmap_name(RUN.name, "hello_task"),
        "optional": True,
        "items": [{"key": ".state", "path": ".state"}],
    }
    shell = render("shell", attempt=3)
    assert all(v["name"] != "state-in" for v in shell["spec"]["volumes"])
    assert "KDAG_STATE_IN" not in env_of(shell["spec"]["containers"][0])


def test_the_collector_holding_the_token_never_imports_what_the_task_writes() -> None:
    # A command that writes /tmp/ssl.py must not get it run by the collector, which imports ssl (and
    # socket, http, email, base64, ...) only once the command has exited.
    pod = render("shell")
    (container,) = pod["spec"]["containers"]
    (collector,) = pod["spec"]["initContainers"]
    # Isolated mode: neither the working directory, nor PYTHON* variables, nor the user site on sys.path.
    assert collector["command"][:3] == ["python3", "-I", "-m"]
    assert collector["workingDir"] == "/"
    assert collector["securityContext"]["readOnlyRootFilesystem"] is True
    assert not any(name.startswith("PYTHON") for name in env_of(collector))
    task_volumes = {m["name"] for m in container["volumeMounts"]}
    collector_mounts = {m["name"]: m["mountPath"] for m in collector["volumeMounts"]}
    # All it shares with the command is the directory of XCom files, which is never on its sys.path.
    assert {name for name in collector_mounts if name in task_volumes} == {"xcom-out"}
    assert "/tmp" not in collector_mounts.values()
    assert collector_mounts["kdag-token"] == "/var/run/secrets/kubernetes.io/serviceaccount"
    # The Python task's runner is the task itself: its /tmp is its own pod's, shared with no container.
    python_pod = render("hello_task")["spec"]
    assert "initContainers" not in python_pod and len(python_pod["containers"]) == 1


COMMAND_DAG = DAGSpec.model_validate(
    {
        "tasks": [
            {"id": "big", "python": {"source": "def f(**_):\n    return 'x' * 200000\n", "callable": "f"}},
            {
                "id": "report",
                "upstream": ["big"],
                "image": "busybox:1.36",
                "command": ["sh", "-c", "echo ${#BIG}"],
                "xcomInputs": [{"env": "BIG", "task": "big"}],
            },
        ]
    }
)


def render_command_consumer() -> dict[str, Any]:
    run = RunInfo(
        namespace="team-a",
        dag_name="big",
        name="big-abc12345",
        uid="uid-run",
        logical_date=datetime(2026, 1, 2, tzinfo=UTC),
        dag=COMMAND_DAG,
    )
    return render_task_pod(
        run=run,
        task=COMMAND_DAG.resolved_task("report", SETTINGS.runner_image),
        taskrun_name="big-abc12345-report",
        taskrun_uid="uid-tr",
        attempt=1,
        settings=SETTINGS,
        pushed={"big": ["return_value"]},
    )


def test_a_command_tasks_xcom_inputs_are_checked_before_it_starts() -> None:
    # Linux starts no program with an environment string over 128 KiB, and an XCom may be 1 MB: an init
    # container fails the attempt first, naming the input, where the command would fail to start.
    pod = render_command_consumer()
    (container,) = pod["spec"]["containers"]
    check, collector = pod["spec"]["initContainers"]
    assert env_of(container)["BIG"] == {
        "configMapKeyRef": {
            "name": names.xcom_configmap_name("big-abc12345", "big"),
            "key": "return_value",
            "optional": True,
        }
    }
    assert check["name"] == "xcom-inputs"
    assert "restartPolicy" not in check  # runs to its end before the collector and the command start
    assert check["command"] == ["python3", "-I", "-m", "kdag_runner", "check-inputs"]
    assert check["workingDir"] == "/"
    inputs = [{"env": "BIG", "task": "big", "key": "return_value"}]
    assert json.loads(env_of(check)["KDAG_XCOM_INPUTS"]) == inputs
    assert {m["mountPath"]: m["readOnly"] for m in check["volumeMounts"]} == {"/kdag/xcom/in": True}
    assert collector["name"] == "xcom"
    # A command task without xcomInputs has no check (render("shell")); a Python task needs none.
    assert [c["name"] for c in render("shell")["spec"]["initContainers"]] == ["xcom"]


def test_a_failed_xcom_inputs_check_fails_the_attempt_with_its_report_never_retried() -> None:
    problem = "xcomInputs of task 'report': XCom 'return_value' of task 'big' takes 200010 bytes ..."
    report = json.dumps({"error": problem, "retry": False})
    pod = pod_with(
        render_command_consumer(), "Failed", [], init=[terminated("xcom-inputs", 3, report, reason="Error")]
    )
    result = parse_attempt_result(pod)
    assert result.finished and not result.succeeded
    assert (result.exit_code, result.message, result.retry) == (3, problem, False)
    still_checking = pod_with(render_command_consumer(), "Pending", [], init=[running("xcom-inputs")])
    assert not parse_attempt_result(still_checking).finished


def test_run_info_from_a_dagrun_object() -> None:
    dagrun: dict[str, Any] = {
        "metadata": {
            "name": "r1",
            "namespace": "ns",
            "uid": "u1",
            "creationTimestamp": "2026-05-06T07:08:09Z",
        },
        "spec": {"dagRef": {"name": "lesson"}, "conf": {"a": 1}},
        "status": {"dagVersion": "lesson-0123456789abcdef"},
    }
    run = RunInfo.from_dagrun(dagrun, DAG)  # the spec of the DAG version the run follows
    assert run.logical_date == datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert run.dag_id == "xcom_lesson"
    assert run.conf == {"a": 1}
    assert run.dag == DAG
    dagrun["spec"]["logicalDate"] = "2026-01-01T00:00:00+00:00"
    assert RunInfo.from_dagrun(dagrun, DAG).logical_date == datetime(2026, 1, 1, tzinfo=UTC)
    del dagrun["spec"]["logicalDate"], dagrun["metadata"]["creationTimestamp"]
    with pytest.raises(ValueError, match=r"neither spec\.logicalDate nor a creationTimestamp"):
        RunInfo.from_dagrun(dagrun, DAG)


# --- attempt results -------------------------------------------------------------------------------


def terminated(name: str, exit_code: int, message: str = "", reason: str = "Completed") -> dict[str, Any]:
    return {
        "name": name,
        "state": {
            "terminated": {
                "exitCode": exit_code,
                "reason": reason,
                "message": message,
                "finishedAt": "2026-01-02T03:05:00Z",
            }
        },
    }


def running(name: str) -> dict[str, Any]:
    return {"name": name, "state": {"running": {"startedAt": "2026-01-02T03:04:06Z"}}}


def pod_with(
    task_pod: dict[str, Any], phase: str, containers: list[Any], init: list[Any] | None = None, **status: Any
) -> dict[str, Any]:
    pod: dict[str, Any] = json.loads(json.dumps(task_pod))
    pod["status"] = {
        "phase": phase,
        "startTime": "2026-01-02T03:04:05Z",
        "containerStatuses": containers,
        **status,
    }
    if init is not None:
        pod["status"]["initContainerStatuses"] = init
    return pod


def test_python_attempt_success_reads_keys_from_termination_message() -> None:
    report = json.dumps({"xcomKeys": ["return_value", "execution_time"], "bytes": 64})
    result = parse_attempt_result(
        pod_with(render("hello_task"), "Succeeded", [terminated("task", 0, report)])
    )
    assert result == AttemptResult(
        finished=True,
        succeeded=True,
        exit_code=0,
        xcom_keys=("return_value", "execution_time"),
        xcom_bytes=64,
        started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        finished_at=datetime(2026, 1, 2, 3, 5, tzinfo=UTC),
    )


def test_python_attempt_success_reads_the_tasks_it_asks_to_skip() -> None:
    report = json.dumps({"xcomKeys": ["return_value"], "bytes": 9, "skipTasks": ["b", "c", "b"]})
    pod = pod_with(render("hello_task"), "Succeeded", [terminated("task", 0, report)])
    result = parse_attempt_result(pod)
    assert result.succeeded
    assert result.skip_tasks == ("b", "c")


def test_skip_tasks_come_from_the_pushing_container_only() -> None:
    # A command task: the collector (kdag's) reports; the user's container cannot ask for skips.
    own = json.dumps({"xcomKeys": [], "bytes": 2, "skipTasks": ["goodbye_task"]})
    collector = json.dumps({"xcomKeys": ["return_value"], "bytes": 5})
    pod = pod_with(
        render("shell"), "Succeeded", [terminated("task", 0, own)], init=[terminated("xcom", 0, collector)]
    )
    result = parse_attempt_result(pod)
    assert result.succeeded and result.skip_tasks == ()
    asked = json.dumps({"xcomKeys": [], "bytes": 2, "skipTasks": ["goodbye_task"]})
    pod = pod_with(render("shell"), "Succeeded", [terminated("task", 0)], init=[terminated("xcom", 0, asked)])
    assert parse_attempt_result(pod).skip_tasks == ("goodbye_task",)


def test_skip_tasks_are_read_on_success_only_and_must_be_a_list_of_ids() -> None:
    failed = json.dumps({"xcomKeys": [], "bytes": 2, "skipTasks": ["b"], "error": "ValueError: x"})
    assert attempt_result(Termination(1, failed)).skip_tasks == ()
    skipped = json.dumps({"xcomKeys": [], "bytes": 2, "skipTasks": ["b"], "skipped": "why"})
    assert attempt_result(Termination(4, skipped)).skip_tasks == ()
    # Strings that cannot be task ids name no task: dropped.
    odd = json.dumps({"xcomKeys": [], "bytes": 2, "skipTasks": ["ok.id", "bad id", "x" * 64, ""]})
    assert attempt_result(Termination(0, odd)).skip_tasks == ("ok.id",)
    for bad in ("b", [1], {"b": True}):
        result = attempt_result(Termination(0, json.dumps({"xcomKeys": ["k"], "bytes": 2, "skipTasks": bad})))
        assert result.finished and not result.succeeded
        assert result.message.startswith("invalid termination report: skipTasks must be a list of task ids")
        assert result.xcom_keys == ("k",)
    many = json.dumps({"xcomKeys": [], "bytes": 2, "skipTasks": [f"t{i}" for i in range(3000)]})
    assert "at most 2048" in attempt_result(Termination(0, many)).message


def test_python_attempt_that_skipped_itself_is_skipped_with_its_reason_and_keys() -> None:
    report = json.dumps({"xcomKeys": ["seen"], "bytes": 20, "skipped": "nothing new today"})
    result = parse_attempt_result(
        pod_with(render("hello_task"), "Failed", [terminated("task", 4, report, reason="Error")])
    )
    assert result == AttemptResult(
        finished=True,
        skipped=True,
        exit_code=4,
        message="nothing new today",
        xcom_keys=("seen",),
        xcom_bytes=20,
        started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        finished_at=datetime(2026, 1, 2, 3, 5, tzinfo=UTC),
    )


def test_exit_code_4_without_a_skip_report_or_from_a_command_is_a_failure() -> None:
    plain = parse_attempt_result(
        pod_with(render("hello_task"), "Failed", [terminated("task", 4, "oops", reason="Error")])
    )
    assert plain.finished and not plain.skipped and not plain.succeeded
    assert plain.message == "Error (exit code 4): oops"
    # A user's command writing the runner's report is still a failed command, not a skip.
    report = json.dumps({"xcomKeys": [], "bytes": 8, "skipped": "x"})
    command = parse_attempt_result(
        pod_with(
            render("shell"),
            "Failed",
            [terminated("task", 4, report, reason="Error")],
            init=[terminated("xcom", 0, json.dumps({"xcomKeys": [], "bytes": 8}))],
        )
    )
    assert command.finished and not command.skipped and not command.succeeded
    assert command.exit_code == 4


def test_running_attempt_is_not_finished() -> None:
    result = parse_attempt_result(pod_with(render("hello_task"), "Running", [running("task")]))
    assert not result.finished
    assert result.message == ""


def test_sidecar_still_pushing_means_not_finished() -> None:
    pod = pod_with(render("shell"), "Running", [terminated("task", 0)], init=[running("xcom")])
    assert not parse_attempt_result(pod).finished


def test_sidecar_report_gives_keys_of_any_image_task() -> None:
    report = json.dumps({"xcomKeys": ["return_value"], "bytes": 5})
    pod = pod_with(
        render("shell"), "Succeeded", [terminated("task", 0)], init=[terminated("xcom", 0, report)]
    )
    result = parse_attempt_result(pod)
    assert result.succeeded
    assert result.xcom_keys == ("return_value",)


def test_failed_push_by_sidecar_fails_the_attempt_even_if_the_pod_succeeded() -> None:
    error = json.dumps({"error": "XCom 'x' of task 'shell' is not JSON-serialisable: set"})
    pod = pod_with(
        render("shell"),
        "Succeeded",
        [terminated("task", 0)],
        init=[terminated("xcom", 3, error, reason="Error")],
    )
    result = parse_attempt_result(pod)
    assert result.finished and not result.succeeded
    assert result.exit_code == 3
    assert result.message == "XCom 'x' of task 'shell' is not JSON-serialisable: set"


def test_task_error_message_comes_from_the_log_tail() -> None:
    logs = "Traceback (most recent call last):\nValueError: boom"
    pod = pod_with(render("hello_task"), "Failed", [terminated("task", 1, logs, reason="Error")])
    result = parse_attempt_result(pod)
    assert result.finished and not result.succeeded
    assert result.exit_code == 1
    assert result.message == f"Error (exit code 1): {logs}"


def test_xcom_error_report_of_a_python_task_is_the_message() -> None:
    size = json.dumps(
        {
            "error": "XComs of task 'hello_task' take 2000000 bytes;"
            " a task's XComs must fit in 1032192 bytes (one ConfigMap)"
        }
    )
    pod = pod_with(render("hello_task"), "Failed", [terminated("task", 3, size, reason="Error")])
    result = parse_attempt_result(pod)
    assert result.exit_code == 3
    assert "2000000 bytes" in result.message


def test_deadline_exceeded_is_a_timeout() -> None:
    pod = pod_with(
        render("shell"),
        "Failed",
        [terminated("task", 137, reason="Error")],
        init=[running("xcom")],
        reason="DeadlineExceeded",
        message="Pod was active on the node longer than the specified deadline",
    )
    result = parse_attempt_result(pod)
    assert result.finished and not result.succeeded
    assert result.message == "timed out after 30 s"


def test_image_pull_failure_is_reported_while_waiting() -> None:
    waiting = {"name": "task", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
    result = parse_attempt_result(pod_with(render("hello_task"), "Pending", [waiting]))
    assert not result.finished
    assert result.message == "container task: ImagePullBackOff: not found"


def test_pod_failed_before_any_container_ran() -> None:
    pod = pod_with(render("hello_task"), "Failed", [], reason="Evicted", message="low on memory")
    result = parse_attempt_result(pod)
    assert result.finished and not result.succeeded
    assert result.message == "pod Evicted: low on memory"


def test_one_parser_reads_termination_reports_outside_a_pod_too() -> None:
    # As a local run calls it: no kubelet reason; the log's last line stands in for a missing message.
    failed = attempt_result(Termination(7), Termination(0, json.dumps({"xcomKeys": []})), fallback="bad")
    assert (failed.exit_code, failed.message, failed.succeeded) == (7, "exit code 7: bad", False)
    skip = json.dumps({"xcomKeys": ["k"], "bytes": 9, "skipped": "why"})
    assert attempt_result(Termination(4, skip)) == AttemptResult(
        finished=True, skipped=True, exit_code=4, message="why", xcom_keys=("k",), xcom_bytes=9
    )
    branch = json.dumps({"xcomKeys": [], "bytes": 2, "skipTasks": ["left"]})
    assert attempt_result(Termination(0, branch)) == AttemptResult(
        finished=True, succeeded=True, exit_code=0, xcom_bytes=2, skip_tasks=("left",)
    )
    # A command (it has a collector) writing the runner's skip report has still failed.
    assert not attempt_result(Termination(4, skip), Termination(0)).skipped
    pushed = attempt_result(Termination(0), Termination(3, json.dumps({"error": "not JSON"})))
    assert (pushed.exit_code, pushed.message) == (3, "not JSON")
    crashed = attempt_result(Termination(0), Termination(1))
    assert crashed.message == "XCom push failed (exit code 1)"


def test_a_sensor_attempt_gets_the_task_start_and_its_reschedules() -> None:
    task = DAG.resolved_task("hello_task", SETTINGS.runner_image)
    first = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    pod = render_task_pod(
        run=RUN,
        task=task,
        taskrun_name=names.taskrun_name(RUN.name, "hello_task"),
        taskrun_uid="uid-tr",
        attempt=4,
        settings=SETTINGS,
        task_start=first,
        reschedules=3,
    )
    env = env_of(pod["spec"]["containers"][0])
    assert env["KDAG_ATTEMPT"] == "4"
    assert env["KDAG_TASK_START"] == "2026-01-02T03:04:05Z"
    assert env["KDAG_RESCHEDULES"] == "3"
    assert pod["metadata"]["name"] == names.pod_name(RUN.name, "hello_task", 4, run_uid=RUN.uid)
    # Neither is set unless given (a first attempt of a task that was never rescheduled has no count).
    plain = env_of(render("hello_task")["spec"]["containers"][0])
    assert "KDAG_TASK_START" not in plain and "KDAG_RESCHEDULES" not in plain


def test_a_runs_type_comes_from_its_label_so_an_owned_kdag_trigger_run_stays_manual() -> None:
    """`kdag trigger`'s runs are owned by their DAG now (deleting the DAG deletes them), as scheduled runs
    are: the `kdag.dev/run-type` label, not the owner, says which is which; unlabelled runs of an older
    controller keep the owner rule."""
    from kdag import manifests

    dag = DAGSpec.model_validate({"tasks": [{"id": "a", "command": ["true"]}]})

    def run_type(**fields: Any) -> str:
        manifest = manifests.dagrun_manifest("etl", "etl-1", namespace="ns", **fields)
        manifest["metadata"]["uid"] = "uid-run"
        manifest["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
        return RunInfo.from_dagrun(manifest, dag).run_type

    assert run_type(owner_uid="uid-dag", run_type=manifests.MANUAL) == "manual"
    assert run_type(owner_uid="uid-dag", run_type=manifests.SCHEDULED) == "scheduled"
    assert run_type(owner_uid="uid-dag") == "scheduled"
    assert run_type() == "manual"


def test_a_dag_id_that_is_no_label_value_labels_nothing() -> None:
    """Airflow's `_team.etl` is a valid dag_id but no label value: the task's XCom ConfigMap is labelled with
    the DAG object's name (`KDAG_DAG_NAME`), never with the id."""
    from kdag.settings import ControllerSettings
    from kdag_runner.environment import TaskEnvironment
    from kdag_runner.sinks import store_labels

    task = {"id": "a", "python": {"source": "x", "callable": "f"}}
    dag = DAGSpec.model_validate({"dagId": "_team.etl", "tasks": [task]})
    run = RunInfo("ns", "team-etl", "team-etl-1", "uid-run", datetime(2026, 1, 1, tzinfo=UTC), dag)
    settings = ControllerSettings()
    pod = render_task_pod(
        run=run, task=dag.tasks[0], taskrun_name="t", taskrun_uid="u", attempt=1, settings=settings
    )
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"] if "value" in e}
    assert env["KDAG_DAG_ID"] == "_team.etl" and env["KDAG_DAG_NAME"] == "team-etl"
    assert store_labels(TaskEnvironment.from_env(env))["kdag.dev/dag"] == "team-etl"


def test_a_pod_mounts_the_nearest_ancestors_up_to_the_limit_and_says_so() -> None:
    """A task deep in a big DAG: its pod mounts at most max_xcom_sources ancestors' XComs, its declared
    xcomInputs and direct upstream first, then the nearest; the runner is told some were left out."""
    from kdag_runner.environment import TaskEnvironment
    from kdag_runner.xcom import TaskInstance

    tasks: list[dict[str, Any]] = [{"id": f"t{i}", "command": ["true"]} for i in range(10)]
    for i in range(1, 10):
        tasks[i]["upstream"] = [f"t{i - 1}"]
    tasks[9]["xcomInputs"] = [{"env": "FIRST", "task": "t0"}]
    dag = DAGSpec.model_validate({"tasks": tasks})
    run = RunInfo("ns", "d", "d-1", "uid-run", datetime(2026, 1, 1, tzinfo=UTC), dag)
    settings = ControllerSettings(max_xcom_sources=3)
    pushed = {f"t{i}": ["return_value"] for i in range(9)}
    pod = render_task_pod(
        run=run,
        task=dag.tasks[9],
        taskrun_name="t",
        taskrun_uid="u",
        attempt=1,
        settings=settings,
        pushed=pushed,
    )
    (xcom_in,) = [v for v in pod["spec"]["volumes"] if v["name"] == "xcom-in"]
    mounted = [s["configMap"]["name"] for s in xcom_in["projected"]["sources"]]
    assert mounted == [names.xcom_configmap_name("d-1", t) for t in ("t0", "t7", "t8")]
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"] if "value" in e}
    assert json.loads(env["KDAG_ANCESTORS"]) == ["t0", "t7", "t8"]
    assert env["KDAG_ANCESTORS_CUT"] == "3"
    instance = TaskInstance.from_environment(TaskEnvironment.from_env(env))
    assert instance.xcom_pull(task_ids="t3") is None  # named in the warning the runner prints
    assert instance.ancestors_cut
    # Under the limit nothing is cut and every ancestor is mounted, as before.
    whole = render_task_pod(
        run=run,
        task=dag.tasks[9],
        taskrun_name="t",
        taskrun_uid="u",
        attempt=1,
        settings=ControllerSettings(),
    )
    whole_env = {e["name"]: e.get("value") for e in whole["spec"]["containers"][0]["env"]}
    assert "KDAG_ANCESTORS_CUT" not in whole_env
    assert json.loads(str(whole_env["KDAG_ANCESTORS"])) == [f"t{i}" for i in range(9)]


def test_node_selector_and_tolerations_reach_the_pod_the_tasks_own_replacing_the_defaults() -> None:
    tolerate = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
    spec = {
        "defaults": {"nodeSelector": {"type": "kwok"}, "tolerations": [tolerate]},
        "tasks": [
            {"id": "a", "command": ["true"]},
            {"id": "b", "command": ["true"], "nodeSelector": {"pool": "gpu"}, "tolerations": []},
        ],
    }
    dag = DAGSpec.model_validate(spec)
    run = RunInfo("ns", "d", "d-1", "uid-run", datetime(2026, 1, 1, tzinfo=UTC), dag)
    settings = ControllerSettings()

    def pod_spec(task_id: str) -> dict[str, Any]:
        task = dag.resolved_task(task_id, settings.runner_image)
        pod = render_task_pod(
            run=run, task=task, taskrun_name="t", taskrun_uid="u", attempt=1, settings=settings
        )
        return dict(pod["spec"])

    assert (pod_spec("a")["nodeSelector"], pod_spec("a")["tolerations"]) == ({"type": "kwok"}, [tolerate])
    assert pod_spec("b")["nodeSelector"] == {"pool": "gpu"} and "tolerations" not in pod_spec("b")
