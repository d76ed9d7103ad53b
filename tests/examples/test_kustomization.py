"""examples/kustomization.yaml, what a GitOps tool syncs, carries every example DAG."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_kustomization_renders_every_example_dag() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(EXAMPLES)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    names = sorted(doc["metadata"]["name"] for doc in yaml.safe_load_all(rendered) if doc)
    expected = sorted(
        doc["metadata"]["name"]
        for path in EXAMPLES.glob("*.yaml")
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "DAG"
    )
    assert names == expected
