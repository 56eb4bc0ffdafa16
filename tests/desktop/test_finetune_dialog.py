"""The fine-tune dialog: the real `mama finetune` CLI in a QProcess on a tiny model and tiny
synthetic studies; progress, cancel (a real kill, nothing registered), a full run, the
comparison report and Activate; plus the reader labels the worklist feeds it."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from mama_core.finetune.config import FinetuneConfig
from mama_core.registry import Registry
from mama_desktop import engine
from mama_desktop.finetune_dialog import FinetuneDialog
from mama_desktop.finetune_job import ESTIMATING, JsonLines
from mama_desktop.state import AppState
from mama_desktop.workers import TaskRunner
from mama_desktop.worklist import read_labels_csv, reader_labels_path

PROCESS_TIMEOUT_MS = 90_000


@pytest.fixture(scope="session")
def ft_studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The desktop's demo folder (`Open demo studies`: 8 studies, seed 2024) at 256 rows instead
    of 2048: the same labels (checked), so the same held-out split — every held-out patient has
    density 1, the single-class case the comparison must refuse to judge."""
    from mama_core import synthetic

    out = tmp_path_factory.mktemp("ft-studies") / "embed"
    synthetic.generate_studies(out, 8, seed=2024, rows=256)
    return out


@pytest.fixture
def tiny_active(tiny_model_dir: Path) -> str:
    """The tiny random-init model registered and active in this test's private registry."""
    registry = Registry()
    version = registry.add(tiny_model_dir, "tiny", "trained")
    registry.activate(version.id)
    return version.id


@pytest.fixture
def dialog(qtbot):
    runner = TaskRunner()
    dlg = FinetuneDialog(AppState(), runner, device="cpu")
    qtbot.addWidget(dlg)
    yield dlg
    dlg.shutdown()
    runner.shutdown()


# ----- pieces ----------------------------------------------------------------------------------
def test_old_worklist_label_files_are_swept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MAMA_CACHE_DIR", str(tmp_path))
    folder = engine.labels_scratch_dir()
    old, fresh = folder / "worklist-labels-1.csv", folder / "worklist-labels-2.csv"
    for path in (old, fresh):
        path.write_text("study,density\n")
    week_ago = os.path.getmtime(fresh) - engine.LABELS_KEEP_S - 60
    os.utime(old, (week_ago, week_ago))
    assert engine.labels_scratch_dir() == folder
    assert fresh.exists() and not old.exists()


def test_defaults_and_mode_explanations(dialog, ft_studies: Path, qtbot) -> None:
    form, config = dialog.form, FinetuneConfig()
    assert form.task.currentData() == config.task and form.mode.currentData() == config.mode
    assert "frozen" in form.mode_help.text()
    assert form.steps.specialValueText() == f"mode default ({config.total_steps(0)})"
    form.mode.setCurrentIndex(form.mode.findData("full"))
    assert "every encoder weight" in form.mode_help.text()
    assert form.steps.specialValueText() == f"mode default ({FinetuneConfig(mode='full').total_steps(0)})"
    form.set_cases(ft_studies)
    qtbot.waitUntil(lambda: form.n_images == 32, timeout=10000)  # 8 studies x 4 views
    assert "32 images" in form.estimate.text() and "measured" in form.estimate.text()


def test_worklist_labels_go_to_a_simple_labels_csv(dialog, ft_studies: Path) -> None:
    dialog.form.set_cases(ft_studies)
    dialog.form.label_source.setCurrentIndex(dialog.form.label_source.findData("worklist"))
    with pytest.raises(Exception, match="no study has your density label"):
        dialog.form.request()
    dialog.form.state.set_reader_label("1.2.3", "density", 3)
    dialog.form.state.set_reader_label("1.2.4", "birads", 4)
    assert "1 study carry" in dialog.form.label_info.text()
    request = dialog.form.request()
    rows = list(csv.DictReader(open(request.labels, newline="")))
    assert rows == [{"study_id": "1.2.3", "birads": "", "density": "3"}], "only studies with the task's label"
    assert request.data == str(ft_studies) and "--labels" in request.cli_args()
    dialog.form.task.setCurrentIndex(dialog.form.task.findData("cancer"))
    with pytest.raises(Exception, match="cancer"):
        dialog.form.request()


def test_label_tables_are_routed_by_kind(dialog, ft_studies: Path, tmp_path: Path) -> None:
    dialog.form.set_cases(ft_studies)
    dialog.form.label_source.setCurrentIndex(dialog.form.label_source.findData("table"))
    simple = tmp_path / "labels.csv"
    simple.write_text("study_id,view,birads,density,cancer\n1.2,LCC,1,2,0\n")
    dialog.form.table.setText(str(simple))
    assert (dialog.form.request().data, dialog.form.request().labels) == (str(ft_studies), str(simple))
    dialog.form.table.setText(str(ft_studies / "metadata.csv"))
    assert (dialog.form.request().data, dialog.form.request().labels) == (str(ft_studies), None)
    rsna = tmp_path / "train.csv"
    rsna.write_text("site_id,patient_id,image_id,laterality,view,cancer\n1,2,3,L,CC,0\n")
    dialog.form.table.setText(str(rsna))
    assert (dialog.form.request().data, dialog.form.request().labels) == (str(rsna), None)


