"""Image content a model can learn from: density follows the class; findings follow the
intended mix; generation is fast enough for `mama demo-data`."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mama_core.synthetic import generate_studies, render_view, sample_study
from mama_core.synthetic.spec import DENSE_FRACTION

FAT_DN = 0.30 * 4095  # the generator's fat level; dense tissue is brighter


def _at_224(pixels: np.ndarray) -> np.ndarray:
    """Downsample like the model's input: long side to 224."""
    t = torch.from_numpy(pixels.astype(np.float32))[None, None]
    h, w = pixels.shape
    return F.interpolate(t, size=(224, round(224 * w / h)), mode="bilinear", antialias=True)[0, 0].numpy()


def _breast_stats(pixels: np.ndarray) -> tuple[float, float]:
    """(mean intensity, share of pixels clearly above fat) over the breast at 224 px."""
    small = _at_224(pixels)
    breast = small[small > 500]
    return float(breast.mean()), float((breast > FAT_DN + 450).mean())


@pytest.mark.parametrize("index", [0, 3, 11])
def test_density_class_is_visible_after_downsampling(index):
    """The same breast rendered at classes 1-4: brightness and dense share rise with the class."""
    base = sample_study(7, index)
    means, shares = [], []
    for density in (1, 2, 3, 4):
        frac = float(np.mean(DENSE_FRACTION[density]))
        spec = dataclasses.replace(base, density=density, dense_fraction=frac, findings=())
        m, s = _breast_stats(render_view(spec, "LCC", 512).pixels)
        means.append(m)
        shares.append(s)
    assert all(b > a + 60 for a, b in zip(means, means[1:])), means
    assert all(b > a + 0.05 for a, b in zip(shares, shares[1:])), shares
    assert shares[0] < 0.15 and shares[3] > 0.5, shares


def test_density_classes_separate_across_different_studies():
    """Across studies (different breasts, both views) the class ranges barely overlap."""
    by_class: dict[int, list[float]] = {1: [], 2: [], 3: [], 4: []}
    for i in range(16):
        spec = dataclasses.replace(sample_study(3, i), findings=())
        for key in ("RCC", "LMLO"):
            by_class[spec.density].append(_breast_stats(render_view(spec, key, 256).pixels)[1])
    medians = [np.median(v) for v in by_class.values() if v]
    assert len(medians) == 4 and all(b > a for a, b in zip(medians, medians[1:])), by_class


def test_finding_mix_and_birads_rules():
    specs = [sample_study(0, i) for i in range(400)]
    normal = np.mean([not s.findings for s in specs])
    with_mass = np.mean([any(f.kind == "mass" for f in s.findings) for s in specs])
    with_calc = np.mean([any(f.kind == "calcification" for f in s.findings) for s in specs])
    assert 0.32 < normal < 0.48 and 0.38 < with_mass < 0.55 and 0.08 < with_calc < 0.35
    counts = Counter(s.density for s in specs)
    assert set(counts) == {1, 2, 3, 4} and min(counts.values()) > 70
    for s in specs:
        for f in s.findings:
            if f.kind == "calcification":
                assert f.birads == 4
            elif f.shape in ("round", "oval"):
                assert f.birads == (2 if f.massdens == "0" else 3)
            elif f.shape == "spiculated":
                assert f.birads == 5
            else:
                assert f.birads in (4, 5)
            assert 12.0 <= f.size_mm <= 30.0 or f.kind == "calcification"
        assert s.birads == max([1] + [f.birads for f in s.findings])


@pytest.mark.slow
def test_four_default_size_studies_are_complete(tmp_path):
    # Their speed (4 studies in under 60 s) is a target of benchmarks/folder_scan.py.
    from mama_core.dicom import find_studies, read_image

    summary = generate_studies(tmp_path, 4, seed=0)
    assert summary.n_images == 16
    studies = find_studies(tmp_path)
    assert len(studies) == 4 and all(s.complete for s in studies)
    assert read_image(next(iter(studies[0].images.values()))).pixels.shape[0] == 2048
