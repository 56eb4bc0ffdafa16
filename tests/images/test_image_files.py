"""PNG / JPEG / TIFF / PGM mammograms: decoding through Pillow and tifffile, side/view/exam
from file names, chest wall from content, and the same errors and grouping as DICOM."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from mama_core.dicom import find_studies, read_image
from mama_core.errors import ImageFileError, MamaError
from mama_core.images import parse_name
from tests.dicom import make

ROWS, COLS = 96, 72


def _breast(chest_wall: str = "left") -> np.ndarray:
    """Grey levels 100..3000 (12-bit range), tissue against one side edge."""
    return make.breast(ROWS, COLS, chest_wall=chest_wall).astype(np.uint16)


def _png8(path, chest_wall="left"):
    Image.fromarray((_breast(chest_wall) // 16).astype(np.uint8)).save(path)
    return path


def _four_view_pngs(folder, exam="0", mirrored=False):
    """0_L-CC.png ... 0_R-MLO.png; right images have their chest wall on the right as
    stored, unless the dataset `mirrored` them to face like the left ones."""
    folder.mkdir(parents=True, exist_ok=True)
    for side in "LR":
        for view in ("CC", "MLO"):
            wall = "left" if side == "L" or mirrored else "right"
            _png8(folder / f"{exam}_{side}-{view}.png", wall)


@pytest.mark.parametrize("stem, side, view, exam", [
    ("0_L-CC", "L", "CC", "0"),
    ("1_R_CC", "R", "CC", "1"),
    ("L-MLO", "L", "MLO", ""),
    ("LCC", "L", "CC", ""),
    ("left_cc", "L", "CC", ""),
    ("RIGHT_MLO", "R", "MLO", ""),
    ("case12_R_ML", "R", "ML", "case12"),
    ("patient7-MLO-L", "L", "MLO", "patient7"),
    ("Mass-Training_P_00001_LEFT_CC", "L", "CC", "Mass_Training_P_00001"),
    ("scan001", None, None, "scan001"),
    ("0_L-CC_R-MLO", None, None, "0_L_CC_R_MLO"),  # two views named: ambiguous, undecided
    ("scroll", None, None, "scroll"),  # 'L' inside a word is not a side
])
def test_file_name_tokens(stem, side, view, exam):
    parts = parse_name(stem)
    assert (parts.laterality, parts.view, parts.exam) == (side, view, exam)


def test_png_folder_is_one_four_view_study(tmp_path):
    _four_view_pngs(tmp_path / "pngs")
    report: list = []
    [study] = find_studies(tmp_path / "pngs", report=report)
    assert report == [] and study.complete and study.problems == []
    assert {k: p.name for k, p in study.images.items()} == {
        "LCC": "0_L-CC.png", "LMLO": "0_L-MLO.png", "RCC": "0_R-CC.png", "RMLO": "0_R-MLO.png"}
    placement = study.placements[study.images["RCC"]]
    assert placement.laterality_rule == placement.view_rule == "file name token 'R-CC'"
    assert placement.group_rule == "folder + file name exam number"


def test_exam_numbers_split_studies(tmp_path):
    _four_view_pngs(tmp_path, exam="0")
    _four_view_pngs(tmp_path, exam="1")
    studies = find_studies(tmp_path)
    assert len(studies) == 2 and all(s.complete for s in studies)


@pytest.mark.parametrize("mirrored", [False, True])
def test_chest_wall_found_from_content(tmp_path, mirrored):
    """Whether or not the dataset mirrored its right images, every image ends up with its
    chest wall at column 0, and the image records whether it was flipped here."""
    _four_view_pngs(tmp_path, mirrored=mirrored)
    image = read_image(tmp_path / "0_R-CC.png")
    assert image.flipped is (not mirrored)
    strip = COLS // 10
    assert image.pixels[:, :strip].mean() > image.pixels[:, -strip:].mean() + 0.2
    assert image.pixel_spacing_mm is None  # unknown, never invented
    assert (image.laterality, image.view) == ("R", "CC")


def test_twelve_bit_values_in_sixteen_bit_png_read_like_the_eight_bit_export(tmp_path):
    twelve = tmp_path / "12_L-CC.png"
    Image.fromarray(_breast()).save(twelve)  # values up to 3000 in a 16-bit PNG
    eight = _png8(tmp_path / "8_L-CC.png")
    assert Image.open(twelve).mode.startswith("I")
    a, b = read_image(twelve).pixels, read_image(eight).pixels
    assert abs(float(a.max()) - float(b.max())) < 0.01  # 3000/4095 vs (3000//16)/255
    full = tmp_path / "16_L-CC.png"
    Image.fromarray((_breast().astype(np.uint32) * 20).astype(np.uint16)).save(full)  # up to 60000
    assert read_image(full).pixels.max() == pytest.approx(60000 / 65535, abs=1e-4)


def test_jpeg_tiff_and_pgm(tmp_path):
    eight = (_breast() // 16).astype(np.uint8)
    Image.fromarray(eight).save(tmp_path / "0_L-CC.jpg", quality=95)
    tifffile.imwrite(tmp_path / "0_L-MLO.tif", _breast())  # 16-bit grey TIFF
    Image.fromarray(eight).save(tmp_path / "0_R-CC.pgm")
    Image.fromarray(eight[:, ::-1]).save(tmp_path / "0_R-MLO.tiff", compression="tiff_lzw")  # Pillow-written LZW TIFF
    [study] = find_studies(tmp_path)
    assert study.complete
    for key, path in study.images.items():
        image = read_image(path)
        assert image.key == key
        assert image.pixels.dtype == np.float32 and image.pixels.shape == (ROWS, COLS)
        assert 0.6 < float(image.pixels.max()) <= 1.0
    assert read_image(tmp_path / "0_R-MLO.tiff").flipped


def test_colour_export_is_read_as_grey(tmp_path):
    grey = (_breast() // 16).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "L-CC.png")
    assert read_image(tmp_path / "L-CC.png").pixels.max() == pytest.approx(grey.max() / 255, abs=0.01)


def test_corrupt_image_names_the_file_and_the_rest_opens(tmp_path):
    _four_view_pngs(tmp_path)
    good = (tmp_path / "0_L-CC.png").read_bytes()
    (tmp_path / "0_L-CC.png").write_bytes(good[: len(good) // 2])
    report: list = []
    [study] = find_studies(tmp_path, report=report)
    assert [p.name for p, _ in report] == ["0_L-CC.png"]
    assert set(study.images) == {"LMLO", "RCC", "RMLO"}
    assert any("unreadable file" in p and "0_L-CC.png" in p for p in study.problems)
    with pytest.raises(ImageFileError, match="0_L-CC.png"):
        read_image(tmp_path / "0_L-CC.png")
    (tmp_path / "garbage.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(MamaError, match="garbage.jpg"):
        read_image(tmp_path / "garbage.jpg")


def test_nameless_images_are_unplaced_in_their_folders_study(tmp_path):
    _four_view_pngs(tmp_path)
    odd = _png8(tmp_path / "scan017.png")
    [study] = find_studies(tmp_path)
    assert study.complete and study.unplaced == [odd]
    assert study.placements[odd].laterality_rule == "undecided"
    assert odd not in study.images.values()


def test_multi_page_tiff_is_reported_not_placed(tmp_path):
    tifffile.imwrite(tmp_path / "L-CC.tif", np.stack([_breast()] * 5))
    report: list = []
    assert find_studies(tmp_path, report=report) == []
    assert "multi-page" in report[0][1]


def test_nothing_in_a_mixed_folder_is_invisible(tmp_path):
    """DICOM and image files, placed, extra, unplaced, unreadable and non-mammograms: every
    file is either in a study (placed or unplaced) or reported with a reason."""
    from pydicom.data import get_testdata_file
    import shutil

    _four_view_pngs(tmp_path / "pngs")
    _png8(tmp_path / "pngs" / "scan017.png")
    make.four_views(tmp_path / "dicom", study_uid="1.2.3")
    make.write(make.mg(laterality="R", view="ML", study_uid="1.2.3"), tmp_path / "dicom" / "ml.dcm")
    make.write(make.mg(laterality=None, view=None, study_uid="1.2.3"), tmp_path / "dicom" / "odd.dcm")
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), tmp_path / "dicom" / "ct.dcm")
    (tmp_path / "dicom" / "notes.txt").write_text("hello")
    (tmp_path / "pngs" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    report: list = []
    studies = find_studies(tmp_path, report=report)
    in_studies = {p for s in studies for p in s.placements}
    reported = {p for p, _ in report}
    everything = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert in_studies | reported == everything and not in_studies & reported
    for study in studies:
        shown = set(study.images.values()) | set(study.unplaced)
        assert shown == set(study.placements)
    assert {p.name for p in reported} == {"ct.dcm", "notes.txt", "bad.png"}


def test_image_folder_gives_training_records(tmp_path):
    """train / eval / finetune read plain folders through the same records."""
    from mama_core.data import load_dicom_folder

    _four_view_pngs(tmp_path / "a")
    _png8(tmp_path / "a" / "scan017.png")  # unplaced: no side or view, so no record
    records = load_dicom_folder(tmp_path)
    assert sorted((r.laterality, r.view) for r in records) == [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]
    assert {r.study_id for r in records} == {"a_0"}
    from mama_core.training.cache import ImageCache

    cached = ImageCache(tmp_path / "cache", 32).load(records[0].path)
    assert tuple(cached.shape) == (1, 32, 32) and float(cached.max()) > 0.5


def test_model_runs_on_a_png_study(tmp_path):
    """The predictor takes a PNG study folder or a single PNG like a DICOM one (maps only:
    predictions run through the same image features)."""
    from mama_core.inference import Predictor
    from tests.inference.conftest import build_tiny_model_dir

    _four_view_pngs(tmp_path / "pngs")
    predictor = Predictor.load(build_tiny_model_dir(tmp_path / "model"), device="cpu")
    maps = predictor.similarity_maps(tmp_path / "pngs", ["a round mass"])
    assert set(maps.maps) == {"LCC", "LMLO", "RCC", "RMLO"}
    assert maps.maps["RCC"].shape == (1, ROWS, COLS)
    single = predictor.resolve_study(tmp_path / "pngs" / "0_R-MLO.png")
    assert list(single.images) == ["RMLO"]


def test_tag_panel_rows_for_an_image_file(tmp_path):
    from mama_core.dicom import tags_for_display

    rows = {name: value for _, name, value in tags_for_display(_png8(tmp_path / "L-CC.png"))}
    assert rows["File format"] == "PNG" and rows["Rows"] == str(ROWS) and "unknown" in rows["Pixel spacing"]


def test_linked_folders_are_scanned_once(tmp_path):
    import os

    _four_view_pngs(tmp_path / "real" / "exam")
    os.symlink(tmp_path / "real" / "exam", tmp_path / "real" / "link")  # same folder twice
    os.symlink(tmp_path / "real", tmp_path / "real" / "exam" / "loop")  # a cycle
    outside = tmp_path / "scan"
    outside.mkdir()
    os.symlink(tmp_path / "real", outside / "archive")
    [study] = find_studies(outside)
    assert study.complete and len(study.placements) == 4


def test_mini_mias_names_give_side_view_and_film_pairs(tmp_path):
    for n in (1, 2, 3):
        Image.fromarray((_breast() // 16).astype(np.uint8)).save(tmp_path / f"mdb{n:03d}.pgm")
    first, second = find_studies(tmp_path)
    assert {k: p.name for k, p in first.images.items()} == {"RMLO": "mdb001.pgm", "LMLO": "mdb002.pgm"}
    assert {k: p.name for k, p in second.images.items()} == {"RMLO": "mdb003.pgm"}
    assert first.placements[first.images["RMLO"]].view_rule.startswith("mini-MIAS file name")


def test_sixteen_bit_colour_tiff_keeps_its_bit_depth(tmp_path):
    grey = _breast()  # 12-bit values
    tifffile.imwrite(tmp_path / "L-CC.tif", np.stack([grey] * 3, axis=-1), photometric="rgb")
    assert read_image(tmp_path / "L-CC.tif").pixels.max() == pytest.approx(grey.max() / 4095, abs=1e-3)
