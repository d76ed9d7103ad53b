"""Who may do what: the controller's RBAC against a reviewed allow-list, the task ClusterRole it binds, and
the aggregated roles for people.

The allow-lists below are the review: each permission is one the controller uses (docs/security.md names
the call). A rule added to the chart fails these tests until it is added here too, with its reason there.
The cluster tests apply the rendered RBAC and ask the API server what the controller's ServiceAccount may do
(the review `kubectl auth can-i --list` prints), so aggregation, `bind` and escalation are the server's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, Kube
from kdag import policy
from test_chart_render import NAMESPACE, RELEASE, controller_env, one, render

Grant = tuple[str, str, str, str]
"""(API group, resource, verb, resource name or "" for any)."""


def grants(
    group: str, resources: Iterable[str], verbs: Iterable[str], names: Iterable[str] = ("",)
) -> set[Grant]:
    return {(group, r, v, n) for r in resources for v in verbs for n in names}


def granted(rules: Iterable[dict[str, Any]]) -> set[Grant]:
    """Every (group, resource, verb, name) that RBAC rules (or a rules review's resourceRules) grant."""
    return {
        (group, resource, verb, name)
        for rule in rules
        for group in rule.get("apiGroups") or [""]
        for resource in rule.get("resources") or []
        for verb in rule["verbs"]
        for name in rule.get("resourceNames") or [""]
    }


def namespaced_rules(task_role: str) -> set[Grant]:
    """What the controller may do in a namespace it serves: exactly the calls it makes there."""
    return (
        grants("kdag.dev", ["dags"], ["get", "list", "watch", "patch"])
        | grants("kdag.dev", ["dagruns"], ["get", "list", "watch", "create", "patch", "delete"])
        | grants("kdag.dev", ["taskruns"], ["get", "list", "watch", "create"])
        | grants("kdag.dev", ["dagversions"], ["get", "create"])
        | grants("kdag.dev", ["dags/status", "dagruns/status", "taskruns/status"], ["patch"])
        | grants("", ["pods"], ["get", "list", "watch", "create", "delete"])
        | grants("", ["events"], ["create"])
        | grants("", ["serviceaccounts"], ["create"])
        | grants("rbac.authorization.k8s.io", ["rolebindings"], ["create"])
        | grants("rbac.authorization.k8s.io", ["clusterroles"], ["bind"], [task_role])
    )


def cluster_scope_rules(task_role: str, peering: bool = True) -> set[Grant]:
    """The ClusterRole of a controller that serves every namespace."""
    rules = (
        namespaced_rules(task_role)
        | grants("rbac.authorization.k8s.io", ["clusterroles"], ["get"], [task_role])
        | grants("apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"])
    )
    if peering:
        rules |= grants("kopf.dev", ["clusterkopfpeerings"], ["list", "watch", "patch"])
    return rules


def namespace_scope_cluster_rules(task_role: str) -> set[Grant]:
    """All a controller serving named namespaces may do cluster-wide: read CRDs, namespaces, the task role."""
    return (
        grants("apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"])
        | grants("", ["namespaces"], ["list", "watch"])
        | grants("rbac.authorization.k8s.io", ["clusterroles"], ["get"], [task_role])
    )


def namespace_scope_role_rules(task_role: str, peering: bool = True) -> set[Grant]:
    """The Role of such a controller in each namespace it serves."""
    rules = namespaced_rules(task_role)
    if peering:
        rules |= grants("kopf.dev", ["kopfpeerings"], ["list", "watch", "patch"])
    return rules


# Kubernetes grants these to every authenticated user (system:basic-user): asking what one may do.
EVERY_AUTHENTICATED_USER = grants(
    "authorization.k8s.io", ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]
) | grants("authentication.k8s.io", ["selfsubjectreviews"], ["create"])

NEVER = {("", "configmaps"), ("", "secrets"), ("", "pods/exec"), ("", "pods/log")}
"""Resources no rule of the controller may name at all."""


