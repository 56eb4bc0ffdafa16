"""The two data types the DICOM package hands to the rest of the engine (docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The four screening views every complete study should hold (docs/method.md §3 hanging protocol).
STANDARD_KEYS: tuple[str, ...] = ("RCC", "LCC", "RMLO", "LMLO")


@dataclass(frozen=True)
class Placement:
    """Where one image hangs and which rule decided it (shown in the desktop's tag panel).

    `laterality_rule` / `view_rule` name the source that decided each value, e.g.
    "ImageLaterality", "PatientOrientation used as view", "CBIS-DDSM PatientID",
    "file name token 'L-CC'", "manual override" or "undecided"; `group_rule` says how the
    image was put into its study. `kind` is "screening" (CC/MLO), "extra" (spot,
    magnification, stereotactic, ML, XCCL, ...) or "synthesized" (a 2D image computed from
    a tomosynthesis acquisition). The rule order is documented in docs/data.md.
    """

    laterality: str | None
    view: str | None
    laterality_rule: str
    view_rule: str
    group_rule: str
    kind: str = "screening"

    @property
    def key(self) -> str | None:
        return view_key(self.laterality, self.view)


@dataclass
class MammoImage:
    """One mammogram, ready for display and for the model.

    `pixels` is float32 [H, W] in [0, 1], bright = dense, at native resolution, with the chest
    wall at column 0 (mirrored when `flipped` is True).
    """

    pixels: np.ndarray
    laterality: str | None  # 'L' | 'R' | None
    view: str | None  # 'CC', 'MLO', 'ML', 'XCCL', 'LM', ... or None
    pixel_spacing_mm: tuple[float, float] | None  # (row, col)
    presentation_intent: str | None  # 'FOR PRESENTATION' | 'FOR PROCESSING' | None
    study_uid: str | None
    patient_id: str | None
    study_date: str | None  # 'YYYYMMDD'
    flipped: bool
    source: Path
    patient_age: int | None = None
    modality: str | None = None
    placement: Placement | None = None  # how laterality and view were decided

    @property
    def key(self) -> str | None:
        """'LCC', 'RMLO', ... or None when laterality or view is unknown."""
        return view_key(self.laterality, self.view)


@dataclass
class Study:
    """One examination: its images by view key and what is wrong with it."""

    uid: str
    patient_id: str | None
    date: str | None
    images: dict[str, Path] = field(default_factory=dict)  # 'RCC', 'LCC', 'RMLO', 'LMLO', 'LXCCL', ...
    problems: list[str] = field(default_factory=list)
    # Images of this study whose side or view is undecided (never in `images`); the
    # desktop shows them in an "unplaced" strip where the reader can place them by hand.
    unplaced: list[Path] = field(default_factory=list)
    # Every image of the study (placed, extra or unplaced) -> how it was placed.
    placements: dict[Path, Placement] = field(default_factory=dict)
    # UIDs of earlier studies of the same patient found in the same scan, newest first.
    priors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when all four standard screening views are present."""
        return all(k in self.images for k in STANDARD_KEYS)


def view_key(laterality: str | None, view: str | None) -> str | None:
    """'L' + 'CC' -> 'LCC'; None when either part is unknown."""
    if laterality not in ("L", "R") or not view:
        return None
    return f"{laterality}{view}"
