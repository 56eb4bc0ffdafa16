"""Where things live: the repository's resources and the user's platformdirs folders."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "mama-workstation"
APP_AUTHOR = "mama"


def resources_dir() -> Path:
    """The `resources/` folder (configs, templates, demo model, icons).

    MAMA_RESOURCES overrides it (used by the standalone bundle)."""
    override = os.environ.get("MAMA_RESOURCES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "resources"


def _user_dir(kind: str, env: str) -> Path:
    override = os.environ.get(env)
    if override:
        path = Path(override)
    else:
        getter = getattr(platformdirs, f"user_{kind}_dir")
        path = Path(getter(APP_NAME, APP_AUTHOR))
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_data_dir() -> Path:
    """Models (registry), search indexes. MAMA_DATA_DIR overrides (tests use a temp dir)."""
    return _user_dir("data", "MAMA_DATA_DIR")


def user_cache_dir() -> Path:
    """Preprocessed image cache, demo studies. MAMA_CACHE_DIR overrides."""
    return _user_dir("cache", "MAMA_CACHE_DIR")


def user_log_dir() -> Path:
    """Log files. MAMA_LOG_DIR overrides."""
    return _user_dir("log", "MAMA_LOG_DIR")


def user_config_dir() -> Path:
    """Settings. MAMA_CONFIG_DIR overrides."""
    return _user_dir("config", "MAMA_CONFIG_DIR")
