"""MamaModel with the tiny DINOv2 and the real MiniLM (BERT family) + LoRA."""

from __future__ import annotations

import math

import pytest
import torch

from mama_core.losses import LossConfig, mama_objective
from mama_core.model import TextConfig, build_model, split_caption

CAPTIONS = ["Screening mammogram. Breast density: heterogeneously dense; no mass seen.",
            "BI-RADS Category 1: negative",           # one sentence, no final period
            "Left breast. CC view. Age 55. Density C."]


def test_forward_output_shapes(bert_model) -> None:
    tokens = bert_model.tokenize(CAPTIONS)
    with torch.no_grad():
        out = bert_model(torch.randn(3, 3, 56, 56), torch.randn(3, 1, 56, 56), tokens)
    assert bert_model.patch_grid(56) == (4, 4)
    expected = {"image_global": (3, 16), "image2_global": (3, 16), "image_patches": (3, 16, 16),
                "text_global": (3, 16), "sentences": (3, 4, 16), "sentence_mask": (3, 4),
                "logit_scale": (), "local_scale": ()}
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    assert out["sentence_mask"].dtype == torch.bool
    assert out["sentence_mask"].sum(1).tolist() == [3, 1, 4]
    assert out["logit_scale"].item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_grey_images_equal_repeated_rgb(bert_model) -> None:
    grey = torch.randn(2, 1, 56, 56)
    with torch.no_grad():
        a = bert_model.encode_image(grey)
        b = bert_model.encode_image(grey.repeat(1, 3, 1, 1))
    assert torch.equal(a["image_global"], b["image_global"])
    assert a["image_patches"].shape == (2, 16, 16)


def test_patch_tokens_exclude_cls_and_registers(bert_model) -> None:
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        hidden = bert_model.vision(pixel_values=x).last_hidden_state
        patches = bert_model.encode_image(x)["image_patches"]
        global_ = bert_model.encode_image(x)["image_global"]
    assert hidden.shape[1] == 1 + 4 + 16
    assert torch.allclose(patches, bert_model.image_local_head(hidden[:, 5:]))
    # Global head = projection of the mean over all output tokens (docs/method.md §1.5).
    assert torch.allclose(global_, bert_model.image_global_head(hidden.mean(1)))


def test_lora_trainable_and_base_frozen(bert_model) -> None:
    text = dict(bert_model.text.named_parameters())
    trainable = [n for n, p in text.items() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == {"query", "value"}
    assert not any(p.requires_grad for n, p in text.items() if "lora_" not in n)
    assert all(p.requires_grad for p in bert_model.vision.parameters())
    for name in ("logit_scale", "local_scale"):
        assert getattr(bert_model, name).requires_grad
    assert bert_model.text.sep_embedding is None        # BERT keeps its own [SEP]


def test_separators_close_each_sentence(bert_model) -> None:
    tokens = bert_model.tokenize(CAPTIONS)
    tok = bert_model.text.tokenizer
    for b, caption in enumerate(CAPTIONS):
        n = len(split_caption(caption))
        pos = tokens["sentence_positions"][b][tokens["sentence_mask"][b]]
        assert len(pos) == n
        ids = tokens["input_ids"][b]
        assert ids[0].item() == tok.cls_token_id
        assert all(ids[p].item() == tok.sep_token_id for p in pos)
        # The only [SEP] tokens are the sentence ends.
        assert (ids == tok.sep_token_id).sum().item() == n
        assert tokens["attention_mask"][b].sum().item() == pos[-1].item() + 1


def test_one_sentence_caption_and_empty_caption(bert_model) -> None:
    tokens = bert_model.tokenize(["No mass", ""])
    assert tokens["sentence_mask"].tolist() == [[True], [True]]
    with torch.no_grad():
        out = bert_model.encode_text(tokens)
    assert out["sentences"].shape == (2, 1, 16)


def test_truncation_keeps_mask_consistent(make_config) -> None:
    model = build_model(make_config(TextConfig(max_length=12))).eval()
    caption = "Dense breast. No mass. Benign calcification in the upper outer quadrant. Fine."
    tokens = model.tokenize([caption, "a very long single sentence with many many many words in it"])
    tok = model.text.tokenizer
    assert tokens["input_ids"].shape[1] <= 12
    ids, pos, mask = tokens["input_ids"][0], tokens["sentence_positions"][0], tokens["sentence_mask"][0]
    assert mask.tolist() == [True, True]      # the third sentence's [SEP] would not fit
    assert all(ids[p].item() == tok.sep_token_id for p in pos[mask])
    # An over-long first sentence is cut but still closed by a separator.
    ids1 = tokens["input_ids"][1]
    assert tokens["sentence_mask"][1].tolist() == [True, False]
    assert ids1[tokens["sentence_positions"][1][0]].item() == tok.sep_token_id
    assert tokens["attention_mask"][1].sum().item() == 12


def test_encode_sentences_is_one_sentence_caption(bert_model) -> None:
    with torch.no_grad():
        a = bert_model.encode_sentences(["mass in the upper quadrant. spiculated"])
        b = bert_model.encode_text(bert_model.tokenize(["mass in the upper quadrant. spiculated"]))
    assert a["sentence_local"].shape == (1, 16) and a["text_global"].shape == (1, 16)
    assert not torch.allclose(a["sentence_local"], b["sentences"][0, 0])   # b has two sentences


def test_scale_clamped_at_max(bert_model) -> None:
    saved = bert_model.logit_scale.data.clone()
    try:
        bert_model.logit_scale.data.fill_(math.log(1000.0))
        assert bert_model.scales()[0].item() == pytest.approx(100.0)
    finally:
        bert_model.logit_scale.data.copy_(saved)


def test_objective_gradients_reach_lora_heads_and_vision(make_config) -> None:
    model = build_model(make_config()).train()
    out = model(torch.randn(3, 3, 56, 56), torch.randn(3, 3, 56, 56), model.tokenize(CAPTIONS))
    mama_objective(out, 10, LossConfig(delta_steps=0))["loss"].backward()
    named = dict(model.named_parameters())
    lora_b = [p for n, p in named.items() if "lora_B" in n]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)
    for name in ("image_local_head.2.weight", "text_local_head.2.weight", "logit_scale",
                 "local_scale", "vision.embeddings.patch_embeddings.projection.weight"):
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    assert all(p.grad is None for n, p in named.items() if n.startswith("text.") and "lora_" not in n)


