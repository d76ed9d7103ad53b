"""Merge patches that remove what is gone (kdag.patches)."""

from __future__ import annotations

from kdag.patches import apply_merge_patch, merge_patch


def test_a_key_gone_from_a_map_is_set_to_null() -> None:
    stored = {"length": 10, "phases": {"Running": 3, "Succeeded": 7}}
    wanted = {"length": 10, "phases": {"Succeeded": 10}}
    assert merge_patch(stored, wanted) == {"length": 10, "phases": {"Succeeded": 10, "Running": None}}


def test_lists_and_scalars_are_replaced_and_new_fields_pass_through() -> None:
    assert merge_patch([1, 2], [3]) == [3]
    assert merge_patch(None, {"a": {"b": 1}}) == {"a": {"b": 1}}
    assert merge_patch({"a": 1}, "x") == "x"
    assert merge_patch({"t": {"a": 1}}, {"t": {"a": 1}, "u": {"b": 2}}) == {"t": {"a": 1}, "u": {"b": 2}}


def test_applying_the_patch_gives_the_wanted_value() -> None:
    stored = {"phase": "Running", "mapped": {"t": {"length": 2, "phases": {"Running": 1, "Succeeded": 1}}}}
    wanted = {"phase": "Running", "mapped": {"t": {"length": 2, "phases": {"Succeeded": 2}}}}
    patch = {k: merge_patch(stored.get(k), v) for k, v in wanted.items()}
    assert apply_merge_patch(stored, patch) == wanted
    assert apply_merge_patch({"a": 1, "b": 2}, {"a": None}) == {"b": 2}
