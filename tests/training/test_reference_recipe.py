"""The released code's recipe (resources/configs/mama-b14-reference.yaml): it loads as the
released flags say, and `mama train` runs with it at smoke size, its loss terms gated and
summed as the released code does (the definitions themselves: tests/test_losses.py)."""

from __future__ import annotations

import pytest

from mama_core.paths import resources_dir
from mama_core.training import load_config

REFERENCE = resources_dir() / "configs" / "mama-b14-reference.yaml"


def test_reference_yaml_is_the_released_recipe():
    cfg = load_config(REFERENCE)
    assert (cfg.batch_size, cfg.grad_accum, cfg.precision) == (36, 2, "bf16")
    assert cfg.optim.lr == pytest.approx(4e-5) and cfg.optim.weight_decay == pytest.approx(0.1)
    assert cfg.optim.decay_all and (cfg.optim.warmup_steps, cfg.optim.max_steps) == (4000, 40000)
    assert cfg.data.mask_prob == pytest.approx(0.8)
    loss = cfg.loss_config()
    assert loss.delta_steps == 8000 and loss.directions == "sum" and loss.image_image_temperature == 0.5
    assert set(loss.delta_terms) == {"image_image_loss", "image2_text_loss", "local_loss"}
    model = cfg.model
    assert model["vision"]["image_size"] == 518 and model["vision"]["resize"] == "stretch"
    assert model["vision"]["pooling"] == "mean_pre_norm" and model["text"]["max_length"] == 144
    assert model["text"]["tokenization"] == "released" and model["text"]["pooling"] == "mean_all"
    assert model["local_head"] == "conv_bn" and model["local_hidden"] == 2048
    assert model["logit_scale_max"] is None and model["image_image_head"] == "simclr"


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    from tests.inference.released import build_text_model

    return build_text_model(tmp_path_factory.mktemp("gpt2") / "tiny-gpt2")


def test_train_with_the_reference_recipe_at_smoke_size(synthetic_dir, cache_dir, gpt2_folder, tmp_path, capsys):
    """Two steps with delta = 1: before delta only single-view CLIP is on; after it every term."""
    import json

    from mama_core.cli import main

    sets = ["model.vision.hidden_size=32", "model.vision.num_heads=2", "model.vision.num_layers=1",
            "model.vision.num_register_tokens=1", "image_size=56", "model.embed_dim=16", "model.local_hidden=24",
            f"model.text.path={gpt2_folder}", "batch_size=4", "grad_accum=1", "precision=fp32",
            "data.num_workers=0", "data.val_fraction=0.5", "optim.warmup_steps=1", "optim.max_steps=2",
            "loss.delta_steps=1", "log_every=1", "ckpt_every=0", "val_every=0", f"data.cache_dir={cache_dir}"]
    args = ["train", "--config", str(REFERENCE), "--data", str(synthetic_dir), "--out", str(tmp_path / "run"), "--json"]
    code = main(args + [a for s in sets for a in ("--set", s)])
    out = capsys.readouterr()
    assert code == 0, out.err
    reports = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    steps = {r["step"]: r["losses"] for r in reports if "losses" in r}
    first, second = steps[1], steps[2]
    assert first["image_text_loss"] > 0
    assert first["image_image_loss"] == first["image2_text_loss"] == first["local_loss"] == 0.0
    assert all(second[k] > 0 for k in ("image_image_loss", "image_text_loss", "image2_text_loss", "local_loss"))
    assert (tmp_path / "run" / "model" / "config.json").is_file()
