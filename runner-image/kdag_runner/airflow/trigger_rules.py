"""``TriggerRule``: when a task runs, given how its upstream tasks ended."""

from __future__ import annotations

import enum


class TriggerRule(enum.StrEnum):
    """Airflow 3's trigger rules, all of which kdag runs (`kdag.trigger_rules.evaluate_trigger_rule`).

    `dummy` is Airflow 2's old name of `always`; a DAG file that uses it gets `always`.
    """

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALL_SKIPPED = "all_skipped"
    ALWAYS = "always"
    DUMMY = "dummy"
