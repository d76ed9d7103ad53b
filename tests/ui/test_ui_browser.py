"""`kdag ui` in headless Chromium (Debian's, through Selenium) against the test cluster: the seed lesson's
run turning green live, its XCom table, a run triggered from the form with a changed param, a failed task's
log, `<script>` in an XCom value and a log shown as text, and the page served as `localhost` but not to a
request naming another host (DNS rebinding).

One namespace, one `kdag ui` process (a subprocess on a free loopback port, stopped by PID) and one browser
serve the whole module; the three DAGs are applied at once so their runs proceed together.
`KDAG_UI_SCREENSHOTS=docs` saves the screenshots docs/ui.md shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import yaml
from controller_support import REPO, ControllerProcess, fetch, free_port, kubectl, stop_process
from kdag import manifests, names

pytestmark = pytest.mark.cluster

KDAG = str(Path(sys.executable).parent / "kdag")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOTS = os.environ.get("KDAG_UI_SCREENSHOTS", "")
EVIL = "<script>window.__pwned = 1</script>"

PARAMS_LESSON: dict[str, Any] = {
    "apiVersion": "kdag.dev/v1alpha1",
    "kind": "DAG",
    "metadata": {"name": "params-lesson"},
    "spec": {
        "dagId": "params_lesson",
        "params": {"value": "some value"},
        "paramSchemas": {"value": {"type": "string", "minLength": 1}},
        "tasks": [
            {
                "id": "use_value_task",
                "python": {
                    "callable": "use_value_task",
                    "source": (
                        "def use_value_task(**kwargs):\n    value = kwargs['ti'].params['value']\n"
                        "    print('Value: {}'.format(value))\n    return value\n"
                    ),
                },
            }
        ],
    },
}
FAILING: dict[str, Any] = {
    "apiVersion": "kdag.dev/v1alpha1",
    "kind": "DAG",
    "metadata": {"name": "fails"},
    "spec": {
        "schedule": "@once",
        "tasks": [
            {
                "id": "breaks",
                "retries": 0,
                "python": {
                    "callable": "breaks",
                    "source": (
                        "def breaks(**kwargs):\n"
                        f"    kwargs['ti'].xcom_push(key='markup', value={EVIL!r})\n"
                        f"    print({EVIL!r})\n"
                        "    raise ValueError('the data is not there')\n"
                    ),
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def ui_namespace(kubeconfig: str, controller: ControllerProcess) -> Iterator[str]:
    name = f"kdag-ui-{uuid.uuid4().hex[:8]}"
    kubectl(kubeconfig, "create", "namespace", name)
    try:
        for manifest in (
            yaml.safe_load((REPO / "examples" / "xcom-lesson.yaml").read_text()),
            PARAMS_LESSON,
            FAILING,
        ):
            kubectl(kubeconfig, "apply", "-n", name, "-f", "-", stdin=json.dumps(manifest))
        yield name
    finally:
        kubectl(kubeconfig, "delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def ui_url(kubeconfig: str, ui_namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`kdag ui` on a free loopback port, showing the test's namespace."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("ui") / "ui.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [KDAG, "ui", "--port", str(port), "--namespace", ui_namespace, "--kubeconfig", kubeconfig],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"kdag ui did not start:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (tests/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


HEALED: list[str] = []
"""Pages reloaded because Chromium showed its own error page (below)."""


def healed(browser: Any) -> bool:
    """Whether the page had to be loaded again. Chromium aborts a load with ERR_NETWORK_CHANGED whenever a
    network interface appears, and the test cluster adds one (a veth) for every pod it starts; its error
    page has no `data-page`, ours always have one."""
    try:
        ours = browser.execute_script("return !!(document.body && document.body.dataset.page);")
    except Exception:
        ours = False
    if not ours:
        HEALED.append(browser.current_url)
        time.sleep(0.3)
        browser.get(browser.current_url)
    return not ours


def open_page(browser: Any, url: str) -> None:
    browser.get(url)
    for _ in range(10):
        if not healed(browser):
            return
    raise AssertionError(f"{url} did not load: {browser.page_source[:500]}")


def follow_link(browser: Any, css: str) -> None:
    href = browser.find_element("css selector", css).get_dom_attribute("href")  # an SVG link's too
    open_page(browser, urljoin(browser.current_url, href))


def wait_for(what: str, condition: Any, timeout: float = 120, browser: Any = None) -> Any:
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = None if browser is not None and healed(browser) else condition()
        except WebDriverException:  # the page is being replaced (a refresh, a reload): look again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            page = browser.page_source[-3000:] if browser is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{page}")
        time.sleep(0.2)


def run_of(kubeconfig: str, namespace: str, dag: str) -> dict[str, Any] | None:
    items = json.loads(
        kubectl(kubeconfig, "get", "dagruns", "-n", namespace, "-l", f"kdag.dev/dag={dag}", "-o", "json")
    )
    return items["items"][0] if items["items"] else None


def node_phases(browser: Any) -> dict[str, str]:
    return dict(
        browser.execute_script(
            "return Array.from(document.querySelectorAll('g.node')).map(n => [n.dataset.task,"
            " Array.from(n.classList).find(c => c.startsWith('st-'))]);"
        )
    )


def xcom_values(browser: Any) -> dict[str, str]:
    return dict(
        browser.execute_script(
            "return Array.from(document.querySelectorAll('#xcom-table tr[data-key]'))"
            ".map(r => [r.dataset.key, r.querySelector('pre.value').textContent]);"
        )
    )


def shoot(browser: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(SCREENSHOTS) / name))


def test_seed_lesson_turns_green_live_and_shows_goodbye_tasks_xcom(
    kubeconfig: str, ui_namespace: str, ui_url: str, browser: Any
) -> None:
    """The lesson's @once run succeeds; then a run made while its page is open turns green on that page,
    through the live stream (no reload), and goodbye_task's XCom table shows what it returned."""
    first = wait_for("the seed lesson's run", lambda: run_of(kubeconfig, ui_namespace, "etl-dag"), 60)
    open_page(browser, f"{ui_url}/dags/{ui_namespace}/etl-dag")
    wait_for(
        "the @once run to succeed",
        lambda: browser.find_elements(
            "css selector", f'a.st-Succeeded[data-run-head="{first["metadata"]["name"]}"]'
        ),
        240,
        browser,
    )
    dag_uid = json.loads(kubectl(kubeconfig, "get", "dag", "etl-dag", "-n", ui_namespace, "-o", "json"))
    name = names.manual_run_name("etl-dag")
    manifest = manifests.dagrun_manifest("etl-dag", name, owner_uid=dag_uid["metadata"]["uid"])
    kubectl(kubeconfig, "create", "-n", ui_namespace, "-f", "-", stdin=json.dumps(manifest))
    url = f"{ui_url}/runs/{ui_namespace}/{name}"
    wait_for(
        "the new run's page",
        lambda: (
            open_page(browser, url)
            or ("/runs/" in browser.current_url
            and browser.execute_script("return document.body.dataset.page === 'run';"))
        ),
        30,
    )
    browser.execute_script("window.__sameDocument = true;")  # gone if the page is loaded again
    reloads = len(HEALED)
    at_open = node_phases(browser)
    assert set(at_open) == {"sql_task", "hello_task", "goodbye_task"}
    assert at_open["goodbye_task"] != "st-Succeeded", "the run ended before its page opened"
    wait_for(
        "three green tasks", lambda: set(node_phases(browser).values()) == {"st-Succeeded"}, 120, browser
    )
    if len(HEALED) == reloads:  # Chromium did not drop the page meanwhile: the colours came live
        assert browser.execute_script("return window.__sameDocument === true;"), "the page was reloaded"
    wait_for(
        "the run's phase", lambda: "Succeeded" in browser.find_element("id", "run-phase").text, 30, browser
    )
    run = json.loads(kubectl(kubeconfig, "get", "dagrun", name, "-n", ui_namespace, "-o", "json"))
    text = (run.get("spec") or {}).get("logicalDate") or run["metadata"]["creationTimestamp"]
    ds = datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d")
    if SCREENSHOTS:  # the page with every section rendered after the run ended
        open_page(browser, browser.current_url)
        shoot(browser, "ui-run.png")
    follow_link(browser, 'g.node[data-task="goodbye_task"] a')
    assert "goodbye_task" in browser.find_element("id", "task-title").text
    assert xcom_values(browser)["return_value"] == f'["{ds}"]'
    inputs = browser.find_element("id", "inputs").text
    assert "hello_task" in inputs and "/kdag/xcom/in/hello_task/" in inputs
    shoot(browser, "ui-task.png")
    open_page(browser, f"{ui_url}/runs/{ui_namespace}/{name}/tasks/hello_task")
    assert xcom_values(browser)["execution_time"] == ds


