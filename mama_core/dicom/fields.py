"""Header fields of a mammogram: laterality, view, spacing, intent, patient (docs/method.md §2).

Each field follows a ladder of sources, from the most specific attribute to free text, so
that files from modalities that fill different attributes still land on the same keys.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.dataset import Dataset

# Mammography view codes (ViewPosition, PS3.3 C.8.11.7; ACR MQCM abbreviations of
# CID 4014 "View for Mammography"). 'ML' and 'MLO' are different projections.
KNOWN_VIEWS = frozenset({"CC", "MLO", "ML", "LM", "LMO", "FB", "SIO", "ISO", "XCCL", "XCCM", "XCC"})

# CID 4014 code values -> abbreviation: SNOMED CT (SCT) and the older SNOMED-RT (SRT)
# values, plus the deprecated Y-X177x codes older modalities still write for XCCL/XCCM.
VIEW_CODES: dict[str, str] = {
    "399162004": "CC", "R-10242": "CC",
    "399368009": "MLO", "R-10226": "MLO",
    "399260004": "ML", "R-10224": "ML",
    "399352003": "LM", "R-10228": "LM",
    "399099002": "LMO", "R-10230": "LMO",
    "399196006": "FB", "R-10244": "FB",
    "399188001": "SIO", "R-102D0": "SIO",
    "441555000": "ISO", "R-40AAA": "ISO",
    "399192008": "XCCL", "R-1024A": "XCCL", "Y-X1770": "XCCL",
    "399101009": "XCCM", "R-1024B": "XCCM", "Y-X1771": "XCCM",
}

# Free-text spellings seen in descriptions and CodeMeanings, most specific first so that
# "medio-lateral oblique" is never read as "medio-lateral".
_VIEW_PHRASES: tuple[tuple[str, str], ...] = (
    ("MEDIO-LATERAL OBLIQUE", "MLO"), ("MEDIOLATERAL OBLIQUE", "MLO"),
    ("LATERO-MEDIAL OBLIQUE", "LMO"), ("LATEROMEDIAL OBLIQUE", "LMO"),
    ("EXAGGERATED LATERALLY", "XCCL"), ("EXAGGERATED MEDIALLY", "XCCM"),
    ("MEDIO-LATERAL", "ML"), ("MEDIOLATERAL", "ML"),
    ("LATERO-MEDIAL", "LM"), ("LATEROMEDIAL", "LM"),
    ("CRANIO-CAUDAL", "CC"), ("CRANIOCAUDAL", "CC"),
)

_LATERALITY_WORDS = {"L": "L", "LEFT": "L", "R": "R", "RIGHT": "R"}
_TOKEN = re.compile(r"[A-Z0-9]+")

# Tags read by `find_studies` (header only): everything the ladders below look at.
STUDY_TAGS: list[str] = [
    "SOPClassUID", "Modality", "StudyInstanceUID", "PatientID", "StudyDate",
    "ImageLaterality", "Laterality", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "SeriesDescription", "ViewPosition",
    "ViewCodeSequence", "PresentationIntentType", "PatientOrientation", "ProtocolName",
    "ImageComments", "ImageType", "BodyPartExamined", "NumberOfFrames", "StudyDescription",
    "PatientName", "AccessionNumber",  # only so logs can redact them (mama_core.logging_setup)
]


def text(ds: Dataset, keyword: str) -> str | None:
    """A string attribute, stripped; None when absent or empty."""
    value = ds.get(keyword)
    if value is None:
        return None
    if not isinstance(value, str) and _is_multi(value):
        value = "\\".join(str(v) for v in value)
    value = str(value).strip()
    return value or None


def _is_multi(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _tokens(*texts: str | None) -> list[str]:
    return [t for s in texts if s for t in _TOKEN.findall(s.upper())]


# ---- laterality -------------------------------------------------------------------------


def _lr(value: str | None) -> str | None:
    """'L'/'R' only: 'B' (both) and 'U' (unpaired) say nothing about a single side."""
    value = (value or "").upper()
    return value if value in ("L", "R") else None


def _frame_laterality(ds: Dataset) -> str | None:
    """FrameLaterality (PS3.3 C.7.6.16.2.8 Frame Anatomy): shared groups first, then the
    first frame's per-frame group, since read_image shows the first frame."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        group = _first_item(ds, groups)
        anatomy = _first_item(group, "FrameAnatomySequence") if group is not None else None
        side = _lr(text(anatomy, "FrameLaterality")) if anatomy is not None else None
        if side:
            return side
    return None


