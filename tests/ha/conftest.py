"""The failover tests use the chart's cluster helpers and the pinned helm of tests/helm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "helm"))


@pytest.fixture(scope="session")
def helm() -> Path:
    built = subprocess.run(
        [str(REPO / "tests" / "helm" / "build-helm")], check=True, capture_output=True, text=True
    )
    return Path(built.stdout.strip().splitlines()[-1])
