"""What counts as a 2D mammogram, and where each one hangs (docs/data.md "Placement rules").

Real files say these things in many places: the standard tags, view codes, a view written
into PatientOrientation (CBIS-DDSM), free text, a dataset's ID convention, the file name.
Each value is taken from the first rule that decides it, and the rule's name travels with
it (`Placement`) so the tag panel can show why an image hangs where it does. A manual
override (mama_core.dicom.overrides) beats every rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from mama_core.dicom import fields
from mama_core.dicom.overrides import get_override
from mama_core.dicom.types import Placement
from mama_core.images.names import cbis_ddsm_id, inbreast, mini_mias, parse_name

SCREENING_VIEWS = ("CC", "MLO")

# SOP classes (PS3.4 B.5) of tomosynthesis objects: volumes and projection sets, not 2D views.
_DBT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.13.1.3": "Breast Tomosynthesis Image Storage",
    "1.2.840.10008.5.1.4.1.1.13.1.4": "Breast Projection X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.13.1.5": "Breast Projection X-Ray Image Storage - For Processing",
}
# Modalities that may hold a mammogram when something else in the header says so.
_PROJECTION_MODALITIES = {"RG", "DX", "CR", "OT", "SC", "XA", "IO", "PX"}
# Words (ImageType values, descriptions) marking a 2D image computed from a DBT acquisition:
# the DICOM term, Hologic C-View, GE V-Preview, Siemens Insight 2D / synthetic mammogram.
_SYNTHESIZED_WORDS = ("GENERATED_2D", "SYNTHESIZED", "SYNTHETIC", "C-VIEW", "C VIEW", "CVIEW",
                      "V-PREVIEW", "VPREVIEW", "INSIGHT 2D", "S-VIEW")
# Extra (not screening) images: variant tag -> words that mark it.
_EXTRA_WORDS: dict[str, tuple[str, ...]] = {
    "STEREO": ("STEREO", "BIOPSY"),
    "SPOT": ("SPOT",),
    "MAG": ("MAGNIFICATION", "MAGNIFIED", "MAG"),
    "SPECIMEN": ("SPECIMEN",),
    "ROLLED": ("ROLLED",),
    "TANGENTIAL": ("TANGENTIAL",),
    "CLEAVAGE": ("CLEAVAGE",),
}


# ---- what is a 2D mammogram --------------------------------------------------------------


def not_a_2d_mammogram(ds: Dataset) -> str | None:
    """Why this header is not a 2D mammogram we can hang, or None when it is one."""
    sop = str(ds.get("SOPClassUID", "") or "")
    if sop in _DBT_SOP_CLASSES:
        return f"tomosynthesis object ({_DBT_SOP_CLASSES[sop]}): not a 2D view"
    modality = fields.modality(ds)
    says_breast = _says_mammogram(ds)
    if modality == "CT" and says_breast:
        return "breast tomosynthesis slices exported as CT: not a 2D view"
    if modality != "MG" and not (says_breast and (modality is None or modality in _PROJECTION_MODALITIES)):
        return (f"modality {modality or 'missing'} is not MG and nothing marks it as a mammogram "
                "(BodyPartExamined BREAST, a mammography view, a mammography SOP class)")
    frames = _frames(ds)
    if frames > 1:
        return f"multi-frame image ({frames} frames, tomosynthesis or a cine series): not a 2D view"
    return None


def _says_mammogram(ds: Dataset) -> bool:
    sop = ds.get("SOPClassUID")
    name = getattr(sop, "name", "") or ""
    body = (fields.text(ds, "BodyPartExamined") or "").upper()
    position = (fields.text(ds, "ViewPosition") or "").upper()
    item = ds.get("ViewCodeSequence")
    code = fields.text(item[0], "CodeValue") if item else None
    return ("Mammography" in name or body in ("BREAST", "MAMMA", "MAMMO")
            or position in fields.KNOWN_VIEWS or (code or "") in fields.VIEW_CODES)


def _frames(ds: Dataset) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


# ---- kind -------------------------------------------------------------------------------


def _words(ds: Dataset) -> str:
    values = [fields.text(ds, k) for k in ("ImageType", "SeriesDescription", "ProtocolName", "ImageComments")]
    return " ".join(v.upper() for v in values if v)


def variant(ds: Dataset) -> str | None:
    """'SYNTH' for a synthesized 2D image, 'STEREO', 'SPOT', 'MAG', ... for an extra view
    marked by its view modifiers, ImageType or description; None for a plain view."""
    words = _words(ds)
    if any(w in words for w in _SYNTHESIZED_WORDS):
        return "SYNTH"
    text = " ".join(fields.view_modifiers(ds)) + " " + words
    tokens = re.findall(r"[A-Z0-9]+", text)
    for tag, markers in _EXTRA_WORDS.items():
        # whole words ('MAG' never matches 'MAGNA'), or word starts for the long markers
        # ('STEREO' in 'STEREOTACTIC', but 'ROLLED' not in 'CONTROLLED')
        if any(tok == m or (len(m) > 4 and tok.startswith(m)) for m in markers for tok in tokens):
            return tag
    return None


def kind_of(view: str | None, tag: str | None) -> str:
    if tag == "SYNTH":
        return "synthesized"
    if tag is not None or (view is not None and view not in SCREENING_VIEWS):
        return "extra"
    return "screening"


# ---- placement --------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """A placement before grouping, with the extra-view tag that keeps extras off the
    screening slots."""

    placement: Placement
    tag: str | None  # 'SYNTH', 'SPOT', 'MAG', 'STEREO', ... or None

    @property
    def key(self) -> str | None:
        """Study.images key: 'LCC', 'LXCCL', 'LCC-SPOT', ... (None when unplaced)."""
        base = self.placement.key
        if base is None:
            return None
        return f"{base}-{self.tag}" if self.tag else base


def place_dataset(ds: Dataset, path: Path, group_rule: str = "single file") -> Decision:
    """Side and view of a DICOM image: header ladders, then the CBIS-DDSM PatientID, then
    the file name; a manual override beats them all."""
    side, side_rule = fields.laterality_ladder(ds)
    view, view_rule = fields.view_ladder(ds)
    cbis = cbis_ddsm_id(fields.text(ds, "PatientID"))
    if cbis is not None:
        side, side_rule = _fill(side, side_rule, cbis.group("side")[0].upper(), "CBIS-DDSM PatientID")
        view, view_rule = _fill(view, view_rule, cbis.group("view").upper(), "CBIS-DDSM PatientID")
    return _finish(path, side, side_rule, view, view_rule, variant(ds), group_rule)


def place_file_name(path: Path, group_rule: str) -> Decision:
    """Side and view of an image file: the file name (or a CBIS-DDSM-style name); a manual
    override beats it."""
    cbis = cbis_ddsm_id(path.stem)
    if cbis is not None:
        side, view, rule = cbis.group("side")[0].upper(), cbis.group("view").upper(), "CBIS-DDSM file name"
        return _finish(path, side, rule, view, rule, None, group_rule)
    mias = mini_mias(path.stem)
    if mias is not None:
        rule = "mini-MIAS file name (odd number right, even left; MLO films)"
        return _finish(path, mias[0], rule, mias[1], rule, None, group_rule)
    parts = parse_name(path.stem)
    rule = f"file name token '{parts.token}'" if parts.token else "undecided"
    return _finish(path, parts.laterality, rule if parts.laterality else "undecided",
                   parts.view, rule if parts.view else "undecided", None, group_rule)


def _fill(value: str | None, rule: str, fallback: str | None, fallback_rule: str) -> tuple[str | None, str]:
    if value or not fallback:
        return value, rule
    return fallback, fallback_rule


def _finish(path: Path, side: str | None, side_rule: str, view: str | None, view_rule: str,
            tag: str | None, group_rule: str) -> Decision:
    if side is None or view is None:
        known = inbreast(path.stem)
        if known is not None:
            side, side_rule = _fill(side, side_rule, known[0], "INbreast file name")
            view, view_rule = _fill(view, view_rule, known[1], "INbreast file name")
    if side is None or view is None:
        name = parse_name(path.stem)
        token_rule = f"file name token '{name.token}'"
        side, side_rule = _fill(side, side_rule, name.laterality, token_rule)
        view, view_rule = _fill(view, view_rule, name.view, token_rule)
    manual = get_override(path)
    if manual is not None:
        if manual[0]:
            side, side_rule = manual[0], "manual override"
        if manual[1]:
            view, view_rule = manual[1], "manual override"
    placement = Placement(side, view, side_rule, view_rule, group_rule, kind_of(view, tag))
    return Decision(placement, tag)
