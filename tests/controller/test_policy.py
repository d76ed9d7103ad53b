"""The task RBAC objects and the XCom guard manifests (their effect is tested in test_xcom_guard.py)."""

from __future__ import annotations

import pytest
import yaml
from kdag import policy
from kdag.api import generate


def test_task_cluster_role_allows_configmap_create_and_patch_only() -> None:
    role = policy.task_cluster_role()
    assert role["kind"] == "ClusterRole"
    assert role["metadata"] == {"name": "kdag-task", "labels": {"app.kubernetes.io/managed-by": "kdag"}}
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "patch"]}]


def test_task_rbac_binds_the_cluster_role_and_makes_no_role() -> None:
    """A namespace gets an account and a binding; the permissions are the one ClusterRole's."""
    account, binding = policy.task_rbac("team-a")
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"] == {
        "name": "kdag-task",
        "namespace": "team-a",
        "labels": {"app.kubernetes.io/managed-by": "kdag"},
    }
    assert account["automountServiceAccountToken"] is False
    assert binding["kind"] == "RoleBinding"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "kdag-task",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kdag-task", "namespace": "team-a"}]


def test_task_rbac_owned_by_the_cluster_role_goes_with_it() -> None:
    """The controller's objects name the ClusterRole as their owner: deleting it deletes them everywhere."""
    for obj in policy.task_rbac("team-a", cluster_role="kdag-e2e-task", owner_uid="0f0e"):
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "name": "kdag-e2e-task",
                "uid": "0f0e",
            }
        ]
    binding = policy.task_role_binding("team-a", cluster_role="kdag-e2e-task")
    assert binding["roleRef"]["name"] == "kdag-e2e-task"


def test_guard_matches_task_tokens_writing_configmaps() -> None:
    guard, binding = policy.xcom_guard()
    assert guard["kind"] == "ValidatingAdmissionPolicy"
    assert guard["metadata"]["name"] == "kdag-xcom-guard"
    (rule,) = guard["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["configmaps"]
    assert {"CREATE", "UPDATE"} <= set(rule["operations"])
    (condition,) = guard["spec"]["matchConditions"]
    assert condition["expression"].endswith('endsWith(":kdag-task")')
    assert {v["reason"] for v in guard["spec"]["validations"]} == {"Forbidden"}
    assert "authentication.kubernetes.io/pod-name" in guard["spec"]["variables"][0]["expression"]
    assert binding["spec"] == {"policyName": "kdag-xcom-guard", "validationActions": ["Deny"]}


def test_guard_decides_by_the_token_and_the_stored_configmap_never_by_what_the_writer_claims() -> None:
    """What the writer sends (object) must be owned by the run the pod name carries; what was stored before
    (oldObject) must have been. Labels, which a writer sets, decide nothing. tests/controller/
    test_xcom_guard_rules.py evaluates these expressions as kube-apiserver does."""
    expressions = " ".join(v["expression"] for v in policy.xcom_guard_policy()["spec"]["validations"])
    assert "object.metadata.ownerReferences" in expressions
    assert "oldObject.metadata.ownerReferences" in expressions
    assert 'o.kind == "DAGRun"' in expressions and "o.uid.startsWith(variables.runUidTag" in expressions
    assert "labels" not in expressions


def test_guard_follows_the_task_service_account_name() -> None:
    """KDAG_TASK_SERVICE_ACCOUNT renames the account task pods run as: the guard must name it too (before,
    a renamed account's tokens matched no guard and could write any ConfigMap of their namespace)."""
    guard, binding = policy.xcom_guard("team-task", name="kdag-xcom-guard-team")
    assert guard["spec"]["matchConditions"][0]["expression"] == policy.task_token_condition("team-task")
    assert policy.task_token_condition("team-task").endswith('endsWith(":team-task")')
    assert guard["metadata"]["name"] == binding["metadata"]["name"] == "kdag-xcom-guard-team"
    assert binding["spec"]["policyName"] == "kdag-xcom-guard-team"
    default = policy.xcom_guard_policy()
    assert guard["spec"]["validations"] == default["spec"]["validations"]


def test_the_guard_for_a_renamed_account_is_printed_for_host_run_controllers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert generate.main(["--xcom-guard-for", "team-task"]) == 0
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    assert printed == policy.xcom_guard("team-task")