def laterality_from_text(*texts: str | None) -> str | None:
    """'L'/'R' from words like 'L CC', 'LEFT MLO', 'RMLO'; None when absent or ambiguous."""
    found = set()
    for tok in _tokens(*texts):
        if tok in _LATERALITY_WORDS:
            found.add(_LATERALITY_WORDS[tok])
        elif tok[:1] in ("L", "R") and tok[1:] in KNOWN_VIEWS:  # glued forms: 'LCC', 'RMLO'
            found.add(tok[0])
    return found.pop() if len(found) == 1 else None


def laterality_ladder(ds: Dataset) -> tuple[str | None, str]:
    """(side, rule): ImageLaterality -> Laterality -> FrameLaterality -> description text.
    The rule is "undecided" when nothing in the header says."""
    steps = (
        ("ImageLaterality", lambda: _lr(text(ds, "ImageLaterality"))),
        ("Laterality", lambda: _lr(text(ds, "Laterality"))),
        ("FrameLaterality", lambda: _frame_laterality(ds)),
        ("SeriesDescription text", lambda: laterality_from_text(text(ds, "SeriesDescription"), text(ds, "ViewPosition"))),
        ("ProtocolName text", lambda: laterality_from_text(text(ds, "ProtocolName"))),
        ("ImageComments text", lambda: laterality_from_text(text(ds, "ImageComments"))),
    )
    return _first(steps)


def _first(steps) -> tuple[str | None, str]:
    for rule, step in steps:
        value = step()
        if value:
            return value, rule
    return None, "undecided"


def laterality(ds: Dataset) -> str | None:
    """The side from the header alone (see `laterality_ladder`)."""
    return laterality_ladder(ds)[0]


# ---- view -------------------------------------------------------------------------------


def view_from_text(*texts: str | None) -> str | None:
    """'CC', 'MLO', 'ML', ... from free text; whole tokens only, so 'MLO' never reads as 'ML'."""
    joined = " ".join(s.upper() for s in texts if s)
    for phrase, found in _VIEW_PHRASES:
        if phrase in joined:
            return found
    for tok in _tokens(*texts):
        if tok in KNOWN_VIEWS:
            return tok
        if tok[:1] in ("L", "R") and tok[1:] in KNOWN_VIEWS:  # 'LCC' -> 'CC'
            return tok[1:]
    return None


def _view_from_codes(ds: Dataset) -> str | None:
    """ViewCodeSequence (PS3.3 C.8.11.7, CID 4014) code value -> abbreviation."""
    item = _first_item(ds, "ViewCodeSequence")
    if item is None:
        return None
    return VIEW_CODES.get(text(item, "CodeValue") or "") or view_from_text(text(item, "CodeMeaning"))


def _view_position(ds: Dataset) -> str | None:
    position = (text(ds, "ViewPosition") or "").upper()
    return position if position in KNOWN_VIEWS else None


def _patient_orientation_view(ds: Dataset) -> str | None:
    """CBIS-DDSM (and some digitisers) write the view into PatientOrientation ('CC', 'MLO').
    Real orientation values only use the letters A, P, R, L, H, F, and every view
    abbreviation holds another letter, so the two cannot be confused."""
    value = ds.get("PatientOrientation")
    joined = "\\".join(str(v) for v in value) if _is_multi(value) else str(value or "")
    found = {tok for tok in _tokens(joined) if tok in KNOWN_VIEWS}
    return found.pop() if len(found) == 1 else None


