"""The images install their Python dependencies with `pip --require-hashes` from the lock files: every
dependency the packages declare must be pinned there, each with at least one sha256, or the image build fails
(or, worse, a dependency would be installed unpinned)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def locked(path: Path) -> dict[str, list[str]]:
    """Package name (normalised) -> its hashes, from a pip-compile lock file."""
    text = path.read_text().replace("\\\n", " ")
    pins: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)\s*(.*)", line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        pins[normalise(match[1])] = re.findall(r"--hash=sha256:([0-9a-f]{64})", match[3])
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject: Path) -> list[str]:
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [normalise(re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0]) for dep in dependencies]


def test_every_controller_dependency_is_pinned_with_hashes() -> None:
    pins = locked(REPO / "controller" / "requirements.lock")
    missing = [d for d in declared(REPO / "pyproject.toml") if d != "kdag-runner" and d not in pins]
    assert not missing, f"controller/requirements.lock lacks {missing}"
    assert all(pins.values()), [name for name, hashes in pins.items() if not hashes]
    assert "setuptools" in pins  # the build backend of this tree's packages (--no-build-isolation)


def test_the_runner_image_pins_what_dag_files_import() -> None:
    pins = locked(REPO / "runner-image" / "requirements.lock")
    assert {"jinja2", "pendulum", "setuptools"} <= set(pins)
    assert declared(REPO / "runner-image" / "pyproject.toml") == []  # the runner itself: stdlib only
    assert all(pins.values()), [name for name, hashes in pins.items() if not hashes]


def test_the_dockerfiles_install_from_the_locks_with_hashes() -> None:
    for dockerfile, lock in (
        ("Dockerfile", "controller/requirements.lock"),
        ("runner-image/Dockerfile", "requirements.lock"),
    ):
        text = (REPO / dockerfile).read_text()
        assert "--require-hashes" in text and lock in text, dockerfile
        assert "--no-deps" in text, dockerfile
