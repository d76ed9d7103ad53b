"""The kopf registry kdag builds: which kinds kopf keeps a last-handled configuration for."""

from __future__ import annotations

import kopf
from kdag.handlers.registry import RunsDiffBaseStorage

STORAGE = RunsDiffBaseStorage(prefix="kdag.dev", key="last-handled-configuration")


def test_only_a_dagrun_gets_an_essence_kopf_compares() -> None:
    run = kopf.Body({
        "apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun",
        "metadata": {"name": "r", "labels": {"a": "b"}},
        "spec": {"dagRef": "d"}, "status": {"phase": "Running"},
    })  # fmt: skip
    assert STORAGE.build(body=run) == {"metadata": {"labels": {"a": "b"}}, "spec": {"dagRef": "d"}}


def test_a_pod_or_taskrun_event_copies_nothing() -> None:
    for kind in ("Pod", "TaskRun", "DAG"):
        body = kopf.Body({"kind": kind, "metadata": {"name": "p"}, "spec": {"big": [1] * 9}})
        assert STORAGE.build(body=body) == {}
