"""The task RBAC objects and the XCom guard manifests (their effect is tested in test_xcom_guard.py)."""

from __future__ import annotations

from kdag import policy


def test_task_rbac_allows_configmap_create_and_patch_only() -> None:
    account, role, binding = policy.task_rbac("team-a")
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"] == {
        "name": "kdag-task",
        "namespace": "team-a",
        "labels": {"app.kubernetes.io/managed-by": "kdag"},
    }
    assert account["automountServiceAccountToken"] is False
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "patch"]}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "kdag-task",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kdag-task", "namespace": "team-a"}]


def test_guard_matches_task_tokens_writing_configmaps() -> None:
    guard, binding = policy.xcom_guard()
    assert guard["kind"] == "ValidatingAdmissionPolicy"
    assert guard["metadata"]["name"] == "kdag-xcom-guard"
    (rule,) = guard["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["configmaps"]
    assert {"CREATE", "UPDATE"} <= set(rule["operations"])
    (condition,) = guard["spec"]["matchConditions"]
    assert condition["expression"].endswith('endsWith(":kdag-task")')
    (validation,) = guard["spec"]["validations"]
    assert validation["reason"] == "Forbidden"
    assert "authentication.kubernetes.io/pod-name" in guard["spec"]["variables"][0]["expression"]
    assert binding["spec"] == {"policyName": "kdag-xcom-guard", "validationActions": ["Deny"]}


def test_guard_for_another_service_account_name() -> None:
    guard = policy.xcom_guard_policy("custom-sa")
    assert guard["spec"]["matchConditions"][0]["expression"].endswith('endsWith(":custom-sa")')
