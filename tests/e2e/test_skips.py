"""Tasks that skip themselves (AirflowSkipException): Skipped TaskRuns, trigger rules, a run that succeeds."""

from __future__ import annotations

import pytest
from controller_support import ControllerProcess
from e2e_helpers import apply, dag_manifest, pods_per_task, python_task, taskruns, wait_for_run, xcoms

pytestmark = pytest.mark.cluster

SKIPS = (
    "from airflow.exceptions import AirflowSkipException\n"
    "def check(ti, **_):\n"
    "    ti.xcom_push(key='checked', value=3)\n"
    "    raise AirflowSkipException('nothing new today')\n"
)
NOOP = "def noop(**_):\n    return 'ran'\n"
PULLS = "def report(ti, **_):\n    return ti.xcom_pull(task_ids='check', key='checked')\n"


def test_a_skipped_task_is_skipped_not_failed_and_trigger_rules_follow(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    manifest = dag_manifest(
        "skips",
        [
            python_task("check", SKIPS, "check", retries=2, retryDelaySeconds=1),
            python_task("load", NOOP, "noop", upstream=["check"]),
            python_task("after_load", NOOP, "noop", upstream=["load"], triggerRule="none_failed"),
            python_task("report", PULLS, "report", upstream=["check"], triggerRule="none_failed"),
        ],
        schedule="@once",
    )
    apply(kubeconfig, e2e_namespace, manifest)
    run = wait_for_run(kubeconfig, e2e_namespace, "skips")
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["progress"] == "4/4"

    tasks = taskruns(kubeconfig, e2e_namespace, name)
    assert {t: tr["status"]["phase"] for t, tr in tasks.items()} == {
        "check": "Skipped",
        "load": "Skipped",
        "after_load": "Succeeded",
        "report": "Succeeded",
    }
    check = tasks["check"]["status"]
    # A skip is final: one attempt despite retries, the reason as message, and the XComs pushed before it.
    assert (check["attempts"], check["exitCode"], check["message"]) == (1, 4, "nothing new today")
    assert check["xcomKeys"] == ["checked"]
    assert xcoms(kubeconfig, e2e_namespace, name, "check")["checked"] == "3"
    assert xcoms(kubeconfig, e2e_namespace, name, "report")["return_value"] == "3"
    assert tasks["load"]["status"]["attempts"] == 0
    assert pods_per_task(kubeconfig, e2e_namespace, name) == {"check": 1, "after_load": 1, "report": 1}
