"""The pure parts of bench/airflow_examples.py (no Airflow needed): names, exclusions, normalisation,
comparison, table; and airflow_reference.run_results on a hand-made SQLite database."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import airflow_examples as ex  # noqa: E402
from airflow_reference import run_results  # noqa: E402

AIRFLOW_RUN = "manual__2026-11-30T11:05:41.303771+00:00"
KDAG_RUN = "example-xcom-local-k8qrp"


def test_example_names() -> None:
    assert ex.example_name("example_dags/example_xcom.py") == "example_xcom.py"
    assert (
        ex.example_name("providers/standard/example_dags/example_sensors.py") == "standard/example_sensors.py"
    )
    assert ex.example_name("providers/common/sql/example_dags/example_analytics.py") == (
        "common.sql/example_analytics.py"
    )


def test_exclusion_by_file_glob_and_by_dag_id() -> None:
    assert ex.exclusion("example_asset_alias.py", "asset_alias_example_alias_consumer") is not None
    assert ex.exclusion("standard/example_hitl_operator.py", "example_hitl_operator") is not None
    marker = "standard/example_external_task_marker_dag.py"
    assert ex.exclusion(marker, "example_external_task_marker_child") is not None
    assert ex.exclusion(marker, "example_external_task_marker_parent") is None
    assert ex.exclusion("example_xcom.py", "example_xcom") is None
    # a provider's example is not taken for a core one of the same file name
    assert (
        ex.exclusion("example_python_operator.py", "x", {"standard/example_python_operator.py": "r"}) is None
    )


def test_clock_reading_dags_are_looked_up_like_exclusions() -> None:
    weekday = "standard/example_branch_day_of_week_operator.py"
    assert ex.exclusion(weekday, "example_weekday_branch_operator", ex.READS_CLOCK) is not None
    datetimes = "standard/example_branch_datetime_operator.py"
    assert ex.exclusion(datetimes, "example_branch_datetime_operator_2", ex.READS_CLOCK) is not None
    assert (
        ex.exclusion(datetimes, "example_branch_datetime_operator_3", ex.READS_CLOCK) is None
    )  # logical date


def test_every_table_entry_names_a_python_file_and_gives_a_reason() -> None:
    for pattern, reason in {**ex.EXCLUDED, **ex.READS_CLOCK}.items():
        assert pattern.partition(":")[0].endswith(".py"), pattern
        assert reason.strip(), pattern


def test_only_selects_by_substring_or_glob() -> None:
    assert ex.selected("example_xcom.py", "example_xcom", None)
    assert ex.selected("example_xcomargs.py", "example_xcom_args", "xcom")
    assert ex.selected("standard/example_sensors.py", "example_sensors", "standard/*")
    assert not ex.selected("example_xcom.py", "example_xcom", "standard/*")
    assert ex.selected(
        "example_dynamic_task_mapping.py", "example_task_group_mapping", "*:example_task_group*"
    )


def test_normalise_text_puts_run_specific_parts_into_shapes() -> None:
    assert ex.normalise_text(f"run {AIRFLOW_RUN} done") == "run <run_id> done"
    assert ex.normalise_text(f"run {KDAG_RUN} done") == "run <run_id> done"
    assert ex.normalise_text("my-own-id", {"my-own-id": "<run_id>"}) == "<run_id>"
    assert ex.normalise_text("/tmp/h1/dags", {"/tmp/h1": "<airflow_home>"}) == "<airflow_home>/dags"
    assert ex.normalise_text("2026-11-30T11:05:41.303771+00:00") == "<datetime>"
    assert ex.normalise_text("at 2026-11-30 11:05:41 UTC") == "at <datetime>"
    assert ex.normalise_text("Mon Nov 30 11:02:00 UTC 2026") == "<datetime>"
    assert ex.normalise_text("ds=2026-11-16") == "ds=<date>"
    assert ex.normalise_text("id 123e4567-e89b-12d3-a456-426614174000") == "id <uuid>"
    assert ex.normalise_text("<object at 0x7f3a2b1c9d80>") == "<object at 0x<addr>>"
    assert ex.normalise_text("value_by_return") == "value_by_return"
    assert ex.normalise_text("20261116") == "20261116"  # not a date shape: compared as is


def test_normalise_walks_lists_and_dict_keys() -> None:
    value = {"2026-11-16": [AIRFLOW_RUN, 1, None, {"at": "2026-11-16T00:00:00+00:00"}]}
    assert ex.normalise(value) == {"<date>": ["<run_id>", 1, None, {"at": "<datetime>"}]}


def test_shape_keeps_structure_and_types() -> None:
    assert ex.shape({"job": "job-ab12", "rows": 42, "ok": True, "r": 0.5, "n": None, "l": [1]}) == {
        "job": "<str>",
        "rows": "<int>",
        "ok": "<bool>",
        "r": "<float>",
        "n": "<null>",
        "l": ["<int>"],
    }


def test_same_rows_with_different_run_ids_match() -> None:
    airflow = ex.Result(
        state="success",
        run_id=AIRFLOW_RUN,
        tasks={"push": "success"},
        xcoms=[
            {"task_id": "push", "key": "return_value", "value": f"ran {AIRFLOW_RUN}"},
            {"task_id": "branch", "key": "skipmixin_key", "value": {"followed": ["a"]}},
        ],
    )
    kdag = ex.Result(
        state="success",
        run_id=KDAG_RUN,
        tasks={"push": "success"},
        xcoms=[
            {"task_id": "push", "key": "return_value", "value": f"ran {KDAG_RUN}"},
            {"task_id": "push", "key": "__context", "value": {"anything": 1}},
        ],
    )
    assert ex.compare(airflow, kdag) == ex.Verdict("match")


def test_each_tools_airflow_home_compares_as_a_placeholder() -> None:
    def run(home: str) -> ex.Result:
        row = {"task_id": "describe", "key": "dag_folder", "value": f"{home}/dags"}
        return ex.Result(
            state="success", run_id=KDAG_RUN, tasks={"describe": "success"}, xcoms=[row], home=home
        )

    assert ex.compare(run("/tmp/a/home-1"), run("/tmp/kdag-example-x/airflow-home")).kind == "match"


def test_first_difference_is_a_task_state_with_kdags_error_as_cause() -> None:
    airflow = ex.Result(state="success", run_id="a", tasks={"t1": "success", "t2": "success"})
    kdag = ex.Result(
        state="failed",
        run_id="b",
        tasks={"t1": "failed", "t2": "upstream_failed"},
        errors={"t1": "AttributeError: no ds"},
    )
    verdict = ex.compare(airflow, kdag)
    assert verdict.kind == "differs"
    assert verdict.detail == "task t1: airflow success, kdag failed (AttributeError: no ds)"
    assert verdict.cause == "AttributeError: no ds"
    assert str(verdict).startswith("differs: task t1")
    texts = [text for text, _ in ex.differences(airflow, kdag)]
    assert texts[-1] == "run: airflow success, kdag failed"


def test_xcom_differences_missing_extra_and_value() -> None:
    airflow = ex.Result(
        state="success",
        run_id="a",
        tasks={"t": "success"},
        xcoms=[
            {"task_id": "t", "key": "return_value", "value": 1},
            {"task_id": "t", "key": "gone", "value": "x"},
        ],
    )
    kdag = ex.Result(
        state="success",
        run_id="b",
        tasks={"t": "success"},
        xcoms=[
            {"task_id": "t", "key": "return_value", "value": 2},
            {"task_id": "t", "key": "extra", "value": None},
        ],
    )
    assert [cause for _, cause in ex.differences(airflow, kdag)] == [
        "XCom value differs",
        "XCom row missing in kdag",
        "extra XCom row in kdag",
    ]
    assert ex.compare(airflow, kdag).detail == "xcom t.return_value: airflow 1, kdag 2"


def test_mapped_rows_are_told_apart_by_map_index() -> None:
    rows = [
        {"task_id": "add", "key": "return_value", "value": 2, "map_index": 0},
        {"task_id": "add", "key": "return_value", "value": 3, "map_index": 1},
    ]
    airflow = ex.Result(
        state="success", run_id="a", tasks={"add[0]": "success", "add[1]": "success"}, xcoms=rows
    )
    kdag = ex.Result(
        state="success", run_id="b", tasks={"add[0]": "success", "add[1]": "success"}, xcoms=rows[:1]
    )
    assert ex.compare(airflow, kdag).detail == "xcom add[1].return_value: airflow 3, kdag none"


def test_random_values_compare_by_type_only() -> None:
    airflow = ex.Result(state="success", run_id="a", xcoms=[{"task_id": "t", "key": "k", "value": {"n": 12}}])
    kdag = ex.Result(state="success", run_id="b", xcoms=[{"task_id": "t", "key": "k", "value": {"n": 9000}}])
    assert ex.compare(airflow, kdag).kind == "differs"
    assert ex.compare(airflow, kdag, by_shape=True).kind == "match"


def test_a_tool_without_a_run() -> None:
    ok = ex.Result(state="success", run_id="a")
    assert ex.compare(ok, ex.Result(failure="No module named 'pendulum'")) == ex.Verdict(
        "kdag failed", "No module named 'pendulum'", "No module named 'pendulum'"
    )
    assert ex.compare(ex.Result(failure="no run"), ok).kind == "airflow failed"


def test_kdag_error_line_drops_the_file_prefix() -> None:
    stderr = "error: DAG file '/x/example_xcom.py': ModuleNotFoundError: No module named 'pendulum'\nmore\n"
    assert ex.kdag_error_line(stderr) == "ModuleNotFoundError: No module named 'pendulum'"
    unsupported = (
        "error: DAG file '/x/example_latest_only.py', line 36: airflow.providers.standard.operators."
        "latest_only.LatestOnlyOperator is not supported by kdag: kdag's Airflow layer does not implement it"
    )
    assert ex.kdag_error_line(unsupported).startswith("airflow.providers.standard.operators.latest_only")
    traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'k'\n"
    assert ex.kdag_error_line(traceback) == "KeyError: 'k'"
    assert ex.kdag_error_line("usage: kdag run\n") == "usage: kdag run"
    assert ex.kdag_error_line("") == "no output"


def test_table_summary_and_blockers() -> None:
    pendulum = "ModuleNotFoundError: No module named 'pendulum'"
    rows = [
        ("a.py", "a", ex.Verdict("match")),
        ("b.py", "b", ex.Verdict("kdag failed", pendulum, pendulum)),
        ("c.py", "c", ex.Verdict("kdag failed", pendulum, pendulum)),
        (
            "d.py",
            "d",
            ex.Verdict("differs", 'xcom t.k: airflow "a|b", kdag none', "XCom row missing in kdag"),
        ),
        ("e.py", "e", ex.Verdict("excluded", "assets")),
    ]
    table = ex.format_table(rows).splitlines()
    assert table[0] == "| example | dag_id | verdict |"
    assert table[2] == "| `a.py` | `a` | match |"
    assert table[5] == '| `d.py` | `d` | differs: xcom t.k: airflow "a\\|b", kdag none |'
    assert ex.summary_line(rows) == "1/4 match (1 excluded)"
    assert ex.blockers(rows) == [
        (pendulum, 2, ["b.py:b", "c.py:c"]),
        ("XCom row missing in kdag", 1, ["d.py:d"]),
    ]


def test_run_results_reads_states_and_rows_with_map_index() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("create table task_instance (dag_id, run_id, task_id, map_index, state)")
    db.execute("create table xcom (dag_id, run_id, task_id, map_index, key, value, timestamp)")
    db.executemany(
        "insert into task_instance values ('d', 'r', ?, ?, ?)",
        [("nums", -1, "success"), ("add", 0, "success"), ("add", 1, "failed"), ("other_run", -1, "x")],
    )
    db.execute("update task_instance set run_id = 'r2' where task_id = 'other_run'")
    db.executemany(
        "insert into xcom values ('d', 'r', ?, ?, ?, ?, ?)",
        [("nums", -1, "return_value", "[1, 2]", 1), ("add", 0, "return_value", "2", 2)],
    )
    tasks, rows = run_results(db, "d", "r")
    assert tasks == {"add[0]": "success", "add[1]": "failed", "nums": "success"}
    assert rows == [
        {"task_id": "nums", "key": "return_value", "value": [1, 2]},
        {"task_id": "add", "key": "return_value", "value": 2, "map_index": 0},
    ]
