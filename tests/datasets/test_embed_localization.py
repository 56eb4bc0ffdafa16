"""EMBED / demo sets as an adapter, lesion ground truth for the pointing game, `mama datasets`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mama_core.cli import main
from mama_core.data.embed import parse_roi_coords
from mama_core.datasets import Lesion, clear_cache, detect_dataset, lesions_for_image
from mama_core.dicom import read_image
from mama_core.errors import DataError
from mama_core.evaluation.localization import load_ground_truth, pointing_game
from mama_core.synthetic import generate_studies
from tests.datasets.helpers import write_csv, write_dicom
from tests.datasets.test_cbis_ddsm import make_cbis_tree


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate_studies(root, 4, seed=0, rows=128)
    return root


class PeakPredictor:
    """Stands in for a model: its 'map' is zero except one pixel, put at a chosen point of the
    *stored* array and then mirrored like the image (np.fliplr), so the test checks the box
    frame conversion against an array operation rather than the same formula."""

    def __init__(self, where: str):
        self.where = where

    def similarity_maps(self, path: str, sentences: list[str]):
        image = read_image(path)
        stored = np.zeros(image.pixels.shape, np.float32)
        if self.where == "lesion":
            x0, y0, x1, y1 = next(les.box for les in lesions_for_image(path) if les.kind == "mass")
            stored[int((y0 + y1) / 2), int((x0 + x1) / 2)] = 1.0
        else:
            stored[0, stored.shape[1] // 2] = 1.0  # top edge: never inside a lesion
        canonical = np.fliplr(stored) if image.flipped else stored
        return type("Maps", (), {"maps": {image.key: canonical[None]}})()


def test_demo_set_lesions_are_its_ground_truth(demo):
    assert detect_dataset(demo).adapter.name == "embed"
    truth = json.loads((demo / "ground_truth.json").read_text())
    with_lesions = [e for e in truth if e["lesions"]]
    assert with_lesions, "seed 0 draws lesions"
    for entry in truth:
        got = lesions_for_image(demo / entry["path"])
        assert [(les.kind, list(les.box)) for les in got] == [(t["type"], t["bbox"]) for t in entry["lesions"]]
    assert {t.path for t in load_ground_truth(demo)} == {(demo / e["path"]).resolve() for e in with_lesions}


def test_pointing_game_on_demo_set(demo):
    hits = pointing_game(PeakPredictor("lesion"), demo)
    assert hits.views > 0 and hits.hits == hits.views
    assert any(read_image(demo / d["path"]).flipped for d in hits.details)  # the mirror was exercised
    for d in hits.details:  # the boxes the report draws: canonical frame, holding the map maximum
        width = read_image(demo / d["path"]).pixels.shape[1]
        x = width - d["at"][0] if read_image(demo / d["path"]).flipped else d["at"][0]
        assert any(x0 <= x <= x1 and y0 <= d["at"][1] <= y1 for x0, y0, x1, y1 in d["boxes"]), d
    misses = pointing_game(PeakPredictor("edge"), demo)
    assert misses.views == hits.views and misses.hits == 0


def test_pointing_game_on_a_public_dataset(tmp_path):
    root = make_cbis_tree(tmp_path / "cbis")
    result = pointing_game(PeakPredictor("lesion"), root)
    assert (result.views, result.hits) == (1, 1)  # the one mass; the calcification is another kind
    assert pointing_game(PeakPredictor("edge"), root, lesion_type="any").hits == 0


def test_ground_truth_needs_annotations(tmp_path):
    with pytest.raises(DataError, match="no lesion annotations"):
        load_ground_truth(tmp_path)
    write_csv(tmp_path / "train.csv", "site_id,patient_id,image_id,laterality,view,age,cancer".split(","),
              [[1, 5, 6, "L", "CC", 50, 0]])
    with pytest.raises(DataError, match="without lesion annotations"):
        load_ground_truth(tmp_path)


def test_roi_coords():
    path = Path("meta.csv")
    assert parse_roi_coords("((1063, 2366, 1218, 2580),)", path, 2) == [(2366.0, 1063.0, 2580.0, 1218.0)]
    assert parse_roi_coords("((1, 2, 3, 4), (10, 20, 30, 40))", path, 2)[1] == (20.0, 10.0, 40.0, 30.0)
    assert parse_roi_coords("()", path, 2) == [] and parse_roi_coords("", path, 2) == []
    with pytest.raises(DataError, match="row 7"):
        parse_roi_coords("((1, 2, 3),)", path, 7)


def test_embed_release_layout_with_rois(tmp_path):
    meta = ["empi_anon", "acc_anon", "anon_dicom_path", "study_date_anon", "FinalImageType", "ImageLateralityFinal",
            "ViewPosition", "spot_mag", "num_roi", "ROI_coords", "match_level"]
    image = "./images/cohort_1/66685715/1.2.3/1.2.3.4/1.2.3.4.5.dcm"
    write_csv(tmp_path / "tables" / "EMBED_OpenData_metadata_reduced.csv", meta, [
        [66685715, 7001, image, "2019-05-01", "2D", "L", "CC", 0, 1, "((100, 200, 150, 260),)", 1],
        [66685715, 7001, image.replace(".5.dcm", ".6.dcm"), "2019-05-01", "C-view", "L", "CC", 0, 1,
         "((100, 200, 150, 260),)", 2],
    ])
    write_csv(tmp_path / "tables" / "EMBED_OpenData_clinical_reduced.csv",
              ["empi_anon", "acc_anon", "study_date_anon", "desc", "tissueden", "asses", "side"],
              [[66685715, 7001, "2019-05-02", "MG Screen Bilat", 3, "B", "L"]])
    found = detect_dataset(tmp_path)
    assert found.adapter.name == "embed"
    (record,) = found.adapter.load(tmp_path)  # the C-view is not a 2D image
    assert (record.birads, record.density) == (2, 3)
    assert lesions_for_image(record.path) == [Lesion(kind="other", box=(200.0, 100.0, 260.0, 150.0), label="EMBED ROI")]


def test_datasets_command(tmp_path, capsys):
    assert main(["datasets", "--json"]) == 0
    names = [d["name"] for d in json.loads(capsys.readouterr().out)["datasets"]]
    assert names == ["embed", "cbis-ddsm", "vindr-mammo", "rsna", "cmmd", "inbreast", "mini-mias"]
    (tmp_path / "Info.txt").write_text("REFNUM BG CLASS SEVERITY X Y RADIUS \nmdb001 G CIRC B 535 425 197 \n")
    from PIL import Image

    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "mdb001.pgm")
    assert main(["datasets", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["detected"], doc["images"], doc["annotated_images"], doc["labelled"]["cancer"]) == ("mini-mias", 1, 1, 1)
    assert main(["datasets", str(tmp_path / "nothing")]) == 0
    assert "not a supported dataset" in capsys.readouterr().out


def test_unreadable_annotated_image_is_skipped(tmp_path):
    """An annotated image whose pixels are cut off is reported; the other images still count."""
    import csv

    from tests.datasets.test_cbis_ddsm import mass_row

    root = make_cbis_tree(tmp_path / "cbis")
    with open(root / "mass_case_description_train_set.csv", "a", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerow(mass_row("P_00002", "RIGHT", "CC", 1, "OVAL", 3, "BENIGN"))
    broken = write_dicom(root / "CBIS-DDSM/Mass-Training_P_00002_RIGHT_CC/a/b/1-1.dcm", np.ones((64, 48), np.uint16))
    broken.write_bytes(broken.read_bytes()[:-2000])  # header intact, pixel data truncated
    mask = next(root.rglob("Mass-Training_P_00001_LEFT_CC_1/*/*/1-2.dcm"))
    (root / "CBIS-DDSM/Mass-Training_P_00002_RIGHT_CC_1").mkdir()
    (root / "CBIS-DDSM/Mass-Training_P_00002_RIGHT_CC_1/1-1.dcm").write_bytes(mask.read_bytes())
    result = pointing_game(PeakPredictor("lesion"), root)
    assert (result.views, result.hits) == (1, 1)
    assert [s["path"].split("/")[1] for s in result.skipped] == ["Mass-Training_P_00002_RIGHT_CC"]
