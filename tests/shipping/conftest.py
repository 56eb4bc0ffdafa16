"""Helpers for the shipping tests: a clean environment for running the installer scripts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "installer"


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's environment with HOME=home: no XDG_* and no MAMA_* overrides (the scripts
    must find their folders from HOME alone), pip still pointed at the same local sources."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "MAMA_", "VIRTUAL_ENV"))}
    env["HOME"] = str(home)
    env.update(extra)
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h
