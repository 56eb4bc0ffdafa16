"""ModelConfig / VisionConfig / TextConfig validation and dict round trips."""

from __future__ import annotations

import json

import pytest

from mama_core.errors import ConfigError
from mama_core.model import ModelConfig, TextConfig, VisionConfig


def test_defaults_follow_design() -> None:
    cfg = ModelConfig()
    assert (cfg.vision.hidden_size, cfg.vision.patch_size, cfg.vision.image_size) == (768, 14, 518)
    assert cfg.vision.registers and cfg.embed_dim == 512
    assert (cfg.text.lora_r, cfg.text.lora_alpha, cfg.text.lora_dropout) == (8, 32, 0.1)
    assert cfg.logit_scale_init == pytest.approx(1 / 0.07) and cfg.logit_scale_max == 100.0


def test_round_trip_through_json() -> None:
    cfg = ModelConfig(vision=VisionConfig(hidden_size=64, num_heads=4, image_size=98),
                      text=TextConfig(path="/x", lora_targets=["q_proj", "v_proj"]), embed_dim=32)
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and isinstance(again.vision, VisionConfig)


@pytest.mark.parametrize("kwargs,field", [
    (dict(source="hub"), "vision.path"),
    (dict(source="nope"), "vision.source"),
    (dict(image_size=100), "vision.image_size"),
    (dict(hidden_size=30, num_heads=4), "vision.num_heads"),
    (dict(num_layers=0), "vision.num_layers"),
])
def test_vision_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        VisionConfig(**kwargs)


@pytest.mark.parametrize("kwargs,field", [
    (dict(family="encoder"), "text.family"),
    (dict(pooling="max"), "text.pooling"),
    (dict(lora_dropout=1.0), "text.lora_dropout"),
    (dict(lora_targets=[]), "text.lora_targets"),
    (dict(max_length=2), "text.max_length"),
])
def test_text_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        TextConfig(**kwargs)


def test_model_validation_and_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="logit_scale_init"):
        ModelConfig(logit_scale_init=200.0)
    with pytest.raises(ConfigError, match="embed_dim"):
        ModelConfig(embed_dim=0)
    with pytest.raises(ConfigError, match="colour"):
        ModelConfig.from_dict({"colour": 1})
    with pytest.raises(ConfigError, match="depth"):
        ModelConfig.from_dict({"vision": {"depth": 3}})
