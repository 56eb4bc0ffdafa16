"""Sentence maps as DICOM, both referencing their source image in its stored pixel frame:

- a Parametric Map per (source image, sentence): the cosine itself as float pixels on the
  absolute scale, with the no-match threshold recorded — the numbers, for any viewer or script;
- a Segmentation per source image: one binary segment per sentence where the cosine reaches
  the threshold — the region a reader acts on, which every viewer overlays.

highdicom 0.28 indexes the frames of a map on a source image without a Frame of Reference
(every 2D mammogram: projection images carry no patient coordinate system) by Frame Label but
writes neither the label nor its index value, and then rejects its own object. `_ProjectionMap`
fills both in before highdicom builds its frame tables; the object is otherwise highdicom's.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from mama_core.errors import DataError
from mama_core.reports.codes import RESEARCH_NOTICE
from mama_core.reports.sr import MANUFACTURER, MapSummary, ModelIdentity

SEG_SERIES_NUMBER = 9901
PM_SERIES_NUMBER = 9902
CATEGORY = codes.SCT.MorphologicallyAbnormalStructure
PROPERTY = codes.SCT.Finding


def map_to_stored_frame(values: np.ndarray, flipped: bool, rows: int, columns: int) -> np.ndarray:
    """One sentence map [H, W] in the engine's canonical frame (chest wall at column 0,
    mirrored when `MammoImage.flipped`) -> the source file's stored pixel frame [rows, columns].

    The one place that knows the map geometry: when maps come at patch-grid resolution this is
    where they are brought back to native resolution."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape != (rows, columns):
        raise DataError(f"map is {values.shape[0]}x{values.shape[1]} but the image is {rows}x{columns}", field="map")
    return np.ascontiguousarray(values[:, ::-1]) if flipped else values


def summarise(view: str, sentence: str, values: np.ndarray, threshold: float) -> MapSummary:
    return MapSummary(view, sentence, float(values.max()), float(threshold), float((values >= threshold).mean()))


def build_segmentation(source: Dataset, sentences: list[str], maps: list[np.ndarray], threshold: float,
                       identity: ModelIdentity, series_uid: str, instance_number: int = 1) -> hd.seg.Segmentation:
    """One Segmentation object for `source`: segment i = where sentence i's cosine >= threshold.
    `maps` are already in the stored frame (`map_to_stored_frame`)."""
    masks = np.stack([m >= threshold for m in maps], axis=-1).astype(np.uint8)[None]  # [1, H, W, S]
    descriptions = []
    for i, sentence in enumerate(sentences, 1):
        algorithm = hd.AlgorithmIdentificationSequence(
            name=identity.name, family=codes.DCM.ArtificialIntelligence, version=identity.version,
            parameters={"sentence": sentence, "threshold": f"{threshold:.6f}", "scale": "cosine similarity, absolute",
                        "fingerprint": identity.fingerprint, "notice": RESEARCH_NOTICE})
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=i, segment_label=sentence[:64], segmented_property_category=CATEGORY,
            segmented_property_type=PROPERTY, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm))
    return hd.seg.Segmentation(
        source_images=[source], pixel_array=masks, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=series_uid, series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=instance_number, manufacturer=MANUFACTURER,
        manufacturer_model_name=identity.name[:64], software_versions=identity.version[:64],
        device_serial_number=identity.fingerprint[:64], omit_empty_frames=False,
        content_description=f"cosine >= {threshold:.4f} (research use only)"[:64],
        content_label="MAMA_MAP", series_description=f"MaMA sentence maps ({RESEARCH_NOTICE})"[:64])


class _ProjectionMap(hd.pm.ParametricMap):
    """A Parametric Map on a 2D projection image (no Frame of Reference): see the module note."""

    def _build_luts(self) -> None:
        for item in self.PerFrameFunctionalGroupsSequence:
            content = item.FrameContentSequence[0]
            if not content.get("DimensionIndexValues"):
                content.DimensionIndexValues = [1]
                content.FrameLabel = "cosine"
        super()._build_luts()


def build_parametric_map(source: Dataset, sentence: str, values: np.ndarray, threshold: float,
                         identity: ModelIdentity, series_uid: str, instance_number: int = 1) -> hd.pm.ParametricMap:
    """The cosine map of one sentence on `source` as float pixels (absolute scale, no rescaling).
    `values` are already in the stored frame (`map_to_stored_frame`)."""
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="cosine", lut_explanation=f"sentence-patch cosine; no match below {threshold:.4f}"[:64],
        unit=codes.UCUM.NoUnits, value_range=(-1.0, 1.0), slope=1.0, intercept=0.0)
    return _ProjectionMap(
        source_images=[source], pixel_array=np.asarray(values, dtype=np.float32),
        series_instance_uid=series_uid, series_number=PM_SERIES_NUMBER, sop_instance_uid=hd.UID(),
        instance_number=instance_number, manufacturer=MANUFACTURER, manufacturer_model_name=identity.name[:64],
        software_versions=identity.version[:64], device_serial_number=identity.fingerprint[:64],
        contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=float(threshold), window_width=1.0)],
        content_label="MAMA_MAP", content_description=sentence[:64],
        series_description=f"MaMA sentence maps, cosine ({RESEARCH_NOTICE})"[:64])
