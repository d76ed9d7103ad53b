"""Installing the chart on the test cluster and reading what it made, for the chart, HA and example tests."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from controller_support import running_controllers, stop_process

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kdag"
EXAMPLES = REPO / "examples"

# The locally built images (tests/cluster/build-images imports them into the node's containerd).
LOCAL_IMAGE_VALUES = (
    "image.repository=localhost/kdag-controller",
    "image.tag=dev",
    "image.pullPolicy=Never",
    "runnerImage.repository=localhost/kdag-runner",
    "runnerImage.tag=dev",
    "runnerImage.pullPolicy=Never",
)

T = TypeVar("T")


@dataclass(frozen=True)
class Kube:
    """kubectl and helm against one cluster."""

    kubeconfig: Path
    helm_binary: Path

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def get(self, kind: str, name: str = "", namespace: str | None = None) -> dict[str, Any]:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        parsed: dict[str, Any] = json.loads(self.kubectl(*args))
        return parsed

    def items(
        self, kind: str, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        args = ["get", kind, "-o", "json"]
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        if selector:
            args += ["-l", selector]
        found: list[dict[str, Any]] = json.loads(self.kubectl(*args))["items"]
        return found

    def exists(self, kind: str, name: str, namespace: str | None = None) -> bool:
        args = ["get", kind, name, "--ignore-not-found", "-o", "name"]
        if namespace:
            args += ["-n", namespace]
        return bool(self.kubectl(*args).strip())

    def apply(self, namespace: str, manifest: str) -> str:
        """Server-side apply of manifest text, retried while the new webhook's Service is not routed yet.

        kube-proxy programs a new Service within a second or so of it getting endpoints; until then the API
        server cannot reach the webhook.
        """

        def applied() -> str | None:
            try:
                return self.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=manifest)
            except AssertionError as error:
                if "failed calling webhook" in str(error):
                    return None
                raise

        return wait_for("the DAG webhook to answer", applied, 60, interval=2)

    def helm(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [str(self.helm_binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def install_chart(self, release: str, namespace: str, settings: Sequence[str]) -> None:
        """helm install with the local images, waiting for the controller to be ready."""
        args = ["install", release, str(CHART), "--namespace", namespace, "--wait", "--timeout", "240s"]
        guard_installed = self.exists("validatingadmissionpolicy", "kdag-xcom-guard")
        # The test cluster runs no cluster DNS: kopf finds the API server as kubernetes.default.svc.
        api_ip = self.kubectl(
            "get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"
        )
        local_cluster = (
            f"hostAliases[0].ip={api_ip}",
            "hostAliases[0].hostnames[0]=kubernetes.default.svc",
        )
        # One guard per cluster: when another install (or the host test controller) applied it, reuse it.
        guard = f"xcomGuard.create={str(not guard_installed).lower()}"
        for setting in (*LOCAL_IMAGE_VALUES, *local_cluster, guard, *settings):
            args += ["--set", setting]
        self.helm(*args)

    def uninstall_chart(self, release: str, namespace: str) -> None:
        self.helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "120s")

    def fresh_namespace(self, namespace: str) -> None:
        """Delete what an earlier, interrupted run left, then create the namespace."""
        if self.exists("namespace", namespace):
            self.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s")
        self.kubectl("create", "namespace", namespace)

    def release_leftovers(self, release: str, namespace: str) -> list[str]:
        """Every object labelled as the release's, cluster-wide, CRDs left out (Helm keeps them by design)."""
        kinds = (
            "deployments,replicasets,pods,services,secrets,serviceaccounts,configmaps,roles,rolebindings,"
            "kopfpeerings.kopf.dev"
        )
        cluster_kinds = (
            "clusterroles,clusterrolebindings,validatingwebhookconfigurations,validatingadmissionpolicies,"
            "validatingadmissionpolicybindings,clusterkopfpeerings.kopf.dev"
        )
        selector = f"app.kubernetes.io/instance={release}"
        namespaced = self.kubectl("get", kinds, "--all-namespaces", "-l", selector, "-o", "name").split()
        cluster = self.kubectl("get", cluster_kinds, "-l", selector, "-o", "name").split()
        controller_pods = self.kubectl(
            "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=kdag", "-o", "name"
        ).split()
        return namespaced + cluster + controller_pods


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll `probe` until it returns something other than None/False; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except AssertionError as error:  # kubectl said no: the object may not exist yet
            last_error = error
            value = None
        if value is not None and value is not False:
            return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f": {last_error}" if last_error else "")
    )


@contextmanager
def port_forwarded(kube: Kube, namespace: str, target: str, port: int, timeout: float = 30) -> Iterator[str]:
    """`kubectl port-forward` of `target`'s `port` (`svc/NAME`, `pod/NAME`) to a free port on 127.0.0.1 only,
    as a user reaches the UI; the local URL. The process is stopped by its PID when the block ends."""
    command = ["kubectl", "--kubeconfig", str(kube.kubeconfig), "port-forward", "-n", namespace]
    command += ["--address", "127.0.0.1", target, f":{port}"]
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:

            def forwarding() -> str | None:
                out.seek(0)
                said = out.read()
                if process.poll() is not None:
                    raise RuntimeError(f"kubectl port-forward {target} exited: {said.strip()}")
                found = re.search(r"Forwarding from 127\.0\.0\.1:(\d+) ->", said)
                return f"http://127.0.0.1:{found.group(1)}" if found else None

            yield wait_for(f"kubectl port-forward {target} to listen", forwarding, timeout, interval=0.1)
        finally:
            stop_process(process)


HOST_WEBHOOK_CONFIGURATION = "kdag.dev"


@contextmanager
def host_controllers_stopped(kube: Kube) -> Iterator[None]:
    """Stop the shared host controllers, which watch every namespace, while an in-cluster one runs.

    Their webhook configuration (failurePolicy Fail, all namespaces) goes too, or nobody could create a DAG;
    starting them again registers it anew.
    """
    stopped = running_controllers()
    for host_controller in stopped:
        host_controller.stop()
    if stopped:
        kube.kubectl(
            "delete", "validatingwebhookconfiguration", HOST_WEBHOOK_CONFIGURATION, "--ignore-not-found"
        )
    try:
        yield
    finally:
        for host_controller in stopped:
            host_controller.start()
