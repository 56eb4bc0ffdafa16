"""Coded concepts of the results objects.

Standard codes where DICOM has them (SNOMED CT breast / laterality, DCM probability, UCUM no
units); the class concepts ("probability of BI-RADS 4", ...) have no standard code, so they
use a private coding scheme (PS3.16 §8.2: designators beginning "99" are private).
"""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

SCHEME = "99MAMA"
RESEARCH_NOTICE = "Research use only - not for diagnosis"
BIRADS_LABELS = ("0", "1", "2", "3", "4", "5", "6")  # index = EMBED asses order A N B P S M K
DENSITY_LABELS = ("a", "b", "c", "d")  # tissueden 1-4
NO_UNITS = codes.UCUM.NoUnits
BREAST = codes.SCT.Breast
LATERALITY = {"L": codes.SCT.Left, "R": codes.SCT.Right}
PROCEDURE = codes.SCT.Mammography


def birads_code(index: int) -> Code:
    return Code(f"BIRADS-{BIRADS_LABELS[index]}", SCHEME, f"Probability of BI-RADS {BIRADS_LABELS[index]}")


def density_code(index: int) -> Code:
    return Code(f"DENSITY-{DENSITY_LABELS[index]}", SCHEME, f"Probability of breast density {DENSITY_LABELS[index]}")


MAP_MAX = Code("MAP-MAX", SCHEME, "Maximum sentence-patch cosine similarity")
MAP_THRESHOLD = Code("MAP-THRESHOLD", SCHEME, "No-match cosine threshold")
MAP_FRACTION = Code("MAP-FRACTION", SCHEME, "Fraction of the image at or above the threshold")


def parse_code_index(value: str, prefix: str, labels: tuple[str, ...]) -> int | None:
    """'BIRADS-4' -> index of '4' in labels (reading objects back)."""
    if not value.startswith(prefix + "-"):
        return None
    label = value[len(prefix) + 1:]
    return labels.index(label) if label in labels else None
