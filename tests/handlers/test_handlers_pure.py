"""Pure parts of the handlers: condition merging, DAG spec validation, the webhook certificate, REST paths."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from kdag.api.validation import dag_spec_problems
from kdag.client import DAGRUNS, PODS, ApiError, _resource_of, kind_of
from kdag.handlers.conditions import ConditionValue, merge_conditions, run_conditions
from kdag.webhook import self_signed_certificate


def _cmd(task_id: str, **fields: object) -> dict[str, object]:
    return {"id": task_id, "command": ["true"], **fields}


def test_condition_keeps_transition_time_while_status_holds() -> None:
    first = merge_conditions(None, [ConditionValue("Ready", False, "Running", "0/2")], 1, "T1")
    second = merge_conditions(first, [ConditionValue("Ready", False, "Running", "1/2")], 2, "T2")
    third = merge_conditions(second, [ConditionValue("Ready", True, "Succeeded")], 2, "T3")
    assert second[0]["lastTransitionTime"] == "T1"
    assert second[0]["message"] == "1/2" and second[0]["observedGeneration"] == 2
    assert third[0]["lastTransitionTime"] == "T3" and third[0]["status"] == "True"


@pytest.mark.parametrize(
    ("phase", "ready", "reconciling", "stalled"),
    [("Running", "False", "True", "False"), ("Succeeded", "True", "False", "False"),
     ("Failed", "False", "False", "True")],
)
def test_run_conditions_follow_kstatus(phase: str, ready: str, reconciling: str, stalled: str) -> None:
    conditions = {c["type"]: c["status"] for c in merge_conditions(None, run_conditions(phase, "m"), 1, "T")}
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
        ({"tasks": [_cmd("a"), _cmd("b", upstream=["a"], xcomInputs=[{"env": "X", "task": "a"},
                                                                    {"env": "X", "task": "a", "key": "k"}])]},
         "task 'b' (spec.tasks[1].xcomInputs[1].env): 'X' is used by more than one xcomInput"),
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


def test_rest_paths() -> None:
    assert DAGRUNS.path("ns", "r", "status") == "/apis/kdag.dev/v1alpha1/namespaces/ns/dagruns/r/status"
    assert PODS.path("ns") == "/api/v1/namespaces/ns/pods"
    assert kind_of({"apiVersion": "v1", "kind": "Pod"}) is PODS
    assert _resource_of("/apis/kdag.dev/v1alpha1/namespaces/ns/taskruns/t/status") == "taskruns/status"
    assert _resource_of("/api/v1/namespaces/ns/pods") == "pods"
    with pytest.raises(ValueError, match="apps/v1/Deployment"):
        kind_of({"apiVersion": "apps/v1", "kind": "Deployment"})
    assert "HTTP 403" in str(ApiError(403, "PATCH", "/x", "forbidden"))
