"""Pure manifests of who may write XComs: the task RBAC objects of a namespace and the cluster-wide guard.

RBAC alone cannot say "only your own ConfigMap" for names that do not exist yet, so the task ClusterRole,
bound in each namespace, lets task pods create/patch ConfigMaps, and the ValidatingAdmissionPolicy
`kdag-xcom-guard` narrows that to the XCom ConfigMap made for the writer's own pod: named as its pod minus
`-{run uid tag}-{attempt}`, owned by the DAGRun whose uid the pod name carries, before the write and after
(docs/design.md, "The XCom store"; docs/security.md).
"""

from __future__ import annotations

from typing import Any

from kdag_runner import keys

from kdag import names

POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"


def _labels() -> dict[str, str]:
    return {names.MANAGED_BY_LABEL: names.MANAGED_BY}


def _metadata(name: str, namespace: str, cluster_role: str, owner_uid: str | None) -> dict[str, Any]:
    """Metadata of a task RBAC object; owned by the task ClusterRole when its uid is given, so that deleting
    the ClusterRole (`helm uninstall`) makes the garbage collector remove the object in every namespace."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": _labels()}
    if owner_uid is not None:
        owner = {"apiVersion": RBAC_API_VERSION, "kind": "ClusterRole", "name": cluster_role}
        metadata["ownerReferences"] = [{**owner, "uid": owner_uid}]
    return metadata


def task_cluster_role(name: str = names.TASK_CLUSTER_ROLE) -> dict[str, Any]:
    """configmaps create/patch only: a task can write XComs but read nothing through the API.

    One ClusterRole, made by whoever installs kdag (the chart, or deploy/task-clusterrole.yaml): the
    controller only binds it (RBAC `bind` on this one name), so it needs no ConfigMap write access itself.
    """
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": _labels()},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "patch"]}],
    }


def task_service_account(
    namespace: str,
    name: str = names.TASK_SERVICE_ACCOUNT,
    cluster_role: str = names.TASK_CLUSTER_ROLE,
    owner_uid: str | None = None,
) -> dict[str, Any]:
    """The ServiceAccount task pods run as; its token is mounted only where XComs are pushed."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(name, namespace, cluster_role, owner_uid),
        "automountServiceAccountToken": False,
    }


def task_role_binding(
    namespace: str,
    name: str = names.TASK_SERVICE_ACCOUNT,
    cluster_role: str = names.TASK_CLUSTER_ROLE,
    owner_uid: str | None = None,
) -> dict[str, Any]:
    """Binds the task ClusterRole to the task ServiceAccount, in this namespace only."""
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "RoleBinding",
        "metadata": _metadata(name, namespace, cluster_role, owner_uid),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }


def task_rbac(
    namespace: str,
    name: str = names.TASK_SERVICE_ACCOUNT,
    cluster_role: str = names.TASK_CLUSTER_ROLE,
    owner_uid: str | None = None,
) -> list[dict[str, Any]]:
    """The ServiceAccount and RoleBinding the task pods of a namespace need (the ClusterRole is made once).

    `owner_uid`: the uid of the ClusterRole `cluster_role`, which then owns both (the controller's objects;
    the chart's own are deleted by Helm).
    """
    return [
        task_service_account(namespace, name, cluster_role, owner_uid),
        task_role_binding(namespace, name, cluster_role, owner_uid),
    ]


def task_token_condition(service_account: str = names.TASK_SERVICE_ACCOUNT) -> str:
    """CEL: the request comes with a token of the task ServiceAccount `service_account` (any namespace).
    The chart builds the same expression from `taskRbac.serviceAccountName` (tests/helm compare them)."""
    return (
        'request.userInfo.username.startsWith("system:serviceaccount:")'
        f' && request.userInfo.username.endsWith(":{service_account}")'
    )


def _owned_by_run(obj: str) -> str:
    """CEL: `obj` (object or oldObject) has exactly one owner, the DAGRun whose uid the pod name carries."""
    owners = f"{obj}.metadata.ownerReferences"
    return (
        f"has({owners}) && size({owners}) == 1 && {owners}.all(o,"
        f' o.apiVersion == "{keys.API_VERSION}" && o.kind == "{keys.DAGRUN_KIND}"'
        ' && o.uid.startsWith(variables.runUidTag + "-"))'
    )