def test_reader_labels_edit_persist_and_reload(qtbot, window, studies_dir: Path) -> None:
    from .conftest import open_and_wait

    open_and_wait(qtbot, window, studies_dir)
    model, study = window.worklist.model, window.state.studies[0]
    row = window.state.studies.index(study)
    assert model.setData(model.index(row, 8), "c") and model.setData(model.index(row, 9), "4")
    assert not model.setData(model.index(row, 9), "9"), "BI-RADS is 0-6"
    assert (model.cell(study, 8), model.cell(study, 9)) == ("C", "4")
    assert read_labels_csv(reader_labels_path()) == {study.uid: {"density": 3, "birads": 4}}
    header = window.worklist.table.horizontalHeader()
    assert header.visualIndex(8) < header.visualIndex(7), "reader columns sit before the Study UID"
    fresh = AppState()
    from mama_desktop.worklist import WorklistPanel

    panel = WorklistPanel(fresh)
    qtbot.addWidget(panel)
    assert fresh.reader_labels == {study.uid: {"density": 3, "birads": 4}}


# ----- a captured run, replayed through the process's own dispatch (no child) ----------------
CAPTURED = Path(__file__).parents[1] / "desktop_logic" / "data" / "finetune-linear-probe.jsonl"


def _started_without_child(dialog: FinetuneDialog, cases: Path, monkeypatch) -> None:
    monkeypatch.setattr(dialog.proc, "start_command", lambda program, args: None)
    dialog.form.set_cases(cases)
    dialog.start()
    assert dialog.job.running and not dialog.form.isEnabled() and dialog.cancel_button.isEnabled()
    assert dialog.phase_label.text() == "Starting the fine-tuning process…"


def test_replayed_run_fills_progress_curve_and_comparison(dialog, tmp_path: Path, monkeypatch) -> None:
    _started_without_child(dialog, tmp_path, monkeypatch)
    ended: list[str] = []
    dialog.runEnded.connect(ended.append)
    dialog.proc._dispatch(JsonLines().feed(CAPTURED.read_bytes()))
    assert dialog.curve.points.loss_x == [float(s) for s in range(1, 21)]
    assert list(dialog.curve.bacc.getData()[1]) == dialog.curve.points.bacc_y
    dialog.proc.ended.emit(0, False)
    assert ended == ["done"] and dialog.phase_label.text().startswith("Finished — new version v0002")
    assert dialog.tabs.isTabEnabled(1) and dialog.tabs.currentIndex() == 1
    assert dialog.comparison.metrics.item(0, 0).text() == "Balanced accuracy"
    assert not dialog.activate_button.isEnabled() and not dialog.activate_anyway.isHidden()
    assert dialog.start_button.isEnabled() and dialog.form.isEnabled() and not dialog.cancel_button.isEnabled()


def test_a_failed_run_says_so_and_allows_a_new_start(dialog, tmp_path: Path, monkeypatch) -> None:
    _started_without_child(dialog, tmp_path, monkeypatch)
    ended: list[str] = []
    dialog.runEnded.connect(ended.append)
    dialog.proc._dispatch(JsonLines().feed(b'{"phase": "features", "step": 0, "total_steps": 32}\n'
                                           b"mama finetune: error: no labelled images\n"))
    assert dialog.eta_label.text() == ESTIMATING
    dialog.proc.ended.emit(2, False)
    assert ended == ["failed"] and dialog.phase_label.text().startswith("Failed (exit code 2)")
    assert "no labelled images" in dialog.log_view.toPlainText() and not dialog.tabs.isTabEnabled(1)
    assert dialog.start_button.isEnabled() and dialog.progress.value() == 0


