"""How many of Apache Airflow's own example DAGs give Airflow's results under `kdag run --local`.

Every example DAG file that ships inside the pinned Airflow (`airflow/example_dags`, and each provider's
`example_dags`) is read from the installed package, never copied. Each DAG of each file (a file may define
several) runs under `airflow dags test DAG DATE -f FILE -B BUNDLE` in the reference virtual environment
(`airflow_reference.airflow_venv()`, made once in `~/.cache/kdag/airflow-<version>`) with
`[core] load_examples` on, so the examples are Airflow's own bundles (`example_dags`,
`apache-airflow-providers-standard-example-dags`, ...) with their plugins loaded, and under
`kdag run --local FILE --dag-id DAG -o json --logical-date DATE` with the same logical date (and the same
conf, `RUN_CONF`; every example folder given with `--dag-folder`, where a TriggerDagRunOperator finds the
DAG it triggers, as Airflow finds it among the bundles it loaded). Task states and XCom rows are
compared; the table gives one verdict per DAG and ends with an `N/M match` line over the DAGs in scope.
Examples that need a system outside this machine, or cannot finish under `airflow dags test`, are listed in
`EXCLUDED` with the reason and run on neither side.

Airflow's results do not change for one version and logical date, so they are kept per DAG in
`~/.cache/kdag/airflow-examples/<version>/<date>/` (with Airflow's log beside them): a second run only
re-runs kdag (`--refresh-airflow` runs Airflow again; the DAGs of `READS_CLOCK`, which branch on the time
now, always run Airflow again). Airflow runs one DAG at a time unless `--jobs N` (each worker has its own
copy of a migrated SQLite database); kdag runs use the same number of workers. The results JSON goes to
`~/.cache/kdag/airflow-examples/results.json` (`--results`).

Comparison (`compare`; the first difference is the verdict):
- task states: Airflow's `task_instance` rows (a mapped instance is `task_id[map_index]`), kdag's `tasks`,
  in kdag's order;
- XCom rows by (task_id, map_index, key); kdag's own `__` keys and Airflow's `skipmixin_key` are left out;
- the run's state.
Values are compared after `normalise`, which puts the run-specific parts of strings (in values and dict
keys) into shapes: each tool's own run id and any Airflow (`manual__<date>`) or kdag (`<dag>-local-xxxxx`)
run id become `<run_id>`, each tool's AIRFLOW_HOME `<airflow_home>` (kdag's tasks get a scratch one, as
example_bash_operator prints `$AIRFLOW_HOME/dags`), ISO 8601 date-times `<datetime>` (also the text of
`date`), ISO dates `<date>`, UUIDs `<uuid>`, memory addresses `0x<addr>`. Examples in `RANDOM_VALUES`
produce random values: their XCom values are compared by JSON type only (`shape`).

    .venv/bin/python bench/airflow_examples.py                 # everything (Airflow ~11 s a DAG, once)
    .venv/bin/python bench/airflow_examples.py --only xcom     # examples or dag ids matching *xcom*
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_reference import (
    AIRFLOW_VERSION,
    CACHE_ROOT,
    airflow_dags_test,
    airflow_env,
    airflow_venv,
    airflow_version,
    latest_run,
    migrate,
    run_results,
)

LOGICAL_DATE = "2026-11-16"
"""Fixed, so Airflow's cached results stay valid; after every example's start_date."""

NO_DAG = "-"
"""The dag id column of a file that defines no DAG (the Kubernetes executor examples without `kubernetes`)."""

AIRFLOW_TIMEOUT = 600.0
KDAG_TIMEOUT = 600.0

# Example (as `example_name` spells it, optionally `:dag_id`; fnmatch patterns) -> why it is not run.
EXCLUDED: dict[str, str] = {
    "example_asset_*.py": "assets: asset events, aliases, partitions, watchers (Airflow's scheduler)",
    "example_assets.py": "assets: DAGs scheduled by asset events from other DAGs",
    "example_inlet_event_extra.py": "assets: reads asset events another DAG produced",
    "example_outlet_event_extra.py": "assets: asset events with extras",
    "example_kubernetes_executor.py": "Kubernetes executor (pod overrides, kubernetes client)",
    "example_local_kubernetes_executor.py": "LocalKubernetes executor (kubernetes client)",
    "example_dag_decorator.py": "HTTP request to httpbingo.org (no network outside)",
    "example_retry_policy.py": "HTTP request to api.example.com (no network outside)",
    "tutorial_objectstorage.py": "object storage (ObjectStoragePath) and an HTTP API, duckdb, pandas",
    "tutorial_taskflow_api_virtualenv.py": "creates a virtualenv (pip install at run time)",
    "standard/example_python_operator.py": "PythonVirtualenvOperator (pip install), ExternalPythonOperator",
    "standard/example_python_decorator.py": "@task.virtualenv (pip install colorama), @task.external_python",
    "standard/example_branch_operator.py": "BranchPythonVirtualenvOperator (pip install) and external python",
    "standard/example_branch_operator_decorator.py": "@task.branch_virtualenv (pip install numpy) and "
    "@task.branch_external_python",
    "standard/example_hitl_operator.py": "human in the loop: waits for a person's answer",
    "standard/example_sensors.py": "a deferrable TimeSensor an hour ahead: `airflow dags test` runs its "
    "trigger inline for the whole hour (the sensor's timeout=1 is not applied there)",
    "standard/example_external_task_marker_dag.py:example_external_task_marker_child": "ExternalTaskSensor "
    "waits for the parent DAG's run, which `airflow dags test` never makes (a 600 s timeout on both sides)",
    "standard/example_external_task_parent_deferrable.py": "triggers child_dag and waits for its run "
    "(ExternalTaskSensor; needs a scheduler running that DAG)",
    "common.sql/example_analytics.py": "SQL analytics over S3, GCS, Azure storage (connections)",
    # Plugins extend Airflow's own scheduler, and these two import theirs from inside the Airflow package
    # (`airflow.example_dags.plugins`), which exists only where Airflow is installed. kdag's controller runs
    # no user code to decide when or in what order tasks run (docs/design.md, "Airflow semantics").
    "example_custom_weight.py": "an Airflow plugin: a priority-weight strategy from `airflow.example_dags."
    "plugins` (kdag starts every ready task at once; `weight_rule` is accepted with a warning)",
    "example_workday_timetable.py": "an Airflow plugin: a custom timetable class from `airflow.example_dags."
    "plugins` (the scheduler would run its Python code; kdag's controller runs no user code)",
}

# Examples whose XCom values are random (or the time they ran): values compared by JSON type only.
RANDOM_VALUES: dict[str, str] = {
    "example_task_state_store.py": "random job id and row count",
    "example_task_state_store_mapped.py": "random row counts, processing time",
}

# DAGs that branch on the clock (not on the logical date): Airflow runs each time, right before kdag, never
# from the cache.
READS_CLOCK: dict[str, str] = {
    "standard/example_branch_day_of_week_operator.py": "BranchDayOfWeekOperator: today's weekday",
    "standard/example_branch_datetime_operator.py:example_branch_datetime_operator_2": "BranchDateTime"
    "Operator: the time of day now against 15:00-00:00",
}

# Examples that need a run conf (the same on both sides: `airflow dags test -c`, `kdag run --conf`).
RUN_CONF: dict[str, dict[str, Any]] = {
    # the trigger form's one required field (a string of 10 to 30 characters, no default)
    "example_params_ui_tutorial.py": {"required_field": "typed in the form"},
}

# Airflow's bookkeeping rows, not values a task returned or pushed: left out on both sides.
AIRFLOW_OWN_KEYS = frozenset({"skipmixin_key"})

RUN_ID = re.compile(
    r"\b(?:manual|scheduled|backfill|asset_triggered|dataset_triggered)__"
    r"\d{4}-\d{2}-\d{2}T[\d:.]+(?:[+-]\d{2}:?\d{2}|Z)?(?:_[A-Za-z0-9]+)?"
    r"|\b[a-z0-9][a-z0-9-]*-local-[a-z0-9]{5}\b"
)
DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}|\s?UTC)?"
    r"|\b[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} [A-Z]{2,5} \d{4}\b"  # `date`
)
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
ADDRESS = re.compile(r"\b0x[0-9a-f]{6,16}\b")


# ---------------------------------------------------------------------------------------------- pure parts


@dataclass
class Result:
    """One tool's run of one DAG, as `kdag run -o json` reports it (Airflow's read from its database)."""

    state: str = ""
    run_id: str = ""
    tasks: dict[str, str] = field(default_factory=dict)
    xcoms: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    """A failed task's error (kdag: its termination message)."""
    failure: str | None = None
    """Set when the tool gave no run at all: the first line of its error."""
    output: str = ""
    """The end of kdag's standard error when it gave no run."""
    home: str = ""
    """AIRFLOW_HOME in the tasks' environment (Airflow's home; a scratch directory for kdag)."""
    seconds: float = 0.0


