"""Training-step benchmark: our trainer's step against a baseline set up like the released
reference recipe, on the same machine in the same run.

Ours: SDPA attention, fp32 master weights with bf16 autocast on CUDA (fp32 on CPU), no
anomaly detection, images from the preprocessed cache. Baseline (only here, never in
training): eager attention returning attention maps (output_attentions=True),
`torch.autograd.set_detect_anomaly(True)`, pure bf16 weights (`model.to(torch.bfloat16)`)
on CUDA / fp32 on CPU, and — with --data — every DICOM decoded again each step.

Random weights and synthetic tensors at the config's shapes, so no data is needed;
`--data FOLDER` adds the data pipeline (cache vs decode-per-step).

`--paper-shapes`: resources/configs/mama-b14.yaml (ViT-B/14 reg4 at 518 px, random init)
with a random-weight GPT-2 of BioMedLM's shape written to a temporary folder with its own
tokenizer (`mama_core.model.shapes`; `--text-dir` keeps and reuses it), the local term on
(`loss.delta_steps=0`), bf16, and activation checkpointing of both encoders unless `--set`
says otherwise. On CPU the fp32 baseline at these shapes needs over 20 GB, so it is skipped.

    python benchmarks/train_step.py --config resources/configs/smoke.yaml --steps 5 --json
    python benchmarks/train_step.py --paper-shapes --batch-size 2 --steps 1 --json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mama_core.captions import build_caption  # noqa: E402
from mama_core.losses import mama_objective  # noqa: E402
from mama_core.preprocess import normalise, resize_to_square  # noqa: E402
from mama_core.training import load_config  # noqa: E402
from mama_core.optim import peak_memory_mb  # noqa: E402
from mama_core.training.distributed import pick_device  # noqa: E402
from mama_core.training.trainer import (  # noqa: E402
    build_model_for, compile_encoders, frozen_dtype_for, make_optimizer, use_autocast)

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIG = ROOT / "resources/configs/mama-b14.yaml"
# The paper-shape run: the full objective (local term on from step 0), bf16 autocast with the
# frozen text base stored in bf16, both encoders checkpointed.
PAPER_OVERRIDES = ["loss.delta_steps=0", "precision=bf16", "checkpointing=all"]

META = {"StudyDescription": "MG Screening Bilateral", "age_at_study": 57, "RACE_DESC": "White",
        "ETHNIC_GROUP_DESC": "Non-Hispanic", "FinalImageType": "2D", "ImageLateralityFinal": "L",
        "ViewPosition": "MLO", "tissueden": 3, "asses": "B", "massshape": "O", "massdens": "="}


def _captions(n: int) -> list[str]:
    import random

    rng = random.Random(0)
    return [build_caption(META, mask_prob=0.8, rng=rng) for _ in range(n)]


def _images(batch: int, size: int, data: list | None, decode: bool, cache) -> tuple[torch.Tensor, torch.Tensor]:
    if data is None:
        g = torch.Generator().manual_seed(0)
        return torch.randn(batch, 1, size, size, generator=g), torch.randn(batch, 1, size, size, generator=g)
    from mama_core.dicom import read_image

    def one(path):
        if decode:  # the reference recipe decodes every DICOM every time it is used
            return normalise(resize_to_square(read_image(path).pixels, size)[0])[None]
        return normalise(cache.load(path))

    paths = [data[i % len(data)].path for i in range(batch)]
    views = torch.stack([one(p) for p in paths])
    return views, views.flip(-1)


def _make_baseline(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    for module in (model.vision, getattr(model.text, "backbone", None)):
        if module is not None and hasattr(module, "set_attn_implementation"):
            module.set_attn_implementation("eager")
    model.vision.forward = functools.partial(model.vision.forward, output_attentions=True)
    if device.type == "cuda":
        model.to(torch.bfloat16)
    return model


def build_case(cfg, device: torch.device, baseline: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The model and optimiser of one case: the trainer's own (`mama_core.training.trainer`:
    bf16-stored frozen base under autocast, fused AdamW on CUDA, optional compile), or the
    reference-style baseline built from the same config."""
    torch.manual_seed(0)
    model = build_model_for(cfg, None if baseline else frozen_dtype_for(cfg, device)).to(device)
    if baseline:
        model = _make_baseline(model, device)
    elif cfg.compile:
        compile_encoders(model)
    model.train()
    return model, make_optimizer(model, cfg, device)


