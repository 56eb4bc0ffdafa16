"""EMBED-style tables and ground truth agree with each other and with the pixels."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pydicom
import pytest

from mama_core.synthetic import render_view, sample_study
from mama_core.synthetic.tables import CLINICAL_COLUMNS, METADATA_COLUMNS
from tests.synthetic.conftest import SMALL_ROWS, read_csv, read_truth

ASSES = {"A": 0, "N": 1, "B": 2, "P": 3, "S": 4, "M": 5, "K": 6}


def test_metadata_has_embed_columns_and_points_at_the_files(small_set):
    root, summary = small_set
    rows = read_csv(root / "metadata.csv")
    assert tuple(rows[0].keys())[: len(METADATA_COLUMNS)] == METADATA_COLUMNS
    assert len(rows) == 4 * summary.n_studies == summary.n_images
    for row in rows:
        ds = pydicom.dcmread(root / row["anon_dicom_path"], stop_before_pixels=True)
        assert ds.SOPInstanceUID == row["SOPInstanceUID"]
        assert ds.StudyInstanceUID == row["StudyInstanceUID"]
        assert ds.ImageLaterality == row["ImageLateralityFinal"] and ds.ViewPosition == row["ViewPosition"]
        assert (int(row["Rows"]), int(row["Columns"])) == (ds.Rows, ds.Columns)
        assert row["FinalImageType"] == "2D" and ds.AccessionNumber == row["acc_anon"]


def test_clinical_join_gives_each_image_its_side_birads(small_set):
    """EMBED rule: a row applies when side == laterality or 'B'; the highest BI-RADS wins."""
    root, _ = small_set
    clinical = read_csv(root / "clinical.csv")
    assert set(CLINICAL_COLUMNS) <= set(clinical[0].keys())
    by_acc = defaultdict(list)
    for row in clinical:
        assert row["asses"] in ASSES and row["side"] in ("L", "R", "B") and row["tissueden"] in "1234"
        by_acc[row["acc_anon"]].append(row)
    meta = {r["anon_dicom_path"]: r for r in read_csv(root / "metadata.csv")}
    assert len(by_acc) == len({m["acc_anon"] for m in meta.values()}) == 10
    for entry in read_truth(root):
        m = meta[entry["path"]]
        rows = [r for r in by_acc[m["acc_anon"]] if r["side"] in (m["ImageLateralityFinal"], "B")]
        assert max(ASSES[r["asses"]] for r in rows) == entry["birads"]
        assert {int(r["tissueden"]) for r in rows} == {entry["density"]}


def test_clinical_rows_carry_the_finding_codes(small_set):
    root, _ = small_set
    rows = read_csv(root / "clinical.csv")
    assert {r["side"] for r in rows if r["asses"] == "N"} <= {"L", "R", "B"}
    for r in rows:
        if r["massshape"]:
            assert r["massshape"] in "ROXL" and r["massdens"] in ("+", "=", "-", "0") and not r["calcfind"]
            assert r["cancer"] == ("1" if r["massshape"] == "X" else "0")
        if r["calcfind"]:
            assert r["calcfind"] in "PAFR" and r["calcdistri"] in "GLS" and r["asses"] == "S"
        if r["asses"] == "N":
            assert not (r["massshape"] or r["calcfind"]) and r["cancer"] == "0"
    assert any(r["massshape"] for r in rows) and any(r["calcfind"] for r in rows)


def test_embed_reader_labels_every_image(small_set):
    """The project's own EMBED reader joins the two tables into labelled records."""
    from mama_core.data import embed

    root, summary = small_set
    truth = {e["path"]: e for e in read_truth(root)}
    records = embed.load_embed(root / "metadata.csv", root / "clinical.csv")
    assert len(records) == summary.n_images
    for rec in records:
        entry = truth[rec.path.relative_to(root).as_posix()]
        assert (rec.birads, rec.density) == (entry["birads"], entry["density"])
        assert rec.path.exists()


def test_birads_follows_the_findings(small_set):
    root, _ = small_set
    for entry in read_truth(root):
        kinds = {(les["type"], les["shape"]) for les in entry["lesions"]}
        if not kinds:
            assert entry["birads"] == 1
        elif ("mass", "spiculated") in kinds:
            assert entry["birads"] == 5
        elif all(k == "calcification" for k, _ in kinds):
            assert entry["birads"] == 4
        else:
            assert entry["birads"] >= 2


