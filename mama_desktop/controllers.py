"""Controllers: the jobs behind the panels. Each reads the state, runs engine calls in a
worker (never on the GUI thread), and writes results back to the state or a notification."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from mama_core.errors import MamaError

from . import engine
from .hanging import build_pyramid
from .notifications import NotificationBar, format_exception
from .state import AppState, LoadedView
from .workers import TaskRunner

log = logging.getLogger(__name__)
# Tables and notes next to the images: skipped quietly. Image files (PNG, JPEG, TIFF, PGM) are
# mammograms too now, so a skipped one is reported like a skipped DICOM file.
NOT_DICOM_SUFFIXES = {".csv", ".json", ".txt", ".md", ".yaml", ".yml", ".ini", ".log", ".pdf", ".xml", ".html"}


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(message, details) for a notification: engine errors already name the file."""
    if isinstance(exc, MamaError):
        return str(exc), format_exception(exc)
    return f"{type(exc).__name__}: {exc}", format_exception(exc)


class FolderController(QObject):
    """Discovers the studies of a folder in the background."""

    busyChanged = Signal(bool)
    discovered = Signal(list)

    def __init__(self, state: AppState, runner: TaskRunner, notes: NotificationBar, parent: QObject | None = None):
        super().__init__(parent)
        self.state, self.runner, self.notes = state, runner, notes
        self._generation = 0

    def open(self, folder: str | Path) -> None:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            self.notes.notify("error", f"{folder}: not a folder")
            return
        self._generation += 1
        gen = self._generation
        self.state.set_folder(folder)
        self.state.set_studies([])
        self.state.set_study(None)
        self.busyChanged.emit(True)
        self.runner.start(
            engine.find_studies, folder,
            on_done=lambda result: self._done(gen, *result),
            on_error=lambda exc: self._failed(gen, exc),
        )

    def _done(self, gen: int, studies: list[Any], skipped: list[tuple[Path, str]]) -> None:
        if gen != self._generation:
            return
        self.busyChanged.emit(False)
        self.state.set_studies(studies)
        self._report_problems(studies)
        self._report_skipped(skipped)
        self.discovered.emit(studies)
        if not studies:
            self.notes.notify("warning", f"{self.state.folder}: no mammography studies found")

    def _failed(self, gen: int, exc: BaseException) -> None:
        if gen == self._generation:
            self.busyChanged.emit(False)
            self.notes.notify("error", *describe_error(exc))

    def _report_problems(self, studies: list[Any]) -> None:
        problems = [f"{s.uid}: {p}" for s in studies for p in (getattr(s, "problems", None) or [])]
        if problems:
            n = len(problems)
            self.notes.notify("warning", f"{n} problem{'s' if n > 1 else ''} while reading the folder "
                              f"(e.g. {problems[0]})", "\n".join(problems))

    def _report_skipped(self, skipped: list[tuple[Path, str]]) -> None:
        # Tables and notes next to the images (the demo's CSVs, say) are expected, not news.
        skipped = [(p, why) for p, why in skipped if p.suffix.lower() not in NOT_DICOM_SUFFIXES]
        if skipped:
            n = len(skipped)
            first = f"{skipped[0][0].name}: {skipped[0][1]}"
            self.notes.notify("warning", f"{n} file{'s' if n > 1 else ''} skipped (e.g. {first})",
                              "\n".join(f"{p}: {why}" for p, why in skipped))


def load_views(study: Any) -> tuple[dict[str, LoadedView], list[tuple[str, str]]]:
    """Read every image of a study (worker thread). Failures are collected, never raised, so
    one corrupt file leaves the other views readable."""
    views: dict[str, LoadedView] = {}
    errors: list[tuple[str, str]] = []
    placements = getattr(study, "placements", None) or {}
    for key, path in study.images.items():
        try:
            image = engine.read_image(path)
            tags = _tags(path)
            views[key] = LoadedView(key=key, image=image, tags=tags, pyramid=build_pyramid(image.pixels),
                                    placement=placements.get(Path(path)),
                                    lesions=engine.lesions_in_view(path, image))
        except Exception as exc:  # noqa: BLE001 - shown to the user, the study stays usable
            errors.append(describe_error(exc))
    return views, errors


def _tags(path: Path) -> list[tuple[str, str, str]]:
    try:
        return engine.tags_for_display(path)
    except MamaError as exc:
        return [("", "error", str(exc))]