def test_trigger_the_params_lesson_with_a_changed_param(ui_namespace: str, ui_url: str, browser: Any) -> None:
    open_page(browser, f"{ui_url}/dags/{ui_namespace}/params-lesson")
    field = browser.find_element("css selector", 'input[data-param="value"]')
    assert field.get_attribute("value") == "some value"
    field.clear()
    field.send_keys("a changed value")
    browser.find_element("id", "trigger-button").click()
    # Not healed: loading a POST's answer again would post again.
    wait_for("the new run's page", lambda: "/runs/" in browser.current_url, 15)
    wait_for(
        "the run to succeed",
        lambda: "Succeeded" in browser.find_element("id", "run-phase").text,
        120,
        browser,
    )
    follow_link(browser, "a.task-link")
    wait_for(
        "use_value_task's XComs",
        lambda: xcom_values(browser).get("return_value") == "a changed value",
        30,
        browser,
    )


def test_a_failed_tasks_log_and_markup_shown_as_text(
    ui_namespace: str, ui_url: str, browser: Any, kubeconfig: str
) -> None:
    run = wait_for("the failing DAG's run", lambda: run_of(kubeconfig, ui_namespace, "fails"), 60)
    open_page(browser, f"{ui_url}/runs/{ui_namespace}/{run['metadata']['name']}/tasks/breaks")
    wait_for("the failure", lambda: "Failed" in browser.find_element("id", "task-phase").text, 240, browser)
    log = wait_for(
        "the log",
        lambda: "the data is not there" in (t := browser.find_element("id", "log").text) and t,
        30,
        browser,
    )
    assert "ValueError" in log and EVIL in log
    assert xcom_values(browser)["markup"] == EVIL
    assert browser.execute_script("return window.__pwned === undefined;")
    open_page(browser, f"{ui_url}/")
    assert "params-lesson" in browser.find_element("id", "dag-table").text
    shoot(browser, "ui-dags.png")
    open_page(browser, f"{ui_url}/dags/{ui_namespace}/etl-dag")
    assert len(browser.find_elements("css selector", "a[data-run-head]")) == 2
    shoot(browser, "ui-dag.png")


def test_served_as_localhost_live_and_refused_to_a_rebound_name(
    ui_namespace: str, ui_url: str, browser: Any
) -> None:
    """`kdag ui` listens on 127.0.0.1 and answers requests addressed to a loopback name only (DNS rebinding):
    Chromium at http://localhost:PORT gets the page and its live stream; a request naming another host
    reaching the same socket is refused, saying why."""
    port = int(ui_url.rsplit(":", 1)[1])
    open_page(browser, f"http://localhost:{port}/dags/{ui_namespace}/etl-dag")
    wait_for("the live stream", lambda: browser.find_elements("css selector", "#live.on"), 30, browser)
    rebound = {"Host": f"rebound.example:{port}"}
    status, _, text = fetch(f"{ui_url}/dags/{ui_namespace}/etl-dag", headers=rebound)
    assert status == 403 and "answers only requests addressed to 127.0.0.1" in text, text
    assert "etl-dag" not in text
