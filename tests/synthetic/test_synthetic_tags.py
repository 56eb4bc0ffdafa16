"""Read the files back with pydicom: MG For Presentation tags as a reader expects them."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from mama_core.synthetic import IMAGE_KEYS, generate_studies

VIEW_CODES = {"CC": "399162004", "MLO": "399368009"}


@pytest.fixture(scope="module")
def default_study(tmp_path_factory):
    """One study at the default size, generated once for the module."""
    root = tmp_path_factory.mktemp("synthetic_default")
    summary = generate_studies(root, 1, seed=0)
    folder = next(p for p in root.iterdir() if p.is_dir())
    return summary, {key: pydicom.dcmread(folder / f"{key}.dcm") for key in IMAGE_KEYS}


def test_four_views_with_mg_for_presentation_identity(default_study):
    summary, files = default_study
    assert summary.n_images == 4
    for key, ds in files.items():
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "MG"
        assert ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.ImageLaterality == key[0]
        assert ds.ViewPosition == key[1:]
        code = ds.ViewCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator) == (VIEW_CODES[key[1:]], "SCT")
        assert ds.StudyInstanceUID == summary.study_uids[0]


def test_patient_and_study_fields(default_study):
    _, files = default_study
    uids = {ds.SOPInstanceUID for ds in files.values()} | {ds.SeriesInstanceUID for ds in files.values()}
    assert len(uids) == 8
    for ds in files.values():
        assert ds.PatientID and str(ds.PatientName).startswith("SYNTHETIC")
        assert ds.PatientBirthDate == ""
        assert len(ds.PatientAge) == 4 and ds.PatientAge.endswith("Y") and ds.PatientAge[:3].isdigit()
        assert len(ds.StudyDate) == 8 and ds.AccessionNumber
        assert ds.StudyDescription.startswith(("MG Screening", "MG Diagnostic"))


def test_pixel_module_is_12_bit_monochrome2(default_study):
    _, files = default_study
    for ds in files.values():
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
        assert ds.Rows >= 2000 and 0.7 < ds.Columns / ds.Rows < 0.9
        assert [float(v) for v in ds.ImagerPixelSpacing] == pytest.approx([0.1, 0.1])
        assert float(ds.WindowWidth) > 0
        px = ds.pixel_array
        assert px.shape == (ds.Rows, ds.Columns) and px.dtype == np.uint16
        assert px.max() <= 4095 and px.min() < 200 and np.percentile(px, 99) > 1500


def test_right_images_are_stored_with_the_chest_wall_on_the_right(default_study):
    """PatientOrientation says where the chest wall is, and the pixels agree with it."""
    _, files = default_study
    for key, ds in files.items():
        px = ds.pixel_array.astype(np.float32)
        edge = px.shape[1] // 10
        left, right = px[:, :edge].mean(), px[:, -edge:].mean()
        if key[0] == "L":
            assert ds.PatientOrientation[0] == "A" and left > 3 * right
        else:
            assert ds.PatientOrientation[0] == "P" and right > 3 * left


def test_pectoral_muscle_is_bright_at_the_top_of_the_mlo_chest_wall(default_study):
    _, files = default_study
    for side in "LR":
        mlo = files[f"{side}MLO"].pixel_array.astype(np.float32)
        cc = files[f"{side}CC"].pixel_array.astype(np.float32)
        if side == "R":
            mlo, cc = mlo[:, ::-1], cc[:, ::-1]
        corner = (slice(0, 150), slice(0, 100))
        assert mlo[corner].mean() > cc[corner].mean() + 400
        assert mlo[corner].mean() > 1600  # fat (~1200) plus muscle