class StudyController(QObject):
    """Loads the current study's images, then asks the predictor for BI-RADS and density;
    then the same for the patient's prior study (the comparison layout's other half)."""

    loading = Signal(bool)
    predicting = Signal(bool)
    predictionFailed = Signal(str)

    def __init__(self, state: AppState, runner: TaskRunner, notes: NotificationBar, parent: QObject | None = None):
        super().__init__(parent)
        self.state, self.runner, self.notes = state, runner, notes
        self._generation = 0
        state.studyChanged.connect(self._load)
        state.predictorChanged.connect(lambda _p: self._predict())

    def _load(self, study: Any | None) -> None:
        self._generation += 1
        if study is None:
            return
        gen = self._generation
        self.loading.emit(True)
        self.runner.start(load_views, study, on_done=lambda r: self._loaded(gen, r),
                          on_error=lambda exc: self._load_failed(gen, exc))

    def _loaded(self, gen: int, result: tuple[dict[str, LoadedView], list[tuple[str, str]]]) -> None:
        if gen != self._generation:
            return  # the user moved on to another study meanwhile
        views, errors = result
        self.loading.emit(False)
        for message, details in errors:
            self.notes.notify("error", message, details)
        self.state.set_views(views)
        self._predict()
        self._load_prior(gen)

    def _load_prior(self, gen: int) -> None:
        prior = self.state.prior_of(self.state.study)
        self.state.set_prior(prior)
        if prior is None:
            return
        self.runner.start(load_views, prior, on_done=lambda r: self._prior_loaded(gen, prior, r),
                          on_error=lambda exc: self._load_failed(gen, exc))

    def _prior_loaded(self, gen: int, prior: Any, result: tuple[dict[str, LoadedView], list]) -> None:
        if gen != self._generation or self.state.prior is not prior:
            return
        views, errors = result
        for message, details in errors:
            self.notes.notify("error", f"Prior study: {message}", details)
        self.state.set_prior_views(views)
        self._predict_prior()

    def _predict_prior(self) -> None:
        prior, predictor = self.state.prior, self.state.predictor
        if prior is None or predictor is None or prior.uid in self.state.predictions:
            return
        self.runner.start(predictor.predict, prior, on_done=self.state.set_prediction,
                          on_error=self._predict_failed)

    def _load_failed(self, gen: int, exc: BaseException) -> None:
        if gen == self._generation:
            self.loading.emit(False)
            self.notes.notify("error", *describe_error(exc))

    def _predict(self) -> None:
        study, predictor = self.state.study, self.state.predictor
        if study is None or predictor is None or not self.state.views:
            return
        if self.state.prior_views:
            self._predict_prior()
        if study.uid in self.state.predictions:
            self.state.set_prediction(self.state.predictions[study.uid])
            return
        self.predicting.emit(True)
        self.runner.start(predictor.predict, study, on_done=self._predicted,
                          on_error=self._predict_failed)

    def _predicted(self, prediction: Any) -> None:
        self.predicting.emit(False)
        self.state.set_prediction(prediction)

    def _predict_failed(self, exc: BaseException) -> None:
        self.predicting.emit(False)
        message, details = describe_error(exc)
        self.predictionFailed.emit(message)
        self.notes.notify("error", f"Prediction failed: {message}", details)


class ModelController(QObject):
    """Loads a predictor in the background; a missing model leaves a working viewer."""

    loading = Signal(bool)
    failed = Signal(str)

    def __init__(self, state: AppState, runner: TaskRunner, notes: NotificationBar, parent: QObject | None = None):
        super().__init__(parent)
        self.state, self.runner, self.notes = state, runner, notes
        self._generation = 0

    def load(self, name: str, device: str | None) -> None:
        self._generation += 1
        gen = self._generation
        self.loading.emit(True)
        device = None if device in (None, "", "auto") else device
        self.runner.start(engine.load_predictor, name, device,
                          on_done=lambda p: self._done(gen, p), on_error=lambda e: self._failed(gen, name, e))

    def _done(self, gen: int, predictor: Any) -> None:
        if gen == self._generation:
            self.loading.emit(False)
            self.state.set_predictor(predictor)
            self.notes.notify("info", f"Model '{getattr(predictor, 'name', '?')}' loaded "
                              f"({getattr(predictor, 'method', '?')})")

    def _failed(self, gen: int, name: str, exc: BaseException) -> None:
        if gen != self._generation:
            return
        self.loading.emit(False)
        self.state.set_predictor(None)
        message, details = describe_error(exc)
        self.failed.emit(message)
        self.notes.notify("warning", f"No model: {message} — the viewer still works without predictions and maps.",
                          details)
