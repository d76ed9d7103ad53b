"""A compiled Python DAG ships the helper modules and template files beside it (kdag.dag_sources)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from kdag import compile as compiler
from kdag import dag_sources


def _write(folder: Path, name: str, text: str) -> Path:
    file = folder / name
    file.write_text(textwrap.dedent(text), encoding="utf-8")
    return file


def test_helper_modules_and_template_files_travel_with_the_dag(tmp_path: Path) -> None:
    _write(tmp_path, "helpers_for_sources_test.py", "GREETING = 'hi'\n")
    _write(tmp_path, "query.sql", "select {{ ds }}\n")
    _write(tmp_path, "notes.md", "not templated by any task\n")
    dag_file = _write(
        tmp_path,
        "shipped.py",
        """
        from airflow import DAG
        from airflow.models.baseoperator import BaseOperator
        from helpers_for_sources_test import GREETING

        class Query(BaseOperator):
            template_fields = ("sql",)
            template_ext = (".sql",)

            def __init__(self, sql, **kwargs):
                super().__init__(**kwargs)
                self.sql = sql

            def execute(self, context):
                return self.sql

        with DAG(dag_id="shipped", schedule=None):
            Query(task_id="q", sql="query.sql")
        """,
    )
    loaded = compiler.load_python(dag_file)
    data = loaded.manifests[0]["data"]
    assert loaded.manifests[0]["kind"] == "ConfigMap"
    assert set(data) == {"shipped.py", "helpers_for_sources_test.py", "query.sql"}
    assert data["query.sql"] == "select {{ ds }}\n"


def test_too_much_beside_a_dag_is_refused_naming_the_largest_file(tmp_path: Path) -> None:
    dag_file = _write(tmp_path, "d.py", "x = 1\n")
    big = tmp_path / "big.sql"
    big.write_text("x" * (dag_sources.SOURCE_LIMIT_BYTES + 1), encoding="utf-8")
    with pytest.raises(dag_sources.SourceError, match=r"largest: big\.sql"):
        dag_sources.source_data(dag_file, "d.py", [big])


def test_a_file_name_a_configmap_cannot_hold_is_named(tmp_path: Path) -> None:
    dag_file = _write(tmp_path, "d.py", "x = 1\n")
    odd = _write(tmp_path, "my query.sql", "select 1\n")
    with pytest.raises(dag_sources.SourceError, match=r"my query\.sql"):
        dag_sources.source_data(dag_file, "d.py", [odd])


def test_each_version_of_a_dag_is_its_own_immutable_configmap_named_by_its_spec(tmp_path: Path) -> None:
    """The DAG spec names the version of its files, so a run's snapshot of the spec pins its code."""
    _write(tmp_path, "step.sh", "echo 1\n")
    body = """
        from airflow import DAG
        from airflow.providers.standard.operators.bash import BashOperator

        with DAG(dag_id="versions", schedule=None):
            BashOperator(task_id="step1", bash_command="step.sh")
        """
    dag_file = _write(tmp_path, "versions.py", body)

    def compiled() -> tuple[dict[str, object], str]:
        source, dag = compiler.load_python(dag_file).manifests
        assert dag["spec"]["pythonFile"] == {"configMap": source["metadata"]["name"], "key": "versions.py"}
        return source, str(source["metadata"]["name"])

    source, first = compiled()
    assert first.startswith("versions-source-") and source["immutable"] is True
    assert compiled()[1] == first, "the same files give the same name (a GitOps re-sync changes nothing)"
    _write(tmp_path, "versions.py", body + "    # v2\n")
    second = compiled()[1]
    _write(tmp_path, "step.sh", "echo 2\n")  # a file the task templates is part of the version
    assert len({first, second, compiled()[1]}) == 3


def _configmap(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}}


def _version(source: str) -> dict[str, Any]:
    """The DAGVersion of a spec whose pythonFile is `source` (named after it, for the test)."""
    dag = {"tasks": [], "pythonFile": {"configMap": source, "key": "d.py"}}
    return {"metadata": {"name": f"v-{source}"}, "spec": {"dagRef": {"name": "d"}, "dag": dag}}


def _run(dag: str, phase: str | None, source: str | None = None) -> dict[str, object]:
    status: dict[str, object] = {"phase": phase} if phase else {}
    if source is not None:
        status["dagVersion"] = f"v-{source}"
    return {"metadata": {"name": f"{dag}-run"}, "spec": {"dagRef": {"name": dag}}, "status": status}


def test_versions_no_run_under_way_reads_are_unused() -> None:
    v1, v2, v3 = "d-source-0000000001", "d-source-0000000002", "d-source-0000000003"
    configmaps = [_configmap(n) for n in (v1, v2, v3, "d-source", "d-r-t-0123456789abcdef", "e-source")]
    runs = [_run("d", "Succeeded", v1), _run("d", "Running", v2), _run("e", "Failed", None)]
    # Only the DAG versions of the DAG's runs under way are read: each names the source its run reads.
    assert dag_sources.versions_read("d", runs) == [f"v-{v2}"]
    versions = [_version(v2)]
    assert dag_sources.unused_versions("d", v3, configmaps, runs, versions) == ["d-source", v1]
    # A run under way whose DAG version was not given keeps every version: what it reads is not known.
    assert dag_sources.unused_versions("d", v3, configmaps, runs) == []
    # Runs of another DAG read their own DAG's sources.
    other = [*runs, _run("e", "Running", v1)]
    assert dag_sources.unused_versions("d", v3, configmaps, other, versions) == ["d-source", v1]
    # A DAG now without a Python file: every version can go once its runs finish.
    assert dag_sources.unused_versions("d", None, configmaps, runs[:1]) == ["d-source", v1, v2, v3]


def test_no_version_is_unused_while_a_run_of_the_dag_has_not_started() -> None:
    """Its first pass may have read the DAG before the apply, and its pods would mount that version."""
    v1, v2 = "d-source-0000000001", "d-source-0000000002"
    configmaps = [_configmap(v1), _configmap(v2)]
    assert dag_sources.unused_versions("d", v2, configmaps, [_run("d", None)]) == []
    assert dag_sources.unused_versions("d", v2, configmaps, [_run("d", "Pending")]) == []
    assert dag_sources.unused_versions("d", v2, configmaps, [_run("e", None)]) == [v1]
