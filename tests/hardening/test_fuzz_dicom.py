"""Mutated DICOM files: every read either succeeds with finite pixels in [0, 1] or raises a
MamaError naming the file; none hangs (10 s per file) or exhausts memory (3 GB address
space). Reads run in a child process (`fuzzlib.ReaderPool`), so a hang or a crash is a
test failure rather than a stuck test run. Bigger run: `pytest -m slow tests/hardening`."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import fuzzlib

NAMES = (*fuzzlib.REAL_FILES, "synthetic_MG.dcm")
KINDS = tuple(fuzzlib.MUTATIONS)
FAST = settings(max_examples=80, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SLOW = settings(FAST, max_examples=1000)


@pytest.fixture(scope="module")
def pool():
    pool = fuzzlib.ReaderPool()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def seeds(work):
    return fuzzlib.seed_files(work)


def _check_file(pool, path, op="read_image") -> dict:
    answer = pool.run(op, path)
    assert fuzzlib.acceptable(answer), f"{op} {path.name}: {answer}"
    return answer


def _read_mutated(pool, work, seeds, name, kind, seed) -> None:
    path = work / f"{kind}-{seed}-{name}"
    path.write_bytes(fuzzlib.mutate(seeds[name], kind, seed))
    try:
        _check_file(pool, path)
        _check_file(pool, path, "tags")  # the desktop's tag panel reads the same header
    finally:
        path.unlink()


@FAST
@given(name=st.sampled_from(NAMES), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**31 - 1))
def test_mutated_files_read_or_raise_mama_error(pool, work, seeds, name, kind, seed):
    _read_mutated(pool, work, seeds, name, kind, seed)


@pytest.mark.slow
@SLOW
@given(name=st.sampled_from(NAMES), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**31 - 1))
def test_mutated_files_big_run(pool, work, seeds, name, kind, seed):
    _read_mutated(pool, work, seeds, name, kind, seed)


@pytest.mark.parametrize("name, kind, seed", [
    ("synthetic_MG.dcm", "pixel_module", 8),  # RescaleSlope 'nan': NaN pixels were returned
    ("CT_small.dcm", "pixel_module", 8),
    ("synthetic_MG.dcm", "header_bytes", 2681),  # TransferSyntaxUID not a string: TypeError escaped
    ("synthetic_MG.dcm", "header_bytes", 379168999),  # unknown VR in Rows: NotImplementedError escaped
])
def test_regressions_found_by_fuzzing(pool, work, seeds, name, kind, seed):
    _read_mutated(pool, work, seeds, name, kind, seed)


@pytest.mark.parametrize("name", NAMES)
def test_unmutated_seed_files_read(pool, work, seeds, name):
    """The harness itself: every seed reads as an image (so mutations start from valid files)."""
    path = work / f"clean-{name}"
    path.write_bytes(seeds[name])
    assert _check_file(pool, path)["outcome"] == "ok"


def _with_dims(data: bytes, rows: int, cols: int, frames: str | None) -> bytes:
    import io

    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    ds.Rows, ds.Columns = rows, cols
    raw = {"NumberOfFrames": frames} if frames is not None else None
    return fuzzlib._save(ds, raw)


@pytest.mark.parametrize("name", ["RG1_UNCI.dcm", "RG3_J2KI.dcm", "synthetic_MG.dcm"])
@pytest.mark.parametrize("rows, cols, frames", [(65535, 65535, None), (65535, 65535, "65535"), (1, 1, "2147483647"),
                                                (0, 0, None), (65535, 1, "-1")])
def test_huge_declared_sizes_are_refused_quickly(pool, work, seeds, name, rows, cols, frames):
    path = work / f"dims-{rows}-{cols}-{frames}-{name}"
    path.write_bytes(_with_dims(seeds[name], rows, cols, frames))
    assert _check_file(pool, path)["outcome"] == "mama_error"


@pytest.mark.parametrize("name", NAMES)
def test_pixel_data_length_0xfffffff0(pool, work, seeds, name):
    """The (7FE0,0010) element declares 0xFFFFFFF0 bytes (native files) or its first
    fragment does (encapsulated files)."""
    data = bytearray(seeds[name])
    pos = data.rfind(b"\xe0\x7f\x10\x00")
    assert pos > 0
    # Explicit VR OB/OW: tag(4) VR(2) reserved(2) length(4); implicit VR: tag(4) length(4).
    at = pos + 8 if data[pos + 4:pos + 6] in (b"OB", b"OW") else pos + 4
    if data[at:at + 4] == b"\xff\xff\xff\xff":  # encapsulated: the basic offset table item
        at += 4 + 4  # item tag, then its length
    data[at:at + 4] = struct.pack("<I", 0xFFFFFFF0)
    path = work / f"len-{name}"
    path.write_bytes(bytes(data))
    _check_file(pool, path)


@settings(FAST, max_examples=12)
@given(seed=st.integers(0, 2**31 - 1))
def test_find_studies_over_mutated_folder_never_raises(pool, work, seeds, seed):
    """A folder with every synthetic view mutated in every way, plus mutated real files:
    find_studies returns (possibly empty) studies and never raises."""
    folder = work / f"folder-{seed}"
    folder.mkdir()
    study = sorted(fuzzlib.synthetic_dir(work).rglob("*.dcm"))
    for i, src in enumerate(study):
        for kind in KINDS:
            (folder / f"{src.stem}-{kind}.dcm").write_bytes(fuzzlib.mutate(src.read_bytes(), kind, seed + i))
    (folder / "sub").mkdir()
    for kind in KINDS:
        (folder / "sub" / f"mr-{kind}.dcm").write_bytes(fuzzlib.mutate(seeds["MR_small.dcm"], kind, seed))
    answer = pool.run("find_studies", folder)
    assert answer["outcome"] == "ok", answer
