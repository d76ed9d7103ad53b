"""The chart lints and renders cleanly, and what it renders holds together (no cluster needed)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from kdag import policy

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kdag"
RELEASE = "kdag"
NAMESPACE = "kdag-system"


def render(helm: Path, *settings: str) -> list[dict[str, Any]]:
    """`helm template` with `--set` values; the objects it prints."""
    args = [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for setting in settings:
        args += ["--set", setting]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render_error(helm: Path, *settings: str) -> str:
    args = [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for setting in settings:
        args += ["--set", setting]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode != 0, result.stdout
    return result.stderr


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} objects of kind {kind} named {name}"
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> set[str]:
    return {o["kind"] for o in objects}


def controller_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_chart_crds_are_the_generated_crds() -> None:
    """charts/kdag/crds/ carries crds/ unchanged (copy them with `cp crds/*.yaml charts/kdag/crds/`)."""
    generated = sorted((REPO / "crds").glob("*.yaml"))
    assert generated, "crds/ holds no CRDs: run `python -m kdag.api.generate`"
    for source in generated:
        copy = CHART / "crds" / source.name
        assert copy.exists(), f"{copy} is missing: run charts/kdag/sync-generated"
        assert copy.read_text() == source.read_text(), (
            f"{copy} differs from {source}: run charts/kdag/sync-generated"
        )
    extra = {p.name for p in (CHART / "crds").glob("*.yaml")} - {p.name for p in generated}
    assert extra == {"kopf-peering.yaml"}


@pytest.mark.parametrize(
    "settings",
    [
        (),
        ("rbac.scope=namespace",),
        ("rbac.scope=namespace", "watch.namespaces={team-a,team-b}", "replicas=2"),
        ("webhook.certManager.enabled=true",),
        ("webhook.enabled=false", "peering.enabled=false"),
        ("ui.enabled=true", "ui.allowTrigger=true", "ui.namespaces={team-a}", "ui.nodeSelector.disk=ssd"),
    ],
    ids=["default", "namespace-scope", "two-namespaces-two-replicas", "cert-manager", "minimal", "ui"],
)
def test_helm_lint_is_clean(helm: Path, settings: tuple[str, ...]) -> None:
    args = [str(helm), "lint", "--strict", str(CHART)]
    for setting in settings:
        args += ["--set", setting]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[INFO]" not in result.stdout and "[WARNING]" not in result.stdout, result.stdout


def test_default_install_is_cluster_wide(helm: Path) -> None:
    objects = render(helm)
    assert {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"} <= kinds(objects)
    assert "Role" not in kinds(objects)  # tasks get the one task ClusterRole through a RoleBinding
    assert controller_env(objects)["KDAG_NAMESPACES"] == ""
    # Task RBAC lands in the release namespace when every namespace is watched.
    task_sa = one(objects, "ServiceAccount", "kdag-task")
    assert task_sa["metadata"]["namespace"] == NAMESPACE


def test_namespace_scope_grants_nothing_cluster_wide_but_reading_namespaces_and_crds(helm: Path) -> None:
    objects = render(helm, "rbac.scope=namespace", "watch.namespaces={team-a,team-b}")
    assert "ClusterKopfPeering" not in kinds(objects)
    discovery = one(objects, "ClusterRole", f"{RELEASE}-{NAMESPACE}-discovery")
    for rule in discovery["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert set(rule["resources"]) <= {"namespaces", "customresourcedefinitions", "clusterroles"}
    (binding,) = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == discovery["metadata"]["name"]
    roles = [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "kdag-controller"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    peerings = [o for o in objects if o["kind"] == "KopfPeering"]
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert controller_env(objects)["KDAG_NAMESPACES"] == "team-a,team-b"
    hook = one(objects, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["team-a", "team-b"]
    task_accounts = [
        o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "kdag-task"
    ]
    assert sorted(a["metadata"]["namespace"] for a in task_accounts) == ["team-a", "team-b"]


def test_namespace_scope_without_namespaces_serves_the_release_namespace(helm: Path) -> None:
    objects = render(helm, "rbac.scope=namespace")
    assert controller_env(objects)["KDAG_NAMESPACES"] == NAMESPACE
    assert one(objects, "KopfPeering")["metadata"]["namespace"] == NAMESPACE


def test_controller_pod_is_locked_down_and_probed(helm: Path) -> None:
    deployment = one(objects := render(helm, "replicas=2"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["requests"]["memory"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = controller_env(objects)
    assert env["KDAG_LIVENESS_ENDPOINT"] == f"http://0.0.0.0:{ports['health']}/healthz"
    assert env["KDAG_METRICS_PORT"] == str(ports["metrics"])
    assert env["KDAG_WEBHOOK_PORT"] == str(ports["webhook"])
    assert env["KDAG_PEERING"] == "kdag"
    assert "KDAG_PEERING_PRIORITY" not in env, "replicas derive distinct priorities themselves"


def test_webhook_certificate_is_trusted_through_the_ca_bundle(helm: Path) -> None:
    objects = render(helm)
    secret = one(objects, "Secret")
    hook = one(objects, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    service = one(objects, "Service")
    assert hook["clientConfig"]["service"]["name"] == service["metadata"]["name"]
    assert hook["clientConfig"]["service"]["path"] == "/dags.kdag.dev"
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert f"{service['metadata']['name']}.{NAMESPACE}.svc" in names
    mounted = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook-tls", "secret": {"secretName": secret["metadata"]["name"]}} in mounted


def test_cert_manager_replaces_the_generated_secret(helm: Path) -> None:
    objects = render(helm, "webhook.certManager.enabled=true")
    assert "Secret" not in kinds(objects)
    certificate = one(objects, "Certificate")
    config = one(objects, "ValidatingWebhookConfiguration")
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/{certificate['metadata']['name']}"
    )


def test_two_replicas_without_peering_is_refused(helm: Path) -> None:
    assert "replicas > 1 needs peering.enabled=true" in render_error(
        helm, "replicas=2", "peering.enabled=false"
    )


def test_unknown_rbac_scope_is_refused_by_name(helm: Path) -> None:
    assert "at '/rbac/scope'" in render_error(helm, "rbac.scope=everything")


def without_release_labels(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as kdag.policy makes it: only kdag's managed-by label."""
    labels = obj["metadata"]["labels"]
    return {
        **obj,
        "metadata": {**obj["metadata"], "labels": {k: labels[k] for k in labels if k in POLICY_LABELS}},
    }


