from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mama_core.dicom import read_image
from mama_core.preprocess import resize_to_square
from mama_core.training.cache import ImageCache, warm_cache


def test_decodes_once_and_reads_memmapped(records, tmp_path: Path):
    path = records[0].path
    cache = ImageCache(tmp_path, 56)
    first = cache.load(path)
    second = cache.load(path)
    assert cache.decoded == 1 and torch.equal(first, second)
    entry = cache.entry(path)
    assert isinstance(np.load(entry, mmap_mode="r"), np.memmap)
    # A fresh cache object (another worker process) reuses the file.
    other = ImageCache(tmp_path, 56)
    assert torch.equal(other.load(path), first) and other.decoded == 0
    expected, _ = resize_to_square(read_image(path).pixels, 56)
    assert first.shape == (1, 56, 56)
    assert torch.allclose(first[0], expected, atol=1e-3)  # float16 storage
    assert not list(entry.parent.glob(".tmp-*"))  # atomic write left no temp files


@pytest.mark.parametrize("damage", ["truncated", "wrong shape", "empty"])
def test_damaged_entry_is_rebuilt(records, tmp_path: Path, damage: str):
    """A cache file cut short by a full disk (or otherwise wrong) is decoded again, not an error."""
    path = records[0].path
    cache = ImageCache(tmp_path, 56)
    clean = cache.load(path)
    entry = cache.entry(path)
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:200])
    elif damage == "wrong shape":
        np.save(entry, np.zeros((8, 8), np.float16))
    else:
        entry.write_bytes(b"")
    assert torch.equal(cache.load(path), clean)
    assert cache.decoded == 2
    assert np.load(entry).shape == (56, 56)


def test_uint16_storage(records, tmp_path: Path):
    cache = ImageCache(tmp_path, 56, dtype="uint16")
    img = cache.load(records[1].path)
    assert np.load(cache.entry(records[1].path)).dtype == np.uint16
    expected, _ = resize_to_square(read_image(records[1].path).pixels, 56)
    assert torch.allclose(img[0], expected, atol=1.0 / 65535 + 1e-6)


def test_key_changes_with_size_and_file(records, tmp_path: Path):
    copy = tmp_path / "copy.dcm"
    shutil.copy(records[0].path, copy)
    cache = ImageCache(tmp_path / "c", 56)
    key = cache.key(copy)
    assert ImageCache(tmp_path / "c", 112).key(copy) != key
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.key(copy) != key


def test_warm_cache_progress_and_failures(records, tmp_path: Path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not a dicom")

    class R:
        path = bad

    items = list(records[:3]) + [R()]
    progress = list(warm_cache(items, 56, workers=0, cache_dir=tmp_path / "c"))
    assert [p.done for p in progress] == [1, 2, 3, 4] and progress[-1].total == 4
    assert [p.error is None for p in progress] == [True, True, True, False]
    assert "bad.dcm" in progress[-1].error
    cache = ImageCache(tmp_path / "c", 56)
    assert all(cache.entry(r.path).is_file() for r in records[:3])


def test_warm_cache_with_worker_processes(records, tmp_path: Path):
    progress = list(warm_cache(records[:4], 56, workers=2, cache_dir=tmp_path))
    assert progress[-1].done == 4 and all(p.error is None for p in progress)
