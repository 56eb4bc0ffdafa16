"""Folder scanning: grouping by study, view keys, problems, skipped files, speed."""

from __future__ import annotations

import shutil

import pydicom
import pytest
from pydicom.data import get_testdata_file

from mama_core.dicom import STANDARD_KEYS, find_studies, load_study, read_image
from mama_core.errors import DicomError

from . import make


def test_complete_study(tmp_path):
    paths = make.four_views(tmp_path / "s1", study_uid="1.2.1", patient_id="P1", date="20240105")
    [study] = find_studies(tmp_path)
    assert study.uid == "1.2.1" and study.patient_id == "P1" and study.date == "20240105"
    assert study.images == paths
    assert study.problems == [] and study.complete


def test_grouping_sorting_and_missing_views(tmp_path):
    make.four_views(tmp_path / "b", study_uid="1.2.9", date="20240301")
    make.write(make.mg(laterality="L", view="CC", study_uid="1.2.5", date="20220101"), tmp_path / "a" / "x1.dcm")
    make.write(make.mg(laterality="R", view="CC", study_uid="1.2.5", date="20220101"), tmp_path / "a" / "x2.dcm")
    make.write(make.mg(laterality="R", view="CC", study_uid="1.2.7", date="20220101"), tmp_path / "c" / "y.dcm")
    studies = find_studies(tmp_path)
    assert [s.uid for s in studies] == ["1.2.5", "1.2.7", "1.2.9"]  # date, then uid
    first = studies[0]
    assert set(first.images) == {"LCC", "RCC"}
    assert "missing RMLO" in first.problems and "missing LMLO" in first.problems
    assert not first.complete


def test_extra_views_have_their_own_keys(tmp_path):
    uid = "1.2.3"
    make.four_views(tmp_path, study_uid=uid)
    make.write(make.mg(laterality="L", view="XCCL", study_uid=uid), tmp_path / "xccl.dcm")
    make.write(make.mg(laterality="R", view="ML", study_uid=uid), tmp_path / "ml.dcm")
    [study] = find_studies(tmp_path)
    assert {"LXCCL", "RML", "RMLO"} <= set(study.images)
    assert study.problems == []


def test_keys_use_fallback_ladders(tmp_path):
    uid = "1.2.4"
    make.write(make.mg(laterality=None, view=None, study_uid=uid, SeriesDescription="R MLO"), tmp_path / "a.dcm")
    make.write(
        make.mg(laterality=None, view=None, study_uid=uid, ViewCodeSequence=make.view_code("CC"),
                **make.frame_laterality("L")),
        tmp_path / "b.dcm",
    )
    [study] = find_studies(tmp_path)
    assert study.images["RMLO"].name == "a.dcm"
    assert study.images["LCC"].name == "b.dcm"


def test_duplicates_are_kept_with_suffix(tmp_path):
    paths = make.four_views(tmp_path, study_uid="1.2.3")
    second = make.write(make.mg(laterality="L", view="CC", study_uid="1.2.3"), tmp_path / "zz_again.dcm")
    third = make.write(make.mg(laterality="L", view="CC", study_uid="1.2.3"), tmp_path / "zz_third.dcm")
    [study] = find_studies(tmp_path)
    assert study.images["LCC"] == paths["LCC"]
    assert study.images["LCC#2"] == second and study.images["LCC#3"] == third
    assert sum("duplicate LCC" in p for p in study.problems) == 2


def test_for_processing_skipped_when_presentation_exists(tmp_path):
    paths = make.four_views(tmp_path, study_uid="1.2.3")
    raw = make.write(make.mg(laterality="L", view="CC", study_uid="1.2.3", intent="FOR PROCESSING"), tmp_path / "a_raw.dcm")
    [study] = find_studies(tmp_path)
    assert study.images["LCC"] == paths["LCC"]
    assert raw not in study.images.values()
    assert any("skipped FOR PROCESSING" in p and str(raw) in p for p in study.problems)


def test_for_processing_kept_and_flagged_when_alone(tmp_path):
    raw = make.write(make.mg(laterality="R", view="CC", study_uid="1.2.3", intent="FOR PROCESSING"), tmp_path / "raw.dcm")
    [study] = find_studies(tmp_path)
    assert study.images["RCC"] == raw
    assert any("only a FOR PROCESSING" in p for p in study.problems)


def test_unknown_laterality_or_view_is_a_problem(tmp_path):
    make.four_views(tmp_path, study_uid="1.2.3")
    odd = make.write(make.mg(laterality=None, view=None, study_uid="1.2.3"), tmp_path / "odd.dcm")
    [study] = find_studies(tmp_path)
    assert odd not in study.images.values()
    assert any(str(odd) in p and "unknown laterality/view" in p for p in study.problems)