def test_mean_pooling_option(make_config) -> None:
    model = build_model(make_config(TextConfig(pooling="mean"))).eval()
    tokens = model.tokenize(["No mass.", "Dense breast; BI-RADS 2."])
    with torch.no_grad():
        pooled, _, _ = model.text(tokens)
        hidden = model.text.backbone(input_ids=tokens["input_ids"],
                                     attention_mask=tokens["attention_mask"]).last_hidden_state
    n = tokens["attention_mask"][0].sum()
    assert torch.allclose(pooled[0], hidden[0, :n].mean(0), atol=1e-6)


def test_isolated_sentences_embed_as_queries_do(make_config) -> None:
    """isolate_sentences: a caption sentence's SLA embedding is exactly the embedding the
    same sentence gets as a map query, and the global embedding still reads the whole caption."""
    caption = "The breasts are extremely dense. A mass is present in the breast. BI-RADS Category 4: suspicious."
    sentences = ["The breasts are extremely dense.", "A mass is present in the breast.",
                 "BI-RADS Category 4: suspicious."]
    isolated = build_model(make_config(TextConfig(isolate_sentences=True))).eval()
    isolated.load_state_dict(build_model(make_config()).state_dict())  # same weights, other rule
    with torch.no_grad():
        out = isolated.encode_text(isolated.tokenize([caption, "No mass."]))
        queries = isolated.encode_sentences(sentences)["sentence_local"]
        contextual = build_model(make_config()).eval()
        contextual.load_state_dict(isolated.state_dict())
        ctx = contextual.encode_text(contextual.tokenize([caption, "No mass."]))
    assert out["sentence_mask"].tolist() == [[True, True, True], [True, False, False]]
    assert torch.allclose(out["sentences"][0], queries, atol=1e-5)
    assert not torch.allclose(ctx["sentences"][0], queries, atol=1e-3)  # the paper's rule mixes context in
    assert torch.allclose(out["text_global"], ctx["text_global"], atol=1e-6)
    with torch.no_grad():
        states = isolated.text(isolated.tokenize([caption, "No mass."]))[1]
    assert states[1, 1:].abs().sum() == 0  # padding slots stay empty (and masked)


def test_isolated_sentences_encode_each_distinct_sentence_once(make_config) -> None:
    model = build_model(make_config(TextConfig(isolate_sentences=True))).eval()
    captions = ["No mass. Dense breast.", "No mass. Fatty breast.", "No mass."]
    tokens = model.tokenize(captions)
    assert tokens["sentence_ids"].shape[0] == 3  # "No mass." once, two composition sentences
    with torch.no_grad():
        states = model.text(tokens)[1]
        out = model.encode_text(tokens)["sentences"]
        alone = model.encode_sentences(["No mass.", "Fatty breast."])["sentence_local"]
    # one encoding shared: the separator states are the same bits (the linear head after it
    # may round rows at different batch positions differently, so compare before it)
    assert torch.equal(states[0, 0], states[2, 0]) and torch.equal(states[0, 0], states[1, 0])
    assert torch.allclose(out[1, 0], alone[0], atol=1e-5)
    assert torch.allclose(out[1, 1], alone[1], atol=1e-5)


def test_isolated_sentences_get_gradients(make_config) -> None:
    model = build_model(make_config(TextConfig(isolate_sentences=True))).train()
    out = model(torch.randn(3, 3, 56, 56), torch.randn(3, 3, 56, 56), model.tokenize(CAPTIONS))
    mama_objective(out, 10, LossConfig(delta_steps=0))["loss"].backward()
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)
