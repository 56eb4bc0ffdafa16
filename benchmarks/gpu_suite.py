"""One-command GPU suite (run through benchmarks/gpu_suite.sh): the paper's recipe at its
real shapes on one CUDA device, in a bounded time, random weights built here.

1. Train step, ours against the reference-style baseline of benchmarks/train_step.py
   (`mama-b14-reference` style: eager attention returning attention maps, autograd anomaly
   detection, pure bf16 weights), both in this process on resources/configs/mama-b14.yaml
   with a random GPT-2 of BioMedLM's shape. The baseline runs at the largest batch from
   --batch-size downwards that fits (out-of-memory searches down); ours runs at that same
   batch (the ratio) and, when it differs, at --batch-size too. Reported: pairs/s, the
   ratio, peak memory, MFU against the device's bf16 dense peak.
2. Inference at the same shapes: a new sentence -> four similarity maps, an unseen study ->
   predictions, and index images/s (`mama_core.search.build_index`), over synthetic DICOM
   studies (`mama_core.synthetic`).

MFU method (printed with the figures): model FLOPs per training pair from the shapes —
6 N T for trainable weights, 4 N T for frozen weights the backward passes through (the
LoRA-adapted text base: forward + input gradients), 2 N T for forward-only ones; N counts
matrix weights (embedding tables excluded), T tokens per sequence (ViT: patches + CLS +
registers, both views; text: the padded caption length); attention adds 4 L T^2 d per
forward, times 3 for training. Heads and the losses (< 1 %) are left out; recomputation
under activation checkpointing is not counted (MFU, not hardware FLOPs utilisation).

`--device cpu --tiny` runs every part end to end at tiny widths in CI-sized time.
Parts whose modules are missing on the machine are reported as skipped, with the module.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCS, ROOT, cpu_model  # noqa: E402

import torch  # noqa: E402

PAPER_CONFIG = ROOT / "resources" / "configs" / "mama-b14.yaml"
REFERENCE_CONFIG = ROOT / "resources" / "configs" / "mama-b14-reference.yaml"
# bf16 dense tensor-core peaks (TFLOPS, no sparsity) from the vendors' data sheets.
PEAK_BF16_TFLOPS = [
    ("H200", 989.0), ("H100 SXM", 989.0), ("H100 80GB HBM3", 989.0), ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0), ("H100", 756.0), ("GH200", 989.0), ("B200", 2250.0),
    ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A6000", 155.0),
    ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0),
]
BATCH_LADDER = (36, 32, 24, 16, 12, 8, 6, 4, 2, 1)


@dataclass
class Shapes:
    """The run's shapes: the paper's, or tiny ones for a CPU smoke run."""

    gpt2: tuple[int, int, int, int]  # width, layers, heads, vocabulary
    overrides: list[str]
    batch: int
    steps: int
    label: str


def paper_shapes(batch: int, steps: int) -> Shapes:
    return Shapes((2560, 32, 20, 28_896), [], batch, steps, "paper shapes (ViT-B/14 reg4 at 518 px, BioMedLM-shaped GPT-2)")


def tiny_shapes() -> Shapes:
    sets = ["model.vision.hidden_size=32", "model.vision.num_heads=2", "model.vision.num_layers=2",
            "image_size=56", "model.embed_dim=16", "model.local_hidden=24", "model.text.max_length=64"]
    return Shapes((32, 2, 2, 2000), sets, 4, 1, "tiny shapes (32-wide ViT at 56 px, 32-wide 2-layer GPT-2)")


# --------------------------------------------------------------------------- environment


def environment(device: torch.device) -> dict:
    info = {"date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "host_cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "device": str(device), "device_name": None, "driver": None,
            "device_memory_gib": None}
    for name in ("transformers", "peft", "safetensors", "tokenizers"):
        with contextlib.suppress(Exception):
            info[name] = __import__(name).__version__
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, device_memory_gib=round(props.total_memory / 2**30, 1))
        info["driver"] = _driver_version()
    else:
        info["device_name"] = cpu_model()
    return info


def _driver_version() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def peak_tflops(device_name: str | None, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS:
        if device_name and key.lower() in device_name.lower():
            return value
    return None


# --------------------------------------------------------------------------- random text model


def write_text_model(folder: Path, gpt2: tuple[int, int, int, int]) -> Path:
    """A random GPT-2 folder of the given (width, layers, heads, vocabulary) with a tokenizer."""
    from mama_core.model.shapes import GPT2Shape, write_random_gpt2

    width, layers, heads, vocab = gpt2
    return write_random_gpt2(folder, GPT2Shape(n_embd=width, n_layer=layers, n_head=heads, vocab_size=vocab))


# --------------------------------------------------------------------------- FLOPs


def flops_per_pair(model_cfg, text_dir: Path, captions: list[str]) -> dict:
    """Model FLOPs of one training pair (both views + the caption), from the shapes alone:
    the ViT's config, the GPT-2 folder's config.json and the padded caption length."""
    v = model_cfg.vision
    v_tokens = (v.image_size // v.patch_size) ** 2 + 1 + (v.num_register_tokens if v.registers else 0)
    d = v.hidden_size
    v_params = v.num_layers * (4 * d * d + 2 * int(v.mlp_ratio * d) * d) + 3 * v.patch_size**2 * d
    hf = json.loads((text_dir / "config.json").read_text())
    t_width, t_layers = hf.get("n_embd", hf.get("hidden_size")), hf.get("n_layer", hf.get("num_hidden_layers"))
    t_frozen = 12 * t_layers * t_width * t_width  # attention 4 d^2 + MLP 8 d^2 per block
    t_lora = t_layers * model_cfg.text.lora_r * (t_width + 3 * t_width) if model_cfg.text.lora else 0  # c_attn A, B
    tokens = (model_cfg.text.max_length if getattr(model_cfg.text, "tokenization", "") == "released"  # padded
              else caption_tokens(text_dir, captions, model_cfg.text.max_length))
    # Vision trained from random init: 6 N T + attention x3, per view, two views per pair.
    vision_f = 2 * (6 * v_params * v_tokens + 3 * 4 * v.num_layers * v_tokens**2 * d)
    # Frozen text base the backward goes through to reach the LoRA adapters: 4 N T.
    text_f = 4 * t_frozen * tokens + 6 * t_lora * tokens + 3 * 4 * t_layers * tokens**2 * t_width
    return {"per_pair": vision_f + text_f, "vision": vision_f, "text": text_f, "vision_tokens": v_tokens,
            "caption_tokens": tokens, "vision_params": v_params, "text_frozen_params": t_frozen,
            "text_lora_params": t_lora}


def caption_tokens(text_dir: Path, captions: list[str], max_length: int) -> int:
    """Padded caption length of the batch: the longest caption's tokens plus one separator per
    sentence and the end token, capped at max_length (within a token or two of the model's)."""
    from transformers import AutoTokenizer

    from mama_core.model.text import split_caption

    tok = AutoTokenizer.from_pretrained(text_dir, local_files_only=True)
    longest = max(len(tok(c)["input_ids"]) + len(split_caption(c)) + 1 for c in captions)
    return min(longest, max_length)


# --------------------------------------------------------------------------- train step


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _config(shapes: Shapes, text_dir: Path, batch: int, reference: bool = False):
    """(config, extra overrides) at `shapes` with the full objective (local term on).

    Ours: mama-b14.yaml plus the paper-run settings of benchmarks/train_step.py
    (PAPER_OVERRIDES: bf16, checkpointing) when this tree has them. The baseline: the
    released recipe, mama-b14-reference.yaml, as it is (its own precision, no checkpointing)."""
    import train_step

    from mama_core.errors import ConfigError
    from mama_core.training import load_config

    base = [f"model.text.path={text_dir}", f"batch_size={batch}", "loss.delta_steps=0"] + shapes.overrides
    if reference:
        return load_config(REFERENCE_CONFIG, base), []
    extra = [s for s in getattr(train_step, "PAPER_OVERRIDES", []) if s.split("=")[0] != "loss.delta_steps"]
    try:
        return load_config(PAPER_CONFIG, base + extra), extra
    except ConfigError:
        return load_config(PAPER_CONFIG, base), []


def _try_case(cfg, device: torch.device, steps: int, baseline: bool) -> dict:
    """One case of benchmarks/train_step.py; out-of-memory comes back as {"error": ...}."""
    import train_step

    try:
        return train_step.run_case(cfg, device, steps, baseline, None, None)
    except Exception as exc:  # noqa: BLE001 — OOM is expected; anything else is raised
        if not _is_oom(exc):
            raise
        return {"error": f"out of memory at batch {cfg.batch_size}"}
    finally:
        _free(device)


def train_part(shapes: Shapes, text_dir: Path, device: torch.device, peak: float | None, budget: Budget) -> dict:
    """The baseline at the largest batch that fits; ours at that batch (paper config, then the
    reference config with our runtime: isolates the runtime), and at the requested batch."""
    import train_step

    out: dict = {"attempts": []}
    baseline, batch = None, None
    for b in [b for b in BATCH_LADDER if b <= shapes.batch] or [shapes.batch]:
        if budget.left() < 60 and out["attempts"]:
            break
        case = _try_case(_config(shapes, text_dir, b, reference=True)[0], device, shapes.steps, True)
        out["attempts"].append({"batch": b, "baseline": case.get("error", "ok")})
        if "error" not in case:
            baseline, batch = case, b
            break
    if baseline is None:
        out["error"] = "the baseline does not fit even at batch 1" if out["attempts"] else "no time left"
        return out
    cfg, out["overrides"] = _config(shapes, text_dir, batch)
    ref_cfg = _config(shapes, text_dir, batch, reference=True)[0]
    out.update(batch=batch, baseline=baseline, ours=_try_case(cfg, device, shapes.steps, False))
    if "error" in out["ours"]:
        return out
    out["speedup"] = baseline["step_time_s"] / out["ours"]["step_time_s"]
    if budget.left() > 120:
        out["ours_reference_config"] = _try_case(ref_cfg, device, shapes.steps, False)
    if batch != shapes.batch and budget.left() > 90:
        out["ours_full_batch"] = _try_case(_config(shapes, text_dir, shapes.batch)[0], device, shapes.steps, False)
    captions = train_step._captions(batch)
    flops = {"ours": flops_per_pair(cfg.model_config(), text_dir, captions),
             "reference": flops_per_pair(ref_cfg.model_config(), text_dir, captions)}
    out["flops"] = flops
    for key, which in (("ours", "ours"), ("baseline", "reference"), ("ours_reference_config", "reference"),
                       ("ours_full_batch", "ours")):
        case = out.get(key)
        if case and "images_per_s" in case:
            case["tflops_per_s"] = case["images_per_s"] * flops[which]["per_pair"] / 1e12
            case["mfu"] = case["tflops_per_s"] / peak if peak else None
    return out


# --------------------------------------------------------------------------- inference


def inference_part(shapes: Shapes, text_dir: Path, device: torch.device, rows: int, tmp: Path, budget: Budget) -> dict:
    from mama_core.dicom import find_studies
    from mama_core.inference import Predictor
    from mama_core.model import build_model
    from mama_core.model.io import save_model_dir
    from mama_core.synthetic import generate_studies

    cfg, _ = _config(shapes, text_dir, 1)
    torch.manual_seed(0)
    model_dir = save_model_dir(build_model(cfg.model_config()), tmp / "model")
    generate_studies(tmp / "studies", 2, seed=3, rows=rows)
    # Other studies for the index, so that none of its images is in the predictor's cache.
    generate_studies(tmp / "index-studies", 2 if shapes.batch <= 4 else 4, seed=4, rows=rows)
    studies = find_studies(tmp / "studies")
    os.environ["MAMA_DATA_DIR"] = str(tmp / "data")  # the index lands here
    p = Predictor.load(model_dir, device=str(device))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    warm = studies[0]
    p.predict(warm)
    p.similarity_maps(warm, ["Warm-up sentence."])
    sync()
    t = time.perf_counter()
    p.predict(studies[1])
    sync()
    first = time.perf_counter() - t
    times = []
    for i in range(10 if budget.left() > 60 else 3):
        t = time.perf_counter()
        p.similarity_maps(warm, [f"There is a mass number {i} in the upper outer quadrant."])
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    out = {"first_prediction_ms": first * 1000, "new_sentence_median_ms": times[len(times) // 2] * 1000,
           "new_sentence_max_ms": times[-1] * 1000, "sentences": len(times), "rows": rows,
           "image_size": p.image_size}
    out.update(_part(index_part, tmp / "index-studies", p))
    return out


def index_part(studies: Path, predictor) -> dict:
    """images/s of `build_index` over studies the predictor has not seen: decode + forward."""
    from mama_core.search import build_index

    t = time.perf_counter()
    last = None
    for last in build_index(studies, predictor, name="gpu-suite"):
        pass
    index_s = time.perf_counter() - t
    encoded = last.encoded if last else 0
    return {"index_images": encoded, "index_images_per_s": encoded / index_s if index_s else None}


# --------------------------------------------------------------------------- report


def _fmt(v, spec: str = ".2f", none: str = "n/a") -> str:
    return none if v is None else format(v, spec)


def _flop(n: float) -> str:
    return f"{n / 1e12:.3f} TFLOP" if n >= 1e11 else f"{n / 1e9:.3g} GFLOP"


def markdown(r: dict) -> str:
    env = r["environment"]
    lines = [f"Command: `{r['command']}` ({r['shapes']}; {r['wall_s']:.0f} s). Device: {env['device_name']} "
             f"({env.get('device_memory_gib') or '-'} GiB), driver {env['driver'] or 'n/a'}, torch {env['torch']}, "
             f"CUDA {env['cuda'] or 'none'}, transformers {env.get('transformers', '?')}, peft {env.get('peft', '?')}; "
             f"host {env['host_cpu']}, {env['cpu_count']} CPUs. bf16 dense peak used for MFU: "
             f"{_fmt(r['peak_tflops'], '.0f')} TFLOPS.", ""]
    t = r.get("train", {})
    if "speedup" in t:
        ours, ref = t["flops"]["ours"], t["flops"]["reference"]
        lines += [f"Train step, the full objective (local term on): ours = mama-b14.yaml"
                  f"{' with ' + ', '.join(t['overrides']) if t['overrides'] else ''} through the trainer's runtime; "
                  f"baseline = mama-b14-reference.yaml run as the released code runs (eager attention returning "
                  f"attention maps, anomaly detection, pure bf16). Batch {t['batch']} per device"
                  + (f" (the largest from {r['batch_requested']} that fits the baseline; tries: "
                     + ", ".join(f"{a['batch']}: {a['baseline']}" for a in t["attempts"]) + ")"
                     if t["batch"] != r["batch_requested"] else "")
                  + f"; median of {r['steps']} timed step(s) after a warm-up step. Model FLOPs per pair: ours "
                  f"{_flop(ours['per_pair'])} (vision {_flop(ours['vision'])}, text {_flop(ours['text'])} at "
                  f"{ours['caption_tokens']} caption tokens), reference config {_flop(ref['per_pair'])} "
                  f"({ref['caption_tokens']} caption tokens, padded); {ours['vision_tokens']} ViT tokens per view.", "",
                  "| case | batch | s/step | pairs/s | peak memory | TFLOP/s | MFU |", "|---|---|---|---|---|---|---|"]
        rows = (("ours", "ours (paper config)", t["batch"]), ("baseline", "reference-style baseline", t["batch"]),
                ("ours_reference_config", "ours on the reference config (runtime only)", t["batch"]),
                ("ours_full_batch", "ours (paper config)", r["batch_requested"]))
        for key, label, bsz in rows:
            c = t.get(key)
            if not c:
                continue
            if "error" in c:
                lines.append(f"| {label} | {bsz} | {c['error']} | | | | |")
                continue
            lines.append(f"| {label} | {bsz} | {c['step_time_s']:.3f} | {c['images_per_s']:.2f} | "
                         f"{c['peak_memory_mb'] / 1024:.1f} GiB | {_fmt(c.get('tflops_per_s'), '.1f')} | "
                         f"{_fmt(c.get('mfu') and 100 * c['mfu'], '.1f')}{' %' if c.get('mfu') else ''} |")
        lines += ["", f"Ratio (baseline step time / ours, same batch): **{t['speedup']:.2f}x**"
                  + (f"; of which the runtime alone (both on the reference config): "
                     f"{t['baseline']['step_time_s'] / t['ours_reference_config']['step_time_s']:.2f}x"
                     if "step_time_s" in t.get("ours_reference_config", {}) else "") + ".", ""]
    else:
        lines += [f"Train step: {t.get('error') or t.get('skipped') or (t.get('ours') or {}).get('error') or 'not run'}.", ""]
    i = r.get("inference", {})
    if "first_prediction_ms" in i:
        lines += [f"Inference at the same shapes ({i['image_size']} px input, synthetic {i['rows']}-row DICOMs):", "",
                  "| measure | value |", "|---|---|",
                  f"| unseen study -> predictions (4 decodes + forwards) | {i['first_prediction_ms']:.0f} ms |",
                  f"| new sentence -> 4 maps, median of {i['sentences']} (max) | {i['new_sentence_median_ms']:.1f} ms "
                  f"({i['new_sentence_max_ms']:.1f}) |",
                  (f"| index build | {_fmt(i['index_images_per_s'])} images/s ({i['index_images']} images) |"
                   if "index_images" in i else f"| index build | {i.get('skipped') or i.get('error')} |"), ""]
    else:
        lines += [f"Inference: {i.get('error') or i.get('skipped') or 'not run'}.", ""]
    lines.append("MFU method: " + MFU_METHOD)
    return "\n".join(lines)


MFU_METHOD = ("model FLOPs per pair from the shapes: 6 N T for trainable matrices, 4 N T for the frozen "
              "LoRA-adapted text base (forward + input gradients), 2 N T for forward-only weights "
              "(embedding tables excluded), plus 4 L T^2 d attention per forward (x3 when trained); "
              "both views and the caption; heads, losses and checkpointing recomputation not counted.")


def _write_text(text_dir: Path, shapes: Shapes) -> dict:
    text_dir.mkdir(parents=True, exist_ok=True)
    write_text_model(text_dir, shapes.gpt2)
    return {}


def _part(fn, *args) -> dict:
    """Run one part; a missing module or an error is reported, not raised."""
    try:
        return fn(*args)
    except ModuleNotFoundError as exc:
        return {"skipped": f"needs the Python module {exc.name!r} (carry its wheel: see gpu_suite.sh)"}
    except Exception as exc:  # noqa: BLE001 — the suite reports every part it can
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto | cuda | cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny widths: an end-to-end check, not a measurement")
    ap.add_argument("--batch-size", type=int, default=36)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per case (after one warm-up step)")
    ap.add_argument("--rows", type=int, default=2048, help="rows of the synthetic DICOMs for inference")
    ap.add_argument("--budget-s", type=float, default=420, help="stop starting new parts after this")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's bf16 dense peak, if not in the table")
    ap.add_argument("--text-dir", default=None, help="reuse (or keep) the random GPT-2 folder here")
    ap.add_argument("--skip-inference", action="store_true")
    ap.add_argument("--no-docs", action="store_true", help="do not append to docs/benchmarks.md")
    ap.add_argument("--json", action="store_true", help="also print the result as one JSON line at the end")
    args = ap.parse_args(argv)
    start = time.monotonic()
    budget = Budget(args.budget_s)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_suite: no CUDA device visible to torch", file=sys.stderr)
        return 2
    shapes = tiny_shapes() if args.tiny else paper_shapes(args.batch_size, args.steps)
    env = environment(device)
    result = {"command": "bash benchmarks/gpu_suite.sh " + " ".join(argv if argv is not None else sys.argv[1:]),
              "shapes": shapes.label, "environment": env, "batch_requested": shapes.batch, "steps": shapes.steps,
              "peak_tflops": peak_tflops(env["device_name"], args.peak_tflops) if device.type == "cuda" else None,
              "mfu_method": MFU_METHOD}
    print(f"gpu_suite: {env['device_name']} driver {env['driver']} torch {env['torch']} CUDA {env['cuda']}; {shapes.label}",
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="mama-gpu-suite-") as tmp:
        text_dir = Path(args.text_dir) if args.text_dir else Path(tmp) / "gpt2"
        t = time.perf_counter()
        written = {} if (text_dir / "config.json").is_file() else _part(_write_text, text_dir, shapes)
        result["text_model_write_s"] = time.perf_counter() - t
        if written:  # skipped or failed: nothing else can run
            result["train"] = result["inference"] = written
        else:
            result["train"] = _part(train_part, shapes, text_dir, device, result["peak_tflops"], budget)
        # Early, in case the machine's time runs out during inference.
        print("gpu_suite train: " + json.dumps(result["train"], default=str), file=sys.stderr, flush=True)
        if "inference" in result:
            pass
        elif args.skip_inference:
            result["inference"] = {"skipped": "--skip-inference"}
        elif budget.left() < 30:
            result["inference"] = {"skipped": "time budget spent"}
        else:
            rows = 256 if args.tiny else args.rows
            result["inference"] = _part(inference_part, shapes, text_dir, device, rows, Path(tmp), budget)
    result["wall_s"] = time.monotonic() - start
    text = markdown(result)
    print(text)
    if not args.no_docs:
        title = f"GPU suite: {env['device_name']}, {env['date']}"
        with open(DOCS, "a", encoding="utf-8") as fh:
            fh.write(f"\n## {title}\n\n{text}\n")
    if args.json:
        print(json.dumps(result, default=str))
    ok = "speedup" in result["train"] and ("first_prediction_ms" in result["inference"] or args.skip_inference)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