def xcom_guard_policy(
    service_account: str = names.TASK_SERVICE_ACCOUNT, name: str = names.XCOM_GUARD
) -> dict[str, Any]:
    """ValidatingAdmissionPolicy: a task token may write only the XCom ConfigMap made for its own pod.

    Everything it decides by comes from the token (the pod it is bound to, whose name the controller
    chose: `names.pod_name`, `{configmap}-{run uid tag}-{attempt}`) and from the ConfigMap as stored, never
    from what the writer claims: the name must be the pod's `{configmap}`; the ConfigMap written must be
    owned by exactly the DAGRun whose uid starts with the pod's tag; and a ConfigMap that exists already
    must have been owned by it before this write (so one made before the run, by anyone, is refused).
    """
    extra = f'request.userInfo.extra["{POD_NAME_EXTRA}"]'
    pod = '(variables.podName == "" ? "(none)" : variables.podName)'
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": _labels()},
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
            "matchConditions": [
                {"name": "task-service-account", "expression": task_token_condition(service_account)}
            ],
            "variables": [
                {
                    "name": "podName",
                    "expression": "has(request.userInfo.extra)"
                    f' && "{POD_NAME_EXTRA}" in request.userInfo.extra'
                    f' && size({extra}) == 1 ? {extra}[0] : ""',
                },
                {
                    # What follows `{configmap}-` in the pod's name: `{run uid tag}-{attempt}`.
                    "name": "podSuffix",
                    "expression": 'variables.podName.startsWith(request.name + "-")'
                    ' ? variables.podName.substring(size(request.name) + 1) : ""',
                },
                {
                    "name": "runUidTag",
                    "expression": f'variables.podSuffix.matches("^[0-9a-f]{{{names.RUN_UID_TAG_LENGTH}}}'
                    '-[1-9][0-9]*$")'
                    f' ? variables.podSuffix.substring(0, {names.RUN_UID_TAG_LENGTH}) : ""',
                },
            ],
            "validations": [
                {
                    "expression": 'request.operation != "DELETE"',
                    "messageExpression": '"task tokens may not delete ConfigMaps: pod " + '
                    + pod
                    + ' + " may not delete ConfigMap " + request.name',
                    "reason": "Forbidden",
                },
                {
                    "expression": 'request.operation == "DELETE" || variables.runUidTag != ""',
                    "messageExpression": '"task tokens may write only their own XCom ConfigMap: pod " + '
                    + pod
                    + ' + " may not write ConfigMap " + request.name',
                    "reason": "Forbidden",
                },
                {
                    "expression": 'request.operation == "DELETE" || variables.runUidTag == ""'
                    f" || ({_owned_by_run('object')})",
                    "messageExpression": '"pod " + variables.podName + " may write ConfigMap " + request.name'
                    ' + " only with exactly one ownerReference, to its DAGRun (uid "'
                    ' + variables.runUidTag + "-...)"',
                    "reason": "Forbidden",
                },
                {
                    "expression": 'request.operation != "UPDATE" || variables.runUidTag == ""'
                    f" || ({_owned_by_run('oldObject')})",
                    "messageExpression": '"ConfigMap " + request.name + " was not made for the run of pod "'
                    ' + variables.podName + ": it exists without the one ownerReference to that DAGRun (uid "'
                    ' + variables.runUidTag + "-...), so it was made before the run or by someone else"',
                    "reason": "Forbidden",
                },
            ],
        },
    }


def xcom_guard_binding(name: str = names.XCOM_GUARD) -> dict[str, Any]:
    """Binds the guard cluster-wide, denying (HTTP 403) what it refuses."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": _labels()},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }


def xcom_guard(
    service_account: str = names.TASK_SERVICE_ACCOUNT, name: str = names.XCOM_GUARD
) -> list[dict[str, Any]]:
    """The guard policy and its binding for the task ServiceAccount `service_account`
    (deploy/xcom-guard.yaml: `kdag-task`; the chart: `taskRbac.serviceAccountName`)."""
    return [xcom_guard_policy(service_account, name), xcom_guard_binding(name)]
