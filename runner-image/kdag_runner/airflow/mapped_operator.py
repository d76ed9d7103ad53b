"""``MappedOperator``: a task run as N instances, and what one instance runs in its pod.

``Operator.partial(**fixed).expand(**mapped)`` and the same on ``@task`` functions (``mapping.py``) make a
``MappedOperator``: ONE task of the DAG (dependencies, groups, trigger rules, retries as any task) that
`kdag compile` turns into one task spec with a ``map`` field (its ``length_expression``). The controller
starts one pod per instance with ``KDAG_MAP_INDEX=i``; there the runner loads the same DAG file, ``unmap``
makes instance i's operator from the shared arguments and its own (``expand_input.py``), and after it ran
``render_map_index`` names it with ``map_index_template``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kdag_runner.airflow.expand_input import ExpandInput
from kdag_runner.airflow.groups import closest_mapped_group
from kdag_runner.airflow.mapping_checks import MappingError, check_value_to_map
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.templating import render_text
from kdag_runner.airflow.xcom_arg import XComArg, XComSource, resolve_xcom_args

RENDERED_MAP_INDEX_MAX = 250
"""Airflow's ``rendered_map_index`` column holds this many characters; longer names are cut."""


class MappedOperator(BaseOperator):
    """A task run as N instances: the operator class, the arguments they share and what each maps.

    It is a task of its DAG like any (dependencies, groups, retries, trigger rule from its ``partial``
    arguments); ``unmap`` makes instance i's operator in its pod. ``is_mapped`` tells XComArgs of it to
    resolve to every instance's value.
    """

    is_mapped = True

    def __init__(
        self,
        *,
        task_id: str,
        operator_class: type[BaseOperator],
        partial_kwargs: Mapping[str, Any],
        expand_input: ExpandInput,
        strict: bool = False,
        mapped_into: str | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(task_id=task_id, **base_kwargs)
        outer = closest_mapped_group(self)
        if outer is not None:
            raise MappingError(
                f"task '{self.task_id}': a mapped task inside mapped task group '{outer.group_id}' is not"
                " supported by kdag (map the group, or the task outside it)"
            )
        self.operator_class = operator_class
        self.partial_kwargs = dict(partial_kwargs)
        self.expand_input = expand_input
        self.strict = strict
        self.mapped_into = mapped_into
        """``op_kwargs`` for a ``@task`` function (the mapped arguments are the function's), else None."""
        defaults: dict[str, Any] = dict(self.dag.default_args) if self.dag is not None else {}
        if self.task_group is not None:
            defaults.update(self.task_group.default_args)
        defaults.update(base_kwargs.get("default_args") or {})
        self.default_args = defaults
        self.template_ext = operator_class.template_ext
        self.ui_color = operator_class.ui_color
        # The tasks whose XComs it maps over (and those in its shared arguments) run first.
        for operator, _ in (*expand_input.references(), *_references(self.partial_kwargs)):
            if isinstance(operator, BaseOperator):
                self.set_upstream(operator)

    def __repr__(self) -> str:
        return f"<Mapped({self.operator_class.__name__}): {self.task_id}>"

    @property
    def task_type(self) -> str:
        return self.operator_class.__name__

    def references(self) -> list[tuple[XComSource, str]]:
        """The (task, key) XComs the instances expand over."""
        return list(self.expand_input.references())

    def length_expression(self, key_form: Callable[[str], str] = str) -> dict[str, Any]:
        """How many instances, as the controller computes it (the task spec's ``map.length``); XCom keys
        through ``key_form`` (compile gives their ConfigMap keys)."""
        return self.expand_input.length_expression(key_form)

    def execute(self, context: dict[str, Any]) -> Any:
        raise RuntimeError("can't resolve task-mapping argument without expanding")

    def check_mapped_upstream(self, upstream: Any, value: Any, ti: Any) -> None:
        """Called by ``upstream.push_result`` before it pushes ``value`` (its return value, or None): fail it
        when this task maps over that value and it cannot be mapped (Airflow's ``_push_xcom_if_needed``)."""
        check_value_to_map(self.references(), upstream, value, ti)

    def unmap(self, context: Mapping[str, Any]) -> BaseOperator:
        """The operator instance ``context["ti"].map_index`` runs: the shared arguments plus its own, every
        XComArg among them resolved (so making it joins it to no DAG), in the mapped task's place. What came
        from XComs is never rendered (``keep_unrendered``), as in Airflow; the DAG file's values are."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        if map_index is None or map_index < 0:
            raise RuntimeError("can't resolve task-mapping argument without expanding")
        mapped, from_xcoms = self.expand_input.resolve(map_index, context)
        unrendered = [mapped[name] for name in from_xcoms]
        shared = dict(self.partial_kwargs)
        if self.mapped_into is not None:
            own = dict(shared.get(self.mapped_into) or {})
            if self.strict:
                _prevent_duplicates(own, mapped, "mapping already partial")
            shared[self.mapped_into] = {**own, **mapped}
        else:
            if self.strict:
                _prevent_duplicates(shared, mapped, "unmappable or already specified")
            shared.update(mapped)
        base = {name: value for name, value in self.options.items() if name not in ("task_group", "params")}
        base.update({name: shared.pop(name) for name in list(shared) if name in base})
        kwargs = resolve_xcom_args({**base, **shared}, ti, unrendered)
        operator = self.operator_class(
            task_id=self.task_id, default_args=self.default_args, params=self.params, **kwargs
        )
        operator.keep_unrendered(unrendered)
        # In the mapped task's place: its DAG, group and relatives (branches read them), never added to the
        # DAG (which holds the mapped task under this id).
        operator.dag = self.dag
        operator.task_group = self.task_group
        operator._upstream = dict(self._upstream)
        operator._downstream = dict(self._downstream)
        operator.trigger_rule = self.trigger_rule
        operator.is_setup = self.is_setup
        operator.is_teardown = self.is_teardown
        operator.on_failure_fail_dagrun = self.on_failure_fail_dagrun
        operator.definition_site = self.definition_site
        return operator


def _references(value: Any) -> Iterator[tuple[XComSource, str]]:
    if isinstance(value, XComArg):
        yield from value.iter_references()
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)


def _prevent_duplicates(first: Mapping[str, Any], second: Mapping[str, Any], reason: str) -> None:
    duplicated = sorted(set(first) & set(second))
    if len(duplicated) == 1:
        raise TypeError(f"{reason} argument: {duplicated[0]}")
    if duplicated:
        raise TypeError(f"{reason} arguments: {', '.join(duplicated)}")


def unmap(task: BaseOperator, context: Mapping[str, Any]) -> BaseOperator:
    """The operator a task's attempt runs: a mapped task's instance (``unmap``), else the task itself."""
    return task.unmap(context) if isinstance(task, MappedOperator) else task


def render_map_index(task: BaseOperator, context: Mapping[str, Any]) -> str | None:
    """The instance's name: ``map_index_template`` (the context's, which the task may have changed) rendered
    with the context, as Airflow does after ``execute``; None without a template. At most 250 characters."""
    template = context.get("map_index_template")
    if not template:
        return None
    rendered = render_text(
        str(template), context, task_id=task.task_id, field="map_index_template", dag=task.dag
    )
    return str(rendered)[:RENDERED_MAP_INDEX_MAX]
