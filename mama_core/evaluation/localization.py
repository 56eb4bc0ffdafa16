"""Does a sentence's map point at the right place? The "pointing game" on synthetic studies.

For every view whose ground truth (`ground_truth.json`, written by `mama demo-data`) holds a
lesion of the asked type, the map of the sentence is computed and its maximum located; a
hit is a maximum inside one of that view's lesion boxes. Maps are in the canonical
coordinates of `read_image` (chest wall at column 0) while the boxes are in the stored
DICOM array, so a mirrored image's column is mapped back before the test.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mama_core.errors import DataError

MASS_SENTENCE = "A mass is present in the breast."


@dataclass
class PointingResult:
    sentence: str
    lesion_type: str
    views: int = 0
    hits: int = 0
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.views if self.views else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "hit_rate": self.hit_rate}


def load_ground_truth(folder: str | Path) -> list[dict[str, Any]]:
    path = Path(folder) / "ground_truth.json"
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError("no ground_truth.json (only `mama demo-data` folders carry lesion boxes)", path) from exc
    except ValueError as exc:
        raise DataError(f"unreadable ground truth: {exc}", path) from exc
    if not isinstance(entries, list):
        raise DataError("ground truth must be a list of image entries", path)
    return entries


def _inside(col: int, row: int, boxes: list[list[float]]) -> bool:
    return any(x0 <= col < x1 and y0 <= row < y1 for x0, y0, x1, y1 in boxes)


def pointing_game(predictor: Any, folder: str | Path, sentence: str = MASS_SENTENCE,
                  lesion_type: str = "mass") -> PointingResult:
    """Share of lesion-bearing views whose map maximum falls inside a true lesion box."""
    from mama_core.dicom import read_image

    folder = Path(folder)
    result = PointingResult(sentence=sentence, lesion_type=lesion_type)
    for entry in load_ground_truth(folder):
        boxes = [les["bbox"] for les in entry.get("lesions", []) if les.get("type") == lesion_type]
        if not boxes:
            continue
        path = folder / entry["path"]
        image = read_image(path)
        maps = predictor.similarity_maps(str(path), [sentence])
        sim = next(iter(maps.maps.values()))[0]
        row, col = np.unravel_index(int(np.argmax(sim)), sim.shape)
        stored_col = sim.shape[1] - 1 - col if image.flipped else col
        hit = _inside(int(stored_col), int(row), boxes)
        result.views += 1
        result.hits += int(hit)
        result.details.append({"path": entry["path"], "view": entry.get("view"), "hit": hit,
                               "max": float(sim.max()), "at": [int(stored_col), int(row)]})
    if result.views == 0:
        raise DataError(f"no view in the ground truth has a '{lesion_type}' lesion", folder / "ground_truth.json")
    return result
