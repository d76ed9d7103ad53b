"""``PythonOperator``, and ``callable_kwargs``: which context keys a Python callable receives.

A coroutine function (``@task async def``) is awaited to completion in the task's process, as Airflow 3.3
does (``async_operators``); so are those of ``@task.branch`` and ``@task.short_circuit``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kdag_runner.airflow.async_operators import is_async_callable, run_coroutine
from kdag_runner.airflow.exceptions import DagDefinitionError
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.xcom_arg import find_xcom_args


def check_callable_arguments(
    task_id: str, python_callable: object, op_args: object, op_kwargs: object
) -> None:
    """Refuse at load what Airflow refuses: a ``python_callable`` that is not callable, ``op_args`` that is
    not a list, ``op_kwargs`` that is not a dict (PythonOperator and PythonSensor alike)."""
    if not callable(python_callable):
        kind = type(python_callable).__name__
        raise DagDefinitionError(f"task '{task_id}': python_callable must be callable, got {kind}")
    if op_args is not None and not isinstance(op_args, list | tuple):
        kind = type(op_args).__name__
        raise DagDefinitionError(f"task '{task_id}': op_args must be a list, got {kind}")
    if op_kwargs is not None and not isinstance(op_kwargs, Mapping):
        kind = type(op_kwargs).__name__
        raise DagDefinitionError(f"task '{task_id}': op_kwargs must be a dict, got {kind}")


class PythonOperator(BaseOperator):
    """Calls ``python_callable(*op_args, **kwargs)`` where kwargs are the context plus ``op_kwargs``."""

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")

    def __init__(
        self,
        *,
        task_id: str,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: Mapping[str, Any] | None = None,
        templates_exts: Sequence[str] | None = None,
        show_return_value_in_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        check_callable_arguments(task_id, python_callable, op_args, op_kwargs)
        super().__init__(task_id=task_id, **kwargs)
        self.python_callable = python_callable
        self.op_args: list[Any] = list(op_args or [])
        self.op_kwargs: dict[str, Any] = dict(op_kwargs or {})
        # An XComArg among the arguments makes its task upstream, as in Airflow.
        for arg in find_xcom_args([self.op_args, self.op_kwargs]):
            self.set_upstream(arg)
        self.templates_dict: dict[str, Any] | None = dict(templates_dict) if templates_dict else None
        if templates_exts:
            self.template_ext = templates_exts
        self.show_return_value_in_logs = show_return_value_in_logs

    @property
    def is_async(self) -> bool:
        """Whether ``python_callable`` is a coroutine function (Airflow 3.3's ``PythonOperator.is_async``)."""
        return is_async_callable(self.python_callable)

    def execute(self, context: dict[str, Any]) -> Any:
        # The runner rendered the template fields (XComArgs resolved) before execute; a direct call renders.
        self.render_template_fields_once(context)
        op_args = list(self.op_args)
        merged = dict(context)
        merged.update(self.op_kwargs)
        merged["templates_dict"] = self.templates_dict
        kwargs = callable_kwargs(self.python_callable, op_args, merged)
        result = self.python_callable(*op_args, **kwargs)
        if self.is_async:
            result = run_coroutine(result)
        if self.show_return_value_in_logs:
            print(f"Done. Returned value was: {result}", flush=True)
        return result


def callable_kwargs(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The keyword arguments Airflow passes: all of them with ``**kwargs``, else only those named.

    As Airflow's ``KeywordParameters.determine``: a positional argument whose parameter name is also
    a context key is refused.
    """
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return dict(kwargs)
    names = list(signature.parameters)
    for name in names[: len(args)]:
        if name in kwargs:
            raise ValueError(f"The key '{name}' in args is a part of kwargs and therefore reserved.")
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return dict(kwargs)
    return {name: kwargs[name] for name in names if name in kwargs}
