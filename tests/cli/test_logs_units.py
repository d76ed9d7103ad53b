"""`kdag logs` picks an attempt's pod and says what there is instead of a raw error; `trigger --wait` on a
failed run names the failed tasks, their messages and the command for their log."""

from __future__ import annotations

from typing import Any

import pytest
from kdag import names
from kdag.cli import cluster, logs
from kdag.cli.errors import UserError
from kdag.cli.run_view import failure_lines
from kdag.kube import Kind

RUN = {"metadata": {"name": "etl-manual-abcde", "uid": "0123abcd-0000-0000-0000-000000000000"}}


def taskrun(task: str, index: int | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": names.taskrun_name("etl-manual-abcde", task, index)},
        "spec": {"taskId": task, "mapIndex": index},
        "status": status,
    }


def test_the_latest_attempt_is_the_default_and_an_earlier_one_is_named_as_the_controller_names_it() -> None:
    failed = taskrun("produce", phase="Failed", attempts=3, podName="latest-pod")
    assert logs.attempt_pod(RUN, failed, "produce", None) == "latest-pod"
    assert logs.attempt_pod(RUN, failed, "produce", 3) == "latest-pod"
    assert logs.attempt_pod(RUN, failed, "produce", 1) == names.pod_name(
        "etl-manual-abcde", "produce", 1, run_uid=RUN["metadata"]["uid"]
    )
    with pytest.raises(UserError, match="has had 3 attempts; --attempt takes 1 to 3"):
        logs.attempt_pod(RUN, failed, "produce", 4)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            {"phase": "UpstreamFailed", "message": "upstream failed: produce"},
            "task 'after' of run 'etl-manual-abcde' was never run: UpstreamFailed (upstream failed: produce)",
        ),
        (
            {"phase": "Skipped"},
            "task 'after' of run 'etl-manual-abcde' was never run: Skipped; it has no log",
        ),
        ({}, "task 'after' of run 'etl-manual-abcde' has no pod yet (Pending)"),
    ],
)
def test_a_task_without_a_pod_says_why(status: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as raised:
        logs.attempt_pod(RUN, taskrun("after", **status), "after", None)
    assert str(raised.value).startswith(message)


def test_a_task_without_a_taskrun_says_why() -> None:
    dagrun = {**RUN, "status": {"tasks": {"after": "UpstreamFailed", "next": "Pending"}}}
    assert str(logs.no_taskrun(dagrun, "after", None)) == (
        "task 'after' of run 'etl-manual-abcde' was never run: UpstreamFailed; it has no log"
    )
    assert (
        str(logs.no_taskrun(dagrun, "next", None))
        == "task 'next' of run 'etl-manual-abcde' has no pod yet (Pending)"
    )
    assert str(logs.no_taskrun(dagrun, "typo", None)) == (
        "run 'etl-manual-abcde' has no task 'typo' (not started yet, or no such task)"
    )


def test_a_container_the_pod_lacks_is_named_with_the_ones_it_has() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "task"}]}}
    logs.check_container(pod, "task")
    with pytest.raises(UserError) as raised:
        logs.check_container(pod, "xcom")
    assert str(raised.value) == (
        "pod 'p' has no container 'xcom' (its containers: task); a Python task stores its XComs itself, "
        "with no xcom sidecar"
    )


class FakeApi:
    namespace = "ns"

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        self.read: list[tuple[str, str]] = []

    def __enter__(self) -> FakeApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind.kind, name))

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        self.read.append((pod, container))
        return f"log of {pod}/{container}\n"


def test_logs_of_an_earlier_attempt_and_of_a_missing_container(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first_pod = names.pod_name("etl-manual-abcde", "produce", 1, run_uid=RUN["metadata"]["uid"])
    api = FakeApi(
        {"kind": "DAGRun", **RUN},
        {"kind": "TaskRun", **taskrun("produce", phase="Failed", attempts=2, podName="second")},
        {"kind": "Pod", "metadata": {"name": first_pod}, "spec": {"containers": [{"name": "task"}]}},
    )
    monkeypatch.setattr(cluster, "connect", lambda kubeconfig: api)
    logs.logs_command("etl-manual-abcde", "produce", attempt=1, namespace="ns", kubeconfig=None)
    assert capsys.readouterr().out == f"log of {first_pod}/task\n"
    with pytest.raises(SystemExit):
        logs.logs_command("etl-manual-abcde", "produce", "xcom", attempt=1, namespace="ns", kubeconfig=None)
    assert "has no container 'xcom' (its containers: task)" in capsys.readouterr().err
    assert api.read == [(first_pod, "task")]


def test_a_failed_run_names_its_failed_tasks_their_messages_and_the_log_command() -> None:
    dagrun = {
        **RUN,
        "status": {
            "phase": "Failed",
            "tasks": {"produce": "Failed", "after": "UpstreamFailed", "ok": "Succeeded"},
        },
    }
    taskruns = [
        taskrun("produce", phase="Failed", attempts=2, message="ValueError: bad"),
        taskrun("after", phase="UpstreamFailed"),
        taskrun("ok", phase="Succeeded", attempts=1),
    ]
    assert failure_lines(dagrun, taskruns, ["ok", "produce", "after"], "ns") == [
        "run etl-manual-abcde failed",
        "  produce: failed after 2 attempts: ValueError: bad",
        "  not run (upstream failed): after",
        "its log: kdag logs etl-manual-abcde produce -n ns",
    ]


def test_a_run_that_failed_before_any_task_says_why() -> None:
    stalled = {
        "type": "Stalled",
        "status": "True",
        "reason": "InvalidParams",
        "message": "param 'n': not int",
    }
    dagrun = {**RUN, "status": {"phase": "Failed", "conditions": [stalled]}}
    assert failure_lines(dagrun, [], [], "ns") == [
        "run etl-manual-abcde failed",
        "  InvalidParams: param 'n': not int",
    ]


def test_a_failed_mapped_instance_is_named_with_its_index() -> None:
    dagrun = {**RUN, "status": {"phase": "Failed", "tasks": {"square": "Failed"}}}
    taskruns = [taskrun("square", 2, phase="Failed", attempts=1, message="boom")]
    assert failure_lines(dagrun, taskruns, ["square"], "ns") == [
        "run etl-manual-abcde failed",
        "  square[2]: failed: boom",
        "its log: kdag logs etl-manual-abcde square --map-index 2 -n ns",
    ]
