"""Sentence maps as DICOM: a Segmentation of the above-threshold region per source image.

Why a Segmentation and not a Parametric Map: highdicom (0.28) cannot build a Parametric Map
whose source images have no Frame of Reference — every 2D mammogram (projection images carry
no patient coordinate system) — it fails on its own dimension index. A binary Segmentation of
where the cosine reaches the model's calibrated no-match threshold is what a reader acts on,
any viewer overlays it on the source image, and the cosine numbers themselves (maximum,
threshold, area fraction) go into the Structured Report next to it (see sr.py).
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
