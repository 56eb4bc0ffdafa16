"""Does a sentence's map point at the right place? The "pointing game".

Ground truth is every annotated lesion of a folder: the exact boxes of a `mama demo-data` set
(`ground_truth.json`) or a public dataset's own annotations (CBIS-DDSM ROI masks, VinDr-Mammo
boxes, INbreast ROIs, mini-MIAS circles, EMBED ROIs; `mama_core.datasets`).  For every image
holding a lesion of the asked kind, the map of the sentence is computed and its maximum
located; a hit is a maximum inside one of that image's lesion boxes.  Maps are in the
canonical frame of `read_image` (chest wall at column 0), so the boxes are moved into it
(`Lesion.to_canonical`) before the test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mama_core.datasets import Lesion, detect_dataset
from mama_core.errors import DataError, MamaError

MASS_SENTENCE = "A mass is present in the breast."


@dataclass
class PointingResult:
    sentence: str
    lesion_type: str
    views: int = 0
    hits: int = 0
    details: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # annotated images that could not be read

    @property
    def hit_rate(self) -> float:
        return self.hits / self.views if self.views else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "hit_rate": self.hit_rate}


@dataclass
class TruthImage:
    """One annotated image: its file and its lesions in stored pixels."""

    path: Path
    lesions: list[Lesion]


def load_ground_truth(folder: str | Path) -> list[TruthImage]:
    """The annotated images of a demo set or of a public dataset's root folder."""
    folder = Path(folder)
    found = detect_dataset(folder)
    if found is None:
        raise DataError("no lesion annotations here: expected a `mama demo-data` folder (ground_truth.json) or a "
                        "dataset with annotations (CBIS-DDSM, VinDr-Mammo, INbreast, mini-MIAS, EMBED); "
                        "see `mama datasets`", folder)
    images = [TruthImage(Path(p), found.adapter.lesions(folder, Path(p))) for p in found.adapter.annotated_images(folder)]
    if not images:
        raise DataError(f"{found.adapter.info.title} folder without lesion annotations "
                        f"({found.adapter.info.lesions})", folder)
    return images


def _map_point(sim: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """The map maximum as a point of the image (pixel centre; maps may be coarser)."""
    row, col = np.unravel_index(int(np.argmax(sim)), sim.shape)
    return (col + 0.5) * width / sim.shape[1], (row + 0.5) * height / sim.shape[0]


def pointing_game(predictor: Any, folder: str | Path, sentence: str = MASS_SENTENCE,
                  lesion_type: str = "mass") -> PointingResult:
    """Share of lesion-bearing images whose map maximum falls inside a true lesion box
    (`lesion_type` 'any' counts every lesion)."""
    from mama_core.dicom import read_image

    folder = Path(folder)
    result = PointingResult(sentence=sentence, lesion_type=lesion_type)
    for truth in load_ground_truth(folder):
        lesions = [les for les in truth.lesions if lesion_type in ("any", les.kind)]
        if not lesions:
            continue
        try:
            image = read_image(truth.path)
        except MamaError as exc:  # one unreadable file is reported, the others still count
            result.skipped.append({"path": _relative(truth.path, folder), "reason": exc.reason})
            continue
        height, width = image.pixels.shape
        boxes = [les.to_canonical(width, image.flipped) for les in lesions]
        maps = predictor.similarity_maps(str(truth.path), [sentence])
        sim = next(iter(maps.maps.values()))[0]
        x, y = _map_point(sim, width, height)
        hit = any(box.contains(x, y) for box in boxes)
        result.views += 1
        result.hits += int(hit)
        stored_x = width - x if image.flipped else x
        # `boxes` in the canonical frame (chest wall left), as the report's figures draw them,
        # so the report needs no second read of the ground truth.
        result.details.append({"path": _relative(truth.path, folder), "view": image.key, "hit": hit,
                               "max": float(sim.max()), "at": [int(stored_x), int(y)],
                               "boxes": [[float(v) for v in box.box] for box in boxes]})
    if result.views == 0:
        raise DataError(f"no annotated image has a '{lesion_type}' lesion", folder)
    return result


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return str(path)
