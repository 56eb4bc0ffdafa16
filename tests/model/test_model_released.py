"""The released-code behaviours as model options (docs/method.md §4): released tokenization,
pooling modes, the Conv-BN local head, the SimCLR head, the unclamped scale, stretch resize."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mama_core.model import ModelConfig, TextConfig, build_model
from mama_core.model.mama import ConvBNHead
from mama_core.model.text import RELEASED_TOKENS
from mama_core.preprocess import fit_to_square, patch_map_to_native, stretch_to_square


@pytest.fixture(scope="module")
def released_model(gpt2_dir, make_config):
    text = TextConfig(path=str(gpt2_dir), lora_r=4, tokenization="released", max_length=48, pooling="mean_all",
                      zero_shot_pooling="pad_offset")
    base = make_config(text, pooling="mean_pre_norm", resize="stretch")
    cfg = ModelConfig(vision=base.vision, text=base.text, embed_dim=16, local_head="conv_bn", local_hidden=12,
                      logit_scale_max=None, image_image_head="simclr")
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_released_tokenization(released_model):
    text = released_model.text
    tok = text.tokenizer
    ids = tok.convert_tokens_to_ids(list(RELEASED_TOKENS))
    assert ids == list(range(ids[0], ids[0] + 6)) and ids[0] == text.added_start
    out = released_model.tokenize(["No mass. Dense tissue; BI-RADS 1.", "Negative"])
    row, sep = out["input_ids"][0], tok.convert_tokens_to_ids("<|separatetext|>")
    assert out["input_ids"].shape == (2, 48)  # always padded to max_length
    assert row[0] == tok.convert_tokens_to_ids("<|startoftext|>")
    n = int(out["attention_mask"][0].sum())
    assert row[n - 1] == tok.eos_token_id and (row[n:] == tok.convert_tokens_to_ids("<|padtext|>")).all()
    assert (row == sep).sum() == 3 and "." not in tok.decode(row[:n]) and ";" not in tok.decode(row[:n])
    assert out["sentence_positions"][0].tolist() == torch.nonzero(row == sep).flatten().tolist()
    # a caption without '.' or ';' still gets one separator (one sentence)
    assert out["sentence_mask"][1].sum() == 1 and (out["input_ids"][1] == sep).sum() == 1


def test_text_pooling_modes(released_model):
    enc = released_model.text
    hidden = torch.randn(3, 5, 4)
    attention = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    assert torch.equal(enc._pool(hidden, attention, "mean_all"), hidden.mean(dim=1))
    # -(number of pads): the first padding position; -0 is position 0
    expected = torch.stack([hidden[0, 3], hidden[1, 0], hidden[2, 1]])
    assert torch.equal(enc._pool(hidden, attention, "pad_offset"), expected)
    assert torch.equal(enc._pool(hidden, attention, "last"), torch.stack([hidden[0, 2], hidden[1, 4], hidden[2, 0]]))


def test_prompts_use_the_zero_shot_pooling(released_model):
    with torch.no_grad():
        tokens = released_model.tokenize(["BI-RADS Category 1: negative."])
        pooled, _, _ = released_model.text(tokens, pooling="pad_offset")
        prompt = released_model.encode_prompts(["BI-RADS Category 1: negative."])
        caption = released_model.encode_text(tokens)["text_global"]
    assert torch.allclose(prompt, released_model.text_global_head(pooled))
    assert not torch.allclose(prompt, caption)


def test_image_pooling_modes(released_model):
    x = torch.randn(2, 1, 56, 56)
    with torch.no_grad():
        out = released_model.vision(pixel_values=x.expand(-1, 3, -1, -1), output_hidden_states=True)
        image = released_model.encode_image(x)
    pre = out.hidden_states[-1]
    assert torch.allclose(image["image_pooled"], pre.mean(dim=1), atol=1e-6)
    assert not torch.allclose(image["image_pooled"], out.last_hidden_state.mean(dim=1), atol=1e-3)


def test_conv_bn_head_is_the_conv1d_head():
    """Linear+BN over flattened tokens == Conv1d(k=1)+BN over [B, C, T], in train and eval."""
    torch.manual_seed(1)
    ours = ConvBNHead(6, 10, 4)
    conv = nn.Sequential(nn.Conv1d(6, 10, 1), nn.BatchNorm1d(10), nn.ReLU(), nn.Conv1d(10, 4, 1),
                         nn.BatchNorm1d(4, affine=False))
    state = {k: (v[..., None] if k in ("head.0.weight", "head.3.weight") else v) for k, v in ours.state_dict().items()}
    conv.load_state_dict({k.removeprefix("head."): v for k, v in state.items()})
    x = torch.randn(3, 7, 6)
    for train in (True, False):
        ours.train(train), conv.train(train)
        assert torch.allclose(ours(x), conv(x.transpose(1, 2)).transpose(1, 2), atol=1e-5)
    assert torch.allclose(ours.head[1].running_mean, conv[1].running_mean)


def test_masked_rows_stay_out_of_the_statistics():
    torch.manual_seed(2)
    head = ConvBNHead(6, 10, 4).train()
    x, mask = torch.randn(2, 3, 6), torch.tensor([[True, True, False], [True, False, False]])
    out = head(x, mask)
    assert (out[~mask] == 0).all()
    torch.manual_seed(2)
    ref = ConvBNHead(6, 10, 4).train()  # same initial weights, statistics over valid rows only
    assert torch.allclose(out[mask], ref.head(x[mask]), atol=1e-6)


def test_training_forward_per_caption_batch_norm_and_simclr(released_model):
    model = released_model
    model.train()
    try:
        tokens = model.tokenize(["No mass. Dense tissue; BI-RADS 1.", "Fatty. Benign. Left CC."])
        out = model(torch.randn(2, 1, 56, 56), torch.randn(2, 1, 56, 56), tokens)
        _, states, mask = model.text(tokens)  # LoRA dropout: other states than the forward's
        sentences, head = model._sentence_head(states, mask), model.text_local_head
        for b in range(2):
            alone = head(states[b:b + 1], mask[b:b + 1])[0]
            assert torch.allclose(sentences[b], alone, atol=1e-5)
        batch_wide = head(states, mask)
        assert not torch.allclose(sentences[mask], batch_wide[mask], atol=1e-3)
        assert out["image_ssl"].shape == out["image2_ssl"].shape == (2, 16)
    finally:
        model.eval()


def test_scales_without_clamp(released_model):
    with torch.no_grad():
        released_model.logit_scale.fill_(6.0)
        try:
            assert released_model.scales()[0].item() == pytest.approx(torch.tensor(6.0).exp().item())
        finally:
            released_model.logit_scale.fill_(float(torch.tensor(1 / 0.07).log()))


def test_stretch_resize():
    img = torch.full((40, 20), 0.7)
    square, box = stretch_to_square(img, 28)
    assert square.shape == (28, 28) and box.stretched and box.content_shape == (28, 28)
    assert torch.allclose(square, torch.full((28, 28), 0.7))  # no padding anywhere
    padded, letter = fit_to_square(img, 28)
    assert letter.content_shape == (28, 14) and padded[:, -1].max() == 0
    native = patch_map_to_native(torch.rand(1, 2, 2), box)
    assert native.shape == (1, 40, 20)
