"""How long `kdag ui` takes to show a run of 1,000 tasks, with its 1,000 TaskRuns (and pods) in the namespace.

It runs a fan DAG of N tasks (root -> N-2 tasks -> join, as `scale.py`'s) on KWOK's fake nodes
(`tests/cluster/up --kwok`) with a host-run controller, stops the controller, starts `kdag ui --namespace`
on a free loopback port, and measures:
- start-up: from starting `kdag ui` to its first answer (the shared watches' first lists done);
- the run page (graph not drawn above 400 tasks; task table page 1 of 10; the Gantt of that page), its
  server time over HTTP, first and median of `--repeat`, and the page's size; page 10 and a phase filter;
- the DAG page (grid of the run), the join task's page (998 mounted inputs), the live stream's snapshot;
- in headless Chromium: navigation start to the load event of the run page (median of `--repeat`).

    KUBECONFIG=... .venv/bin/python bench/ui_load.py [--tasks 1000] [--repeat 5] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from controller_support import ControllerProcess, apply_controller_prerequisites, free_port, kubectl
from scale import fan_dag

NAMESPACE = "kdag-ui-bench"
KDAG = str(Path(sys.executable).parent / "kdag")


def timed_get(url: str) -> tuple[float, int, int]:
    """(seconds, status, bytes) of one GET, the whole body read."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=120) as answer:
            body = answer.read()
            status = answer.status
    except urllib.error.HTTPError as err:
        body, status = err.read(), err.code
    return time.perf_counter() - started, status, len(body)


def snapshot_time(url: str) -> tuple[float, int]:
    """Seconds to the first server-sent event (the snapshot) and its size."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:
        event = answer.readline()
        data = answer.readline()
    assert event.startswith(b"event: snapshot"), event
    return time.perf_counter() - started, len(data)


def run_dag(admin: str, tasks: int, log_dir: Path) -> str:
    """The fan DAG run to Succeeded by a host-run controller (stopped afterwards); the run's name."""
    apply_controller_prerequisites(admin)
    kubectl(admin, "create", "namespace", NAMESPACE)
    process = ControllerProcess(kubeconfig=admin, log_path=log_dir / "controller.log")
    process.start()
    try:
        manifest = fan_dag("ui-load", tasks)
        kubectl(admin, "apply", "-n", NAMESPACE, "--server-side", "-f", "-", stdin=json.dumps(manifest))
        run = "ui-load-bench"
        kubectl(
            admin,
            "create",
            "-n",
            NAMESPACE,
            "-f",
            "-",
            stdin=json.dumps(
                {
                    "apiVersion": "kdag.dev/v1alpha1",
                    "kind": "DAGRun",
                    "metadata": {"name": run},
                    "spec": {"dagRef": {"name": "ui-load"}},
                }
            ),
        )
        started = time.time()
        while time.time() - started < 1200:
            phase = kubectl(admin, "get", "dagrun", run, "-n", NAMESPACE, "-o", "jsonpath={.status.phase}")
            if phase in ("Succeeded", "Failed"):
                print(f"run {run}: {phase} after {time.time() - started:.1f} s", file=sys.stderr)
                return run
            time.sleep(2)
        raise SystemExit(f"run {run} did not finish in 1200 s")
    finally:
        process.stop()


def browser_load(url: str, repeat: int) -> list[float]:
    """Navigation start to the load event, in Chromium, seconds, each of `repeat` loads."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "chromedriver"), options=options
    )
    try:
        times = []
        for _ in range(repeat):
            driver.get(url)
            ms = driver.execute_script(
                "const t = performance.getEntriesByType('navigation')[0];"
                " return t.loadEventEnd - t.startTime;"
            )
            times.append(float(ms) / 1000)
        return times
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="Leave the namespace (and its run) in place.")
    args = parser.parse_args()
    admin = os.environ["KUBECONFIG"]
    if kubectl(admin, "get", "namespace", NAMESPACE, check=False).startswith("NAME"):
        raise SystemExit(f"namespace {NAMESPACE} exists: delete it first (or it is another bench's)")
    log_dir = Path(tempfile.mkdtemp(prefix="ui-load-"))
    results: dict[str, Any] = {"tasks": args.tasks}
    ui: subprocess.Popen[bytes] | None = None
    try:
        run = run_dag(admin, args.tasks, log_dir)
        results["taskruns_in_namespace"] = len(
            kubectl(admin, "get", "taskruns", "-n", NAMESPACE, "-o", "name").split()
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        with (log_dir / "ui.log").open("wb") as log:
            ui = subprocess.Popen(
                [KDAG, "ui", "--port", str(port), "--namespace", NAMESPACE, "--kubeconfig", admin],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2).read()
                break
            except OSError:
                if ui.poll() is not None:
                    raise SystemExit((log_dir / "ui.log").read_text()[-3000:]) from None
                time.sleep(0.05)
        results["startup_s"] = round(time.perf_counter() - started, 3)
        pages = {
            "run page": f"/runs/{NAMESPACE}/{run}",
            "run page, page 10": f"/runs/{NAMESPACE}/{run}?page=10",
            "run page, Succeeded only": f"/runs/{NAMESPACE}/{run}?state=Succeeded",
            "DAG page (grid)": f"/dags/{NAMESPACE}/ui-load",
            "join task page": f"/runs/{NAMESPACE}/{run}/tasks/join",
            "DAG list": "/",
        }
        for label, path in pages.items():
            samples = [timed_get(base + path) for _ in range(args.repeat)]
            assert all(status == 200 for _, status, _ in samples), (label, samples)
            results[label] = {
                "first_s": round(samples[0][0], 3),
                "median_s": round(statistics.median(s for s, _, _ in samples), 3),
                "bytes": samples[0][2],
            }
        seconds, size = snapshot_time(f"{base}/events?ns={NAMESPACE}&run={run}")
        results["live snapshot"] = {"first_event_s": round(seconds, 3), "bytes": size}
        loads = browser_load(base + pages["run page"], args.repeat)
        results["browser run page load"] = {
            "first_s": round(loads[0], 3),
            "median_s": round(statistics.median(loads), 3),
        }
    finally:
        if ui is not None:
            ui.terminate()
            ui.wait(timeout=10)
        if not args.keep:
            kubectl(admin, "delete", "namespace", NAMESPACE, "--wait=false", check=False)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
