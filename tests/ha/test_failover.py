"""Two controller replicas: only one acts, and when it dies mid-run the standby finishes the run."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_support import Kube, host_controllers_stopped, wait_for
from kdag import names

pytestmark = pytest.mark.cluster

NAMESPACE = "kdag-ha"
RELEASE = "kdag-ha"
PEERING = "kdag"

# A task long enough to kill the active controller while it runs, and one after it that pulls its XCom:
# the standby must notice the first pod finish and start the second.
SLOW_DAG = """
apiVersion: kdag.dev/v1alpha1
kind: DAG
metadata:
  name: slow-handoff
spec:
  schedule: "@once"
  tasks:
    - id: slow
      python:
        callable: slow
        source: |
          import time
          def slow():
              time.sleep(20)
              return 'made before the failover'
    - id: after
      upstream: [slow]
      python:
        callable: after
        source: |
          def after(ti):
              return ti.xcom_pull(task_ids='slow') + ', read after it'
"""


@pytest.fixture(scope="module")
def two_replicas(kubeconfig: Path, helm: Path) -> Iterator[Kube]:
    kube = Kube(Path(kubeconfig), helm)
    with host_controllers_stopped(kube):
        kube.fresh_namespace(NAMESPACE)
        kube.install_chart(
            RELEASE, NAMESPACE, ["rbac.scope=namespace", "replicas=2", "peering.lifetimeSeconds=15"]
        )
        yield kube
        kube.kubectl(
            "delete", "dags,dagruns", "--all", "-n", NAMESPACE, "--wait=true", "--timeout=60s", check=False
        )
        kube.uninstall_chart(RELEASE, NAMESPACE)
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=180s", check=False)


def live_peers(kube: Kube) -> dict[str, int]:
    """Pod name -> priority of every replica whose peering record has not expired."""
    status: dict[str, Any] = kube.get("kopfpeering", PEERING, NAMESPACE).get("status", {})
    now = datetime.datetime.now(datetime.UTC)
    alive = {}
    for identity, record in status.items():
        lastseen = datetime.datetime.fromisoformat(record["lastseen"])
        if lastseen + datetime.timedelta(seconds=int(record["lifetime"])) > now:
            alive[identity] = int(record["priority"])
    return alive


def controller_pods(kube: Kube) -> list[str]:
    pods = kube.items("pods", NAMESPACE, "app.kubernetes.io/name=kdag")
    return [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]


def two_live_peers(kube: Kube) -> dict[str, int] | None:
    peers = live_peers(kube)
    return peers if len(peers) == 2 else None


def log_with(kube: Kube, pod: str, text: str) -> str | None:
    logs = kube.kubectl("logs", pod, "-n", NAMESPACE)
    return logs if text in logs else None


def running_run(kube: Kube, dag: str, task_id: str) -> str | None:
    """Name of the run of `dag` whose task `task_id` is running."""
    for run in kube.items("dagruns", NAMESPACE):
        if (
            run["spec"]["dagRef"]["name"] == dag
            and run.get("status", {}).get("tasks", {}).get(task_id) == "Running"
        ):
            return str(run["metadata"]["name"])
    return None


def test_replicas_have_distinct_priorities_and_one_acts(two_replicas: Kube) -> None:
    peers = wait_for("both replicas in the peering object", lambda: two_live_peers(two_replicas), 90)
    assert sorted(peers) == sorted(controller_pods(two_replicas))
    assert len(set(peers.values())) == 2, f"equal priorities would pause both replicas: {peers}"
    standby = min(peers, key=lambda pod: peers[pod])
    logs = wait_for(f"the standby {standby} to pause", lambda: log_with(two_replicas, standby, "Pausing"), 60)
    assert "in favour of" in logs


def test_rolling_restart_hands_over_while_a_task_runs(two_replicas: Kube) -> None:
    """An upgrade replaces both replicas one by one; each leaves cleanly and the run goes on."""
    before = set(controller_pods(two_replicas))
    two_replicas.apply(NAMESPACE, SLOW_DAG.replace("slow-handoff", "slow-rollout"))
    run = wait_for("the slow task to run", lambda: running_run(two_replicas, "slow-rollout", "slow"), 120)
    deployment = f"deployment/{RELEASE}-controller"
    two_replicas.kubectl("rollout", "restart", deployment, "-n", NAMESPACE)
    two_replicas.kubectl("rollout", "status", deployment, "-n", NAMESPACE, "--timeout=180s")

    def finished() -> dict[str, Any] | None:
        status: dict[str, Any] = two_replicas.get("dagrun", run, NAMESPACE).get("status", {})
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_for(f"run {run} to finish across the rollout", finished, 180)
    assert status["phase"] == "Succeeded", status
    assert not before & set(controller_pods(two_replicas)), "the rollout replaced no replica"
    cm = two_replicas.get("configmap", names.xcom_configmap_name(run, "after"), NAMESPACE)
    assert cm["data"]["return_value"] == "made before the failover, read after it"


def test_standby_finishes_the_run_when_the_active_replica_dies(two_replicas: Kube) -> None:
    peers = wait_for("two live replicas", lambda: two_live_peers(two_replicas), 90)
    active = max(peers, key=lambda pod: peers[pod])
    standby = min(peers, key=lambda pod: peers[pod])
    two_replicas.apply(NAMESPACE, SLOW_DAG)
    run = wait_for("the slow task to run", lambda: running_run(two_replicas, "slow-handoff", "slow"), 120)

    # No replacement pod may outrank the standby: scale to one replica, choosing the active pod to go
    # (pod-deletion-cost), then kill it outright: no clean shutdown, no goodbye in the peering object, so the
    # standby takes over only when the dead replica's record expires (peering.lifetimeSeconds).
    two_replicas.kubectl(
        "annotate", "pod", active, "-n", NAMESPACE, "controller.kubernetes.io/pod-deletion-cost=-1000"
    )
    two_replicas.kubectl("scale", "deployment", f"{RELEASE}-controller", "-n", NAMESPACE, "--replicas=1")
    two_replicas.kubectl(
        "delete", "pod", active, "-n", NAMESPACE, "--grace-period=0", "--force", "--wait=false"
    )

    def finished() -> dict[str, Any] | None:
        status: dict[str, Any] = two_replicas.get("dagrun", run, NAMESPACE).get("status", {})
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_for(f"run {run} to finish after the failover", finished, 180)
    assert status["phase"] == "Succeeded", status
    assert controller_pods(two_replicas) == [standby]
    cm = two_replicas.get("configmap", names.xcom_configmap_name(run, "after"), NAMESPACE)
    assert cm["data"]["return_value"] == "made before the failover, read after it"
    assert log_with(two_replicas, standby, "Resuming operations"), "the standby never took over"
