"""What the controller makes in a namespace for its task pods: a ServiceAccount and a RoleBinding, both owned
by the task ClusterRole (so `helm uninstall`, which deletes that ClusterRole, removes them), and no Role."""

from __future__ import annotations

import pytest
from fake_api import FakeApi, runtime_over
from kdag import names
from kdag.handlers.task_rbac import ensure_task_rbac


async def test_the_task_account_and_binding_are_owned_by_the_task_cluster_role() -> None:
    api = FakeApi()
    await ensure_task_rbac(runtime_over(api), "team-a")
    made = {kind: obj for (kind, _), obj in api.objects.items() if kind != "ClusterRole"}
    assert sorted(made) == ["RoleBinding", "ServiceAccount"]
    role = api.objects[("ClusterRole", names.TASK_CLUSTER_ROLE)]
    for obj in made.values():
        assert obj["metadata"]["namespace"] == "team-a"
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "name": names.TASK_CLUSTER_ROLE,
                "uid": role["metadata"]["uid"],
            }
        ]
    assert made["RoleBinding"]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": names.TASK_CLUSTER_ROLE,
    }


async def test_a_missing_task_cluster_role_is_named_and_nothing_is_made() -> None:
    api = FakeApi()
    del api.objects[("ClusterRole", names.TASK_CLUSTER_ROLE)]
    runtime = runtime_over(api)
    with pytest.raises(RuntimeError, match=r"ClusterRole kdag-task .* does not exist") as raised:
        await ensure_task_rbac(runtime, "team-a")
    assert "deploy/task-clusterrole.yaml" in str(raised.value)
    assert not api.objects
    assert "team-a" not in runtime.rbac_ready
