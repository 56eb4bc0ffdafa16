"""The claim that matters: on held-out synthetic cases, a linear probe fitted locally beats
the model's own zero-shot density prediction (or, where zero-shot is already perfect on
them, matches it).  It needs a model that has learned
something, so it runs only once the demo model has been built."""

from __future__ import annotations

import shutil

import pytest

from mama_core.paths import resources_dir

DEMO = resources_dir() / "models" / "demo"


@pytest.mark.skipif(not (DEMO / "config.json").is_file(),
                    reason="the demo model is not built yet (resources/models/demo/config.json); "
                           "a random-init model has nothing for a probe to improve on")
def test_probe_improves_density_over_zero_shot(tmp_path):
    from mama_core.finetune import FinetuneConfig, finetune
    from mama_core.registry import Registry
    from mama_core.synthetic import generate_studies

    generate_studies(tmp_path / "studies", 12, seed=777, rows=512)
    # The demo without its probe heads, as the active model: its held-out predictions are zero-shot.
    shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns("heads"))
    registry = Registry()
    registry.activate(registry.add(tmp_path / "demo", "demo-zero-shot", "trained").id)

    cfg = FinetuneConfig(task="density", mode="linear-probe", val_fraction=1 / 3, seed=0, device="cpu")
    final = list(finetune(cfg, tmp_path / "studies"))[-1]
    report = final.comparison
    assert final.version_id is not None
    assert report["baseline"]["method"] == "zero-shot" and report["new"]["method"] == "probe"
    assert report["n_cases"] >= 12
    base, new = report["baseline"]["balanced_accuracy"], report["new"]["balanced_accuracy"]
    if base < 1.0:
        assert new > base, report
    else:  # the demo's zero-shot density is already perfect on these cases: nothing may be lost
        assert new == 1.0, report
