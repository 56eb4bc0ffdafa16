"""Side and view from file names, and the exam a file name belongs to (docs/data.md).

Image files carry no header, and many DICOM exports name files after the view, so the
name is the last rule of the placement ladder: `0_L-CC.png`, `1_R_CC.png`, `L-MLO.png`,
`LCC.dcm`, `left_cc.jpg`, `RIGHT_MLO.tif`. Only an unambiguous name decides: one side and
one view, written next to each other (or as the only side and view words in the name).

The part of the name left once the side/view token is removed (`0` in `0_L-CC.png`)
names the exam, so `0_L-CC.png ... 0_R-MLO.png` form one study and `1_*.png` another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Mammography view abbreviations (same set as the DICOM ladder; ML and MLO distinct).
_VIEWS = ("XCCL", "XCCM", "MLO", "LMO", "SIO", "ISO", "XCC", "CC", "ML", "LM", "FB")
_SIDES = {"L": "L", "LEFT": "L", "R": "R", "RIGHT": "R"}
_VIEW_ALT = "|".join(_VIEWS)
# Side then view, glued or split by one separator; not inside a longer word.
_PAIR = re.compile(rf"(?<![A-Z0-9])(LEFT|RIGHT|L|R)[-_ .]?({_VIEW_ALT})(?![A-Z])", re.IGNORECASE)
# View then side ('CC_L', 'MLO-RIGHT').
_PAIR_REVERSED = re.compile(rf"(?<![A-Z0-9])({_VIEW_ALT})[-_ .]?(LEFT|RIGHT|L|R)(?![A-Z])", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+")
# CBIS-DDSM names every series after the image: Mass-Test_P_00173_LEFT_CC (full mammogram),
# ..._LEFT_CC_1 (the ROI mask and cropped lesion of abnormality 1).
CBIS_DDSM_ID = re.compile(
    r"^(?P<set>(?:Calc|Mass)-(?:Training|Test))_(?P<patient>P_\d+)_(?P<side>LEFT|RIGHT)_(?P<view>CC|MLO)(?:_(?P<roi>\d+))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class NameParts:
    laterality: str | None
    view: str | None
    token: str | None  # the text that decided, e.g. 'L-CC'
    exam: str  # what is left of the name: the exam it belongs to ('' when nothing)


def parse_name(stem: str) -> NameParts:
    """Side, view and exam from a file name without its suffix."""
    for pattern, side_group, view_group in ((_PAIR, 1, 2), (_PAIR_REVERSED, 2, 1)):
        matches = list(pattern.finditer(stem))
        found = {(_SIDES[m.group(side_group).upper()], m.group(view_group).upper()) for m in matches}
        if len(found) == 1:
            m = matches[0]
            side, view = found.pop()
            return NameParts(side, view, m.group(0), _exam(stem[: m.start()] + " " + stem[m.end():]))
        if len(found) > 1:
            return NameParts(None, None, None, _exam(stem))  # two different views named: ambiguous
    return _separate_words(stem)


def _separate_words(stem: str) -> NameParts:
    """Side and view as separate words anywhere in the name ('left breast, cc view')."""
    words = [w.upper() for w in _WORD.findall(stem)]
    sides = {_SIDES[w] for w in words if w in _SIDES}
    views = {w for w in words if w in _VIEWS}
    side = sides.pop() if len(sides) == 1 else None
    view = views.pop() if len(views) == 1 else None
    if side is None and view is None:
        return NameParts(None, None, None, _exam(stem))
    shown = " ".join(w for w in _WORD.findall(stem) if w.upper() in _SIDES or w.upper() in _VIEWS)
    return NameParts(side, view, shown, _exam(stem))


def _exam(rest: str) -> str:
    """'0_' -> '0'; separators trimmed so '0_L-CC' and '0-R_MLO' share exam '0'."""
    return re.sub(r"[-_ .]+", "_", rest).strip("_")

# mini-MIAS: mdb001.pgm ... mdb322.pgm, one MLO film per file, films in pairs per patient
# (mdb(2k-1), mdb(2k)): odd numbers the right breast, even the left (the database README).
MINI_MIAS_NAME = re.compile(r"^mdb(?P<number>\d{3})$", re.IGNORECASE)

# INbreast: <FileID>_<hash>_MG_<L|R>_<CC|ML|FB>_ANON.dcm, where the 'ML' token is the MLO
# view (the dataset's own table says MLO for those files).
INBREAST_NAME = re.compile(r"^\d+_[0-9a-f]+_MG_(?P<side>[LR])_(?P<view>CC|MLO|ML|FB)_ANON$", re.IGNORECASE)


def inbreast(stem: str) -> tuple[str, str] | None:
    match = INBREAST_NAME.match(stem)
    if match is None:
        return None
    view = match.group("view").upper()
    return match.group("side").upper(), ("MLO" if view == "ML" else view)


def mini_mias(stem: str) -> tuple[str, str, int] | None:
    """(side, view, pair number) from a mini-MIAS file name, or None."""
    match = MINI_MIAS_NAME.match(stem)
    if match is None or int(match.group("number")) == 0:
        return None
    number = int(match.group("number"))
    return ("R" if number % 2 else "L"), "MLO", (number + 1) // 2


def cbis_ddsm_id(patient_id: str | None) -> re.Match[str] | None:
    """The CBIS-DDSM naming convention (PatientID or file name), or None."""
    return CBIS_DDSM_ID.match(patient_id.strip()) if patient_id else None


@dataclass(frozen=True)
class FileExam:
    """The study an image file belongs to: its folder plus the exam part of its name."""

    key: tuple[str, str]  # (absolute folder, exam) - what grouping compares
    uid: str  # readable study id: '<folder name>_<exam>' or '<folder name>'
    patient_id: str | None  # only where a naming convention gives one (CBIS-DDSM)
    rule: str


def file_exam(path) -> FileExam:
    from pathlib import Path

    p = Path(path)
    folder = str(p.parent.resolve())
    cbis = cbis_ddsm_id(p.stem)
    if cbis is not None:
        patient = cbis.group("patient").upper()
        return FileExam((folder, patient), patient, patient, "patient (CBIS-DDSM file name)")
    mias = mini_mias(p.stem)
    if mias is not None:
        pair = f"mdb{2 * mias[2] - 1:03d}-{2 * mias[2]:03d}"
        return FileExam((folder, pair), f"{p.parent.name}_{pair}", None, "film pair (mini-MIAS file name)")
    parts = parse_name(p.stem)
    # A name that says nothing about side or view ('scan017.png') names no exam either:
    # such files join their folder's study (see find_studies), shown as unplaced.
    exam = parts.exam if parts.token else ""
    uid = f"{p.parent.name}_{exam}" if exam else (p.parent.name or "images")
    rule = "folder + file name exam number" if exam else "folder"
    return FileExam((folder, exam), uid, None, rule)
