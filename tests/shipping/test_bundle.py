"""The PyInstaller bundle starts and renders a screenshot (opt-in: MAMA_TEST_BUNDLE=1).

Building takes minutes: MAMA_BUNDLE_DIR=dist/mama-desktop uses a bundle already built by
installer/build-bundle.sh; otherwise the test builds one into a temporary folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import INSTALLER

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("MAMA_TEST_BUNDLE") != "1",
                       reason="builds a PyInstaller bundle (minutes): set MAMA_TEST_BUNDLE=1"),
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    if os.environ.get("MAMA_BUNDLE_DIR"):
        return Path(os.environ["MAMA_BUNDLE_DIR"])
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(["bash", str(INSTALLER / "build-bundle.sh"), "--dist", str(dist)], check=True, timeout=3600)
    return dist / "mama-desktop"


def bundle_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAMA_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(QT_QPA_PLATFORM="offscreen", **{f"MAMA_{k}_DIR": str(tmp / k.lower())
                                                 for k in ("DATA", "CACHE", "CONFIG", "LOG")})
    return env


def test_bundle_is_the_cli_and_renders_a_screenshot(bundle, tmp_path):
    env, exe = bundle_env(tmp_path), str(bundle / "mama-desktop")
    studies = tmp_path / "studies"
    r = subprocess.run([exe, "--cli", "demo-data", str(studies), "--studies", "1", "--rows", "512"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # the form the desktop uses to start its fine-tuning child process
    r = subprocess.run([exe, "-m", "mama_core.cli", "studies", str(studies)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "RCC LCC RMLO LMLO" in r.stdout, r.stderr[-3000:]
    shot = tmp_path / "shot.png"
    r = subprocess.run([exe, str(studies), "--screenshot", str(shot), "--timeout", "120"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a rendered window, not an empty image
    log = (tmp_path / "log" / "mama-desktop.log").read_text()
    assert "screenshot saved" in log and "not everything was ready" not in log  # it settled, no timeout
