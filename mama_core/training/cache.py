"""On-disk cache of preprocessed model inputs (docs/method.md §1.9: decode each DICOM once).

A DICOM or image file (PNG/JPEG/TIFF/PGM) is decoded (`mama_core.dicom.read_image`),
resized and padded to the model's square
(`mama_core.preprocess.resize_to_square`) and stored as one `.npy` file, keyed by a hash of
(path, size, mtime, file size, dtype) so that an edited file is decoded again. Files are
written through `mama_core.fs` (temporary name, fsync, rename), so DataLoader workers and DDP
ranks can share one cache folder without locks; a reader sees either nothing or a whole
file. Reads are memory-mapped (`np.load(mmap_mode='r')`).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from mama_core import fs
from mama_core.errors import MamaError

UINT16_MAX = 65535.0


@dataclass
class CacheProgress:
    """One step of `warm_cache`: how far it got and, for a file that failed, why."""

    done: int
    total: int
    path: Path
    error: str | None = None


class ImageCache:
    """Preprocessed [size, size] images under `root/<size>/<2 hex>/<hash>.npy`."""

    def __init__(self, root: str | Path, size: int, dtype: str = "float16", resize: str = "letterbox"):
        if dtype not in ("float16", "uint16"):
            raise ValueError(f"cache dtype must be float16 or uint16, not {dtype!r}")
        self.root = Path(root)
        self.size = int(size)
        self.dtype = dtype
        self.resize = resize  # VisionConfig.resize; stretched entries live in their own folder
        self.decoded = 0  # DICOMs decoded by this process (tests check "once")

    def key(self, path: str | Path) -> str:
        path = Path(path).resolve()
        st = path.stat()
        text = f"{path}|{self.size}|{st.st_mtime_ns}|{st.st_size}|{self.dtype}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def entry(self, path: str | Path) -> Path:
        key = self.key(path)
        folder = str(self.size) if self.resize == "letterbox" else f"{self.size}-{self.resize}"
        return self.root / folder / key[:2] / f"{key}.npy"

    def _encode(self, pixels: torch.Tensor) -> np.ndarray:
        array = pixels.numpy()
        if self.dtype == "uint16":
            return np.round(array * UINT16_MAX).astype(np.uint16)
        return array.astype(np.float16)

    def _decode_dicom(self, path: Path) -> np.ndarray:
        from mama_core.dicom import read_image
        from mama_core.preprocess import fit_to_square

        image = read_image(path)
        square, _ = fit_to_square(image.pixels, self.size, self.resize)
        self.decoded += 1
        return self._encode(square)

    def ensure(self, path: str | Path) -> Path:
        """The cache file of `path`, decoding and writing it first if missing."""
        target = self.entry(path)
        if target.exists():
            return target
        array = self._decode_dicom(Path(path))
        _atomic_save(target, array)
        return target

    def load(self, path: str | Path) -> torch.Tensor:
        """[1, size, size] float32 in [0, 1]. A damaged entry (cut short by a full disk, the
        wrong shape, or not a plain array) is decoded again from the DICOM and replaced."""
        target = self.ensure(path)
        try:
            return self._read(target)
        except (ValueError, OSError, EOFError):
            target.unlink(missing_ok=True)
            return self._read(self.ensure(path))

    def _read(self, target: Path) -> torch.Tensor:
        array = np.load(target, mmap_mode="r", allow_pickle=False)
        if array.shape != (self.size, self.size) or array.dtype != np.dtype(self.dtype):
            raise ValueError(f"{target}: holds {array.shape} {array.dtype}, not ({self.size}, {self.size}) {self.dtype}")
        out = torch.from_numpy(np.asarray(array, dtype=np.float32))
        if self.dtype == "uint16":
            out = out / UINT16_MAX
        return out[None]


def _atomic_save(target: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a handle: np.save would append ".npy" to some names
            np.save(fh, array)

    fs.write_with(target, write, fault="cache.write")


def _warm_one(args: tuple[str, int, str, str, str]) -> str | None:
    """Worker body: fill one entry; the error message instead of raising."""
    root, size, dtype, resize, path = args
    try:
        ImageCache(root, size, dtype, resize).ensure(path)
    except (MamaError, OSError, ValueError) as exc:
        return str(exc)
    return None


def warm_cache(records: Iterable, size: int, workers: int = 0, cache_dir: str | Path | None = None,
               dtype: str = "float16", resize: str = "letterbox") -> Iterator[CacheProgress]:
    """Prefill the cache for every record's DICOM, yielding progress (and failures).

    `workers` > 0 decodes in that many processes; the atomic writes make concurrent fills of
    the same entry harmless."""
    cache = ImageCache(cache_dir or default_cache_dir(), size, dtype, resize)
    paths = list(dict.fromkeys(str(Path(r.path)) for r in records))
    jobs = [(str(cache.root), cache.size, cache.dtype, cache.resize, p) for p in paths]
    if workers <= 0:
        results: Iterable[str | None] = (_warm_one(job) for job in jobs)
        yield from _progress(paths, results)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from _progress(paths, pool.map(_warm_one, jobs, chunksize=4))


def _progress(paths: list[str], results: Iterable[str | None]) -> Iterator[CacheProgress]:
    for done, (path, error) in enumerate(zip(paths, results), start=1):
        yield CacheProgress(done=done, total=len(paths), path=Path(path), error=error)


def default_cache_dir() -> Path:
    from mama_core.paths import user_cache_dir

    return user_cache_dir() / "images"