def test_cancel_asks_once_and_is_refused_while_registering(dialog, tmp_path: Path, monkeypatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    _started_without_child(dialog, tmp_path, monkeypatch)
    terminated: list[bool] = []
    monkeypatch.setattr(dialog.proc, "cancel", lambda: terminated.append(True))
    dialog.proc._dispatch(JsonLines().feed(b'{"phase": "train", "step": 3, "total_steps": 10, "elapsed_s": 1}\n'))
    dialog.cancel_button.click()
    assert terminated == [True] and len(asked) == 1 and dialog.phase_label.text() == "Cancelling…"
    assert not dialog.cancel_button.isEnabled() and not dialog.request_cancel() and len(asked) == 1
    ended: list[str] = []
    dialog.runEnded.connect(ended.append)
    dialog.proc.ended.emit(-1, True)
    assert ended == ["cancelled"] and "nothing was registered" in dialog.phase_label.text()
    _started_without_child(dialog, tmp_path, monkeypatch)
    dialog.proc._dispatch(JsonLines().feed(b'{"phase": "save", "message": "registering the new model version"}\n'))
    assert not dialog.cancel_button.isEnabled() and not dialog.request_cancel()
    assert "too late to cancel" in dialog.log_view.toPlainText() and terminated == [True]


# ----- the real process -----------------------------------------------------------------------
def _start(dialog: FinetuneDialog, studies: Path, steps: int) -> list[dict]:
    reports: list[dict] = []
    dialog.proc.report.connect(reports.append)
    dialog.form.set_cases(studies)
    dialog.form.steps.setValue(steps)
    dialog.start()
    assert dialog.proc.running(), dialog.log_view.toPlainText()
    return reports


@pytest.mark.slow  # ~30 s on a shared 2-core CPU (--durations)
def test_cancel_kills_the_process_and_registers_nothing(qtbot, dialog, ft_studies: Path, tiny_active: str,
                                                         monkeypatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    reports = _start(dialog, ft_studies, steps=5000)
    assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()
    # The bar moves: a features report with images done (16 of 32 after the first batch).
    qtbot.waitUntil(lambda: dialog.progress.maximum() > 0 and dialog.progress.value() > 0, timeout=PROCESS_TIMEOUT_MS)
    assert reports and reports[0]["phase"] == "features" and reports[0]["total_steps"] == 32
    pid = dialog.proc.process.processId()
    with qtbot.waitSignal(dialog.runEnded, timeout=20000) as ended:
        dialog.cancel_button.click()
    assert ended.args == ["cancelled"] and asked and "Nothing will be registered" in asked[0]
    assert not dialog.proc.running() and pid > 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the child is gone, not merely detached
    assert "Cancelled" in dialog.phase_label.text()
    registry = Registry()
    assert [v.id for v in registry.list()] == [tiny_active] and registry.active_id() == tiny_active
    assert not list(registry.root.glob(".staging-*"))
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()


@pytest.mark.slow  # ~40 s on a shared 2-core CPU (--durations)
def test_full_linear_probe_run_reports_and_activates(qtbot, window, ft_studies: Path, tiny_active: str) -> None:
    dialog = window.show_finetune()
    etas: list[str] = []
    dialog.proc.report.connect(lambda _r: etas.append(dialog.eta_label.text()))  # after the dialog's own slot
    reports = _start(dialog, ft_studies, steps=20)
    with qtbot.waitSignal(dialog.runEnded, timeout=PROCESS_TIMEOUT_MS) as ended:
        pass
    assert ended.args == ["done"], dialog.log_view.toPlainText()[-3000:]
    phases = [r["phase"] for r in reports]
    assert phases[0] == "features" and phases[-1] == "done" and "validate" in phases
    steps = [r for r in reports if r["phase"] in ("train", "validate")]
    points = dialog.curve.points
    assert points.loss_y and points.loss_y[-1] == pytest.approx(steps[-1]["loss"]), "live loss curve"
    assert points.bacc_y == [r["val_bacc"] for r in steps if r["val_bacc"] is not None][:len(points.bacc_y)]
    assert points.bacc_y, "validation bACC plotted"
    assert list(dialog.curve.loss.getData()[1]) == points.loss_y, "the plot shows the job's points"
    assert ESTIMATING in etas and any("left in this phase" in t for t in etas), "ETA measured once steps ran"
    new_id = dialog.version_id
    registry = Registry()
    version = registry.get(new_id)
    assert version.kind == "finetuned" and version.parent == tiny_active
    assert registry.active_id() == tiny_active, "registered, not activated"
    assert dialog.report_box.isVisible()
    # The table shows the registry's report: current active (baseline) vs new, same held-out cases.
    report = version.report
    cells = dialog.comparison.metrics
    assert cells.item(0, 0).text() == "Balanced accuracy"
    ci = report["new"]["ci95"]["balanced_accuracy"]
    assert cells.item(0, 1).text().startswith(f"{report['baseline']['balanced_accuracy']:.3f} [")
    assert cells.item(0, 2).text() == f"{report['new']['balanced_accuracy']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    # The demo folder's held-out set is a single class: said in words, no plain "Activate".
    assert report["class_counts"] == {"1": 8, "2": 0, "3": 0, "4": 0}
    assert "1: 8" in dialog.comparison.counts.text()
    assert "No winner" in dialog.comparison.verdict.text() and "single class" in dialog.comparison.verdict.text()
    assert not dialog.activate_button.isEnabled()
    assert dialog.activate_anyway.isVisible() and not dialog.activate_anyway.isChecked()
    dialog.activate_anyway.setChecked(True)  # the explicit override
    assert dialog.activate_button.isEnabled()
    confusion = dialog.comparison.confusions.itemAt(1).widget().findChild(type(cells))
    total = sum(int(confusion.item(r, c).text()) for r in range(4) for c in range(4))
    assert total == report["n_cases"] == json.loads(json.dumps(report))["new"]["n"]

    with qtbot.waitSignal(dialog.activated, timeout=10000):
        dialog.activate_button.click()
    assert Registry().active_id() == new_id
    assert window.settings.model == "active"
    qtbot.waitUntil(lambda: getattr(window.state.predictor, "name", None) == new_id, timeout=60000)
    assert window.worklist.model_label.text().endswith(new_id)
