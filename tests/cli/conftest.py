"""CLI tests on the real cluster share the session's host-run controller (tests/controller_support.py)."""

from __future__ import annotations

from controller_support import controller

__all__ = ["controller"]
