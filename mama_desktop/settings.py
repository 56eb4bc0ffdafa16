"""Settings persisted with QSettings as an ini file in mama_core.paths.user_config_dir()."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from mama_core import paths
from mama_core.errors import ConfigError

from . import engine

DEVICES = ("auto", "cuda", "cpu")


@dataclass
class DesktopSettings:
    model: str = "demo"  # 'demo' | 'active' | a model directory
    device: str = "auto"  # 'auto' | 'cuda' | 'cpu'
    cache_dir: str = ""  # '' = platformdirs default (MAMA_CACHE_DIR)
    last_folder: str = ""
    sync_zoom: bool = True

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, not {self.device!r}", field="device")
        if not self.model:
            raise ConfigError("model must not be empty", field="model")


def settings_path() -> Path:
    return paths.user_config_dir() / "mama-desktop.ini"


def qsettings() -> QSettings:
    return QSettings(str(settings_path()), QSettings.Format.IniFormat)


def load_settings() -> DesktopSettings:
    store = qsettings()
    values = {}
    for f in fields(DesktopSettings):
        raw = store.value(f"general/{f.name}")
        if raw is None:
            continue
        values[f.name] = str(raw).lower() in ("true", "1") if f.type in (bool, "bool") else str(raw)
    try:
        return DesktopSettings(**values)
    except ConfigError:
        return DesktopSettings()  # a hand-edited bad value must not stop the application


def save_settings(settings: DesktopSettings) -> None:
    store = qsettings()
    for name, value in asdict(settings).items():
        store.setValue(f"general/{name}", value)
    store.sync()


def apply_cache_dir(settings: DesktopSettings) -> None:
    """The engine reads MAMA_CACHE_DIR (mama_core.paths); set it before any engine call."""
    if settings.cache_dir:
        os.environ["MAMA_CACHE_DIR"] = settings.cache_dir


def save_geometry(geometry: QByteArray, window_state: QByteArray) -> None:
    store = qsettings()
    store.setValue("window/geometry", geometry)
    store.setValue("window/state", window_state)
    store.sync()


def load_geometry() -> tuple[QByteArray | None, QByteArray | None]:
    store = qsettings()
    return store.value("window/geometry"), store.value("window/state")


def cuda_available() -> bool:
    import torch  # lazily: the settings dialog should not pay for torch at start-up

    return bool(torch.cuda.is_available())


class SettingsDialog(QDialog):
    """Model (demo, active registry model, registry versions, a directory), device, cache."""

    def __init__(self, settings: DesktopSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.model = QComboBox(editable=True)
        self.model.addItem("demo", "demo")
        self.model.addItem("active (registry)", "active")
        for label, model_dir in engine.registry_models():
            self.model.addItem(label, model_dir)
        index = self.model.findData(settings.model)
        if index < 0:
            self.model.addItem(settings.model, settings.model)
            index = self.model.count() - 1
        self.model.setCurrentIndex(index)
        browse = QPushButton("Model directory…")
        browse.clicked.connect(self._browse_model)
        self.device = QComboBox()
        for d in DEVICES:
            self.device.addItem(d)
        if not cuda_available():
            self.device.model().item(DEVICES.index("cuda")).setEnabled(False)
        self.device.setCurrentText(settings.device)
        self.cache = QLineEdit(settings.cache_dir, placeholderText=str(paths.user_cache_dir()))
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(browse)
        form = QFormLayout(self)
        form.addRow("Model", model_row)
        form.addRow("Device", self.device)
        form.addRow("Cache folder", self.cache)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.base = settings

    def _browse_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model directory")
        if folder:
            self.model.addItem(folder, folder)
            self.model.setCurrentIndex(self.model.count() - 1)

    def result_settings(self) -> DesktopSettings:
        data = self.model.currentData()
        text = self.model.currentText()
        model = data if data is not None and self.model.itemText(self.model.currentIndex()) == text else text
        return DesktopSettings(model=str(model), device=self.device.currentText(), cache_dir=self.cache.text().strip(),
                               last_folder=self.base.last_folder, sync_zoom=self.base.sync_zoom)
