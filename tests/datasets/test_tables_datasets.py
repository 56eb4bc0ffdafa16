"""VinDr-Mammo, RSNA, CMMD, INbreast and mini-MIAS on fixture tables in each dataset's exact
column layout (docs/datasets.md), with small DICOM / PGM / plist files written here."""

from __future__ import annotations

import plistlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from mama_core.data import load_records
from mama_core.datasets import canonical_lesions, clear_cache, detect_dataset, lesions_for_image
from mama_core.datasets.inbreast import read_rois
from mama_core.errors import DataError
from tests.datasets.helpers import breast_image, write_csv, write_dicom


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_cache()
    yield
    clear_cache()


# ---------------------------------------------------------------- VinDr-Mammo

FINDING_HEADER = ("study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density,"
                  "finding_categories,finding_birads,xmin,ymin,xmax,ymax,split")
BREAST_HEADER = "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density,split"
STUDY, SERIES = "4e3a578fdc1b9e3b6e0a6e8a4f2c1d0b", "d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2"


def vindr_rows():
    common = [STUDY, SERIES]
    return [
        [*common, "aa01", "L", "CC", 3518, 2800, "BI-RADS 1", "DENSITY C", "['No Finding']", "", "", "", "", "", "training"],
        [*common, "aa02", "R", "MLO", 3518, 2800, "BI-RADS 4", "DENSITY C", "['Mass']", "BI-RADS 4",
         "2010.5", "1200.25", "2300.0", "1500.75", "training"],
        [*common, "aa02", "R", "MLO", 3518, 2800, "BI-RADS 4", "DENSITY C",
         "['Suspicious Calcification', 'Focal Asymmetry']", "BI-RADS 3", "-12.0", "100", "40", "3600", "training"],
        [*common, "aa03", "R", "CC", 3518, 2800, "BI-RADS 2", "DENSITY D", "['Skin Thickening']", "", "0", "5", "10", "15", "test"],
    ]


def test_vindr(tmp_path):
    root = tmp_path / "vindr-mammo" / "1.0.0"
    write_csv(root / "finding_annotations.csv", FINDING_HEADER.split(","), vindr_rows())
    write_csv(root / "breast-level_annotations.csv", BREAST_HEADER.split(","), [
        [STUDY, SERIES, "aa01", "L", "CC", 3518, 2800, "BI-RADS 1", "DENSITY C", "training"],
        [STUDY, SERIES, "aa02", "R", "MLO", 3518, 2800, "BI-RADS 4", "DENSITY C", "training"],
        [STUDY, SERIES, "aa03", "R", "CC", 3518, 2800, "BI-RADS 2", "DENSITY D", "test"],
        [STUDY, SERIES, "aa04", "L", "MLO", 3518, 2800, "BI-RADS 1", "DENSITY C", "training"],
    ])
    assert detect_dataset(root).adapter.name == "vindr-mammo"
    records = {r.path.name: r for r in load_records(root)}
    assert set(records) == {"aa01.dicom", "aa02.dicom", "aa03.dicom", "aa04.dicom"}
    rmlo = records["aa02.dicom"]
    assert rmlo.path == root / "images" / STUDY / "aa02.dicom"
    assert (rmlo.laterality, rmlo.view, rmlo.birads, rmlo.density, rmlo.cancer) == ("R", "MLO", 4, 3, None)
    assert rmlo.patient_id == rmlo.study_id == STUDY
    lesions = lesions_for_image(rmlo.path)
    assert [(les.kind, les.box) for les in lesions] == [
        ("mass", (2010.5, 1200.25, 2300.0, 1500.75)),
        ("calcification", (0.0, 100.0, 40.0, 3518.0)),  # clipped to the image
        ("asymmetry", (0.0, 100.0, 40.0, 3518.0)),
    ]
    assert lesions_for_image(records["aa03.dicom"].path)[0].kind == "other"
    assert lesions_for_image(records["aa01.dicom"].path) == []


