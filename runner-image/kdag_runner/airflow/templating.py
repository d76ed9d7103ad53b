"""A task's context in its fields and environment: Jinja rendering, ``macros``, ``AIRFLOW_CTX_*``.

Templates render as Airflow 3 renders them (``airflow.sdk.definitions._internal.templater``): in a
*sandboxed* Jinja environment (``jinja2.sandbox.SandboxedEnvironment``; attributes starting with ``_`` are
allowed, ``__`` ones are not) with ``StrictUndefined``, the ``do`` extension and the ``ds``/``ts`` filters, a
loader on the DAG file's folder plus the DAG's ``template_searchpath`` (for ``template_ext`` files), and
the DAG's ``user_defined_macros``/``user_defined_filters``/``jinja_environment_kwargs``. A DAG with
``render_template_as_native_obj=True`` gets Jinja's ``NativeEnvironment``, as in Airflow, but sandboxed
too (Airflow's is not): every template kdag renders is sandboxed.

What a template inserts (an XCom it pulls, a param, the conf) is data: Jinja renders a text once, and kdag
never renders a value that came from an XCom, a param or the conf (``templater.py``).

jinja2 is imported only when a field holds a template, so defining DAGs and starting the runner never load it.
An operator's template fields are read and rendered, field by field, by ``templater.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from kdag_runner.airflow.exceptions import AirflowException, DagDefinitionError

_TEMPLATE_MARKERS = ("{{", "{%", "{#")

# DAG object id -> (the DAG, its environment): one environment per DAG and process, as Airflow's task runner
# builds one per task. The DAG is kept so its id is not reused while the entry lives.
_ENVIRONMENTS: dict[tuple[int, bool], tuple[object, Any]] = {}


def needs_jinja(text: str, template_ext: Sequence[str] = ()) -> bool:
    """Whether ``text`` holds Jinja markers or names a template file (ends with one of ``template_ext``)."""
    return any(marker in text for marker in _TEMPLATE_MARKERS) or bool(
        template_ext and text.endswith(tuple(template_ext))
    )


def plain_text(text: str) -> str:
    """What Jinja makes of text without markers, without importing it: newlines become ``\\n`` and one
    trailing newline is dropped (``keep_trailing_newline=False``)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        del lines[-1]
    return "\n".join(lines)


def _jinja(task_id: str, field: str) -> Any:
    try:
        import jinja2
        import jinja2.sandbox
    except ImportError:
        raise DagDefinitionError(
            f"task '{task_id}': {field} is a Jinja template but jinja2 is not installed (pip install jinja2)"
        ) from None
    return jinja2


def dag_setting(dag: Any, name: str) -> Any:
    """A DAG argument kdag keeps as an attribute, or among the other arguments (``DAG.extra``)."""
    if dag is None:
        return None
    value = getattr(dag, name, None)
    if value is None:
        value = (getattr(dag, "extra", None) or {}).get(name)
    return value


def renders_native(dag: Any) -> bool:
    return bool(dag_setting(dag, "render_template_as_native_obj"))


def template_searchpath(dag: Any) -> list[str]:
    """Where template files are looked up: the DAG file's folder, then ``template_searchpath``."""
    paths: list[str] = []
    fileloc = getattr(dag, "fileloc", None) if dag is not None else None
    if fileloc:
        paths.append(os.path.dirname(os.path.abspath(fileloc)))
    extra = dag_setting(dag, "template_searchpath")
    if isinstance(extra, str):
        paths.append(extra)
    elif extra:
        paths.extend(str(p) for p in extra)
    return paths


def template_env(dag: Any = None, *, task_id: str = "", field: str = "", native: bool | None = None) -> Any:
    """The Jinja environment of ``dag`` (sandboxed; native too when the DAG asks), made once per DAG."""
    jinja2 = _jinja(task_id, field)
    native = renders_native(dag) if native is None else native
    key = (id(dag), native)
    cached = _ENVIRONMENTS.get(key)
    if cached is not None and cached[0] is dag:
        return cached[1]
    sandboxed, native_class = _environment_classes()
    options: dict[str, Any] = {
        "undefined": dag_setting(dag, "template_undefined") or jinja2.StrictUndefined,
        "extensions": ["jinja2.ext.do"],
        "cache_size": 0,
    }
    searchpath = template_searchpath(dag)
    if searchpath:
        options["loader"] = jinja2.FileSystemLoader(searchpath)
    options.update(dag_setting(dag, "jinja_environment_kwargs") or {})
    environment = native_class(**options) if native else sandboxed(**options)
    environment.globals.update(dag_setting(dag, "user_defined_macros") or {})
    environment.filters.update(dag_setting(dag, "user_defined_filters") or {})
    _ENVIRONMENTS[key] = (dag, environment)
    return environment


_CLASSES: list[tuple[Any, Any]] = []


