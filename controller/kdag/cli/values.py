"""What the options' values mean: `-o`'s choices and the parsers of `-p`, `--conf` and `--logical-date`.

No typer here (its option types are `kdag.cli.options`'), so that `kdag run --local` starts without it.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from kdag.cli.errors import UserError


class Output(StrEnum):
    """How a command prints its result."""

    text = "text"
    json = "json"


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """`-p key=value` pairs as a dict; a value that parses as JSON is that JSON value, else the text."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UserError(f"param {pair!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    return params


def parse_conf(text: str | None) -> dict[str, Any]:
    """`--conf` as a JSON object."""
    if not text:
        return {}
    try:
        conf = json.loads(text)
    except ValueError as err:
        raise UserError(f"--conf: not JSON: {err}") from None
    if not isinstance(conf, dict):
        raise UserError("--conf: must be a JSON object")
    return conf


def parse_date(text: str | None) -> datetime | None:
    """`--logical-date` as an aware UTC datetime (a date alone means midnight UTC)."""
    if not text:
        return None
    from kdag.render import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise UserError(f"--logical-date: {text!r} is not an ISO 8601 date or time") from None
