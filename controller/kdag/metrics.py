"""Prometheus metrics of the controller, served on their own port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RUNS = Gauge("kdag_dagruns", "DAGRuns seen by this controller, by phase", ["phase"])
TASKS = Counter("kdag_task_transitions_total", "TaskRun phase transitions written", ["phase"])
HANDOFF_SECONDS = Histogram(
    "kdag_handoff_seconds",
    "Time from the controller seeing the last upstream pod finish (watch event) to the downstream pod"
    " being created",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
API_ERRORS = Counter("kdag_api_errors_total", "Failed API requests (409 excluded)", ["verb", "code"])
API_WRITES = Counter("kdag_api_writes_total", "Write requests made to the API server", ["verb", "resource"])
XCOM_BYTES = Counter("kdag_xcom_bytes_total", "XCom bytes pushed by finished task attempts")

_run_phases: dict[str, str] = {}


def observe_run_phase(run_key: str, phase: str) -> None:
    """Keep the per-phase run gauge exact when a run moves from one phase to another."""
    previous = _run_phases.get(run_key)
    if previous == phase:
        return
    if previous is not None:
        RUNS.labels(phase=previous).dec()
    RUNS.labels(phase=phase).inc()
    _run_phases[run_key] = phase


def forget_run(run_key: str) -> None:
    previous = _run_phases.pop(run_key, None)
    if previous is not None:
        RUNS.labels(phase=previous).dec()


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Serve /metrics from a background thread; port 0 disables it."""
    if port:
        start_http_server(port, addr=addr)
