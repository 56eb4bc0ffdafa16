"""torch.hub-format DINOv2 state dicts: conversion, position-embedding resize, errors."""

from __future__ import annotations

import pytest
import torch
from transformers import Dinov2WithRegistersModel

from mama_core.errors import ModelError
from mama_core.model.vision import build_vision, hf_vision_config

@pytest.fixture()
def reference(make_config):
    torch.manual_seed(0)
    cfg = make_config().vision
    model = Dinov2WithRegistersModel(hf_vision_config(cfg)).eval()
    with torch.no_grad():   # non-trivial layer scales and tokens, so every key matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return cfg, model


def test_hub_round_trip_gives_equal_outputs(reference, to_hub, tmp_path) -> None:
    cfg, model = reference
    path = tmp_path / "dinov2_hub.pth"
    torch.save(to_hub(model), path)
    loaded, resolved = build_vision(cfg.__class__(**{**cfg.__dict__, "source": "hub", "path": str(path)}))
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(pixel_values=x).last_hidden_state,
                              model(pixel_values=x).last_hidden_state, atol=1e-6)
    assert resolved.registers and resolved.hidden_size == 32


def test_hub_position_embeddings_resized_like_transformers(reference, to_hub, tmp_path) -> None:
    cfg, model = reference
    path = tmp_path / "dinov2_hub.pth"
    torch.save(to_hub(model), path)
    bigger = cfg.__class__(**{**cfg.__dict__, "source": "hub", "path": str(path), "image_size": 84})
    loaded, _ = build_vision(bigger)
    assert loaded.embeddings.position_embeddings.shape == (1, 1 + 36, 32)
    x = torch.randn(1, 3, 84, 84)
    with torch.no_grad():   # the 56-px model interpolates at run time; ours did it on load
        ref = model(pixel_values=x).last_hidden_state
        assert torch.allclose(loaded.eval()(pixel_values=x).last_hidden_state, ref, atol=1e-5)


def test_hub_missing_and_unexpected_keys_are_named(reference, to_hub, tmp_path) -> None:
    cfg, model = reference
    hub = to_hub(model)
    del hub["blocks.1.ls2.gamma"]
    hub["head.weight"] = torch.zeros(2, 2)
    path = tmp_path / "broken.pth"
    torch.save(hub, path)
    with pytest.raises(ModelError) as err:
        build_vision(cfg.__class__(**{**cfg.__dict__, "source": "hub", "path": str(path)}))
    assert "encoder.layer.1.layer_scale2.lambda1" in str(err.value)
    assert "head.weight" in str(err.value) and "broken.pth" in str(err.value)


def test_hub_shape_mismatch_and_unsafe_pickle(reference, to_hub, tmp_path) -> None:
    cfg, model = reference
    hub = to_hub(model)
    hub["norm.weight"] = torch.zeros(7)
    path = tmp_path / "shape.pth"
    torch.save(hub, path)
    hub_cfg = cfg.__class__(**{**cfg.__dict__, "source": "hub", "path": str(path)})
    with pytest.raises(ModelError, match="layernorm.weight"):
        build_vision(hub_cfg)
    torch.save({"x": torch.nn.Linear(2, 2)}, path)   # a pickled module, not just tensors
    with pytest.raises(ModelError, match="weights-only"):
        build_vision(hub_cfg)


def test_local_hf_directory_source(reference, tmp_path) -> None:
    cfg, model = reference
    model.save_pretrained(tmp_path / "dinov2")
    wanted = cfg.__class__(source="hf", path=str(tmp_path / "dinov2"), image_size=84,
                           hidden_size=768, num_heads=12)      # sizes come from the directory
    loaded, resolved = build_vision(wanted)
    assert (resolved.hidden_size, resolved.num_heads, resolved.num_layers) == (32, 2, 2)
    assert resolved.image_size == 84 and loaded.config.image_size == 84
    x = torch.randn(1, 3, 84, 84)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(pixel_values=x).last_hidden_state,
                              model(pixel_values=x).last_hidden_state, atol=1e-5)
    with pytest.raises(ModelError, match="no config.json"):
        build_vision(cfg.__class__(source="hf", path=str(tmp_path / "missing")))
