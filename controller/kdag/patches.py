"""JSON merge patches (RFC 7386) that really turn the stored value into the wanted one.

A merge patch merges maps key by key, so a key that is gone from the wanted map stays on the server unless
the patch says `null` for it (a mapped task's instance counts, `{Running: 3}` -> `{Succeeded: 10}`, would
otherwise read `{Running: 3, Succeeded: 10}`). Lists and scalars are replaced whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_patch(stored: Any, wanted: Any) -> Any:
    """The merge patch of one field: `wanted`, with `None` for each map key only `stored` has."""
    if not isinstance(stored, Mapping) or not isinstance(wanted, Mapping):
        return wanted
    patch = {key: merge_patch(stored.get(key), value) for key, value in wanted.items()}
    patch.update({key: None for key in stored if key not in wanted})
    return patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """What the API server makes of `target` under the merge patch `patch` (RFC 7386): `null` removes a key,
    maps merge key by key, anything else replaces. For fakes of the API server and for checks."""
    if not isinstance(patch, Mapping):
        return patch
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = apply_merge_patch(merged.get(key), value)
    return merged