@dataclass(frozen=True)
class Verdict:
    kind: str
    """`match`, `differs`, `kdag failed`, `excluded` or `airflow failed`."""
    detail: str = ""
    cause: str = ""
    """The first blocking cause, worded to group non-matching examples."""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


def example_name(relative: str) -> str:
    """`example_dags/x.py` -> `x.py`; `providers/standard/example_dags/x.py` -> `standard/x.py`."""
    parts = relative.split("/")
    if parts[0] == "providers":
        return ".".join(parts[1 : parts.index("example_dags")]) + "/" + parts[-1]
    return parts[-1]


def exclusion(example: str, dag_id: str, excluded: Mapping[str, str] = EXCLUDED) -> str | None:
    """Why `example` (or its DAG `dag_id`) is out of scope (or in another such table), else None.

    Keys are fnmatch patterns of the example (`standard/example_sensors.py`), optionally `:dag_id pattern`.
    """
    for pattern, reason in excluded.items():
        name, _, dag_pattern = pattern.partition(":")
        if fnmatch.fnmatchcase(example, name) and (
            not dag_pattern or fnmatch.fnmatchcase(dag_id, dag_pattern)
        ):
            return reason
    return None


def selected(example: str, dag_id: str, only: str | None) -> bool:
    """Whether `--only PATTERN` picks the DAG: a glob on the example or dag id (plain text: substring)."""
    if not only:
        return True
    pattern = only if any(c in only for c in "*?[") else f"*{only}*"
    return any(fnmatch.fnmatchcase(text, pattern) for text in (example, dag_id, f"{example}:{dag_id}"))