POLICY_LABELS = {"app.kubernetes.io/managed-by"}


def test_xcom_guard_is_what_kdag_policy_makes(helm: Path) -> None:
    rendered = [o for o in render(helm) if o["kind"].startswith("ValidatingAdmissionPolicy")]
    assert [without_release_labels(o) for o in rendered] == policy.xcom_guard()


def test_a_renamed_task_service_account_is_run_as_bound_and_guarded(helm: Path) -> None:
    """taskRbac.serviceAccountName: the controller runs task pods as it (KDAG_TASK_SERVICE_ACCOUNT), the chart
    binds it, and the XCom guard applies to its tokens (before, the guard named `kdag-task` whatever the
    account was, so a renamed account's tasks could write any ConfigMap of their namespace)."""
    objects = render(
        helm, "rbac.scope=namespace", "watch.namespaces={team-a}", "taskRbac.serviceAccountName=team-task"
    )
    assert controller_env(objects)["KDAG_TASK_SERVICE_ACCOUNT"] == "team-task"
    rbac = [
        without_release_labels(o)
        for o in objects
        if o["metadata"].get("namespace") == "team-a" and o["metadata"]["name"] == "team-task"
    ]
    assert rbac == policy.task_rbac("team-a", "team-task", f"{RELEASE}-task")
    guard = [without_release_labels(o) for o in objects if o["kind"].startswith("ValidatingAdmissionPolicy")]
    assert guard == policy.xcom_guard("team-task")
    assert controller_env(render(helm))["KDAG_TASK_SERVICE_ACCOUNT"] == "kdag-task"


