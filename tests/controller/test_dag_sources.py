"""A compiled Python DAG ships the helper modules and template files beside it (kdag.dag_sources)."""

from __future__ import annotations

import textwrap
from pathlib import Path

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
