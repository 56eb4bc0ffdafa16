"""Images in (docs/data.md): `read_image(path) -> MammoImage`, `find_studies(folder) -> [Study]`,
for DICOM files and for PNG/JPEG/TIFF/PGM image files.

Pixels go stored values -> Modality LUT -> VOI -> MONOCHROME1/INVERSE polarity -> [0, 1],
bright = dense, chest wall at column 0. Every failure is a `MamaError` (`DicomError`,
`ImageFileError`) naming the file.
"""

from mama_core.dicom.image import read_image
from mama_core.dicom.io import read_header, tags_for_display
from mama_core.dicom.overrides import clear_override, get_override, set_override
from mama_core.dicom.studies import SkipReport, find_studies, load_study
from mama_core.dicom.types import STANDARD_KEYS, MammoImage, Placement, Study, view_key

__all__ = [
    "MammoImage",
    "Placement",
    "STANDARD_KEYS",
    "SkipReport",
    "Study",
    "clear_override",
    "find_studies",
    "get_override",
    "load_study",
    "read_header",
    "read_image",
    "set_override",
    "tags_for_display",
    "view_key",
]
