"""MaMA training objective (paper arXiv 2409.18119, eqs. 1-4).

Every function takes *raw* embeddings and L2-normalises them itself, so callers never have
to remember which tensors are already normalised. Every InfoNCE term is averaged over the
batch and over both directions (image->text and text->image, or anchor and pair).

Under DDP the caller (or `mama_objective(..., gather=True)`) all-gathers the embeddings
*with gradient* first, so that every loss sees the global batch (docs/method.md §1.6).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from mama_core.config import Config, choice, non_negative_int, non_negative_number, positive_int, positive_number
from mama_core.errors import ConfigError

# Keys of the model output dict that hold per-sample embeddings (gathered under DDP).
GATHERED_KEYS = ("image_global", "image2_global", "text_global", "image_patches", "sentences",
                 "image_ssl", "image2_ssl")

# Default memory budget (elements) of one chunk of the B x B x P x S similarity tensor in
# the local loss: 2**26 fp32 elements = 256 MiB.
DEFAULT_LOCAL_CHUNK_ELEMENTS = 2**26


# The terms of eq. (4) that the delta gate can hold back (docs/method.md §1.7).
GATED_TERMS = ("image_image_loss", "image2_text_loss", "local_loss")
DIRECTIONS = ("mean", "sum")


@dataclass
class LossConfig(Config):
    """Weights and schedule of eq. (4).

    `image_image_temperature`: the paper does not state the SimCLR temperature of L_VV;
    0.1 is our default (the usual SimCLR value); the released code uses 0.5.
    `delta_terms`: the terms that are zero for the first `delta_steps` optimiser steps: the
    paper holds back only the local term; the released code also L_VV and the second-view
    L_VT (all of GATED_TERMS).
    `directions`: "mean" averages each symmetric InfoNCE over its two directions and the
    local term over L_V and L_T (the paper's eqs. 2-3); "sum" adds them (released code).
    """

    image_image_temperature: float = field(default=0.1, metadata={
        "help": "temperature of the image-image (SimCLR) term; not stated in the paper (released code: 0.5)"})
    local_weight: float = field(default=1.0, metadata={
        "help": "weight of the local alignment term once fully on"})
    delta_steps: int = field(default=8000, metadata={
        "help": "step delta before which the delta_terms are held back (paper: 8000)"})
    delta_terms: list[str] = field(default_factory=lambda: ["local_loss"], metadata={
        "help": "terms that are zero for the first delta_steps: paper = local_loss; released code = all but the single-view image-text term"})
    directions: str = field(default="mean", metadata={
        "help": "mean = average both directions of each InfoNCE (paper) | sum = add them (released code)"})
    local_chunk_elements: int = field(default=DEFAULT_LOCAL_CHUNK_ELEMENTS, metadata={
        "help": "memory bound of the local-loss computation (elements per chunk); does not change the result"})

    def __post_init__(self) -> None:
        positive_number(self.image_image_temperature, "image_image_temperature")
        non_negative_number(self.local_weight, "local_weight")
        non_negative_int(self.delta_steps, "delta_steps")
        positive_int(self.local_chunk_elements, "local_chunk_elements")
        if not isinstance(self.delta_terms, (list, tuple)) or any(t not in GATED_TERMS for t in self.delta_terms):
            raise ConfigError(f"must be a list of terms from {GATED_TERMS}, got {self.delta_terms!r}",
                              field="delta_terms")
        self.delta_terms = list(self.delta_terms)
        choice(self.directions, DIRECTIONS, "directions")


# --------------------------------------------------------------------------- helpers


def _symmetric_infonce(logits: Tensor, directions: str = "mean") -> Tensor:
    """InfoNCE with matched pairs on the diagonal, averaged (or summed) over both directions."""
    targets = torch.arange(logits.shape[0], device=logits.device)
    logits = logits.float()
    both = F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)
    return both if directions == "sum" else both / 2


def _check_pair(a: Tensor, b: Tensor, name: str) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"{name}: expected two [B, D] tensors of equal shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")


# --------------------------------------------------------------------------- eq. (1)


def image_image_loss(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR NT-Xent over the 2B view embeddings, eq. (1).

    Each of the 2B anchors has its other view as positive and the remaining 2B-2
    embeddings as negatives; the mean over all 2B anchors covers both directions.
    """
    _check_pair(z1, z2, "image_image_loss")
    batch = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=-1)
    sim = z @ z.t() / temperature
    # An anchor is never its own negative.
    sim = sim.masked_fill(torch.eye(2 * batch, dtype=torch.bool, device=z.device), float("-inf"))
    idx = torch.arange(batch, device=z.device)
    targets = torch.cat([idx + batch, idx])
    return F.cross_entropy(sim, targets)


