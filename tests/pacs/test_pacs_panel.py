"""The desktop PACS source against the real Orthanc: search, retrieve with priors, cancel,
send results with a preview, and a clear notice when the server refuses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pydicom
import pytest

from mama_core.inference.types import StudyPrediction, ViewPrediction
from mama_core.pacs import add_node
from mama_core.reports import ModelIdentity, ReportFiles, build_sr, describe_files
from mama_desktop.pacs_panel import PacsPanel
from mama_desktop.workers import TaskRunner


@pytest.fixture
def panel(qtbot, orthanc, web_node, dimse_node):
    add_node(web_node)
    add_node(dimse_node)
    runner = TaskRunner()
    notices = []
    widget = PacsPanel(runner, notify=lambda level, msg, details: notices.append((level, msg)))
    widget.notices = notices
    qtbot.addWidget(widget)
    yield widget
    runner.shutdown(10000)


def _search(qtbot, panel, **fields):
    for name, value in fields.items():
        getattr(panel, name).setText(value)
    with qtbot.waitSignal(panel.searchDone, timeout=20000) as blocker:
        panel.search_button.click()
    return blocker.args[0]


def test_search_fills_the_table_and_retrieve_lands_study_and_prior(qtbot, panel, orthanc):
    panel.server.setCurrentText("web")
    studies = _search(qtbot, panel, patient=orthanc.studies["patient_id"])
    assert panel.table.rowCount() == len(studies) == 2
    row = next(i for i, s in enumerate(studies) if s.study_uid == orthanc.studies["current"])
    panel.table.selectRow(row)
    panel.priors.setChecked(True)
    with qtbot.waitSignal(panel.studyRetrieved, timeout=30000) as blocker:
        panel.retrieve_button.click()
    result = blocker.args[0]
    assert len(list(result.folder.glob("*.dcm"))) == 4
    assert [s.study_uid for s, _ in result.priors] == [orthanc.studies["prior"]]
    qtbot.waitUntil(lambda: panel.retrieve_button.isEnabled() and not panel.progress.isVisible())


def test_cancel_stops_between_files_and_keeps_what_was_fetched(qtbot, panel, orthanc):
    panel.server.setCurrentText("dimse")
    _search(qtbot, panel, patient="", accession="")
    row = next(i for i, s in enumerate(panel.studies) if s.study_uid == orthanc.studies["other"])
    panel.table.selectRow(row)
    panel.priors.setChecked(False)
    panel.retrieve_button.click()
    panel.cancel_button.click()  # the stop flag is set before the first file is asked for
    qtbot.waitUntil(lambda: panel.retrieve_button.isEnabled(), timeout=30000)
    assert "cancelled" in panel.status.text()


def _results(orthanc, tmp_path):
    uid = orthanc.studies["other"]
    sources = {p.stem: pydicom.dcmread(p) for p in orthanc.studies["folders"][uid].glob("*.dcm")}
    vp = lambda k: ViewPrediction(k, np.full(7, 1 / 7), np.full(4, 0.25))  # noqa: E731 - fixed test input
    pred = StudyPrediction(uid, np.full(7, 1 / 7), np.full(4, 0.25), {k: vp(k) for k in sources},
                           {s: vp(s) for s in "LR"}, "zero-shot", "test-model")
    sr = build_sr(pred, sources, ModelIdentity("test-model", "v1", "0123456789abcdef", "zero-shot"))
    sr.save_as(tmp_path / "sr.dcm")
    return ReportFiles(uid, tmp_path / "sr.dcm"), sr


def test_send_shows_a_preview_then_stores(qtbot, panel, orthanc, tmp_path):
    panel.server.setCurrentText("web")
    files, sr = _results(orthanc, tmp_path)
    panel._show_preview(panel.node(), files.files, describe_files(files.files))
    assert "Structured Report (TID 1500)" in panel.preview.text.toPlainText()
    assert "view LCC" in panel.preview.text.toPlainText()
    with qtbot.waitSignal(panel.sendDone, timeout=20000) as blocker:
        panel.preview.send_button.click()
    assert blocker.args[0]["stored"] == [sr.SOPInstanceUID]


def test_a_refusing_server_gives_a_clear_notice(qtbot, panel, orthanc, dimse_node, tmp_path):
    add_node(dataclasses.replace(dimse_node, name="wrong-ae", aet="NOTHERE"))
    panel.reload_nodes()
    panel.server.setCurrentText("wrong-ae")
    files, _ = _results(orthanc, tmp_path)
    panel._show_preview(panel.node(), files.files, describe_files(files.files))
    with qtbot.waitSignal(panel.sendDone, timeout=20000) as blocker:
        panel.preview.send_button.click()
    assert isinstance(blocker.args[0], Exception)
    assert "did not accept" in panel.status.text() and "association rejected" in panel.status.text()
    assert panel.notices and panel.notices[-1][0] == "error"


@pytest.mark.slow
def test_send_results_runs_mama_report_in_a_child_then_previews(qtbot, panel, orthanc, tmp_path_factory):
    """The whole path: the current study's results are written by a `mama report` child (a
    real tiny model), previewed, and stored."""
    import types

    import torch

    from mama_core.dicom import find_studies
    from tests.inference.conftest import build_tiny_model_dir

    model_dir = build_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")
    folder = orthanc.studies["folders"][orthanc.studies["other"]]
    study = find_studies(folder)[0]
    state = types.SimpleNamespace(folder=folder, study=study, sentences=["a mass"],
                                  predictor=types.SimpleNamespace(model_dir=model_dir, device=torch.device("cpu")))
    panel.state = state
    panel.server.setCurrentText("web")
    panel.send_button.click()
    qtbot.waitUntil(lambda: panel.preview is not None and panel.preview.isVisible(), timeout=120000)
    text = panel.preview.text.toPlainText()
    assert "Structured Report (TID 1500)" in text and text.count("Segmentation on image") == 4
    assert text.count("Parametric Map (cosine) on image") == 4  # one sentence, four views
    with qtbot.waitSignal(panel.sendDone, timeout=20000) as blocker:
        panel.preview.send_button.click()
    assert len(blocker.args[0]["stored"]) == 1 + 4 + 4


def test_main_window_hook_opens_the_retrieved_folder(qtbot, tmp_path):
    import types

    from mama_desktop.main_window import MainWindow
    from mama_desktop.settings import DesktopSettings

    window = MainWindow(DesktopSettings())
    qtbot.addWidget(window)
    opened = []
    window.open_folder = opened.append
    panel = window.show_pacs()
    assert window.show_pacs() is panel and window.docks["PACS"].widget() is panel
    panel.studyRetrieved.emit(types.SimpleNamespace(folder=tmp_path))
    assert opened == [tmp_path]
    window.shutdown()
