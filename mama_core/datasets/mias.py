"""mini-MIAS: `mdb001.pgm` .. `mdb322.pgm` (1024 x 1024, 8-bit, 200 um) and `Info.txt`.

Info.txt is whitespace-separated, header `REFNUM BG CLASS SEVERITY X Y RADIUS`, one row per
abnormality (an image may have several; NORM rows have three fields; widely spread
calcifications have no centre).  X, Y, RADIUS give the enclosing circle with the origin at
the *bottom-left*, so the stored row is height - Y.  Films come in pairs per woman: odd
numbers are right breasts, even numbers left (mdb001 R, mdb002 L).  All are MLO.  BG (fatty /
glandular / dense) is not a BI-RADS density class, so density stays unknown.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mama_core.data.records import ImageRecord
from mama_core.datasets.base import DatasetAdapter, DatasetInfo, Lesion, box_around, require_folder
from mama_core.errors import DataError

log = logging.getLogger(__name__)

INFO_NAMES = ("Info.txt", "info.txt", "INFO.TXT")
REFNUM = re.compile(r"^mdb(\d{3})$")
MIAS_SIZE = 1024  # every mini-MIAS image is padded/clipped to 1024 x 1024
_KINDS = {"CALC": "calcification", "CIRC": "mass", "SPIC": "mass", "MISC": "mass", "ARCH": "distortion", "ASYM": "asymmetry"}
_SEVERITY = {"B": 0, "M": 1}


@dataclass
class _Entry:
    background: str = ""
    classes: list[str] = field(default_factory=list)
    cancer: int | None = None
    circles: list[tuple[str, str, float, float, float]] = field(default_factory=list)  # class, severity, x, y, r


def find_info(folder: Path) -> Path | None:
    return next((folder / n for n in INFO_NAMES if (folder / n).is_file()), None)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # '*NOTE' and similar remarks stand where a centre is unknown


def read_info(path: Path) -> dict[str, _Entry]:
    """REFNUM -> what Info.txt says about that image."""
    entries: dict[str, _Entry] = defaultdict(_Entry)
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"unreadable info file ({type(exc).__name__})", path=path) from exc
    for number, line in enumerate(lines, start=1):
        cells = line.split()
        if not cells or cells[0].upper() == "REFNUM" or not REFNUM.match(cells[0]):
            continue
        if len(cells) < 3:
            raise DataError(f"line {number}: need at least REFNUM BG CLASS, got {line.strip()!r}", path=path)
        entry = entries[cells[0]]
        entry.background, kind = cells[1], cells[2].upper()
        entry.classes.append(kind)
        severity = cells[3].upper() if len(cells) > 3 else ""
        if kind == "NORM":
            entry.cancer = entry.cancer or 0
        elif severity in _SEVERITY:
            entry.cancer = max(entry.cancer or 0, _SEVERITY[severity])
        numbers = [_number(c) for c in cells[4:7]]
        if kind in _KINDS and len(numbers) == 3 and None not in numbers and numbers[2] > 0:
            entry.circles.append((kind, severity, *numbers))
    return dict(entries)


def _height(path: Path) -> int:
    """Rows of the PGM (read from its header by Pillow); 1024 when it cannot be opened."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return int(image.size[1])
    except Exception:  # a missing or damaged image: the documented size
        return MIAS_SIZE


def _lesions(entry: _Entry, height: int) -> list[Lesion]:
    lesions = []
    for kind, severity, x, y, radius in entry.circles:
        row = height - y  # origin bottom-left -> stored row
        lesions.append(Lesion(kind=_KINDS[kind], box=box_around([(x, row)], radius), label=f"{kind} {severity}".strip(),
                              circle=(x, row, radius)))
    return lesions


class MiniMias(DatasetAdapter):
    info = DatasetInfo(
        name="mini-mias",
        title="mini-MIAS",
        layout="mdbNNN.pgm + Info.txt (REFNUM BG CLASS SEVERITY X Y RADIUS)",
        labels="cancer (SEVERITY M; B and NORM -> 0); side from the number (odd R, even L); view MLO",
        lesions="enclosing circles (origin bottom-left, converted): mass, calcification, distortion, asymmetry",
    )


    def detect(self, folder: Path) -> float:
        if find_info(folder) is not None:
            return 1.0
        return 0.7 if any(folder.glob("mdb[0-9][0-9][0-9].pgm")) else 0.0

    def _entries(self, folder: Path) -> dict[str, _Entry]:
        key = Path(folder).absolute()  # cheap: looked up on every lesions() call
        if key not in self._cache:
            info = find_info(folder)
            self._cache[key] = read_info(info) if info is not None else {}
        return self._cache[key]

    def load(self, folder: Path) -> list[ImageRecord]:
        folder = require_folder(folder)
        entries = self._entries(folder)
        images = sorted(p for p in folder.glob("mdb*.pgm") if REFNUM.match(p.stem))
        if not images:
            raise DataError("no mini-MIAS images (mdb001.pgm ...)", path=folder)
        return [_record(path, entries.get(path.stem)) for path in images]

    def annotated_images(self, folder: Path) -> list[Path]:
        folder = require_folder(folder)
        return [folder / f"{ref}.pgm" for ref, e in sorted(self._entries(folder).items())
                if e.circles and (folder / f"{ref}.pgm").is_file()]

    def lesions(self, folder: Path, image: Path) -> list[Lesion]:
        entry = self._entries(require_folder(folder)).get(Path(image).stem)
        return _lesions(entry, _height(Path(image))) if entry and entry.circles else []


def _record(path: Path, entry: _Entry | None) -> ImageRecord:
    number = int(REFNUM.match(path.stem).group(1))
    laterality = "R" if number % 2 else "L"
    woman = f"mias-{(number + 1) // 2:03d}"
    meta: dict[str, object] = {"ImageLateralityFinal": laterality, "ViewPosition": "MLO"}
    return ImageRecord(path=path, patient_id=woman, study_id=woman, laterality=laterality, view="MLO", meta=meta,
                       cancer=entry.cancer if entry is not None else None)
