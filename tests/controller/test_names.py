"""Deterministic names (docs/design.md, "Names")."""

from __future__ import annotations

import hashlib
import random
import re
from datetime import UTC, datetime

import pytest
from kdag import names
from kdag.api import validation

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


UID = "8f14e45f-ceea-467f-a0e6-0123456789ab"


def test_slug_is_the_readable_part_of_an_id() -> None:
    assert names.task_slug("extract") == "extract"
    assert names.task_slug("step-2") == "step-2"
    assert names.task_slug("Outer.inner_task") == "outer-inner-task"
    assert names.task_slug("x" * 63) == "x" * names.TASK_PART_MAX


def test_a_name_ends_in_a_hash_of_the_exact_run_task_and_index() -> None:
    digest = hashlib.sha256(b'["etl-1","hello_task",null]').hexdigest()[:16]
    assert names.taskrun_name("etl-1", "hello_task") == f"etl-1-hello-task-{digest}"
    digest = hashlib.sha256(b'["etl-1","square",3]').hexdigest()[:16]
    assert names.taskrun_name("etl-1", "square", 3) == f"etl-1-square-3-{digest}"
    # Ids that read alike (case, separators) get different names.
    assert len({names.taskrun_name("r", t) for t in ("a_b", "a.b", "A-b", "a-b")}) == 4


@pytest.mark.parametrize("task_id", ["hello_task", "A.B", "x-", "_lead", "UPPER", "a" * 63])
def test_names_are_valid_kubernetes_names(task_id: str) -> None:
    for name in (
        names.taskrun_name("etl-abc12345", task_id),
        names.xcom_configmap_name("etl-abc12345", task_id),
        names.pod_name("etl-abc12345", task_id, 12, run_uid=UID),
        names.pod_name("etl-abc12345", task_id, 12, 1023, run_uid=UID),
    ):
        assert DNS_SUBDOMAIN.match(name), name


def test_pod_name_is_configmap_name_plus_run_uid_tag_plus_attempt() -> None:
    cm = names.xcom_configmap_name("run1", "push_task")
    assert names.pod_name("run1", "push_task", 3, run_uid=UID) == f"{cm}-8f14e45f-3"
    assert cm == names.taskrun_name("run1", "push_task")
    assert names.run_uid_tag(UID) == "8f14e45f"
    with pytest.raises(ValueError, match="start at 1"):
        names.pod_name("run1", "push_task", 0, run_uid=UID)


GUARD_SUFFIX = re.compile(rf"[0-9a-f]{{{names.RUN_UID_TAG_LENGTH}}}-[1-9][0-9]*")


def guard_lets_write(pod: str, configmap: str) -> bool:
    """The XCom guard's name rule (kdag.policy: variables podSuffix and runUidTag), in Python."""
    return pod.startswith(configmap + "-") and bool(GUARD_SUFFIX.fullmatch(pod[len(configmap) + 1 :]))


COLLIDING_BEFORE = [
    (("a", "b-c", None), ("a-b", "c", None)),  # `{run}-{task}` read alike
    (("r", "202601010000-x", None), ("r-202601010000", "x", None)),  # a run and a scheduled run
    (("run", "t", 2), ("run", "t-2", None)),  # an instance and a task
    (("run", "a_b", None), ("run", "a-b-" + hashlib.sha256(b"a_b").hexdigest()[:5], None)),  # the 20-bit slug
]


@pytest.mark.parametrize(("one", "other"), COLLIDING_BEFORE)
def test_instances_whose_names_collided_before_have_distinct_names(
    one: tuple[str, str, int | None], other: tuple[str, str, int | None]
) -> None:
    assert names.taskrun_name(*one) != names.taskrun_name(*other)
    for attempt in (1, 2, 10):
        pod = names.pod_name(*one[:2], attempt, one[2], run_uid=UID)
        assert pod != names.pod_name(*other[:2], attempt, other[2], run_uid=UID)
        assert guard_lets_write(pod, names.xcom_configmap_name(*one))
        assert not guard_lets_write(pod, names.xcom_configmap_name(*other))