def test_non_dicom_and_non_mg_are_reported_not_fatal(tmp_path):
    make.four_views(tmp_path / "study", study_uid="1.2.3")
    (tmp_path / "study" / "notes.txt").write_text("not dicom")
    (tmp_path / "study" / ".DS_Store").write_bytes(b"\x00" * 10)  # hidden: ignored silently
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), tmp_path / "study" / "ct.dcm")
    full = make.write(make.mg(study_uid="1.2.3"), tmp_path / "full.dcm").read_bytes()
    (tmp_path / "full.dcm").unlink()
    (tmp_path / "study" / "broken.dcm").write_bytes(full[:400])
    report: list = []
    [study] = find_studies(tmp_path, report=report)
    reasons = {path.name: reason for path, reason in report}
    assert set(reasons) == {"notes.txt", "ct.dcm", "broken.dcm"}
    assert "not a DICOM" in reasons["notes.txt"]
    assert "CT is not MG" in reasons["ct.dcm"]
    assert "truncated" in reasons["broken.dcm"]
    assert study.complete
    assert any("unreadable file" in p and "broken.dcm" in p for p in study.problems)


def test_truncated_pixel_data_is_caught_from_headers(tmp_path):
    paths = make.four_views(tmp_path, study_uid="1.2.3")
    paths["LCC"].write_bytes(paths["LCC"].read_bytes()[:-500])
    report: list = []
    [study] = find_studies(tmp_path, report=report)
    assert report == [(paths["LCC"], "truncated file: an element holds fewer bytes than its declared length")]
    assert "missing LCC" in study.problems
    assert any("unreadable file" in p for p in study.problems)


@pytest.mark.parametrize("name", ["RG3_J2KI.dcm", "image_dfl.dcm"])
def test_compressed_and_deflated_files_are_scanned(tmp_path, name):
    # Real JPEG 2000 / deflated files relabelled as MG: the pixel-extent check (native only)
    # must not misfire on them, and they must still decode.
    ds = pydicom.dcmread(get_testdata_file(name, download=False))
    ds.Modality, ds.ImageLaterality, ds.ViewPosition, ds.StudyInstanceUID = "MG", "R", "CC", "1.2.3"
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    report: list = []
    [study] = find_studies(tmp_path, report=report)
    assert report == [] and study.images == {"RCC": tmp_path / "x.dcm"}
    assert read_image(tmp_path / "x.dcm").pixels.shape == (ds.Rows, ds.Columns)


def test_empty_folder(tmp_path):
    assert find_studies(tmp_path) == []
    with pytest.raises(DicomError, match="no mammography study"):
        load_study(tmp_path)


def test_load_study_folder_and_file(tmp_path):
    paths = make.four_views(tmp_path / "one", study_uid="1.2.3")
    study = load_study(tmp_path / "one")
    assert study.uid == "1.2.3" and study.complete
    single = load_study(paths["LMLO"])
    assert single.uid == "1.2.3" and single.images == {"LMLO": paths["LMLO"]}
    assert "missing RCC" in single.problems


def test_load_study_refuses_several_studies(tmp_path):
    make.four_views(tmp_path / "a", study_uid="1.2.3")
    make.four_views(tmp_path / "b", study_uid="1.2.4")
    with pytest.raises(DicomError, match="2 studies"):
        load_study(tmp_path)


def test_conflicting_patient_ids_are_flagged(tmp_path):
    make.write(make.mg(laterality="L", view="CC", study_uid="1.2.3", patient_id="A"), tmp_path / "a.dcm")
    make.write(make.mg(laterality="R", view="CC", study_uid="1.2.3", patient_id="B"), tmp_path / "b.dcm")
    [study] = find_studies(tmp_path)
    assert any("disagree on PatientID" in p for p in study.problems)


def test_scanning_100_files_groups_every_study(tmp_path):
    # Its speed (100 files in under 1.5 s) is a target of benchmarks/folder_scan.py.
    for i in range(25):
        make.four_views(tmp_path / f"s{i:02d}", study_uid=f"1.2.{i}", date=f"202401{i % 28 + 1:02d}")
    studies = find_studies(tmp_path)
    assert sorted(s.uid for s in studies) == sorted(f"1.2.{i}" for i in range(25))
    assert all(s.complete for s in studies)
    assert all(len(s.images) == len(STANDARD_KEYS) for s in studies)