def test_findings_are_seen_on_both_views_of_their_side(small_set):
    root, _ = small_set
    found = defaultdict(set)
    for entry in read_truth(root):
        for les in entry["lesions"]:
            found[(entry["study_uid"], entry["view"][0], les["finding"], les["type"])].add(entry["view"][1:])
    assert any(key[3] == "mass" for key in found) and any(key[3] == "calcification" for key in found)
    assert all(views == {"CC", "MLO"} for views in found.values())


def test_boxes_lie_inside_the_image_and_match_the_size(small_set):
    root, _ = small_set
    spacing = 204.8 / SMALL_ROWS
    for entry in read_truth(root):
        ds = pydicom.dcmread(root / entry["path"], stop_before_pixels=True)
        for les in entry["lesions"]:
            x0, y0, x1, y1 = les["bbox"]
            assert 0 <= x0 < x1 <= ds.Columns and 0 <= y0 < y1 <= ds.Rows
            if les["type"] == "mass":
                longest = max(x1 - x0, y1 - y0) * spacing
                assert 0.5 * les["size_mm"] <= longest <= 3.0 * les["size_mm"]


def _nipple_col(px: np.ndarray, side: str) -> int:
    cols = np.nonzero((px > 400).sum(axis=0) > 2)[0]
    return int(cols.max()) if side == "L" else int(cols.min())


def test_findings_sit_at_the_same_depth_from_the_nipple_on_cc_and_mlo(small_set):
    root, _ = small_set
    spacing = 204.8 / SMALL_ROWS
    depth = defaultdict(dict)
    for entry in read_truth(root):
        px = pydicom.dcmread(root / entry["path"]).pixel_array
        side = entry["view"][0]
        for les in entry["lesions"]:
            centre = 0.5 * (les["bbox"][0] + les["bbox"][2])
            depth[(entry["study_uid"], les["finding"])][entry["view"][1:]] = abs(_nipple_col(px, side) - centre) * spacing
    assert depth
    for views in depth.values():
        assert abs(views["CC"] - views["MLO"]) < 12.0  # mm; outlines differ a little between views


def _box_mean(px: np.ndarray, box) -> float:
    x0, y0, x1, y1 = box
    return float(px[y0:y1, x0:x1].mean())


def test_masses_are_brighter_than_nearby_fat(small_set):
    root, _ = small_set
    checked = 0
    for entry in read_truth(root):
        px = pydicom.dcmread(root / entry["path"]).pixel_array.astype(np.float32)
        for les in entry["lesions"]:
            if les["type"] != "mass":
                continue
            x0, y0, x1, y1 = les["bbox"]
            w, h = x1 - x0, y1 - y0
            nearby = []
            for dy in range(-2 * h, 2 * h + 1, max(1, h // 2)):
                for dx in range(-2 * w, 2 * w + 1, max(1, w // 2)):
                    box = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
                    inside = box[0] >= 0 and box[1] >= 0 and box[2] <= px.shape[1] and box[3] <= px.shape[0]
                    overlaps = abs(dx) < w and abs(dy) < h
                    if not inside or overlaps:
                        continue
                    region = px[box[1] : box[3], box[0] : box[2]]
                    if region.min() > 400:  # wholly inside the breast
                        nearby.append(float(region.mean()))
            assert nearby, entry["path"]
            assert _box_mean(px, les["bbox"]) > min(nearby) + 150  # the fattiest same-size region
            checked += 1
    assert checked >= 4


def test_a_mass_adds_brightness_to_the_same_breast():
    """Render one view with and without its mass: the box gets brighter, the rest does not change."""
    spec = next(s for s in (sample_study(0, i) for i in range(40)) if any(f.kind == "mass" for f in s.findings))
    mass = next(f for f in spec.findings if f.kind == "mass")
    key = f"{mass.side}CC"
    with_mass = render_view(dataclasses.replace(spec, findings=(mass,)), key, SMALL_ROWS)
    without = render_view(dataclasses.replace(spec, findings=()), key, SMALL_ROWS)
    box = with_mass.lesions[0].box
    gain = _box_mean(with_mass.pixels.astype(np.float32), box) - _box_mean(without.pixels.astype(np.float32), box)
    assert gain > 200
    outside = np.ones(with_mass.pixels.shape, bool)
    x0, y0, x1, y1 = box
    outside[max(0, y0 - 20) : y1 + 20, max(0, x0 - 20) : x1 + 20] = False
    assert np.array_equal(with_mass.pixels[outside], without.pixels[outside])