def test_vindr_findings_table_alone_and_bad_cell(tmp_path):
    write_csv(tmp_path / "finding_annotations.csv", FINDING_HEADER.split(","), vindr_rows())
    assert len(load_records(tmp_path)) == 3  # one record per image, not per finding row
    rows = vindr_rows()
    rows[1][9] = "[Mass"
    write_csv(tmp_path / "finding_annotations.csv", FINDING_HEADER.split(","), rows)
    clear_cache()
    with pytest.raises(DataError, match="finding_categories"):
        load_records(tmp_path)


# ---------------------------------------------------------------- RSNA

RSNA_TRAIN = "site_id,patient_id,image_id,laterality,view,age,cancer,biopsy,invasive,BIRADS,implant,density,machine_id,difficult_negative_case"
RSNA_TEST = "site_id,patient_id,image_id,laterality,view,age,implant,machine_id,prediction_id"


def test_rsna_folder(tmp_path):
    write_csv(tmp_path / "train.csv", RSNA_TRAIN.split(","), [
        [2, 10006, 462822612, "L", "CC", 61.0, 0, 0, 0, "", 0, "", 29, "False"],
        [1, 10011, 220375232, "R", "AT", 55.0, 1, 1, 1, 0, 0, "C", 49, "False"],
    ])
    (tmp_path / "train_images").mkdir()
    assert detect_dataset(tmp_path).adapter.name == "rsna"
    a, b = load_records(tmp_path)
    assert a.path == tmp_path / "train_images" / "10006" / "462822612.dcm"
    assert (a.birads, a.density, a.cancer) == (None, None, 0)
    assert (b.view, b.birads, b.density, b.cancer) == ("AT", 0, 3, 1)


def test_rsna_test_table_only(tmp_path):
    write_csv(tmp_path / "test.csv", RSNA_TEST.split(","), [[2, 10008, 736471439, "L", "MLO", 81, 0, 21, "10008_L"]])
    (record,) = load_records(tmp_path)
    assert record.cancer is None and record.laterality == "L"


# ---------------------------------------------------------------- CMMD

CMMD_HEADER = "ID1,LeftRight,Age,number,abnormality,classification,subtype"


def cmmd_image(path: Path, side: str, code: str, meaning: str) -> None:
    view = Dataset()
    view.CodeValue, view.CodingSchemeDesignator, view.CodeMeaning = code, "SCT", meaning
    write_dicom(path, np.zeros((8, 6), np.uint8), SOPClassUID="1.2.840.10008.5.1.4.1.1.1.2", ImageLaterality=side,
                ViewCodeSequence=[view], PatientID=path.parts[-4])


def test_cmmd(tmp_path):
    write_csv(tmp_path / "CMMD_clinicaldata_revision.csv", CMMD_HEADER.split(","), [
        ["D1-0001", "L", 44, 2, "calcification", "Benign", ""],
        ["D2-0002", "R", 61, 2, "both", "Malignant", "Luminal B"],
    ])
    series = "07-18-2010-49690/1.000000-35817"
    cmmd_image(tmp_path / "CMMD/D1-0001" / series / "1-1.dcm", "L", "399162004", "cranio-caudal")
    cmmd_image(tmp_path / "CMMD/D1-0001" / series / "1-2.dcm", "L", "399368009", "medio-lateral oblique")
    cmmd_image(tmp_path / "CMMD/D1-0001" / series / "1-3.dcm", "R", "399162004", "cranio-caudal")
    # the one two-image study whose 1-1 is the MLO: the view comes from the header, not the number
    cmmd_image(tmp_path / "CMMD/D2-0002" / series / "1-1.dcm", "R", "399368009", "medio-lateral oblique")
    assert detect_dataset(tmp_path).adapter.name == "cmmd"
    records = {(r.patient_id, r.path.name): r for r in load_records(tmp_path)}
    assert {k: (r.laterality, r.view, r.cancer) for k, r in records.items()} == {
        ("D1-0001", "1-1.dcm"): ("L", "CC", 0), ("D1-0001", "1-2.dcm"): ("L", "MLO", 0),
        ("D1-0001", "1-3.dcm"): ("R", "CC", None),  # an unlabelled breast stays unknown
        ("D2-0002", "1-1.dcm"): ("R", "MLO", 1),
    }
    assert records[("D2-0002", "1-1.dcm")].meta["age_at_study"] == "61"


