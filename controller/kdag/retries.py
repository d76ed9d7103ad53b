"""When a failed task's next attempt is due, pure: Airflow's retries, the delay doubling up to a cap."""

from __future__ import annotations

from datetime import datetime, timedelta

from kdag.api.models import DEFAULT_MAX_RETRY_DELAY_SECONDS, DEFAULT_RETRY_DELAY_SECONDS, TaskSpec


def retry_delay_seconds(task: TaskSpec, failed_attempt: int) -> float:
    """Wait after failed attempt `failed_attempt` (1-based): delay * 2**(attempt-1), capped."""
    delay = task.retry_delay_seconds if task.retry_delay_seconds is not None else DEFAULT_RETRY_DELAY_SECONDS
    cap = task.max_retry_delay_seconds
    cap = cap if cap is not None else DEFAULT_MAX_RETRY_DELAY_SECONDS
    exponent = max(failed_attempt - 1, 0)
    # Cap the exponent first: 2**large would be a needlessly huge int before min() cuts it.
    return float(min(delay * 2 ** min(exponent, 62), cap))


def next_attempt_at(
    task: TaskSpec, attempts: int, failed_at: datetime, *, reschedules: int = 0
) -> datetime | None:
    """When the attempt after failed attempt number `attempts` is due; None when no retries are left.

    `reschedules` of those attempts ended up for reschedule (a sensor's pokes): they are no tries, so the
    failure is try `attempts - reschedules` (Airflow's try_number) for the retry count and its delay.
    """
    tries = attempts - reschedules
    if tries > (task.retries or 0):
        return None
    return failed_at + timedelta(seconds=retry_delay_seconds(task, tries))
