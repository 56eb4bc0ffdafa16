"""The application state that widgets observe (widgets never own state).

Setters store a value and emit a signal; nothing here does work. Controllers (discovery,
study loading, inference) write to the state; panels read it and react to the signals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal


@dataclass
class LoadedView:
    """One displayed image: the engine's MammoImage plus its DICOM tags for the tag panel."""

    key: str  # 'RCC', 'LCC', 'RMLO', 'LMLO' or an extra like 'LXCCL'
    image: Any  # mama_core.dicom.MammoImage (pixels, laterality, view, pixel_spacing_mm, flipped, source)
    tags: list[tuple[str, str, str]] = field(default_factory=list)
    # Display levels 1, 2, ... (uint16, each half the previous), built in the loading worker;
    # level 0 is `pixels` itself, the one float image kept per view (hanging.build_pyramid).
    pyramid: list[np.ndarray] = field(default_factory=list)
    placement: Any = None  # mama_core.dicom.Placement: which rule decided side, view and study
    # Dataset ground truth (mama_core.datasets.Lesion) in the canonical frame of `pixels`,
    # read in the loading worker; empty outside annotated public datasets.
    lesions: list = field(default_factory=list)

    @property
    def pixels(self) -> np.ndarray:
        return self.image.pixels

    @property
    def laterality(self) -> str | None:
        return getattr(self.image, "laterality", None) or (self.key[0] if self.key[:1] in "LR" else None)


class AppState(QObject):
    folderChanged = Signal(object)  # Path | None
    studiesChanged = Signal(list)  # list[Study]
    studyChanged = Signal(object)  # Study | None
    viewsChanged = Signal(dict)  # key -> LoadedView for the current study
    priorChanged = Signal(object)  # the prior Study (same patient, earlier) | None
    priorViewsChanged = Signal(dict)  # key -> LoadedView for the prior study
    predictorChanged = Signal(object)  # Predictor | None
    predictionChanged = Signal(object)  # StudyPrediction | None
    predictionsUpdated = Signal()  # the table of per-study predictions changed
    sentencesChanged = Signal(list)
    mapsChanged = Signal(object)  # SimilarityMaps | None
    priorMapsChanged = Signal(object)  # SimilarityMaps of the prior study | None
    priorPredictionChanged = Signal(object)  # StudyPrediction of the prior study
    focusViewChanged = Signal(str)  # a view to highlight (search hit)
    readerLabelsChanged = Signal(str)  # study uid whose reader labels changed ('' = all)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.folder: Path | None = None
        self.studies: list[Any] = []
        self.study: Any | None = None
        self.views: dict[str, LoadedView] = {}
        self.prior: Any | None = None
        self.prior_views: dict[str, LoadedView] = {}
        self.prior_maps: Any | None = None
        self.predictor: Any | None = None
        self.prediction: Any | None = None
        self.predictions: dict[str, Any] = {}  # study uid -> StudyPrediction (worklist columns)
        self.sentences: list[str] = []
        self.maps: Any | None = None
        # Labels the reader set per study (uid -> {"birads": 0-6, "density": 1-4}), for fine-tuning.
        self.reader_labels: dict[str, dict[str, int]] = {}

    def set_folder(self, folder: Path | None) -> None:
        self.folder = folder
        self.folderChanged.emit(folder)

    def set_studies(self, studies: list[Any]) -> None:
        self.studies = list(studies)
        self.studiesChanged.emit(self.studies)

    def set_study(self, study: Any | None) -> None:
        """Switching study drops every reference to the old one's pixels and maps."""
        self.study = study
        self.views = {}
        self.prior, self.prior_views, self.prior_maps = None, {}, None
        self.prediction = self.predictions.get(study.uid) if study is not None else None
        self.maps = None
        self.studyChanged.emit(study)
        self.predictionChanged.emit(self.prediction)
        self.mapsChanged.emit(None)
        self.priorChanged.emit(None)
        self.priorViewsChanged.emit({})
        self.priorMapsChanged.emit(None)

    def prior_of(self, study: Any | None) -> Any | None:
        """The newest earlier study of the same patient that is in the folder (or None)."""
        for uid in getattr(study, "priors", None) or []:
            prior = self.study_by_uid(uid)
            if prior is not None:
                return prior
        return None

    def set_prior(self, prior: Any | None) -> None:
        self.prior, self.prior_views, self.prior_maps = prior, {}, None
        self.priorChanged.emit(prior)

    def set_prior_views(self, views: dict[str, LoadedView]) -> None:
        self.prior_views = dict(views)
        self.priorViewsChanged.emit(self.prior_views)

    def set_prior_maps(self, maps: Any | None) -> None:
        self.prior_maps = maps
        self.priorMapsChanged.emit(maps)

    def set_views(self, views: dict[str, LoadedView]) -> None:
        self.views = dict(views)
        self.viewsChanged.emit(self.views)

    def set_predictor(self, predictor: Any | None) -> None:
        self.predictor = predictor
        self.predictions.clear()
        self.predictorChanged.emit(predictor)
        self.predictionsUpdated.emit()

    def set_prediction(self, prediction: Any | None) -> None:
        if prediction is not None:
            self.predictions[prediction.study_uid] = prediction
            self.predictionsUpdated.emit()
            if self.prior is not None and prediction.study_uid == self.prior.uid:
                self.priorPredictionChanged.emit(prediction)
        if self.study is not None and (prediction is None or prediction.study_uid == self.study.uid):
            self.prediction = prediction
            self.predictionChanged.emit(prediction)

    def set_sentences(self, sentences: list[str]) -> None:
        if sentences != self.sentences:
            self.sentences = list(sentences)
            self.sentencesChanged.emit(self.sentences)

    def set_maps(self, maps: Any | None) -> None:
        self.maps = maps
        self.mapsChanged.emit(maps)

    def set_reader_labels(self, labels: dict[str, dict[str, int]]) -> None:
        self.reader_labels = {uid: dict(v) for uid, v in labels.items() if v}
        self.readerLabelsChanged.emit("")

    def set_reader_label(self, uid: str, task: str, value: int | None) -> None:
        labels = self.reader_labels.setdefault(uid, {})
        if value is None:
            labels.pop(task, None)
        else:
            labels[task] = int(value)
        if not labels:
            del self.reader_labels[uid]
        self.readerLabelsChanged.emit(uid)

    def study_index(self) -> int:
        if self.study is None:
            return -1
        uids = [s.uid for s in self.studies]
        return uids.index(self.study.uid) if self.study.uid in uids else -1

    def study_by_uid(self, uid: str) -> Any | None:
        return next((s for s in self.studies if s.uid == uid), None)
