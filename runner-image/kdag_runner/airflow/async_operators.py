"""Async tasks: ``@task async def ...``, a ``PythonOperator`` whose callable is a coroutine function, and
``BaseAsyncOperator`` subclasses (``async def aexecute``), run to completion in the task's own process.

As Airflow 3.3 (``BaseAsyncOperator.execute`` in ``airflow/sdk/bases/operator.py``, ``PythonOperator.execute``
and ``aexecute`` in the standard provider): async operators run on the worker, not the triggerer; the
operator's ``execute`` runs the coroutine in an event loop and its result is the task's, pushed as any
other. ``is_async_callable`` sees through ``functools.partial`` and wrappers, and counts an object whose
``__call__`` is a coroutine function. kdag runs the loop with ``asyncio.run`` (a fresh loop, closed after);
``execution_timeout`` is the pod's deadline (``timeoutSeconds``), as for any task, not ``asyncio.wait_for``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable
from contextlib import suppress
from typing import Any

from kdag_runner.airflow.operators import BaseOperator


def is_async_callable(func: Any) -> bool:
    """Whether calling ``func`` gives a coroutine to await (Airflow's ``is_async_callable``)."""
    func = getattr(func, "function", func)  # a @task function
    while isinstance(func, functools.partial):
        func = func.func
    with suppress(Exception):
        func = inspect.unwrap(func)
    if not callable(func):
        return False
    if inspect.iscoroutinefunction(func):
        return True
    if not inspect.isfunction(func) and not inspect.ismethod(func):
        call = type(func).__call__
        with suppress(Exception):
            call = inspect.unwrap(call)
        return inspect.iscoroutinefunction(call)
    return False


def run_coroutine(awaitable: Awaitable[Any]) -> Any:
    """Run ``awaitable`` to completion in a new event loop and return its result (or raise its error)."""
    import asyncio  # here: loading a DAG file, or running a task that is not async, never needs it

    async def outcome() -> Any:
        return await awaitable

    return asyncio.run(outcome())


class BaseAsyncOperator(BaseOperator):
    """An operator whose work is ``async def aexecute(self, context)``; ``execute`` runs it to completion."""

    @property
    def is_async(self) -> bool:
        return True

    async def aexecute(self, context: dict[str, Any]) -> Any:
        """The operator's work (subclasses implement it)."""
        raise NotImplementedError(f"{type(self).__name__} does not define aexecute()")

    def execute(self, context: dict[str, Any]) -> Any:
        return run_coroutine(self.aexecute(context))
