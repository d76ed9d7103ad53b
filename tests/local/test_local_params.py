"""`kdag run --local --conf CONF` on the Params DAGs of `params_dags/` does what Apache Airflow 3.3.2 did with
`airflow dags test ... -c CONF` (`params_dags/airflow_3_3_2.json`, recorded once by
`bench/params_reference.py`): the same task states and XCom rows (every param each task saw) when Airflow ran
the run, and a refusal naming the same param and the same JSON-schema rule when Airflow refused it.

One deviation, on purpose (docs/design.md, "Params"): a value that breaks a schema only a task declares
(`task_param_below_minimum`) makes Airflow start the run and fail that task; kdag refuses the run before any
task starts, naming the task.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from local_support import kdag

DAGS = Path(__file__).resolve().parent / "params_dags"
AIRFLOW: dict[str, Any] = json.loads((DAGS / "airflow_3_3_2.json").read_text(encoding="utf-8"))
CASES = sorted(name for name in AIRFLOW if not name.startswith("_"))
_AIRFLOW_REFUSAL = re.compile(r"ParamValidationError: Invalid input for param (\w+): (.+)$")


def run(case: dict[str, Any], workdir: Path) -> Any:
    return kdag(
        "run",
        "--local",
        str(DAGS / f"{case['dag']}.py"),
        "-o",
        "json",
        "--logical-date",
        "2026-11-21",
        "--conf",
        json.dumps(case["conf"]),
        "--workdir",
        str(workdir),
    )


def airflow_refusal(case: dict[str, Any]) -> tuple[str, str]:
    """The param and jsonschema message of Airflow's ParamValidationError."""
    for line in case["errors"]:
        match = _AIRFLOW_REFUSAL.search(line)
        if match:
            return match.group(1), match.group(2)
    raise AssertionError(f"no ParamValidationError in {case['errors']}")


@pytest.mark.parametrize("name", [n for n in CASES if AIRFLOW[n]["state"] is not None])
def test_runs_airflow_ran_give_its_states_and_rows(name: str, tmp_path: Path) -> None:
    case = AIRFLOW[name]
    done = run(case, tmp_path)
    if name == "task_param_below_minimum":
        # Airflow ran `first` and failed `second` (its own Param `extra` has minimum 1); kdag refuses first.
        assert case["tasks"] == {"first": "success", "second": "failed"}
        param, message = airflow_refusal(case)
        assert done.returncode == 1 and done.stdout == ""
        assert f"task 'second': param '{param}': {message} (rule 'minimum')" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    result = done.json()
    assert result["state"] == case["state"]
    assert result["tasks"] == case["tasks"]
    assert sorted(result["xcoms"], key=json.dumps) == sorted(case["xcoms"], key=json.dumps)


@pytest.mark.parametrize(
    "name", [n for n in CASES if AIRFLOW[n]["state"] is None and n != "scheduled_without_default"]
)
def test_runs_airflow_refused_are_refused_naming_the_param_and_rule(name: str, tmp_path: Path) -> None:
    case = AIRFLOW[name]
    param, message = airflow_refusal(case)
    done = run(case, tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: DAG '{case['dag'].replace('_', '-')}': param '{param}': ")
    if message.startswith("No value passed"):
        assert "has no value: it has no default" in line
    else:
        assert message in line  # the same jsonschema message Airflow gave
        assert "(rule '" in line
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())  # no task ran


def test_a_scheduled_dag_whose_param_has_no_default_is_refused_as_airflow_refuses_it(tmp_path: Path) -> None:
    case = AIRFLOW["scheduled_without_default"]
    assert any("is not allowed to define a Schedule" in line for line in case["errors"])
    done = kdag("compile", str(DAGS / "params_scheduled.py"))
    assert done.returncode == 1
    assert "spec.params.who: the DAG runs on a schedule, so every param needs a default" in done.stderr
    assert "has no value" in done.stderr


def test_p_values_are_read_against_the_schema_and_undeclared_ones_warned_of(tmp_path: Path) -> None:
    done = kdag(
        "run",
        "--local",
        str(DAGS / "params_required.py"),
        "-o",
        "json",
        "-p",
        "who=ada",
        "-p",
        "whom=7",
        "--workdir",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert done.json()["xcoms"] == [{"task_id": "greet", "key": "return_value", "value": "hello ada"}]
    assert "warning: param 'whom' is not declared by DAG 'params-required'" in done.stderr
    # A run param wins over the conf key of the same name; a number given to a string param stays text
    # when the schema wants a string (here it then breaks the pattern, naming it).
    refused = kdag(
        "run", "--local", str(DAGS / "params_required.py"), "-p", "who=123", "--conf", '{"who": "x"}'
    )
    assert refused.returncode == 1
    assert "param 'who': '123' does not match '^[a-z]+$' (rule 'pattern')" in refused.stderr
