"""Fixtures for the desktop tests: private user dirs, tiny synthetic studies, a tiny model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyqtgraph as pg  # noqa: E402

pg.setConfigOptions(imageAxisOrder="row-major")


@pytest.fixture(autouse=True)
def user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings, logs, caches and indexes of each test go to its own temp folder."""
    for name in ("CONFIG", "LOG", "CACHE", "DATA"):
        path = tmp_path / f"user-{name.lower()}"
        monkeypatch.setenv(f"MAMA_{name}_DIR", str(path))
    return tmp_path


@pytest.fixture(scope="session")
def studies_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real synthetic four-view MG studies (mama_core.synthetic), 192 rows high."""
    from mama_core import synthetic

    out = tmp_path_factory.mktemp("studies")
    synthetic.generate_studies(out, 2, seed=7, rows=192)
    return out


@pytest.fixture
def studies_copy(studies_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the studies (tests that damage files)."""
    target = tmp_path / "studies"
    shutil.copytree(studies_dir, target)
    return target


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init model directory: tiny DINOv2 + the real MiniLM text encoder. Its maps are
    meaningless but real: the whole Predictor path runs."""
    import torch

    from mama_core import model

    torch.manual_seed(0)
    cfg = model.ModelConfig(
        vision=model.VisionConfig(hidden_size=32, num_layers=1, num_heads=2, image_size=56, patch_size=14,
                                  registers=False, num_register_tokens=0),
        text=model.TextConfig(path="minilm"),
        embed_dim=16,
    )
    out = tmp_path_factory.mktemp("models") / "tiny"
    model.save_model_dir(model.build_model(cfg), out)
    return out


@pytest.fixture
def window(qtbot):
    from mama_desktop.main_window import MainWindow
    from mama_desktop.settings import DesktopSettings

    win = MainWindow(DesktopSettings())
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    yield win
    win.close()


def wait_views(qtbot, win, n: int = 4, timeout: int = 20000) -> None:
    qtbot.waitUntil(lambda: len(win.state.views) >= n, timeout=timeout)


def open_and_wait(qtbot, win, folder: Path, n_studies: int = 2) -> None:
    win.open_folder(folder)
    qtbot.waitUntil(lambda: win.worklist.proxy.rowCount() == n_studies, timeout=20000)
    wait_views(qtbot, win)
