"""xcomInputs: a Python task's runner sets them, of any size; a command's are checked before it runs."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from kdag_runner import store, xcom_inputs
from kdag_runner.environment import RunnerConfigError, XComInput

from .runner_support import run_runner, write_store

BIG = "x" * 1_000_000  # about what one ConfigMap holds; Linux starts no program with it in one variable


def inputs_env(*inputs: XComInput) -> str:
    return json.dumps([inp._asdict() for inp in inputs])


def test_a_python_task_receives_an_xcom_input_of_any_size(tmp_path: Path) -> None:
    write_store(tmp_path, "produce", {"return_value": BIG, "answer": {"n": 42}, "a b": "spaced"})
    source = textwrap.dedent(
        """
        import os
        def task():
            env = os.environ
            return [len(env["BIG"]), env["ANSWER"], env["SPACED"], "ABSENT" in env]
        """
    )
    extra = {
        "KDAG_PYTHON_SOURCE": source,
        "KDAG_PYTHON_CALLABLE": "task",
        "KDAG_XCOM_INPUTS": inputs_env(
            XComInput("BIG", "produce", "return_value"),
            XComInput("ANSWER", "produce", "answer"),
            XComInput("SPACED", "produce", store.encode_key("a b")),
            XComInput("ABSENT", "produce", "never_pushed"),  # unset, as an optional configMapKeyRef leaves it
        ),
    }
    result = run_runner(tmp_path, "consume", ancestors=["produce"], extra=extra)
    assert result.returncode == 0, result.stderr
    assert result.xcoms == {"return_value": [1_000_000, '{"n":42}', "spaced", False]}


def test_the_check_passes_inputs_a_command_can_start_with(tmp_path: Path) -> None:
    write_store(tmp_path, "produce", {"return_value": "small"})
    extra = {"KDAG_XCOM_INPUTS": inputs_env(XComInput("GREETING", "produce", "return_value"))}
    result = run_runner(tmp_path, "report", command="check-inputs", ancestors=["produce"], extra=extra)
    assert (result.returncode, result.stderr, result.termination) == (0, "", None)


def test_the_check_fails_a_command_whose_input_is_too_large_naming_it_and_the_limit(tmp_path: Path) -> None:
    write_store(tmp_path, "produce", {"return_value": "small", "big rows": BIG})
    extra = {
        "KDAG_XCOM_INPUTS": inputs_env(
            XComInput("GREETING", "produce", "return_value"),
            XComInput("ROWS", "produce", store.encode_key("big rows")),
        )
    }
    result = run_runner(tmp_path, "report", command="check-inputs", ancestors=["produce"], extra=extra)
    message = (
        "xcomInputs of task 'report': XCom 'big rows' of task 'produce' takes 1000006 bytes as the"
        " environment variable ROWS, over Linux's limit of 131072 bytes for one variable (MAX_ARG_STRLEN,"
        " 'NAME=value' counted), so the command could not start; read the file"
        " $KDAG_XCOM_IN/produce/-big.20rows instead, or use a Python task (its runner sets variables of"
        " any size)"
    )
    assert result.returncode == 3
    assert result.stderr == f"kdag: {message}\n"
    assert result.termination == {"error": message, "retry": False}


def test_the_limit_is_one_environment_string_of_131072_bytes_with_its_name_and_nul() -> None:
    # "V=" + value + NUL: 131072 bytes start (checked with execve), one more fails with E2BIG.
    inputs = [XComInput("V", "t", "k")]
    assert xcom_inputs.problem("me", inputs, {"V": "x" * (131_072 - 3)}) == ""
    assert "takes 131073 bytes" in xcom_inputs.problem("me", inputs, {"V": "x" * (131_072 - 2)})
    assert "takes 131073 bytes" in xcom_inputs.problem("me", inputs, {"V": "é" * (131_070 // 2 - 1) + "xy"})
    assert xcom_inputs.problem("me", inputs, {}) == ""  # unset: nothing to start with
    with pytest.raises(OSError) as refused:
        subprocess.run(["true"], env={"V": "x" * (131_072 - 2)}, check=False)
    assert refused.value.errno == 7  # E2BIG, what the limit stands for


def test_inputs_are_read_only_from_the_stores_of_named_tasks(tmp_path: Path) -> None:
    write_store(tmp_path, "a", {"return_value": 1})
    assert xcom_inputs.read([XComInput("A", "a", "return_value")], tmp_path / "xcom") == {"A": "1"}
    for task, key in ("..", "return_value"), ("a", "..data"), ("a/b", "k"):
        with pytest.raises(RunnerConfigError, match="no XCom is stored as"):
            xcom_inputs.read([XComInput("A", task, key)], tmp_path / "xcom")
    with pytest.raises(RunnerConfigError, match="KDAG_XCOM_IN is not set"):
        xcom_inputs.read([XComInput("A", "a", "return_value")], None)
    assert xcom_inputs.read([], None) == {}


def test_an_input_no_environment_variable_can_hold_fails_naming_it(tmp_path: Path) -> None:
    write_store(tmp_path, "a", {"return_value": "nul\x00inside"})
    environ = dict(os.environ)
    with pytest.raises(store.XComError, match=r"XCom 'return_value' of task 'a' holds a NUL character"):
        xcom_inputs.export("me", [XComInput("A", "a", "return_value")], tmp_path / "xcom", os.environ)
    assert dict(os.environ) == environ
