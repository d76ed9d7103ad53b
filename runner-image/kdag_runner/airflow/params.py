"""``Param`` and ``ParamsDict``: Airflow 3's DAG and task params (``airflow.sdk.definitions.param``).

A ``Param`` holds a default (or none: ``NOTSET``, a required param), a description and a JSON schema
(``Param(5, type="integer", minimum=1)``, or ``schema={...}``). ``ParamsDict`` is the mapping ``DAG.params``
and ``BaseOperator.params`` hold: reading a key gives the param's value, ``get_param`` the ``Param``.

The runner is standard library only, so nothing here checks a value against its schema: kdag does, before
a task starts (``kdag.params``, with ``jsonschema`` as Airflow does): ``kdag compile``/``apply`` and the DAG
webhook check the schemas and defaults, and ``kdag trigger``, ``kdag run --local`` and the controller check a
run's values. A task receives the merged, already-checked values in ``KDAG_PARAMS`` (docs/design.md,
"Params"). What this module does check is what Airflow checks without ``jsonschema``: a value must be JSON
(``ParamValidationError`` at ``Param(...)``), and reading a param that has no value raises.
"""

from __future__ import annotations

import copy
import json
from collections.abc import ItemsView, Iterator, Mapping, MutableMapping, ValuesView
from typing import Any

from kdag_runner.airflow.exceptions import ParamValidationError


class _NotSet:
    """Airflow's ``NOTSET``: a ``Param`` without a default (a run must give its value)."""

    _instance: _NotSet | None = None

    def __new__(cls) -> _NotSet:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOTSET"

    def __copy__(self) -> _NotSet:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _NotSet:
        return self

    def __reduce__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()


def _check_json(value: Any) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ParamValidationError(
            f"All provided parameters must be json-serializable. The value '{value}' is not serializable."
        ) from None


class Param:
    """A DAG or task param (Airflow's ``Param``): a default, a description and a JSON schema.

    Every keyword besides ``default`` and ``description`` is a JSON-schema keyword (``type``, ``enum``,
    ``minimum``, ``format``, ...; also the UI's ``title``, ``section``, ``values_display``, ``examples``,
    which validation ignores), unless ``schema=`` gives the whole schema.
    """

    CLASS_IDENTIFIER = "__class"

    def __init__(self, default: Any = NOTSET, description: str | None = None, **kwargs: Any) -> None:
        if default is not NOTSET:
            _check_json(default)
        self.value: Any = default
        self.description = description
        self.schema: dict[str, Any] = dict(kwargs.pop("schema")) if "schema" in kwargs else kwargs

    def __copy__(self) -> Param:
        return Param(self.value, self.description, schema=self.schema)

    def __deepcopy__(self, memo: dict[int, Any]) -> Param:
        return Param(copy.deepcopy(self.value, memo), self.description, schema=copy.deepcopy(self.schema))

    def __repr__(self) -> str:
        return f"Param({self.value!r})"

    @property
    def has_value(self) -> bool:
        return self.value is not NOTSET and self.value is not None

    def resolve(self, value: Any = NOTSET, suppress_exception: bool = False) -> Any:
        """The param's value (``value`` if given, which becomes its value); a param with no value raises
        ``ParamValidationError`` (or gives None with ``suppress_exception``).

        Unlike Airflow's, this does not check the schema: kdag checked every value before the task started.
        """
        if value is not NOTSET:
            _check_json(value)
        final = self.value if value is NOTSET else value
        if final is NOTSET:
            if suppress_exception:
                return None
            raise ParamValidationError("No value passed and Param has no default value")
        self.value = final
        return final

    def full_schema(self) -> dict[str, Any]:
        """The schema with the description in it (JSON schema's own ``description`` keyword): what
        ``kdag compile`` writes into the DAG's ``paramSchemas``."""
        schema = dict(self.schema)
        if self.description is not None and "description" not in schema:
            schema["description"] = self.description
        return schema

    def dump(self) -> dict[str, Any]:
        """Airflow's form: the class, the value (None when unset), description and schema."""
        return {
            self.CLASS_IDENTIFIER: f"{self.__module__}.{type(self).__name__}",
            "value": None if self.value is NOTSET else self.value,
            "description": self.description,
            "schema": self.schema,
        }

    def serialize(self) -> dict[str, Any]:
        return {"value": self.value, "description": self.description, "schema": self.schema}


