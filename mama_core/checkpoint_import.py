"""`mama import-checkpoint`: turn a checkpoint someone already holds into a model directory.

Two inputs are understood (DESIGN §1 "Licensing fact"):

1. The released MaMA PyTorch-Lightning checkpoint: a dict whose "state_dict" holds
   - `img_encoder_q.model.*`  a DINOv2 in torch.hub naming (cls_token, pos_embed,
     register_tokens, patch_embed.proj.*, blocks.N.attn.qkv.*, ..., norm.*), converted with
     `mama_core.model.vision.hub_to_transformers` (the one converter of the project);
   - `text_encoder_q.model.base_model.model.*`  the peft-wrapped text model: LoRA factors
     (`...lora_A.default.weight`, `...lora_B.default.weight`) and the frozen base weights;
   - optionally `img_encoder_q.global_embed.*`, `img_encoder_q.local_embed.*`,
     `text_encoder_q.global_embed.*`, `text_encoder_q.local_embed.*` (a Linear, and a
     two-layer MLP stored as `0.*`/`2.*`, optionally under `head.`, Conv1d kernel-1
     weights accepted);
   - `logit_scale` and `local_scale` (log of 1/tau, as in this project).
2. A ViT-only torch.hub DINOv2 state dict (the vision encoder alone; text LoRA and heads
   start fresh and must be trained).

Loading never executes code: `torch.load(..., weights_only=True)` refuses any pickle that
would construct arbitrary objects.  The frozen text base is not copied into the model
directory (model directories never hold it); the checkpoint's copy is compared with the
local text model given by `text_path` instead, and any difference is an error.  Every
missing or unexpected key is reported by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mama_core.errors import ConfigError, MamaError, ModelError
from mama_core.model.vision import hub_to_transformers, resize_pos_embed

IMG, TXT = "img_encoder_q.", "text_encoder_q."
TXT_MODEL = TXT + "model."
# Buffers older transformers versions saved but that are not parameters today.
_IGNORED_BUFFERS = re.compile(r"(\.attn\.bias|\.attn\.masked_bias|position_ids)$")
_HEAD_LAYER = re.compile(r"^(?:head\.)?(\d+)\.(weight|bias)$")
_LORA_KEY = re.compile(r"\.(\w+)\.lora_[AB]\.default\.weight$")


@dataclass
class ImportReport:
    kind: str  # "mama-lightning" | "hub-vit"
    out_dir: Path
    vision: dict
    text_path: str
    loaded: int  # tensors written
    fresh: list[str] = field(default_factory=list)  # parts that start untrained
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"kind": self.kind, "out_dir": str(self.out_dir), "vision": self.vision, "text_path": self.text_path,
                "loaded": self.loaded, "fresh": self.fresh, "notes": self.notes}


# --------------------------------------------------------------------------- reading


def read_checkpoint(path: str | Path) -> tuple[str, dict[str, Tensor]]:
    """(kind, flat tensor dict) without executing any code from the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError("checkpoint not found", path=path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, corrupt zip, not a torch file
        raise ModelError("refused to load: not a weights-only checkpoint (it would need to run code "
                         f"or construct non-tensor objects, or is corrupt): {exc}", path=path) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ModelError("no state dict of tensors found (expected a Lightning checkpoint or a DINOv2 state dict)", path=path)
    kind = "mama-lightning" if any(k.startswith(IMG) for k in obj) else "hub-vit"
    if kind == "hub-vit" and "cls_token" not in obj:
        raise ModelError(f"neither a MaMA checkpoint (no '{IMG}*' keys) nor a torch.hub DINOv2 (no 'cls_token'); "
                         f"first keys: {sorted(obj)[:5]}", path=path)
    return kind, obj


def _strip(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# --------------------------------------------------------------------------- configs


def vision_config_from_hub(hub: dict[str, Tensor], num_heads: int | None, image_size: int | None):
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
        mlp_ratio=float(mlp), patch_size=patch, image_size=image_size or grid * patch,
    )


def _lora_settings(text_state: dict[str, Tensor]) -> tuple[int | None, list[str] | None]:
    lora_a = {k: v for k, v in text_state.items() if k.endswith("lora_A.default.weight")}
    if not lora_a:
        return None, None
    rank = int(next(iter(lora_a.values())).shape[0])
    targets = sorted({m.group(1) for k in lora_a if (m := _LORA_KEY.search(k))})
    return rank, targets


def _embed_dim(state: dict[str, Tensor], default: int) -> int:
    w = state.get(IMG + "global_embed.weight")
    if w is None:
        w = state.get(IMG + "global_embed.head.weight")
    return int(w.shape[0]) if w is not None else default


# --------------------------------------------------------------------------- mapping


def _vision_tensors(hub: dict[str, Tensor], model) -> tuple[dict[str, Tensor], list[str]]:
    converted, unknown = hub_to_transformers(hub)
    pos = "embeddings.position_embeddings"
    if pos in converted:
        grid = model.config.vision.image_size // model.config.vision.patch_size
        converted[pos] = resize_pos_embed(converted[pos], grid)
    return {f"vision.{k}": v for k, v in converted.items()}, [f"{IMG}model.{k}" for k in unknown]


def _head_tensors(sub: dict[str, Tensor], ours: str, source: str, mlp: bool) -> tuple[dict[str, Tensor], list[str]]:
    """A checkpoint head -> our Linear (`ours.weight`) or two-layer MLP (`ours.0.*`, `ours.2.*`)."""
    out, bad = {}, []
    for key, value in sub.items():
        if value.ndim == 3 and value.shape[-1] == 1:
            value = value[..., 0]  # Conv1d with kernel 1 == per-token Linear
        layer = _HEAD_LAYER.match(key)
        if mlp and layer and layer.group(1) in ("0", "2"):
            out[f"{ours}.{layer.group(1)}.{layer.group(2)}"] = value
        elif not mlp and key in ("weight", "bias", "head.weight", "head.bias"):
            out[f"{ours}.{key.rsplit('.', 1)[-1]}"] = value
        else:
            bad.append(f"{source}{key}")
    return out, bad


def _text_tensors(text_state: dict[str, Tensor], expected: set[str]) -> dict[str, Tensor]:
    """peft keys map one to one; older peft saved a wrapped layer's base weight as
    `<module>.weight` where today's peft has `<module>.base_layer.weight`."""
    out = {}
    for key, value in text_state.items():
        if _IGNORED_BUFFERS.search(key):
            continue
        ours = f"text.backbone.{key}"
        if ours not in expected:
            head, _, leaf = ours.rpartition(".")
            if f"{head}.base_layer.{leaf}" in expected:
                ours = f"{head}.base_layer.{leaf}"
        out[ours] = value
    return out


def map_lightning(state: dict[str, Tensor], model) -> tuple[dict[str, Tensor], list[str]]:
    """Checkpoint keys -> our state_dict keys; returns (tensors, unexpected source keys)."""
    out, unexpected = _vision_tensors(_strip(state, IMG + "model."), model)
    heads = [(IMG + "global_embed.", "image_global_head", False), (IMG + "local_embed.", "image_local_head", True),
             (TXT + "global_embed.", "text_global_head", False), (TXT + "local_embed.", "text_local_head", True)]
    for prefix, ours, mlp in heads:
        mapped, bad = _head_tensors(_strip(state, prefix), ours, prefix, mlp)
        out.update(mapped)
        unexpected += bad
    out.update(_text_tensors(_strip(state, TXT_MODEL), set(model.state_dict())))
    for name in ("logit_scale", "local_scale"):
        if name in state:
            out[name] = state[name].reshape(())
    known = (IMG + "model.", IMG + "global_embed.", IMG + "local_embed.", TXT_MODEL, TXT + "global_embed.",
             TXT + "local_embed.")
    unexpected += [k for k in state if not k.startswith(known) and k not in ("logit_scale", "local_scale")]
    return out, unexpected


# --------------------------------------------------------------------------- checking


def _check_shapes(tensors: dict[str, Tensor], expected: dict[str, Tensor], path: Path) -> None:
    bad = [f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in tensors.items()
           if k in expected and v.shape != expected[k].shape]
    if bad:
        raise ModelError(f"shape mismatch: {bad}", path=path)


def _check_text_base(tensors: dict[str, Tensor], model, path: Path, text_path: str) -> None:
    """The frozen base weights in the checkpoint must equal the local text model's."""
    base = model.base_state_keys()
    expected = model.state_dict()
    differ = [k for k in base if k in tensors and not torch.allclose(tensors[k].float(), expected[k].float(), atol=1e-4)]
    if differ:
        raise ModelError(f"the checkpoint's text base weights differ from the local text model {text_path!r} "
                         f"at {sorted(differ)[:5]} ({len(differ)} tensors); pass the text model it was trained from",
                         path=path)


def _missing(tensors: dict[str, Tensor], model, optional: set[str]) -> list[str]:
    need = set(model.saved_state()) - optional
    return sorted(need - set(tensors))


# --------------------------------------------------------------------------- entry point


def import_checkpoint(src: str | Path, out_dir: str | Path, text_path: str = "minilm", num_heads: int | None = None,
                      image_size: int | None = None, embed_dim: int = 512, lora_alpha: float = 32.0) -> ImportReport:
    """Convert `src` into a model directory at `out_dir` (see module docstring)."""
    from mama_core.model.config import ModelConfig, TextConfig
    from mama_core.model.io import save_model_dir
    from mama_core.model.mama import build_model

    src = Path(src)
    kind, state = read_checkpoint(src)
    hub = state if kind == "hub-vit" else _strip(state, IMG + "model.")
    if "cls_token" not in hub:
        raise ModelError(f"no DINOv2 weights under '{IMG}model.' (missing {IMG}model.cls_token)", path=src)
    rank, targets = _lora_settings(_strip(state, TXT_MODEL))
    try:
        vision = vision_config_from_hub(hub, num_heads, image_size)
        text = TextConfig(path=text_path, lora_r=rank or 8, lora_targets=targets, lora_alpha=lora_alpha)
        cfg = ModelConfig(vision=vision, text=text, embed_dim=_embed_dim(state, embed_dim))
    except (ConfigError, KeyError, ValueError) as exc:
        raise ModelError(f"cannot infer the architecture: {exc}", path=src) from None
    model = build_model(cfg)
    if kind == "hub-vit":
        tensors, unexpected = _vision_tensors(hub, model)
        unexpected = [k.removeprefix(IMG + "model.") for k in unexpected]
    else:
        tensors, unexpected = map_lightning(state, model)
    return _finish(model, tensors, unexpected, kind, src, Path(out_dir), text_path, save_model_dir)


def _optional(kind: str, model) -> tuple[set[str], list[str]]:
    """Keys allowed to be absent, and which parts then start untrained."""
    saved = set(model.saved_state())
    if kind == "hub-vit":
        fresh = {k for k in saved if not k.startswith("vision.")}
        return fresh, ["text LoRA", "global and local heads", "logit/local scales"]
    return {"local_scale", "vision.embeddings.mask_token"}, []


def _finish(model, tensors, unexpected, kind, src: Path, out: Path, text_path: str, save) -> ImportReport:
    expected = model.state_dict()
    unexpected = sorted(set(unexpected) | {k for k in tensors if k not in expected})
    optional, fresh = _optional(kind, model)
    missing = _missing(tensors, model, optional)
    if missing or unexpected:
        raise ModelError(f"checkpoint does not fit: missing {missing}, unexpected {unexpected}", path=src)
    _check_shapes(tensors, expected, src)
    _check_text_base(tensors, model, src, text_path)
    notes = []
    if kind != "hub-vit" and "local_scale" not in tensors:
        tensors["local_scale"] = tensors["logit_scale"].clone()
        notes.append("no local_scale in the checkpoint: initialised from logit_scale")
    trained = {k: v for k, v in tensors.items() if k not in model.base_state_keys()}
    model.load_state_dict(trained, strict=False)
    try:
        save(model, out, extra={"imported_from": str(src), "import_kind": kind})
    except MamaError:
        raise
    except OSError as exc:
        raise ModelError(f"cannot write the model directory: {exc}", path=out) from None
    vision = {k: getattr(model.config.vision, k) for k in ("hidden_size", "num_layers", "num_heads", "patch_size",
                                                           "image_size", "registers")}
    return ImportReport(kind, out, vision, text_path, len(trained), fresh, notes)
