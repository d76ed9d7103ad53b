"""`kdag apply` against a recording API: kubectl's field manager, source ConfigMaps owned by their DAG, and
the earlier versions no run under way reads deleted."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from kdag.cli import cluster
from kdag.kube import Kind
from kdag_runner.kube import Forbidden

DAG_FILE = (
    "from airflow import DAG\nfrom airflow.operators.python import PythonOperator\n"
    "dag = DAG('slow2')\n"
    "one = PythonOperator(task_id='step1', python_callable=lambda: 'VERSION-step1', dag=dag)\n"
    "two = PythonOperator(task_id='step2', python_callable=lambda: 'VERSION-step2', dag=dag)\n"
    "one >> two\n"
)


class RecordingApi:
    """The calls `kdag apply` makes, on objects kept by (kind, name); a DAG gets a uid when created."""

    namespace = "ns"

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        self.calls: list[tuple[str, str, str, Any]] = []
        self.refuse_deletes = False

    def __enter__(self) -> RecordingApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind.kind, name))

    def list(self, kind: Kind, namespace: str, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        found = [o for (k, _), o in self.objects.items() if k == kind.kind]
        wanted = (labels or {}).items()
        return [o for o in found if wanted <= (o["metadata"].get("labels") or {}).items()]

    def apply(self, obj: dict[str, Any], namespace: str, field_manager: str) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        owners = obj["metadata"].get("ownerReferences")
        self.calls.append(("apply", obj["kind"], name, (field_manager, owners)))
        stored = self.objects.get((obj["kind"], name))
        uid = stored["metadata"]["uid"] if stored else str(uuid.uuid4())
        self.objects[(obj["kind"], name)] = {**obj, "metadata": {**obj["metadata"], "uid": uid}}
        return self.objects[(obj["kind"], name)]

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        if self.refuse_deletes:
            raise Forbidden(403, f'configmaps "{name}" is forbidden')
        self.calls.append(("delete", kind.kind, name, None))
        return self.objects.pop((kind.kind, name), None) is not None


def apply(api: RecordingApi, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "connect", lambda kubeconfig: api)
    cluster.apply_command(path, namespace="ns", kubeconfig=None, dag_id=None)


def write(tmp_path: Path, version: str) -> Path:
    path = tmp_path / "slow2.py"
    path.write_text(DAG_FILE.replace("VERSION", version))
    return path


def configmap(name: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "kdag", "kdag.dev/dag": "slow2"}
    return {"kind": "ConfigMap", "metadata": {"name": name, "labels": labels, "uid": name}, "data": {}}


def owner_of(dag: dict[str, Any]) -> dict[str, str]:
    return {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAG", "name": "slow2", "uid": dag["metadata"]["uid"]}


def run(name: str, phase: str, source: str | None) -> dict[str, Any]:
    """A run of slow2; one that started follows the DAGVersion `slow2-{name}` (`version`)."""
    status: dict[str, Any] = {"phase": phase}
    if source is not None:
        status["dagVersion"] = f"slow2-{name}"
    spec = {"dagRef": {"name": "slow2"}}
    return {"kind": "DAGRun", "metadata": {"name": name}, "spec": spec, "status": status}


def version(run_name: str, source: str) -> dict[str, Any]:
    """The DAGVersion run `run_name` follows, its pods mounting source ConfigMap `source`."""
    dag = {"tasks": [], "pythonFile": {"configMap": source, "key": "slow2.py"}}
    return {"kind": "DAGVersion", "metadata": {"name": f"slow2-{run_name}"}, "spec": {"dag": dag}}


def test_a_new_dag_is_applied_as_kubectl_and_owns_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = RecordingApi()
    apply(api, write(tmp_path, "v1"), monkeypatch)
    dag = api.objects[("DAG", "slow2")]
    source = dag["spec"]["pythonFile"]["configMap"]
    owner = [owner_of(dag)]
    # The source first (the DAG's first run mounts it), then the DAG, then the source again with its owner.
    assert api.calls == [
        ("apply", "ConfigMap", source, ("kubectl", None)),
        ("apply", "DAG", "slow2", ("kubectl", None)),
        ("apply", "ConfigMap", source, ("kubectl", owner)),
    ]
    assert api.objects[("ConfigMap", source)]["immutable"] is True
    assert capsys.readouterr().out == f"configmap/{source} applied\ndag/slow2 applied\n"


def test_a_new_version_leaves_the_one_a_run_under_way_reads_and_deletes_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kdag apply v1`, a run starts, `kdag apply v3`: the run keeps v1's files (its snapshot names them),
    the DAG names v3's, and the versions nobody reads go."""
    api = RecordingApi()
    apply(api, write(tmp_path, "v1"), monkeypatch)
    v1 = api.objects[("DAG", "slow2")]["spec"]["pythonFile"]["configMap"]
    apply(api, write(tmp_path, "v2"), monkeypatch)
    v2 = api.objects[("DAG", "slow2")]["spec"]["pythonFile"]["configMap"]
    assert v2 != v1 and ("ConfigMap", v1) not in api.objects, "v1 was read by no run"
    api.objects[("DAGRun", "under-way")] = run("under-way", "Running", v2)
    api.objects[("DAGVersion", "slow2-under-way")] = version("under-way", v2)
    api.objects[("DAGRun", "done")] = run("done", "Succeeded", "slow2-source-0000000000")
    api.objects[("ConfigMap", "slow2-source")] = configmap("slow2-source")  # an earlier kdag's
    api.objects[("ConfigMap", "slow2-source-0000000000")] = configmap("slow2-source-0000000000")
    api.calls.clear()
    apply(api, write(tmp_path, "v3"), monkeypatch)
    dag = api.objects[("DAG", "slow2")]
    v3 = dag["spec"]["pythonFile"]["configMap"]
    owner = [owner_of(dag)]
    assert api.calls == [
        ("apply", "ConfigMap", v3, ("kubectl", owner)),  # the DAG exists: owned from the first apply
        ("apply", "DAG", "slow2", ("kubectl", None)),
        ("delete", "ConfigMap", "slow2-source", None),
        ("delete", "ConfigMap", "slow2-source-0000000000", None),
    ]
    assert {name for kind, name in api.objects if kind == "ConfigMap"} == {v2, v3}
    assert "configmap/slow2-source-0000000000 deleted" in capsys.readouterr().out
    # Once the run has finished, the next apply deletes its version too.
    api.objects[("DAGRun", "under-way")]["status"]["phase"] = "Failed"
    apply(api, write(tmp_path, "v3"), monkeypatch)
    assert {name for kind, name in api.objects if kind == "ConfigMap"} == {v3}


def test_a_refused_delete_is_a_warning_after_the_dag_was_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = RecordingApi(configmap("slow2-source"))
    api.refuse_deletes = True
    apply(api, write(tmp_path, "v1"), monkeypatch)
    assert ("DAG", "slow2") in api.objects and ("ConfigMap", "slow2-source") in api.objects
    err = capsys.readouterr().err
    assert err.startswith("warning: earlier source ConfigMaps of DAG 'slow2' were not deleted: ")
    assert "forbidden" in err
