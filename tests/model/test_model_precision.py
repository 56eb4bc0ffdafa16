"""bf16 training storage: the frozen LoRA base in bf16, every trained tensor an fp32 master;
activation checkpointing per encoder."""

from __future__ import annotations

import torch

from mama_core.losses import LossConfig, mama_objective
from mama_core.model import TextConfig, build_model

CAPTIONS = ["The breast tissue is heterogeneously dense. No suspicious mass; no calcification.",
            "BI-RADS Category 1: negative."]


def _step_loss(model, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    images, images2 = torch.randn(2, 1, 56, 56, generator=g), torch.randn(2, 1, 56, 56, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images, images2, model.tokenize(CAPTIONS))
    return mama_objective(out, 10**6, LossConfig(), gather=False)["loss"]  # every term on


def test_frozen_base_stored_in_bf16_masters_in_fp32(make_config, gpt2_dir) -> None:
    cfg = make_config(TextConfig(path=str(gpt2_dir), lora_r=4, lora_dropout=0.0))
    torch.manual_seed(0)
    model = build_model(cfg, frozen_dtype=torch.bfloat16).train()
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert frozen and all(n.startswith("text.backbone.") and "lora_" not in n for n in frozen)
    assert {p.dtype for p in frozen.values()} == {torch.bfloat16}
    assert {p.dtype for p in trained.values()} == {torch.float32}
    assert any("lora_A" in n for n in trained) and "text.sep_embedding" in trained

    loss = _step_loss(model)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None for p in frozen.values())
    assert model.text.sep_embedding.grad.abs().sum() > 0
    assert all(p.grad is not None for n, p in trained.items() if "lora_B" in n)

    # Storing the frozen base in bf16 only rounds it: the same weights in fp32 give nearly
    # the same loss under the same autocast.
    torch.manual_seed(0)
    reference = build_model(cfg).train()
    assert next(p for p in reference.parameters() if not p.requires_grad).dtype == torch.float32
    reference.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    assert torch.allclose(_step_loss(reference), loss, rtol=2e-2)


def test_a_trained_text_encoder_stays_fp32(make_config, gpt2_dir) -> None:
    model = build_model(make_config(TextConfig(path=str(gpt2_dir), lora=False)), frozen_dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_checkpointing_is_per_encoder(make_config, gpt2_dir) -> None:
    text_only = build_model(make_config(TextConfig(path=str(gpt2_dir), lora_r=4, gradient_checkpointing=True)))
    assert text_only.text.backbone.get_base_model().is_activation_checkpointing
    assert not text_only.vision.is_activation_checkpointing
    vision_only = build_model(make_config(TextConfig(path=str(gpt2_dir), lora_r=4), gradient_checkpointing=True))
    assert vision_only.vision.is_activation_checkpointing
    assert not vision_only.text.backbone.get_base_model().is_activation_checkpointing
    # A checkpointed step still trains both encoders.
    loss = _step_loss(text_only.train())
    loss.backward()
    assert text_only.text.sep_embedding.grad.abs().sum() > 0
    assert text_only.vision.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0


def test_both_encoders_use_sdpa_attention(gpt2_model) -> None:
    # Fused scaled-dot-product attention (FlashAttention on a GPU), never the eager path.
    assert gpt2_model.vision.config._attn_implementation == "sdpa"
    assert gpt2_model.text.backbone.get_base_model().config._attn_implementation == "sdpa"
