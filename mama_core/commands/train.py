"""`mama train --config FILE --data PATH --out DIR`: pre-train MaMA (docs/training.md).

Under torchrun every process runs this command; only rank 0 prints. With --json each
report is one JSON line and the last line is the final {"step", "loss", ...}.
"""

from __future__ import annotations

import argparse
import os

from mama_core.commands._output import print_json
from mama_core.commands._progress import JobProgress

NAME = "train"
HELP = "pre-train a MaMA model on local data (one GPU, several, or several machines via torchrun)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training config YAML (see resources/configs/)")
    parser.add_argument("--data", required=True, help="EMBED folder, RSNA train.csv, generic CSV or DICOM folder")
    parser.add_argument("--out", required=True, help="run folder: config, metrics.csv, checkpoints/, model/")
    parser.add_argument("--max-steps", type=int, default=None, help="override optim.max_steps")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optim.lr=1e-4 (repeatable)")


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = [] if args.max_steps is None else [f"optim.max_steps={args.max_steps}"]
    return list(args.overrides) + extra


def _line(report) -> str:
    parts = [f"step {report.step}/{report.max_steps}", f"loss {report.loss:.4f}"]
    parts += [f"{k.removesuffix('_loss')} {v:.4f}" for k, v in report.losses.items()]
    parts += [f"lr {report.lr:.2e}", f"{report.images_per_s:.1f} pairs/s", f"ETA {report.eta_s / 60:.1f} min"]
    if report.val_loss is not None:
        parts.append(f"val {report.val_loss:.4f}")
    if report.checkpoint:
        parts.append(f"saved {report.checkpoint}")
    return "  ".join(parts)


def _final(report) -> dict:
    return {"step": report.step, "loss": report.loss, "val_loss": report.val_loss,
            "model_dir": report.model_dir, "checkpoint": report.checkpoint, "cancelled": report.cancelled}


def warm_with_progress(config, records: list, show: bool) -> None:
    """Decode this rank's share of the images into the training cache, with progress; the
    trainer's own cache pass then finds every entry present (see training.cache)."""
    from pathlib import Path

    from mama_core.training import warm_cache
    from mama_core.training.cache import default_cache_dir

    data = config.data
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    share = records[rank::world]
    root = Path(data.cache_dir) if data.cache_dir else default_cache_dir()
    size = config.model_config().vision.image_size
    failed = 0
    with JobProgress("caching images", len(share), "images", enabled=show) as bar:
        for progress in warm_cache(share, size, data.cache_workers, root, data.cache_dtype):
            failed += progress.error is not None
            bar.update(progress.done, progress.total, info=f"{failed} unreadable" if failed else "")


def run(args: argparse.Namespace) -> int:
    from mama_core.data import load_records
    from mama_core.training import load_config, train

    config = load_config(args.config, _overrides(args))
    records = load_records(args.data)
    main = int(os.environ.get("RANK", "0")) == 0
    warm_with_progress(config, records, show=main and not args.json)
    last = None
    for report in train(config, records, args.out, resume=args.resume):
        last = report
        if not main:
            continue
        if args.json:
            print_json({"event": "step", **report.to_json()})
        else:
            print(_line(report), flush=True)
    if main and last is not None:
        if args.json:
            print_json(_final(last))
        else:
            _print_final(last, args.out)
    return 0


def _print_final(report, out: str) -> None:
    from mama_core.commands._output import print_summary

    state = "cancelled" if report.cancelled else ("finished" if report.model_dir else "ended")
    print_summary(f"training {state} at step {report.step}/{report.max_steps}", {
        "loss": f"{report.loss:.4f}", "val loss": None if report.val_loss is None else f"{report.val_loss:.4f}",
        "model": report.model_dir, "checkpoint": report.checkpoint or None,
        "metrics": os.path.join(out, "metrics.csv"),
        "TensorBoard": f"tensorboard --logdir {os.path.join(out, 'tensorboard')}"})
