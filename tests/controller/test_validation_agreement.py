"""One DAG validator everywhere: `kdag compile` never prints a DAG manifest the webhook refuses.

The unit part compiles every DAG file of examples/ and of the test suite (status captures, and the DAG
sources tests write into temporary directories) and hands the DAG manifest `kdag compile` would print to the
webhook's own `validate_dag`. The cluster part sends the same manifests to the API server with a server-side
dry run, so the CRD's schema, its CEL rules and the webhook (the session's host controller) all see them.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from controller_support import ControllerProcess
from kdag import compile as compiler
from kdag.webhook import validate_dag
from kube_helpers import KubectlError, kubectl

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"


def _holds_a_dag(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    if "kind: DAG" not in text:
        return False  # not a DAG manifest (some YAML here is a template, such as the cluster's KWOK stages)
    docs = yaml.safe_load_all(text)
    return any(isinstance(doc, dict) and doc.get("kind") == "DAG" for doc in docs)


# DAG files that must compile: the examples (YAML and Python) and DAG manifests kept under tests/.
DAG_FILES = sorted(
    [
        *(p for p in (REPO / "examples").glob("*.yaml") if _holds_a_dag(p)),
        *(REPO / "examples" / "python").glob("*.py"),
        *(p for p in TESTS.rglob("*.yaml") if _holds_a_dag(p)),
    ]
)


@dataclass(frozen=True)
class DagSource:
    """A whole DAG file written as a string literal in a test (the test writes it into a tmp dir)."""

    test_file: Path
    line: int
    suffix: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.test_file.relative_to(REPO)}:{self.line}"


_YAML_DAG = re.compile(r"^kind: DAG\s*$", re.MULTILINE)
_PYTHON_DAG = re.compile(r"^\s*from airflow|kdag\.authoring", re.MULTILINE)


def _dag_sources() -> list[DagSource]:
    """String literals of tests/ that are whole YAML or Python DAG files (not parts of f-strings)."""
    sources = []
    for test_file in sorted(TESTS.rglob("*.py")):
        if test_file.name == Path(__file__).name:
            continue
        tree = ast.parse(test_file.read_text(encoding="utf-8"))
        in_fstrings = {
            id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if id(node) in in_fstrings:
                continue
            text = textwrap.dedent(node.value).lstrip("\n")
            if _YAML_DAG.search(text):
                sources.append(DagSource(test_file, node.lineno, ".yaml", text))
            elif _PYTHON_DAG.search(text) and re.search(r"\bDAG\(|@dag\b", text):
                sources.append(DagSource(test_file, node.lineno, ".py", text))
    return sources


DAG_SOURCES = _dag_sources()


def printed_manifests(path: Path) -> list[dict[str, Any]]:
    """The manifests `kdag compile PATH` prints, read back from the YAML text it prints."""
    loaded = compiler.load(path)
    return [doc for doc in yaml.safe_load_all(compiler.manifests_yaml(loaded.manifests)) if doc]


def the_dag(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (dag,) = [m for m in manifests if m.get("kind") == "DAG"]
    return dag


def webhook_refusal(dag: dict[str, Any]) -> str | None:
    """What the webhook answers the API server for this DAG: None when it admits it."""
    try:
        validate_dag(kopf.Spec(dag))
    except kopf.AdmissionError as error:
        return str(error)
    return None


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_the_suite_finds_the_dag_files_and_sources() -> None:
    names = {p.name for p in DAG_FILES}
    assert {"xcom-lesson.yaml", "scheduled-report.yaml", "xcom_lesson.py", "bash_templates.py"} <= names
    assert any(s.test_file.name == "test_local_yaml.py" for s in DAG_SOURCES)
    assert any(s.suffix == ".py" for s in DAG_SOURCES)


@pytest.mark.parametrize("path", DAG_FILES, ids=_id)
def test_every_dag_file_compiles_to_a_dag_the_webhook_admits(path: Path) -> None:
    dag = the_dag(printed_manifests(path))
    assert webhook_refusal(dag) is None


@pytest.mark.parametrize("source", DAG_SOURCES, ids=lambda s: s.id)
def test_what_compile_accepts_of_the_tests_dag_sources_the_webhook_admits(
    source: DagSource, tmp_path: Path
) -> None:
    """Some of these are refused on purpose (a cycle, a typo): compile must refuse them in one line."""
    path = tmp_path / f"dag{source.suffix}"
    path.write_text(source.text, encoding="utf-8")
    try:
        manifests = printed_manifests(path)
    except compiler.DefinitionError as error:
        assert "\n" not in str(error)
        return
    assert webhook_refusal(the_dag(manifests)) is None


# --- the two cases on which `kdag compile` and the webhook used to disagree ----------------------------

BOTH_PYTHON_AND_COMMAND = """\
apiVersion: kdag.dev/v1alpha1
kind: DAG
metadata: {name: both}
spec:
  tasks:
    - id: a
      command: [echo, hi]
      python: {source: "def f(**_):\\n    return 1\\n", callable: f}
      env:
        - {name: KDAG_X, value: "1"}
