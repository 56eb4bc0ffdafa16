"""DICOM in (DESIGN §2): `read_image(path) -> MammoImage`, `find_studies(folder) -> [Study]`.

Pixels go stored values -> Modality LUT -> VOI -> MONOCHROME1/INVERSE polarity -> [0, 1],
bright = dense, chest wall at column 0. Every failure is a `DicomError` naming the file.
"""

from mama_core.dicom.image import read_image
from mama_core.dicom.io import read_header, tags_for_display
from mama_core.dicom.studies import SkipReport, find_studies, load_study
from mama_core.dicom.types import STANDARD_KEYS, MammoImage, Study, view_key

__all__ = [
    "MammoImage",
    "STANDARD_KEYS",
    "SkipReport",
    "Study",
    "find_studies",
    "load_study",
    "read_header",
    "read_image",
    "tags_for_display",
    "view_key",
]
