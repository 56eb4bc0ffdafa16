"""Decoder-only text encoder: a random-init 2-layer GPT-2 from a local HF directory."""

from __future__ import annotations

import torch

from mama_core.model import SEPARATOR_TOKEN, TextConfig, build_model

CAPTIONS = ["The breast tissue is heterogeneously dense. No suspicious mass; no calcification.",
            "BI-RADS Category 1: negative."]


def test_family_lora_target_and_frozen_base(gpt2_model) -> None:
    text = gpt2_model.text
    assert text.family == "decoder"
    trainable = [n for n, p in text.named_parameters() if p.requires_grad]
    assert "sep_embedding" in trainable
    lora = [n for n in trainable if n != "sep_embedding"]
    assert lora and all("lora_" in n and ".c_attn." in n for n in lora)
    assert not text.backbone.get_input_embeddings().weight.requires_grad


def test_separator_token_added_and_initialised_to_mean(gpt2_model) -> None:
    text = gpt2_model.text
    assert text.separator_token == SEPARATOR_TOKEN
    assert text.tokenizer.convert_tokens_to_ids(SEPARATOR_TOKEN) == text.sep_id
    assert text.sep_id >= text.backbone.get_input_embeddings().num_embeddings  # new id, no resize
    mean = text.backbone.get_input_embeddings().weight.mean(0)
    assert torch.allclose(text.sep_embedding, mean, atol=1e-7)
    tokens = gpt2_model.tokenize(CAPTIONS)
    ids, pos, mask = tokens["input_ids"], tokens["sentence_positions"], tokens["sentence_mask"]
    assert mask.sum(1).tolist() == [3, 1]
    assert all(ids[b, p].item() == text.sep_id for b in range(2) for p in pos[b][mask[b]])


def test_last_token_pooling_is_invariant_to_padding(gpt2_model) -> None:
    short = "No mass."
    with torch.no_grad():
        alone = gpt2_model.encode_text(gpt2_model.tokenize([short]))
        padded_tokens = gpt2_model.tokenize([short, CAPTIONS[0]])
        padded = gpt2_model.encode_text(padded_tokens)
    assert padded_tokens["attention_mask"][0].sum() < padded_tokens["input_ids"].shape[1]
    assert torch.allclose(alone["text_global"][0], padded["text_global"][0], atol=1e-5)
    assert torch.allclose(alone["sentences"][0, 0], padded["sentences"][0, 0], atol=1e-5)


def test_global_token_is_last_separator_state(gpt2_model) -> None:
    # Every caption ends in a separator, so the pooled (last non-pad) token is the state of
    # the last separator: the same token in training captions and one-sentence prompts.
    tokens = gpt2_model.tokenize(CAPTIONS)
    with torch.no_grad():
        pooled, states, mask = gpt2_model.text(tokens)
    last = mask.sum(1) - 1
    assert torch.allclose(pooled, states[torch.arange(2), last])


def test_separator_embedding_is_used_and_trained(make_config, gpt2_dir) -> None:
    model = build_model(make_config(TextConfig(path=str(gpt2_dir), lora_r=4))).train()
    out = model.encode_text(model.tokenize(CAPTIONS))
    (out["sentences"].sum() + out["text_global"].sum()).backward()
    grad = model.text.sep_embedding.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.text.backbone.get_input_embeddings().weight.grad is None
    model.eval()
    tokens = model.tokenize(CAPTIONS[:1])
    with torch.no_grad():
        before = model.encode_text(tokens)["sentences"]
        model.text.sep_embedding.add_(1.0)
        after = model.encode_text(tokens)["sentences"]
    assert not torch.allclose(before, after)


def test_decoder_clamps_max_length_to_positions(gpt2_model) -> None:
    assert gpt2_model.text.max_length == 64      # n_positions of the tiny GPT-2
    tokens = gpt2_model.tokenize([" ".join(CAPTIONS * 10)])
    assert tokens["input_ids"].shape[1] <= 64
