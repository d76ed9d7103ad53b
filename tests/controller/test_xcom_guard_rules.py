"""The XCom guard's rules as kube-apiserver decides them, without a cluster.

`vap-eval` (tests/cluster/k8s/vap-eval, built by build-vap-eval) compiles the generated policy with the
API server's own CEL environment and validator, of the release the test cluster runs; each case here is one
admission request: the token's user and bound pod, the ConfigMap, what is written and what was stored.
tests/controller/test_xcom_guard.py makes the same writes on the cluster with real tokens.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from kdag import names, policy

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "team-a"
RUN_UID = "8f14e45f-ceea-467f-a0e6-0123456789ab"
EARLIER_RUN_UID = "0badcafe-1234-4abc-8def-0123456789ab"
"""A run of the same name made and deleted before this one."""
POD_NAME = "authentication.kubernetes.io/pod-name"


@cache
def vap_eval() -> str:
    """Path of the evaluator, built on first use (a few minutes the first time on a machine)."""
    built = subprocess.run(
        [str(ROOT / "tests" / "controller" / "build-vap-eval")], check=True, capture_output=True, text=True
    )
    return built.stdout.strip().splitlines()[-1]


def decide(guard: dict[str, Any], *requests: dict[str, Any]) -> list[dict[str, Any]]:
    """The decision on each request: matched (a task token), allowed, the refusals' messages."""
    answer = subprocess.run(
        [vap_eval()],
        input=json.dumps({"policy": guard, "requests": list(requests)}),
        check=True,
        capture_output=True,
        text=True,
    )
    decisions: list[dict[str, Any]] = json.loads(answer.stdout)
    for decision in decisions:
        assert decision["errors"] == [], decision  # every expression compiles and evaluates
    return decisions


def owner(uid: str = RUN_UID, kind: str = "DAGRun") -> dict[str, str]:
    return {"apiVersion": "kdag.dev/v1alpha1", "kind": kind, "name": "app", "uid": uid}


def configmap(name: str, *owners: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "labels": names.labels("d", "app", "t")}
    if owners:
        metadata["ownerReferences"] = list(owners)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"return_value": "x"}}


def write(
    pod: str | None,
    name: str,
    *,
    sent: dict[str, Any] | None = None,
    stored: dict[str, Any] | None = None,
    account: str = names.TASK_SERVICE_ACCOUNT,
    operation: str | None = None,
) -> dict[str, Any]:
    """A server-side apply by a token of `account` bound to `pod` (None: to no pod), as the runner makes it:
    a CREATE when nothing was `stored`, else an UPDATE; `sent` defaults to the runner's own ConfigMap."""
    return {
        "operation": operation or ("CREATE" if stored is None else "UPDATE"),
        "namespace": NAMESPACE,
        "name": name,
        "username": f"system:serviceaccount:{NAMESPACE}:{account}",
        "extra": {POD_NAME: [pod]} if pod else {"authentication.kubernetes.io/credential-id": ["JTI=1"]},
        "object": sent if sent is not None else (None if operation == "DELETE" else configmap(name, owner())),
        "oldObject": stored,
    }


GUARD = yaml.safe_load_all((ROOT / "deploy" / "xcom-guard.yaml").read_text()).__next__()
OWN = names.xcom_configmap_name("app", "config")
POD = names.pod_name("app", "config", 1, run_uid=RUN_UID)


def test_the_generated_guard_is_kdag_policys() -> None:
    assert policy.xcom_guard_policy() == GUARD


def test_a_task_creates_and_updates_its_own_configmap() -> None:
    retry = names.pod_name("app", "config", 2, run_uid=RUN_UID)
    decisions = decide(
        GUARD,
        write(POD, OWN),
        write(POD, OWN, stored=configmap(OWN, owner())),
        write(retry, OWN, stored=configmap(OWN, owner())),  # a retry replaces its own XComs
    )
    assert [(d["matched"], d["allowed"]) for d in decisions] == [(True, True)] * 3


def test_an_unrelated_configmap_named_like_the_run_and_task_is_refused() -> None:
    """Run `app` with task `config` once ran as pod `app-config-1`, which the guard let write an existing
    ConfigMap `app-config` that was no XCom at all."""
    (decision,) = decide(GUARD, write(POD, "app-config", stored=configmap("app-config")))
    assert not decision["allowed"]
    assert decision["messages"] == [
        f"task tokens may write only their own XCom ConfigMap: pod {POD} may not write ConfigMap app-config"
    ]


