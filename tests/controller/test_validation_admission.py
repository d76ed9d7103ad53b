"""Admission refuses what would later fail for a structural reason, naming the task, the field and the value:
quantities the API server would refuse in a pod, task ids that are no label values, env names a task gets
twice, names too long for what kdag derives from them, a run's params against its DAG. The webhooks judge only
creations and spec changes, so a DAG stays editable and deletable while no controller runs."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import kopf
import pytest
from kdag import names
from kdag.api.crd import crds
from kdag.api.models import DAGSpec
from kdag.api.validation import (
    DAG_NAME_MAX,
    RUN_NAME_MAX,
    dag_spec_problems,
    dagrun_problems,
    manifest_problems,
    parse_quantity,
)
from kdag.handlers.registry import build_registry
from kdag.kube import Unreachable
from kdag.webhook import SPEC_CHANGED, validate_dag, validate_dagrun, webhook_configuration

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def cmd(task_id: str, *upstream: str, **fields: Any) -> dict[str, Any]:
    given = {"upstream": list(upstream)} if upstream else {}
    return {"id": task_id, "command": ["true"], **given, **fields}


def spec_with(*tasks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"tasks": list(tasks), **fields}


def manifest(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "kdag.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


# --- task ids are label values ------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", ["_x", "x.", "x_", "-x", ".hidden", "..", "a b"])
def test_a_task_id_that_is_no_label_value_is_refused_naming_it(task_id: str) -> None:
    (problem,) = dag_spec_problems(spec_with(cmd(task_id)))
    assert problem.startswith(f"task {task_id!r} (spec.tasks[0].id): {task_id!r} is not valid: a task id")
    assert "starts and ends with a letter or digit" in problem


@pytest.mark.parametrize("task_id", ["x", "X1", "a_b", "group.task", "a-b.c_d", "a" * 63])
def test_task_ids_that_are_label_values_are_admitted(task_id: str) -> None:
    assert LABEL_VALUE.match(task_id)
    assert dag_spec_problems(spec_with(cmd(task_id))) == []


def test_the_crd_refuses_what_no_label_value_can_be() -> None:
    dag = next(c for c in crds() if c["spec"]["names"]["kind"] == "DAG")
    spec = dag["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    task = spec["properties"]["tasks"]
    pattern = re.compile(task["items"]["properties"]["id"]["pattern"])
    assert not pattern.match("_x") and not pattern.match("x.") and pattern.match("x.y")


# --- quantities, read as Kubernetes reads them -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        (2, Decimal(2)),
        ("1.5Gi", Decimal(1610612736)),
        ("64Mi", Decimal(67108864)),
        ("1k", Decimal(1000)),
        ("2e3", Decimal(2000)),
        ("1E", Decimal(10) ** 18),
        (".5", Decimal("0.5")),
        ("+1", Decimal(1)),
    ],
)
def test_quantities_are_read_as_kubernetes_reads_them(text: int | str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "1e", "1.5.5", "1 Gi", "1gi", "Mi", "", "1Kb", "0x10"])
def test_what_is_no_quantity_is_none(text: str) -> None:
    assert parse_quantity(text) is None


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (
            {"limits": {"memory": "lots"}},
            "task 'a' (spec.tasks[0].resources.limits.memory): 'lots' is not a Kubernetes quantity",
        ),
        (
            {"requests": {"cpu": "-1"}},
            "task 'a' (spec.tasks[0].resources.requests.cpu): '-1' may not be negative",
        ),
        (
            {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
            "task 'a' (spec.tasks[0].resources.requests.memory): '2Gi' may not be more than the limit '1Gi'",
        ),
        (
            {"limits": {"gpu": 1}},
            "task 'a' (spec.tasks[0].resources.limits.gpu): 'gpu' is not a standard container resource",
        ),
        (
            {"limits": {"example.com/gpu": "0.5"}},
            "task 'a' (spec.tasks[0].resources.limits.example.com/gpu): '0.5' must be a whole number",
        ),
        (
            {"requests": {"example.com/gpu": 1}},
            "task 'a' (spec.tasks[0].resources.requests.example.com/gpu): example.com/gpu needs a limit too",
        ),
        (
            {"requests": {"example.com/gpu": 1}, "limits": {"example.com/gpu": 2}},
            "(spec.tasks[0].resources.requests.example.com/gpu): 1 must equal the limit of example.com/gpu",
        ),
    ],
)
def test_a_resource_the_api_server_would_refuse_in_the_pod_is_refused_at_admission(
    resources: dict[str, Any], expected: str
) -> None:
    problems = dag_spec_problems(spec_with(cmd("a", resources=resources)))
    assert any(expected in problem for problem in problems), problems


def test_the_defaults_resources_are_checked_too_and_good_ones_pass() -> None:
    (problem,) = dag_spec_problems(spec_with(cmd("a"), defaults={"resources": {"limits": {"cpu": "much"}}}))
    assert problem == (
        "spec.defaults.resources.limits.cpu: 'much' is not a Kubernetes quantity"
        " (such as 500m, 2, 1.5Gi, 64Mi)"
    )
    good = {
        "requests": {"cpu": "100m", "memory": "64Mi", "example.com/gpu": 1, "hugepages-2Mi": "4Mi"},
        "limits": {"cpu": 1, "memory": "1.5Gi", "example.com/gpu": "1", "hugepages-2Mi": "4Mi"},
    }
    assert dag_spec_problems(spec_with(cmd("a", resources=good))) == []


# --- env names ------------------------------------------------------------------------------------------


def test_an_env_name_in_both_the_defaults_and_the_task_is_refused_naming_task_and_name() -> None:
    spec = spec_with(
        cmd("a", env=[{"name": "REGION", "value": "eu"}]),
        cmd("b", env=[{"name": "OTHER", "value": "x"}]),
        defaults={"env": [{"name": "REGION", "value": "us"}]},
    )
    assert dag_spec_problems(spec) == [
        "task 'a' (spec.tasks[0].env[0].name): 'REGION' is also set in spec.defaults.env (the task's env is"
        " added to the defaults'; set it in one of them)"
    ]
    # What a resolved task would be: its TaskRun's spec.task.env lists the name once per source.
    model = DAGSpec.model_validate(spec)
    assert [e.name for e in model.resolved_task("b", "img").env or []] == ["REGION", "OTHER"]


def test_an_env_name_the_api_server_refuses_in_a_pod_is_refused() -> None:
    (problem,) = dag_spec_problems(spec_with(cmd("a", env=[{"name": "MY VAR", "value": "1"}])))
    assert problem.startswith("task 'a' (spec.tasks[0].env[0].name): 'MY VAR' is not valid: an env name")


# --- dag ids --------------------------------------------------------------------------------------------


def test_a_dag_id_airflow_would_refuse_is_refused_naming_it() -> None:
    (problem,) = dag_spec_problems(spec_with(cmd("a"), dagId="my dag"))
    assert problem == (
        "spec.dagId: 'my dag' is not valid: a dag id has letters, digits, '_', '.', '-' only (Airflow's rule)"
    )
    assert dag_spec_problems(spec_with(cmd("a"), dagId="_Team.etl-v2")) == []
    assert "spec.dagId" in dag_spec_problems(spec_with(cmd("a"), dagId="x" * 251))[0]


# --- names too long for what kdag derives from them --------------------------------------------------------


def test_the_longest_admitted_names_derive_valid_names_for_every_pod() -> None:
    """A DAG of the longest admitted name, its runs of every kind, and the longest pod name of any task."""
    dag = "d" * DAG_NAME_MAX
    runs = [
        names.manual_run_name(dag, "abcde"),
        names.scheduled_run_name(dag, datetime(2030, 12, 31, 23, 59, tzinfo=UTC)),
        names.initial_run_name(dag, "0123abcd-0000"),
    ]
    assert max(len(run) for run in runs) <= RUN_NAME_MAX
    run = "r" * RUN_NAME_MAX
    uid = "0123abcd-4567-89ab-cdef-0123456789ab"
    for task_id in ("A" * 63, "a" * 63, "a_b"):
        for index in (None, 1023):
            pod = names.pod_name(run, task_id, 999_999, index, run_uid=uid)
            assert len(pod) <= 253 and DNS_SUBDOMAIN.match(pod), pod
            assert len(names.taskrun_name(run, task_id, index)) <= 253


def test_a_dag_or_run_name_too_long_is_refused_saying_how_long_it_may_be() -> None:
    too_long = "d" * (DAG_NAME_MAX + 1)
    (problem,) = manifest_problems(manifest("DAG", too_long, spec_with(cmd("a"))))
    assert str(problem).startswith(f"metadata.name: '{'d' * 40}...' is {DAG_NAME_MAX + 1} characters;")
    assert f"a DAG name may have at most {DAG_NAME_MAX}" in str(problem)
    assert manifest_problems(manifest("DAG", "d" * DAG_NAME_MAX, spec_with(cmd("a")))) == []
    run = {"dagRef": {"name": "d"}}
    (problem,) = manifest_problems(manifest("DAGRun", "r" * (RUN_NAME_MAX + 1), run))
    assert f"a DAGRun name may have at most {RUN_NAME_MAX}" in str(problem)
    assert manifest_problems(manifest("DAGRun", "r" * RUN_NAME_MAX, run)) == []


# --- messages name the value ------------------------------------------------------------------------------


def test_a_type_or_range_error_names_the_value_given() -> None:
    problems = dag_spec_problems(spec_with(cmd("a", retries=-1, timeoutSeconds="10")))
    assert "task 'a' (spec.tasks[0].retries): Input should be greater than or equal to 0 (got -1)" in problems
    assert "task 'a' (spec.tasks[0].timeoutSeconds): Input should be a valid integer (got '10')" in problems


def test_an_unknown_upstream_id_is_named_with_its_task() -> None:
    problems = dag_spec_problems(spec_with(cmd("extract"), cmd("load", "extrat")))
    assert problems == ["task 'load' (spec.tasks[1].upstream[0]): 'extrat' is not a task of this DAG"]


def test_the_crds_cel_messages_name_the_task_and_the_value() -> None:
    """The API server evaluates CEL before any webhook: what CEL refuses must name the culprit itself."""
    dag = next(c for c in crds() if c["spec"]["names"]["kind"] == "DAG")
    spec = dag["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    by_message = {r["message"]: r.get("messageExpression", "") for r in spec["x-kubernetes-validations"]}
    # Whole-graph checks (unknown upstream ids and xcomInputs tasks, cycles) are the webhook's alone: in CEL
    # they cost O(tasks^2) and would cap a DAG at 100 tasks (the test above names the task there).
    assert not any("upstream" in message or "xcomInputs" in message for message in by_message)
    assert "t.id" in by_message["tasks with python.fromDagFile need spec.pythonFile"]
    task_rules = spec["properties"]["tasks"]["items"]["x-kubernetes-validations"]
    assert all(r["messageExpression"].startswith("'task ' + self.id") for r in task_rules)
    env_name = spec["properties"]["tasks"]["items"]["properties"]["env"]["items"]["properties"]["name"]
    assert "self +" in env_name["x-kubernetes-validations"][0]["messageExpression"]


# --- a run's params, at admission ----------------------------------------------------------------------

RUN_DAG: dict[str, Any] = {
    "params": {"count": 2},
    "paramSchemas": {"count": {"type": "integer", "minimum": 1}, "who": {"type": "string"}},
    "tasks": [cmd("a")],
}


def test_a_runs_params_are_checked_against_its_dags_schemas() -> None:
    dag = DAGSpec.model_validate(RUN_DAG)
    problems = [str(p) for p in dagrun_problems({"dagRef": {"name": "d"}, "params": {"count": 0}}, dag)]
    assert problems == [
        "spec.params.count: 0 is less than the minimum of 1 (rule 'minimum')",
        "spec.params.who: has no value: it has no default, so the run must give one (-p, params or conf)",
    ]
    ok = {"dagRef": {"name": "d"}, "params": {"who": "ada"}, "conf": {"count": 3}}
    assert dagrun_problems(ok, dag) == []
    assert dagrun_problems({"dagRef": {"name": "d"}, "params": {"count": 0}}) == []  # no DAG: no params check


class Memo:
    """The webhook's memo: a Runtime whose API client serves one DAG (or fails)."""

    def __init__(self, dag_spec: dict[str, Any] | None, fail: bool = False) -> None:
        self.api = self
        self.dag_spec, self.fail = dag_spec, fail

    async def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        if self.fail:
            raise Unreachable(0, "no API server")
        return None if self.dag_spec is None else {"metadata": {"name": name}, "spec": self.dag_spec}


