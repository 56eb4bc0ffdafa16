"""Run by test_distributed.py under `torchrun --standalone --nproc_per_node=2` (gloo, CPU).

1. Gradient check: the trainer's loss path (`compute_losses`, DDP, all-gather with gradient)
   on each rank's half of a fixed batch must give the loss and the parameter gradients of
   one process on the whole batch (no extra world-size factor).
2. A 2-step `train()` run over the synthetic records through the real DDP trainer.
Results go to OUT/rank<r>.json; the test compares them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from mama_core.training import distributed as ddp
from mama_core.training.trainer import build_model_for, compute_losses


def _batch(n: int) -> dict:
    g = torch.Generator().manual_seed(123)
    captions = [f"Mammogram number {i}. Breast density is {i % 4 + 1}; No mass {i}." for i in range(n)]
    return {"images": torch.randn(n, 1, 56, 56, generator=g), "images2": torch.randn(n, 1, 56, 56, generator=g),
            "captions": captions}


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def gradient_check(cfg, info) -> dict:
    loss_cfg = cfg.loss_config()
    full = _batch(8)
    torch.manual_seed(0)
    reference = build_model_for(cfg)
    ref_loss = compute_losses(reference, reference, full, 0, loss_cfg, info.device, False, gather=False)["loss"]
    ref_loss.backward()
    torch.manual_seed(0)
    bare = build_model_for(cfg)
    model = nn.parallel.DistributedDataParallel(bare, find_unused_parameters=True)
    half = slice(info.rank * 4, info.rank * 4 + 4)
    mine = {"images": full["images"][half], "images2": full["images2"][half], "captions": full["captions"][half]}
    loss = compute_losses(model, bare, mine, 0, loss_cfg, info.device, False, gather=True)["loss"]
    loss.backward()
    out = compare_grads(reference, bare)
    out.update({"ref_loss": float(ref_loss), "ddp_loss": float(loss)})
    return out


def compare_grads(reference: nn.Module, bare: nn.Module) -> dict:
    """How far the DDP gradients are from the one-process ones (shared with _ddp_paper_worker)."""
    ref, got = _grads(reference), _grads(bare)
    # Parameters whose true gradient is ~0 (LoRA A while B = 0, key biases under softmax) are
    # judged against the overall gradient scale, not their own.
    scale = max(float(g.abs().max()) for g in ref.values())
    worst = max(float((ref[k] - got[k]).abs().max()) / (float(ref[k].abs().max()) + 1e-3 * scale) for k in ref)
    big = [k for k in ref if float(ref[k].abs().max()) > 1e-2 * scale]
    # <got, ref> / <ref, ref>: exactly 1 unless a world-size factor is missing or doubled.
    ratios = {k: float((got[k] * ref[k]).sum() / (ref[k] * ref[k]).sum()) for k in big}
    return {"ratios": ratios, "same_keys": sorted(ref) == sorted(got), "n_grads": len(ref),
            "worst_rel_grad_diff": worst}


def main() -> None:
    out, data, cache = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    from mama_core.data import load_records
    from mama_core.training import load_config, train

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import TINY

    torch.set_num_threads(1)
    info = ddp.init_distributed("cpu")
    cfg = load_config(None, TINY + [f"data.cache_dir={cache}", "model.text.lora_dropout=0.0",
                                    "loss.delta_steps=0", "optim.max_steps=2", "data.val_fraction=0.0"])
    result = {"rank": info.rank, "world": info.world_size, "grad": gradient_check(cfg, info)}
    reports = list(train(cfg, load_records(data), out / "run"))
    result["train_losses"] = [r.loss for r in reports]
    result["train_steps"] = [r.step for r in reports]
    (out / f"rank{info.rank}.json").write_text(json.dumps(result))
    dist.barrier()
    ddp.cleanup(info)


if __name__ == "__main__":
    main()