def test_task_rbac_is_what_kdag_policy_makes(helm: Path) -> None:
    objects = render(helm, "rbac.scope=namespace", "watch.namespaces={team-a,team-b}")
    for namespace in ("team-a", "team-b"):
        rendered = [
            without_release_labels(o)
            for o in objects
            if o["metadata"].get("namespace") == namespace and o["metadata"]["name"] == "kdag-task"
        ]
        assert rendered == policy.task_rbac(namespace)


def test_task_namespaces_are_created_only_when_asked_and_kept_at_uninstall(helm: Path) -> None:
    """The README's install names a namespace that may not exist yet: with taskRbac.createNamespaces the
    chart makes it (before the ServiceAccount in it), and `helm uninstall` keeps it with the DAGs in it."""
    assert "Namespace" not in kinds(render(helm, "taskRbac.namespaces={data-team}"))
    objects = render(helm, "taskRbac.namespaces={data-team,etl}", "taskRbac.createNamespaces=true")
    for name in ("data-team", "etl"):
        namespace = one(objects, "Namespace", name)
        assert namespace["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        account = next(
            o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"].get("namespace") == name
        )
        assert objects.index(namespace) < objects.index(account)


def test_no_guard_when_another_release_has_it(helm: Path) -> None:
    assert not [o for o in render(helm, "xcomGuard.create=false") if "AdmissionPolicy" in o["kind"]]


def test_chart_guard_file_is_the_generated_guard() -> None:
    """files/xcom-guard.yaml is deploy/xcom-guard.yaml: cp deploy/xcom-guard.yaml charts/kdag/files/."""
    generated = (REPO / "deploy" / "xcom-guard.yaml").read_text()
    assert (CHART / "files" / "xcom-guard.yaml").read_text() == generated


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("webhook.failurePolicy=Sometimes", "/webhook/failurePolicy"),
        ("replicas=0", "/replicas"),
        ("watch.namespaces={Team_A}", "/watch/namespaces/0"),
        ("image.pullPolicy=Maybe", "/image/pullPolicy"),
    ],
)
def test_bad_values_are_refused_naming_the_field(helm: Path, setting: str, named: str) -> None:
    assert f"at '{named}'" in render_error(helm, setting)