def admit_run(spec: dict[str, Any], memo: Memo, name: str = "r") -> list[str]:
    warnings: list[str] = []
    check = validate_dagrun(
        spec=kopf.Spec(kopf.Body({"spec": spec})),
        memo=memo,  # type: ignore[arg-type]
        warnings=warnings,
        name=name,
        namespace="ns",
    )
    asyncio.run(check)
    return warnings


def test_the_dagrun_webhook_refuses_params_the_dag_refuses_naming_them() -> None:
    with pytest.raises(kopf.AdmissionError) as refused:
        admit_run({"dagRef": {"name": "d"}, "params": {"who": "ada", "count": 0}}, Memo(RUN_DAG))
    assert str(refused.value) == "spec.params.count: 0 is less than the minimum of 1 (rule 'minimum')"
    warnings = admit_run({"dagRef": {"name": "d"}, "params": {"who": "ada", "cuont": 3}}, Memo(RUN_DAG))
    assert warnings == ["param 'cuont' is not declared by DAG 'd'"]


def test_the_dagrun_webhook_admits_a_run_whose_dag_is_not_there_yet() -> None:
    """A DAG and its run in one apply reach the API server in either order: the controller holds the run."""
    assert admit_run({"dagRef": {"name": "d"}, "params": {"count": 0}}, Memo(None)) == []
    assert admit_run({"dagRef": {"name": "d"}, "params": {"count": 0}}, Memo(RUN_DAG, fail=True)) == []
    with pytest.raises(kopf.AdmissionError, match="a DAGRun name may have at most"):
        admit_run({"dagRef": {"name": "d"}}, Memo(None), name="r" * (RUN_NAME_MAX + 1))