def test_cmmd_semicolon_export_and_bad_label(tmp_path):
    write_csv(tmp_path / "CMMD_clinicaldata_revision.csv", CMMD_HEADER.split(","),
              [["D1-0001", "L", 44, 2, "mass", "Unknown", ""]], delimiter=";")
    cmmd_image(tmp_path / "D1-0001/a/b/1-1.dcm", "L", "399162004", "cranio-caudal")
    with pytest.raises(DataError, match="classification"):
        load_records(tmp_path)


def test_cmmd_xlsx_as_distributed(tmp_path):
    """The clinical table ships as .xlsx: read through openpyxl, same labels as the CSV."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(CMMD_HEADER.split(","))
    book.active.append(["D2-0002", "R", 61, 2, "both", "Malignant", "Luminal B"])
    book.save(tmp_path / "CMMD_clinicaldata_revision.xlsx")
    cmmd_image(tmp_path / "CMMD/D2-0002/a/b/1-1.dcm", "R", "399368009", "medio-lateral oblique")
    (record,) = load_records(tmp_path)
    assert (record.laterality, record.view, record.cancer) == ("R", "MLO", 1)


def test_cmmd_damaged_xlsx_is_a_clear_error(tmp_path):
    (tmp_path / "CMMD_clinicaldata_revision.xlsx").write_bytes(b"PK\x03\x04")
    cmmd_image(tmp_path / "CMMD/D1-0001/a/b/1-1.dcm", "L", "399162004", "cranio-caudal")
    with pytest.raises(DataError, match="xlsx"):
        load_records(tmp_path)


# ---------------------------------------------------------------- INbreast

INBREAST_HEADER = "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads"


def roi(name: str, points: list[tuple[float, float]]) -> dict:
    """An ROI dict with the keys OsiriX writes, in file order."""
    return {"Area": 1.0, "Center": "(0, 0, 0)", "Dev": 0.0, "IndexInImage": 0, "Max": 1.0, "Mean": 1.0, "Min": 0.0,
            "Name": name, "NumberOfPoints": len(points), "Point_mm": [f"({x * 0.07}, {y * 0.07}, 0)" for x, y in points],
            "Point_px": [f"({x}, {y})" for x, y in points], "Total": 1.0, "Type": 15 if len(points) > 1 else 19}


def test_inbreast(tmp_path):
    root = tmp_path / "INbreast Release 1.0"
    write_csv(root / "INbreast.csv", INBREAST_HEADER.split(";"), [
        ["removed", "removed", "R", "MLO", "200701", "22678622", "4", "4c"],
        ["removed", "removed", "L", "CC", "200701", "22678646", "   ", "1"],
    ], delimiter=";", lineterminator="\r\n")
    for name in ("22678622_61b13c59bcba149e_MG_R_ML_ANON.dcm", "22678646_61b13c59bcba149e_MG_L_CC_ANON.dcm"):
        (root / "AllDICOMs").mkdir(parents=True, exist_ok=True)
        (root / "AllDICOMs" / name).write_bytes(b"")  # the adapter reads names and tables, not pixels
    document = {"Images": [{"ImageIndex": 0, "NumberOfROIs": 3, "ROIs": [
        roi("Mass", [(100.5, 200.0), (140.0, 180.0), (160.0, 230.0)]),
        roi("Calcification", [(300.0, 400.0)]),
        roi("Assymetry", [(10.0, 10.0), (20.0, 30.0)]),
    ]}]}
    (root / "AllXML").mkdir()
    with open(root / "AllXML" / "22678622.xml", "wb") as handle:
        plistlib.dump(document, handle, fmt=plistlib.FMT_XML)
    assert detect_dataset(root).adapter.name == "inbreast"
    records = {r.path.name[:8]: r for r in load_records(root)}
    rmlo, lcc = records["22678622"], records["22678646"]
    assert (rmlo.laterality, rmlo.view, rmlo.birads, rmlo.density) == ("R", "MLO", 4, 4)
    assert (lcc.laterality, lcc.view, lcc.birads, lcc.density) == ("L", "CC", 1, None)
    assert rmlo.patient_id == lcc.patient_id == "61b13c59bcba149e" and rmlo.study_id == "61b13c59bcba149e_200701"
    mass, calc, asym = lesions_for_image(rmlo.path)
    assert mass.kind == "mass" and mass.shape == "polygon" and mass.box == (100.5, 180.0, 160.0, 230.0)
    assert calc.kind == "calcification" and calc.shape == "circle" and calc.circle[:2] == (300.0, 400.0)
    assert asym.kind == "asymmetry" and asym.label == "Assymetry"
    assert lesions_for_image(lcc.path) == []


def test_inbreast_bad_xml_is_named(tmp_path):
    (tmp_path / "1.xml").write_text("<plist><dict><key>Images</key>")
    with pytest.raises(DataError, match="1.xml"):
        read_rois(tmp_path / "1.xml")


# ---------------------------------------------------------------- mini-MIAS

MIAS_INFO = """REFNUM BG CLASS SEVERITY X Y RADIUS 
mdb001 G CIRC B 535 425 197 
mdb002 G CIRC B 522 280 69 
mdb003 D NORM 
mdb005 F CIRC B 477 133 30 
mdb005 F CIRC B 500 168 26 
mdb219 G CALC B 
mdb023 G CIRC M 538 681 29 
"""


def test_mini_mias(tmp_path):
    (tmp_path / "Info.txt").write_text(MIAS_INFO)
    for n in (1, 2, 3, 5, 23):
        Image.fromarray(np.zeros((1024, 1024), np.uint8)).save(tmp_path / f"mdb{n:03d}.pgm")
    assert detect_dataset(tmp_path).adapter.name == "mini-mias"
    records = {r.path.stem: r for r in load_records(tmp_path)}
    assert {k: (r.laterality, r.view, r.cancer, r.patient_id) for k, r in records.items()} == {
        "mdb001": ("R", "MLO", 0, "mias-001"), "mdb002": ("L", "MLO", 0, "mias-001"),
        "mdb003": ("R", "MLO", 0, "mias-002"), "mdb005": ("R", "MLO", 0, "mias-003"),
        "mdb023": ("R", "MLO", 1, "mias-012"),
    }
    (circle,) = lesions_for_image(tmp_path / "mdb001.pgm")
    assert circle.kind == "mass" and circle.circle == (535.0, 1024 - 425.0, 197.0)  # origin bottom-left
    assert circle.box == (535 - 197.0, 599 - 197.0, 535 + 197.0, 599 + 197.0)
    assert len(lesions_for_image(tmp_path / "mdb005.pgm")) == 2
    assert lesions_for_image(tmp_path / "mdb003.pgm") == []


def test_mini_mias_circle_in_the_displayed_frame(tmp_path):
    """A right breast stored with its chest wall on the right: read_image mirrors the PGM and
    the circle moves with it."""
    (tmp_path / "Info.txt").write_text(MIAS_INFO)
    Image.fromarray((breast_image(1024, 1024, chest_wall_left=False) // 16).astype(np.uint8)).save(tmp_path / "mdb001.pgm")
    (stored,) = lesions_for_image(tmp_path / "mdb001.pgm")
    (shown,) = canonical_lesions(tmp_path / "mdb001.pgm", [stored])
    assert shown.circle == (1024 - 535.0, 599.0, 197.0) and shown.box[0] == 1024 - 535.0 - 197.0
