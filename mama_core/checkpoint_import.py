"""`mama import-checkpoint`: turn a checkpoint someone already holds into a model directory.

Two inputs are understood (docs/method.md §6, docs/inference.md "Importing checkpoints"):

1. A checkpoint written by the released MaMA code: a PyTorch-Lightning container
   (`state_dict`, `hyper_parameters` as a plain dict, optimiser and loop states) read with
   `torch.load(weights_only=True)`, or the same state dict as a safetensors file. Its layout:
   - `img_encoder_q.model.*`  DINOv2 in torch.hub naming, converted by
     `mama_core.model.vision.hub_to_transformers` (the one converter of the project);
   - `img_encoder_q.global_embed` Linear; `img_encoder_q.local_embed.head.{0,1,3,4}`
     Conv1d(k=1)-BN-ReLU-Conv1d-BN(affine=False), built here as the same head
     (`ModelConfig.local_head = "conv_bn"`), BN running statistics included;
   - `text_encoder_q.model.base_model.model.transformer.*`  the peft-wrapped GPT-2 of an
     LM-head model: LoRA factors, and frozen base weights that must equal the local text
     model (`--text-model`) in the checkpoint's dtype; `wte` has 6 rows more than the local
     tokenizer (the released code's added special tokens), kept as the model's own rows;
   - `text_encoder_q.global_embed` / `local_embed` as on the image side;
   - `simclr_proj.*` (training-only SimCLR head): dropped, with a note;
   - `logit_scale`, `local_scale` (log of 1/tau, never clamped by the released code).
   The mode flags in `hyper_parameters` (`pool_feat`, `pool_txt_feat`, ...) choose the
   pooling modes; the written config records every released-code mode.
2. A ViT-only torch.hub DINOv2 state dict (text LoRA and heads start untrained).

Loading never executes code. Anything that does not fit is named key by key in one error,
and nothing is written then.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mama_core.errors import ConfigError, MamaError, ModelError
from mama_core.model.vision import hub_to_transformers, resize_pos_embed

IMG, TXT = "img_encoder_q.", "text_encoder_q."
TXT_MODEL = TXT + "model.base_model.model."
TRAINING_ONLY = ("simclr_proj.",)
RELEASED_MAX_LENGTH = 144  # captions are padded to this length by the released data pipeline
RELEASED_LORA_ALPHA = 32.0
N_ADDED_TOKENS = 6
# Buffers older transformers versions saved but that are not parameters today.
_IGNORED_BUFFERS = re.compile(r"(\.attn\.bias|\.attn\.masked_bias|position_ids)$")
_LORA_KEY = re.compile(r"\.(\w+)\.lora_[AB]\.default\.weight$")
# hyper_parameters the import reads or records (the released code's argument names).
_RECORDED_HPARAMS = ("pool_feat", "pool_txt_feat", "slip", "symmetric_clip", "local_contrast", "symmetric_local",
                     "late_loss", "slip_loss_lambda", "emb_dim", "softmax_temperature", "crop_size", "img_size",
                     "img_encoder", "llm_type", "peft", "avg_sent_feat", "mask_meta", "learning_rate",
                     "weight_decay", "batch_size", "max_steps", "precision")
# What a checkpoint without hyper_parameters (e.g. a bare safetensors state dict) is assumed
# to have been trained with: the flags of the released pretrain.sh.
RELEASED_RECIPE_FLAGS = {"pool_feat": True, "pool_txt_feat": True, "slip": True, "symmetric_clip": True,
                         "local_contrast": True, "symmetric_local": True, "late_loss": 8000,
                         "llm_type": "gpt", "peft": "lora", "avg_sent_feat": False}


@dataclass
class ImportReport:
    kind: str  # "mama-lightning" | "hub-vit"
    out_dir: Path
    vision: dict
    text_path: str
    loaded: int  # tensors written
    fresh: list[str] = field(default_factory=list)  # parts that start untrained
    notes: list[str] = field(default_factory=list)
    modes: dict = field(default_factory=dict)  # released-code modes recorded in the config

    def to_json(self) -> dict:
        return {"kind": self.kind, "out_dir": str(self.out_dir), "vision": self.vision, "text_path": self.text_path,
                "loaded": self.loaded, "fresh": self.fresh, "notes": self.notes, "modes": self.modes}


@dataclass
class Checkpoint:
    kind: str
    state: dict[str, Tensor]
    hparams: dict | None  # None: the file carries none


# --------------------------------------------------------------------------- reading


def _read_safetensors(path: Path) -> tuple[dict, dict | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            state = {k: fh.get_tensor(k) for k in fh.keys()}
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"unreadable safetensors file ({exc})", path=path) from None
    try:
        hparams = json.loads(meta["hyper_parameters"]) if "hyper_parameters" in meta else None
    except json.JSONDecodeError as exc:
        raise ModelError(f"unreadable hyper_parameters metadata ({exc})", path=path) from None
    return state, hparams


def _read_torch(path: Path) -> tuple[object, dict | None]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, corrupt zip, not a torch file
        raise ModelError("refused to load: not a weights-only checkpoint (it would need to run code "
                         f"or construct non-tensor objects, or is corrupt): {exc}", path=path) from None
    hparams = obj.get("hyper_parameters") if isinstance(obj, dict) else None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    return obj, hparams if isinstance(hparams, dict) else None


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint's tensors and hyper-parameters, without executing any code from the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError("checkpoint not found", path=path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    # safetensors starts with a little-endian u64 header length, then '{'.
    is_safetensors = path.suffix == ".safetensors" or (len(head) == 8 and not head.startswith(b"PK")
                                                       and int.from_bytes(head, "little") < 1 << 30
                                                       and _peek_brace(path))
    state, hparams = _read_safetensors(path) if is_safetensors else _read_torch(path)
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelError("no state dict of tensors found (expected a Lightning checkpoint or a DINOv2 state dict)",
                         path=path)
    kind = "mama-lightning" if any(k.startswith(IMG) for k in state) else "hub-vit"
    if kind == "hub-vit" and "cls_token" not in state:
        raise ModelError(f"neither a MaMA checkpoint (no '{IMG}*' keys) nor a torch.hub DINOv2 (no 'cls_token'); "
                         f"first keys: {sorted(state)[:5]}", path=path)
    return Checkpoint(kind, state, hparams)


def _peek_brace(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(8)
        return fh.read(1) == b"{"


def _strip(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# --------------------------------------------------------------------------- configs


def vision_config_from_hub(hub: dict[str, Tensor], num_heads: int | None, image_size: int | None, **modes):
    """VisionConfig matching a torch.hub DINOv2 state dict's shapes."""
    from mama_core.model.config import VisionConfig

    hidden = int(hub["cls_token"].shape[-1])
    layers = 1 + max(int(m.group(1)) for k in hub if (m := re.match(r"blocks\.(\d+)\.", k)))
    patch = int(hub["patch_embed.proj.weight"].shape[-1])
    mlp = hub["blocks.0.mlp.fc1.weight"].shape[0] / hidden
    grid = int(round((hub["pos_embed"].shape[1] - 1) ** 0.5))
    registers = "register_tokens" in hub
    return VisionConfig(
        source="config", registers=registers,
        num_register_tokens=int(hub["register_tokens"].shape[1]) if registers else 4,
        hidden_size=hidden, num_layers=layers, num_heads=num_heads or max(1, hidden // 64),  # DINOv2: 64-dim heads
        mlp_ratio=float(mlp), patch_size=patch, image_size=image_size or grid * patch, **modes,
    )


def _lora_settings(text_state: dict[str, Tensor]) -> tuple[int | None, list[str] | None]:
    lora_a = {k: v for k, v in text_state.items() if k.endswith("lora_A.default.weight")}
    if not lora_a:
        return None, None
    rank = int(next(iter(lora_a.values())).shape[0])
    targets = sorted({m.group(1) for k in lora_a if (m := _LORA_KEY.search(k))})
    return rank, targets


def released_modes(hparams: dict | None) -> tuple[dict, list[str], list[str]]:
    """(config modes, notes, misfits) from the checkpoint's hyper_parameters: which pooling
    the released code used, and flags that select behaviour this program does not have."""
    notes, misfits = [], []
    if hparams is None:
        notes.append("no hyper_parameters in the file: assumed the released pretrain.sh flags "
                     f"{sorted(k for k, v in RELEASED_RECIPE_FLAGS.items() if v is True)}")
        hparams = {}
    flags = {**RELEASED_RECIPE_FLAGS, **hparams}
    if flags.get("llm_type") not in ("gpt", None):
        misfits.append(f"hyper_parameters.llm_type={flags['llm_type']!r} (only the GPT-2 family layout is read)")
    if flags.get("peft") not in ("lora", None):
        misfits.append(f"hyper_parameters.peft={flags['peft']!r} (only LoRA is read)")
    if flags.get("avg_sent_feat"):
        misfits.append("hyper_parameters.avg_sent_feat=True (sentence = mean of its tokens) is not implemented")
    modes = {"vision.pooling": "mean_pre_norm" if flags.get("pool_feat") else "cls",
             "vision.resize": "stretch",
             "text.tokenization": "released",
             "text.pooling": "mean_all" if flags.get("pool_txt_feat") else "pad_offset",
             "text.zero_shot_pooling": "pad_offset",
             "text.max_length": RELEASED_MAX_LENGTH,
             "local_head": "conv_bn", "logit_scale_max": None}
    temperature = flags.get("softmax_temperature")
    if isinstance(temperature, (int, float)) and temperature > 0:
        modes["logit_scale_init"] = 1.0 / float(temperature)
    return modes, notes, misfits


def released_loss(hparams: dict | None) -> dict:
    """The LossConfig of the released recipe, as far as hyper_parameters tell it."""
    flags = {**RELEASED_RECIPE_FLAGS, **(hparams or {})}
    late = int(flags.get("late_loss") or 0)
    return {"image_image_temperature": 0.5, "delta_steps": late, "directions": "sum",
            "delta_terms": ["image_image_loss", "image2_text_loss", "local_loss"]}


def _model_config(ckpt: Checkpoint, hub: dict, text_path: str, num_heads: int | None, image_size: int | None,
                  modes: dict, path: Path):
    from mama_core.model.config import ModelConfig, TextConfig

    text_state = _strip(ckpt.state, TXT_MODEL)
    rank, targets = _lora_settings(text_state)
    try:
        vision = vision_config_from_hub(hub, num_heads, image_size, pooling=modes["vision.pooling"],
                                        resize=modes["vision.resize"])
        text = TextConfig(path=text_path, family="decoder", lora_r=rank or 8, lora_targets=targets,
                          lora_alpha=RELEASED_LORA_ALPHA, lora_dropout=0.1, max_length=modes["text.max_length"],
                          tokenization=modes["text.tokenization"], pooling=modes["text.pooling"],
                          zero_shot_pooling=modes["text.zero_shot_pooling"])
        embed = ckpt.state[IMG + "global_embed.weight"].shape[0]
        hidden = ckpt.state[IMG + "local_embed.head.0.weight"].shape[0]
        return ModelConfig(vision=vision, text=text, embed_dim=int(embed), local_head=modes["local_head"],
                           local_hidden=int(hidden), logit_scale_max=modes["logit_scale_max"],
                           logit_scale_init=modes.get("logit_scale_init", 1 / 0.07))
    except (ConfigError, KeyError, ValueError) as exc:
        raise ModelError(f"cannot infer the architecture: {type(exc).__name__}: {exc}", path=path) from None


# --------------------------------------------------------------------------- mapping


def _vision_tensors(hub: dict[str, Tensor], model) -> tuple[dict[str, Tensor], list[str]]:
    converted, unknown = hub_to_transformers(hub)
    pos = "embeddings.position_embeddings"
    if pos in converted:
        grid = model.config.vision.image_size // model.config.vision.patch_size
        converted[pos] = resize_pos_embed(converted[pos], grid)
    return {f"vision.{k}": v for k, v in converted.items()}, [f"{IMG}model.{k}" for k in unknown]


def _head_tensors(state: dict[str, Tensor], prefix: str, ours: str) -> dict[str, Tensor]:
    """A checkpoint head -> ours, key for key; Conv1d(k=1) weights [out, in, 1] become the
    Linear weights [out, in] they equal."""
    out = {}
    for key, value in _strip(state, prefix).items():
        if value.ndim == 3 and value.shape[-1] == 1:
            value = value[..., 0]
        out[f"{ours}.{key}"] = value
    return out


def _text_tensors(text_state: dict[str, Tensor], expected: set[str], model) -> dict[str, Tensor]:
    """peft keys of an LM-head model's `transformer.` -> ours (a bare model under peft); older
    peft saved a wrapped layer's base weight as `<module>.weight` where today's has
    `<module>.base_layer.weight`. The added-token rows of `wte` become `text.added_embeddings`."""
    out = {}
    for key, value in text_state.items():
        if _IGNORED_BUFFERS.search(key):
            continue
        ours = f"text.backbone.base_model.model.{key.removeprefix('transformer.')}"
        if ours not in expected:
            head, _, leaf = ours.rpartition(".")
            if f"{head}.base_layer.{leaf}" in expected:
                ours = f"{head}.base_layer.{leaf}"
        out[ours] = value
    wte = "text.backbone.base_model.model.wte.weight"
    if wte in out and getattr(model.text, "added_embeddings", None) is not None:
        start = model.text.added_start
        if out[wte].shape[0] == start + N_ADDED_TOKENS:
            out["text.added_embeddings"] = out[wte][start:]
            out[wte] = out[wte][:start]
    return out


def map_lightning(state: dict[str, Tensor], model) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """Checkpoint keys -> our state_dict keys: (tensors, unexpected source keys, dropped keys)."""
    out, unexpected = _vision_tensors(_strip(state, IMG + "model."), model)
    for prefix, ours in ((IMG + "global_embed.", "image_global_head"), (IMG + "local_embed.", "image_local_head"),
                         (TXT + "global_embed.", "text_global_head"), (TXT + "local_embed.", "text_local_head")):
        out.update(_head_tensors(state, prefix, ours))
    out.update(_text_tensors(_strip(state, TXT_MODEL), set(model.state_dict()), model))
    for name in ("logit_scale", "local_scale"):
        if name in state:
            out[name] = state[name].reshape(())
    known = (IMG + "model.", IMG + "global_embed.", IMG + "local_embed.", TXT_MODEL, TXT + "global_embed.",
             TXT + "local_embed.", "logit_scale", "local_scale")
    dropped = sorted(k for k in state if k.startswith(TRAINING_ONLY))
    unexpected += [k for k in state if not k.startswith(known) and k not in dropped]
    return out, unexpected, dropped


# --------------------------------------------------------------------------- checking


def misfits(tensors: dict[str, Tensor], model, optional: set[str]) -> list[str]:
    """Every key that does not fit: missing, unexpected (ours), wrong shape."""
    expected = model.state_dict()
    need = (set(model.saved_state()) | model.base_state_keys()) - optional
    problems = [f"missing {k}" for k in sorted(need - set(tensors))]
    problems += [f"unexpected {k}" for k in sorted(set(tensors) - set(expected))]
    problems += [f"shape {k}: checkpoint {tuple(v.shape)} != model {tuple(expected[k].shape)}"
                 for k, v in sorted(tensors.items()) if k in expected and v.shape != expected[k].shape]
    return problems


def text_base_differences(tensors: dict[str, Tensor], model) -> list[str]:
    """Frozen base tensors of the checkpoint that differ from the local text model, compared
    in the checkpoint's dtype: a bf16 checkpoint holds bf16(local weights) exactly."""
    expected = model.state_dict()
    differ = []
    for key in sorted(model.base_state_keys() & set(tensors)):
        theirs = tensors[key]
        ours = expected[key].to(theirs.dtype)
        if ours.shape != theirs.shape or not torch.equal(ours, theirs):
            differ.append(key)
    return differ


# --------------------------------------------------------------------------- entry point


def import_checkpoint(src: str | Path, out_dir: str | Path, text_path: str = "minilm", num_heads: int | None = None,
                      image_size: int | None = None, embed_dim: int = 512, lora_alpha: float = 32.0) -> ImportReport:
    """Convert `src` into a model directory at `out_dir` (see module docstring)."""
    src = Path(src)
    ckpt = read_checkpoint(src)
    if ckpt.kind == "hub-vit":
        return _import_hub(ckpt, src, Path(out_dir), text_path, num_heads, image_size, embed_dim, lora_alpha)
    return _import_released(ckpt, src, Path(out_dir), text_path, num_heads, image_size)


def _import_released(ckpt: Checkpoint, src: Path, out: Path, text_path: str, num_heads: int | None,
                     image_size: int | None) -> ImportReport:
    from mama_core.model.mama import build_model

    hub = _strip(ckpt.state, IMG + "model.")
    if "cls_token" not in hub:
        raise ModelError(f"no DINOv2 weights under '{IMG}model.' (missing {IMG}model.cls_token)", path=src)
    modes, notes, bad_flags = released_modes(ckpt.hparams)
    if bad_flags:
        raise ModelError("checkpoint does not fit: " + "; ".join(bad_flags), path=src)
    model = build_model(_model_config(ckpt, hub, text_path, num_heads, image_size, modes, src))
    tensors, unexpected, dropped = map_lightning(ckpt.state, model)
    problems = [f"unexpected {k}" for k in sorted(set(unexpected))]
    problems += misfits(tensors, model, {"local_scale", "vision.embeddings.mask_token"})
    if problems:
        raise ModelError(f"checkpoint does not fit ({len(problems)} keys): " + "; ".join(problems), path=src)
    differ = text_base_differences(tensors, model)
    if differ:
        raise ModelError(f"the checkpoint's text base weights differ from the local text model {text_path!r} "
                         f"(compared in {_dtype_name(tensors[differ[0]])}) at: " + ", ".join(differ)
                         + "; pass the text model it was trained from", path=src)
    if dropped:
        notes.append(f"dropped the training-only SimCLR projection head ({len(dropped)} tensors: simclr_proj.*); "
                     "the released recipe's L_VV trains a new one")
    if "local_scale" not in tensors:
        tensors["local_scale"] = tensors["logit_scale"].clone()
        notes.append("no local_scale in the checkpoint: initialised from logit_scale")
    dtype = _dtype_name(ckpt.state[IMG + "model.cls_token"])
    extra = {"imported_from": str(src), "import_kind": "mama-lightning", "checkpoint_dtype": dtype,
             "reference": {"modes": modes, "loss": released_loss(ckpt.hparams), "dropped": dropped,
                           "hyper_parameters": _recorded(ckpt.hparams)}}
    return _finish(model, tensors, "mama-lightning", src, out, text_path, [], notes, modes, extra)


def _import_hub(ckpt: Checkpoint, src: Path, out: Path, text_path: str, num_heads: int | None,
                image_size: int | None, embed_dim: int, lora_alpha: float) -> ImportReport:
    from mama_core.model.config import ModelConfig, TextConfig
    from mama_core.model.mama import build_model

    try:
        cfg = ModelConfig(vision=vision_config_from_hub(ckpt.state, num_heads, image_size),
                          text=TextConfig(path=text_path, lora_alpha=lora_alpha), embed_dim=embed_dim)
    except (ConfigError, KeyError, ValueError) as exc:
        raise ModelError(f"cannot infer the architecture: {exc}", path=src) from None
    model = build_model(cfg)
    tensors, unknown = _vision_tensors(ckpt.state, model)
    saved = set(model.saved_state())
    problems = [f"unexpected {k.removeprefix(IMG + 'model.')}" for k in unknown]
    problems += misfits(tensors, model, {k for k in saved if not k.startswith("vision.")} | model.base_state_keys())
    if problems:
        raise ModelError(f"checkpoint does not fit ({len(problems)} keys): " + "; ".join(problems), path=src)
    fresh = ["text LoRA", "global and local heads", "logit/local scales"]
    return _finish(model, tensors, "hub-vit", src, out, text_path, fresh, [], {},
                   {"imported_from": str(src), "import_kind": "hub-vit"})


def _dtype_name(t: Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _recorded(hparams: dict | None) -> dict:
    """The hyper_parameters worth keeping, JSON-safe."""
    out = {}
    for key in _RECORDED_HPARAMS:
        value = (hparams or {}).get(key)
        if isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
            out[key] = value
    return out


def _finish(model, tensors, kind, src: Path, out: Path, text_path: str, fresh, notes, modes, extra) -> ImportReport:
    from mama_core.model.io import save_model_dir

    trained = {k: v for k, v in tensors.items() if k not in model.base_state_keys()}
    model.load_state_dict(trained, strict=False)  # copies cast to the model's fp32
    try:
        save_model_dir(model, out, extra=extra)
    except MamaError:
        raise
    except OSError as exc:
        raise ModelError(f"cannot write the model directory: {exc}", path=out) from None
    vision = {k: getattr(model.config.vision, k) for k in ("hidden_size", "num_layers", "num_heads", "patch_size",
                                                           "image_size", "registers")}
    return ImportReport(kind, out, vision, text_path, len(trained), fresh, notes, modes)
