"""The ``airflow.*`` import shim and the DAG file loader.

``install()`` lets a DAG file written for Airflow (``from airflow import DAG``,
``from airflow.operators.python_operator import PythonOperator``, ``from airflow.sdk import dag, task``, ...)
import kdag's classes. It only acts when Apache Airflow itself is not importable, it is never installed by
importing ``kdag_runner``, and its finder sits last on ``sys.meta_path``, so a real Airflow always wins.

What a shim module holds: its ``SHIM_MODULES`` entry (kdag's classes at their Airflow paths), then every name
``shim_table.AIRFLOW_PATHS`` lists for that path that kdag implements anywhere (an entry of ``SHIM_MODULES``,
``_own_names``), so a class added once is served under its Airflow 2 path, ``airflow.sdk``, the standard
provider and ``airflow.providers.common.compat`` alike. A name kdag does not implement raises
``NotSupportedError`` (an ImportError) from the module's ``__getattr__``, and an ``airflow.*`` module the
shim does not know raises ``NotSupportedModuleError`` (a ModuleNotFoundError) from the finder: both name the
feature and why. ``load_dags`` turns them into one line naming the DAG file and the line of the import.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import sysconfig
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdag_runner import context, shim_helpers, shim_table, state_store, store, timetables, xcom
from kdag_runner.airflow import (
    DAG,
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    BaseAsyncOperator,
    BaseOperator,
    BashOperator,
    DagDefinitionError,
    DummyOperator,
    EmptyOperator,
    Label,
    Param,
    ParamsDict,
    ParamValidationError,
    PythonOperator,
    TaskGroup,
    TriggerRule,
    XComArg,
    branching,
    chain,
    chain_linear,
    cross_downstream,
    external_task,
    is_async_callable,
    sensors,
    setup,
    task_group,
    taskflow,
    teardown,
    trigger_dagrun,
)
from kdag_runner.airflow.dags import created_dags
from kdag_runner.airflow.edges import EdgeModifier
from kdag_runner.airflow.exceptions import (
    AirflowRescheduleException,
    AirflowSensorTimeout,
    DownstreamTasksSkipped,
)
from kdag_runner.shim_helpers import days_ago


def _python_module() -> dict[str, Any]:
    return {
        "PythonOperator": PythonOperator,
        "BranchPythonOperator": branching.BranchPythonOperator,
        "ShortCircuitOperator": branching.ShortCircuitOperator,
        "get_current_context": context.get_current_context,
    }


def _branching(*names: str) -> Callable[[], dict[str, Any]]:
    """A shim module holding these names of ``kdag_runner.airflow.branching`` (served wherever
    ``shim_table.AIRFLOW_PATHS`` lists them: ``airflow.sdk``, the standard provider, ...)."""
    return lambda: {name: getattr(branching, name) for name in names}


def _bash_module() -> dict[str, Any]:
    return {"BashOperator": BashOperator}


def _empty_module() -> dict[str, Any]:
    return {"EmptyOperator": EmptyOperator, "DummyOperator": DummyOperator}


def _exceptions_module() -> dict[str, Any]:
    return {
        "AirflowException": AirflowException,
        "AirflowSkipException": AirflowSkipException,
        "AirflowFailException": AirflowFailException,
        "DownstreamTasksSkipped": DownstreamTasksSkipped,
        "ParamValidationError": ParamValidationError,
        "AirflowSensorTimeout": AirflowSensorTimeout,
        "AirflowRescheduleException": AirflowRescheduleException,
    }


def _models_module() -> dict[str, Any]:
    return {
        "DAG": DAG,
        "BaseOperator": BaseOperator,
        "Param": Param,
        "TaskInstance": xcom.TaskInstance,
    }


def _decorators_module() -> dict[str, Any]:
    return {"task": taskflow.task, "dag": taskflow.dag}


def _sdk_module() -> dict[str, Any]:
    return {
        **_decorators_module(),
        "XComArg": XComArg,
        "DAG": DAG,
        "BaseOperator": BaseOperator,
        "Param": Param,
        "TriggerRule": TriggerRule,
        "chain": chain,
        "get_current_context": context.get_current_context,
    }


# Module name -> kdag's classes at that Airflow path. Every prefix of a name is a package
# (``airflow.operators``, ...). A name given here is also served wherever shim_table.AIRFLOW_PATHS lists it
# (``airflow.sdk``, the standard provider, ``airflow.providers.common.compat``, ...): add a feature's
# entries after the ``airflow.operators.python`` entries or after the ``airflow.decorators`` entry.
SHIM_MODULES: dict[str, Callable[[], dict[str, Any]]] = {
    "airflow": lambda: {"DAG": DAG},
    "airflow.models": _models_module,
    "airflow.models.dag": lambda: {"DAG": DAG},
    "airflow.models.baseoperator": lambda: {
        "BaseOperator": BaseOperator,
        "chain": chain,
        "chain_linear": chain_linear,
        "cross_downstream": cross_downstream,
    },
    "airflow.models.param": lambda: {"Param": Param, "ParamsDict": ParamsDict},
    "airflow.models.xcom": lambda: {"XCOM_RETURN_KEY": store.RETURN_KEY},
    "airflow.operators": lambda: {**_python_module(), **_bash_module(), **_empty_module()},
    "airflow.operators.python": _python_module,
    "airflow.operators.python_operator": _python_module,
    "airflow.operators.branch": _branching("BaseBranchOperator", "BranchMixIn"),
    "airflow.operators.latest_only": _branching("LatestOnlyOperator"),
    "airflow.operators.weekday": _branching("BranchDayOfWeekOperator"),
    "airflow.operators.datetime": _branching("BranchDateTimeOperator", "target_times_as_dates"),
    "airflow.models.skipmixin": _branching("SkipMixin"),
    "airflow.utils.weekday": _branching("WeekDay"),
    "airflow.operators.bash": _bash_module,
    "airflow.operators.bash_operator": _bash_module,
    "airflow.operators.empty": _empty_module,
    "airflow.operators.dummy": _empty_module,
    "airflow.operators.dummy_operator": _empty_module,
    "airflow.providers.standard.operators.python": _python_module,
    "airflow.providers.standard.operators.bash": _bash_module,
    "airflow.providers.standard.operators.empty": _empty_module,
    "airflow.sdk": _sdk_module,
    "airflow.decorators": _decorators_module,
    # Task groups, setup/teardown, edge labels and the dependency helpers (groups.py, group_decorator.py,
    # taskflow.py, edges.py); AIRFLOW_PATHS serves them at airflow.sdk, airflow.decorators,
    # airflow.sdk.definitions.*, ...
    "airflow.utils.task_group": lambda: {"TaskGroup": TaskGroup},
    "airflow.decorators.task_group": lambda: {"task_group": task_group},
    "airflow.decorators.setup_teardown": lambda: {
        "setup": setup,
        "teardown": teardown,
        "setup_task": setup,
        "teardown_task": teardown,
    },
    "airflow.utils.edgemodifier": lambda: {"Label": Label, "EdgeModifier": EdgeModifier},
    "airflow.utils.helpers": lambda: {"chain": chain, "cross_downstream": cross_downstream},
    "airflow.exceptions": _exceptions_module,
    "airflow.sdk.exceptions": _exceptions_module,
    "airflow.utils.dates": lambda: {"days_ago": days_ago},
    "airflow.utils.trigger_rule": lambda: {"TriggerRule": TriggerRule},
    # Sensors (airflow/sensors.py); AIRFLOW_PATHS serves them at airflow.sdk, airflow.sdk.bases.sensor, the
    # standard provider's sensors.* and airflow.providers.common.compat.sdk.
    "airflow.sensors.base": lambda: {
        "BaseSensorOperator": sensors.BaseSensorOperator,
        "PokeReturnValue": sensors.PokeReturnValue,
        "poke_mode_only": sensors.poke_mode_only,
    },
    "airflow.sensors.python": lambda: {"PythonSensor": sensors.PythonSensor},
    "airflow.sensors.time_delta": lambda: {
        "TimeDeltaSensor": sensors.TimeDeltaSensor,
        "TimeDeltaSensorAsync": sensors.TimeDeltaSensorAsync,
    },
    "airflow.sensors.date_time": lambda: {
        "DateTimeSensor": sensors.DateTimeSensor,
        "DateTimeSensorAsync": sensors.DateTimeSensorAsync,
    },
    # TriggerDagRunOperator (airflow/trigger_dagrun.py); AIRFLOW_PATHS serves it at the standard provider.
    "airflow.operators.trigger_dagrun": lambda: {
        "TriggerDagRunOperator": trigger_dagrun.TriggerDagRunOperator,
        "TriggerDagRunLink": trigger_dagrun.TriggerDagRunLink,
        "DagIsPaused": trigger_dagrun.DagIsPaused,
    },
    # Cross-DAG dependencies (airflow/external_task.py); AIRFLOW_PATHS serves them at the standard provider.
    "airflow.sensors.external_task": lambda: {
        name: getattr(external_task, name)
        for name in (
            "ExternalTaskSensor",
            "ExternalTaskMarker",
            "ExternalDagLink",
            *shim_table.EXTERNAL_TASK_EXCEPTIONS,
        )
    },
}


def _timetable_names() -> dict[str, Any]:
    return {name: getattr(timetables, name) for name in timetables.__all__}


def _own_names() -> dict[str, Any]:
    """Names kdag serves wherever AIRFLOW_PATHS lists them, besides every name of a SHIM_MODULES entry."""
    return {
        **_timetable_names(),
        "days_ago": days_ago,
        "Context": shim_helpers.Context,
        "State": shim_helpers.State,
        "TaskInstanceState": shim_helpers.TaskInstanceState,
        "DagRunState": shim_helpers.DagRunState,
        "WeightRule": shim_helpers.WeightRule,
        "is_venv_installed": shim_helpers.is_venv_installed,
        "TaskInstance": xcom.TaskInstance,
        "XCOM_RETURN_KEY": store.RETURN_KEY,
        "macros": _macros(),
        # The task state store (state_store.py) and async tasks (airflow/async_operators.py).
        "NEVER_EXPIRE": state_store.NEVER_EXPIRE,
        "BaseAsyncOperator": BaseAsyncOperator,
        "is_async_callable": is_async_callable,
    }


@functools.cache
def _macros() -> Any:
    from kdag_runner.airflow.templating import _macros as macros

    return macros()


# Modules whose contents are their own (names such as `datetime` mean different things elsewhere).
_OWN_MODULES: dict[str, Callable[[], dict[str, Any]]] = {
    "airflow.utils.timezone": lambda: dict(shim_helpers.TIMEZONE_FUNCTIONS),
    "airflow.sdk.timezone": lambda: dict(shim_helpers.TIMEZONE_FUNCTIONS),
    "airflow.macros": lambda: {k: v for k, v in vars(_macros()).items() if not k.startswith("_")},
}

_MODULES = set(SHIM_MODULES) | set(shim_table.AIRFLOW_PATHS) | set(_OWN_MODULES)
_PACKAGES = {name.rsplit(".", i)[0] for name in _MODULES for i in range(1, name.count(".") + 1)}
_ALL_NAMES = _MODULES | _PACKAGES


class NotSupportedError(ImportError):
    """An Airflow name kdag does not implement; the message names it and why (one line)."""

    def __init__(self, feature: str, reason: str, *, module: str) -> None:
        super().__init__(f"{feature} is not supported by kdag: {reason}", name=module)
        self.feature = feature
        self.reason = reason


class NotSupportedModuleError(NotSupportedError, ModuleNotFoundError):
    """An ``airflow.*`` module the shim does not serve."""


def _reason(name: str) -> str:
    return shim_table.NOT_SUPPORTED.get(name, "kdag's Airflow layer does not implement it")


def _module_reason(module: str) -> str:
    prefixes = [p for p in shim_table.NOT_SUPPORTED_MODULES if module == p or module.startswith(p + ".")]
    if prefixes:
        return shim_table.NOT_SUPPORTED_MODULES[max(prefixes, key=len)]
    return "kdag's airflow shim has no such module"


def served_names() -> dict[str, Any]:
    """Every name kdag implements, by Airflow name: the SHIM_MODULES entries' (first wins), then its own."""
    served: dict[str, Any] = {}
    for build in SHIM_MODULES.values():
        for name, value in build().items():
            served.setdefault(name, value)
    for name, value in _own_names().items():
        served.setdefault(name, value)
    return served