def test_controller_may_make_the_task_rbac_it_makes(helm: Path) -> None:
    """The controller creates kdag.policy.task_rbac() before a namespace's first task pod: the RoleBinding to
    the task ClusterRole is allowed by `bind` on that ClusterRole, without the ConfigMap access it grants."""
    objects = render(helm, "rbac.scope=namespace")
    role = one(objects, "Role", "kdag-controller")
    granted = {
        (group, resource, verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames") or [""]
    }
    for obj in policy.task_rbac("any", cluster_role=f"{RELEASE}-task"):
        group = obj["apiVersion"].rpartition("/")[0]
        resource = {"ServiceAccount": "serviceaccounts", "RoleBinding": "rolebindings"}[obj["kind"]]
        assert (group, resource, "create", "") in granted, obj["kind"]
        if obj["kind"] == "RoleBinding":
            role_name = obj["roleRef"]["name"]
            assert ("rbac.authorization.k8s.io", "clusterroles", "bind", role_name) in granted
            assert role_name == controller_env(objects)["KDAG_TASK_CLUSTER_ROLE"]
    assert not [g for g in granted if g[1] == "configmaps"]


def network_policy(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "NetworkPolicy", f"{RELEASE}-controller")


def test_network_policy_admits_only_the_webhook_and_metrics_ports(helm: Path) -> None:
    objects = render(helm)
    policy_ = network_policy(objects)
    deployment = one(objects, "Deployment")
    assert policy_["spec"]["podSelector"] == deployment["spec"]["selector"]
    assert policy_["spec"]["policyTypes"] == ["Ingress"]
    ports = {
        p["name"]: p["containerPort"]
        for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    webhook, metrics = policy_["spec"]["ingress"]
    assert webhook["ports"] == [{"protocol": "TCP", "port": ports["webhook"]}]
    assert "from" not in webhook, "the API server's address is the cluster's: any source, this port only"
    assert metrics["ports"] == [{"protocol": "TCP", "port": ports["metrics"]}]
    assert metrics["from"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    ]
    # The health port is the kubelet's (from the node, which NetworkPolicy always admits): not opened.
    opened = {p["port"] for rule in policy_["spec"]["ingress"] for p in rule["ports"]}
    assert ports["health"] not in opened


def test_network_policy_peers_come_from_values(helm: Path) -> None:
    objects = render(
        helm,
        "networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.10/32",
        "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
    )
    webhook, metrics = network_policy(objects)["spec"]["ingress"]
    assert webhook["from"] == [{"ipBlock": {"cidr": "10.0.0.10/32"}}]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]
    (only_metrics,) = network_policy(render(helm, "webhook.enabled=false"))["spec"]["ingress"]
    assert only_metrics["ports"][0]["port"] == 9090
    assert "NetworkPolicy" not in kinds(render(helm, "networkPolicy.enabled=false"))


def test_metrics_listen_on_the_pod_address_even_without_the_webhook(helm: Path) -> None:
    """The controller's metrics default to loopback; the chart opens them for Prometheus on its own setting,
    not through the webhook's address (which is not set when the webhook is off)."""
    for settings in ((), ("webhook.enabled=false",)):
        env = controller_env(render(helm, *settings))
        assert env["KDAG_METRICS_HOST"] == "0.0.0.0", settings


def image_references(objects: list[dict[str, Any]]) -> list[str]:
    """The controller's image and the runner image it gives task pods."""
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return [container["image"], controller_env(objects)["KDAG_RUNNER_IMAGE"]]


def test_images_come_from_no_public_registry_and_can_be_pinned_by_digest(helm: Path) -> None:
    """By default both images are the locally built ones (no registry is ever asked for a tag); a digest
    pins either, so a tag pushed again cannot change what runs."""
    assert image_references(render(helm)) == [
        "localhost/kdag-controller:0.1.0",
        "localhost/kdag-runner:0.1.0",
    ]
    digest = "sha256:" + "ab" * 32
    pinned = render(
        helm,
        "image.repository=registry.example/kdag-controller",
        f"image.digest={digest}",
        "runnerImage.repository=registry.example/kdag-runner",
        "runnerImage.tag=0.1.0",
        f"runnerImage.digest={digest}",
    )
    assert image_references(pinned) == [
        f"registry.example/kdag-controller:0.1.0@{digest}",
        f"registry.example/kdag-runner:0.1.0@{digest}",
    ]
    assert "at '/runnerImage/digest'" in render_error(helm, "runnerImage.digest=latest")


def test_webhooks_judge_only_creations_and_spec_changes_as_a_host_controller_registers_them(
    helm: Path,
) -> None:
    """A finalizer removed, metadata edited, a status written, a delete: none depends on the webhook, so a
    DAG can be edited and deleted while the controller is down; the chart and `kdag.webhook` agree."""
    from kdag.webhook import WEBHOOKS, webhook_configuration

    hooks = one(render(helm), "ValidatingWebhookConfiguration")["webhooks"]
    host = webhook_configuration("kdag.dev", "https://127.0.0.1:9443", b"ca")["webhooks"]

    def judged(hook: dict[str, Any]) -> tuple[Any, ...]:
        (rule,) = hook["rules"]
        return hook["name"], rule["resources"], rule["operations"], hook.get("matchConditions")

    assert [judged(h) for h in hooks] == [judged(h) for h in host]
    assert [h["name"] for h in hooks] == [w.id for w in WEBHOOKS] == ["dags.kdag.dev", "dagruns.kdag.dev"]
    assert all("DELETE" not in h["rules"][0]["operations"] for h in hooks)
    expression = "request.operation != 'UPDATE' || object.spec != oldObject.spec"
    assert hooks[0]["matchConditions"] == [{"name": "spec-changed", "expression": expression}]
    assert [h["clientConfig"]["service"]["path"] for h in hooks] == ["/dags.kdag.dev", "/dagruns.kdag.dev"]