# --- what reaches the webhooks --------------------------------------------------------------------------


def body(spec: dict[str, Any], **meta: Any) -> kopf.Body:
    return kopf.Body({"metadata": {"name": "d", **meta}, "spec": spec})


def test_the_dag_webhook_ignores_updates_that_leave_the_spec_alone() -> None:
    """kopf removing its finalizer, a label, `kubectl delete`: admitted even for a DAG admitted before the
    rules it now breaks."""
    broken = spec_with(cmd("_old"))
    old, new = body(broken), body(broken, finalizers=[], labels={"team": "a"})
    validate_dag(spec=new.spec, name="d", operation="UPDATE", old=old, new=new)
    with pytest.raises(kopf.AdmissionError, match="'_old' is not valid"):
        validate_dag(spec=new.spec, name="d", operation="UPDATE", old=body(spec_with(cmd("a"))), new=new)


def test_the_dag_webhook_refuses_a_new_dag_whose_name_is_too_long() -> None:
    long = "d" * (DAG_NAME_MAX + 1)
    new = body(spec_with(cmd("a")))
    with pytest.raises(kopf.AdmissionError, match=f"a DAG name may have at most {DAG_NAME_MAX}"):
        validate_dag(spec=new.spec, name=long, operation="CREATE", new=new)
    # An existing one stays editable: only creation is judged by name.
    validate_dag(spec=new.spec, name=long, operation="UPDATE", old=body(spec_with(cmd("b"))), new=new)