@pytest.mark.parametrize(
    "stored",
    [
        configmap(OWN),  # planted by someone who may write ConfigMaps, before the run existed
        configmap(OWN, owner(EARLIER_RUN_UID)),  # left by a deleted run of the same name
        configmap(OWN, owner(RUN_UID, kind="TaskRun")),
    ],
    ids=["planted-without-owner", "earlier-run-of-the-same-name", "owned-by-something-else"],
)
def test_a_configmap_that_existed_without_the_runs_ownership_is_refused(stored: dict[str, Any]) -> None:
    """What a pod writes would be merged into what is stored (server-side apply leaves other managers' keys):
    only a ConfigMap its own run made may be updated, whatever the write itself claims."""
    (decision,) = decide(GUARD, write(POD, OWN, stored=stored))
    assert not decision["allowed"]
    (message,) = decision["messages"]
    assert message.startswith(f"ConfigMap {OWN} was not made for the run of pod {POD}: ")
    assert "(uid 8f14e45f-...)" in message


@pytest.mark.parametrize(
    "sent",
    [
        configmap(OWN),
        configmap(OWN, owner(EARLIER_RUN_UID)),
        configmap(OWN, owner(), owner(EARLIER_RUN_UID)),
    ],
    ids=["no-owner", "another-runs-uid", "a-second-owner"],
)
def test_a_write_must_be_owned_by_exactly_the_pods_run(sent: dict[str, Any]) -> None:
    (created, updated) = decide(
        GUARD, write(POD, OWN, sent=sent), write(POD, OWN, sent=sent, stored=configmap(OWN, owner()))
    )
    assert not created["allowed"] and not updated["allowed"]
    assert created["messages"] == [
        f"pod {POD} may write ConfigMap {OWN} only with exactly one ownerReference, to its DAGRun"
        " (uid 8f14e45f-...)"
    ]


@pytest.mark.parametrize(
    ("writer", "victim"),
    [
        (("a", "b-c"), ("a-b", "c")),
        (("a-b", "c"), ("a", "b-c")),
        (("r", "202601010000-x"), ("r-202601010000", "x")),
        (("app", "config"), ("app", "other")),
    ],
)
def test_another_runs_or_tasks_configmap_is_refused(writer: tuple[str, str], victim: tuple[str, str]) -> None:
    pod = names.pod_name(*writer, 1, run_uid=RUN_UID)
    target = names.xcom_configmap_name(*victim)
    (created, updated) = decide(
        GUARD, write(pod, target), write(pod, target, stored=configmap(target, owner(EARLIER_RUN_UID)))
    )
    assert not created["allowed"] and not updated["allowed"]
    assert f"pod {pod} may not write ConfigMap {target}" in created["messages"][0]


def test_a_mapped_instance_writes_its_own_configmap_only() -> None:
    pod = names.pod_name("app", "square", 1, 2, run_uid=RUN_UID)
    own, task, sibling = (names.xcom_configmap_name("app", "square", i) for i in (2, None, 1))
    decisions = decide(GUARD, write(pod, own), write(pod, task), write(pod, sibling))
    assert [d["allowed"] for d in decisions] == [True, False, False]


def test_a_token_bound_to_no_pod_and_a_delete_are_refused() -> None:
    unbound, delete = decide(
        GUARD, write(None, OWN), write(POD, OWN, stored=configmap(OWN, owner()), operation="DELETE")
    )
    assert not unbound["allowed"] and not delete["allowed"]
    assert unbound["messages"] == [
        f"task tokens may write only their own XCom ConfigMap: pod (none) may not write ConfigMap {OWN}"
    ]
    assert delete["messages"] == [
        f"task tokens may not delete ConfigMaps: pod {POD} may not delete ConfigMap {OWN}"
    ]


def test_other_writers_are_left_alone() -> None:
    admin = {**write(None, "app-config"), "username": "kubernetes-admin", "extra": {}}
    other_account = write(POD, "app-config", account="default")
    assert [d["matched"] for d in decide(GUARD, admin, other_account)] == [False, False]


def test_a_renamed_task_service_account_is_guarded_by_the_guard_made_for_it() -> None:
    """The chart's taskRbac.serviceAccountName (KDAG_TASK_SERVICE_ACCOUNT): the guard made for `kdag-task`
    does not see that account's writes, the guard made for it refuses them as for `kdag-task`."""
    unrelated = write(POD, "app-config", stored=configmap("app-config"), account="team-task")
    own = write(POD, OWN, account="team-task")
    assert [d["matched"] for d in decide(GUARD, unrelated, own)] == [False, False]
    renamed = policy.xcom_guard_policy("team-task")
    refused, allowed = decide(renamed, unrelated, own)
    assert (refused["matched"], refused["allowed"], allowed["allowed"]) == (True, False, True)
