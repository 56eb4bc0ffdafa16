"""ModelConfig.local_tissue_only survives building, saving and loading, and yields a patch mask."""

from __future__ import annotations

import dataclasses

import torch

from mama_core.model import build_model
from mama_core.model.io import load_model_dir, save_model_dir


def test_tissue_only_flag_round_trips_and_masks_air(make_config, tmp_path):
    cfg = dataclasses.replace(make_config(), local_tissue_only=True)
    model = build_model(cfg)
    assert model.config.local_tissue_only is True
    image = torch.zeros(1, 1, 56, 56)
    image[0, 0, :, :14] = 1.0  # tissue in the first patch column only (chest-wall side)
    out = model.encode_image(image * 2 - 1)
    assert out["patch_mask"].reshape(4, 4)[:, 0].all() and not out["patch_mask"].reshape(4, 4)[:, 1:].any()
    loaded, _ = load_model_dir(save_model_dir(model, tmp_path / "m"))
    assert loaded.config.local_tissue_only is True


def test_default_model_has_no_patch_mask(make_config):
    out = build_model(make_config()).encode_image(torch.zeros(1, 1, 56, 56))
    assert "patch_mask" not in out


def test_whole_patch_rule_round_trips_and_is_checked(make_config, tmp_path):
    import pytest

    from mama_core.errors import ConfigError

    cfg = dataclasses.replace(make_config(), local_tissue_only=True, tissue_patch_rule="whole")
    model = build_model(cfg)
    image = torch.zeros(1, 1, 56, 56)
    image[0, 0, :, :20] = 1.0  # whole tissue in column 0, a sliver in column 1
    mask = model.encode_image(image * 2 - 1)["patch_mask"].reshape(4, 4)
    assert mask[:, 0].all() and not mask[:, 1:].any()
    loaded, _ = load_model_dir(save_model_dir(model, tmp_path / "m"))
    assert loaded.config.tissue_patch_rule == "whole"
    with pytest.raises(ConfigError, match="tissue_patch_rule"):
        dataclasses.replace(make_config(), tissue_patch_rule="most")
