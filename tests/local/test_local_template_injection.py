"""Templates never evaluate what a task, a param or a run's conf hands them (`security_dags/`, run with
`kdag run --local` as users run it).

An upstream task returns a Jinja payload that runs `id` wherever it is rendered unsandboxed; a run's param
and conf key hold it too. Where a downstream template pulls the XCom (`{{ ti.xcom_pull(...) }}`), an XComArg
fills a template field, a mapped instance expands over it (Airflow renders none of these), `@task.bash`
renders its command, or `{{ params.x }}` puts the param into a BashOperator's command, the task sees the
payload's text as it is. A shell payload given as a param stays inert where the command quotes it (bash's
`"$CMD"`, or the DAG's `shell_quote` filter) and runs where the command pastes it in, as in Airflow
(docs/security.md, "Templates, params and conf").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from local_support import kdag

DAGS = Path(__file__).resolve().parent / "security_dags"
PAYLOAD = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
SHELL_PAYLOAD = "x; touch pwned"


def values(result: dict[str, Any]) -> dict[str, Any]:
    """Each task's `return_value`, a mapped task's as `task[i]`."""
    found = {}
    for row in result["xcoms"]:
        if row["key"] == "return_value":
            index = row.get("map_index")
            found[row["task_id"] if index is None else f"{row['task_id']}[{index}]"] = row["value"]
    return found


@pytest.fixture(scope="module")
def injected(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One run of `template_injection` with every payload: its JSON result, and all it printed."""
    workdir = tmp_path_factory.mktemp("template-injection")
    done = kdag(
        "run",
        "--local",
        str(DAGS / "template_injection.py"),
        "-o",
        "json",
        "-p",
        f"x={PAYLOAD}",
        "-p",
        f"cmd={SHELL_PAYLOAD}",
        "--conf",
        json.dumps({"c": PAYLOAD}),
        "--workdir",
        str(workdir),
        timeout=300,
    )
    assert done.stdout.count("\n") == 1, done.stdout + done.stderr
    logs = "".join(p.read_text(errors="replace") for p in workdir.rglob("*") if p.is_file())
    return done.json(), done.stdout + done.stderr + logs


def succeeded(result: dict[str, Any], *tasks: str) -> None:
    states = {task: result["tasks"].get(task) for task in tasks}
    assert states == dict.fromkeys(tasks, "success")


def test_an_upstream_xcom_in_a_template_field_is_its_literal_text(
    injected: tuple[dict[str, Any], str],
) -> None:
    result, printed = injected
    succeeded(result, "pulled", "pulled_by_bash")
    got = values(result)
    assert got["up"] == PAYLOAD
    # Pulled by `{{ ti.xcom_pull(...) }}` (op_kwargs, templates_dict, a command) or given as an XComArg.
    assert got["pulled"] == {"value": PAYLOAD, "listed": [PAYLOAD, PAYLOAD], "templated": PAYLOAD}
    assert got["pulled_by_bash"] == PAYLOAD
    assert "uid=" not in printed


def test_xcoms_a_mapped_instance_or_task_bash_gets_are_never_rendered(
    injected: tuple[dict[str, Any], str],
) -> None:
    result, _ = injected
    mapped = ("echo", "group.echo_in_group", "mapped_env", "pair")
    succeeded(result, "bash_function", *(f"{task}[{i}]" for task in mapped for i in (0, 1)))
    got = values(result)
    # `{{ ds }}` from an XCom stays as it is too: rendered, it would be the logical date.
    for task in ("echo", "group.echo_in_group", "mapped_env"):
        assert (got[f"{task}[0]"], got[f"{task}[1]"]) == (PAYLOAD, "{{ ds }}"), task
    assert got["pair[0]"] == [PAYLOAD, PAYLOAD]  # the XComArg given to partial() as well
    assert got["pair[1]"] == [PAYLOAD, "{{ ds }}"]
    assert got["bash_function"] == PAYLOAD


def test_a_param_and_a_conf_value_in_a_bash_command_are_their_literal_text(
    injected: tuple[dict[str, Any], str],
) -> None:
    result, _ = injected
    succeeded(result, "param_x", "conf_c")
    got = values(result)
    assert got["param_x"] == PAYLOAD
    # `c` is declared by no param: a conf key is a param all the same, as in Airflow.
    assert got["conf_c"] == f"{PAYLOAD} {PAYLOAD}"


def test_a_shell_payload_param_stays_inert_where_the_command_quotes_it(
    injected: tuple[dict[str, Any], str],
) -> None:
    result, _ = injected
    succeeded(result, "env_quoted", "filter_quoted", "unquoted")
    got = values(result)
    assert got["env_quoted"] == SHELL_PAYLOAD  # env={"CMD": "{{ params.cmd }}"} and "$CMD"
    assert got["filter_quoted"] == SHELL_PAYLOAD  # {{ params.cmd | shell_quote }} (shlex.quote)
    # Pasted into the command, the trigger's value is shell code: what docs/security.md warns of.
    assert got["unquoted"] == "pwned"


def test_native_rendering_never_renders_an_xcom_either(tmp_path: Path) -> None:
    done = kdag(
        "run",
        "--local",
        str(DAGS / "template_injection_native.py"),
        "-o",
        "json",
        "--workdir",
        str(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = done.json()
    assert result["state"] == "success", result["tasks"]
    got = values(result)
    assert (got["echo[0]"], got["echo[1]"]) == (PAYLOAD, "{{ ds }}")
    assert got["pulled"] == [PAYLOAD, "{{ ds }}"]  # a native object, its strings untouched
    assert "uid=" not in done.stdout + done.stderr
