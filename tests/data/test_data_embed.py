"""EMBED join rules (docs/method.md §1.11) and table errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mama_core.captions import build_caption
from mama_core.data import load_embed, load_records
from mama_core.errors import DataError

META_COLUMNS = ["empi_anon", "acc_anon", "anon_dicom_path", "ImageLateralityFinal", "ViewPosition", "FinalImageType", "StudyDescription"]
CLIN_COLUMNS = ["empi_anon", "acc_anon", "side", "asses", "tissueden", "massshape", "massdens", "calcfind", "calcdistri", "RACE_DESC", "ETHNIC_GROUP_DESC", "age_at_study"]


def write_csv(path: Path, columns: list[str], rows: list[list[object]], encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def _image(patient, exam, side, view, kind="2D"):
    return [patient, exam, f"images/{exam}/{side}{view}_{kind}.dcm", side, view, kind, "MG Screening Bilateral"]


@pytest.fixture
def embed_dir(tmp_path: Path) -> Path:
    metadata = [
        *(_image("P1", "E1", s, v) for s in "LR" for v in ("CC", "MLO")),
        _image("P1", "E1", "L", "CC", kind="cview"),  # not 2D: dropped
        _image("P2", "E2", "L", "CC"),
        _image("P2", "E2", "R", "CC"),
        _image("P3", "E3", "L", "MLO"),  # exam without clinical rows
    ]
    clinical = [
        # E1: left benign oval mass; right suspicious irregular mass with calcifications; 'B' negative
        ["P1", "E1", "L", "B", "2", "O", "=", "", "", "Asian", "Non-Hispanic or Latino", "55"],
        ["P1", "E1", "R", "S", "3", "X", "+", "P", "G", "Asian", "Non-Hispanic or Latino", "55"],
        ["P1", "E1", "B", "N", "", "", "", "", "", "Asian", "Non-Hispanic or Latino", "55"],
        # E2: left rows 1 and 3 (3 must win over a later lower one); 'B' row category 0 applies to both
        ["P2", "E2", "L", "N", "1", "", "", "", "", "Caucasian or White", "Unknown", "70"],
        ["P2", "E2", "L", "P", "2", "R", "", "", "", "Caucasian or White", "Unknown", "70"],
        ["P2", "E2", "B", "A", "", "", "", "", "", "Caucasian or White", "Unknown", "70"],
    ]
    write_csv(tmp_path / "metadata.csv", META_COLUMNS, metadata)
    write_csv(tmp_path / "clinical.csv", CLIN_COLUMNS, clinical)
    return tmp_path


def _by_key(records):
    return {(r.study_id, f"{r.laterality}{r.view}"): r for r in records}


def test_only_2d_images_kept(embed_dir):
    records = load_embed(embed_dir / "metadata.csv", embed_dir / "clinical.csv")
    assert len(records) == 7
    assert all(r.meta["FinalImageType"] == "2D" for r in records)


def test_side_match_b_rows_and_highest_birads(embed_dir):
    records = _by_key(load_embed(embed_dir / "metadata.csv", embed_dir / "clinical.csv"))
    # E1: left gets max(L=2, B=1) = 2, right gets max(R=4, B=1) = 4
    assert records[("E1", "LCC")].birads == 2 and records[("E1", "LMLO")].birads == 2
    assert records[("E1", "RCC")].birads == 4 and records[("E1", "RMLO")].birads == 4
    # E2: left max(1, 3, B=0) = 3; right only the 'B' row applies -> 0
    assert records[("E2", "LCC")].birads == 3
    assert records[("E2", "RCC")].birads == 0


def test_findings_follow_the_chosen_row(embed_dir):
    records = _by_key(load_embed(embed_dir / "metadata.csv", embed_dir / "clinical.csv"))
    left, right = records[("E1", "LCC")], records[("E1", "RCC")]
    assert left.meta["massshape"] == "O" and "calcfind" not in left.meta
    assert right.meta["massshape"] == "X" and right.meta["calcfind"] == "P"
    caption = build_caption(right.meta)
    assert "A mass is present in the breast." in caption
    assert "Calcifications are present in the breast." in caption
    assert "side is right" in caption and "BI-RADS Category 4:" in caption
    # E2 right: the 'B' row has no mass, so no mass sentence even though the left has one
    assert "mass" not in build_caption(records[("E2", "RCC")].meta).lower()


def test_density_is_exam_max_and_patient_fields_from_clinical(embed_dir):
    records = _by_key(load_embed(embed_dir / "metadata.csv", embed_dir / "clinical.csv"))
    assert {records[("E1", k)].density for k in ("LCC", "RCC", "LMLO", "RMLO")} == {3}
    assert records[("E2", "RCC")].density == 2
    meta = records[("E1", "LCC")].meta
    assert meta["RACE_DESC"] == "Asian" and meta["age_at_study"] == "55" and meta["tissueden"] == 3
    assert records[("E1", "LCC")].patient_id == "P1"


def test_missing_clinical_rows_keep_the_image_unlabelled(embed_dir):
    record = _by_key(load_embed(embed_dir / "metadata.csv", embed_dir / "clinical.csv"))[("E3", "LMLO")]
    assert record.birads is None and record.density is None and record.cancer is None
    assert record.patient_id == "P3"
    assert "tissueden" not in record.meta and "asses" not in record.meta


def test_paths_resolve_against_the_table_folder_or_image_root(embed_dir, tmp_path):
    records = load_embed(embed_dir / "metadata.csv", embed_dir / "clinical.csv")
    assert records[0].path == embed_dir / "images" / "E1" / "LCC_2D.dcm"
    other = tmp_path / "elsewhere"
    records = load_embed(embed_dir / "metadata.csv", embed_dir / "clinical.csv", image_root=other)
    assert records[0].path == other / "images" / "E1" / "LCC_2D.dcm"


def test_absolute_paths_from_another_machine_are_rerooted(tmp_path):
    real = tmp_path / "cohort_1" / "P1" / "E1" / "img.dcm"
    real.parent.mkdir(parents=True)
    real.write_bytes(b"")
    row = ["P1", "E1", "/mnt/NAS2/mammo/cohort_1/P1/E1/img.dcm", "L", "CC", "2D", "MG Diag"]
    gone = ["P1", "E1", "/mnt/NAS2/mammo/cohort_1/P1/E1/missing.dcm", "R", "CC", "2D", "MG Diag"]
    write_csv(tmp_path / "metadata.csv", META_COLUMNS, [row, gone])
    write_csv(tmp_path / "clinical.csv", CLIN_COLUMNS, [])
    records = load_embed(tmp_path / "metadata.csv", tmp_path / "clinical.csv")
    assert records[0].path == real
    assert records[1].path == Path("/mnt/NAS2/mammo/cohort_1/P1/E1/missing.dcm")  # kept as written


def test_load_records_detects_embed_folder(embed_dir):
    records = load_records(embed_dir)
    assert len(records) == 7 and records[0].path.parent.parent.parent == embed_dir


def test_cancer_column_when_present(tmp_path):
    write_csv(tmp_path / "metadata.csv", META_COLUMNS, [_image("P1", "E1", "L", "CC")])
    write_csv(tmp_path / "clinical.csv", ["acc_anon", "side", "asses", "cancer"], [["E1", "L", "M", "1"]])
    (record,) = load_embed(tmp_path / "metadata.csv", tmp_path / "clinical.csv")
    assert record.cancer == 1 and record.birads == 5 and record.patient_id == "P1"


def test_male_density_code_is_not_a_class(tmp_path):
    write_csv(tmp_path / "metadata.csv", META_COLUMNS, [_image("P1", "E1", "L", "CC")])
    write_csv(tmp_path / "clinical.csv", ["acc_anon", "side", "tissueden"], [["E1", "B", "5"]])
    (record,) = load_embed(tmp_path / "metadata.csv", tmp_path / "clinical.csv")
    assert record.density is None


# ------------------------------------------------------------------ errors


def test_missing_metadata_column_named(embed_dir):
    write_csv(embed_dir / "bad.csv", ["acc_anon", "ImageLateralityFinal"], [["E1", "L"]])
    with pytest.raises(DataError) as info:
        load_embed(embed_dir / "bad.csv", embed_dir / "clinical.csv")
    message = str(info.value)
    assert "bad.csv" in message and "anon_dicom_path" in message and "FinalImageType" in message


def test_missing_clinical_side_named(embed_dir):
    write_csv(embed_dir / "clin2.csv", ["acc_anon", "asses"], [["E1", "N"]])
    with pytest.raises(DataError, match=r"clin2\.csv.*side"):
        load_embed(embed_dir / "metadata.csv", embed_dir / "clin2.csv")


def test_patient_column_in_neither_table(tmp_path):
    write_csv(tmp_path / "m.csv", META_COLUMNS[1:], [_image("P1", "E1", "L", "CC")[1:]])
    write_csv(tmp_path / "c.csv", ["acc_anon", "side"], [["E1", "L"]])
    with pytest.raises(DataError, match="empi_anon"):
        load_embed(tmp_path / "m.csv", tmp_path / "c.csv")


def test_missing_file_named(tmp_path):
    with pytest.raises(DataError, match="nothere.csv.*not found"):
        load_embed(tmp_path / "nothere.csv", tmp_path / "clinical.csv")


def test_bad_density_names_value_and_row(embed_dir):
    rows = [["E1", "L", "N", "2"], ["E1", "R", "N", "x"]]
    write_csv(embed_dir / "clin3.csv", ["acc_anon", "side", "asses", "tissueden"], rows)
    with pytest.raises(DataError) as info:
        load_embed(embed_dir / "metadata.csv", embed_dir / "clin3.csv")
    assert "clin3.csv" in str(info.value) and "tissueden='x' is not 1-4 (row 3)" in str(info.value)


def test_bad_birads_and_laterality(embed_dir):
    write_csv(embed_dir / "clin4.csv", ["acc_anon", "side", "asses"], [["E1", "L", "9"]])
    with pytest.raises(DataError, match=r"asses='9'.*row 2"):
        load_embed(embed_dir / "metadata.csv", embed_dir / "clin4.csv")
    write_csv(embed_dir / "meta5.csv", META_COLUMNS, [["P1", "E1", "a.dcm", "Q", "CC", "2D", ""]])
    with pytest.raises(DataError, match="ImageLateralityFinal='Q'"):
        load_embed(embed_dir / "meta5.csv", embed_dir / "clinical.csv")


def test_non_utf8_table_refused(embed_dir):
    write_csv(embed_dir / "latin.csv", CLIN_COLUMNS, [["P1", "E1", "L", "N", "1", "", "", "", "", "Ra\u00e7a", "", "50"]], encoding="latin-1")
    with pytest.raises(DataError, match=r"latin\.csv.*not UTF-8"):
        load_embed(embed_dir / "metadata.csv", embed_dir / "latin.csv")


def test_utf8_with_bom_accepted(embed_dir):
    write_csv(embed_dir / "bom.csv", CLIN_COLUMNS, [["P1", "E1", "B", "N", "1", "", "", "", "", "Ra\u00e7a", "", "50"]], encoding="utf-8-sig")
    records = load_embed(embed_dir / "metadata.csv", embed_dir / "bom.csv")
    assert records[0].meta["RACE_DESC"] == "Ra\u00e7a"


def test_empty_table(embed_dir):
    (embed_dir / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_embed(embed_dir / "empty.csv", embed_dir / "clinical.csv")
