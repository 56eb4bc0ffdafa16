"""Run by test_distributed.py under `torchrun --standalone --nproc_per_node=2` (gloo, CPU).

The paper's config (resources/configs/mama-b14.yaml) and the released recipe's
(mama-b14-reference.yaml: Conv-BN local heads, SimCLR head on L_VV, 144-token captions,
summed directions) at tiny widths, every loss term on (past delta): each rank's half of a
fixed batch under DDP with the all-gather must give the loss and the parameter gradients of
one process on the whole batch. Results go to OUT/paper-rank<r>.json.

Argv: OUT GPT2_FOLDER.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import compare_grads  # noqa: E402

from mama_core.captions import build_caption  # noqa: E402
from mama_core.paths import resources_dir  # noqa: E402
from mama_core.training import distributed as ddp  # noqa: E402
from mama_core.training import load_config  # noqa: E402
from mama_core.training.trainer import build_model_for, compute_losses  # noqa: E402

CONFIGS = {"paper": "mama-b14.yaml", "reference": "mama-b14-reference.yaml"}
# The paper's architecture (ViT-B/14 with 4 registers, GPT-2 + LoRA, heads, eq. 4) with
# every width cut down: 32-wide 2-block ViT at 56 px (4x4 patches), a 32-wide GPT-2.
TINY = ["model.vision.hidden_size=32", "model.vision.num_heads=2", "model.vision.num_layers=2",
        "image_size=56", "model.embed_dim=16", "model.local_hidden=24", "model.text.lora_dropout=0.0",
        "loss.delta_steps=0", "precision=fp32", "batch_size=4"]
META = {"StudyDescription": "MG Screening Bilateral", "age_at_study": 61, "RACE_DESC": "White",
        "ETHNIC_GROUP_DESC": "Non-Hispanic", "FinalImageType": "2D", "ImageLateralityFinal": "R",
        "ViewPosition": "CC", "tissueden": 3, "asses": "B", "massshape": "O", "massdens": "="}


def _batch(n: int) -> dict:
    g = torch.Generator().manual_seed(7)
    rng = np.random.default_rng(7)
    captions = [build_caption({**META, "tissueden": i % 4 + 1}, mask_prob=0.8, rng=rng) for i in range(n)]
    return {"images": torch.randn(n, 1, 56, 56, generator=g), "images2": torch.randn(n, 1, 56, 56, generator=g),
            "captions": captions}


def _bn_eval(model: nn.Module) -> int:
    """BatchNorm layers to running statistics; returns how many there are (see check())."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.eval()
    return len(layers)


def _nonzero_grads(model: nn.Module, part: str) -> list[str]:
    return sorted(n for n, p in model.named_parameters() if part in n and p.grad is not None and bool(p.grad.any()))


def check(name: str, gpt2: str, info: ddp.DistInfo, bn_train: bool) -> dict:
    """Loss + gradients, DDP on 2 x 4 pairs against one process on 8.

    With `bn_train` False the BatchNorm layers of the released heads use running statistics:
    in training mode each rank normalises over its own share of the batch (as on the
    released code's GPUs, which do not synchronise BatchNorm), so the global loss then is
    NOT that of one process on the doubled batch; the run with `bn_train` True measures
    that gap instead of asserting it away."""
    cfg = load_config(resources_dir() / "configs" / CONFIGS[name], TINY + [f"model.text.path={gpt2}"])
    loss_cfg = cfg.loss_config()
    full = _batch(8)
    torch.manual_seed(0)
    reference = build_model_for(cfg)
    n_bn = 0 if bn_train else _bn_eval(reference)
    ref_terms = compute_losses(reference, reference, full, 1, loss_cfg, info.device, False, gather=False)
    ref_terms["loss"].backward()
    torch.manual_seed(0)
    bare = build_model_for(cfg)
    if not bn_train:
        _bn_eval(bare)
    model = nn.parallel.DistributedDataParallel(bare, find_unused_parameters=True)
    half = slice(info.rank * 4, info.rank * 4 + 4)
    mine = {k: v[half] for k, v in full.items()}
    terms = compute_losses(model, bare, mine, 1, loss_cfg, info.device, False, gather=True)
    terms["loss"].backward()
    result = compare_grads(reference, bare)
    result.update({"ref_loss": float(ref_terms["loss"].detach()), "ddp_loss": float(terms["loss"].detach()), "batchnorms": n_bn,
                   "ref_terms": {k: float(v.detach()) for k, v in ref_terms.items() if k.endswith("_loss")},
                   "ddp_terms": {k: float(v.detach()) for k, v in terms.items() if k.endswith("_loss")},
                   "ssl_head_grads": _nonzero_grads(bare, "image_ssl_head"),
                   "local_head_grads": _nonzero_grads(bare, "local_head")})
    return result


def main() -> None:
    out, gpt2 = Path(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    info = ddp.init_distributed("cpu")
    result = {"rank": info.rank, "world": info.world_size,
              "paper": check("paper", gpt2, info, bn_train=False),
              "reference": check("reference", gpt2, info, bn_train=False),
              "reference_bn_train": check("reference", gpt2, info, bn_train=True)}
    (out / f"paper-rank{info.rank}.json").write_text(json.dumps(result))
    dist.barrier()
    ddp.cleanup(info)


if __name__ == "__main__":
    main()