# --------------------------------------------------------------------------- eq. (2)


def image_text_loss(img: Tensor, txt: Tensor, logit_scale: Tensor | float, directions: str = "mean") -> Tensor:
    """Symmetric CLIP loss, eq. (2); `logit_scale` is the multiplier 1/tau; `directions`
    "sum" adds image->text and text->image instead of averaging them (released code)."""
    _check_pair(img, txt, "image_text_loss")
    img_n = F.normalize(img.float(), dim=-1)
    txt_n = F.normalize(txt.float(), dim=-1)
    return _symmetric_infonce(logit_scale * img_n @ txt_n.t(), directions)


# --------------------------------------------------------------------------- eq. (3)


def _check_local(patches: Tensor, sentences: Tensor, mask: Tensor) -> None:
    if patches.ndim != 3 or sentences.ndim != 3 or mask.ndim != 2:
        raise ValueError("local_alignment_loss: expected patches [B,P,D], sentences [B,S,D], "
                         "sentence_mask [B,S]")
    if patches.shape[0] != sentences.shape[0] or patches.shape[2] != sentences.shape[2]:
        raise ValueError(f"local_alignment_loss: patches {tuple(patches.shape)} and sentences "
                         f"{tuple(sentences.shape)} disagree on B or D")
    if tuple(mask.shape) != tuple(sentences.shape[:2]):
        raise ValueError("local_alignment_loss: sentence_mask must be [B, S] like sentences")
    # c_T takes a max over the valid sentences of each report: an empty report has none.
    message = "local_alignment_loss: every caption needs at least one valid sentence"
    every = mask.any(dim=1).all()
    if mask.device.type != "cpu":
        # Checked on the device: reading the flag back would stall the host every step.
        torch._assert_async(every, message)
    elif not bool(every):
        raise ValueError(message)


