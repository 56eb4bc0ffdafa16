"""Every bad input is a DicomError whose message names the file and the reason."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from mama_core.dicom import find_studies, read_header, read_image, tags_for_display
from mama_core.errors import DicomError, MamaError

from . import make


def _raises(path: Path, *words: str) -> DicomError:
    with pytest.raises(DicomError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message.lower(), message
    assert isinstance(info.value, MamaError)
    return info.value


def test_missing_file(tmp_path):
    _raises(tmp_path / "nope.dcm", "not found")


def test_folder_is_not_a_file(tmp_path):
    _raises(tmp_path, "folder")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.dcm"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _raises(path, "not a dicom")


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("LCC MLO report\n" * 40)
    _raises(path, "not a dicom")


@pytest.mark.parametrize("keep", [200, 400, 700, 0.5, 0.99])
def test_truncated_uncompressed(tmp_path, keep):
    full = make.write(make.mg(orientation=["A", "R"]), tmp_path / "full.dcm").read_bytes()
    n = int(len(full) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "cut.dcm"
    path.write_bytes(full[:n])
    _raises(path, "truncated")


def test_truncated_pixel_data_says_truncated(tmp_path):
    full = make.write(make.mg(orientation=["A", "R"]), tmp_path / "full.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(full[:-1000])
    _raises(path, "truncated")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_truncated_jpeg2000(tmp_path):
    source = Path(get_testdata_file("RG3_J2KI.dcm", download=False))
    path = tmp_path / "j2k_cut.dcm"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    _raises(path, "truncated")


def test_no_pixel_data(tmp_path):
    ds = make.mg(orientation=["A", "R"])
    del ds.PixelData
    _raises(make.write(ds, tmp_path / "nopix.dcm"), "no pixel data")


def test_structured_report_is_not_an_image(tmp_path):
    ds = make.mg()
    for kw in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
               "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"):
        delattr(ds, kw)
    ds.Modality = "SR"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
    _raises(make.write(ds, tmp_path / "sr.dcm"), "not an image")


def test_unsupported_transfer_syntax(tmp_path):
    ds = make.mg()
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(64)])
    mpeg2 = "1.2.840.10008.1.2.4.100"
    path = make.write(ds, tmp_path / "mpeg.dcm", transfer_syntax=mpeg2)
    _raises(path, "unsupported transfer syntax", "mpeg2")


@pytest.mark.timeout(20)
def test_corrupt_jpeg2000_codestream_fails_fast(tmp_path):
    ds = make.mg()
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + np.random.default_rng(1).bytes(2000)])
    path = make.write(ds, tmp_path / "bad_j2k.dcm", transfer_syntax=JPEG2000Lossless)
    _raises(path, "decoded")


def test_huge_declared_size_is_refused(tmp_path):
    ds = make.mg()
    ds.Rows, ds.Columns, ds.NumberOfFrames = 60000, 60000, 2
    _raises(make.write(ds, tmp_path / "huge.dcm"), "too large")


def test_colour_image_is_refused(tmp_path):
    ds = make.mg()
    ds.PhotometricInterpretation = "RGB"
    ds.SamplesPerPixel = 3
    _raises(make.write(ds, tmp_path / "rgb.dcm"), "greyscale")


def test_header_and_tags_errors_name_the_file(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(os.urandom(300))
    for call in (read_header, tags_for_display):
        with pytest.raises(DicomError, match="junk.bin"):
            call(path)


def test_find_studies_on_missing_folder(tmp_path):
    with pytest.raises(DicomError, match="not found"):
        find_studies(tmp_path / "absent")


def test_two_conflicting_file_meta_blocks_are_named_and_the_folder_still_opens(tmp_path):
    """A second group-0002 block after the first (a file written over itself, or two files
    concatenated) claims another transfer syntax: a clear DicomError, not a decoder's riddle;
    the other views of the folder still form their study."""
    import io

    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import JPEGBaseline8Bit

    paths = make.four_views(tmp_path)
    victim = paths["LCC"]
    raw = victim.read_bytes()
    end = 144 + int.from_bytes(raw[140:144], "little")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.2", "1.2.3"
    meta.TransferSyntaxUID, meta.ImplementationClassUID = JPEGBaseline8Bit, "1.2.3.4"
    second = io.BytesIO()
    write_file_meta_info(second, meta, enforce_standard=True)
    victim.write_bytes(raw[:end] + second.getvalue() + raw[end:])

    with pytest.raises(DicomError, match="two conflicting file-meta blocks") as info:
        read_image(victim)
    assert info.value.path == victim
    skipped: list = []
    (study,) = find_studies(tmp_path, skipped)
    assert set(study.images) == {"RCC", "RMLO", "LMLO"}
    assert [(p, "file-meta" in why) for p, why in skipped] == [(victim, True)]
