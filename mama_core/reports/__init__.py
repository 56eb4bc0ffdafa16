"""AI results as DICOM objects other viewers and a PACS understand (docs/pacs.md):
a TID 1500 Structured Report per study (`sr.py`) and, per kept sentence map, a Parametric Map
of the cosine and a Segmentation of the above-threshold region on each source image (`maps.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import highdicom as hd
import pydicom

from mama_core.reports.maps import build_parametric_map, build_segmentation, map_to_stored_frame, summarise
from mama_core.reports.sr import MapSummary, ModelIdentity, build_sr

__all__ = ["MapSummary", "ModelIdentity", "ReportFiles", "build_parametric_map", "build_segmentation", "build_sr",
           "map_to_stored_frame",
           "describe_files", "model_identity", "write_study_report"]


@dataclass
class ReportFiles:
    study_uid: str
    sr: Path
    segmentations: list[Path] = field(default_factory=list)
    parametric_maps: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [self.sr, *self.parametric_maps, *self.segmentations]

    def to_json(self) -> dict:
        return {"study_uid": self.study_uid, "files": [str(p) for p in self.files], "sr": str(self.sr),
                "parametric_maps": [str(p) for p in self.parametric_maps],
                "segmentations": [str(p) for p in self.segmentations]}


def model_identity(predictor) -> ModelIdentity:
    """Name, version (registry version id, or the model folder's name), weights fingerprint."""
    version = str(predictor.extra.get("version") or predictor.model_dir.name)
    return ModelIdentity(predictor.name, version, predictor.fingerprint, predictor.method)


def _write(path: Path, ds) -> Path:
    from mama_core.pacs.storage import dataset_bytes, write_bytes_atomic

    return write_bytes_atomic(path, dataset_bytes(ds))


def _maps(predictor, study, sentences: list[str], sources: dict, identity: ModelIdentity, out: Path):
    """Parametric Maps (one per source image and sentence), Segmentations (one per source
    image) and the per-view summaries for the SR."""
    from mama_core.dicom import read_image

    found = predictor.similarity_maps(study, sentences)
    seg_series, pm_series, summaries, segs, pms = hd.UID(), hd.UID(), [], [], []
    for number, (key, values) in enumerate(sorted(found.maps.items()), 1):
        ds = sources[key]
        flipped = read_image(study.images[key]).flipped
        stored = [map_to_stored_frame(values[i], flipped, int(ds.Rows), int(ds.Columns)) for i in range(len(sentences))]
        summaries += [summarise(key, s, m, found.threshold) for s, m in zip(sentences, stored)]
        for i, (sentence, values_i) in enumerate(zip(sentences, stored)):
            pm = build_parametric_map(ds, sentence, values_i, found.threshold, identity, pm_series,
                                      (number - 1) * len(sentences) + i + 1)
            pms.append(_write(out / f"PM_{key}_{pm.SOPInstanceUID}.dcm", pm))
        seg = build_segmentation(ds, sentences, stored, found.threshold, identity, seg_series, number)
        segs.append(_write(out / f"SEG_{key}_{seg.SOPInstanceUID}.dcm", seg))
    return summaries, segs, pms


def write_study_report(study, out_dir: str | Path, predictor, sentences: list[str] | None = None) -> ReportFiles:
    """Predict a local study and write its DICOM results into `out_dir` (each file atomically)."""
    study = predictor.resolve_study(study)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prediction = predictor.predict(study)
    sources = {key: pydicom.dcmread(path) for key, path in study.images.items()}
    identity = model_identity(predictor)
    summaries, segs, pms = _maps(predictor, study, list(sentences), sources, identity, out) if sentences else ([], [], [])
    sr = build_sr(prediction, sources, identity, summaries)
    return ReportFiles(study.uid, _write(out / f"SR_{sr.SOPInstanceUID}.dcm", sr), segs, pms)


PARAMETRIC_MAP_STORAGE = "1.2.840.10008.5.1.4.1.1.30"


def describe_files(paths: list[Path]) -> list[str]:
    """One line per DICOM object to be sent: what it is, which study, which images it refers
    to (what a reader sees before pressing Send)."""
    lines = []
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.Modality == "SR":
            groups = _text_items(ds.ContentSequence, "Tracking Identifier")
            lines.append(f"Structured Report (TID 1500), study {ds.StudyInstanceUID}: {len(groups)} groups "
                         f"({', '.join(groups[:8])}{'…' if len(groups) > 8 else ''})")
        elif ds.Modality == "SEG":
            ref = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
            labels = [str(s.SegmentLabel) for s in ds.SegmentSequence]
            lines.append(f"Segmentation on image {ref} ({ds.ContentDescription}): {'; '.join(labels)}")
        elif ds.SOPClassUID == PARAMETRIC_MAP_STORAGE:
            frame = ds.PerFrameFunctionalGroupsSequence[0]
            ref = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            lines.append(f"Parametric Map (cosine) on image {ref}: {ds.ContentDescription}")
        else:
            lines.append(f"{ds.Modality} object {ds.SOPInstanceUID}")
        lines.append(f"    file: {path}")
    return lines


def _text_items(items, meaning: str) -> list[str]:
    out = []
    for item in items:
        if "TextValue" in item and item.ConceptNameCodeSequence[0].CodeMeaning == meaning:
            out.append(str(item.TextValue))
        out += _text_items(item.get("ContentSequence", []), meaning)
    return out
