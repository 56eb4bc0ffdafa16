"""import-checkpoint on checkpoints in the released MaMA code's exact layout (built from the key
table, widths scaled down), checked against an independent forward of the released semantics
(tests/inference/released.py); plus the torch.hub ViT path and refusal of unsafe files."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
import torch.nn.functional as F

from mama_core.checkpoint_import import import_checkpoint, read_checkpoint
from mama_core.errors import ModelError
from mama_core.model.io import load_model_dir
from tests.inference import released

CAPTIONS = [
    "Screening mammography. Patient info: age 54, race unknown. Breast composition: heterogeneously dense; "
    "this may lower the sensitivity of mammography. Impression: BI-RADS Category 4: suspicious abnormality.",
    "Findings: an irregular high density mass. BI-RADS Category 1: negative.",
]
PROMPTS = ["BI-RADS Category 1: negative.", "BI-RADS Category 2: benign.", "BI-RADS Category 4: suspicious abnormality.",
           "Breast composition: extremely dense."]


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.float().flatten(0, -2), b.float().flatten(0, -2), dim=-1)


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    return released.build_text_model(tmp_path_factory.mktemp("gpt2") / "tiny-biomedlm")


@pytest.fixture(scope="module")
def fp32_state(text_folder):
    return released.build_state(text_folder, torch.float32)


@pytest.fixture(scope="module")
def pixels():
    g = torch.Generator().manual_seed(5)
    return torch.rand(2, 1, released.IMAGE_SIZE, released.IMAGE_SIZE, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def imported_fp32(tmp_path_factory, text_folder, fp32_state):
    path = tmp_path_factory.mktemp("ckpt") / "last.ckpt"
    torch.save(released.lightning_container(fp32_state), path)
    out = path.parent / "model"
    report = import_checkpoint(path, out, text_path=str(text_folder), num_heads=released.VIT_HEADS)
    model, info = load_model_dir(out)
    return report, model, info


def _outputs(model, pixels):
    with torch.no_grad():
        image = model.encode_image(pixels)
        text = model.encode_text(model.tokenize(CAPTIONS))
        prompts = model.encode_prompts(PROMPTS)
    return image, text, prompts


def _check_against_reference(model, state, text_folder, pixels, threshold):
    image, text, prompts = _outputs(model, pixels)
    three = pixels.expand(-1, 3, -1, -1)
    ref_global, ref_patches = released.reference_image(state, three)
    tok = released.released_tokenizer(text_folder)
    ref = released.reference_text(state, tok, CAPTIONS)
    ref_prompts = released.reference_text(state, tok, PROMPTS)["zero_shot"]
    assert torch.equal(model.tokenize(CAPTIONS)["input_ids"], ref["ids"])
    assert _cos(image["image_global"], ref_global).min() >= threshold
    assert _cos(image["image_patches"], ref_patches).min() >= threshold
    assert _cos(text["text_global"], ref["text_global"]).min() >= threshold
    for b, sentences in enumerate(ref["sentences"]):
        n = int(text["sentence_mask"][b].sum())
        assert n == len(sentences) and _cos(text["sentences"][b, :n], sentences).min() >= threshold
    assert _cos(prompts, ref_prompts).min() >= threshold
    ours = (model.scales()[0] * F.normalize(image["image_global"], dim=-1) @ F.normalize(prompts, dim=-1).T).softmax(-1)
    theirs = released.reference_zero_shot(state, ref_global, ref_prompts)
    assert _cos(ours, theirs).min() >= threshold
    return ours, theirs


def test_fixture_has_the_released_layout(fp32_state, text_folder):
    """Every key of the table, in the table's order of kinds; wte = tokenizer + 6 rows."""
    table = released.read_table()
    assert list(fp32_state) == [key for key, _, _ in table]
    bf16 = released.build_state(text_folder, torch.bfloat16)
    assert all(str(bf16[k].dtype) == f"torch.{dtype}" for k, _, dtype in table)
    tok = released.released_tokenizer(text_folder)
    assert fp32_state["text_encoder_q.model.base_model.model.transformer.wte.weight"].shape[0] == len(tok)


def test_fp32_import_reproduces_the_released_forward(imported_fp32, fp32_state, text_folder, pixels):
    report, model, info = imported_fp32
    ours, theirs = _check_against_reference(model, fp32_state, text_folder, pixels, 0.9999)
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert report.kind == "mama-lightning" and not report.fresh
    assert any("simclr_proj" in note for note in report.notes)
    cfg = info["model"]
    assert cfg["vision"]["pooling"] == "mean_pre_norm" and cfg["vision"]["resize"] == "stretch"
    assert cfg["text"]["tokenization"] == "released" and cfg["text"]["pooling"] == "mean_all"
    assert cfg["text"]["zero_shot_pooling"] == "pad_offset" and cfg["text"]["max_length"] == 144
    assert cfg["local_head"] == "conv_bn" and cfg["local_hidden"] == 24 and cfg["logit_scale_max"] is None
    assert info["reference"]["loss"]["directions"] == "sum" and info["reference"]["hyper_parameters"]["late_loss"] == 8000
    assert model.logit_scale.item() == pytest.approx(fp32_state["logit_scale"].item())