def normalise_text(text: str, known: Mapping[str, str] | None = None) -> str:
    """Run-specific parts of a string as shapes: `<run_id>`, `<datetime>`, `<date>`, `<uuid>`, `0x<addr>`.

    `known` maps exact texts of this run (its run id, its AIRFLOW_HOME) to their placeholders, put first
    (longest first).
    """
    for exact, placeholder in sorted((known or {}).items(), key=lambda item: -len(item[0])):
        if exact:
            text = text.replace(exact, placeholder)
    text = RUN_ID.sub("<run_id>", text)
    text = DATETIME.sub("<datetime>", text)
    text = DATE.sub("<date>", text)
    text = UUID.sub("<uuid>", text)
    return ADDRESS.sub("0x<addr>", text)


def normalise(value: Any, known: Mapping[str, str] | None = None) -> Any:
    """`normalise_text` applied to every string of a JSON value, dict keys too."""
    if isinstance(value, str):
        return normalise_text(value, known)
    if isinstance(value, list | tuple):
        return [normalise(item, known) for item in value]
    if isinstance(value, dict):
        return {normalise_text(str(k), known): normalise(v, known) for k, v in value.items()}
    return value


def shape(value: Any) -> Any:
    """A JSON value's structure with each scalar replaced by its type: `{"n": "<int>"}`."""
    if isinstance(value, dict):
        return {str(k): shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shape(item) for item in value]
    if value is None:
        return "<null>"
    return f"<{type(value).__name__}>"


