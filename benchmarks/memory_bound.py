"""Memory-bound benchmark: open many studies in a row through the Predictor; RSS must plateau.

Each study is predicted (four decodes + four vision forwards; features kept in the
Predictor's LRU feature cache, mama_core/inference/cache.py). Without a bound the cache
would grow by every image's patch features; with it, RSS stops growing once the cache is
full. The studies are hard links to a few generated ones under distinct folder names: the
cache keys on the file path, so every one is a miss, as with real distinct studies.

    python benchmarks/memory_bound.py [--studies 50] [--rows 1024] [--model demo] [--json]

Exit status 1 when RSS still grows over the last third of the run by more than --tolerance-mb.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, resolve_model, rss_mb, table  # noqa: E402

TITLE = "Memory bound"


def study_copies(source: Path, n: int, out: Path) -> list[Path]:
    """n study folders of hard links (copies where linking fails) to the studies in `source`."""
    import shutil

    from mama_core.dicom import find_studies

    originals = find_studies(source)
    folders = []
    for i in range(n):
        folder = out / f"study-{i:03d}"
        folder.mkdir(parents=True)
        for key, path in originals[i % len(originals)].images.items():
            try:
                os.link(path, folder / f"{key}.dcm")
            except OSError:
                shutil.copy2(path, folder / f"{key}.dcm")
        folders.append(folder)
    return folders


def measure(studies: int, rows: int, model: str, device: str, tmp: Path) -> dict:
    from mama_core.inference import Predictor
    from mama_core.synthetic import generate_studies

    target, label = resolve_model(model, tmp)
    generate_studies(tmp / "gen", 4, seed=5, rows=rows)
    folders = study_copies(tmp / "gen", studies, tmp / "studies")
    predictor = Predictor.load(target, device=device)
    start = rss_mb()
    trace = []
    for folder in folders:
        predictor.predict(folder)
        gc.collect()
        trace.append(rss_mb())
    third = trace[-max(2, len(trace) // 3):]
    return {"model": label, "device": str(predictor.device), "studies": studies, "rows": rows,
            "cache_items": predictor.cache.max_items, "cached": len(predictor.cache), "rss_start_mb": start,
            "rss_trace_mb": trace, "rss_peak_mb": max(trace), "growth_last_third_mb": max(third) - third[0]}


def markdown(r: dict, tolerance: float) -> str:
    t = r["rss_trace_mb"]
    marks = sorted({0, len(t) // 4, len(t) // 2, 3 * len(t) // 4, len(t) - 1})
    ok = r["growth_last_third_mb"] <= tolerance
    return "\n".join([
        f"`python benchmarks/memory_bound.py --studies {r['studies']} --rows {r['rows']}` — {r['studies']} "
        f"studies predicted in a row ({4 * r['studies']} images); feature cache limit {r['cache_items']} images. "
        f"Model: {r['model']}; device: {r['device']}.", "",
        table([("RSS after loading the model", f"{r['rss_start_mb']:.0f} MB")]
              + [(f"RSS after study {i + 1}", f"{t[i]:.0f} MB") for i in marks]
              + [("growth over the last third", f"{r['growth_last_third_mb']:+.0f} MB "
                                                 f"({'plateau' if ok else 'STILL GROWING'}; tolerance {tolerance:.0f} MB)")]),
        ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=50)
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tolerance-mb", type=float, default=40.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args.studies, args.rows, args.model, pick_device(args.device), Path(tmp))
    r["tolerance_mb"] = args.tolerance_mb
    print(json.dumps(r) if args.json else markdown(r, args.tolerance_mb))
    return 0 if r["growth_last_third_mb"] <= args.tolerance_mb else 1


if __name__ == "__main__":
    sys.exit(main())
