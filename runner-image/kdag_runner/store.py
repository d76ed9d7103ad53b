"""The XCom store encoding: one ConfigMap's ``data`` per task (see docs/design.md, "The XCom store").

``data[key]`` is the text form of a value (a ``str`` as itself, anything else as compact JSON) and
``data[".types"]`` maps every key to ``"str"`` or ``"json"`` so readers get the exact type back.
The same files appear in a task directory: a ConfigMap volume or a local run's directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

RETURN_KEY = "return_value"
TYPES_KEY = ".types"
CONTEXT_KEY = "__context"
# A ConfigMap holds at most 1 MiB; 16 KiB is left for its metadata (name, labels, ownerReference).
SIZE_LIMIT = 1_048_576 - 16_384
# ConfigMap keys are at most 253 characters.
MAX_KEY_LENGTH = 253
KEY_PATTERN = r"^[A-Za-z0-9_][-._A-Za-z0-9]*$"
_KEY_RE = re.compile(r"[A-Za-z0-9_][-._A-Za-z0-9]*")

TEXT_TYPE = "str"
JSON_TYPE = "json"


class XComError(Exception):
    """An XCom that cannot be stored or read; the task fails with exit code 3."""


def validate_key(key: object, task_id: str, *, internal: bool = False) -> str:
    """Return ``key`` when it can name an XCom; user keys may not begin with ``__`` (kdag's own)."""
    if not isinstance(key, str):
        raise XComError(f"XCom key of task '{task_id}' must be a str, not {type(key).__name__}")
    if not _KEY_RE.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
        raise XComError(
            f"XCom key {key!r} of task '{task_id}' is invalid: keys match {KEY_PATTERN} "
            f"and are at most {MAX_KEY_LENGTH} characters"
        )
    if key.startswith("__") and not internal:
        raise XComError(
            f"XCom key {key!r} of task '{task_id}' is reserved: keys beginning with '__' are kdag's"
        )
    return key


def encode_value(key: str, value: object, task_id: str) -> tuple[str, str]:
    """Return (text form, type) of one value; a value JSON refuses raises naming its type."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise XComError(
                f"XCom '{key}' of task '{task_id}' is not valid UTF-8 text: {err.reason} at {err.start}"
            ) from None
        return value, TEXT_TYPE
    refused: list[str] = []

    def refuse(obj: object) -> object:
        refused.append(type(obj).__name__)
        raise TypeError(type(obj).__name__)

    try:
        text = json.dumps(value, separators=(",", ":"), sort_keys=False, default=refuse)
    except (TypeError, ValueError, RecursionError) as err:
        type_name = refused[0] if refused else _refused_type_name(value, err)
        raise XComError(f"XCom '{key}' of task '{task_id}' is not JSON-serialisable: {type_name}") from None
    return text, JSON_TYPE


def _refused_type_name(value: object, err: BaseException) -> str:
    """Name what json refused when ``default`` was not consulted (dict keys, cycles, deep nesting)."""
    message = str(err)
    if "keys must be" in message:
        return f"{type(value).__name__} with a key json cannot write ({message})"
    return f"{type(value).__name__} ({message})"


def decode_value(text: str, type_name: str) -> object:
    """Return the value a text form stands for."""
    if type_name == JSON_TYPE:
        return json.loads(text)
    return text


def encode(xcoms: Mapping[str, object], task_id: str) -> dict[str, str]:
    """Return ConfigMap data for a task's XComs (``None`` values are not stored); checks keys and size."""
    data: dict[str, str] = {}
    types: dict[str, str] = {}
    for key, value in xcoms.items():
        validate_key(key, task_id, internal=True)
        if value is None:
            continue
        data[key], types[key] = encode_value(key, value, task_id)
    return finish(data, types, task_id)


def finish(texts: Mapping[str, str], types: Mapping[str, str], task_id: str) -> dict[str, str]:
    """Return ConfigMap data for already encoded values: the texts plus ``.types``, size checked."""
    data = dict(texts)
    data[TYPES_KEY] = types_text(types)
    check_size(data, task_id)
    return data


def types_text(types: Mapping[str, str]) -> str:
    """The ``.types`` entry for the given key types."""
    return json.dumps(dict(types), separators=(",", ":"))


def data_size(data: Mapping[str, str]) -> int:
    """Bytes the API server counts for ConfigMap data: every key and value, UTF-8."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in data.items())


def check_size(data: Mapping[str, str], task_id: str) -> int:
    """Return the size of ``data``; over the limit raises naming the size and the limit."""
    size = data_size(data)
    if size > SIZE_LIMIT:
        raise XComError(
            f"XComs of task '{task_id}' take {size} bytes; "
            f"a task's XComs must fit in {SIZE_LIMIT} bytes (one ConfigMap)"
        )
    return size


def types_of(data: Mapping[str, str]) -> dict[str, str]:
    """Return ``.types`` of ConfigMap data; a key missing from it is a ``str``."""
    raw = data.get(TYPES_KEY)
    types: dict[str, str] = {}
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError as err:
            raise XComError(f"XCom store has a malformed {TYPES_KEY}: {err}") from None
        if not isinstance(parsed, dict):
            raise XComError(f"XCom store has a malformed {TYPES_KEY}: not a JSON object")
        types = {str(k): str(v) for k, v in parsed.items()}
    return types


def decode(data: Mapping[str, str]) -> dict[str, object]:
    """Return the values of ConfigMap data, in the order ``.types`` lists them (the push order)."""
    types = types_of(data)
    ordered = [key for key in types if key in data] + [
        key for key in data if key not in types and key != TYPES_KEY
    ]
    values: dict[str, object] = {}
    for key in ordered:
        try:
            values[key] = decode_value(data[key], types.get(key, TEXT_TYPE))
        except ValueError as err:
            raise XComError(f"XCom {key!r} is marked json but does not parse: {err}") from None
    return values


def read_task_dir(path: Path) -> dict[str, str]:
    """Return the ConfigMap data a task directory holds (``{}`` when it does not exist).

    A ConfigMap volume also holds ``..data`` and timestamped directories; user keys never begin
    with a dot, so only ``.types`` and files whose names are valid keys are read.
    """
    data: dict[str, str] = {}
    try:
        entries = sorted(path.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return data
    for entry in entries:
        name = entry.name
        if name != TYPES_KEY and not _KEY_RE.fullmatch(name):
            continue
        try:
            data[name] = entry.read_text(encoding="utf-8")
        except (IsADirectoryError, FileNotFoundError):
            continue
    return data


def read_task_values(path: Path) -> dict[str, object]:
    """Return the values stored in a task directory."""
    return decode(read_task_dir(path))
