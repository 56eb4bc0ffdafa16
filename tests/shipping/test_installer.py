"""The Linux installer end to end in a clean HOME (about 2.5 min here; MAMA_TEST_INSTALLER=0 skips).

pip keeps using this machine's local package sources (pip.conf / PIP_* and the real pip
cache), so nothing but the usual package sources is reached."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import INSTALLER, clean_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("MAMA_TEST_INSTALLER") == "0", reason="MAMA_TEST_INSTALLER=0"),
    pytest.mark.skipif(shutil.which("python3.11") is None, reason="the installer needs python3.11 on PATH"),
]


def real_pip_cache() -> str:
    out = subprocess.run(["python", "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    return out.stdout.strip() or str(Path.home() / ".cache/pip")


def run(cmd: list[str], env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def check_desktop_entry(path: Path, home: Path) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive in the Desktop Entry spec
    parser.read(path)
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Name"] and entry["Categories"].endswith(";")
    exe = entry["Exec"].split()[0]
    assert exe == str(home / ".local/bin/mama-desktop") and os.access(exe, os.X_OK)
    assert Path(entry["Icon"]).is_file()
    if shutil.which("desktop-file-validate"):
        r = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_install_run_and_uninstall_in_a_clean_home(home):
    env = clean_env(home, PIP_CACHE_DIR=real_pip_cache(), QT_QPA_PLATFORM="offscreen")
    r = run(["bash", str(INSTALLER / "install-linux.sh")], env, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    prefix = home / ".local/share/mama-workstation/app"
    bin_dir = home / ".local/bin"
    for name in ("mama", "mama-desktop"):
        out = run([str(bin_dir / name), "--help"], env)
        assert out.returncode == 0 and "usage" in out.stdout.lower(), out.stderr[-2000:]
    assert (prefix / "resources/configs/demo.yaml").is_file() and (prefix / "uninstall.sh").is_file()
    desktop = home / ".local/share/applications/mama-workstation.desktop"
    check_desktop_entry(desktop, home)
    png = home / ".local/share/icons/hicolor/256x256/apps/mama-desktop.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the installed engine finds the installed resources (MAMA_RESOURCES from the launcher)
    caption = run([str(bin_dir / "mama"), "studies", str(home), "--json"], env)
    assert caption.returncode == 0, caption.stderr[-2000:]
    (home / ".cache/mama-workstation").mkdir(parents=True, exist_ok=True)
    r = run(["bash", str(prefix / "uninstall.sh"), "--purge"], env)
    assert r.returncode == 0, r.stderr
    leftovers = [p for p in (prefix, desktop, png, bin_dir / "mama", bin_dir / "mama-desktop",
                             home / ".cache/mama-workstation", home / ".local/share/mama-workstation") if p.exists()]
    assert leftovers == []