def test_the_host_webhooks_judge_creations_and_spec_changes_only() -> None:
    configuration = webhook_configuration("kdag.dev", "https://127.0.0.1:9443", b"PEM")
    hooks = {h["name"]: h for h in configuration["webhooks"]}
    assert set(hooks) == {"dags.kdag.dev", "dagruns.kdag.dev"}
    dags, runs = hooks["dags.kdag.dev"], hooks["dagruns.kdag.dev"]
    assert dags["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert dags["matchConditions"] == [{"name": "spec-changed", "expression": SPEC_CHANGED}]
    assert runs["rules"][0]["operations"] == ["CREATE"] and runs["rules"][0]["resources"] == ["dagruns"]
    assert dags["clientConfig"] == {"url": "https://127.0.0.1:9443/dags.kdag.dev", "caBundle": "UEVN"}
    assert all(h["failurePolicy"] == "Fail" for h in hooks.values())


def test_no_handler_puts_a_finalizer_on_dags() -> None:
    """A finalizer would keep `kubectl delete dag` waiting for a controller; runs go by owner references."""
    registry = build_registry(webhook=True)
    assert list(registry._spawning.get_all_handlers()) == []  # no kopf daemons or timers
    assert not any(h.requires_finalizer for h in registry._changing.get_all_handlers())
    webhooks = {h.id: h.operations for h in registry._webhooks.get_all_handlers()}
    assert webhooks == {"dags.kdag.dev": ["CREATE", "UPDATE"], "dagruns.kdag.dev": ["CREATE"]}


class WebhookApi:
    """The calls a host controller makes on its ValidatingWebhookConfiguration, over one stored object."""

    def __init__(self, stored: dict[str, Any] | None) -> None:
        self.stored = stored
        self.deleted = 0

    async def create_if_absent(self, obj: dict[str, Any], namespace: str) -> dict[str, Any] | None:
        if self.stored is not None:
            return None
        return await self.create(obj, namespace)

    async def create(self, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        self.stored = obj
        return obj

    async def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        return self.stored

    async def delete(self, kind: Any, namespace: str, name: str) -> bool:
        self.deleted += 1
        self.stored = None
        return True


def test_a_host_controller_replaces_a_configuration_left_behind_and_removes_only_its_own(
    tmp_path: Any,
) -> None:
    from kdag.controller import HostWebhook, register_host_webhook, unregister_host_webhook
    from kdag.webhook import self_signed_certificate

    certfile, pkeyfile = self_signed_certificate(tmp_path, "127.0.0.1")

    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        webhook = HostWebhook("127.0.0.1", port, certfile, pkeyfile)
        left = webhook_configuration("kdag.dev", "https://127.0.0.1:1", b"old")
        api = WebhookApi(left)
        await register_host_webhook(api, webhook)  # type: ignore[arg-type]
        assert api.deleted == 1 and api.stored is not None
        urls = [h["clientConfig"]["url"] for h in api.stored["webhooks"]]
        assert urls == [f"https://127.0.0.1:{port}/dags.kdag.dev", f"https://127.0.0.1:{port}/dagruns.kdag.dev"]
        assert api.stored["webhooks"][0]["matchConditions"][0]["expression"] == SPEC_CHANGED
        other = WebhookApi(webhook_configuration("kdag.dev", "https://127.0.0.1:2", b"another"))
        await unregister_host_webhook(other, webhook)  # type: ignore[arg-type]
        assert other.deleted == 0, "another controller's configuration stays"
        await unregister_host_webhook(api, webhook)  # type: ignore[arg-type]
        assert api.stored is None
        server.close()
        await server.wait_closed()

    asyncio.run(main())
