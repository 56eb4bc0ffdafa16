"""The shipped demo model really learned (issue: "a demo model that really learned").

Measured on synthetic studies generated with a seed the demo never saw in training (it was
trained on seed 1000, see docs/demo-model.md): seed 4321, 12 studies, 48 views. The thresholds
sit near what was measured (2026-12-02, CPU), with a margin of a view or two for another CPU's
floating point: zero-shot density balanced accuracy 1.000 measured, at least 0.9 required
(a misread view costs 1/(4n) in a density class of n views: 0.02 at the average n of 12);
for "A mass is present in the breast." the map maximum inside a true mass box in 13 of 18
mass views measured, at least 0.6 (11 of 18) required. The issue's own targets (0.6 and one
half) are met with room. Skipped only when the demo model is absent
(it ships in resources/models/demo)."""

from __future__ import annotations

import numpy as np
import pytest

from mama_core.paths import resources_dir

DEMO = resources_dir() / "models" / "demo"
pytestmark = [
    pytest.mark.skipif(not (DEMO / "config.json").is_file(), reason="the demo model is not built"),
]


# `unseen` (seed 4321) and `demo` are the session fixtures of tests/inference/conftest.py.


def test_zero_shot_density_balanced_accuracy(demo, unseen):
    from mama_core.data import load_records
    from mama_core.evaluation.metrics import compute_metrics

    records = [r for r in load_records(unseen) if r.density is not None]
    probs = np.stack([demo.zero_shot_probs(demo.image_features(r.path), "density") for r in records])
    labels = np.array([r.density - 1 for r in records])
    metrics = compute_metrics(labels, probs, n_boot=0)
    print(f"density zero-shot balanced accuracy on {len(records)} unseen views: {metrics.balanced_accuracy:.4f}")
    assert metrics.balanced_accuracy >= 0.9, metrics


def test_mass_sentence_points_at_masses(demo, unseen):
    from mama_core.evaluation.localization import pointing_game

    result = pointing_game(demo, unseen)
    print(f"pointing game, mass sentence: {result.hits}/{result.views} views "
          f"({result.hit_rate:.4f})")
    assert result.views >= 4, "too few mass views in the unseen set to measure"
    assert result.hit_rate >= 0.6, result.details