class ParamsDict(MutableMapping[str, Any]):
    """The params of a DAG or task (Airflow's ``ParamsDict``): every value is held as a ``Param``.

    Reading a key gives the param's value; ``get_param`` gives the ``Param``; ``items()`` and ``values()``
    give the ``Param`` objects, as in Airflow. Setting a plain value on a declared key keeps its schema.
    """

    def __init__(self, dict_obj: Mapping[str, Any] | None = None, suppress_exception: bool = False) -> None:
        self._params: dict[str, Param] = {}
        # The keys given as a Param (their schema counts, even an empty one), not as a plain value.
        self._declared: set[str] = set()
        self.suppress_exception = suppress_exception
        if isinstance(dict_obj, ParamsDict):
            self.update(dict_obj)
            return
        for key, value in (dict_obj or {}).items():
            self[str(key)] = value

    def __bool__(self) -> bool:
        return bool(self._params)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ParamsDict):
            return self.dump() == other.dump()
        if isinstance(other, dict):
            return self.dump() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dict

    def __copy__(self) -> ParamsDict:
        return ParamsDict(self, self.suppress_exception)

    def __deepcopy__(self, memo: dict[int, Any]) -> ParamsDict:
        result = ParamsDict(suppress_exception=self.suppress_exception)
        result._params = copy.deepcopy(self._params, memo)
        result._declared = set(self._declared)
        return result

    def __contains__(self, key: object) -> bool:
        return key in self._params

    def __len__(self) -> int:
        return len(self._params)

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __delitem__(self, key: str) -> None:
        del self._params[key]
        self._declared.discard(key)

    def __repr__(self) -> str:
        return repr(self.dump())

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, Param):
            self._params[key] = value
            self._declared.add(key)
        elif key in self._params:
            try:
                self._params[key].resolve(value=value, suppress_exception=self.suppress_exception)
            except ParamValidationError as err:
                raise ParamValidationError(f"Invalid input for param {key}: {err}") from None
        else:
            self._params[key] = Param(value)

    def __getitem__(self, key: str) -> Any:
        return self._params[key].resolve(suppress_exception=self.suppress_exception)

    def get_param(self, key: str) -> Param:
        """The ``Param`` of ``key``."""
        return self._params[key]

    def given_as_param(self, key: str) -> bool:
        """Whether ``key`` was given as a ``Param`` (kdag's): its schema, even an empty one, replaces the
        DAG's; a plain value keeps the DAG's schema of the same param (``kdag compile`` writes only these
        schemas)."""
        return key in self._declared

    def items(self) -> ItemsView[str, Param]:  # Params, as Airflow's
        return ItemsView(self._params)

    def values(self) -> ValuesView[Param]:  # Params, as Airflow's
        return ValuesView(self._params)

    def update(self, *args: Any, **kwargs: Any) -> None:
        if len(args) == 1 and not kwargs and isinstance(args[0], ParamsDict):
            other = args[0]
            for key, param in other._params.items():
                self._params[key] = param
                if key in other._declared:
                    self._declared.add(key)
                else:
                    self._declared.discard(key)
            return
        super().update(*args, **kwargs)

    def dump(self) -> dict[str, Any]:
        """Every param's value, None for one without a value."""
        return {k: v.resolve(suppress_exception=True) for k, v in self._params.items()}

    def validate(self) -> dict[str, Any]:
        """Every param's value; a param without one raises ``ParamValidationError`` naming it."""
        resolved: dict[str, Any] = {}
        for key, param in self._params.items():
            try:
                resolved[key] = param.resolve(suppress_exception=self.suppress_exception)
            except ParamValidationError as err:
                raise ParamValidationError(f"Invalid input for param {key}: {err}") from None
        return resolved

    def serialize(self) -> dict[str, Any]:
        return self.dump()


def params_dict(params: Mapping[str, Any] | None) -> ParamsDict:
    """``params`` (a dict of values and ``Param``s, or a ``ParamsDict``) as a new ``ParamsDict``."""
    if isinstance(params, ParamsDict):
        return copy.copy(params)
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    return ParamsDict(params)


def resolve_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Params as plain values: a ``Param`` becomes its default; one without a default is left out."""
    if isinstance(params, ParamsDict):
        pairs = [(key, param.value) for key, param in params.items()]
    else:
        pairs = [(k, v.value if isinstance(v, Param) else v) for k, v in (params or {}).items()]
    return {key: value for key, value in pairs if value is not NOTSET}


__all__ = ["NOTSET", "Param", "ParamValidationError", "ParamsDict", "params_dict", "resolve_params"]