def row_key(row: dict[str, Any]) -> str:
    """`task_id.key`, `task_id[map_index].key` for a mapped instance."""
    index = row.get("map_index", -1)
    task = row["task_id"] if index in (-1, None) else f"{row['task_id']}[{index}]"
    return f"{task}.{row['key']}"


def comparable_rows(result: Result, by_shape: bool = False) -> dict[str, Any]:
    """The user's XCom rows, `row_key` -> normalised value (or its `shape`)."""
    rows: dict[str, Any] = {}
    for row in result.xcoms:
        if row["key"].startswith("__") or row["key"] in AIRFLOW_OWN_KEYS:
            continue
        value = normalise(row["value"], {result.run_id: "<run_id>", result.home: "<airflow_home>"})
        rows[row_key(row)] = shape(value) if by_shape else value
    return rows


def short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def differences(airflow: Result, kdag: Result, by_shape: bool = False) -> list[tuple[str, str]]:
    """Every difference as (text, cause), tasks first (kdag's order), then XCom rows, then the run's state."""
    found: list[tuple[str, str]] = []
    order = list(kdag.tasks) + sorted(set(airflow.tasks) - set(kdag.tasks))
    for task in order:
        ours, theirs = kdag.tasks.get(task, "absent"), airflow.tasks.get(task, "absent")
        if ours == theirs:
            continue
        text = f"task {task}: airflow {theirs}, kdag {ours}"
        error = kdag.errors.get(task)
        if error:
            text += f" ({error})"
            cause = error
        elif theirs == "absent":
            cause = f"task not in Airflow's run, kdag {ours}"
        else:
            cause = f"task state: airflow {theirs}, kdag {ours}"
        found.append((text, cause))
    theirs_rows, our_rows = comparable_rows(airflow, by_shape), comparable_rows(kdag, by_shape)
    for key in list(theirs_rows) + [k for k in our_rows if k not in theirs_rows]:
        if key not in our_rows:
            found.append(
                (f"xcom {key}: airflow {short(theirs_rows[key])}, kdag none", "XCom row missing in kdag")
            )
        elif key not in theirs_rows:
            found.append((f"xcom {key}: airflow none, kdag {short(our_rows[key])}", "extra XCom row in kdag"))
        elif theirs_rows[key] != our_rows[key]:
            found.append(
                (
                    f"xcom {key}: airflow {short(theirs_rows[key])}, kdag {short(our_rows[key])}",
                    "XCom value differs",
                )
            )
    if airflow.state != kdag.state:
        found.append((f"run: airflow {airflow.state}, kdag {kdag.state}", "run state differs"))
    return found


def compare(airflow: Result, kdag: Result, by_shape: bool = False) -> Verdict:
    """The verdict on one DAG from both tools' results."""
    if airflow.failure is not None:
        return Verdict("airflow failed", airflow.failure, "Airflow gave no run")
    if kdag.failure is not None:
        return Verdict("kdag failed", kdag.failure, kdag.failure)
    found = differences(airflow, kdag, by_shape)
    if not found:
        return Verdict("match")
    return Verdict("differs", found[0][0], found[0][1])


