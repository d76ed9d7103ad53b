"""An operator's template fields (Airflow's ``Templater``): ``template_ext`` files read into them, then each
rendered in place, once, with the task's context.

Strings render through ``templating.py`` (the DAG's Jinja environment); tuples, lists, dicts and sets are
rendered item by item, an object with ``template_fields`` of its own is rendered in place, and an XComArg
becomes the value its task pushed (never rendered). Only fields whose value is truthy are rendered, as in
Airflow. ``BaseOperator`` (``operators.py``) is the one class that mixes this in.

A value that came from an upstream XCom is data, never a template: an XComArg's value is not rendered, nor
are the arguments a mapped instance got from XComs (``keep_unrendered``; Airflow's ``resolved_oids``), nor
read as a ``template_ext`` file. A template that pulls an XCom (``{{ ti.xcom_pull(...) }}``), a param or the
conf puts the value in the text once; the text is not rendered again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from kdag_runner.airflow import templating
from kdag_runner.airflow.dags import DAG
from kdag_runner.airflow.xcom_arg import XComArg


class Templater:
    """Reading and rendering the ``template_fields`` of an operator (its ``task_id`` and ``dag``)."""

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()
    template_fields_renderers: ClassVar[dict[str, str]] = {}
    task_id: str
    dag: DAG | None

    def get_template_env(self, dag: DAG | None = None) -> Any:
        """The DAG's Jinja environment (sandboxed; native too when the DAG renders native objects)."""
        return templating.template_env(dag or self.dag, task_id=self.task_id, field="a template")

    def prepare_template(self) -> None:
        """Runs after template files were read into the fields (override it to change their text)."""

    def keep_unrendered(self, values: Iterable[Any]) -> None:
        """Never render ``values``, nor anything inside them, where a template field holds them, nor read
        them as template files: the arguments a mapped instance got from upstream XComs (Airflow's
        ``resolved_oids``). Told by identity, so they are kept here as long as the operator lives."""
        kept: list[Any] = self.__dict__.setdefault("_kdag_unrendered", [])
        kept.extend(values)

    def _unrendered_ids(self) -> set[int]:
        found: set[int] = set()
        for value in self.__dict__.get("_kdag_unrendered", ()):
            _collect_ids(value, found)
        return found

    def resolve_template_files(self) -> None:
        """Read the template fields that name a ``template_ext`` file (from the DAG's folder or
        ``template_searchpath``) into the fields, then call ``prepare_template``; a file that cannot be read
        is left as its name (its rendering then fails naming it), as in Airflow. A value from an XCom
        (``keep_unrendered``) names no file."""
        if self.template_ext:
            extensions = tuple(self.template_ext)
            unrendered = self._unrendered_ids()
            for name in self.template_fields:
                content = getattr(self, name, None)
                if id(content) in unrendered:
                    continue
                if isinstance(content, str) and content.endswith(extensions):
                    text = self._template_source(content)
                    if text is not None:
                        setattr(self, name, text)
                elif isinstance(content, list):
                    for index, item in enumerate(content):
                        if id(item) in unrendered:
                            continue
                        if isinstance(item, str) and item.endswith(extensions):
                            text = self._template_source(item)
                            if text is not None:
                                content[index] = text
        self.prepare_template()

    def _template_source(self, name: str) -> str | None:
        for folder in templating.template_searchpath(self.dag):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as file:
                    return file.read()
        return None

    def render_template_fields(self, context: Mapping[str, Any], jinja_env: Any = None) -> None:
        """Render every template field in place, once (an XComArg becomes the value its task pushed, which
        is never rendered); the error of a field names the task and the field."""
        self.render_fields(self.template_fields, context, jinja_env)
        self.__dict__["_kdag_rendered"] = True

    def render_fields(self, names: Iterable[str], context: Mapping[str, Any], jinja_env: Any = None) -> None:
        """Render the template fields ``names`` in place (``render_template_fields`` renders them all)."""
        seen = self._unrendered_ids()
        for name in names:
            try:
                value = getattr(self, name)
            except AttributeError:
                raise AttributeError(
                    f"{name!r} is configured as a template field but {type(self).__name__} does not have "
                    "this attribute."
                ) from None
            if not _is_set(value):
                continue
            self.__dict__["_kdag_field"] = name
            try:
                if callable(value) and not isinstance(value, XComArg):
                    rendered = value(context=context, jinja_env=jinja_env)
                else:
                    rendered = self.render_template(value, context, jinja_env, seen)
            finally:
                self.__dict__.pop("_kdag_field", None)
            setattr(self, name, rendered)

    def render_template_fields_once(self, context: Mapping[str, Any]) -> None:
        """Render the template fields unless they were (``execute`` called without ``run_task``)."""
        if not self.__dict__.get("_kdag_rendered"):
            self.render_template_fields(context)

    def render_template(
        self,
        content: Any,
        context: Mapping[str, Any],
        jinja_env: Any = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Airflow's ``render_template``: strings rendered (a ``template_ext`` name is a template file),
        inside tuples, lists, dicts and sets too; an XComArg resolved, its value left as it is; an object
        with ``template_fields`` of its own rendered in place."""
        value = content
        oids = seen_oids if seen_oids is not None else set()
        if id(value) in oids:
            return value
        if isinstance(value, str):
            field = str(self.__dict__.get("_kdag_field", "a template"))
            return templating.render_text(
                value,
                context,
                task_id=self.task_id,
                field=field,
                dag=self.dag,
                template_ext=tuple(self.template_ext),
                environment=jinja_env,
            )
        if isinstance(value, XComArg):
            return value.resolve(context["ti"])
        if not isinstance(value, os.PathLike) and callable(getattr(value, "resolve", None)):
            return value.resolve(context)
        if value.__class__ is tuple:
            return tuple(self.render_template(v, context, jinja_env, oids) for v in value)
        if isinstance(value, tuple):  # a named tuple
            return value.__class__(*(self.render_template(v, context, jinja_env, oids) for v in value))
        if isinstance(value, list):
            return [self.render_template(v, context, jinja_env, oids) for v in value]
        if isinstance(value, dict):
            return {k: self.render_template(v, context, jinja_env, oids) for k, v in value.items()}
        if isinstance(value, set):
            return {self.render_template(v, context, jinja_env, oids) for v in value}
        nested = getattr(value, "template_fields", None)
        if nested is not None and id(value) not in oids:
            oids.add(id(value))
            for name in nested:
                inner = getattr(value, name)
                if _is_set(inner):
                    setattr(value, name, self.render_template(inner, context, jinja_env, oids))
        return value


def _collect_ids(value: Any, found: set[int]) -> None:
    """The ids of ``value`` and of the strings and containers inside it: an operator that copies a
    container (``list(op_args)``) still holds the same strings. A string of one character is left out: it
    holds no template, and Python shares one object for each (a DAG file's ``"x"`` is an XCom's ``"x"``)."""
    if isinstance(value, str):
        if len(value) > 1:
            found.add(id(value))
        return
    if not isinstance(value, list | tuple | dict | set) or id(value) in found:
        return
    found.add(id(value))
    for item in value.values() if isinstance(value, dict) else value:
        _collect_ids(item, found)


def _is_set(value: Any) -> bool:
    """Airflow renders only template fields whose value is truthy (or cannot say)."""
    try:
        return bool(value)
    except Exception:
        return True
