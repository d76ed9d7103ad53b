"""Deterministic names (docs/design.md, "Names")."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import pytest
from kdag import names

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def test_slug_of_a_dns_safe_id_is_the_id() -> None:
    assert names.task_slug("extract") == "extract"
    assert names.task_slug("step-2") == "step-2"


def test_slug_of_a_changed_id_carries_a_hash_of_the_id() -> None:
    digest = hashlib.sha256(b"hello_task").hexdigest()[:5]
    assert names.task_slug("hello_task") == f"hello-task-{digest}"
    # Ids that differ only in case or separators get different slugs.
    assert len({names.task_slug(t) for t in ("a_b", "a.b", "A-b", "a-b")}) == 4


@pytest.mark.parametrize("task_id", ["hello_task", "A.B", "x-", "_lead", "UPPER", "a" * 63])
def test_names_are_valid_kubernetes_names(task_id: str) -> None:
    for name in (
        names.taskrun_name("etl-abc12345", task_id),
        names.xcom_configmap_name("etl-abc12345", task_id),
        names.pod_name("etl-abc12345", task_id, 12),
    ):
        assert DNS_SUBDOMAIN.match(name), name


def test_pod_name_is_configmap_name_plus_attempt() -> None:
    cm = names.xcom_configmap_name("run1", "push_task")
    assert names.pod_name("run1", "push_task", 3) == f"{cm}-3"
    assert cm == names.taskrun_name("run1", "push_task")
    with pytest.raises(ValueError, match="start at 1"):
        names.pod_name("run1", "push_task", 0)


def test_run_names() -> None:
    assert names.initial_run_name("etl", "8f14e45f-ceea-467f-a0e6-0000000000") == "etl-8f14e45f"
    assert names.scheduled_run_name("etl", datetime(2026, 3, 4, 5, 6, tzinfo=UTC)) == "etl-202603040506"
    assert names.manual_run_name("etl", "ab1cd") == "etl-manual-ab1cd"
    assert re.fullmatch(r"etl-manual-[a-z0-9]{5}", names.manual_run_name("etl"))
    assert names.source_configmap_name("etl") == "etl-source"


def test_too_long_names_are_refused_with_the_length() -> None:
    with pytest.raises(ValueError, match="254 characters"):
        names.taskrun_name("r" * 252, "t")


def test_labels_and_long_label_values() -> None:
    assert names.labels("etl", "etl-1", "hello_task") == {
        "app.kubernetes.io/managed-by": "kdag",
        "kdag.dev/dag": "etl",
        "kdag.dev/dagrun": "etl-1",
        "kdag.dev/task": "hello_task",
    }
    long = "r" * 80
    value = names.label_value(long)
    assert len(value) <= 63
    assert value != names.label_value("r" * 81)
    assert names.label_value("short") == "short"