def kdag_error_line(stderr: str) -> str:
    """kdag's error in one line: its `error:` line, else a traceback's last line, else the first line.

    The `DAG file '...'[, line N]: ` prefix that names the file is left out.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        first = errors[0].removeprefix("error:").strip()
    elif any(line.startswith("Traceback") for line in lines):
        first = lines[-1]
    else:
        first = lines[0] if lines else "no output"
    return re.sub(r"^DAG file '[^']*'(?:, line \d+)?:\s*", "", first)


def markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_table(rows: list[tuple[str, str, Verdict]]) -> str:
    """A Markdown table: example, dag_id, verdict."""
    lines = ["| example | dag_id | verdict |", "| --- | --- | --- |"]
    lines += [f"| `{e}` | `{d}` | {markdown_cell(str(v))} |" for e, d, v in rows]
    return "\n".join(lines)


def summary_line(rows: list[tuple[str, str, Verdict]]) -> str:
    """`N/M match`: M counts the DAGs in scope (not excluded, and run by Airflow)."""
    kinds = Counter(v.kind for _, _, v in rows)
    in_scope = len(rows) - kinds["excluded"] - kinds["airflow failed"]
    line = f"{kinds['match']}/{in_scope} match"
    extra = [f"{kinds[k]} {k}" for k in ("excluded", "airflow failed") if kinds[k]]
    return line + (f" ({', '.join(extra)})" if extra else "")


def blockers(rows: list[tuple[str, str, Verdict]]) -> list[tuple[str, int, list[str]]]:
    """The non-matching DAGs grouped by their first blocking cause: (cause, count, examples), most first."""
    groups: dict[str, list[str]] = {}
    for example, dag_id, verdict in rows:
        if verdict.kind in ("differs", "kdag failed"):
            groups.setdefault(verdict.cause, []).append(f"{example}:{dag_id}")
    return sorted(((c, len(e), e) for c, e in groups.items()), key=lambda g: (-g[1], g[0]))


# ------------------------------------------------------------------------------------------------ running

DISCOVER = r"""
import json, sys
from pathlib import Path
import airflow
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import DagBag
root = Path(airflow.__file__).parent
found = {}
for bundle in DagBundlesManager().get_all_dag_bundles():
    folder = Path(bundle.path)
    if not folder.is_relative_to(root):
        continue  # the (empty) DAGs folder
    for file in sorted(folder.glob("*.py")):
        if file.name == "__init__.py":
            continue
        bag = DagBag(str(file))
        errors = [e.strip().splitlines()[-1] for e in bag.import_errors.values()]
        found[str(file.relative_to(root))] = {
            "bundle": bundle.name, "dag_ids": sorted(bag.dags), "error": errors[0] if errors else None
        }
Path(sys.argv[1]).write_text(json.dumps({"root": str(root), "files": found}))
"""


def discover(venv: Path, cache: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The installed example DAG files (relative to the `airflow` package): bundle and dag ids (cached)."""
    listing = cache / "dags.json"
    if not listing.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="kdag-airflow-discover-") as home:
            done = subprocess.run(
                [str(venv / "bin" / "python"), "-c", DISCOVER, str(listing)],
                env=airflow_env(Path(home), Path(home), load_examples=True),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"listing Airflow's example DAGs failed:\n{done.stderr[-3000:]}")
    data = json.loads(listing.read_text(encoding="utf-8"))
    return Path(data["root"]), data["files"]


class AirflowHomes:
    """One migrated Airflow home per worker thread, copied from one migrated on first use."""

    def __init__(self, venv: Path, scratch: Path) -> None:
        self.venv, self.scratch = venv, scratch
        self.lock = threading.Lock()
        self.local = threading.local()
        self.template: Path | None = None

    def get(self) -> Path:
        home: Path | None = getattr(self.local, "home", None)
        if home is not None:
            return home
        with self.lock:
            if self.template is None:
                self.template = self.scratch / "template"
                self.template.mkdir()
                migrate(self.venv, self.template)
            home = Path(tempfile.mkdtemp(prefix="home-", dir=self.scratch))
            shutil.copy(self.template / "airflow.db", home / "airflow.db")
            (home / "dags").mkdir()  # the DAGs folder: empty, the examples are bundles of their own
        self.local.home = home
        return home


@dataclass(frozen=True)
class Example:
    """One DAG of one example file."""

    name: str
    dag_id: str
    file: Path
    bundle: str


