from __future__ import annotations

from pathlib import Path

import pytest

from mama_core.errors import ConfigError
from mama_core.paths import resources_dir
from mama_core.training import TrainConfig, apply_overrides, load_config


def test_yaml_and_typed_overrides(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 4e-5\n  max_steps: 10\nbatch_size: 8\nloss:\n  delta_steps: 3\n")
    cfg = load_config(path, ["optim.lr=1e-3", "augment.crop_scale=0.6,1.0", "grad_checkpointing=true",
                             "model.vision.hidden_size=96", "data.cache_dir=none", "image_size=224"])
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.optim.max_steps == 10 and cfg.batch_size == 8
    assert cfg.augment.crop_scale == (0.6, 1.0)
    assert cfg.grad_checkpointing is True and cfg.model["vision"]["gradient_checkpointing"] is True
    assert cfg.model["vision"]["hidden_size"] == 96 and cfg.model["vision"]["image_size"] == 224
    assert cfg.loss_config().delta_steps == 3
    assert cfg.data.cache_dir is None


def test_yaml_float_without_dot_is_a_number(tmp_path: Path):
    # PyYAML reads `4e-5` as a string; the loader must still type it as a float.
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 4e-5\n")
    assert load_config(path).optim.lr == pytest.approx(4e-5)


@pytest.mark.parametrize("override,field", [
    ("optim.lr=-1", "optim.lr"),
    ("optim.nope=1", "optim.nope"),
    ("batch_size=abc", "batch_size"),
    ("batch_size=0", "batch_size"),
    ("precision=fp16", "precision"),
    ("data.balance=site", "data.balance"),
    ("augment.crop_scale=0.9,0.5", "augment.crop_scale"),
    ("loss.delta_steps=-2", "loss.delta_steps"),
    ("model.vision.image_size=100", "model.vision.image_size"),
])
def test_validation_names_the_field(override: str, field: str):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert info.value.field == field


def test_error_names_the_file(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  warmup_steps: -5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == path and "optim.warmup_steps" in str(info.value)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "list.yaml")


def test_malformed_override():
    with pytest.raises(ConfigError):
        apply_overrides({}, ["optim.lr"])


@pytest.mark.parametrize("name", ["mama-b14", "smoke", "demo"])
def test_shipped_configs_load(name: str):
    cfg = load_config(resources_dir() / "configs" / f"{name}.yaml")
    assert cfg.model_config() is not None


def test_paper_recipe_values():
    cfg = load_config(resources_dir() / "configs" / "mama-b14.yaml")
    m = cfg.model_config()
    assert (m.vision.hidden_size, m.vision.patch_size, m.vision.image_size, m.vision.registers) == (768, 14, 518, True)
    assert (m.text.lora_r, m.text.lora_alpha, m.text.lora_dropout) == (8, 32, 0.1)
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.warmup_steps, cfg.optim.max_steps) == (4e-5, 0.1, 4000, 40000)
    assert cfg.batch_size == 36 and cfg.loss_config().delta_steps == 8000


def test_round_trip_through_dict():
    cfg = load_config(None, ["augment.blur_sigma=0.5,1.0", "optim.betas=0.8,0.9"])
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg


def test_released_code_options_override_and_validate():
    cfg = load_config(None, ["loss.delta_terms=[image_image_loss, local_loss]", "loss.directions=sum",
                             "optim.decay_all=true", "model.vision.resize=stretch", "model.local_head=conv_bn",
                             "model.logit_scale_max=null"])
    loss = cfg.loss_config()
    assert loss.delta_terms == ["image_image_loss", "local_loss"] and loss.directions == "sum"
    assert cfg.optim.decay_all and cfg.model_config().vision.resize == "stretch"
    assert cfg.model_config().logit_scale_max is None
    for override, field in [("loss.delta_terms=[image_text_loss]", "loss.delta_terms"),
                            ("loss.directions=max", "loss.directions"),
                            ("model.vision.resize=crop", "model.vision.resize"),
                            ("model.text.pooling=first", "model.text.pooling"),
                            ("model.local_head=attention", "model.local_head")]:
        with pytest.raises(ConfigError) as info:
            load_config(None, [override])
        assert info.value.field == field, override


def test_checkpointing_policy_per_encoder():
    assert load_config(None).model.get("vision", {}).get("gradient_checkpointing") is None
    text = load_config(None, ["checkpointing=text"]).model
    assert text["text"]["gradient_checkpointing"] is True and "vision" not in text
    both = load_config(None, ["checkpointing=all"]).model
    assert both["text"]["gradient_checkpointing"] and both["vision"]["gradient_checkpointing"]
    vision = load_config(None, ["checkpointing=vision"]).model
    assert vision["vision"]["gradient_checkpointing"] and "text" not in vision
    with pytest.raises(ConfigError) as err:
        load_config(None, ["checkpointing=blocks"])
    assert err.value.field == "checkpointing"

def test_every_config_shares_one_builder(tmp_path: Path):
    # One mechanism for all configs: an unknown key is named with its section and the file.
    from mama_core.evaluation import EvalConfig
    from mama_core.finetune import FinetuneConfig
    from mama_core.model import ModelConfig

    bad = tmp_path / "finetune.yaml"
    bad.write_text("task: density\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError) as info:
        FinetuneConfig.from_yaml(bad)
    assert info.value.path == bad and info.value.field == "learning_rate"
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict({"vision": {"depth": 3}}, path="config.json")
    assert info.value.field == "vision.depth" and str(info.value).startswith("config.json: ")
    cfg = FinetuneConfig.from_dict({"mode": "lora", "lora_targets": ["q_proj"], "lr": "2e-4", "max_steps": 10.0})
    assert cfg.lora_targets == ("q_proj",) and cfg.lr == pytest.approx(2e-4) and cfg.max_steps == 10
    assert FinetuneConfig.from_dict(cfg.to_dict()) == cfg
    ev = EvalConfig(tasks=["density"], mode="finetune", split=(0.5, 0.0, 0.5), steps=3)
    assert EvalConfig.from_dict(ev.to_dict()) == ev
    with pytest.raises(ConfigError) as info:
        EvalConfig.from_dict({"split": [0.5, 0.6, 0.1]})
    assert info.value.field == "split"
    with pytest.raises(ConfigError) as info:
        FinetuneConfig(device="gpu")
    assert info.value.field == "device"