def view_ladder(ds: Dataset) -> tuple[str | None, str]:
    """(view, rule): ViewPosition -> ViewCodeSequence -> PatientOrientation used as a view ->
    description text (SeriesDescription, ProtocolName, ImageComments)."""
    steps = (
        ("ViewPosition", lambda: _view_position(ds)),
        ("ViewCodeSequence", lambda: _view_from_codes(ds)),
        ("PatientOrientation used as view", lambda: _patient_orientation_view(ds)),
        ("SeriesDescription text", lambda: view_from_text(text(ds, "ViewPosition"), text(ds, "SeriesDescription"))),
        ("ProtocolName text", lambda: view_from_text(text(ds, "ProtocolName"))),
        ("ImageComments text", lambda: view_from_text(text(ds, "ImageComments"))),
    )
    return _first(steps)


def view(ds: Dataset) -> str | None:
    """The view from the header alone (see `view_ladder`)."""
    return view_ladder(ds)[0]


def view_modifiers(ds: Dataset) -> list[str]:
    """CodeMeanings (upper case) of ViewModifierCodeSequence in the view code item
    (CID 4015: spot compression, magnification, rolled, implant displaced, ...)."""
    item = _first_item(ds, "ViewCodeSequence")
    modifiers = item.get("ViewModifierCodeSequence") if item is not None else None
    out = []
    for mod in modifiers or []:
        meaning = (text(mod, "CodeMeaning") or "").upper()
        out.append(_MODIFIER_CODES.get(text(mod, "CodeValue") or "", meaning))
    return out


# CID 4015 codes that mark an extra (not screening) view, for files without a CodeMeaning.
_MODIFIER_CODES = {"R-102D2": "SPOT COMPRESSION", "R-102D6": "MAGNIFICATION"}


# ---- geometry, intent, patient ----------------------------------------------------------


def _pair(value: Any) -> tuple[float, float] | None:
    """A (row, col) spacing; None when malformed or not positive (e.g. the '0\\0' some CR
    writers leave)."""
    try:
        row, col = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return (row, col) if row > 0 and col > 0 else None


def pixel_spacing_mm(ds: Dataset) -> tuple[float, float] | None:
    """Spacing in the breast plane. ImagerPixelSpacing is measured at the detector, so divide
    by EstimatedRadiographicMagnificationFactor (PS3.3 C.8.11.7 / 10.7.1.3); else PixelSpacing."""
    imager = _pair(ds.get("ImagerPixelSpacing"))
    if imager is not None:
        magnification = _positive_float(ds.get("EstimatedRadiographicMagnificationFactor"))
        if magnification:
            return (imager[0] / magnification, imager[1] / magnification)
        return imager
    return _pair(ds.get("PixelSpacing"))


def _positive_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None


def presentation_intent(ds: Dataset) -> str | None:
    value = (text(ds, "PresentationIntentType") or "").upper()
    return value or None


def study_date(ds: Dataset) -> str | None:
    """'YYYYMMDD' (DA, PS3.5 6.2); anything else reads as unknown."""
    value = text(ds, "StudyDate")
    return value if value and re.fullmatch(r"\d{8}", value) else None


def patient_age(ds: Dataset) -> int | None:
    """Age in whole years from an AS value like '045Y' (PS3.5 6.2: nnnD/W/M/Y)."""
    value = (text(ds, "PatientAge") or "").upper()
    match = re.fullmatch(r"(\d{1,3})\s*([DWMY]?)", value)
    if not match:
        return None
    n, unit = int(match.group(1)), match.group(2) or "Y"
    days_per_unit = {"D": 1, "W": 7, "M": 365.25 / 12, "Y": 365.25}[unit]
    return int(n * days_per_unit // 365.25)


def modality(ds: Dataset) -> str | None:
    value = (text(ds, "Modality") or "").upper()
    return value or None
