"""One optimiser step at the paper's shapes on CPU, within 12 GB of host memory.

ViT-B/14 with 4 registers at 518 px (random init, resources/configs/mama-b14.yaml) and a
random-weight GPT-2 of BioMedLM's shape (2,560 wide, 32 layers, 20 heads, 28,896 tokens:
2.7 B frozen parameters under LoRA) written to a temporary folder with its own tokenizer;
batch 2, bf16 (frozen base stored in bf16, fp32 masters), both encoders checkpointed, the
local term on. The step runs in a child process so that its peak resident memory is its own
(the test session's other models do not count). Slow: several minutes on 2 cores, ~5 GB of
temporary disk.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEAK_LIMIT_BYTES = 12e9

CHILD = r'''
import hashlib, json, math, resource, sys
import torch
from mama_core.model.shapes import write_random_gpt2
from mama_core.training import load_config
from mama_core.training.trainer import (build_model_for, compute_losses, frozen_dtype_for,
                                        make_optimizer, use_autocast)

text_dir, captions = sys.argv[1], json.loads(sys.argv[2])
write_random_gpt2(text_dir)
cfg = load_config(sys.argv[3], [f"model.text.path={text_dir}", "precision=bf16", "checkpointing=all",
                                "batch_size=2", "loss.delta_steps=0", "optim.warmup_steps=0"])
device = torch.device("cpu")
torch.manual_seed(0)
model = build_model_for(cfg, frozen_dtype_for(cfg, device)).train()
opt = make_optimizer(model, cfg, device)

def digest(t):
    return hashlib.blake2b(t.detach().reshape(-1).contiguous().view(torch.uint8).numpy(), digest_size=16).hexdigest()

named = dict(model.named_parameters())
before = {n: digest(p) for n, p in named.items()}
g = torch.Generator().manual_seed(0)
batch = {"captions": captions, "images": torch.randn(2, 1, 518, 518, generator=g),
         "images2": torch.randn(2, 1, 518, 518, generator=g)}
terms = compute_losses(model, model, batch, 0, cfg.loss_config(), device, use_autocast(cfg, device), gather=False)
terms["loss"].backward()
with_grad = {n for n, p in named.items() if p.grad is not None}
opt.step()
changed = {n for n, p in named.items() if digest(p) != before[n]}
frozen = {n for n, p in named.items() if not p.requires_grad}
print(json.dumps({
    "loss": float(terms["loss"].detach()), "local_loss": float(terms["local_loss"].detach()),
    "frozen": len(frozen), "frozen_numel": sum(named[n].numel() for n in frozen),
    "frozen_dtypes": sorted({str(named[n].dtype) for n in frozen}),
    "trainable_dtypes": sorted({str(p.dtype) for n, p in named.items() if p.requires_grad}),
    "with_grad": sorted(with_grad), "changed": sorted(changed),
    "frozen_changed": sorted(changed & frozen), "frozen_with_grad": sorted(with_grad & frozen),
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
'''


@pytest.mark.slow
def test_paper_shape_step_fits_12gb_in_bf16(tmp_path):
    from mama_core.captions import build_caption

    meta = {"StudyDescription": "MG Screening Bilateral", "age_at_study": 57, "tissueden": 3, "asses": "B",
            "ImageLateralityFinal": "L", "ViewPosition": "MLO", "massshape": "O", "massdens": "="}
    captions = [build_caption(meta), build_caption({**meta, "tissueden": 1, "asses": "N"})]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "gpt2"), json.dumps(captions),
                           str(ROOT / "resources/configs/mama-b14.yaml")],
                          capture_output=True, text=True, env=env, timeout=3600)
    assert done.returncode == 0, done.stderr[-4000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert math.isfinite(r["loss"]) and r["loss"] > 0 and r["local_loss"] > 0  # the full eq. (4) ran
    assert r["frozen_numel"] > 2.5e9  # the 2.7 B text base is there, and frozen
    assert r["frozen_dtypes"] == ["torch.bfloat16"] and r["trainable_dtypes"] == ["torch.float32"]
    assert not r["frozen_with_grad"] and not r["frozen_changed"]
    # Every parameter that received a gradient moved: LoRA, the separator, the ViT, the heads.
    assert set(r["changed"]) == set(r["with_grad"])
    for part in ("lora_A", "lora_B", "sep_embedding", "vision.encoder.layer.11.", "image_local_head",
                 "text_local_head", "local_scale", "logit_scale"):
        assert any(part in n for n in r["changed"]), part
    assert r["peak_rss_bytes"] <= PEAK_LIMIT_BYTES, f"peak RSS {r['peak_rss_bytes'] / 1e9:.1f} GB"
