"""`kdag trigger -p/--conf` checks the run's params against the DAG's schemas before it creates the DAGRun:
a refused run is one line on stderr, exit status 1, and no create call. The cluster is a fake client that
serves the DAG and records what the command writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kdag.cli import cluster
from kdag.cli.app import app
from typer.testing import CliRunner

DAG_SPEC: dict[str, Any] = {
    "params": {"count": 2, "version": "1.0"},
    "paramSchemas": {
        "count": {"type": "integer", "minimum": 1, "maximum": 10},
        "version": {"type": "string"},
        "who": {"type": "string", "pattern": "^[a-z]+$"},
    },
    "tasks": [
        {"id": "a", "command": ["true"]},
        {
            "id": "b",
            "command": ["true"],
            "paramSchemas": {"ratio": {"type": "number"}},
            "params": {"ratio": 1},
        },
    ],
}


class FakeApi:
    """What trigger_command calls on SyncKubeApi: get the DAG, create the DAGRun."""

    namespace = "team-a"

    def __init__(self, dag_spec: dict[str, Any] | None) -> None:
        self.dag_spec = dag_spec
        self.created: list[dict[str, Any]] = []
        self.gets: list[tuple[str, str, str]] = []

    def __enter__(self) -> FakeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets.append((kind.kind, namespace, name))
        if self.dag_spec is None:
            return None
        meta = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
        return {"metadata": meta, "spec": self.dag_spec}

    def create(self, manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
        self.created.append(manifest)
        return manifest


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi(DAG_SPEC)
    monkeypatch.setattr(cluster, "connect", lambda kubeconfig: fake)
    return fake


def trigger(*args: str) -> Any:
    return CliRunner().invoke(app, ["trigger", "report", *args])


def test_a_valid_run_is_created_with_params_read_against_their_schemas(api: FakeApi) -> None:
    done = trigger("-p", "who=ada", "-p", "count=3", "-p", "version=2.10", "--conf", '{"extra": [1]}')
    assert done.exit_code == 0, done.output
    (manifest,) = api.created
    assert manifest["spec"]["params"] == {"who": "ada", "count": 3, "version": "2.10"}  # a string stays one
    assert manifest["spec"]["conf"] == {"extra": [1]}
    assert done.stdout.strip().startswith("report-manual-")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-p", "who=ada", "-p", "count=0"],
            "param 'count': 0 is less than the minimum of 1 (rule 'minimum')",
        ),
        (["-p", "count=3"], "param 'who': has no value: it has no default"),
        (["-p", "who=Ada"], "param 'who': 'Ada' does not match '^[a-z]+$' (rule 'pattern')"),
        (
            ["--conf", '{"who": "ada", "count": "3"}'],
            "param 'count': '3' is not of type 'integer' (rule 'type')",
        ),
        (
            ["-p", "who=ada", "--conf", '{"ratio": "x"}'],
            "task 'b': param 'ratio': 'x' is not of type 'number'",
        ),
    ],
)
def test_an_invalid_run_is_refused_before_anything_is_created(
    api: FakeApi, args: list[str], message: str
) -> None:
    done = trigger(*args)
    assert done.exit_code == 1
    assert api.created == []
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: DAG 'report': {message}")


def test_a_run_param_wins_over_the_conf_key_and_an_undeclared_one_is_warned_of(api: FakeApi) -> None:
    done = trigger("-p", "who=ada", "-p", "cuont=3", "--conf", '{"who": "Not Valid"}')
    assert done.exit_code == 0, done.output
    assert "warning: param 'cuont' is not declared by DAG 'report'" in done.stderr
    assert api.created[0]["spec"]["params"] == {"who": "ada", "cuont": 3}


def test_a_missing_dag_is_named_and_nothing_is_created(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeApi(None)
    monkeypatch.setattr(cluster, "connect", lambda kubeconfig: fake)
    done = trigger("-p", "x=1")
    assert done.exit_code == 1
    assert "DAG 'report' not found in namespace 'team-a'" in done.stderr
    assert fake.created == []


def test_a_dag_spec_the_cli_cannot_read_leaves_the_check_to_the_controller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeApi({"tasks": "not a list"})
    monkeypatch.setattr(cluster, "connect", lambda kubeconfig: fake)
    done = trigger("-p", "x=1")
    assert done.exit_code == 0, done.output
    assert json.dumps(fake.created[0]["spec"]["params"]) == '{"x": 1}'


def test_a_triggered_run_is_owned_by_its_dag_so_deleting_the_dag_deletes_it(api: FakeApi) -> None:
    done = trigger("-p", "who=ada")
    assert done.exit_code == 0, done.output
    (manifest,) = api.created
    assert manifest["metadata"]["ownerReferences"] == [
        {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAG", "name": "report", "uid": "uid-report"}
    ]
    # Owned like a scheduled run, but labelled as what it is: Airflow's `manual` run type.
    assert manifest["metadata"]["labels"]["kdag.dev/run-type"] == "manual"
