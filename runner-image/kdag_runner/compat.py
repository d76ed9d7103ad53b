"""The ``airflow.*`` import shim and the DAG file loader.

``install()`` lets a DAG file written for Airflow (``from airflow import DAG``,
``from airflow.operators.python_operator import PythonOperator``, ...) import kdag's classes. It only
acts when Apache Airflow itself is not importable, it is never installed by importing
``kdag_runner``, and its finder sits last on ``sys.meta_path``, so a real Airflow always wins.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kdag_runner import authoring, context, store, xcom
from kdag_runner.authoring import DAG, DagDefinitionError


def days_ago(n: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    """Midnight UTC (or the given time) ``n`` days ago, as Airflow's ``days_ago``."""
    today = datetime.now(UTC).replace(hour=hour, minute=minute, second=second, microsecond=microsecond)
    return today - timedelta(days=n)


def _python_module() -> dict[str, Any]:
    return {
        "PythonOperator": authoring.PythonOperator,
        "get_current_context": context.get_current_context,
    }


def _bash_module() -> dict[str, Any]:
    return {"BashOperator": authoring.BashOperator}


def _empty_module() -> dict[str, Any]:
    return {"EmptyOperator": authoring.EmptyOperator, "DummyOperator": authoring.DummyOperator}


def _exceptions_module() -> dict[str, Any]:
    return {
        "AirflowException": authoring.AirflowException,
        "AirflowSkipException": authoring.AirflowSkipException,
        "AirflowFailException": authoring.AirflowFailException,
    }


def _models_module() -> dict[str, Any]:
    return {
        "DAG": DAG,
        "BaseOperator": authoring.BaseOperator,
        "Param": authoring.Param,
        "TaskInstance": xcom.TaskInstance,
    }


def _decorators_module() -> dict[str, Any]:
    return {"task": authoring.task, "dag": authoring.dag}


def _sdk_module() -> dict[str, Any]:
    return {
        **_decorators_module(),
        "XComArg": authoring.XComArg,
        "DAG": DAG,
        "BaseOperator": authoring.BaseOperator,
        "Param": authoring.Param,
        "TriggerRule": authoring.TriggerRule,
        "chain": authoring.chain,
        "get_current_context": context.get_current_context,
    }


# Module name -> its attributes. Every prefix of a name is a package (``airflow.operators``, ...).
SHIM_MODULES: dict[str, Callable[[], dict[str, Any]]] = {
    "airflow": lambda: {"DAG": DAG},
    "airflow.models": _models_module,
    "airflow.models.dag": lambda: {"DAG": DAG},
    "airflow.models.baseoperator": lambda: {"BaseOperator": authoring.BaseOperator, "chain": authoring.chain},
    "airflow.models.param": lambda: {"Param": authoring.Param},
    "airflow.models.xcom": lambda: {"XCOM_RETURN_KEY": store.RETURN_KEY},
    "airflow.operators": lambda: {**_python_module(), **_bash_module(), **_empty_module()},
    "airflow.operators.python": _python_module,
    "airflow.operators.python_operator": _python_module,
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
    "airflow.exceptions": _exceptions_module,
    "airflow.sdk.exceptions": _exceptions_module,
    "airflow.utils.dates": lambda: {"days_ago": days_ago},
    "airflow.utils.trigger_rule": lambda: {"TriggerRule": authoring.TriggerRule},
}
_PACKAGES = {name.rsplit(".", i)[0] for name in SHIM_MODULES for i in range(1, name.count(".") + 1)}
_ALL_NAMES = set(SHIM_MODULES) | _PACKAGES


class _AirflowShim(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the ``airflow.*`` modules above; any other ``airflow.*`` name stays unimportable."""

    def find_spec(
        self, fullname: str, path: Any = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _ALL_NAMES:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=fullname in _PACKAGES)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        build = SHIM_MODULES.get(module.__name__)
        module.__dict__["__kdag_shim__"] = True
        if build is not None:
            module.__dict__.update(build())


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
    first = len(authoring.created_dags)
    sys.modules[module_name] = module
    exec(compile(source, str(file), "exec"), module.__dict__)
    dags: dict[str, DAG] = {}
    for dag in authoring.created_dags[first:]:
        if dag.dag_id in dags and dags[dag.dag_id] is not dag:
            raise DagDefinitionError(f"DAG '{dag.dag_id}': defined twice in '{path}'")
        dag.fileloc = str(file)
        dags[dag.dag_id] = dag
    return dags


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
