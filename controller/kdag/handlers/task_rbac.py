"""The task ServiceAccount and its RoleBinding to the task ClusterRole in a run's namespace, before the run's
first pod: made once per namespace per process (`policy.task_rbac` says what they are)."""

from __future__ import annotations

from kdag import policy
from kdag.handlers.runtime import Runtime
from kdag.kube import CLUSTERROLE


async def ensure_task_rbac(runtime: Runtime, namespace: str) -> None:
    """The task ServiceAccount and its RoleBinding to the task ClusterRole, made once per namespace per
    process, owned by that ClusterRole so that deleting it (`helm uninstall`) removes them."""
    if namespace in runtime.rbac_ready:
        return
    account, role_name = runtime.settings.task_service_account, runtime.settings.task_cluster_role
    role = await runtime.api.get(CLUSTERROLE, "", role_name)
    if role is None:
        raise RuntimeError(
            f"ClusterRole {role_name} (KDAG_TASK_CLUSTER_ROLE) does not exist, so task pods could not write"
            " their XComs: it comes with the chart, or from deploy/task-clusterrole.yaml"
        )
    for obj in policy.task_rbac(namespace, account, role_name, role["metadata"]["uid"]):
        await runtime.api.create_if_absent(obj, namespace)
    runtime.rbac_ready.add(namespace)
