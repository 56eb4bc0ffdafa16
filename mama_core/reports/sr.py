"""The study's predictions as a DICOM Structured Report: TID 1500 Measurement Report.

Why TID 1500 rather than TID 4000 (Mammography CAD): our outputs are probability
distributions over BI-RADS and density classes per study, side and view, plus per-sentence
map statistics — measurements with units tied to source images, which is what TID 1500
(Imaging Measurements, "Measurements and Qualitative Evaluations" groups with Source image
references) encodes. TID 4000 describes CAD detections/marks with a Mammography CAD SR IOD
that highdicom does not build or parse, and most viewers (OHIF, Weasis, Orthanc's viewer)
show TID 1500 measurement groups. See docs/pacs.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
from pydicom.sr.codedict import codes
import numpy as np
from pydicom.dataset import Dataset

from mama_core.reports.codes import (
    BREAST, LATERALITY, MAP_FRACTION, MAP_MAX, MAP_THRESHOLD, NO_UNITS, PROCEDURE, RESEARCH_NOTICE,
    birads_code, density_code,
)

MANUFACTURER = "MaMA workstation"
SR_SERIES_NUMBER = 9900


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    version: str
    fingerprint: str
    method: str

    def algorithm(self) -> hd.sr.AlgorithmIdentification:
        return hd.sr.AlgorithmIdentification(
            name=self.name, version=self.version,
            parameters=[f"fingerprint={self.fingerprint}", f"method={self.method}", RESEARCH_NOTICE])


@dataclass(frozen=True)
class MapSummary:
    """One sentence on one view: max cosine, the threshold, the fraction at/above it."""

    view: str
    sentence: str
    max_cosine: float
    threshold: float
    fraction: float


def _probabilities(name_code, probs: np.ndarray, sites) -> list:
    return [hd.sr.Measurement(name=name_code(i), value=float(p), unit=NO_UNITS, finding_sites=sites)
            for i, p in enumerate(probs)]


def _group(label: str, birads, density, identity: ModelIdentity, images: list[Dataset], side: str | None):
    sites = [hd.sr.FindingSite(BREAST, laterality=LATERALITY[side])] if side in LATERALITY else None
    measurements = _probabilities(birads_code, birads, sites) + _probabilities(density_code, density, sites)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
        algorithm_id=identity.algorithm(), finding_sites=sites, measurements=measurements,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds) for ds in images])


def _map_group(summary: MapSummary, identity: ModelIdentity, image: Dataset):
    values = ((MAP_MAX, summary.max_cosine), (MAP_THRESHOLD, summary.threshold), (MAP_FRACTION, summary.fraction))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"map {summary.view}: {summary.sentence}"),
        algorithm_id=identity.algorithm(),
        measurements=[hd.sr.Measurement(name=c, value=float(v), unit=NO_UNITS) for c, v in values],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(image)])


def _side(key: str) -> str | None:
    return key[0] if key[:1] in ("L", "R") else None


def build_sr(prediction, sources: dict[str, Dataset], identity: ModelIdentity,
             maps: list[MapSummary] | None = None) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 report: one group for the study ('study'), one per side ('side L'), one per
    view ('view LCC'), each with 7 BI-RADS and 4 density probabilities; one group per kept
    sentence map ('map LCC: <sentence>'). `sources` maps view keys to the source headers;
    every source image is referenced from its groups and in the evidence."""
    images = [sources[k] for k in sorted(sources)]
    groups = [_group("study", prediction.birads, prediction.density, identity, images, None)]
    for side, pred in sorted(prediction.sides.items()):
        groups.append(_group(f"side {side}", pred.birads, pred.density, identity,
                             [sources[k] for k in sorted(sources) if _side(k) == side], side))
    for key, pred in sorted(prediction.views.items()):
        if key in sources:
            groups.append(_group(f"view {key}", pred.birads, pred.density, identity, [sources[key]], _side(key)))
    groups += [_map_group(m, identity, sources[m.view]) for m in maps or [] if m.view in sources]
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=MANUFACTURER, model_name=f"{identity.name} {identity.version}"[:64]))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PROCEDURE, imaging_measurements=groups, referenced_images=images)
    return hd.sr.Comprehensive3DSR(
        evidence=images, content=report, series_instance_uid=hd.UID(), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        series_description=f"MaMA AI results ({RESEARCH_NOTICE})"[:64])