"""

ONCE = """\
from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG("once_dag", schedule="@once") as dag:
    BashOperator(task_id="t", bash_command="echo once")
"""


def test_compile_refuses_python_and_command_naming_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "both.yaml"
    path.write_text(BOTH_PYTHON_AND_COMMAND, encoding="utf-8")
    with pytest.raises(compiler.DefinitionError) as caught:
        compiler.load(path)
    expected = (
        "task 'a' (spec.tasks[0]): a task needs exactly one of python or command; "
        "task 'a' (spec.tasks[0].env[0].name): 'KDAG_X' may not start with KDAG_ (kdag's own variables)"
    )
    assert str(caught.value) == f"DAG 'both': {expected}"
    assert webhook_refusal(yaml.safe_load(BOTH_PYTHON_AND_COMMAND)) == expected


def test_once_schedule_compiles_and_the_webhook_admits_it(tmp_path: Path) -> None:
    path = tmp_path / "once.py"
    path.write_text(ONCE, encoding="utf-8")
    dag = the_dag(printed_manifests(path))
    assert dag["spec"]["schedule"] == "@once"
    assert webhook_refusal(dag) is None
    yaml_path = tmp_path / "once.yaml"
    yaml_path.write_text(yaml.safe_dump(dag), encoding="utf-8")
    assert webhook_refusal(the_dag(printed_manifests(yaml_path))) is None


def test_compile_names_every_problem_of_a_python_dag_too(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text(
        "from airflow import DAG\nfrom airflow.operators.bash import BashOperator\n"
        "with DAG('bad', schedule='every day') as dag:\n"
        "    BashOperator(task_id='..', bash_command='true')\n",
        encoding="utf-8",
    )
    with pytest.raises(compiler.DefinitionError) as caught:
        compiler.load(path)
    assert str(caught.value) == (
        "DAG 'bad': task '..' (spec.tasks[0].id): '..' is not valid: a task id has letters, digits, '_', '.',"
        " '-', and starts and ends with a letter or digit (it is a label value)"
    )


# --- the API server: schema, CEL and the webhook -------------------------------------------------------


def for_apply(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as a user applies it: no status, no namespace or server-set metadata (status captures)."""
    meta = manifest.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "labels", "annotations") if k in meta}
    return {k: v for k, v in manifest.items() if k != "status"} | {"metadata": kept}


def dry_run_refusal(kubeconfig: str, namespace: str, manifests: list[dict[str, Any]]) -> str:
    """The API server's refusal of a server-side apply (dry run), or empty when it admits every object."""
    text = yaml.safe_dump_all([for_apply(m) for m in manifests])
    try:
        apply = ("apply", "--dry-run=server", "--server-side", "-n", namespace, "-f", "-")
        kubectl(*apply, kubeconfig=kubeconfig, input=text)
    except KubectlError as error:
        return error.stderr
    return ""


@pytest.mark.cluster
@pytest.mark.parametrize("path", DAG_FILES, ids=_id)
def test_api_server_and_webhook_admit_what_compile_prints(
    kubeconfig: str, controller: ControllerProcess, namespace: str, path: Path
) -> None:
    controller.ensure_webhook()
    assert dry_run_refusal(kubeconfig, namespace, printed_manifests(path)) == ""


@pytest.mark.cluster
@pytest.mark.parametrize("source", DAG_SOURCES, ids=lambda s: s.id)
def test_api_server_and_webhook_admit_what_compile_accepts_of_the_tests_dag_sources(
    kubeconfig: str, controller: ControllerProcess, namespace: str, source: DagSource, tmp_path: Path
) -> None:
    path = tmp_path / f"dag{source.suffix}"
    path.write_text(source.text, encoding="utf-8")
    try:
        manifests = printed_manifests(path)
    except compiler.DefinitionError:
        return
    controller.ensure_webhook()
    assert dry_run_refusal(kubeconfig, namespace, manifests) == ""


@pytest.mark.cluster
def test_api_server_agrees_on_the_two_former_disagreements(
    kubeconfig: str, controller: ControllerProcess, namespace: str, tmp_path: Path
) -> None:
    controller.ensure_webhook()
    refusal = dry_run_refusal(kubeconfig, namespace, [yaml.safe_load(BOTH_PYTHON_AND_COMMAND)])
    # The CRD's rules name the task and the value (the webhook is not reached: CEL refuses first).
    assert "task a needs exactly one of python or command" in refusal, refusal
    assert "env name KDAG_X may not start with KDAG_" in refusal, refusal
    path = tmp_path / "once.py"
    path.write_text(ONCE, encoding="utf-8")
    assert dry_run_refusal(kubeconfig, namespace, printed_manifests(path)) == ""
