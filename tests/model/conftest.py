"""Shared tiny models for the model tests: a 2-layer DINOv2 (hidden 32, 56 px) with the
real MiniLM text encoder, and a random-init 2-layer GPT-2 with an in-memory BPE tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mama_core.model import ModelConfig, TextConfig, VisionConfig, build_model

CORPUS = ["The breast tissue is heterogeneously dense. No suspicious mass; no calcification.",
          "BI-RADS Category 1: negative. Screening mammogram of the left breast.",
          "Patient age is unknown; image type is unknown."] * 20


def tiny_vision(**kw) -> VisionConfig:
    base = dict(hidden_size=32, num_layers=2, num_heads=2, patch_size=14, image_size=56)
    base.update(kw)
    return VisionConfig(**base)


def tiny_config(text: TextConfig | None = None, **vision) -> ModelConfig:
    return ModelConfig(vision=tiny_vision(**vision), text=text or TextConfig(), embed_dim=16)


@pytest.fixture(scope="session")
def make_config():
    """tiny_config as a fixture, so test modules need no relative imports."""
    return tiny_config


@pytest.fixture(scope="session")
def bert_model():
    """MiniLM + LoRA with the tiny DINOv2, eval mode. Tests must not modify it."""
    return build_model(tiny_config()).eval()


def write_tiny_gpt2(folder: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>")
    fast.save_pretrained(folder)
    eos = fast.convert_tokens_to_ids("<|endoftext|>")
    cfg = GPT2Config(vocab_size=len(fast), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                     bos_token_id=eos, eos_token_id=eos)
    GPT2Model(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> Path:
    return write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="session")
def gpt2_model(gpt2_dir):
    return build_model(tiny_config(TextConfig(path=str(gpt2_dir), lora_r=4))).eval()


# transformers layer suffix -> torch.hub block suffix (written independently of the
# converter: the inverse of the documented DINOv2 layout).
_TO_HUB = {"norm1": "norm1", "norm2": "norm2", "attention.o_proj": "attn.proj",
           "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}


def _to_hub(model) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    hub = {"cls_token": sd["embeddings.cls_token"], "mask_token": sd["embeddings.mask_token"],
           "register_tokens": sd["embeddings.register_tokens"],
           "pos_embed": sd["embeddings.position_embeddings"],
           "patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
           "norm.weight": sd["layernorm.weight"], "norm.bias": sd["layernorm.bias"]}
    for i in range(model.config.num_hidden_layers):
        pre = f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            hub[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat(
                [sd[f"{pre}attention.{n}_proj.{kind}"] for n in "qkv"])
            for src, dst in _TO_HUB.items():
                hub[f"blocks.{i}.{dst}.{kind}"] = sd[f"{pre}{src}.{kind}"]
        hub[f"blocks.{i}.ls1.gamma"] = sd[f"{pre}layer_scale1.lambda1"]
        hub[f"blocks.{i}.ls2.gamma"] = sd[f"{pre}layer_scale2.lambda1"]
    return {k: v.clone() for k, v in hub.items()}


@pytest.fixture(scope="session")
def to_hub():
    """transformers DINOv2 -> torch.hub-format state dict (the test's own inverse mapping)."""
    return _to_hub
