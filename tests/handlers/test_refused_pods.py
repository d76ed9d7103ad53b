"""What the API server refuses while a run goes on ends the task or the run at once, visibly: a pod over a
quota (403) or invalid (422) fails its task whatever its retries, with a condition and Events quoting the
API server, within one reconcile request; a TaskRun the API server refuses (or a name kdag cannot derive)
fails the run; an error that may pass is retried after an Event. The in-memory API server is `fake_api`'s."""

from __future__ import annotations

import asyncio
from typing import Any

from fake_api import FakeApi, dagrun_manifest, runtime_over
from kdag.handlers import dagruns, run_objects
from kdag.kube import Forbidden, Invalid, Unreachable, kind_of

NS = "team"
RUN = "quota-run"
QUOTA = (
    'pods "quota-run-big-1" is forbidden: exceeded quota: compute, requested: requests.memory=64Gi,'
    " used: requests.memory=0, limited: requests.memory=1Gi"
)


class RefusingApi(FakeApi):
    """Refuses creating the objects of `refused` (kind -> error), as an admission or a quota would."""

    def __init__(self, refused: dict[str, Exception]) -> None:
        super().__init__()
        self.refused = refused
        self.attempts: list[str] = []

    async def create(self, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        kind = kind_of(obj).kind
        if kind in self.refused and kind != "Event":
            self.attempts.append(obj["metadata"]["name"])
            raise self.refused[kind]
        return await super().create(obj, namespace)


def dag(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": "quota", "namespace": NS},
        "spec": {"tasks": list(tasks)},
    }


def reconciled(cluster: RefusingApi, *tasks: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """One reconcile request for a new run of the DAG of `tasks`: the run as it is afterwards, and whether
    a pass is due later (a retry's timer)."""
    runtime = runtime_over(cluster)
    retried = False

    async def main() -> None:
        nonlocal retried
        await cluster.create(dag(*tasks), NS)
        await cluster.create(dagrun_manifest(RUN, "quota"), NS)
        await dagruns.request_reconcile(runtime, (NS, RUN))
        await asyncio.sleep(0.05)  # the Events' background tasks
        state = runtime.run_state((NS, RUN))
        timer = state.wake
        # A retry's timer is due soon; the resync every run under way gets is not a retry.
        due_in = (state.wake_at or 0.0) - asyncio.get_running_loop().time()
        retried = timer is not None and due_in < run_objects.RELIST_SECONDS - 1
        if timer is not None:
            timer.cancel()

    asyncio.run(main())
    return cluster.objects[("DAGRun", RUN)], retried


def events(cluster: FakeApi, reason: str) -> list[str]:
    return [e["message"] for e in cluster.events if e["reason"] == reason]


def test_a_pod_over_quota_fails_its_task_and_the_run_in_one_request_quoting_the_api_server() -> None:
    cluster = RefusingApi({"Pod": Forbidden(403, f"POST Pod {NS}/quota-run-big-1: {QUOTA}")})
    big = {"id": "big", "command": ["true"], "retries": 3, "resources": {"requests": {"memory": "64Gi"}}}
    run, retried = reconciled(cluster, big, {"id": "after", "command": ["true"], "upstream": ["big"]})
    assert len(cluster.attempts) == 1 and not retried, "a refused pod is never asked for again"
    taskrun = cluster.taskrun(RUN, "big")
    assert taskrun["status"]["phase"] == "Failed"
    assert taskrun["status"]["attempts"] == 1
    assert QUOTA in taskrun["status"]["message"]
    assert taskrun["status"]["message"].startswith("the API server refused pod ")
    (refusal,) = events(cluster, "PodRefused")
    assert refusal.startswith("task 'big': the API server refused pod") and "exceeded quota" in refusal
    assert cluster.taskrun(RUN, "after")["status"]["phase"] == "UpstreamFailed"
    assert run["status"]["phase"] == "Failed"
    stalled = {c["type"]: c for c in run["status"]["conditions"]}["Stalled"]
    assert stalled["status"] == "True" and "failed: big" in stalled["message"]
    (failed,) = events(cluster, "RunFailed")
    assert "big" in failed


def test_an_invalid_pod_fails_its_task_the_same_way() -> None:
    message = 'Pod "quota-run-a-1" is invalid: spec.containers[0].image: Required value'
    run, retried = reconciled(RefusingApi({"Pod": Invalid(422, message)}), {"id": "a", "command": ["true"]})
    assert run["status"]["phase"] == "Failed" and not retried


def test_a_taskrun_the_api_server_refuses_fails_the_run_naming_why() -> None:
    """A DAG admitted while the webhook was off: its task's env repeats a default's name."""
    message = 'TaskRun.kdag.dev "quota-run-a" is invalid: spec.task.env[1]: Duplicate value: {"name":"X"}'
    cluster = RefusingApi({"TaskRun": Invalid(422, message)})
    run, retried = reconciled(cluster, {"id": "a", "command": ["true"]})
    assert run["status"]["phase"] == "Failed" and not retried
    conditions = {c["type"]: c for c in run["status"]["conditions"]}
    assert conditions["Stalled"]["status"] == "True" and conditions["Stalled"]["reason"] == "Refused"
    assert message in conditions["Stalled"]["message"]
    (failed,) = events(cluster, "RunFailed")
    assert message in failed


def test_an_error_that_may_pass_is_retried_after_one_event() -> None:
    cluster = RefusingApi({"Pod": Unreachable(0, "cannot reach the API server")})
    run, retried = reconciled(cluster, {"id": "later", "command": ["true"]})
    assert (run.get("status") or {}).get("phase") != "Failed" and retried
    (retrying,) = events(cluster, "ReconcileRetrying")
    assert "cannot reach the API server" in retrying and "retrying every 5 s" in retrying


def test_a_run_whose_pods_could_have_no_valid_name_fails_at_once_saying_so() -> None:
    """A DAGRun made while the webhook was off, its name too long for its TaskRuns' names: it was retried
    every 5 s with nothing to see."""
    cluster = RefusingApi({})
    runtime = runtime_over(cluster)
    name = "r" * 240

    async def main() -> None:
        await cluster.create(dag({"id": "a", "command": ["true"]}), NS)
        await cluster.create(dagrun_manifest(name, "quota"), NS)
        await dagruns.request_reconcile(runtime, (NS, name))
        await asyncio.sleep(0.05)
        assert runtime.run_state((NS, name)).wake is None

    asyncio.run(main())
    run = cluster.objects[("DAGRun", name)]
    assert run["status"]["phase"] == "Failed"
    stalled = {c["type"]: c for c in run["status"]["conditions"]}["Stalled"]
    assert "characters; Kubernetes allows 253" in stalled["message"]
    assert events(cluster, "RunFailed")
