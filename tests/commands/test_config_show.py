"""`mama config show`: every option of the resolved config with its help text and default."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mama_core.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "resources" / "configs"


def test_show_lists_every_option_with_help_and_marks_changes(capsys):
    assert main(["config", "show", str(CONFIGS / "smoke.yaml"), "--set", "optim.lr=3e-4"]) == 0
    out = capsys.readouterr().out
    assert "(no help text)" not in out
    assert "* optim.lr = 0.0003   (default 4e-05)" in out
    assert "peak AdamW learning rate" in out
    assert "* model.vision.hidden_size = 64   (default 768)" in out  # the model section, resolved
    assert "  loss.image_image_temperature = 0.1" in out  # the loss section through LossConfig
    assert "[augment]" in out and "[run]" in out


def test_show_json_covers_every_typed_field(capsys):
    from mama_core.losses import LossConfig
    from mama_core.model.config import ModelConfig, TextConfig, VisionConfig
    from mama_core.training.config import AugmentConfig, DataConfig, OptimConfig, TrainConfig

    assert main(["config", "show", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    keys = {o["key"] for o in doc["options"]}
    expected = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "loss", "optim", "data", "augment"}
    for prefix, cls in [("optim.", OptimConfig), ("data.", DataConfig), ("augment.", AugmentConfig),
                        ("loss.", LossConfig), ("model.vision.", VisionConfig), ("model.text.", TextConfig)]:
        expected |= {prefix + f.name for f in dataclasses.fields(cls)}
    expected |= {f"model.{f.name}" for f in dataclasses.fields(ModelConfig)} - {"model.vision", "model.text"}
    assert keys == expected
    missing = [o["key"] for o in doc["options"] if not o["help"]]
    assert not missing, f"options without help metadata: {missing}"
    assert not any(o["changed"] for o in doc["options"])  # no file: all defaults


def test_show_finetune_options(capsys):
    assert main(["config", "show", "--finetune"]) == 0
    out = capsys.readouterr().out
    assert "  mode = linear-probe" in out and "linear-probe | lora | full | continue-pretraining" in out
    assert "(no help text)" not in out


def test_show_bad_file_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: -1\n")
    assert main(["config", "show", str(bad)]) == 2
    assert "optim.lr" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["config"], ["config", "list"]])
def test_show_needs_its_action(argv):
    with pytest.raises(SystemExit):
        main(argv)
