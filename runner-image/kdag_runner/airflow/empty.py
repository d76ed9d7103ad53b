"""``EmptyOperator`` (``DummyOperator``): a task that does nothing, for joins and placeholders."""

from __future__ import annotations

from typing import Any

from kdag_runner.airflow.operators import BaseOperator


class EmptyOperator(BaseOperator):
    """A task that does nothing (Airflow's EmptyOperator, formerly DummyOperator)."""

    def execute(self, context: dict[str, Any]) -> Any:
        return None


DummyOperator = EmptyOperator