def run_case(cfg, device: torch.device, steps: int, baseline: bool, data: list | None, cache) -> dict:
    model, opt = build_case(cfg, device, baseline)
    rss_built = _rss_mb()
    loss_cfg = cfg.loss_config()
    size = cfg.model_config().vision.image_size
    captions = _captions(cfg.batch_size)
    amp = use_autocast(cfg, device) and not baseline
    dtype = torch.bfloat16 if (baseline and device.type == "cuda") else torch.float32
    anomaly = torch.autograd.set_detect_anomaly(True) if baseline else contextlib.nullcontext()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with anomaly:
        # Step 0 warms up (allocator, kernels) and is not timed; with --steps 0 it is the figure.
        for i in range(steps + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            images, images2 = _images(cfg.batch_size, size, data, baseline, cache)
            tokens = {k: v.to(device) for k, v in model.tokenize(captions).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(images.to(device, dtype), images2.to(device, dtype), tokens)
            loss = mama_objective(out, loss_cfg.delta_steps, loss_cfg, gather=False)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i or not steps:
                times.append(time.perf_counter() - start)
    step = statistics.median(times)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    return {"step_time_s": step, "images_per_s": cfg.batch_size / step, "peak_memory_mb": peak_memory_mb(device),
            "rss_after_build_mb": rss_built, "loss": float(loss.detach()),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "frozen_params": sum(p.numel() for p in frozen),
            "frozen_dtypes": sorted({str(p.dtype) for p in frozen})}


def _rss_mb() -> float:
    """Current resident set size, from /proc (Linux); 0 elsewhere."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _hwm_mb(reset: bool = False) -> float:
    """The process's peak resident memory (VmHWM); `reset` first restarts it at the current
    RSS (Linux /proc/self/clear_refs), so that a peak can be measured for one piece of work."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
                f.write("5")
        with open("/proc/self/status", encoding="utf-8") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return float("nan")


def local_loss_peak(batch: int, patches: int, sentences: int, dim: int, chunk_elements: int | None,
                    device: torch.device) -> dict:
    """Peak memory of the local term of eq. (3) alone, forward + backward, above its inputs:
    `mama_core.losses.local_alignment_loss` with its chunking (`chunk_elements`; None = the
    whole B x B x P x S tensor in one piece)."""
    from mama_core.losses import DEFAULT_LOCAL_CHUNK_ELEMENTS, local_alignment_loss

    g = torch.Generator().manual_seed(0)
    p = torch.randn(batch, patches, dim, generator=g).to(device).requires_grad_()
    s = torch.randn(batch, sentences, dim, generator=g).to(device).requires_grad_()
    mask = torch.ones(batch, sentences, dtype=torch.bool, device=device)
    mask[::2, sentences // 2:] = False  # ragged sentence counts, as in real batches
    chunk = chunk_elements or batch * batch * patches * sentences
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = _hwm_mb(reset=True)
    start = time.perf_counter()
    local_alignment_loss(p, s, mask, 1 / 0.07, chunk_elements=chunk).backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        peak = _hwm_mb() - base
    return {"batch": batch, "patches": patches, "sentences": sentences, "dim": dim,
            "chunk_elements": chunk, "default_chunk_elements": DEFAULT_LOCAL_CHUNK_ELEMENTS,
            "full_tensor_mb": batch * batch * patches * sentences * 4 / 2**20,
            "peak_above_inputs_mb": peak, "time_s": time.perf_counter() - start}


def paper_text_dir(text_dir: str | None, shape: str | None) -> str:
    """A folder holding the random BioMedLM-shaped GPT-2 (written when it has no config.json)."""
    import tempfile

    from mama_core.model.shapes import BIOMEDLM, GPT2Shape, write_random_gpt2

    folder = Path(text_dir) if text_dir else Path(tempfile.mkdtemp(prefix="mama-paper-gpt2-"))
    if not (folder / "config.json").is_file():
        gpt2 = BIOMEDLM
        if shape:
            width, layers, heads = (int(v) for v in shape.split(","))
            gpt2 = GPT2Shape(n_embd=width, n_layer=layers, n_head=heads)
        write_random_gpt2(folder, gpt2)
    return str(folder)


def _data(folder: str | None, size: int):
    if folder is None:
        return None, None
    import tempfile

    from mama_core.data import load_records
    from mama_core.training.cache import ImageCache, warm_cache

    records = load_records(folder)
    cache = ImageCache(Path(tempfile.mkdtemp(prefix="mama-bench-cache-")), size)
    for _ in warm_cache(records, size, cache_dir=cache.root):
        pass
    return records, cache


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPU(s), torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "resources/configs/smoke.yaml"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--data", default=None, help="a data folder: include the data pipeline")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--paper-shapes", action="store_true",
                        help="mama-b14.yaml with a random GPT-2 of BioMedLM's shape (see the module docstring)")
    parser.add_argument("--text-dir", default=None,
                        help="with --paper-shapes: keep the random GPT-2 here (reused when it exists)")
    parser.add_argument("--gpt2-shape", default=None,
                        help="with --paper-shapes: WIDTH,LAYERS,HEADS instead of BioMedLM's 2560,32,20")
    parser.add_argument("--local-loss", default=None, metavar="B,P,S,D",
                        help="only measure the local term's peak memory at these shapes (e.g. 36,1369,64,512)")
    parser.add_argument("--local-chunk", type=int, default=None,
                        help="with --local-loss: chunk budget in elements (default: the loss's own; 0 = unchunked)")
    args = parser.parse_args(argv)
    if args.local_loss:
        from mama_core.losses import DEFAULT_LOCAL_CHUNK_ELEMENTS

        b, p, s, d = (int(v) for v in args.local_loss.split(","))
        chunk = DEFAULT_LOCAL_CHUNK_ELEMENTS if args.local_chunk is None else (args.local_chunk or None)
        print(json.dumps(local_loss_peak(b, p, s, d, chunk, pick_device(args.device))))
        return 0
    overrides = list(args.overrides) + ([f"batch_size={args.batch_size}"] if args.batch_size else [])
    device = pick_device(args.device)
    if args.paper_shapes:
        if args.config == parser.get_default("config"):
            args.config = str(PAPER_CONFIG)
        text = paper_text_dir(args.text_dir, args.gpt2_shape)
        overrides = PAPER_OVERRIDES + [f"model.text.path={text}"] + overrides
        args.no_baseline = args.no_baseline or device.type == "cpu"
    cfg = load_config(args.config, overrides)
    data, cache = _data(args.data, cfg.model_config().vision.image_size)
    result = {"machine": machine(), "device": str(device), "config": args.config, "batch_size": cfg.batch_size,
              "steps": args.steps, "with_data": data is not None, "precision": cfg.precision,
              "checkpointing": cfg.checkpointing, "load_average": list(os.getloadavg()),
              "ours": run_case(cfg, device, args.steps, False, data, cache)}
    if not args.no_baseline:
        result["baseline"] = run_case(cfg, device, args.steps, True, data, cache)
        result["speedup"] = result["baseline"]["step_time_s"] / result["ours"]["step_time_s"]
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['machine']}  device={device}  batch={cfg.batch_size}")
        for name in ("ours", "baseline"):
            if name in result:
                r = result[name]
                print(f"{name:9s} step {r['step_time_s']:.3f} s  {r['images_per_s']:.2f} pairs/s  "
                      f"peak {r['peak_memory_mb']:.0f} MB")
        if "speedup" in result:
            print(f"speed-up (baseline step time / ours): {result['speedup']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