def _localization_chunk(p: Tensor, s: Tensor, m: Tensor, pm: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """c_V and c_T for all images i against one chunk of reports j.

    p [B,P,D] and s [J,S,D] are unit vectors, m [J,S] marks valid sentences and the
    optional pm [B,P] the patches taking part (all when None).
    C[i,j,p,s] = cos(patch p of image i, sentence s of report j).
    """
    sim = torch.einsum("ipd,jsd->ijps", p, s)                        # [B, J, P, S]
    valid = m[None, :, None, :]                                       # broadcast over i, p
    if pm is not None:
        valid = valid & pm[:, None, :, None]
    sim = sim.masked_fill(~valid, float("-inf"))
    # Visual localization: each valid sentence of j picks its best patch of i, then mean.
    best_patch = sim.max(dim=2).values                                # [B, J, S]
    best_patch = best_patch.masked_fill(~m[None], 0.0)
    c_v = best_patch.sum(dim=-1) / m.sum(dim=-1).to(best_patch.dtype)[None]
    # Text localization: each patch of i picks its best valid sentence of j, then mean.
    best_sentence = sim.max(dim=3).values                             # [B, J, P]
    if pm is None:
        return c_v, best_sentence.mean(dim=2)
    best_sentence = best_sentence.masked_fill(~pm[:, None, :], 0.0)
    return c_v, best_sentence.sum(dim=2) / pm.sum(dim=1).to(best_sentence.dtype)[:, None]


def _chunk_size(batch: int, patches: int, sents: int, budget: int) -> int:
    per_report = max(1, batch * patches * sents)
    return max(1, min(batch, budget // per_report))


def local_alignment_loss(
    patches: Tensor,
    sentences: Tensor,
    sentence_mask: Tensor,
    logit_scale: Tensor | float,
    chunk_elements: int = DEFAULT_LOCAL_CHUNK_ELEMENTS,
    patch_mask: Tensor | None = None,
    directions: str = "mean",
) -> Tensor:
    """Symmetric local alignment (SLA) loss, eq. (3).

    c_V[i,j] = mean over valid sentences of report j of max over patches of image i;
    c_T[i,j] = mean over patches of image i of max over valid sentences of report j.
    InfoNCE in both directions on each, L = (L_V + L_T) / 2. `patch_mask` [B,P] (optional)
    restricts both to the marked patches (ModelConfig.local_tissue_only). The B x B x P x S cosine
    tensor is built in chunks of reports so that one chunk holds at most
    `chunk_elements` values; `max(dim)` (not `amax`) keeps only the argmax indices for
    backward, so a chunk is freed as soon as it is reduced. `directions` "sum" gives
    L_V + L_T with each summed over its two directions (released code).
    """
    _check_local(patches, sentences, sentence_mask)
    p = F.normalize(patches.float(), dim=-1)
    s = F.normalize(sentences.float(), dim=-1)
    m = sentence_mask.bool()
    batch, n_patch, _ = p.shape
    step = _chunk_size(batch, n_patch, s.shape[1], chunk_elements)
    pm = None if patch_mask is None else patch_mask.bool().to(p.device)
    parts = [_localization_chunk(p, s[j:j + step], m[j:j + step], pm) for j in range(0, batch, step)]
    c_v = torch.cat([c for c, _ in parts], dim=1)
    c_t = torch.cat([c for _, c in parts], dim=1)
    both = _symmetric_infonce(logit_scale * c_v, directions) + _symmetric_infonce(logit_scale * c_t, directions)
    return both if directions == "sum" else both / 2


# --------------------------------------------------------------------------- DDP


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate `tensor` from every rank along dim 0, keeping the autograd graph.

    Uses torch.distributed.nn.functional.all_gather, whose backward sends each rank the
    gradient of its own slice; identity outside DDP or with one process.
    """
    if _world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    # torch 2.13 marks this API deprecated in favour of a private functional collective;
    # it still works and is the documented autograd-aware gather, so keep it quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(tensor.contiguous()), dim=0)


def _pad_sentences(sentences: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Pad S to the largest S over all ranks so that the gathered tensors stack."""
    size = torch.tensor([sentences.shape[1]], device=sentences.device)
    dist.all_reduce(size, op=dist.ReduceOp.MAX)
    extra = int(size.item()) - sentences.shape[1]
    if extra == 0:
        return sentences, mask
    return F.pad(sentences, (0, 0, 0, extra)), F.pad(mask, (0, extra), value=False)


def gather_outputs(outputs: dict) -> dict:
    """The model outputs with every per-sample tensor gathered over ranks (with gradient)."""
    if _world_size() == 1:
        return outputs
    out = dict(outputs)
    out["sentences"], mask = _pad_sentences(outputs["sentences"], outputs["sentence_mask"])
    for key in GATHERED_KEYS:
        if key in out:
            out[key] = gather_with_grad(out[key])
    # The masks carry no gradient; gather them as integers (bool collectives vary by backend).
    out["sentence_mask"] = gather_with_grad(mask.to(torch.uint8)).bool()
    if "patch_mask" in outputs:
        out["patch_mask"] = gather_with_grad(outputs["patch_mask"].to(torch.uint8)).bool()
    return out


# --------------------------------------------------------------------------- eq. (4)


def term_active(term: str, step: int, cfg: LossConfig) -> bool:
    """Whether a gated term of eq. (4) is on at `step` (the delta gate of `cfg.delta_terms`)."""
    return step >= cfg.delta_steps or term not in cfg.delta_terms


def local_weight(step: int, cfg: LossConfig) -> float:
    """w(step) of eq. (4): 0 for the first delta optimiser steps, then `local_weight`."""
    return cfg.local_weight if term_active("local_loss", step, cfg) else 0.0


def mama_objective(outputs: dict, step: int, cfg: LossConfig, gather: bool = True) -> dict:
    """Total objective, eq. (4): L_VV(v, v~) + L_VT(v, t) + L_VT(v~, t) + w L_local.

    Returns `image_image_loss`, `image_text_loss`, `image2_text_loss`, `local_loss` and
    `loss`; a term that is not active at `step` is a zero (and is not computed), and
    `local_loss` holds the *weighted* term, so `loss` is exactly the sum of the `*_loss`
    entries. `local_weight` reports w(step). L_VV reads the SimCLR head's outputs
    (`image_ssl`, `image2_ssl`) when the model has one, else the global embeddings.
    """
    out = gather_outputs(outputs) if gather else outputs
    zero = out["image_global"].new_zeros((), dtype=torch.float32)
    on = {t: term_active(t, step, cfg) for t in GATED_TERMS}
    w, way = local_weight(step, cfg), cfg.directions
    ssl = ("image_ssl", "image2_ssl") if "image_ssl" in out else ("image_global", "image2_global")
    terms = {
        "image_image_loss": image_image_loss(out[ssl[0]], out[ssl[1]], cfg.image_image_temperature)
        if on["image_image_loss"] else zero,
        "image_text_loss": image_text_loss(out["image_global"], out["text_global"], out["logit_scale"], way),
        "image2_text_loss": image_text_loss(out["image2_global"], out["text_global"], out["logit_scale"], way)
        if on["image2_text_loss"] else zero,
        "local_loss": zero if w == 0 else w * local_alignment_loss(
            out["image_patches"], out["sentences"], out["sentence_mask"], out["local_scale"],
            chunk_elements=cfg.local_chunk_elements, patch_mask=out.get("patch_mask"), directions=way),
    }
    terms["loss"] = sum(terms.values())
    terms["local_weight"] = torch.tensor(w)
    return terms
