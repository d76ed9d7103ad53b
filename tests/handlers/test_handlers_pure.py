"""Pure parts of the handlers: condition merging, DAG spec validation, the webhook certificate, REST paths."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from kdag.api.validation import dag_spec_problems
from kdag.conditions import ConditionValue, merge_conditions, run_conditions
from kdag.kube import DAGRUN, POD, Forbidden, kind_of, method_name
from kdag.webhook import self_signed_certificate


def _cmd(task_id: str, **fields: object) -> dict[str, object]:
    return {"id": task_id, "command": ["true"], **fields}


T1, T2, T3 = (datetime(2026, 1, 1, 0, minute, tzinfo=UTC) for minute in (1, 2, 3))


def test_condition_keeps_transition_time_while_status_holds() -> None:
    first = merge_conditions(None, [ConditionValue("Ready", False, "Running", "0/2")], 1, T1)
    stored = [c.to_patch() for c in first]  # as the API server hands them back
    second = merge_conditions(stored, [ConditionValue("Ready", False, "Running", "1/2")], 2, T2)
    third = merge_conditions(
        [c.to_patch() for c in second], [ConditionValue("Ready", True, "Succeeded")], 2, T3
    )
    assert stored[0]["lastTransitionTime"] == "2026-01-01T00:01:00Z"
    assert second[0].last_transition_time == T1
    assert second[0].message == "1/2" and second[0].observed_generation == 2
    assert third[0].last_transition_time == T3 and third[0].status == "True"


@pytest.mark.parametrize(
    ("phase", "ready", "reconciling", "stalled"),
    [
        ("Running", "False", "True", "False"),
        ("Succeeded", "True", "False", "False"),
        ("Failed", "False", "False", "True"),
    ],
)
def test_run_conditions_follow_kstatus(phase: str, ready: str, reconciling: str, stalled: str) -> None:
    conditions = {c.type: c.status for c in merge_conditions(None, run_conditions(phase, "m"), 1, T1)}
    assert conditions == {"Ready": ready, "Reconciling": reconciling, "Stalled": stalled}


def test_valid_spec_has_no_problems() -> None:
    assert dag_spec_problems({"tasks": [_cmd("a"), _cmd("b", upstream=["a"])]}) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"tasks": [_cmd("a", upstream=["b"]), _cmd("b", upstream=["a"])]},
            "tasks form a cycle: a -> b -> a",
        ),
        ({"tasks": [_cmd("a"), _cmd("a")]}, "task 'a' (spec.tasks[1].id): task id is used by more than one"),
        ({"tasks": [_cmd("a", upstream=["zz"])]}, "task 'a' (spec.tasks[0].upstream[0]): 'zz' is not a task"),
        (
            {"tasks": [_cmd("a")], "schedule": "sometimes"},
            "spec.schedule: 'sometimes' is not a cron expression",
        ),
        ({"tasks": [_cmd("a", retries=-1)]}, "spec.tasks[0].retries"),
        (
            {
                "tasks": [
                    _cmd("a"),
                    _cmd(
                        "b",
                        upstream=["a"],
                        xcomInputs=[{"env": "X", "task": "a"}, {"env": "X", "task": "a", "key": "k"}],
                    ),
                ]
            },
            "task 'b' (spec.tasks[1].xcomInputs[1].env): 'X' is used by more than one xcomInput",
        ),
    ],
)
def test_problems_name_the_field_or_task(spec: dict[str, object], expected: str) -> None:
    problems = dag_spec_problems(spec)
    assert any(expected in p for p in problems), problems


def test_self_signed_certificate_serves_tls_for_its_ip(tmp_path: Path) -> None:
    certfile, pkeyfile = self_signed_certificate(tmp_path, "127.0.0.1")
    certificate = x509.load_pem_x509_certificate(certfile.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, pkeyfile)
    assert pkeyfile.stat().st_mode & 0o777 == 0o600


def test_kinds_and_their_api_methods() -> None:
    assert method_name(DAGRUN, "patch", "status") == "patch_namespaced_custom_object_status"
    assert method_name(POD, "list") == "list_namespaced_pod"
    assert kind_of({"apiVersion": "v1", "kind": "Pod"}) is POD
    with pytest.raises(ValueError, match="apps/v1/Deployment"):
        kind_of({"apiVersion": "apps/v1", "kind": "Deployment"})
    assert Forbidden(403, "PATCH DAGRun ns/r: forbidden").status == 403