def adversarial_instances(seed: int, count: int) -> list[tuple[str, str, int | None]]:
    """(run, task id, map index) built from few pieces, so that many read alike when joined by '-'."""
    rng = random.Random(seed)
    pieces = ["a", "b", "a-b", "b-c", "x", "1", "2", "10", "202601010000", "r", "t"]
    separators = ["-", "-", "_", "."]

    def joined(parts: int, with_separators: list[str]) -> str:
        return rng.choice(with_separators).join(rng.choice(pieces) for _ in range(parts))

    found = set()
    while len(found) < count:
        run = joined(rng.randint(1, 3), ["-"])
        task_id = joined(rng.randint(1, 3), separators)
        index = rng.choice([None, None, 0, 1, 2, 10, 12])
        found.add((run, task_id, index))
    return sorted(found, key=str)


def test_names_are_unique_over_many_instances_that_read_alike() -> None:
    """A seeded search over 20,000 (run, task, index) made of the same few pieces: every TaskRun name, pod
    name and guard decision is the instance's own (before, thousands of them shared names)."""
    instances = adversarial_instances(seed=20260101, count=20_000)
    readable = {f"{r}-{names.task_slug(t)}" + ("" if i is None else f"-{i}") for r, t, i in instances}
    assert len(instances) - len(readable) > 1000  # the readable parts alone collide
    taskruns = {names.taskrun_name(*instance): instance for instance in instances}
    assert len(taskruns) == len(instances)
    pods = {names.pod_name(r, t, n, i, run_uid=UID) for r, t, i in instances for n in (1, 2, 12)}
    assert len(pods) == 3 * len(instances)
    # The guard's name rule lets a pod write one name only: what precedes `-{8 hex}-{attempt}` at its end
    # (an attempt holds no '-'). That name is the pod's own instance's ConfigMap, never another's.
    for run, task_id, index in instances:
        pod = names.pod_name(run, task_id, 7, index, run_uid=UID)
        writable = re.fullmatch(rf"(?P<configmap>.+)-{GUARD_SUFFIX.pattern}", pod)
        assert writable is not None and taskruns[writable["configmap"]] == (run, task_id, index)
        assert guard_lets_write(pod, writable["configmap"])


def test_run_names() -> None:
    assert names.initial_run_name("etl", "8f14e45f-ceea-467f-a0e6-0000000000") == "etl-8f14e45f"
    assert names.scheduled_run_name("etl", datetime(2026, 3, 4, 5, 6, tzinfo=UTC)) == "etl-202603040506"
    assert names.manual_run_name("etl", "ab1cd") == "etl-manual-ab1cd"
    assert re.fullmatch(r"etl-manual-[a-z0-9]{5}", names.manual_run_name("etl"))


def test_a_source_configmap_is_named_by_its_content() -> None:
    """Each version of a DAG's files is its own ConfigMap, so a run's pods never see another version."""
    name = names.source_configmap_name("etl", {"etl.py": "x = 1\n", "q.sql": "select 1"})
    assert re.fullmatch(r"etl-source-[0-9a-f]{10}", name)
    assert names.source_configmap_name("etl", {"q.sql": "select 1", "etl.py": "x = 1\n"}) == name
    assert names.source_configmap_name("etl", {"etl.py": "x = 2\n", "q.sql": "select 1"}) != name
    assert names.source_configmap_name("etl", {"etl.py": "x = 1\n", "q.sql": "select 2"}) != name
    assert names.is_source_configmap_of("etl", name)
    assert names.is_source_configmap_of("etl", "etl-source")  # the one name older kdag wrote
    assert not names.is_source_configmap_of("etl", name.replace("etl-", "etl2-"))
    assert not names.is_source_configmap_of("et", name)
    assert not names.is_source_configmap_of("etl", names.xcom_configmap_name("etl-source", "t"))


def test_names_of_the_longest_run_and_task_fit() -> None:
    longest_run = "r" * validation.RUN_NAME_MAX
    name = names.pod_name(longest_run, "T" * 63, 10**validation.ATTEMPT_DIGITS - 1, 1023, run_uid=UID)
    assert len(name) == names.NAME_MAX


def test_too_long_names_are_refused_with_the_length() -> None:
    with pytest.raises(ValueError, match="271 characters"):  # 252 + "-t-" + 16 hex digits
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
