"""Shared test set-up: every test gets private user dirs, no network downloads, Qt offscreen."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _private_user_dirs(tmp_path_factory, monkeypatch):
    """Keep tests out of the real platformdirs folders (models, caches, settings, logs)."""
    base = tmp_path_factory.mktemp("userdirs")
    for kind in ("DATA", "CACHE", "LOG", "CONFIG"):
        monkeypatch.setenv(f"MAMA_{kind}_DIR", str(base / kind.lower()))
