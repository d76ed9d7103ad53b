"""Submits one Workflow of bench/argo/workflows.py, waits for it, and prints what happened.

Wall time from `kubectl create` to the Workflow's phase Succeeded/Failed/Error as polled (every 0.2 s), the
Workflow's own startedAt/finishedAt (whole seconds), each pod node's phase, inputs and outputs, and the
host-run controller's RSS (from its PID file, bench/argo/start) before and at most during the run. Usage:

    KUBECONFIG=... python3 bench/argo/submit.py chain 3 [--kwok] [--keep]
    KUBECONFIG=... python3 bench/argo/submit.py fan 10

Exit status 0 when the Workflow Succeeded (and, without --kwok, the last value is the expected one).
--keep leaves the Workflow (its TTL still deletes it later); otherwise it is deleted once read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workflows

PID_FILE = (
    Path(
        os.environ.get(
            "KDAG_ARGO_RUN_DIR",
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kdag" / "argo" / "run",
        )
    )
    / "workflow-controller.pid"
)
DONE = ("Succeeded", "Failed", "Error")


def kubectl(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def controller_rss_mib() -> float | None:
    try:
        pid = PID_FILE.read_text().strip()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    shape, n = sys.argv[1], int(sys.argv[2])
    kwok = "--kwok" in sys.argv[3:]
    manifest = {"chain": workflows.chain, "fan": workflows.fan}[shape](n, kwok=kwok)
    expected = (
        None
        if kwok
        else {"chain": workflows.expected_chain_value, "fan": workflows.expected_fan_value}[shape](n)
    )
    rss_idle = controller_rss_mib()
    started = time.monotonic()
    name = kubectl("create", "-f", "-", "-o", "jsonpath={.metadata.name}", stdin=json.dumps(manifest))
    rss_max = rss_idle or 0.0
    workflow: dict[str, Any] = {}
    while True:
        workflow = json.loads(kubectl("get", "workflow", name, "-n", workflows.NAMESPACE, "-o", "json"))
        rss_max = max(rss_max, controller_rss_mib() or 0.0)
        phase = workflow.get("status", {}).get("phase")
        if phase in DONE:
            break
        if time.monotonic() - started > 900:
            raise SystemExit(f"{name} did not finish in 900 s (phase {phase})")
        time.sleep(0.2)
    wall = time.monotonic() - started
    status = workflow["status"]
    pods = sorted(
        (node for node in status.get("nodes", {}).values() if node["type"] == "Pod"),
        key=lambda node: node.get("startedAt") or "",
    )
    print(
        f"{name}: {shape}({n}){' on kwok' if kwok else ''}, phase {status['phase']}, {len(pods)} pods, "
        f"wall {wall:.1f} s (polled), startedAt {status.get('startedAt')} "
        f"finishedAt {status.get('finishedAt')}"
    )
    if status.get("message"):
        print(f"  message: {status['message']}")
    last_value = None
    for node in pods:
        inputs = {p["name"]: p.get("value") for p in node.get("inputs", {}).get("parameters", [])}
        outputs = {p["name"]: p.get("value") for p in node.get("outputs", {}).get("parameters", [])}
        print(
            f"  {node['displayName']:>6} {node['phase']:<9} {node.get('startedAt')} -> "
            f"{node.get('finishedAt')} in={inputs} out={outputs}"
        )
        last_value = outputs.get("value", last_value)
    if rss_idle is not None:
        print(f"  controller RSS: {rss_idle:.0f} MiB before, {rss_max:.0f} MiB max while running")
    ok = status["phase"] == "Succeeded"
    if expected is not None:
        print(
            f"  last value {last_value!r}, expected {expected!r}: "
            f"{'ok' if last_value == expected else 'WRONG'}"
        )
        ok = ok and last_value == expected
    if "--keep" not in sys.argv[3:]:
        kubectl("delete", "workflow", name, "-n", workflows.NAMESPACE, "--wait=false")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
