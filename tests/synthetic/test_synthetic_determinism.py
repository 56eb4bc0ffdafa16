"""Same seed -> same bytes; different seed -> different studies and UIDs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from mama_core.errors import ConfigError, DataError
from mama_core.synthetic import IMAGE_KEYS, generate_studies, sample_study


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_bytes(tmp_path):
    a = generate_studies(tmp_path / "a", 2, seed=5, rows=160)
    b = generate_studies(tmp_path / "b", 2, seed=5, rows=160)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(fa) == 2 * 4 + 3
    assert fa == fb
    assert a.study_uids == b.study_uids


def test_different_seed_gives_different_studies(tmp_path):
    a = generate_studies(tmp_path / "a", 1, seed=1, rows=160)
    b = generate_studies(tmp_path / "b", 1, seed=2, rows=160)
    assert set(a.study_uids).isdisjoint(b.study_uids)
    da = [pydicom.dcmread(p) for p in sorted((tmp_path / "a").rglob("*.dcm"))]
    db = [pydicom.dcmread(p) for p in sorted((tmp_path / "b").rglob("*.dcm"))]
    for x, y in zip(da, db):
        assert x.SOPInstanceUID != y.SOPInstanceUID
        assert x.SeriesInstanceUID != y.SeriesInstanceUID
        assert not np.array_equal(x.pixel_array, y.pixel_array)


def test_uids_are_unique_within_and_across_seeds():
    uids = []
    for seed in (0, 1):
        for i in range(5):
            s = sample_study(seed, i)
            uids += [s.study_uid] + [s.series_uid(k) for k in IMAGE_KEYS] + [s.sop_uid(k) for k in IMAGE_KEYS]
    assert len(uids) == len(set(uids))
    assert all(len(u) <= 64 and u.replace(".", "").isdigit() for u in uids)


def test_study_depends_only_on_seed_and_index(tmp_path):
    """Study 1 is the same whether one writes 2 studies or 3 (prefix-stable data sets)."""
    generate_studies(tmp_path / "two", 2, seed=9, rows=160)
    generate_studies(tmp_path / "three", 3, seed=9, rows=160)
    folder = sample_study(9, 1).folder
    assert _files(tmp_path / "two" / folder) == _files(tmp_path / "three" / folder)


def test_progress_reports_each_study(tmp_path):
    seen = []
    generate_studies(tmp_path, 3, seed=0, rows=160, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("kwargs", [{"n_studies": 0}, {"n_studies": 1, "rows": 16}, {"n_studies": 1, "seed": -1}])
def test_bad_arguments_raise_config_error(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        generate_studies(tmp_path, **kwargs)


def test_output_path_that_is_a_file_raises_data_error(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(DataError, match="file.txt"):
        generate_studies(target, 1, rows=160)
