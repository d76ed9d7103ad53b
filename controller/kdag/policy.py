"""Pure manifests of who may write XComs: the task RBAC objects of a namespace and the cluster-wide guard.

RBAC alone cannot say "only your own ConfigMap" for names that do not exist yet, so the Role lets task pods
create/patch ConfigMaps and the ValidatingAdmissionPolicy `kdag-xcom-guard` narrows that to the ConfigMap
whose name is the writer's pod name minus its `-{attempt}` suffix (docs/design.md, "The write guard").
"""

from __future__ import annotations

from typing import Any

from kdag import names

POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"


def _labels() -> dict[str, str]:
    return {names.MANAGED_BY_LABEL: names.MANAGED_BY}


def task_service_account(namespace: str, name: str = names.TASK_SERVICE_ACCOUNT) -> dict[str, Any]:
    """The ServiceAccount task pods run as; its token is mounted only where XComs are pushed."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels()},
        "automountServiceAccountToken": False,
    }


def task_role(namespace: str, name: str = names.TASK_SERVICE_ACCOUNT) -> dict[str, Any]:
    """configmaps create/patch only: a task can write XComs but read nothing through the API."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels()},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "patch"]}],
    }


def task_role_binding(namespace: str, name: str = names.TASK_SERVICE_ACCOUNT) -> dict[str, Any]:
    """Binds the task Role to the task ServiceAccount."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels()},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }


def task_rbac(namespace: str, name: str = names.TASK_SERVICE_ACCOUNT) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding the task pods of a namespace need."""
    return [
        task_service_account(namespace, name),
        task_role(namespace, name),
        task_role_binding(namespace, name),
    ]


def xcom_guard_policy(service_account: str = names.TASK_SERVICE_ACCOUNT) -> dict[str, Any]:
    """ValidatingAdmissionPolicy: a task token may write only the ConfigMap named after its own pod."""
    extra = f'request.userInfo.extra["{POD_NAME_EXTRA}"]'
    writer = (
        'request.userInfo.username.startsWith("system:serviceaccount:")'
        f' && request.userInfo.username.endsWith(":{service_account}")'
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": names.XCOM_GUARD, "labels": _labels()},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "matchConditions": [{"name": "task-service-account", "expression": writer}],
            "variables": [
                {
                    "name": "podName",
                    "expression": f'"{POD_NAME_EXTRA}" in request.userInfo.extra'
                    f' && size({extra}) == 1 ? {extra}[0] : ""',
                }
            ],
            "validations": [
                {
                    "expression": 'variables.podName != ""'
                    ' && variables.podName.startsWith(request.name + "-")'
                    ' && variables.podName.substring(size(request.name) + 1).matches("^[0-9]+$")',
                    "messageExpression": '"kdag-task tokens may write only their own XCom ConfigMap: pod "'
                    ' + (variables.podName == "" ? "(none)" : variables.podName)'
                    ' + " may not write ConfigMap " + request.name',
                    "reason": "Forbidden",
                }
            ],
        },
    }


def xcom_guard_binding() -> dict[str, Any]:
    """Binds the guard cluster-wide, denying (HTTP 403) what it refuses."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": names.XCOM_GUARD, "labels": _labels()},
        "spec": {"policyName": names.XCOM_GUARD, "validationActions": ["Deny"]},
    }


def xcom_guard() -> list[dict[str, Any]]:
    """The guard policy and its binding (deploy/xcom-guard.yaml)."""
    return [xcom_guard_policy(), xcom_guard_binding()]
