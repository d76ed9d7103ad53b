"""Save DAGs, DAGRuns and TaskRuns of a namespace as Argo CD health examples, each with its expected health.

    KUBECONFIG=... .venv/bin/python tests/helm/capture_status_examples.py NAMESPACE OUTPUT.yaml

The expected health is what docs/gitops/README.md says for the object's phase/conditions; review it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HEALTH_OF_PHASE = {
    "Succeeded": "Healthy", "Skipped": "Healthy", "Failed": "Degraded", "UpstreamFailed": "Degraded",
    "Pending": "Progressing", "Running": "Progressing", "Retrying": "Progressing",
}  # fmt: skip


def expected_health(obj: dict[str, Any]) -> str:
    status = obj.get("status", {})
    if obj["kind"] == "DAG":
        ready = {c["type"]: c for c in status.get("conditions", [])}.get("Ready", {})
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return "Progressing"
        return {"True": "Healthy", "False": "Degraded"}.get(ready.get("status", ""), "Progressing")
    return HEALTH_OF_PHASE.get(status.get("phase", "Pending"), "Progressing")


def main() -> None:
    namespace, output = sys.argv[1], Path(sys.argv[2])
    listing = subprocess.run(
        ["kubectl", "get", "dags,dagruns,taskruns", "-n", namespace, "-o", "json"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    documents = []
    for obj in json.loads(listing)["items"]:
        metadata = obj["metadata"]
        for noise in ("managedFields", "uid", "resourceVersion", "creationTimestamp", "ownerReferences"):
            metadata.pop(noise, None)
        metadata["annotations"] = {"test.kdag.dev/expected-health": expected_health(obj)}
        documents.append(obj)
    output.write_text(
        f"# Captured from the test cluster (namespace {namespace}) by capture_status_examples.py.\n"
        + yaml.safe_dump_all(documents, sort_keys=False)
    )


if __name__ == "__main__":
    main()
