"""Query-latency benchmark for the reading workflow (issue: live sentence maps).

Measures, on one machine:
  - model load: `Predictor.load` wall time;
  - first prediction: `predict(study)` for a study the predictor has never seen, DICOM
    decoding of its four views included (the cost when a radiologist opens a case);
  - new sentence: `similarity_maps(study, [sentence])` for a study already seen, one new
    sentence each time (text forward + matrix product + upsampling to native pixels, for
    all four views): median and p95 over --sentences distinct sentences.

    python benchmarks/query_latency.py --model demo --json
    python benchmarks/query_latency.py --model random --rows 2048   # random-init, demo architecture

`--model random` (also used when the demo model is not built) times a random-init model
with the demo config's architecture; results are labelled so.  `--write-docs` replaces the
"## Query latency" section of docs/benchmarks.md and leaves every other section alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from mama_core.errors import ModelError  # noqa: E402
from mama_core.paths import resources_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Query latency"
FINDINGS = ["mass", "calcifications", "architectural distortion", "asymmetry", "spiculated mass",
            "round mass", "amorphous calcifications", "skin thickening", "lymph node", "dense tissue"]
PLACES = ["in the upper outer quadrant", "near the nipple", "in the axillary tail", "in the lower inner quadrant",
          "behind the nipple"]


def sentences(n: int) -> list[str]:
    """n distinct sentences (so every query misses the text cache)."""
    out = [f"There is a {f} {p}." for f in FINDINGS for p in PLACES]
    out += [f"Finding {i}: a {FINDINGS[i % len(FINDINGS)]} is seen." for i in range(max(0, n - len(out)))]
    return out[:n]


def random_model_dir(tmp: Path) -> Path:
    """A random-init model with the demo config's architecture."""
    import yaml

    from mama_core.model.config import ModelConfig
    from mama_core.model.io import save_model_dir
    from mama_core.model.mama import build_model

    data = yaml.safe_load((resources_dir() / "configs" / "demo.yaml").read_text())["model"]
    torch.manual_seed(0)
    return save_model_dir(build_model(ModelConfig.from_dict(data)), tmp / "random-init")


def resolve(model: str, tmp: Path) -> tuple[str, str]:
    """(name or path for Predictor.load, label for the report)."""
    if model == "random":
        return str(random_model_dir(tmp)), "random-init (demo architecture)"
    if model == "demo" and not (resources_dir() / "models" / "demo" / "config.json").exists():
        print("demo model not built: timing a random-init model with the demo architecture", file=sys.stderr)
        return str(random_model_dir(tmp)), "random-init (demo architecture; demo not built)"
    return model, model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model: str, device: str | None, n_sentences: int, rows: int, tmp: Path) -> dict:
    from mama_core.dicom import find_studies
    from mama_core.inference import Predictor
    from mama_core.synthetic import generate_studies

    target, label = resolve(model, tmp)
    generate_studies(tmp / "studies", 2, seed=0, rows=rows)
    warm, fresh = find_studies(tmp / "studies")
    t = time.perf_counter()
    p = Predictor.load(target, device=device)
    load_s = time.perf_counter() - t
    p.predict(warm)  # warm-up: first forwards, prompt embeddings
    p.similarity_maps(warm, ["Warm-up sentence."])
    _sync(p.device)
    t = time.perf_counter()
    p.predict(fresh)
    _sync(p.device)
    first_s = time.perf_counter() - t
    times = []
    for s in sentences(n_sentences):
        t = time.perf_counter()
        p.similarity_maps(warm, [s])
        _sync(p.device)
        times.append(time.perf_counter() - t)
    times.sort()
    return {
        "model": label, "device": str(p.device), "device_name": _device_name(p.device), "rows": rows,
        "native_shape": list(p.image_features(warm.images["LCC"]).letterbox.native_shape),
        "image_size": p.image_size, "views": len(warm.images), "load_s": load_s,
        "first_prediction_s": first_s, "sentences": len(times),
        "new_sentence_median_ms": statistics.median(times) * 1000,
        "new_sentence_p95_ms": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))] * 1000,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "platform": platform.platform(),
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def markdown(r: dict) -> str:
    return "\n".join([
        SECTION, "",
        "`python benchmarks/query_latency.py` — a new sentence to four similarity maps for a study",
        "already seen (image features cached), and the first prediction for a study never seen",
        "(four DICOM decodes + four vision forwards + zero-shot heads).", "",
        f"Model: {r['model']}; device: {r['device']} ({r['device_name']}, {r['threads']} threads); "
        f"torch {r['torch']}; images {r['native_shape'][0]}x{r['native_shape'][1]} native, "
        f"{r['image_size']} px model input.", "",
        "| measure | value |", "|---|---|",
        f"| model load | {r['load_s']:.2f} s |",
        f"| first prediction, unseen study (decode included) | {r['first_prediction_s'] * 1000:.0f} ms |",
        f"| new sentence -> 4 maps, median over {r['sentences']} | {r['new_sentence_median_ms']:.1f} ms |",
        f"| new sentence -> 4 maps, p95 | {r['new_sentence_p95_ms']:.1f} ms |", "",
    ] + ([r["note"], ""] if r.get("note") else []))


def write_docs(section: str, path: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace our section (or append it), keeping every other section as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="demo", help="'demo', 'active', 'random' or a model directory")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when available)")
    ap.add_argument("--sentences", type=int, default=50)
    ap.add_argument("--rows", type=int, default=2048, help="rows of the synthetic test images")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--note", default="", help="free text added under the table (e.g. machine load)")
    ap.add_argument("--write-docs", action="store_true", help="update the Query latency section of docs/benchmarks.md")
    args = ap.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = measure(args.model, args.device, args.sentences, args.rows, Path(tmp))
        result["note"] = args.note
    except ModelError as exc:
        print(f"query_latency: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else markdown(result))
    if args.write_docs:
        write_docs(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
