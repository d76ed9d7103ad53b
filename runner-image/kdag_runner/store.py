"""The XCom store encoding: one ConfigMap's ``data`` per task (see docs/design.md, "The XCom store").

``data[key]`` is the text form of a value (a ``str`` as itself, anything else as compact JSON) and
``data[".types"]`` maps every key to ``"str"`` or ``"json"`` so readers get the exact type back.
The same files appear in a task directory: a ConfigMap volume or a local run's directory.

XCom keys are any non-empty string, as in Airflow, except that keys beginning with ``__`` are kdag's own.
ConfigMap keys allow only ``[-._a-zA-Z0-9]`` (at most 253 characters), so ``encode_key`` maps an XCom key to
the ConfigMap key it is stored under: a key that is already a plain key (``PLAIN_KEY_PATTERN``) stays as it
is; any other becomes ``-`` followed by the key with every UTF-8 byte outside ``[A-Za-z0-9_-]`` written as
``.`` and two lower-case hex digits (``value from pusher 1`` -> ``-value.20from.20pusher.201``). A plain key
never begins with ``-``, so the two forms never collide, and ``decode_key`` reverses either. Everything
stored (``data``, ``.types``, task directories, a task's ``xcomKeys``) uses ConfigMap keys; what users see
(``xcom_pull``, ``decode``, ``kdag xcom``, ``kdag run --local``) uses the keys as written.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

RETURN_KEY = "return_value"
TYPES_KEY = ".types"
CONTEXT_KEY = "__context"
STATE_KEY = ".state"
"""The task state store's ConfigMap key (``state_store``): like ``.types`` it is no XCom's key, so no reader
of XComs sees it, and the XCom write of an attempt leaves it alone (another field manager owns it)."""
# The API server refuses a ConfigMap whose data exceeds 1 MiB (metadata is not counted). XComs get all but
# 16 KiB of it, which is what the task state store's ``.state`` may take beside them.
STATE_SIZE_LIMIT = 16_384
SIZE_LIMIT = 1_048_576 - STATE_SIZE_LIMIT
# ConfigMap keys are at most 253 characters.
MAX_KEY_LENGTH = 253
# An XCom key stored under its own name; kdag's own keys (``__context``) are plain keys too.
PLAIN_KEY_PATTERN = r"^[A-Za-z0-9_][-._A-Za-z0-9]*$"
KEY_PATTERN = PLAIN_KEY_PATTERN
# Any ConfigMap key an XCom is stored under: a plain key or an escaped one (``-`` + escapes).
STORE_KEY_PATTERN = r"^[-_A-Za-z0-9][-._A-Za-z0-9]*$"
ESCAPE_PREFIX = "-"
_KEY_RE = re.compile(PLAIN_KEY_PATTERN[1:-1])
_ESCAPED_RE = re.compile(r"-(?:[-_A-Za-z0-9]|\.[0-9a-f]{2})*")
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

TEXT_TYPE = "str"
JSON_TYPE = "json"


class XComError(Exception):
    """An XCom that cannot be stored or read; the task fails with exit code 3."""


def validate_key(key: object, task_id: str, *, internal: bool = False) -> str:
    """Return ``key`` when it can name an XCom: a non-empty str whose ConfigMap key fits (253 characters);
    user keys may not begin with ``__`` (kdag's own)."""
    if not isinstance(key, str):
        raise XComError(f"XCom key of task '{task_id}' must be a str, not {type(key).__name__}")
    if not key:
        raise XComError(f"XCom key of task '{task_id}' is empty: a key is a non-empty string")
    if is_internal_key(key) and not internal:
        raise XComError(
            f"XCom key {key!r} of task '{task_id}' is reserved: keys beginning with '__' are kdag's"
        )
    try:
        stored = encode_key(key)
    except UnicodeEncodeError as err:
        raise XComError(
            f"XCom key {key!r} of task '{task_id}' is not valid UTF-8 text: {err.reason} at {err.start}"
        ) from None
    if len(stored) > MAX_KEY_LENGTH:
        raise XComError(
            f"XCom key {key!r} of task '{task_id}' is too long: it is stored as a ConfigMap key of "
            f"{len(stored)} characters, and ConfigMap keys are at most {MAX_KEY_LENGTH} "
            "(characters other than letters, digits, '_', '-' and '.' take 3 each)"
        )
    return key


def encode_key(key: str) -> str:
    """The ConfigMap key an XCom key is stored under: itself when plain, else its escaped form."""
    if _KEY_RE.fullmatch(key):
        return key
    return ESCAPE_PREFIX + "".join(
        chr(byte) if byte in _SAFE else f".{byte:02x}" for byte in key.encode("utf-8")
    )


def decode_key(stored: str) -> str:
    """The XCom key a ConfigMap key stands for (``encode_key`` reversed); XComError if it is neither form."""
    if _KEY_RE.fullmatch(stored):
        return stored
    if _ESCAPED_RE.fullmatch(stored):
        raw = bytearray()
        body, i = stored[1:], 0
        while i < len(body):
            if body[i] == ".":
                raw.append(int(body[i + 1 : i + 3], 16))
                i += 3
            else:
                raw.append(ord(body[i]))
                i += 1
        try:
            key = raw.decode("utf-8")
        except UnicodeDecodeError:
            key = ""
        if key and encode_key(key) == stored:
            return key
    raise XComError(f"{stored!r} is not a ConfigMap key kdag stores an XCom under")


def is_store_key(name: str) -> bool:
    """Whether ``name`` is a ConfigMap key an XCom may be stored under (plain or escaped)."""
    if _KEY_RE.fullmatch(name):
        return True
    try:
        decode_key(name)
    except XComError:
        return False
    return True


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
        # allow_nan=False: NaN and Infinity are no JSON, and Airflow 3 refuses them too (its API client
        # posts XComs with httpx, which dumps with allow_nan=False).
        text = json.dumps(value, separators=(",", ":"), sort_keys=False, default=refuse, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as err:
        type_name = refused[0] if refused else _refused_type_name(value, err)
        raise XComError(f"XCom '{key}' of task '{task_id}' is not JSON-serialisable: {type_name}") from None
    collision = _colliding_keys(value) if "{" in text else None  # no dict, no collision
    if collision is not None:
        first, second, written = collision
        raise XComError(
            f"XCom '{key}' of task '{task_id}' is not JSON-serialisable: a dict has the keys {first!r} and"
            f" {second!r}, both written as the JSON key {json.dumps(written)}, so one would be lost;"
            " give it distinct string keys"
        )
    return text, JSON_TYPE


def _refused_type_name(value: object, err: BaseException) -> str:
    """Name what json refused when ``default`` was not consulted (dict keys, cycles, deep nesting,
    NaN and Infinity)."""
    message = str(err)
    if "keys must be" in message:
        return f"{type(value).__name__} with a key json cannot write ({message})"
    if "Out of range float" in message:
        found = _non_finite_float(value)
        return f"float {found!r} (NaN and Infinity are not JSON; push None or a string instead)"
    return f"{type(value).__name__} ({message})"


_CONTAINER_TYPES = (dict, list, tuple)
# isinstance(k, str) as a function: map() over the keys of many small dicts is quicker than a generator.
_is_str = str.__instancecheck__


def _containers(value: object) -> list[dict[Any, Any] | list[Any] | tuple[Any, ...]]:
    """Every dict, list and tuple in ``value`` (itself included), for a value json has written: no
    cycles, nothing but JSON's types, and dict keys that are no containers."""
    if not isinstance(value, _CONTAINER_TYPES):
        return []
    found: list[dict[Any, Any] | list[Any] | tuple[Any, ...]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        found.append(item)
        members = item.values() if isinstance(item, dict) else item
        stack.extend([member for member in members if isinstance(member, _CONTAINER_TYPES)])
    return found



def _non_finite_float(value: object) -> float:
    """The first NaN or infinity in ``value``, a dict key or a value."""
    members: list[object] = [value]
    for item in _containers(value):
        members.extend([*item.keys(), *item.values()] if isinstance(item, dict) else item)
    return next((m for m in members if isinstance(m, float) and not math.isfinite(m)), math.nan)


def _colliding_keys(value: object) -> tuple[object, object, str] | None:
    """Two keys of one dict in ``value`` that JSON writes as the same string (``1`` and ``'1'``, ``True``
    and ``'true'``), and that string; None when there are none. Airflow's serde (``str(k)``) keeps the
    last one silently; JSON readers would keep either."""
    stack = [value] if isinstance(value, _CONTAINER_TYPES) else []
    while stack:  # a loop, not recursion: json accepts nesting deeper than the stack would
        item = stack.pop()
        if isinstance(item, dict):
            if not all(map(_is_str, item)):  # only str keys (the common case): no collision
                written: dict[str, object] = {}
                for k in item:
                    text = _json_key(k)
                    if text in written:
                        return written[text], k, text
                    written[text] = k
            members: Iterable[object] = item.values()
        else:
            members = item
        stack.extend([member for member in members if isinstance(member, _CONTAINER_TYPES)])
    return None


def _json_key(key: object) -> str:
    """The string json.dumps writes for a dict key it accepts (str, bool, None, int, float)."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is True or key is False or key is None:
        return json.dumps(key)
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return float.__repr__(key)
    return str(key)


def decode_value(text: str, type_name: str) -> object:
    """Return the value a text form stands for."""
    if type_name == JSON_TYPE:
        return json.loads(text)
    return text


def encode(xcoms: Mapping[str, object], task_id: str) -> dict[str, str]:
    """Return ConfigMap data for a task's XComs (``None`` values are not stored); checks keys and size."""
    texts: dict[str, str] = {}
    types: dict[str, str] = {}
    for key, value in xcoms.items():
        validate_key(key, task_id, internal=True)
        if value is None:
            continue
        texts[key], types[key] = encode_value(key, value, task_id)
    return finish(texts, types, task_id)


def finish(texts: Mapping[str, str], types: Mapping[str, str], task_id: str) -> dict[str, str]:
    """Return ConfigMap data for already encoded values by XCom key: each under its ConfigMap key
    (``encode_key``), plus ``.types``; size checked."""
    data = stored_form(texts, types)
    check_size(data, task_id)
    return data


def stored_form(texts: Mapping[str, str], types: Mapping[str, str]) -> dict[str, str]:
    """ConfigMap data for encoded values by XCom key, without the size check."""
    data = {encode_key(key): text for key, text in texts.items()}
    data[TYPES_KEY] = types_text({encode_key(key): type_name for key, type_name in types.items()})
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
    """Return the values of ConfigMap data by XCom key as written, in the order ``.types`` lists them
    (the push order); keys that are no XCom's ConfigMap key are left out."""
    types = types_of(data)
    ordered = [key for key in types if key in data] + [
        key for key in data if key not in types and key != TYPES_KEY
    ]
    values: dict[str, object] = {}
    for stored in ordered:
        if not is_store_key(stored):
            continue
        key = decode_key(stored)
        try:
            values[key] = decode_value(data[stored], types.get(stored, TEXT_TYPE))
        except ValueError as err:
            raise XComError(f"XCom {key!r} is marked json but does not parse: {err}") from None
    return values


def is_internal_key(key: str) -> bool:
    """Whether an XCom key is one kdag writes for itself (``__context``): every key beginning with ``__``,
    which a task may not push (``validate_key``)."""
    return key.startswith("__")


def stored_keys(data: Mapping[str, str]) -> list[str]:
    """The ConfigMap keys of ConfigMap data but ``.types``, kdag's ``__context`` included: a report's
    ``xcomKeys``, which is exactly what the controller projects into the pods downstream."""
    return [key for key in data if key != TYPES_KEY]


def pushed_keys(data: Mapping[str, str]) -> list[str]:
    """The XCom keys (as written) of ConfigMap data, in push order, without kdag's own ``__`` keys."""
    return [key for key in decode_keys(data) if not is_internal_key(key)]


def decode_keys(data: Mapping[str, str]) -> list[str]:
    """Every XCom key (as written) of ConfigMap data, in push order."""
    types = types_of(data)
    ordered = [k for k in types if k in data] + [k for k in data if k not in types and k != TYPES_KEY]
    return [decode_key(k) for k in ordered if is_store_key(k)]


def value_of(data: Mapping[str, str], key: str | None, task_id: str) -> object:
    """The value ConfigMap data holds under XCom key ``key`` (None when absent); ``key=None`` is the
    key pushed last (Airflow 2's "any key"), kdag's own keys aside."""
    if key is None:
        keys = pushed_keys(data)
        if not keys:
            return None
        key = keys[-1]
    stored = encode_key(key)
    if stored not in data:
        return None
    try:
        return decode_value(data[stored], types_of(data).get(stored, TEXT_TYPE))
    except ValueError as err:
        raise XComError(
            f"XCom {key!r} of task '{task_id}' is marked json but does not parse: {err}"
        ) from None


def read_task_dir(path: Path) -> dict[str, str]:
    """Return the ConfigMap data a task directory holds (``{}`` when it does not exist), by ConfigMap key.

    A ConfigMap volume also holds ``..data`` and timestamped directories; stored keys never begin
    with a dot, so only ``.types`` and files whose names are ConfigMap keys of XComs are read.
    """
    data: dict[str, str] = {}
    try:
        entries = sorted(path.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return data
    for entry in entries:
        name = entry.name
        if name != TYPES_KEY and not is_store_key(name):
            continue
        try:
            data[name] = entry.read_text(encoding="utf-8")
        except (IsADirectoryError, FileNotFoundError):
            continue
    return data


def read_task_values(path: Path) -> dict[str, object]:
    """Return the values stored in a task directory, by XCom key as written."""
    return decode(read_task_dir(path))
