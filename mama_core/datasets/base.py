"""What every dataset adapter provides, and the lesion type they share.

Coordinates: a lesion is stored in the *native stored pixel frame* of its image (the pixel
array as the file holds it, origin top-left, x = column, y = row), as continuous values where
pixel (c, r) covers [c, c+1) x [r, r+1).  `read_image` mirrors mammograms so the chest wall is
at column 0 (`MammoImage.flipped`); `Lesion.to_canonical` applies the same mirror, so an
outline drawn over the displayed image, or a map maximum tested against a box, uses one frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mama_core.data.records import ImageRecord
from mama_core.errors import DataError


# The lesion kinds adapters map their own vocabularies onto (docs/datasets.md).
LESION_KINDS = ("mass", "calcification", "asymmetry", "distortion", "other")

Point = tuple[float, float]


@dataclass(frozen=True)
class Lesion:
    """One annotated finding on one image (stored-pixel frame unless `canonical`)."""

    kind: str  # one of LESION_KINDS
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 with x0 <= x1, y0 <= y1
    label: str = ""  # the dataset's own words ("Mass", "SPIC M", "IRREGULAR-SPICULATED ...")
    polygon: tuple[Point, ...] | None = None  # contour, when the dataset draws one
    circle: tuple[float, float, float] | None = None  # centre x, centre y, radius (mini-MIAS)
    mask_path: Path | None = None  # ROI mask file the box came from (CBIS-DDSM)
    canonical: bool = False  # True once mirrored into read_image's frame

    def __post_init__(self) -> None:
        if self.kind not in LESION_KINDS:
            raise ValueError(f"lesion kind {self.kind!r} is not one of {', '.join(LESION_KINDS)}")
        x0, y0, x1, y1 = self.box
        if not (x0 <= x1 and y0 <= y1):
            raise ValueError(f"lesion box {self.box} is not x0 <= x1, y0 <= y1")

    @property
    def shape(self) -> str:
        """How to draw it: 'polygon', 'circle' or 'box'."""
        if self.polygon and len(self.polygon) >= 2:
            return "polygon"
        return "circle" if self.circle is not None else "box"

    def contains(self, x: float, y: float) -> bool:
        """Whether the point lies in the lesion's box (the pointing-game test)."""
        x0, y0, x1, y1 = self.box
        return x0 <= x < x1 and y0 <= y < y1

    def to_canonical(self, width: int, flipped: bool) -> "Lesion":
        """This lesion in `read_image`'s frame: mirrored about the image's vertical axis when
        the image was (x -> width - x); unchanged otherwise."""
        if self.canonical:
            raise ValueError("lesion is already in the canonical frame")
        if not flipped:
            return replace(self, canonical=True)
        x0, y0, x1, y1 = self.box
        return replace(
            self,
            box=(width - x1, y0, width - x0, y1),
            polygon=tuple((width - x, y) for x, y in self.polygon) if self.polygon else self.polygon,
            circle=(width - self.circle[0], self.circle[1], self.circle[2]) if self.circle else None,
            canonical=True,
        )


def box_around(points: list[Point] | tuple[Point, ...], pad: float = 0.0) -> tuple[float, float, float, float]:
    """The box holding `points`, grown by `pad` pixels each way (a one-point ROI gets a box)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)


def clip_box(box: tuple[float, float, float, float], width: int | None, height: int | None) -> tuple[float, float, float, float]:
    """Box clipped to the image (some datasets' boxes run past the edges)."""
    x0, y0, x1, y1 = box
    if width:
        x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    if height:
        y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    return (x0, y0, x1, y1)


def canonical_lesions(path: str | Path, lesions: list[Lesion]) -> list[Lesion]:
    """`lesions` of the image at `path` moved into `read_image`'s frame (reads the image once
    to learn its width and whether it was mirrored)."""
    if not lesions:
        return []
    from mama_core.dicom import read_image  # lazy: pixel decoding is heavy

    image = read_image(path)
    return [lesion.to_canonical(image.pixels.shape[1], image.flipped) for lesion in lesions]


@dataclass
class DatasetInfo:
    """One line of `mama datasets`: what an adapter reads."""

    name: str
    title: str
    layout: str
    labels: str
    lesions: str


class DatasetAdapter:
    """Base class: a public dataset as distributed.

    `detect(folder)` scores 0..1 how surely `folder` is this dataset's root (cheap: names of a
    few files, at most one header); `load(folder)` gives one ImageRecord per image;
    `lesions(folder, image)` the annotated findings of one image in stored pixels and
    `annotated_images(folder)` the images that have any (both empty where the dataset has no
    annotations)."""

    info: DatasetInfo  # set by each subclass

    def __init__(self) -> None:
        self._cache: dict[Path, object] = {}  # per dataset root: parsed tables / lesions

    def clear(self) -> None:
        """Forget what was parsed (the files changed)."""
        self._cache.clear()

    @property
    def name(self) -> str:
        return self.info.name

    def detect(self, folder: Path) -> float:
        raise NotImplementedError

    def load(self, folder: Path) -> list[ImageRecord]:
        raise NotImplementedError

    def annotated_images(self, folder: Path) -> list[Path]:
        return []

    def lesions(self, folder: Path, image: Path) -> list[Lesion]:
        return []


def require_folder(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("not a folder" if folder.exists() else "folder not found", path=folder)
    return folder


def file_key(path: str | Path) -> Path:
    """The key adapters index images by, so that any spelling of a path finds its lesions."""
    try:
        return Path(path).resolve()
    except OSError:
        return Path(path).absolute()