def test_bf16_checkpoint_imports_through_the_cli(tmp_path, text_folder, pixels, capsys):
    from mama_core.cli import main

    state = released.build_state(text_folder, torch.bfloat16, seed=1)
    torch.save(released.lightning_container(state), tmp_path / "bf16.ckpt")
    code = main(["import-checkpoint", str(tmp_path / "bf16.ckpt"), str(tmp_path / "model"), "--text-model",
                 str(text_folder), "--num-heads", str(released.VIT_HEADS)])
    assert code == 0, capsys.readouterr().err
    model, info = load_model_dir(tmp_path / "model")
    assert info["checkpoint_dtype"] == "bfloat16"
    # Every non-base tensor is the checkpoint's bf16 value exactly; the text base is the local
    # fp32 model (of which the checkpoint holds the bf16 rounding), hence a small difference.
    assert torch.equal(model.state_dict()["image_global_head.weight"],
                       state["img_encoder_q.global_embed.weight"].float())
    _check_against_reference(model, state, text_folder, pixels, 0.9999)


def test_safetensors_state_dict_imports_the_same(tmp_path, text_folder, fp32_state, imported_fp32, pixels):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in fp32_state.items()}, str(tmp_path / "mama.safetensors"),
              metadata={"hyper_parameters": json.dumps(released.HPARAMS)})
    import_checkpoint(tmp_path / "mama.safetensors", tmp_path / "model", text_path=str(text_folder),
                      num_heads=released.VIT_HEADS)
    model, _ = load_model_dir(tmp_path / "model")
    reference = imported_fp32[1]
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_mode_flags_come_from_hyper_parameters(tmp_path, text_folder, fp32_state):
    hparams = {**released.HPARAMS, "pool_feat": False, "pool_txt_feat": False}
    torch.save(released.lightning_container(fp32_state, hparams), tmp_path / "cls.ckpt")
    report = import_checkpoint(tmp_path / "cls.ckpt", tmp_path / "model", text_path=str(text_folder),
                               num_heads=released.VIT_HEADS)
    assert report.modes["vision.pooling"] == "cls" and report.modes["text.pooling"] == "pad_offset"
    torch.save(released.lightning_container(fp32_state, {**hparams, "avg_sent_feat": True}), tmp_path / "avg.ckpt")
    with pytest.raises(ModelError, match="avg_sent_feat"):
        import_checkpoint(tmp_path / "avg.ckpt", tmp_path / "model2", text_path=str(text_folder))


def test_misfits_are_named_key_by_key(tmp_path, text_folder, fp32_state):
    state = dict(fp32_state)
    del state["text_encoder_q.global_embed.bias"]
    state["img_encoder_q.projector.weight"] = torch.zeros(2)
    key = "img_encoder_q.local_embed.head.3.bias"
    state[key] = torch.zeros(7)
    torch.save(released.lightning_container(state), tmp_path / "bad.ckpt")
    with pytest.raises(ModelError) as err:
        import_checkpoint(tmp_path / "bad.ckpt", tmp_path / "out", text_path=str(text_folder),
                          num_heads=released.VIT_HEADS)
    text = str(err.value)
    assert "missing text_global_head.bias" in text and "unexpected img_encoder_q.projector.weight" in text
    assert "shape image_local_head.head.3.bias" in text
    assert not (tmp_path / "out").exists()


def test_text_base_is_compared_in_the_checkpoint_dtype(tmp_path, text_folder):
    state = released.build_state(text_folder, torch.bfloat16)
    key = "text_encoder_q.model.base_model.model.transformer.h.1.mlp.c_fc.weight"
    state[key] = state[key] * 1.01
    torch.save(released.lightning_container(state), tmp_path / "other.ckpt")
    with pytest.raises(ModelError, match=r"compared in bfloat16\) at: text\.backbone\..*h\.1\.mlp\.c_fc"):
        import_checkpoint(tmp_path / "other.ckpt", tmp_path / "out", text_path=str(text_folder),
                          num_heads=released.VIT_HEADS)


def test_wrong_text_model_is_refused(tmp_path, fp32_state):
    torch.save(released.lightning_container(fp32_state), tmp_path / "mama.ckpt")
    with pytest.raises(ModelError):
        import_checkpoint(tmp_path / "mama.ckpt", tmp_path / "out", text_path="minilm")


# --------------------------------------------------------------------------- torch.hub ViT


def test_hub_vit_state_dict(tmp_path, fp32_state):
    hub = {k.removeprefix("img_encoder_q.model."): v for k, v in fp32_state.items()
           if k.startswith("img_encoder_q.model.")}
    torch.save(hub, tmp_path / "dinov2.pth")
    report = import_checkpoint(tmp_path / "dinov2.pth", tmp_path / "out", num_heads=2, embed_dim=16)
    assert report.kind == "hub-vit" and report.fresh
    model, _ = load_model_dir(tmp_path / "out")
    assert torch.equal(model.state_dict()["vision.layernorm.weight"], hub["norm.weight"])
    assert read_checkpoint(tmp_path / "dinov2.pth").hparams is None


# --------------------------------------------------------------------------- unsafe files


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_code_executing_pickle_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    payload = _Exploit()
    payload.marker = marker
    path = tmp_path / "evil.ckpt"
    if writer == "pickle":
        with open(path, "wb") as fh:
            pickle.dump({"state_dict": {"x": payload}}, fh)
    else:
        torch.save({"state_dict": {"x": payload}, "hyper_parameters": {"pool_feat": True}}, path)
    with pytest.raises(ModelError, match="refused to load"):
        import_checkpoint(path, tmp_path / "out")
    assert not marker.exists()
