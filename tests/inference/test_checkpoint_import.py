"""import-checkpoint on synthetic Lightning / torch.hub state dicts with the real key names."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from mama_core.checkpoint_import import import_checkpoint
from mama_core.errors import ModelError
from mama_core.model.io import load_model_dir

D, LAYERS, PATCH, GRID, REG, EMB = 32, 2, 14, 4, 2, 16


def hub_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    state = {"cls_token": r(1, 1, D), "pos_embed": r(1, 1 + GRID * GRID, D), "register_tokens": r(1, REG, D),
             "mask_token": r(1, D), "patch_embed.proj.weight": r(D, 3, PATCH, PATCH), "patch_embed.proj.bias": r(D),
             "norm.weight": r(D), "norm.bias": r(D)}
    for i in range(LAYERS):
        b = f"blocks.{i}."
        state.update({b + "norm1.weight": r(D), b + "norm1.bias": r(D), b + "attn.qkv.weight": r(3 * D, D),
                      b + "attn.qkv.bias": r(3 * D), b + "attn.proj.weight": r(D, D), b + "attn.proj.bias": r(D),
                      b + "ls1.gamma": r(D), b + "norm2.weight": r(D), b + "norm2.bias": r(D),
                      b + "mlp.fc1.weight": r(4 * D, D), b + "mlp.fc1.bias": r(4 * D),
                      b + "mlp.fc2.weight": r(D, 4 * D), b + "mlp.fc2.bias": r(D), b + "ls2.gamma": r(D)})
    return state


@pytest.fixture(scope="module")
def text_state():
    """The peft-wrapped MiniLM state (base weights + LoRA), as `text_encoder_q.model.*` holds it."""
    from mama_core.model.config import TextConfig
    from mama_core.model.text import TextEncoder

    enc = TextEncoder(TextConfig(path="minilm", max_length=64))
    state = {k: v.clone() for k, v in enc.backbone.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    for k in state:
        if "lora_" in k:
            state[k] = torch.randn(state[k].shape, generator=g)
    return state


def lightning_ckpt(text_state):
    g = torch.Generator().manual_seed(2)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    sd = {f"img_encoder_q.model.{k}": v for k, v in hub_state().items()}
    sd.update({f"text_encoder_q.model.{k}": v for k, v in text_state.items()})
    sd.update({"img_encoder_q.global_embed.weight": r(EMB, D), "img_encoder_q.global_embed.bias": r(EMB),
               "img_encoder_q.local_embed.0.weight": r(D, D, 1), "img_encoder_q.local_embed.0.bias": r(D),
               "img_encoder_q.local_embed.2.weight": r(EMB, D, 1), "img_encoder_q.local_embed.2.bias": r(EMB),
               "text_encoder_q.global_embed.weight": r(EMB, 384), "text_encoder_q.global_embed.bias": r(EMB),
               "text_encoder_q.local_embed.0.weight": r(384, 384), "text_encoder_q.local_embed.0.bias": r(384),
               "text_encoder_q.local_embed.2.weight": r(EMB, 384), "text_encoder_q.local_embed.2.bias": r(EMB),
               "logit_scale": torch.tensor(2.5), "local_scale": torch.tensor(1.5)})
    return {"state_dict": sd, "epoch": 3, "global_step": 1000}


def test_lightning_checkpoint_round_trip(tmp_path, text_state):
    ckpt = lightning_ckpt(text_state)
    torch.save(ckpt, tmp_path / "mama.ckpt")
    report = import_checkpoint(tmp_path / "mama.ckpt", tmp_path / "out", num_heads=2)
    assert report.kind == "mama-lightning" and not report.fresh
    model, info = load_model_dir(tmp_path / "out")
    sd, src = model.state_dict(), ckpt["state_dict"]
    q, k, v = src["img_encoder_q.model.blocks.1.attn.qkv.weight"].chunk(3)
    assert torch.equal(sd["vision.encoder.layer.1.attention.k_proj.weight"], k)
    assert torch.equal(sd["vision.embeddings.register_tokens"], src["img_encoder_q.model.register_tokens"])
    assert torch.equal(sd["image_local_head.0.weight"], src["img_encoder_q.local_embed.0.weight"][..., 0])
    assert torch.equal(sd["text_global_head.weight"], src["text_encoder_q.global_embed.weight"])
    lora = next(k for k in text_state if "lora_B" in k)
    assert torch.equal(sd[f"text.backbone.{lora}"], text_state[lora])
    assert float(sd["logit_scale"]) == 2.5 and float(sd["local_scale"]) == 1.5
    assert model.config.vision.image_size == GRID * PATCH and info["import_kind"] == "mama-lightning"


def test_missing_and_unexpected_keys_are_named(tmp_path, text_state):
    ckpt = lightning_ckpt(text_state)
    del ckpt["state_dict"]["text_encoder_q.global_embed.bias"]
    ckpt["state_dict"]["img_encoder_q.projector.weight"] = torch.zeros(2)
    torch.save(ckpt, tmp_path / "bad.ckpt")
    with pytest.raises(ModelError) as err:
        import_checkpoint(tmp_path / "bad.ckpt", tmp_path / "out", num_heads=2)
    assert "text_global_head.bias" in str(err.value) and "img_encoder_q.projector.weight" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_text_base_must_match_the_local_text_model(tmp_path, text_state):
    ckpt = lightning_ckpt(text_state)
    key = next(k for k in ckpt["state_dict"] if k.endswith("query.base_layer.weight"))
    ckpt["state_dict"][key] = ckpt["state_dict"][key] + 1.0
    torch.save(ckpt, tmp_path / "other-base.ckpt")
    with pytest.raises(ModelError, match="text base weights differ"):
        import_checkpoint(tmp_path / "other-base.ckpt", tmp_path / "out", num_heads=2)


def test_hub_vit_state_dict(tmp_path):
    torch.save(hub_state(), tmp_path / "dinov2.pth")
    report = import_checkpoint(tmp_path / "dinov2.pth", tmp_path / "out", num_heads=2, embed_dim=EMB)
    assert report.kind == "hub-vit" and report.fresh
    model, _ = load_model_dir(tmp_path / "out")
    assert torch.equal(model.state_dict()["vision.layernorm.weight"], hub_state()["norm.weight"])


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
        torch.save({"state_dict": {"x": payload}}, path)
    with pytest.raises(ModelError, match="refused to load"):
        import_checkpoint(path, tmp_path / "out")
    assert not marker.exists()
