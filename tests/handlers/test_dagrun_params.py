"""The DAGRun handler checks a run's params before the run starts (a DAGRun made with kubectl never passed
`kdag trigger`'s check): an invalid run is Stalled with reason InvalidParams and starts no pod; a valid one
starts, its pods get the merged params. A fake client stands in for the API server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fake_api import phase_selected
from kdag.handlers import dagruns
from kdag.handlers.runtime import Runtime
from kdag.settings import ControllerSettings

DAG_SPEC: dict[str, Any] = {
    "params": {"count": 2},
    "paramSchemas": {"count": {"type": "integer", "minimum": 1}, "who": {"type": "string"}},
    "tasks": [{"id": "a", "python": {"source": "def f():\n    pass\n", "callable": "f"}}],
}


class FakeApi:
    """The calls `_reconcile` makes, answered from dicts and recorded."""

    def __init__(self, dagrun: dict[str, Any]) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {
            ("DAGRun", dagrun["metadata"]["name"]): dagrun,
            ("DAG", "report"): {
                "metadata": {"name": "report", "namespace": "ns", "uid": "uid-dag"},
                "spec": DAG_SPEC,
            },
            ("ClusterRole", "kdag-task"): {"metadata": {"name": "kdag-task", "uid": "uid-role"}},
        }
        self.created: list[dict[str, Any]] = []
        self.status: dict[str, list[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []

    async def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind.kind, name))

    async def list(self, kind: Any, namespace: str, selector: Any = None) -> list[dict[str, Any]]:
        return [o for (k, _), o in self.objects.items() if k == kind.kind and k in ("TaskRun", "Pod")]

    async def pages(self, kind: Any, namespace: str, selector: Any = None, *, fields: str = "") -> Any:
        yield phase_selected(await self.list(kind, namespace, selector), fields), ""

    async def create_if_absent(self, obj: dict[str, Any], namespace: str) -> dict[str, Any] | None:
        self.created.append(obj)
        created = {**obj, "metadata": {**obj["metadata"], "uid": "uid-" + obj["metadata"]["name"]}}
        self.objects[(obj["kind"], obj["metadata"]["name"])] = created
        return created

    async def create(self, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        self.events.append(obj)
        return obj

    async def patch_status(
        self, kind: Any, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.status.setdefault(kind.kind, []).append(patch)
        return patch

    async def delete(self, kind: Any, namespace: str, name: str) -> bool:
        return True


def dagrun(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {
            "name": "report-1",
            "namespace": "ns",
            "uid": "uid-run",
            "generation": 1,
            "creationTimestamp": "2026-11-21T00:00:00Z",
        },
        "spec": {"dagRef": {"name": "report"}, **spec},
    }


async def reconcile(run: dict[str, Any], *objects: dict[str, Any]) -> FakeApi:
    api = FakeApi(run)
    for obj in objects:
        api.objects[("DAGVersion", obj["metadata"]["name"])] = obj
    runtime = Runtime(settings=ControllerSettings(), api=api)  # type: ignore[arg-type]
    await dagruns._reconcile(runtime, ("ns", "report-1"))
    await asyncio.sleep(0)  # the Events' background tasks
    return api


async def test_an_invalid_run_is_stalled_with_invalid_params_and_starts_no_pod() -> None:
    api = await reconcile(dagrun(params={"who": "ada", "count": 0}))
    assert api.created == []
    (patch,) = api.status["DAGRun"]
    assert patch["phase"] == "Pending"
    conditions = {c["type"]: c for c in patch["conditions"]}
    message = "param 'count': 0 is less than the minimum of 1 (rule 'minimum')"
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == "InvalidParams"
    assert conditions["Stalled"]["message"] == message
    assert conditions["Ready"]["reason"] == "InvalidParams"
    assert "dagVersion" not in patch  # the run never started: it follows no DAG version
    (event,) = api.events
    assert (event["type"], event["reason"], event["message"]) == ("Warning", "InvalidParams", message)


async def test_a_run_missing_a_required_param_is_stalled_naming_it() -> None:
    api = await reconcile(dagrun(conf={"count": 3}))
    (patch,) = api.status["DAGRun"]
    stalled = next(c for c in patch["conditions"] if c["type"] == "Stalled")
    assert stalled["message"].startswith("param 'who': has no value")
    assert api.created == []


async def test_a_valid_run_starts_and_its_pod_gets_the_merged_params() -> None:
    api = await reconcile(dagrun(params={"who": "ada"}, conf={"count": 3, "extra": True}))
    pods = [o for o in api.created if o["kind"] == "Pod"]
    (pod,) = pods
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert json.loads(env["KDAG_PARAMS"]) == {"count": 3, "who": "ada", "extra": True}
    # The DAG version is made and recorded before any task starts; the run's status follows.
    (version,) = [o for o in api.created if o["kind"] == "DAGVersion"]
    assert api.status["DAGRun"][0] == {"dagVersion": version["metadata"]["name"]}
    assert api.created.index(version) < api.created.index(pod)
    assert api.status["DAGRun"][-1]["phase"] == "Running"


async def test_a_started_run_is_not_checked_again() -> None:
    # A run that follows a DAG version has started: a later schema change in the DAG never stalls it.
    started = dagrun(params={"count": 0})
    started["status"] = {"dagVersion": "report-0123456789abcdef", "phase": "Running"}
    version = {
        "metadata": {"name": "report-0123456789abcdef", "namespace": "ns"},
        "spec": {"dagRef": {"name": "report"}, "taskCount": 1, "dag": {**DAG_SPEC, "paramSchemas": {}}},
    }
    api = await reconcile(started, version)
    assert [o for o in api.created if o["kind"] == "Pod"]  # it goes on
    assert all(
        c.get("reason") != "InvalidParams"
        for patch in api.status.get("DAGRun", [])
        for c in patch.get("conditions", [])
    )
