"""Public mammography datasets as distributed: one adapter per dataset (docs/datasets.md).

`detect_dataset(folder)` names the adapter for a dataset root; `load_records` (mama_core.data)
uses it; `lesions_for_image(path)` finds the dataset a file belongs to and returns its
annotated lesions in stored pixels (`Lesion.to_canonical` / `canonical_lesions` move them into
`read_image`'s frame).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from mama_core.datasets.base import (
    LESION_KINDS,
    DatasetAdapter,
    DatasetInfo,
    Lesion,
    canonical_lesions,
)
from mama_core.datasets.cbis_ddsm import CbisDdsm
from mama_core.datasets.cmmd import Cmmd
from mama_core.datasets.embed import Embed
from mama_core.datasets.inbreast import INbreast
from mama_core.datasets.mias import MiniMias
from mama_core.datasets.rsna import Rsna
from mama_core.datasets.vindr import VinDrMammo
from mama_core.errors import MamaError

log = logging.getLogger(__name__)

ADAPTERS: tuple[DatasetAdapter, ...] = (Embed(), CbisDdsm(), VinDrMammo(), Rsna(), Cmmd(), INbreast(), MiniMias())
MIN_SCORE = 0.5  # below this a folder is not taken for a dataset root
ROOT_SEARCH_DEPTH = 6  # CBIS-DDSM files sit 5 folders below the description CSVs


@dataclass(frozen=True)
class Detection:
    adapter: DatasetAdapter
    root: Path
    score: float


def adapter_named(name: str) -> DatasetAdapter:
    for adapter in ADAPTERS:
        if adapter.name == name:
            return adapter
    raise KeyError(name)


def scores(folder: str | Path) -> dict[str, float]:
    """Every adapter's score for `folder` (0 = not this dataset, 1 = certain)."""
    folder = Path(folder)
    result = {}
    for adapter in ADAPTERS:
        try:
            result[adapter.name] = float(adapter.detect(folder))
        except (OSError, MamaError) as exc:  # an unreadable folder or table is "not this dataset"
            log.debug("%s: %s detection failed: %s", folder, adapter.name, exc)
            result[adapter.name] = 0.0
    return result


def detect_dataset(folder: str | Path) -> Detection | None:
    """The adapter whose score for `folder` is highest (first in ADAPTERS on a tie), if any
    reaches MIN_SCORE."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = scores(folder)
    best = max(ADAPTERS, key=lambda a: found[a.name])  # max keeps the first of equals
    return Detection(best, folder, found[best.name]) if found[best.name] >= MIN_SCORE else None


_roots: dict[Path, Detection | None] = {}
_roots_lock = threading.Lock()  # the desktop asks from worker threads


def _cached_detection(folder: Path) -> Detection | None:
    with _roots_lock:
        if folder in _roots:
            return _roots[folder]
    found = detect_dataset(folder)
    with _roots_lock:
        _roots[folder] = found
    return found


def dataset_of(path: str | Path) -> Detection | None:
    """The dataset root holding the image at `path`: of the folders above it (up to
    ROOT_SEARCH_DEPTH) the best-scoring one, nearest on a tie. Cached per folder."""
    start = Path(path).absolute().parent  # not resolved: a dataset may reach its files by links
    best: Detection | None = None
    stop = {Path(start.anchor), Path.home()}  # never a dataset root, and costly to probe
    for folder in [start, *start.parents][:ROOT_SEARCH_DEPTH]:
        if folder in stop:
            break
        found = _cached_detection(folder)
        if found is not None and (best is None or found.score > best.score):
            best = found
    return best


def lesions_for_image(path: str | Path) -> list[Lesion]:
    """Annotated lesions of one image file (stored pixels), [] where its dataset has none or
    none can be found. Never raises for a bad dataset file: the viewer must still open."""
    found = dataset_of(path)
    if found is None:
        return []
    try:
        return found.adapter.lesions(found.root, Path(path))
    except MamaError as exc:
        log.warning("lesions of %s not read: %s", Path(path).name, exc)
        return []


def clear_cache() -> None:
    """Forget detected roots and parsed annotation tables (after files were added)."""
    with _roots_lock:
        _roots.clear()
    for adapter in ADAPTERS:
        adapter.clear()


__all__ = [
    "ADAPTERS",
    "LESION_KINDS",
    "DatasetAdapter",
    "DatasetInfo",
    "Detection",
    "Lesion",
    "adapter_named",
    "canonical_lesions",
    "clear_cache",
    "dataset_of",
    "detect_dataset",
    "lesions_for_image",
    "scores",
]
