"""Model directories: save/load round trips, strict loading, no text base copies."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from mama_core.errors import ConfigError, ModelError
from mama_core.model import TextConfig, build_model, load_model_dir, save_model_dir
from mama_core.model.vision import build_vision

CAPTIONS = ["Dense breast. No mass; BI-RADS 1.", "Screening mammogram"]


def _perturb(model) -> None:
    # Heads, LoRA B (zero at init) and the scales away from their init, so a load that
    # silently skipped them would show.
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)


def _outputs(model) -> dict:
    torch.manual_seed(2)
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        return model(x, x.flip(-1), model.tokenize(CAPTIONS))


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def saved_bert(tmp_path_factory, make_config):
    model = build_model(make_config())
    _perturb(model)
    model.eval()
    directory = save_model_dir(model, tmp_path_factory.mktemp("models") / "bert",
                               extra={"preprocess": {"size": 56}})
    return model, directory


def test_round_trip_identical_outputs(saved_bert) -> None:
    model, directory = saved_bert
    loaded, info = load_model_dir(directory)
    _assert_same(_outputs(model), _outputs(loaded))
    assert info["preprocess"] == {"size": 56} and info["image_size"] == 56
    assert info["separator_token"] == "[SEP]" and info["model"]["text"]["path"] == "minilm"
    assert loaded.config == model.config and not loaded.training


def test_saved_tensors_exclude_text_base(saved_bert) -> None:
    model, directory = saved_bert
    keys = set(load_file(str(directory / "model.safetensors")))
    assert not any(k.startswith("text.") and "lora_" not in k for k in keys)
    assert any("lora_A" in k for k in keys) and "logit_scale" in keys
    assert {k for k in model.state_dict() if k.startswith("vision.")} <= keys
    assert (directory / "text" / "separator.json").is_file()
    assert not list(directory.parent.glob(".bert.tmp-*"))


def _rewrite(directory, change) -> None:
    path = directory / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def _copy(saved_bert, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(saved_bert[1], target)
    return target


def test_missing_tensor_is_named(saved_bert, tmp_path) -> None:
    target = _copy(saved_bert, tmp_path)
    _rewrite(target, lambda t: t.pop("image_local_head.2.weight"))
    with pytest.raises(ModelError, match=r"missing \['image_local_head\.2\.weight'\]") as err:
        load_model_dir(target)
    assert "model.safetensors" in str(err.value)


def test_unexpected_tensor_and_shape_mismatch(saved_bert, tmp_path) -> None:
    target = _copy(saved_bert, tmp_path)
    _rewrite(target, lambda t: t.update(stray=torch.zeros(1)))
    with pytest.raises(ModelError, match="stray"):
        load_model_dir(target)
    _rewrite(target, lambda t: (t.pop("stray"), t.update({"text_global_head.bias": torch.zeros(3)})))
    with pytest.raises(ModelError, match="shape mismatch.*text_global_head.bias"):
        load_model_dir(target)


def test_bad_config_files(saved_bert, tmp_path) -> None:
    target = _copy(saved_bert, tmp_path)
    (target / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json"):
        load_model_dir(target)
    with pytest.raises(ModelError, match="no config.json"):
        load_model_dir(tmp_path / "nowhere")


def test_reserved_extra_key_rejected(saved_bert, tmp_path) -> None:
    with pytest.raises(ConfigError, match="model"):
        save_model_dir(saved_bert[0], tmp_path / "x", extra={"model": 1})
    assert not (tmp_path / "x").exists()


def test_overwrite_keeps_foreign_entries(saved_bert, tmp_path) -> None:
    target = _copy(saved_bert, tmp_path)
    (target / "heads").mkdir()
    (target / "heads" / "probe.json").write_text("{}")
    save_model_dir(saved_bert[0], target, extra={"version": 2})
    assert (target / "heads" / "probe.json").is_file()
    assert json.loads((target / "config.json").read_text())["version"] == 2


def test_decoder_round_trip(gpt2_dir, make_config, tmp_path) -> None:
    model = build_model(make_config(TextConfig(path=str(gpt2_dir), lora_r=4)))
    _perturb(model)
    model.eval()
    directory = save_model_dir(model, tmp_path / "gpt")
    loaded, info = load_model_dir(directory)
    assert info["separator_token"] == "<|sent|>" and info["model"]["text"]["path"] == str(gpt2_dir.resolve())
    assert loaded.text.sep_id == model.text.sep_id
    assert torch.equal(loaded.text.sep_embedding, model.text.sep_embedding)
    _assert_same(_outputs(model), _outputs(loaded))


def test_bundled_text_base_and_hub_source_survive_deletion(gpt2_dir, make_config, to_hub, tmp_path) -> None:
    import shutil

    base = tmp_path / "gpt_base"
    shutil.copytree(gpt2_dir, base)
    vision, _ = build_vision(make_config().vision)
    hub = tmp_path / "hub.pth"
    torch.save(to_hub(vision), hub)
    model = build_model(make_config(TextConfig(path=str(base), lora_r=4), source="hub", path=str(hub)))
    model.eval()
    directory = save_model_dir(model, tmp_path / "bundled", copy_text_base=True)
    shutil.rmtree(base)
    hub.unlink()
    loaded, info = load_model_dir(directory)
    assert info["model"]["text"]["path"] == "text/base"
    _assert_same(_outputs(model), _outputs(loaded))
    # Re-saving a bundled model bundles again by default.
    again = save_model_dir(loaded, tmp_path / "again")
    assert (again / "text" / "base" / "config.json").is_file()
