"""Similarity maps: native geometry, absolute values, calibration, PNG output."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
import torch

from mama_core.dicom import read_image
from mama_core.inference import Predictor, calibrate_threshold
from mama_core.inference.maps import patch_grid_values
from mama_core.inference.png import overlay, write_png
from mama_core.preprocess import normalise, patch_map_to_native, resize_to_square


def _independent_grid(predictor, path, sentence):
    """Patch cosines computed straight from the model, without the Predictor."""
    model = predictor.model
    square, box = resize_to_square(read_image(path).pixels, predictor.image_size)
    with torch.no_grad():
        patches = model.encode_image(normalise(square)[None, None])["image_patches"][0]
        local = model.encode_sentences([sentence])["sentence_local"]
    cos = torch.nn.functional.normalize(local, dim=-1) @ torch.nn.functional.normalize(patches, dim=-1).T
    return cos.reshape(1, *model.patch_grid(predictor.image_size)), box


def test_maps_are_native_shaped_absolute_cosines(predictor, studies):
    study, sentence = studies[0], "There is an irregular mass."
    maps = predictor.similarity_maps(study, [sentence, "Calcifications."])
    for key, path in study.images.items():
        pixels = read_image(path).pixels
        assert maps.shapes[key] == pixels.shape
        assert maps.maps[key].shape == (2, *pixels.shape) and maps.maps[key].dtype == np.float32
    path = study.images["RMLO"]
    grid, box = _independent_grid(predictor, path, sentence)
    expected = patch_map_to_native(grid, box)[0].numpy()
    got = maps.maps["RMLO"][0]
    assert np.allclose(got, expected, atol=1e-5)
    # One patch centre: native pixel (r, c) under the centre of patch (2, 1) of the model grid.
    ps = predictor.image_size / grid.shape[1]
    r, c = int((2 + 0.5) * ps / box.scale), int((1 + 0.5) * ps / box.scale)
    neighbourhood = grid[0, 1:4, 0:3]
    assert neighbourhood.min() - 1e-5 <= got[r, c] <= neighbourhood.max() + 1e-5
    assert abs(got[r, c] - grid[0, 2, 1]) < 0.5 * float(neighbourhood.max() - neighbourhood.min()) + 1e-5
    # Not min-max normalised: the range is the cosines' own, well inside [-1, 1].
    assert got.max() <= grid.max() + 1e-5 and got.min() >= grid.min() - 1e-5
    assert not (np.isclose(got.min(), 0) and np.isclose(got.max(), 1))
    value, row, col = maps.best["RMLO"]
    assert value == got.max() == got[row, col]


def test_maps_travel_at_their_own_resolution(predictor, studies):
    """The grid is small (the model input's resolution), covers the image's aspect, and every
    native value asked of it one pixel at a time equals the full upsampled map."""
    study = studies[0]
    maps = predictor.similarity_maps(study, ["There is a mass."])
    for key, grid in maps.grids.items():
        h, w = maps.shapes[key]
        assert grid.shape[0] == 1 and max(grid.shape[1:]) == predictor.image_size
        assert grid.shape[1] * grid.shape[2] * 4 < h * w, "fewer values than native pixels"
        assert abs(grid.shape[2] / grid.shape[1] - w / h) < 0.05
    native = maps.native("LCC")[0]
    rng = np.random.default_rng(0)
    h, w = native.shape
    for r, c in zip(rng.integers(0, h, 40), rng.integers(0, w, 40)):
        assert maps.value_at("LCC", 0, r, c) == pytest.approx(float(native[r, c]), abs=1e-5)
    for r, c in ((0, 0), (h - 1, w - 1), (0, w - 1)):
        assert maps.value_at("LCC", 0, r, c) == pytest.approx(float(native[r, c]), abs=1e-5)
    # The grid peak decides "no match"; the native maximum sits at it up to interpolation.
    assert native.max() <= maps.peak("LCC") + 1e-6
    assert maps.matches("LCC") == (maps.peak("LCC") >= maps.threshold)


def test_exports_and_pointing_game_match_the_native_computation(predictor, studies_dir, tmp_path):
    """`mama query` files and the pointing game use native values exactly as before: each map
    equals the patch cosines upsampled to every pixel in one go."""
    from mama_core.commands.query import save_npz
    from mama_core.evaluation.localization import load_ground_truth, pointing_game

    result = pointing_game(predictor, studies_dir)
    local = predictor.sentence_embeddings([result.sentence])
    for detail in result.details:
        path = studies_dir / detail["path"]
        feats = predictor.image_features(path)
        expected = patch_map_to_native(patch_grid_values(feats, local), feats.letterbox)[0].numpy()
        row, col = np.unravel_index(int(np.argmax(expected)), expected.shape)
        stored_col = expected.shape[1] - 1 - col if read_image(path).flipped else col
        assert detail["at"] == [int(stored_col), int(row)] and detail["max"] == pytest.approx(float(expected.max()))
    assert result.views == sum(1 for truth in load_ground_truth(studies_dir)
                               if any(les.kind == "mass" for les in truth.lesions))
    study = predictor.resolve_study(studies_dir / result.details[0]["path"])
    maps = predictor.similarity_maps(study, [result.sentence])
    save_npz(tmp_path / "maps.npz", maps)
    with np.load(tmp_path / "maps.npz") as npz:
        for key, path in study.images.items():
            feats = predictor.image_features(path)
            expected = patch_map_to_native(patch_grid_values(feats, local), feats.letterbox)[0].numpy()
            assert np.array_equal(npz[f"{key}/0"], expected)


def test_calibration_is_written_and_read_back(model_copy, studies):
    p = Predictor.load(model_copy, device="cpu")
    result = calibrate_threshold(p, studies[:1], sentences=["There is a mass.", "This is a mammogram."])
    assert np.isfinite(result["no_match_threshold"]) and result["n_reference_values"] > 0
    stored = json.loads((model_copy / "calibration.json").read_text())
    again = Predictor.load(model_copy, device="cpu")
    assert again.no_match_threshold == stored["no_match_threshold"] == p.no_match_threshold
    assert again.map_range[0] < again.no_match_threshold < again.map_range[1]


def test_threshold_is_the_median_of_per_sentence_percentiles(model_copy, studies):
    """One sentence that sits high everywhere must not lift the line for the others."""
    p = Predictor.load(model_copy, device="cpu")
    sentences = ["There is a mass.", "This is a mammogram.", "There are calcifications."]
    result = calibrate_threshold(p, studies[:1], sentences=sentences, write=False)
    per = result["per_sentence"]
    assert len(per) == 3 and result["no_match_threshold"] == pytest.approx(sorted(per)[1], abs=1e-4)
    alone = [calibrate_threshold(p, studies[:1], sentences=[s], write=False)["no_match_threshold"] for s in sentences]
    assert per == pytest.approx(alone, abs=1e-4)


def _read_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + n
    w, h = struct.unpack(">II", chunks[b"IHDR"][:8])
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + 3 * w)
    assert np.all(raw[:, 0] == 0)
    return raw[:, 1:].reshape(h, w, 3)


def test_png_overlay_round_trip(tmp_path):
    pixels = np.linspace(0, 1, 12 * 7).reshape(12, 7).astype(np.float32)
    sim = np.full((12, 7), -0.5, np.float32)
    sim[3, 4] = 0.9
    rgb = overlay(pixels, sim, value_range=(0.0, 1.0), threshold=0.2)
    assert np.array_equal(rgb[0, 0], np.round([pixels[0, 0] * 255] * 3))  # below threshold: untouched grey
    assert not np.all(rgb[3, 4] == rgb[3, 4][0])  # above: coloured
    assert np.array_equal(_read_png(write_png(tmp_path / "x.png", rgb)), rgb)
