"""Study-open benchmark: decode + preprocess of a four-view synthetic study at the default size.

What opening a case costs before any model runs: `read_image` (DICOM decode, Modality/VOI
LUT, orientation; docs/method.md §2) and `resize_to_square` + `normalise` to the model input, for
the four views. Cold = the first time in the process (module and decoder set-up included,
files just written so the OS cache is warm: this is not a cold-disk figure); warm = the
median of --repeats later opens of the same study.

    python benchmarks/study_open.py [--rows 2048] [--size 518] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

TITLE = "Study open"


def open_study(study, size: int) -> float:
    """Decode and preprocess every view of `study`; seconds."""
    from mama_core.dicom import read_image
    from mama_core.preprocess import normalise, resize_to_square

    t = time.perf_counter()
    for path in study.images.values():
        x, _box = resize_to_square(read_image(path).pixels, size)
        normalise(x)
    return time.perf_counter() - t


def measure(rows: int, size: int, repeats: int, tmp: Path) -> dict:
    from mama_core.dicom import find_studies
    from mama_core.synthetic import generate_studies

    generate_studies(tmp / "studies", 1, seed=3, rows=rows)
    study = find_studies(tmp / "studies")[0]
    cold = open_study(study, size)
    warm = [open_study(study, size) for _ in range(repeats)]
    from mama_core.dicom import read_image

    shape = read_image(next(iter(study.images.values()))).pixels.shape
    return {"rows": rows, "native_shape": list(shape), "size": size, "views": len(study.images),
            "cold_s": cold, "warm_median_s": statistics.median(warm), "repeats": repeats}


def markdown(r: dict) -> str:
    return "\n".join([
        f"`python benchmarks/study_open.py --rows {r['rows']} --size {r['size']} --repeats {r['repeats']}` — "
        f"DICOM decode + preprocess of a {r['views']}-view synthetic study "
        f"({r['native_shape'][0]}x{r['native_shape'][1]} native, {r['size']} px model input), no model.", "",
        table([("cold (first open in the process)", f"{r['cold_s'] * 1000:.0f} ms"),
               (f"warm (median of {r['repeats']})", f"{r['warm_median_s'] * 1000:.0f} ms"),
               ("warm, per view", f"{r['warm_median_s'] * 1000 / r['views']:.0f} ms")]), ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2048, help="rows of the synthetic images (generator default)")
    ap.add_argument("--size", type=int, default=518, help="model input size (paper: 518)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args.rows, args.size, args.repeats, Path(tmp))
    print(json.dumps(r) if args.json else markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
