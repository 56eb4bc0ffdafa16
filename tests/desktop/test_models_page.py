"""The Models page over a private registry: listing, the active marker and key metric,
delete refused for the active version, rollback, delete, export with the licence reminder,
and switching the active model reloading the window's predictor."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from mama_core.registry import Registry
from mama_desktop import engine
from mama_desktop.models_page import ACTIVE_MARK, ModelsPage
from mama_desktop.workers import TaskRunner

REPORT = {"task": "density", "new": {"balanced_accuracy": 0.5}, "baseline": {"balanced_accuracy": 0.25}}


@pytest.fixture
def two_versions(tiny_model_dir: Path) -> tuple[str, str]:
    """Versions a (plain) and b (with a fine-tuning report); a then b activated."""
    registry = Registry()
    a = registry.add(tiny_model_dir, "a", "trained").id
    b = registry.add(tiny_model_dir, "b", "finetuned", parent=a, report=REPORT).id
    registry.activate(a)
    registry.activate(b)
    return a, b


@pytest.fixture
def page(qtbot, two_versions):
    runner = TaskRunner()
    p = ModelsPage(runner)
    qtbot.addWidget(p)
    p.show()
    yield p
    runner.shutdown()


@pytest.fixture
def boxes(monkeypatch) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {"warning": [], "question": [], "information": []}
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: seen["warning"].append(a[2]))
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: seen["information"].append(a[2]))
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: seen["question"].append(a[2]) or QMessageBox.StandardButton.Yes)
    return seen


def _cells(page: ModelsPage) -> list[list[str]]:
    t = page.table
    return [[t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())]


def test_lists_versions_with_active_marker_parent_and_key_metric(page, two_versions) -> None:
    a, b = two_versions
    rows = _cells(page)
    assert [r[1] for r in rows] == [a, b]
    assert [r[0] for r in rows] == ["", ACTIVE_MARK]
    assert rows[1][3] == "finetuned" and rows[1][5] == a and rows[0][5] == "-"
    assert rows[1][6] == "density bACC 0.500 (was 0.250)" and rows[0][6] == "-"
    assert page.selected_id() == b, "the active version is selected at first"
    assert not page.buttons["Activate"].isEnabled()


def test_delete_of_the_active_version_is_refused(page, two_versions, boxes) -> None:
    a, b = two_versions
    page.select(b)
    page.buttons["Delete"].click()
    assert boxes["warning"] and "active model" in boxes["warning"][0] and not boxes["question"]
    assert [v.id for v in Registry().list()] == [a, b]
    with pytest.raises(Exception, match="active model"):
        engine.delete_version(b)  # the registry refuses it too


def test_rollback_then_delete(qtbot, page, two_versions, boxes) -> None:
    a, b = two_versions
    with qtbot.waitSignal(page.activeChanged, timeout=10000) as switched:
        page.buttons["Roll back"].click()
    assert switched.args == [a] and Registry().active_id() == a
    qtbot.waitUntil(lambda: _cells(page)[0][0] == ACTIVE_MARK, timeout=5000)
    page.select(b)
    with qtbot.waitSignal(page.changed, timeout=10000):
        page.buttons["Delete"].click()
    assert boxes["question"] and b in boxes["question"][0]
    assert [v.id for v in Registry().list()] == [a] and [r[1] for r in _cells(page)] == [a]


def test_export_writes_a_zip_and_shows_the_licence(qtbot, page, two_versions, boxes, monkeypatch, tmp_path) -> None:
    _a, b = two_versions
    target = tmp_path / "export.zip"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "Zip archives (*.zip)"))
    page.select(b)
    with qtbot.waitSignal(page.changed, timeout=10000):
        page.buttons["Export…"].click()
    assert f"{b}/DATA-LICENCE-NOTE.txt" in zipfile.ZipFile(target).namelist()
    assert boxes["information"] and "licence" in boxes["information"][0]


def test_activating_reloads_the_windows_predictor(qtbot, window, two_versions) -> None:
    a, _b = two_versions
    page = window.show_models()
    page.select(a)
    with qtbot.waitSignal(page.activeChanged, timeout=10000):
        page.buttons["Activate"].click()
    assert Registry().active_id() == a and window.settings.model == "active"
    qtbot.waitUntil(lambda: getattr(window.state.predictor, "name", None) == a, timeout=60000)
    assert window.worklist.model_label.text() == f"Predictions: model {a}"