def module_attributes(module: str) -> dict[str, Any]:
    """What the shim module ``module`` holds (names it does not hold raise ``NotSupportedError``)."""
    attributes: dict[str, Any] = {}
    if module in _OWN_MODULES:
        attributes.update(_OWN_MODULES[module]())
    if module in SHIM_MODULES:
        attributes.update(SHIM_MODULES[module]())
    listed = [name for name in shim_table.AIRFLOW_PATHS.get(module, ()) if name not in attributes]
    if listed:
        served = served_names()
        attributes.update({name: served[name] for name in listed if name in served})
    return attributes


def _module_getattr(module: str) -> Callable[[str], Any]:
    """The ``__getattr__`` of a shim module: submodules on demand, a clear error for anything else."""

    def __getattr__(name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        if f"{module}.{name}" in _ALL_NAMES:
            return importlib.import_module(f"{module}.{name}")
        target = shim_table.MODULE_NAMES.get(name)
        if target is not None and name in shim_table.AIRFLOW_PATHS.get(module, ()):
            return importlib.import_module(target)
        raise NotSupportedError(f"{module}.{name}", _reason(name), module=module)

    return __getattr__


class _AirflowShim(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the ``airflow.*`` modules above; any other ``airflow.*`` raises NotSupportedModuleError."""

    def find_spec(
        self, fullname: str, path: Any = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in _ALL_NAMES:
            return importlib.util.spec_from_loader(fullname, self, is_package=fullname in _PACKAGES)
        if fullname.startswith("airflow."):
            raise NotSupportedModuleError(fullname, _module_reason(fullname), module=fullname)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__["__kdag_shim__"] = True
        module.__dict__["__getattr__"] = _module_getattr(module.__name__)
        module.__dict__.update(module_attributes(module.__name__))


_shim = _AirflowShim()


def install() -> bool:
    """Make ``import airflow...`` resolve to kdag's classes; False (and nothing done) if Airflow exists."""
    if _shim in sys.meta_path:
        return True
    if "airflow" in sys.modules or importlib.util.find_spec("airflow") is not None:
        return False
    sys.meta_path.append(_shim)
    return True


def uninstall() -> None:
    """Remove the shim and the modules it made (tests, and programs that load several files)."""
    if _shim in sys.meta_path:
        sys.meta_path.remove(_shim)
    for name in list(sys.modules):
        if name in _ALL_NAMES and getattr(sys.modules[name], "__kdag_shim__", False):
            del sys.modules[name]


def load_dags(path: str | Path) -> dict[str, DAG]:
    """Execute a DAG file with the shim installed; return the DAGs it defines by dag_id."""
    file = Path(path)
    if not file.is_file():
        raise DagDefinitionError(f"DAG file '{path}': not found")
    install()
    source = file.read_text(encoding="utf-8")
    module_name = "kdag_dag_" + hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
    module = types.ModuleType(module_name)
    module.__file__ = str(file)
    folder = str(file.resolve().parent)
    if folder not in sys.path:
        # Airflow puts the DAG folder on sys.path so DAG files import their helper modules.
        sys.path.append(folder)
    first = len(created_dags)
    sys.modules[module_name] = module
    code = compile(source, str(file), "exec")
    try:
        exec(code, module.__dict__)
    except NotSupportedError as err:
        where = error_location(err, file, path)
        raise DagDefinitionError(f"{where}: {_unsupported(err, source, file)}") from None
    dags: dict[str, DAG] = {}
    for dag in created_dags[first:]:
        if dag.dag_id in dags and dags[dag.dag_id] is not dag:
            raise DagDefinitionError(f"DAG '{dag.dag_id}': defined twice in '{path}'")
        dag.fileloc = str(file)
        dags[dag.dag_id] = dag
    return dags


def _user_frames(err: BaseException) -> list[tuple[str, int]]:
    """(file, line) of the traceback's frames outside kdag_runner and importlib, outermost first."""
    package = str(Path(__file__).resolve().parent)
    frames: list[tuple[str, int]] = []
    tb = err.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith("<frozen") and not filename.startswith(package):
            frames.append((filename, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def user_traceback(err: BaseException, file: Path) -> str:
    """The traceback of an exception raised while DAG file ``file`` loaded, as Python prints it, from the
    file's frame on and with only the author's frames (none of kdag's, the standard library's or installed
    packages'). Empty when it has one frame or none: ``error_location`` names that line already."""
    paths = sysconfig.get_paths()
    foreign = (str(Path(__file__).resolve().parent), *(paths[k] for k in ("stdlib", "purelib", "platlib")))
    frames = list(traceback.extract_tb(err.__traceback__))
    first = next((i for i, frame in enumerate(frames) if frame.filename == str(file)), len(frames))
    own = [
        frame
        for frame in frames[first:]
        if not frame.filename.startswith("<frozen") and not frame.filename.startswith(foreign)
    ]
    return "".join(traceback.format_list(own)) if len(own) > 1 else ""


def error_location(err: BaseException, file: Path, shown: str | Path | None = None) -> str:
    """``DAG file 'x.py', line N`` for an exception raised while ``file`` loaded (the innermost line of
    the file; ``(in 'helper.py', line M)`` added when a module it imported raised); no line when the
    traceback never passed through the file."""
    where = f"DAG file '{file if shown is None else shown}'"
    frames = _user_frames(err)
    own = [line for name, line in frames if name == str(file)]
    if own:
        where += f", line {own[-1]}"
        if frames and frames[-1][0] != str(file):
            where += f" (in '{frames[-1][0]}', line {frames[-1][1]})"
    return where


def _unsupported(err: NotSupportedError, source: str, file: Path) -> str:
    """The error's message; for a module the shim lacks, naming the name the import statement wanted."""
    if not isinstance(err, NotSupportedModuleError):
        return str(err)
    frames = _user_frames(err)
    if not frames:
        return str(err)
    filename, line = frames[-1]
    try:
        text = source if filename == str(file) else Path(filename).read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return str(err)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if not node.lineno <= line <= (node.end_lineno or node.lineno):
            continue
        if isinstance(node, ast.ImportFrom):
            if node.module and node.level == 0 and node.names[0].name != "*":
                return f"{node.module}.{node.names[0].name} is not supported by kdag: {err.reason}"
        else:
            wanted = [a.name for a in node.names if (a.name + ".").startswith(err.feature + ".")]
            if wanted:
                return f"{wanted[0]} is not supported by kdag: {err.reason}"
    return str(err)


def load_dag_file(path: str | Path, dag_id: str | None = None) -> DAG:
    """The DAG a file defines: the one named ``dag_id``, or its only DAG when no id is given."""
    dags = load_dags(path)
    if dag_id is not None:
        if dag_id in dags:
            return dags[dag_id]
        defined = ", ".join(dags) or "none"
        raise DagDefinitionError(f"DAG file '{path}': defines no DAG '{dag_id}' (it defines: {defined})")
    if not dags:
        raise DagDefinitionError(f"DAG file '{path}': defines no DAG")
    if len(dags) > 1:
        raise DagDefinitionError(
            f"DAG file '{path}': defines {len(dags)} DAGs ({', '.join(dags)}); name the one to use"
        )
    return next(iter(dags.values()))
