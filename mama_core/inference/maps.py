"""Sentence-to-patch similarity maps (the SLA view of the model, paper eq. (3)) and the
calibrated "no match" threshold.

A map value is the cosine between a sentence's local embedding and one patch's local
embedding. Maps are returned on a small grid (the model input's resolution, padding
dropped) that covers exactly the native pixels of `read_image(path).pixels` (canonical
orientation: chest wall at column 0); the desktop draws that grid stretched over the image,
and native-pixel values (bilinear, as if upsampled to every pixel) are computed on demand
for exports and the pointing game. Upsampling every map to 4,000-row images cost 26-38 ms
and 53 MB per view and sentence. Values are never rescaled per map: the desktop colours
them on one absolute scale, and below the model's threshold a view reads "no match"
(docs/desktop.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
import torch

from mama_core import fs
from mama_core.errors import ModelError
from mama_core.inference.types import ImageFeatures
from mama_core.preprocess import fit_to_square, patch_map_to_content

if TYPE_CHECKING:
    from mama_core.inference.predictor import Predictor

CALIBRATION_FILE = "calibration.json"
# Used when a model directory carries no calibration: high enough that an uncalibrated
# model shows "no match" rather than confident-looking noise.
DEFAULT_THRESHOLD = 0.3
DEFAULT_RANGE_WIDTH = 0.4
NEUTRAL_SENTENCES = (
    "There is a mass.",
    "There are calcifications.",
    "There is an irregular spiculated mass.",
    "Grouped amorphous calcifications are seen.",
    "There is architectural distortion.",
    "The breast tissue is heterogeneously dense.",
    "Benign findings are seen.",
    "This is a mammogram.",
)
BACKGROUND_LEVEL = 0.02  # mean intensity of a patch below which it counts as background


def patch_grid_values(feats: ImageFeatures, sentence_local: torch.Tensor) -> torch.Tensor:
    """Cosine of each (normalised) sentence with each (normalised) patch: [S, gh, gw]."""
    sims = sentence_local @ feats.image_patches.T  # [S, P]
    if feats.patch_mask is not None:
        # A model trained with local_tissue_only never aligned air patches: their cosine means
        # nothing, so they read as the lowest possible similarity, never as a match.
        sims = sims.masked_fill(~feats.patch_mask.to(sims.device)[None], -1.0)
    return sims.reshape(sentence_local.shape[0], *feats.grid)


def content_map(feats: ImageFeatures, sentence_local: torch.Tensor) -> np.ndarray:
    """[S, h, w] float32 on the letterbox content grid: what `SimilarityMaps.grids` holds."""
    grid = patch_grid_values(feats, sentence_local)
    return patch_map_to_content(grid, feats.letterbox).numpy().astype(np.float32, copy=False)


def _source_index(dst: int, n_in: int, n_out: int) -> tuple[int, int, float]:
    """Bilinear source taps for output index `dst` (half-pixel centres, align_corners=False,
    as torch.nn.functional.interpolate computes them): (i0, i1, weight of i1)."""
    src = max((dst + 0.5) * n_in / n_out - 0.5, 0.0)
    i0 = min(int(math.floor(src)), n_in - 1)
    i1 = min(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def sample_native(content: np.ndarray, native_shape: tuple[int, int], row: int, col: int) -> float:
    """The value at native pixel (row, col) of a [h, w] content grid upsampled to
    `native_shape` — one pixel of `content_to_native` without computing the others."""
    h, w = content.shape
    r0, r1, fr = _source_index(int(row), h, int(native_shape[0]))
    c0, c1, fc = _source_index(int(col), w, int(native_shape[1]))
    top = (1 - fc) * float(content[r0, c0]) + fc * float(content[r0, c1])
    bottom = (1 - fc) * float(content[r1, c0]) + fc * float(content[r1, c1])
    return (1 - fr) * top + fr * bottom


def best_location(values: np.ndarray) -> tuple[float, int, int]:
    """(max value, row, col) of a [H, W] map."""
    flat = int(np.argmax(values))
    row, col = np.unravel_index(flat, values.shape)
    return float(values[row, col]), int(row), int(col)


def content_patch_mask(feats: ImageFeatures) -> np.ndarray:
    """[gh, gw] bool: patches that overlap the resized image rather than the padding."""
    gh, gw = feats.grid
    h, w = feats.letterbox.content_shape
    size = feats.letterbox.size
    rows = np.arange(gh) * size / gh < h
    cols = np.arange(gw) * size / gw < w
    return rows[:, None] & cols[None, :]


def background_patch_mask(feats: ImageFeatures, pixels: np.ndarray) -> np.ndarray:
    """[gh, gw] bool: padding patches and patches of (near-)black air around the breast."""
    square, _ = fit_to_square(pixels, feats.letterbox.size, "stretch" if feats.letterbox.stretched else "letterbox")
    gh, gw = feats.grid
    pooled = torch.nn.functional.adaptive_avg_pool2d(square[None, None], (gh, gw))[0, 0].numpy()
    return (pooled < BACKGROUND_LEVEL) | ~content_patch_mask(feats)


def _tissue_patches(feats: ImageFeatures, path) -> np.ndarray:
    """[gh, gw] bool: the patches the model itself counts as tissue when it carries a patch
    mask (local_tissue_only), so calibration and maps agree on which patches exist; else
    everything that is neither padding nor air."""
    if feats.patch_mask is not None:
        return feats.patch_mask.numpy().reshape(feats.grid)
    from mama_core.dicom import read_image

    return ~background_patch_mask(feats, read_image(path).pixels)


def read_calibration(model_dir: Path, extra: dict) -> tuple[float, tuple[float, float]]:
    """(threshold, map range) from calibration.json, else config extra, else defaults."""
    path = model_dir / CALIBRATION_FILE
    if path.exists():
        try:
            data = json.loads(path.read_text())
            return float(data["no_match_threshold"]), tuple(float(v) for v in data["map_range"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"unreadable calibration: {exc}", path=path) from None
    t = float(extra.get("no_match_threshold", DEFAULT_THRESHOLD))
    rng = extra.get("map_range") or (t - 0.1, t + DEFAULT_RANGE_WIDTH)
    return t, (float(rng[0]), float(rng[1]))


FINDING_SENTENCES = NEUTRAL_SENTENCES[:5] + ("A mass is present in the breast.", "Calcifications are present in the breast.")


def calibrate_threshold(predictor: "Predictor", studies: Iterable, sentences: Iterable[str] | None = None,
                        percentile: float = 99.0, write: bool = True) -> dict:
    """Calibrate the "no match" threshold and the colour-bar range; sets the predictor's values
    and, with `write`, stores them in <model dir>/calibration.json.

    Models that align every patch: the `percentile`-th percentile of cosines between
    background patches (padding and air) and neutral sentences — what a sentence reaches
    where there is nothing at all. Models trained with `local_tissue_only` never align air,
    so there the reference is breast tissue without findings: pass finding-free (negative)
    studies, and the reference is finding-sentence cosines over their tissue patches.
    The percentile is taken per sentence and the threshold is the median over sentences: a
    sentence the model cannot place (calcifications below its resolution) sits high on
    normal tissue and must not lift the line for every other sentence. Either way the range
    runs from 0.1 below the threshold to the 99.9th percentile over tissue patches."""
    tissue_only = bool(getattr(predictor.model.config, "local_tissue_only", False))
    sentences = list(sentences or (FINDING_SENTENCES if tissue_only else NEUTRAL_SENTENCES))
    local = predictor.sentence_embeddings(sentences)
    reference, tissue = [], []
    for study in studies:
        for path in predictor.resolve_study(study).images.values():
            feats = predictor.image_features(path)
            sims = patch_grid_values(feats, local).numpy()  # [S, gh, gw]
            inside = _tissue_patches(feats, path)
            reference.append(sims[:, inside if tissue_only else ~inside])  # [S, n]
            tissue.append(sims[:, inside].ravel())
    values = np.concatenate(reference, axis=1) if reference else np.zeros((len(sentences), 0))
    if not values.size:
        raise ModelError("calibration needs images with background (air or padding) patches", path=predictor.model_dir)
    per_sentence = np.percentile(values, percentile, axis=1)
    threshold = float(np.median(per_sentence))
    tissue_all = np.concatenate(tissue)
    top = max(float(np.percentile(tissue_all, 99.9)) if tissue_all.size else threshold, threshold + 0.05)
    result = {"no_match_threshold": threshold, "map_range": [threshold - 0.1, top], "percentile": percentile,
              "reference": "finding-free tissue" if tissue_only else "background",
              "sentences": sentences, "per_sentence": [round(float(v), 4) for v in per_sentence],
              "n_reference_values": int(values.size)}
    predictor.set_calibration(threshold, (threshold - 0.1, top))
    if write:
        _write_calibration(predictor.model_dir, result)
    return result


def _write_calibration(model_dir: Path, result: dict) -> None:
    path = model_dir / CALIBRATION_FILE
    try:
        fs.write_json(path, result, indent=2)
    except OSError as exc:
        raise ModelError(f"cannot write calibration ({exc}); the model directory may be read-only", path=path) from None
