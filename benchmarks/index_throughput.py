"""Index-throughput benchmark: images/s of `build_index` over N synthetic four-view studies.

A first build encodes every image (decode + preprocess + one vision forward each, with a
fresh Predictor so nothing is cached); a second build over the unchanged folder measures the
incremental check (file identity, nothing re-encoded). The index goes to a temporary
MAMA_DATA_DIR.

    python benchmarks/index_throughput.py [--studies 8] [--rows 1024] [--model demo] [--device auto] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, resolve_model, table  # noqa: E402

TITLE = "Index throughput"


def run_index(folder: Path, predictor) -> tuple[float, int]:
    """(seconds, files encoded) of one build_index run to the end."""
    from mama_core.search import build_index

    t = time.perf_counter()
    last = None
    for last in build_index(folder, predictor, name="bench"):
        pass
    return time.perf_counter() - t, (last.encoded if last else 0)


def measure(studies: int, rows: int, model: str, device: str, tmp: Path) -> dict:
    from mama_core.inference import Predictor
    from mama_core.synthetic import generate_studies

    os.environ["MAMA_DATA_DIR"] = str(tmp / "data")  # the index lands here, not in the user's folder
    target, label = resolve_model(model, tmp)
    summary = generate_studies(tmp / "studies", studies, seed=11, rows=rows)
    predictor = Predictor.load(target, device=device)
    first_s, encoded = run_index(tmp / "studies", predictor)
    again_s, again_encoded = run_index(tmp / "studies", predictor)
    return {"model": label, "device": str(predictor.device), "studies": studies, "rows": rows,
            "images": summary.n_images, "image_size": predictor.image_size, "first_s": first_s,
            "encoded": encoded, "images_per_s": encoded / first_s if first_s else 0.0,
            "incremental_s": again_s, "incremental_encoded": again_encoded}


def markdown(r: dict) -> str:
    return "\n".join([
        f"`python benchmarks/index_throughput.py --studies {r['studies']} --rows {r['rows']}` — "
        f"`build_index` over {r['studies']} synthetic studies ({r['images']} images, {r['rows']} rows, "
        f"{r['image_size']} px model input). Model: {r['model']}; device: {r['device']}.", "",
        table([("first build (decode + forward per image)", f"{r['first_s']:.1f} s for {r['encoded']} images"),
               ("throughput", f"{r['images_per_s']:.2f} images/s"),
               ("second build, folder unchanged",
                f"{r['incremental_s'] * 1000:.0f} ms ({r['incremental_encoded']} re-encoded)")]), ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=8)
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--model", default="demo", help="'demo', 'active', 'random' or a model directory")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args.studies, args.rows, args.model, pick_device(args.device), Path(tmp))
    print(json.dumps(r) if args.json else markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
