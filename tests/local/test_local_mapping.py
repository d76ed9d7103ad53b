"""`kdag run --local` on dynamically mapped DAGs gives the task states (`task[i]` per instance), XCom rows
(`map_index` on an instance's rows) and instance names Apache Airflow 3.3.2 gave for the same files:
literal expand (@task, PythonOperator, BashOperator, a dict, partial, map_index_template), expand over an
XCom list and a reduce, chained mapping and xcom_pull from mapped tasks, the cross product, expand_kwargs,
zip/map/concat, an empty list (Skipped) and what fails (a list over max_map_length, an unmappable value,
no value, a failing instance under trigger rules); mapped task groups (`mapping_group_*.py`: over literals
and XComs, partial, expand_kwargs, nested groups, XComArgs and xcom_pull between the group's tasks, a
failing instance seen index by index, upstream failures, branches and an empty list). Airflow's results:
`airflow_dags/mapping_airflow_3_3_2.json`, recorded once by `bench/mapping_reference.py` (see its
`_recorded`). Then what kdag adds: mapping over `task["key"]`, a literal over max_map_length, a mapped
command task, instances retried alone, a mapped group's instances running index by index (`dags/`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from local_support import kdag, run_local_json

AIRFLOW_DAGS = Path(__file__).resolve().parent / "airflow_dags"
DAGS = Path(__file__).resolve().parent / "dags"
AIRFLOW: dict[str, Any] = json.loads(
    (AIRFLOW_DAGS / "mapping_airflow_3_3_2.json").read_text(encoding="utf-8")
)


def plain(value: Any) -> Any:
    """A value as kdag stores it: Airflow 3's serde keeps a tuple (`{"__classname__": "builtins.tuple",
    ...}`), kdag's JSON store gives a list (docs/design.md, "Airflow semantics")."""
    if isinstance(value, dict) and value.get("__classname__") == "builtins.tuple":
        return [plain(item) for item in value["__data__"]]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def comparable(rows: list[dict[str, Any]]) -> list[str]:
    """XCom rows under user keys, sorted (Airflow's are in push-time order), tuples as lists."""
    return sorted(
        json.dumps({**row, "value": plain(row["value"])}, sort_keys=True)
        for row in rows
        if not row["key"].startswith("__") and row["value"] is not None
    )


@pytest.mark.parametrize("dag_id", sorted(name for name in AIRFLOW if not name.startswith("_")))
def test_states_rows_and_names_match_airflow(dag_id: str, tmp_path: Path) -> None:
    expected = AIRFLOW[dag_id]
    result = run_local_json(AIRFLOW_DAGS / expected["file"], "--workdir", str(tmp_path))
    assert result["state"] == expected["state"]
    assert result["tasks"] == expected["tasks"]
    assert comparable(result["xcoms"]) == comparable(expected["xcoms"])
    names = {}
    for key in result["tasks"]:
        report = tmp_path / "logs" / f"{key}.termination"
        if "[" in key and report.exists() and "renderedMapIndex" in (found := json.loads(report.read_text())):
            names[key] = found["renderedMapIndex"]
    assert names == expected["rendered_map_index"]


def test_what_the_failing_upstream_tasks_say(tmp_path: Path) -> None:
    run_local_json(AIRFLOW_DAGS / "mapping_failures.py", "--workdir", str(tmp_path))

    def error(task_id: str) -> str:
        return str(json.loads((tmp_path / "logs" / f"{task_id}.termination").read_text())["error"])

    assert error("no_value") == "XComForMappingNotPushed: did not push XCom for task mapping"
    assert error("a_number") == "UnmappableXComTypePushed: unmappable return type 'int'"
    assert error("too_many").startswith(
        "UnmappableXComLengthPushed: pushed value is too large to map as a downstream's dependency"
    )


def test_an_instance_reports_its_length_and_a_reduce_reads_all_instances(tmp_path: Path) -> None:
    result = run_local_json(AIRFLOW_DAGS / "mapping_xcom.py", "--workdir", str(tmp_path))
    report = json.loads((tmp_path / "logs" / "make_list.termination").read_text())
    assert report["xcomLengths"] == {"return_value": 4}
    # Each instance pushed into its own directory, as its ConfigMap's volume shows it downstream.
    assert (tmp_path / "xcom" / "add_one" / "2" / "return_value").read_text() == "4"
    total = next(r for r in result["xcoms"] if r["task_id"] == "total")
    assert total["value"]["sum"] == 14 and "map_index" not in total


def test_beyond_airflow_keys_literals_over_the_cap_groups_and_retries(tmp_path: Path) -> None:
    result = run_local_json(DAGS / "mapping_beyond_airflow.py", "--workdir", str(tmp_path))
    assert result["state"] == "failed"  # too_many fails the run
    assert result["tasks"] == {
        "make": "success",
        "hello[0]": "success",
        "hello[1]": "success",
        "too_many": "failed",
        "grp.inner[0]": "success",
        "grp.inner[1]": "success",
        "flaky[0]": "success",
        "flaky[1]": "success",
        "flaky[2]": "success",
    }
    rows = {(r["task_id"], r.get("map_index", -1), r["key"]): r["value"] for r in result["xcoms"]}
    assert rows[("hello", 1, "return_value")] == "hello bob"
    assert rows[("flaky", 1, "return_value")] == 20
    # flaky[1] alone ran twice: instances are retried on their own.
    assert (tmp_path / "logs" / "flaky[1].log").read_text().count("--- attempt") == 2
    assert (tmp_path / "logs" / "flaky[0].log").read_text().count("--- attempt") == 1
    text = kdag("run", "--local", str(DAGS / "mapping_beyond_airflow.py"), "--workdir", str(tmp_path / "t"))
    assert "cannot expand into 1025" in text.stdout and "max_map_length (1024)" in text.stdout
    assert "map index" in text.stdout


def test_a_mapped_command_task_gets_its_index(tmp_path: Path) -> None:
    result = run_local_json(DAGS / "mapping_command.yaml", "--workdir", str(tmp_path))
    assert result["state"] == "success"
    assert list(result["tasks"]) == ["make", "each[0]", "each[1]", "each[2]", "count"]
    count = next(r for r in result["xcoms"] if r["task_id"] == "count")
    assert count["value"] == ["item 0", "item 1", "item 2"]


def test_a_mapped_groups_instances_run_index_by_index_and_retry_alone(tmp_path: Path) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    workdir = tmp_path / "run"
    result = run_local_json(
        DAGS / "mapping_group_per_index.py", "--workdir", str(workdir), "-p", f"flags={flags}"
    )
    # op.first[0] waits (up to a minute) for a file op.second[1] writes: it succeeds only if op.second[1]
    # ran while it was running, i.e. after op.first[1] alone.
    assert result["state"] == "success", result
    assert result["tasks"] == {
        **{f"op.{name}[{i}]": "success" for name in ("first", "second", "flaky") for i in (0, 1)},
        "total": "success",
    }
    assert next(r["value"] for r in result["xcoms"] if r["task_id"] == "total") == 10
    assert (workdir / "logs" / "op.flaky[1].log").read_text().count("--- attempt") == 2
    assert (workdir / "logs" / "op.flaky[0].log").read_text().count("--- attempt") == 1