def run_airflow(venv: Path, homes: AirflowHomes, example: Example, date: str, log: Path) -> Result:
    """`airflow dags test` of the example's DAG in its bundle (`load_examples`), its run read from the DB."""
    home = homes.get()
    dag_id = example.dag_id
    started = time.perf_counter()
    code = airflow_dags_test(
        venv,
        home,
        dag_id,
        date,
        example.file,
        log=log,
        timeout=AIRFLOW_TIMEOUT,
        bundle=example.bundle,
        dags_folder=home / "dags",
        load_examples=True,
        conf=RUN_CONF.get(example.name),
    )
    seconds = time.perf_counter() - started
    with sqlite3.connect(home / "airflow.db") as db:
        if not db.execute("select 1 from dag_run where dag_id = ?", (dag_id,)).fetchone():
            text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            last = text[-1] if text else f"exit status {code}"
            return Result(failure=f"no run (exit {code}): {last[:200]}", seconds=seconds)
        run_id, state = latest_run(db, dag_id)
        tasks, rows = run_results(db, dag_id, run_id)
    return Result(state=state, run_id=run_id, tasks=tasks, xcoms=rows, seconds=seconds, home=str(home))


def run_kdag(
    kdag: Path,
    file: Path,
    dag_id: str,
    date: str,
    conf: dict[str, Any] | None = None,
    dag_folders: tuple[Path, ...] = (),
) -> Result:
    """`kdag run --local FILE --dag-id DAG -o json`; a failed task's error from its termination message.

    `dag_folders` (`--dag-folder`): where a TriggerDagRunOperator finds the DAG it triggers, as Airflow
    finds it among the example bundles it loaded.
    """
    with tempfile.TemporaryDirectory(prefix="kdag-example-") as workdir:
        started = time.perf_counter()
        command = [str(kdag), "run", "--local", str(file), "--dag-id", dag_id, "-o", "json"]
        command += ["--logical-date", date, "--workdir", workdir]
        for folder in dag_folders:
            command += ["--dag-folder", str(folder)]
        if conf is not None:
            command += ["--conf", json.dumps(conf)]
        # Airflow's tasks see its AIRFLOW_HOME (example_bash_operator reports `$AIRFLOW_HOME/dags`); kdag's
        # see one too, a scratch directory: both compare as `<airflow_home>`.
        home = str(Path(workdir) / "airflow-home")
        env = {**os.environ, "AIRFLOW_HOME": home}
        # A session of its own, so a timeout ends the task processes kdag started too.
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=KDAG_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return Result(failure=f"timed out after {KDAG_TIMEOUT:.0f} s", seconds=KDAG_TIMEOUT)
        seconds = time.perf_counter() - started
        try:
            out = json.loads(stdout)
        except json.JSONDecodeError:
            text = stderr or stdout
            return Result(failure=kdag_error_line(text), output=text[-3000:], seconds=seconds)
        errors = {}
        for termination in sorted(Path(workdir).glob("logs/*.termination")):
            try:
                error = json.loads(termination.read_text(encoding="utf-8")).get("error")
            except (OSError, json.JSONDecodeError):
                continue
            if error:
                errors[termination.name.removesuffix(".termination")] = str(error).splitlines()[0][:200]
        for task, state in out["tasks"].items():
            log = Path(workdir) / "logs" / f"{task}.log"
            if state == "failed" and task not in errors and log.exists():  # no termination message
                lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
                if lines:
                    errors[task] = lines[-1].strip()[:200]
    return Result(
        state=out["state"],
        run_id=out["run_id"],
        tasks=out["tasks"],
        xcoms=out["xcoms"],
        errors=errors,
        seconds=seconds,
        home=home,
    )


