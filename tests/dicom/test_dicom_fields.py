"""Header ladders (laterality, view, spacing, age), orientation, and the tag panel rows."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from mama_core.dicom import read_image, tags_for_display

from . import make


def _read(tmp_path, ds, name="x.dcm"):
    return read_image(make.write(ds, tmp_path / name))


# ---- laterality ladder --------------------------------------------------------------------


def test_laterality_from_image_laterality_beats_everything(tmp_path):
    ds = make.mg(laterality="L", Laterality="R", SeriesDescription="RIGHT CC", **make.frame_laterality("R"))
    assert _read(tmp_path, ds).laterality == "L"


def test_laterality_from_series_laterality(tmp_path):
    ds = make.mg(laterality=None, Laterality="R", SeriesDescription="L CC", **make.frame_laterality("L"))
    assert _read(tmp_path, ds).laterality == "R"


@pytest.mark.parametrize("shared", [True, False])
def test_laterality_from_frame_laterality(tmp_path, shared):
    ds = make.mg(laterality=None, SeriesDescription="L CC", **make.frame_laterality("R", shared=shared))
    assert _read(tmp_path, ds).laterality == "R"


def test_unpaired_image_laterality_falls_through(tmp_path):
    ds = make.mg(laterality="U", Laterality="L")
    assert _read(tmp_path, ds).laterality == "L"


@pytest.mark.parametrize(
    "description, position, expected",
    [
        ("LEFT CC", None, "L"),
        ("Screening R MLO", None, "R"),
        ("RMLO", None, "R"),
        (None, "LCC", "L"),
        ("L-XCCL", None, "L"),
        ("BILATERAL SCREENING", None, None),
        ("L and R", None, None),  # ambiguous: better unknown than wrong
    ],
)
def test_laterality_from_text(tmp_path, description, position, expected):
    ds = make.mg(laterality=None, view=position, SeriesDescription=description)
    assert _read(tmp_path, ds).laterality == expected


# ---- view ladder --------------------------------------------------------------------------


def test_view_position_beats_codes_and_text(tmp_path):
    ds = make.mg(view="ML", ViewCodeSequence=make.view_code("MLO"), SeriesDescription="L CC")
    assert _read(tmp_path, ds).view == "ML"


@pytest.mark.parametrize("view", ["CC", "MLO", "ML", "LM", "XCCL"])
def test_view_from_code_sequence(tmp_path, view):
    ds = make.mg(view=None, ViewCodeSequence=make.view_code(view), SeriesDescription="L CC")
    assert _read(tmp_path, ds).view == view


@pytest.mark.parametrize(
    "description, expected",
    [
        ("L MLO", "MLO"),
        ("L ML", "ML"),
        ("RMLO", "MLO"),
        ("RML", "ML"),
        ("Left mediolateral oblique", "MLO"),
        ("Left medio-lateral", "ML"),
        ("R CRANIO-CAUDAL", "CC"),
        ("LXCCL", "XCCL"),
        ("spot compression", None),
    ],
)
def test_view_from_description_keeps_ml_and_mlo_apart(tmp_path, description, expected):
    ds = make.mg(view=None, SeriesDescription=description)
    assert _read(tmp_path, ds).view == expected


def test_unknown_view_position_falls_to_description(tmp_path):
    ds = make.mg(view="LATERAL", SeriesDescription="R MLO")
    assert _read(tmp_path, ds).view == "MLO"


# ---- other fields ---------------------------------------------------------------------------


def test_fields_of_a_full_header(tmp_path):
    ds = make.mg(
        laterality="R", view="MLO", study_uid="1.2.3", patient_id="P9", date="20230102",
        intent="FOR PROCESSING", ImagerPixelSpacing=[0.1, 0.1], EstimatedRadiographicMagnificationFactor=1.25,
        PatientAge="061Y", orientation=["A", "FL"],
    )
    image = _read(tmp_path, ds)
    assert (image.laterality, image.view, image.key) == ("R", "MLO", "RMLO")
    assert image.pixel_spacing_mm == pytest.approx((0.08, 0.08))
    assert image.presentation_intent == "FOR PROCESSING"
    assert (image.study_uid, image.patient_id, image.study_date) == ("1.2.3", "P9", "20230102")
    assert image.patient_age == 61 and image.modality == "MG"
    assert image.source.name == "x.dcm"


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"ImagerPixelSpacing": [0.07, 0.065]}, (0.07, 0.065)),
        ({"PixelSpacing": [0.05, 0.05]}, (0.05, 0.05)),
        ({"ImagerPixelSpacing": [0.1, 0.1], "PixelSpacing": [0.2, 0.2]}, (0.1, 0.1)),
        ({"PixelSpacing": [0, 0]}, None),
        ({}, None),
    ],
)
def test_pixel_spacing(tmp_path, extra, expected):
    image = _read(tmp_path, make.mg(**extra))
    assert image.pixel_spacing_mm == (pytest.approx(expected) if expected else None)


@pytest.mark.filterwarnings("ignore:Invalid value for VR AS")
@pytest.mark.parametrize("age, years", [("045Y", 45), ("018M", 1), ("003W", 0), ("45", 45), ("", None), ("abc", None)])
def test_patient_age(tmp_path, age, years):
    assert _read(tmp_path, make.mg(PatientAge=age or None)).patient_age == years


# ---- orientation ----------------------------------------------------------------------------


def _unit(stored):
    s = stored.astype(np.float64)
    return (s - s.min()) / (s.max() - s.min())


def test_patient_orientation_p_mirrors(tmp_path):
    stored = make.breast(chest_wall="right")
    image = _read(tmp_path, make.mg(pixels=stored, orientation=["P", "L"]))
    assert image.flipped
    np.testing.assert_allclose(image.pixels, _unit(stored)[:, ::-1], atol=1e-6)


def test_patient_orientation_a_keeps(tmp_path):
    # Orientation wins over the content: chest wall drawn on the right, header says 'A'.
    stored = make.breast(chest_wall="right")
    image = _read(tmp_path, make.mg(pixels=stored, orientation=["A", "R"]))
    assert not image.flipped
    np.testing.assert_allclose(image.pixels, _unit(stored), atol=1e-6)


@pytest.mark.parametrize("flip, rotation, flipped", [("YES", None, True), ("NO", None, False), ("YES", 180, False), ("NO", 180, True)])
def test_field_of_view_flip(tmp_path, flip, rotation, flipped):
    stored = make.breast(chest_wall="left")  # content would say "keep"
    ds = make.mg(pixels=stored, FieldOfViewHorizontalFlip=flip, FieldOfViewRotation=rotation)
    assert _read(tmp_path, ds).flipped is flipped


@pytest.mark.parametrize("side, flipped", [("left", False), ("right", True)])
def test_intensity_heuristic(tmp_path, side, flipped):
    stored = make.breast(chest_wall=side)
    image = _read(tmp_path, make.mg(pixels=stored, FieldOfViewHorizontalFlip="YES", FieldOfViewRotation=90))
    assert image.flipped is flipped
    # canonical: tissue touches column 0 whatever the stored side
    assert image.pixels[:, 0].mean() > image.pixels[:, -1].mean()


def test_heuristic_with_monochrome1(tmp_path):
    stored = 4095 - make.breast(chest_wall="right")  # dense tissue stored dark
    image = _read(tmp_path, make.mg(pixels=stored, photometric="MONOCHROME1"))
    assert image.flipped
    assert image.pixels[:, 0].mean() > image.pixels[:, -1].mean()


# ---- tag panel ------------------------------------------------------------------------------


def test_tags_for_display(tmp_path):
    ds = make.mg(ViewCodeSequence=make.view_code("CC"), PatientName="Doe^Jane")
    rows = tags_for_display(make.write(ds, tmp_path / "t.dcm"))
    by_tag = {tag: (name, value) for tag, name, value in rows if tag}
    assert by_tag["(0010,0010)"] == ("Patient's Name", "Doe^Jane")
    assert by_tag["(0020,0062)"] == ("Image Laterality", "L")
    assert by_tag["(0002,0010)"][1] == "1.2.840.10008.1.2.1"
    assert "(7FE0,0010)" not in by_tag
    assert any(name.startswith("> ") and value == "399162004" for _, name, value in rows)
    assert all(isinstance(x, str) for row in rows for x in row)


def test_tags_for_display_real_file():
    path = get_testdata_file("CT_small.dcm", download=False)
    rows = tags_for_display(path)
    assert len(rows) > 50
    assert not any(tag == "(7FE0,0010)" for tag, _, _ in rows)
