"""Fixtures of the chart tests: the pinned helm binary, built from its Go module on first use."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kdag"


@pytest.fixture(scope="session")
def helm() -> Path:
    """Path of the cached helm binary (tests/helm/build-helm builds it once, a few minutes)."""
    built = subprocess.run(
        [str(REPO / "tests" / "helm" / "build-helm")], check=True, capture_output=True, text=True
    )
    return Path(built.stdout.strip().splitlines()[-1])