def cached_airflow(
    venv: Path, homes: AirflowHomes, cache: Path, example: Example, date: str, refresh: bool
) -> Result:
    """Airflow's result for the DAG: from the cache, else `airflow dags test` (then cached)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{example.name.removesuffix('.py')}__{example.dag_id}")
    path = cache / f"{stem}.json"
    conf = RUN_CONF.get(example.name)
    if path.exists() and not refresh:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.pop("conf", None) == conf:
            return Result(**stored)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = run_airflow(venv, homes, example, date, cache / f"{stem}.log")
    path.write_text(json.dumps({"conf": conf, **asdict(result)}, indent=1, default=str), encoding="utf-8")
    return result


def outcome(
    example: Example, venv: Path, homes: AirflowHomes, cache: Path, date: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Verdict and both results for one DAG; an excluded one runs on neither side."""
    reason = exclusion(example.name, example.dag_id)
    if reason is not None:
        return {"verdict": Verdict("excluded", reason)}
    if example.dag_id == NO_DAG:
        return {"verdict": Verdict("airflow failed", "the file defines no DAG here", "Airflow gave no run")}
    refresh = args.refresh_airflow or exclusion(example.name, example.dag_id, READS_CLOCK) is not None
    airflow = cached_airflow(venv, homes, cache, example, date, refresh)
    conf = RUN_CONF.get(example.name)
    kdag = (
        run_kdag(args.kdag, example.file, example.dag_id, date, conf, args.dag_folders)
        if airflow.failure is None
        else Result()
    )
    by_shape = example.name in RANDOM_VALUES
    verdict = compare(airflow, kdag, by_shape)
    found = differences(airflow, kdag, by_shape) if verdict.kind == "differs" else []
    return {
        "verdict": verdict,
        "airflow": asdict(airflow),
        "kdag": asdict(kdag),
        "differences": [text for text, _ in found],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="examples or dag ids matching this glob (plain text: substring)")
    parser.add_argument("--jobs", type=int, default=1, help="DAGs run at the same time (default 1)")
    parser.add_argument(
        "--airflow-venv", type=Path, help=f"default: cached apache-airflow=={AIRFLOW_VERSION}"
    )
    parser.add_argument("--logical-date", default=LOGICAL_DATE)
    parser.add_argument("--refresh-airflow", action="store_true", help="run Airflow again, ignore its cache")
    parser.add_argument("--kdag", type=Path, default=Path(sys.executable).parent / "kdag")
    parser.add_argument("--results", type=Path, help="results JSON (default: in the cache directory)")
    args = parser.parse_args()

    venv: Path = args.airflow_venv or airflow_venv()
    version = airflow_version(venv)
    date: str = args.logical_date
    cache = CACHE_ROOT / "airflow-examples" / version / date
    root, files = discover(venv, CACHE_ROOT / "airflow-examples" / version)
    todo = [
        Example(example_name(relative), dag_id, root / relative, info["bundle"])
        for relative, info in files.items()
        for dag_id in info["dag_ids"] or [NO_DAG]
        if selected(example_name(relative), dag_id, args.only)
    ]
    todo.sort(key=lambda e: (e.name.count("/"), e.name, e.dag_id))
    # Every example folder, as Airflow loads every example bundle: where triggered DAGs are found.
    args.dag_folders = tuple(sorted({(root / relative).parent for relative in files}))
    print(f"Apache Airflow {version} ({venv}), logical date {date}, {len(todo)} DAGs", flush=True)

    outcomes: dict[Example, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="kdag-airflow-examples-") as scratch:
        homes = AirflowHomes(venv, Path(scratch))

        def one(example: Example) -> None:
            outcomes[example] = outcome(example, venv, homes, cache, date, args)
            print(f"  {example.name} {example.dag_id}: {outcomes[example]['verdict']}", flush=True)

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for _ in pool.map(one, todo):
                pass

    rows = [(e.name, e.dag_id, outcomes[e]["verdict"]) for e in todo]
    print()
    print(format_table(rows))
    print()
    groups = blockers(rows)
    if groups:
        print("first blocking cause of the non-matching DAGs:")
        for cause, count, examples in groups:
            print(f"  {count:>3}  {cause}  ({', '.join(examples)})")
        print()
    line = summary_line(rows)
    print(line)
    report = {
        "airflow_version": version,
        "logical_date": date,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": line,
        "dags": [
            {
                "example": e.name,
                "dag_id": e.dag_id,
                **{k: (asdict(v) if k == "verdict" else v) for k, v in outcomes[e].items()},
            }
            for e in todo
        ],
        "blockers": [{"cause": c, "count": n, "dags": ex} for c, n, ex in groups],
    }
    out: Path = args.results or CACHE_ROOT / "airflow-examples" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
