"""A checkpoint in the released MaMA code's layout, and an independent forward of its semantics.

The checkpoint is built from the key table `data/mama-released-checkpoint-keys.tsv` (names,
shapes and dtypes of a file the released code wrote), with every width scaled down so that
the tests stay fast: ViT 768 -> 32 wide (12 blocks, 2x2 patches), text 2560 -> 32 wide
(2 layers), head hidden 2048 -> 24, embedding 512 -> 16. The frozen text base is taken from
a local random-init GPT-2 folder (tokenizer trained here with `tokenizers`), exactly as a
released checkpoint's base equals BioMedLM's weights in the checkpoint's dtype.

`reference_*` re-implement the released semantics from their description only (plain torch
ops over the checkpoint tensors; no project code): DINOv2 with registers, image global =
Linear(mean of all tokens before the final norm), patch local = Conv-BN head over the
normalised patch tokens, GPT-2 + LoRA (scale alpha/r = 4) with a causal + padding mask,
caption = bos + text with '.'/';' replaced by the separator + eos, right-padded to 144;
text global = Linear(mean of all 144 states), sentence local = head over the separator
states, zero-shot text = Linear(state at index -(number of pads)), probabilities =
softmax(exp(logit_scale) * cosine).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

TABLE = Path(__file__).parent / "data" / "mama-released-checkpoint-keys.tsv"
SCALE = {768: 32, 2304: 96, 3072: 128, 1370: 5, 2048: 24, 512: 16, 2560: 32, 7680: 96, 10240: 128}
VIT_HEADS, TEXT_HEADS, PATCH, REGISTERS, IMAGE_SIZE = 2, 2, 14, 4, 28
MAX_LENGTH, LORA_SCALE = 144, 32 / 8
SPECIAL = {"bos_token": "<|startoftext|>", "pad_token": "<|padtext|>", "mask_token": "<|masktext|>",
           "sep_token": "<|separatetext|>", "unk_token": "<|unknowntext|>"}
KEY_TOKEN = "<|keytext|>"
CORPUS = [
    "Screening mammography. Reason: screening. Patient info: age 54, race unknown. Image info: 2D, left, CC view.",
    "Breast composition: heterogeneously dense; this may lower the sensitivity of mammography.",
    "Findings: an irregular high density mass; fine pleomorphic calcifications in a segmental distribution.",
    "Impression: BI-RADS Category 4: suspicious abnormality. Overall: abnormal.",
    "BI-RADS Category 1: negative. BI-RADS Category 2: benign. Extremely dense. Almost entirely fatty.",
]
HPARAMS = {"pool_feat": True, "pool_txt_feat": True, "slip": True, "symmetric_clip": True, "local_contrast": True,
           "symmetric_local": True, "late_loss": 8000, "slip_loss_lambda": 1.0, "emb_dim": 16,
           "softmax_temperature": 0.07, "crop_size": 518, "img_encoder": "dinov2_vitb14_reg", "llm_type": "gpt",
           "peft": "lora", "avg_sent_feat": False, "mask_meta": 0.8, "learning_rate": 4e-5, "weight_decay": 0.1,
           "batch_size": 36, "max_steps": 40000, "precision": "bf16-true"}


# --------------------------------------------------------------------------- building


def read_table() -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in TABLE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").replace(" ", "").split(",") if d)
        rows.append((key, dims, dtype))
    return rows


def build_text_model(folder: Path, width: int = 32, layers: int = 2, heads: int = TEXT_HEADS) -> Path:
    """A GPT-2 LM-head folder (random init, 32 wide, 2 layers by default) with a byte-level BPE
    tokenizer trained here on caption text; nothing is downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = GPT2TokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                             unk_token="<|endoftext|>")
    fast.save_pretrained(folder)
    torch.manual_seed(11)
    cfg = GPT2Config(vocab_size=len(fast), n_embd=width, n_layer=layers, n_head=heads, n_positions=1024,
                     bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    return folder


def _scaled(dims: tuple[int, ...], vocab: int, scale: dict[int, int]) -> tuple[int, ...]:
    return tuple(vocab + 6 if d == 28902 else scale.get(d, d) for d in dims)


def _value(key: str, dims: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    if key.endswith("num_batches_tracked"):
        return torch.tensor(40000, dtype=torch.int64)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(dims, generator=g)
    if key.endswith("running_mean"):
        return 0.2 * torch.randn(dims, generator=g)
    if key.endswith("ls1.gamma") or key.endswith("ls2.gamma"):
        return 0.3 + 0.1 * torch.randn(dims, generator=g)
    if key in ("logit_scale", "local_scale"):
        return torch.tensor(math.log(1 / 0.07) + (0.3 if key == "logit_scale" else -0.2))
    norm = any(p in key for p in ("norm", ".ln_", "layers.1.", "layers.4.", "head.1."))
    if norm and key.endswith("weight") and len(dims) == 1:
        return 1.0 + 0.1 * torch.randn(dims, generator=g)
    scale = 0.02 if len(dims) <= 1 else 0.3 / math.sqrt(max(dims[1:] if len(dims) > 2 else dims[-1:]))
    if "lora_B" in key:
        scale = 0.05
    return scale * torch.randn(dims, generator=g)


def build_state(text_folder: Path, dtype: torch.dtype = torch.float32, seed: int = 0,
                scale: dict[int, int] | None = None) -> dict[str, torch.Tensor]:
    """A state dict with every key of the table, shapes scaled (`scale`={}: the table's own
    shapes), values random except the text base (= the local GPT-2 in `dtype`); wte gets 6
    extra random rows."""
    from transformers import GPT2LMHeadModel

    base = GPT2LMHeadModel.from_pretrained(text_folder).state_dict()
    vocab = base["transformer.wte.weight"].shape[0]
    g = torch.Generator().manual_seed(seed)
    state = {}
    prefix = "text_encoder_q.model.base_model.model."
    for key, dims, _ in read_table():
        dims = _scaled(dims, vocab, SCALE if scale is None else scale)
        local = key.removeprefix(prefix) if key.startswith(prefix) else None
        if local in base:
            value = base[local].clone()
            if local == "transformer.wte.weight":
                value = torch.cat([value, 0.02 * torch.randn(6, value.shape[1], generator=g)])
        else:
            value = _value(key, dims, g)
        assert tuple(value.shape) == dims, (key, value.shape, dims)
        state[key] = value if not value.is_floating_point() else value.to(dtype)
    return state


def lightning_container(state: dict[str, torch.Tensor], hparams: dict | None = HPARAMS) -> dict:
    """What Lightning writes around the state dict (plain types only, as the released code saved)."""
    exp = {i: {"step": torch.tensor(40000.0), "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)} for i in range(2)}
    ckpt = {"epoch": 12, "global_step": 40000, "pytorch-lightning_version": "2.1.3", "state_dict": state,
            "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 12}}}},
            "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(1.25),
                                                                     "best_model_path": "/logs/ckpts/epoch=11.ckpt"}},
            "optimizer_states": [{"state": exp, "param_groups": [{"lr": 4e-5, "betas": (0.9, 0.999), "params": [0, 1]}]}],
            "lr_schedulers": [{"last_epoch": 40000, "base_lrs": [4e-5]}]}
    if hparams is not None:
        ckpt["hyper_parameters"] = dict(hparams)
    return ckpt


# --------------------------------------------------------------------------- reference forward


def _ln(x, w, b, eps):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def _attention(q, k, v, heads, allowed):
    b, n, d = q.shape
    split = lambda t: t.view(b, n, heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    if allowed is not None:
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)


def _conv_bn_head(s: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """Conv1d(k=1)-BN-ReLU-Conv1d-BN(affine=False), eval mode, over [B, T, C]."""
    def bn(y, i, affine):
        y = (y - s[f"{prefix}{i}.running_mean"]) / torch.sqrt(s[f"{prefix}{i}.running_var"] + 1e-5)
        return y * s[f"{prefix}{i}.weight"] + s[f"{prefix}{i}.bias"] if affine else y

    y = torch.einsum("btc,oc->bto", x, s[f"{prefix}0.weight"][..., 0]) + s[f"{prefix}0.bias"]
    y = torch.relu(bn(y, 1, True))
    y = torch.einsum("btc,oc->bto", y, s[f"{prefix}3.weight"][..., 0]) + s[f"{prefix}3.bias"]
    return bn(y, 4, False)


def reference_image(state: dict, pixels: torch.Tensor, heads: int = VIT_HEADS) -> tuple[torch.Tensor, torch.Tensor]:
    """(image global [B, D], patch local [B, P, D]) of 3-channel normalised pixels."""
    s = {k.removeprefix("img_encoder_q."): v.float() for k, v in state.items() if k.startswith("img_encoder_q.")}
    m = "model."
    x = F.conv2d(pixels, s[m + "patch_embed.proj.weight"], s[m + "patch_embed.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([s[m + "cls_token"].expand(len(x), -1, -1), x], 1) + s[m + "pos_embed"]
    x = torch.cat([x[:, :1], s[m + "register_tokens"].expand(len(x), -1, -1), x[:, 1:]], 1)
    block = 0
    while f"{m}blocks.{block}.norm1.weight" in s:
        p = f"{m}blocks.{block}."
        h = _ln(x, s[p + "norm1.weight"], s[p + "norm1.bias"], 1e-6)
        q, k, v = (h @ s[p + "attn.qkv.weight"].T + s[p + "attn.qkv.bias"]).chunk(3, dim=-1)
        h = _attention(q, k, v, heads, None) @ s[p + "attn.proj.weight"].T + s[p + "attn.proj.bias"]
        x = x + s[p + "ls1.gamma"] * h
        h = _ln(x, s[p + "norm2.weight"], s[p + "norm2.bias"], 1e-6)
        h = F.gelu(h @ s[p + "mlp.fc1.weight"].T + s[p + "mlp.fc1.bias"]) @ s[p + "mlp.fc2.weight"].T + s[p + "mlp.fc2.bias"]
        x = x + s[p + "ls2.gamma"] * h
        block += 1
    pooled = x.mean(dim=1)  # every token, before the final norm
    normed = _ln(x, s[m + "norm.weight"], s[m + "norm.bias"], 1e-6)
    image_global = pooled @ s["global_embed.weight"].T + s["global_embed.bias"]
    return image_global, _conv_bn_head(s, "local_embed.head.", normed[:, 1 + REGISTERS:])


def released_tokenizer(text_folder: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(text_folder)
    tok.add_special_tokens({**SPECIAL, "additional_special_tokens": [KEY_TOKEN]})
    return tok


def reference_tokens(tok, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    rows = []
    for caption in captions:
        text = caption.replace(".", SPECIAL["sep_token"]).replace(";", SPECIAL["sep_token"])
        ids = tok(SPECIAL["bos_token"] + text + tok.eos_token, add_special_tokens=False)["input_ids"][:MAX_LENGTH]
        rows.append(ids + [tok.pad_token_id] * (MAX_LENGTH - len(ids)))
    ids = torch.tensor(rows)
    return ids, (ids != tok.pad_token_id).long()


def reference_text_states(state: dict, ids: torch.Tensor, attention: torch.Tensor, heads: int = TEXT_HEADS) -> torch.Tensor:
    """GPT-2 (+ LoRA on c_attn) hidden states after ln_f, [B, L, H]."""
    pre = "text_encoder_q.model.base_model.model.transformer."
    s = {k.removeprefix(pre): v.float() for k, v in state.items() if k.startswith(pre)}
    n = ids.shape[1]
    x = s["wte.weight"][ids] + s["wpe.weight"][:n]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    allowed = causal[None] & attention.bool()[:, None, :]
    layer = 0
    while f"h.{layer}.ln_1.weight" in s:
        p = f"h.{layer}."
        h = _ln(x, s[p + "ln_1.weight"], s[p + "ln_1.bias"], 1e-5)
        w = s[p + "attn.c_attn.weight"]  # Conv1D: [in, out]
        delta = (s[p + "attn.c_attn.lora_B.default.weight"] @ s[p + "attn.c_attn.lora_A.default.weight"]).T
        q, k, v = (h @ (w + LORA_SCALE * delta) + s[p + "attn.c_attn.bias"]).chunk(3, dim=-1)
        x = x + _attention(q, k, v, heads, allowed) @ s[p + "attn.c_proj.weight"] + s[p + "attn.c_proj.bias"]
        h = _ln(x, s[p + "ln_2.weight"], s[p + "ln_2.bias"], 1e-5)
        h = F.gelu(h @ s[p + "mlp.c_fc.weight"] + s[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ s[p + "mlp.c_proj.weight"] + s[p + "mlp.c_proj.bias"]
        layer += 1
    return _ln(x, s["ln_f.weight"], s["ln_f.bias"], 1e-5)


def reference_text(state: dict, tok, captions: list[str], heads: int = TEXT_HEADS) -> dict[str, torch.Tensor]:
    """text global [B, D] (mean over all positions), sentence local [list of [S_i, D]],
    zero-shot text global [B, D] (state at -(number of pads))."""
    s = {k.removeprefix("text_encoder_q."): v.float() for k, v in state.items() if k.startswith("text_encoder_q.")}
    ids, attention = reference_tokens(tok, captions)
    hidden = reference_text_states(state, ids, attention, heads)
    linear = lambda x: x @ s["global_embed.weight"].T + s["global_embed.bias"]  # noqa: E731
    pads = (ids == tok.pad_token_id).sum(dim=1)
    zero_shot = torch.stack([hidden[b, -int(pads[b])] for b in range(len(ids))])  # -0 is position 0
    sentences = [_conv_bn_head(s, "local_embed.head.", hidden[b:b + 1, ids[b] == tok.sep_token_id])[0]
                 for b in range(len(ids))]
    return {"ids": ids, "text_global": linear(hidden.mean(dim=1)), "sentences": sentences,
            "zero_shot": linear(zero_shot)}


def reference_zero_shot(state: dict, image_global: torch.Tensor, prompt_global: torch.Tensor) -> torch.Tensor:
    scale = state["logit_scale"].float().exp()  # no clamp
    return (scale * F.normalize(image_global, dim=-1) @ F.normalize(prompt_global, dim=-1).T).softmax(dim=-1)