def _environment_classes() -> tuple[Any, Any]:
    """Airflow's two environment classes (made on first use, since they subclass jinja2's)."""
    if _CLASSES:
        return _CLASSES[0]
    import jinja2.nativetypes
    import jinja2.sandbox

    class _AirflowFilters:
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.filters.update(_FILTERS)  # type: ignore[attr-defined]

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            # As Airflow: "_private" attributes are allowed, "__internal__" ones are not.
            return not jinja2.sandbox.is_internal_attribute(obj, attr)

    class SandboxedEnvironment(_AirflowFilters, jinja2.sandbox.SandboxedEnvironment):
        """Airflow's sandboxed environment for task templates."""

    class NativeEnvironment(
        _AirflowFilters, jinja2.nativetypes.NativeEnvironment, jinja2.sandbox.SandboxedEnvironment
    ):
        """Airflow's environment for ``render_template_as_native_obj=True``, sandboxed as the other."""

    _CLASSES.append((SandboxedEnvironment, NativeEnvironment))
    return _CLASSES[0]


def _date_filter(fmt: str) -> Any:
    def apply(value: Any) -> str | None:
        return None if value is None else str(value.strftime(fmt))

    return apply


def _ts(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def _ts_nodash_with_tz(value: Any) -> str | None:
    return None if value is None else str(value.isoformat()).replace("-", "").replace(":", "")


_FILTERS: dict[str, Any] = {
    "ds": _date_filter("%Y-%m-%d"),
    "ds_nodash": _date_filter("%Y%m%d"),
    "ts": _ts,
    "ts_nodash": _date_filter("%Y%m%dT%H%M%S"),
    "ts_nodash_with_tz": _ts_nodash_with_tz,
}


def render_string(
    environment: Any,
    text: str,
    context: Mapping[str, Any],
    *,
    task_id: str,
    field: str,
    template_ext: Sequence[str] = (),
) -> Any:
    """Render one string in ``environment``; a string ending with one of ``template_ext`` names a template
    file (looked up on the environment's search path). Errors name the task and the field."""
    import jinja2

    variables = dict(context)
    variables.setdefault("macros", _macros())
    try:
        if template_ext and text.endswith(tuple(template_ext)):
            template = environment.get_template(text)
        else:
            template = environment.from_string(text)
        return template.render(variables)
    except jinja2.TemplateNotFound as err:
        where = ", ".join(getattr(environment.loader, "searchpath", None) or []) or "no template folder"
        raise AirflowException(
            f"task '{task_id}': rendering {field} failed: template file '{err.name}' not found in {where}"
        ) from err
    except jinja2.TemplateError as err:
        raise AirflowException(f"task '{task_id}': rendering {field} failed: {err}") from err


def render_text(
    text: str,
    context: Mapping[str, Any],
    *,
    task_id: str,
    field: str,
    dag: Any = None,
    template_ext: Sequence[str] = (),
    environment: Any = None,
) -> Any:
    """One string rendered as Airflow renders a template field's string: in ``environment``, else the
    DAG's (``template_env``). Text without markers is not given to Jinja unless the DAG renders native
    objects or an environment is given (the result is the same, and jinja2 is not imported)."""
    if environment is None:
        if not needs_jinja(text, template_ext) and not renders_native(dag):
            return plain_text(text)
        environment = template_env(dag, task_id=task_id, field=field)
    return render_string(environment, text, context, task_id=task_id, field=field, template_ext=template_ext)


def _macros() -> Any:
    """The common part of Airflow's ``macros``: datetime helpers, json, uuid, random."""
    import json
    import random
    import time
    import types
    import uuid

    def ds_add(ds: str, days: int) -> str:
        return (datetime.strptime(ds, "%Y-%m-%d") + timedelta(days=days)).strftime("%Y-%m-%d")

    def ds_format(ds: str, input_format: str, output_format: str) -> str:
        return datetime.strptime(ds, input_format).strftime(output_format)

    return types.SimpleNamespace(
        datetime=datetime,
        timedelta=timedelta,
        json=json,
        time=time,
        uuid=uuid,
        random=random.random,
        ds_add=ds_add,
        ds_format=ds_format,
    )


def airflow_context_vars(context: Mapping[str, Any]) -> dict[str, str]:
    """The ``AIRFLOW_CTX_*`` variables Airflow exports to a task's environment."""
    found = {
        "AIRFLOW_CTX_DAG_ID": context.get("dag_id"),
        "AIRFLOW_CTX_TASK_ID": context.get("task_id"),
        "AIRFLOW_CTX_DAG_RUN_ID": context.get("run_id"),
        "AIRFLOW_CTX_LOGICAL_DATE": context.get("ts"),
    }
    ti = context.get("ti")
    if ti is not None:
        found["AIRFLOW_CTX_TRY_NUMBER"] = str(getattr(ti, "try_number", 1))
    return {k: str(v) for k, v in found.items() if v is not None}
