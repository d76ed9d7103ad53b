"""The task state store (tests/local/test_local_state_store.py, and on the cluster
tests/e2e/test_task_state_store_on_cluster.py): the first try of run_job stores a job id and dies (no XCom
write, no report) and its retry reattaches to that job; each instance of the mapped part keeps its own
state; the async pages resumes from its checkpoint; tidy clears its state.

With `SUBMITTED_DIR` set (the local test), run_job marks each job it submits with a file there."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task
from airflow.sdk.execution_time.context import NEVER_EXPIRE

SUBMITTED = os.environ.get("SUBMITTED_DIR")

with DAG("task_state_store", schedule=None, start_date=datetime(2026, 1, 1)):

    @task(retries=2, retry_delay=timedelta(seconds=1))
    def run_job(task_state_store=None, ti=None):
        job_id = task_state_store.get("job_id")
        if job_id is None:
            job_id = f"job-of-try-{ti.try_number}"
            if SUBMITTED:
                (Path(SUBMITTED) / job_id).touch()  # the external system: one file per job submitted
            task_state_store.set("job_id", job_id, retention=NEVER_EXPIRE)
            print(f"worker lost after submitting {job_id}", flush=True)
            os._exit(1)  # dies: no XCom write, no report; only what set() stored at once survives
        return {"job_id": job_id, "reattached_on_try": ti.try_number}

    @task
    def after(job):
        return job["job_id"]

    @task(retries=1, retry_delay=timedelta(seconds=1))
    def part(n, task_state_store=None, ti=None):
        tries = task_state_store.get("tries", [])
        task_state_store.set("tries", [*tries, ti.try_number])
        if n == 1 and ti.try_number == 1:
            raise RuntimeError("instance 1 fails its first try")
        return {"n": n, "tries": [*tries, ti.try_number]}

    @task(retries=1, retry_delay=timedelta(seconds=1))
    async def pages(task_state_store=None, ti=None):
        progress = task_state_store.get("progress", {"done": [], "fetched_on": []})
        for page in range(len(progress["done"]), 4):
            await asyncio.sleep(0)
            progress["done"].append(page)
            progress["fetched_on"].append(ti.try_number)
            task_state_store.set("progress", progress)
            if page == 1 and ti.try_number == 1:
                raise RuntimeError("worker lost after page 1")
        return progress

    @task
    def tidy(task_state_store=None):
        task_state_store.set("scratch", 1)
        task_state_store.clear()
        return task_state_store.get("scratch", "cleared")

    job = run_job()
    after(job)
    job >> part.expand(n=[0, 1, 2]) >> pages() >> tidy()