def cluster_role(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return one(objects, "ClusterRole", name)


def test_cluster_scope_grants_exactly_the_reviewed_rules(helm: Path) -> None:
    objects = render(helm)
    role = cluster_role(objects, f"{RELEASE}-controller")
    assert granted(role["rules"]) == cluster_scope_rules(f"{RELEASE}-task")


def test_namespace_scope_grants_exactly_the_reviewed_rules(helm: Path) -> None:
    objects = render(helm, "rbac.scope=namespace", "watch.namespaces={team-a,team-b}")
    discovery = cluster_role(objects, f"{RELEASE}-{NAMESPACE}-discovery")
    assert granted(discovery["rules"]) == namespace_scope_cluster_rules(f"{RELEASE}-task")
    roles = [o for o in objects if o["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert granted(role["rules"]) == namespace_scope_role_rules(f"{RELEASE}-task")


def test_without_peering_no_peering_object_is_writable(helm: Path) -> None:
    objects = render(helm, "peering.enabled=false")
    role = cluster_role(objects, f"{RELEASE}-controller")
    assert granted(role["rules"]) == cluster_scope_rules(f"{RELEASE}-task", peering=False)
    objects = render(helm, "peering.enabled=false", "rbac.scope=namespace")
    assert granted(one(objects, "Role")["rules"]) == namespace_scope_role_rules(
        f"{RELEASE}-task", peering=False
    )


@pytest.mark.parametrize("settings", [(), ("rbac.scope=namespace",)], ids=["cluster", "namespace"])
def test_the_controller_never_touches_configmaps_or_secrets_and_never_updates(
    helm: Path, settings: tuple[str, ...]
) -> None:
    """Its own token cannot write any ConfigMap: tasks write XComs through the task ClusterRole it binds."""
    objects = render(helm, *settings)
    controller_roles = [
        o
        for o in objects
        if o["kind"] in ("ClusterRole", "Role")
        and "-task" not in o["metadata"]["name"]
        and not o["metadata"]["name"].endswith(("-view", "-edit"))
    ]
    assert controller_roles
    for role in controller_roles:
        for group, resource, verb, name in granted(role["rules"]):
            assert (group, resource) not in NEVER, role["metadata"]["name"]
            assert "*" not in (group, resource, verb)
            assert verb not in ("update", "deletecollection", "escalate", "impersonate"), (resource, verb)
            if resource == "clusterroles":
                assert name == f"{RELEASE}-task", "bind/get only the task ClusterRole, by name"


def test_the_controller_binds_the_task_cluster_role_it_is_told_of(helm: Path) -> None:
    """The ClusterRole the chart makes, the one the controller binds (KDAG_TASK_CLUSTER_ROLE) and the one it
    may `bind` are the same, for any release name."""
    objects = render(helm, "fullnameOverride=data-kdag")
    role = one(objects, "ClusterRole", "data-kdag-task")
    assert controller_env(objects)["KDAG_TASK_CLUSTER_ROLE"] == "data-kdag-task"
    controller = one(objects, "ClusterRole", "data-kdag-controller")
    assert ("rbac.authorization.k8s.io", "clusterroles", "bind", "data-kdag-task") in granted(
        controller["rules"]
    )
    binding = one(objects, "RoleBinding", "kdag-task")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }


def test_task_cluster_role_is_what_kdag_policy_makes(helm: Path) -> None:
    rendered = one(render(helm), "ClusterRole", f"{RELEASE}-task")
    labels = rendered["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == RELEASE
    made = policy.task_cluster_role(f"{RELEASE}-task")
    assert rendered["rules"] == made["rules"]
    assert {k: labels[k] for k in made["metadata"]["labels"]} == made["metadata"]["labels"]


def test_chart_task_cluster_role_file_is_the_generated_one() -> None:
    """files/task-clusterrole.yaml is deploy/task-clusterrole.yaml: run charts/kdag/sync-generated."""
    generated = (CHART.parents[1] / "deploy" / "task-clusterrole.yaml").read_text()
    assert (CHART / "files" / "task-clusterrole.yaml").read_text() == generated
    assert yaml.safe_load(generated) == policy.task_cluster_role()


def test_no_task_role_is_made_per_namespace(helm: Path) -> None:
    """The task permissions live in one ClusterRole; namespaces get only a ServiceAccount and a binding."""
    objects = render(helm, "rbac.scope=namespace", "watch.namespaces={team-a,team-b}")
    assert not [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "kdag-task"]
    bindings = [o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "kdag-task"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]


def test_user_roles_aggregate_into_view_and_edit(helm: Path) -> None:
    objects = render(helm)
    view = cluster_role(objects, f"{RELEASE}-view")
    edit = cluster_role(objects, f"{RELEASE}-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-edit" not in view["metadata"]["labels"]
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    read = grants("kdag.dev", ["dags", "dagruns", "taskruns", "dagversions"], ["get", "list", "watch"])
    assert granted(view["rules"]) == read
    # DAGVersions, like TaskRuns, are the controller's: people read them, never write them.
    write = grants("kdag.dev", ["dags", "dagruns"], ["create", "update", "patch", "delete"])
    assert granted(edit["rules"]) == read | write
    assert not any(resource.endswith("/status") for _, resource, _, _ in granted(edit["rules"]))


def test_no_user_roles_when_not_wanted(helm: Path) -> None:
    names = {
        o["metadata"]["name"] for o in render(helm, "userRoles.create=false") if o["kind"] == "ClusterRole"
    }
    assert names == {f"{RELEASE}-controller", f"{RELEASE}-task"}


def test_nothing_cluster_wide_but_reading_when_scoped_to_namespaces(helm: Path) -> None:
    """Besides the task and user roles (bound in namespaces only), a namespaced release only reads."""
    objects = render(helm, "rbac.scope=namespace", "userRoles.create=false")
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"} == {
        f"{RELEASE}-{NAMESPACE}-discovery",
        f"{RELEASE}-task",
    }
    assert [o["roleRef"]["name"] for o in objects if o["kind"] == "ClusterRoleBinding"] == [
        f"{RELEASE}-{NAMESPACE}-discovery"
    ]


# --- on the cluster: what the API server says the controller's ServiceAccount may do ---

PROBE_RELEASE = "kdag-rbac-probe"
PROBE_NAMESPACE = "kdag-rbac-probe"


def effective_permissions(kube: Kube, account: str, namespace: str) -> set[Grant]:
    """What `account` may do in `namespace` (`kubectl auth can-i --list`'s review), less what every
    authenticated user may."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    answer = kube.kubectl("create", "-f", "-", "-o", "json", f"--as={account}", stdin=json.dumps(review))
    return granted(json.loads(answer)["status"]["resourceRules"]) - EVERY_AUTHENTICATED_USER


def can_i(kube: Kube, account: str, *args: str) -> bool:
    return kube.kubectl("auth", "can-i", *args, f"--as={account}", check=False).strip() == "yes"


def service_account(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


@pytest.fixture(scope="module")
def rendered_rbac(kubeconfig: str, helm: Path) -> Iterator[Kube]:
    """The chart's RBAC of a cluster-wide release applied alone (no controller runs): ServiceAccount
    `kdag-rbac-probe`, its ClusterRole and binding, the task ClusterRole `kdag-rbac-probe-task`."""
    kube = Kube(Path(kubeconfig), helm)
    kube.fresh_namespace(PROBE_NAMESPACE)
    args = [str(helm), "template", PROBE_RELEASE, str(CHART), "--namespace", PROBE_NAMESPACE]
    for template in ("serviceaccount", "rbac", "task-rbac"):
        args += ["--show-only", f"templates/{template}.yaml"]
    manifests = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    kube.kubectl("apply", "-f", "-", stdin=manifests)
    try:
        yield kube
    finally:
        kube.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=true", stdin=manifests, check=False)
        kube.kubectl("delete", "namespace", PROBE_NAMESPACE, "--wait=false", check=False)


@pytest.mark.cluster
def test_cluster_wide_controller_may_do_exactly_the_reviewed_things(rendered_rbac: Kube) -> None:
    account = service_account(PROBE_NAMESPACE, PROBE_RELEASE)
    expected = cluster_scope_rules(f"{PROBE_RELEASE}-task")
    for namespace in (PROBE_NAMESPACE, "default"):
        assert effective_permissions(rendered_rbac, account, namespace) == expected, namespace


@pytest.mark.cluster
def test_cluster_wide_controller_binds_the_task_role_but_writes_no_configmap(rendered_rbac: Kube) -> None:
    """RBAC's escalation check lets `bind` on the task ClusterRole stand for holding its permissions: the
    controller can give tasks ConfigMap writes in a namespace, and cannot write a ConfigMap itself."""
    kube, account = rendered_rbac, service_account(PROBE_NAMESPACE, PROBE_RELEASE)
    for verb in ("create", "patch", "update", "delete", "get"):
        assert not can_i(kube, account, verb, "configmaps", "--all-namespaces"), verb
    assert not can_i(kube, account, "get", "secrets", "--all-namespaces")
    binding = policy.task_role_binding(PROBE_NAMESPACE, "kdag-rbac-probe-tasks", f"{PROBE_RELEASE}-task")
    kube.kubectl("create", "-f", "-", f"--as={account}", stdin=json.dumps(binding))
    kube.kubectl("delete", "rolebinding", "kdag-rbac-probe-tasks", "-n", PROBE_NAMESPACE)
    # Any other role, even one that grants only reading, is refused: bind names one ClusterRole.
    other = policy.task_role_binding(PROBE_NAMESPACE, "kdag-rbac-probe-view", "view")
    refused = subprocess.run(
        ["kubectl", "--kubeconfig", str(kube.kubeconfig), "create", "-f", "-", f"--as={account}"],
        input=json.dumps(other), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
