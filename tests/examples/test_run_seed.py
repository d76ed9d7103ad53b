"""The README's first command: ./run-seed runs both seed lessons locally and they succeed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_run_seed_runs_both_lessons() -> None:
    # The test's own virtual environment already has kdag, so run-seed skips its install step.
    env = {**os.environ, "KDAG_VENV": str(Path(sys.executable).parent.parent)}
    result = subprocess.run(
        [str(REPO / "run-seed")], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("== kdag run --local") == 2
    for run_line in ("run etl-dag-local-", "run xcom-three-ways-local-"):
        line = next(line for line in result.stdout.splitlines() if line.startswith(run_line))
        assert line.endswith(": success"), line
    assert '["' in result.stdout  # goodbye_task's list: the pulled execution_time
