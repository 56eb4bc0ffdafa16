"""installer/uninstall-linux.sh on a hand-made prefix (fast: no packages are installed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import INSTALLER, clean_env


def fake_install(home: Path) -> Path:
    """What install-linux.sh leaves behind, with the venv's python pointing at ours (which has
    platformdirs), plus some user data in the default platformdirs folders."""
    prefix = home / ".local/share/mama-workstation/app"
    (prefix / "venv/bin").mkdir(parents=True)
    python = prefix / "venv/bin/python"  # a wrapper, not a symlink: a symlink would lose our venv
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (prefix / "resources").mkdir()
    outside = [home / ".local/bin/mama-desktop", home / ".local/bin/mama",
               home / ".local/share/applications/mama-workstation.desktop"]
    for f in outside:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    (prefix / "installed-files.txt").write_text("".join(f"{f}\n" for f in outside))
    (prefix / "uninstall.sh").write_bytes((INSTALLER / "uninstall-linux.sh").read_bytes())
    (prefix / "uninstall.sh").chmod(0o755)
    (home / ".local/share/mama-workstation/models/v1").mkdir(parents=True)
    (home / ".cache/mama-workstation").mkdir(parents=True)
    (home / ".cache/mama-workstation/features.bin").write_text("cache")
    return prefix


def uninstall(home: Path, prefix: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(prefix / "uninstall.sh"), *args], env=clean_env(home),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def test_uninstall_without_a_terminal_keeps_user_data(home):
    prefix = fake_install(home)
    r = uninstall(home, prefix)
    assert r.returncode == 0, r.stderr
    assert not prefix.exists()
    assert not (home / ".local/bin/mama-desktop").exists() and not (home / ".local/bin/mama").exists()
    assert not (home / ".local/share/applications/mama-workstation.desktop").exists()
    assert (home / ".local/share/mama-workstation/models/v1").is_dir()
    assert (home / ".cache/mama-workstation/features.bin").is_file()
    assert "keeping user data" in r.stderr


def test_uninstall_purge_removes_user_data(home):
    prefix = fake_install(home)
    r = uninstall(home, prefix, "--purge")
    assert r.returncode == 0, r.stderr
    assert not (home / ".local/share/mama-workstation").exists()
    assert not (home / ".cache/mama-workstation").exists()
    assert not (home / ".local/bin/mama").exists()


def test_uninstall_refuses_a_folder_that_is_not_an_install(home, tmp_path):
    precious = tmp_path / "precious"
    (precious / "venv").mkdir(parents=True)
    r = subprocess.run(["bash", str(INSTALLER / "uninstall-linux.sh"), "--prefix", str(precious), "--purge"],
                       env=clean_env(home), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "not a MaMA Workstation install" in r.stderr
    assert precious.is_dir()
