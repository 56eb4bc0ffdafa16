"""RSNA and generic readers, reader detection, label CSVs, DICOM folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mama_core.captions import build_caption
from mama_core.data import ImageRecord, apply_labels, load_generic, load_records, load_rsna
from mama_core.data.folder import dicom_age_years
from mama_core.errors import DataError

RSNA_COLUMNS = ["site_id", "patient_id", "image_id", "laterality", "view", "age", "cancer", "density", "BIRADS"]


def write_csv(path: Path, columns: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


@pytest.fixture
def rsna_csv(tmp_path: Path) -> Path:
    rows = [
        [2, 10006, 462822612, "L", "CC", 61.0, 0, "", ""],
        [2, 10006, 1459541791, "L", "MLO", 61.0, 0, "B", 1],
        [1, 10011, 220375232, "R", "MLO", 55.0, 1, "C", 0],
    ]
    return write_csv(tmp_path / "train.csv", RSNA_COLUMNS, rows)


def test_rsna_reader(rsna_csv, tmp_path):
    records = load_rsna(rsna_csv)
    assert [r.path for r in records][0] == tmp_path / "10006" / "462822612.dcm"
    a, b, c = records
    assert (a.patient_id, a.study_id, a.laterality, a.view) == ("10006", "10006", "L", "CC")
    assert a.density is None and a.birads is None and a.cancer == 0
    assert (b.density, b.birads) == (2, 1)
    assert (c.density, c.birads, c.cancer, c.laterality) == (3, 0, 1, "R")
    assert c.meta["age_at_study"] == "55.0" and c.meta["tissueden"] == 3
    assert "age is 55 years old" in build_caption(c.meta)


def test_rsna_kaggle_image_folder(rsna_csv, tmp_path):
    (tmp_path / "train_images").mkdir()
    assert load_rsna(rsna_csv)[0].path == tmp_path / "train_images" / "10006" / "462822612.dcm"
    assert load_rsna(rsna_csv, image_root=tmp_path / "x")[0].path.parent.parent == tmp_path / "x"


def test_rsna_errors(tmp_path):
    bad = write_csv(tmp_path / "train.csv", ["patient_id", "image_id", "laterality", "cancer"], [[1, 2, "L", 0]])
    with pytest.raises(DataError, match=r"train\.csv.*view"):
        load_rsna(bad)
    bad = write_csv(tmp_path / "t2.csv", RSNA_COLUMNS, [[1, 1, 2, "L", "CC", 50, 2, "", ""]])
    with pytest.raises(DataError, match=r"cancer='2' is not 0 or 1 \(row 2\)"):
        load_rsna(bad)
    bad = write_csv(tmp_path / "t3.csv", RSNA_COLUMNS, [[1, 1, 2, "L", "CC", 50, 0, "E", ""]])
    with pytest.raises(DataError, match="density='E'"):
        load_rsna(bad)


def test_generic_reader(tmp_path):
    columns = ["path", "patient_id", "study_id", "laterality", "view", "birads", "density", "cancer", "RACE_DESC", "massshape"]
    rows = [
        ["s1/a.dcm", "P1", "S1", "left", "cc", "S", "3", "1", "Asian", "X"],
        ["/abs/s2/b.dcm", "", "S2", "R", "MLO", "2", "", "", "", ""],
        ["study9/c.dcm", "", "", "", "", "", "", "", "", ""],
    ]
    a, b, c = load_generic(write_csv(tmp_path / "list.csv", columns, rows))
    assert a.path == tmp_path / "s1" / "a.dcm" and (a.laterality, a.view) == ("L", "CC")
    assert (a.birads, a.density, a.cancer) == (4, 3, 1)
    assert a.meta["RACE_DESC"] == "Asian" and a.meta["asses"] == 4 and a.meta["tissueden"] == 3
    assert "A mass is present in the breast." in build_caption(a.meta)
    assert b.path == Path("/abs/s2/b.dcm") and b.patient_id == "S2" and b.birads == 2
    assert (c.study_id, c.patient_id, c.laterality, c.birads) == ("study9", "study9", None, None)
    assert c.meta == {}


def test_generic_embed_named_labels(tmp_path):
    rows = [["x.dcm", "K", "4", "R", "CC"]]
    (r,) = load_generic(write_csv(tmp_path / "g.csv", ["path", "asses", "tissueden", "ImageLateralityFinal", "ViewPosition"], rows))
    assert (r.birads, r.density, r.laterality, r.view) == (6, 4, "R", "CC")


def test_generic_missing_path_column(tmp_path):
    with pytest.raises(DataError, match=r"g\.csv.*path"):
        load_generic(write_csv(tmp_path / "g.csv", ["file", "birads"], [["a.dcm", 1]]))


def test_load_records_detection(rsna_csv, tmp_path):
    assert len(load_records(rsna_csv)) == 3  # named train.csv
    renamed = write_csv(tmp_path / "other.csv", RSNA_COLUMNS, [[1, 5, 6, "L", "CC", 40, 0, "", ""]])
    assert load_records(renamed)[0].patient_id == "5"  # RSNA columns
    generic = write_csv(tmp_path / "list.csv", ["path"], [["q/z.dcm"]])
    assert load_records(generic)[0].study_id == "q"
    unknown = write_csv(tmp_path / "unk.csv", ["a", "b"], [[1, 2]])
    with pytest.raises(DataError, match=r"unk\.csv.*path"):
        load_records(unknown)
    with pytest.raises(DataError, match="not found"):
        load_records(tmp_path / "missing")
    assert len(load_records(tmp_path)) == 3  # a folder holding train.csv


def _records() -> list[ImageRecord]:
    return [
        ImageRecord(Path(f"{study}{key}.dcm"), "P", study, key[0], key[1:], {"ImageLateralityFinal": key[0]})
        for study in ("S1", "S2")
        for key in ("LCC", "RCC", "LMLO")
    ]


def test_labels_csv_most_specific_row_wins(tmp_path):
    rows = [
        ["S1", "", "", "1", "2", "0"],  # whole study
        ["S1", "LCC", "", "4", "", "1"],  # one image
        ["S2", "", "R", "3", "", ""],  # one side, via laterality column
    ]
    labels = write_csv(tmp_path / "labels.csv", ["StudyInstanceUID", "view_key", "laterality", "birads", "density", "cancer"], rows)
    records = {(r.study_id, f"{r.laterality}{r.view}"): r for r in apply_labels(_records(), labels)}
    assert (records[("S1", "LCC")].birads, records[("S1", "LCC")].cancer) == (4, 1)
    assert (records[("S1", "RCC")].birads, records[("S1", "RCC")].density, records[("S1", "RCC")].cancer) == (1, 2, 0)
    assert records[("S2", "RCC")].birads == 3 and records[("S2", "LCC")].birads is None
    assert records[("S1", "LCC")].meta["asses"] == 4  # the caption sees the label


def test_labels_csv_errors(tmp_path):
    with pytest.raises(DataError, match="study_id"):
        apply_labels(_records(), write_csv(tmp_path / "l.csv", ["key", "birads"], [["LCC", 1]]))
    dup = write_csv(tmp_path / "d.csv", ["study_id", "key", "birads"], [["S1", "LCC", 1], ["S1", "lcc", 2]])
    with pytest.raises(DataError, match="duplicate.*row 3"):
        apply_labels(_records(), dup)


@pytest.mark.parametrize("age, years", [("062Y", 62), ("006M", 0), ("030W", 0), (None, None), ("62", None), ("", None)])
def test_dicom_age_string(age, years):
    assert dicom_age_years(age) == years


def _write_mg(path: Path, study_uid: str, laterality: str, view: str) -> None:
    """A tiny but complete MG DICOM (header fields the study finder and the meta use)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.PatientID, ds.PatientAge, ds.Modality = "PAT1", "058Y", "MG"
    ds.StudyDescription = "MG Screening Bilateral"
    ds.ImageLaterality, ds.ViewPosition = laterality, view
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 8).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_folder_without_tables(tmp_path):
    from mama_core import dicom

    for laterality in "LR":
        for view in ("CC", "MLO"):
            _write_mg(tmp_path / f"{laterality}{view}.dcm", "1.2.3.4", laterality, view)
    records = load_records(tmp_path)
    assert sorted(f"{r.laterality}{r.view}" for r in records) == ["LCC", "LMLO", "RCC", "RMLO"]
    r = records[0]
    assert r.study_id == "1.2.3.4" and r.patient_id == "PAT1" and r.birads is None
    assert r.meta["age_at_study"] == 58 and r.meta["ViewPosition"] == r.view
    labels = write_csv(tmp_path / "labels.csv", ["study_id", "birads"], [["1.2.3.4", "N"]])
    labelled = load_records(tmp_path, labels=labels)
    assert {x.birads for x in labelled} == {1}


def test_labels_csv_accepts_full_view_key_in_view_column(tmp_path):
    """The simple label format `study_id,view,density` with view = 'LCC' labels one image."""
    from mama_core.data import ImageRecord
    from mama_core.data.folder import apply_labels

    labels = tmp_path / "labels.csv"
    labels.write_text("study_id,view,density\nS1,LCC,4\nS1,RCC,2\n", encoding="utf-8")
    records = [
        ImageRecord(path=tmp_path / "a.dcm", patient_id="P", study_id="S1", laterality="L", view="CC", meta={}),
        ImageRecord(path=tmp_path / "b.dcm", patient_id="P", study_id="S1", laterality="R", view="CC", meta={}),
        ImageRecord(path=tmp_path / "c.dcm", patient_id="P", study_id="S1", laterality="L", view="MLO", meta={}),
    ]
    apply_labels(records, labels)
    assert [r.density for r in records] == [4, 2, None]
