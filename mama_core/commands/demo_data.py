"""`mama demo-data OUT`: write synthetic four-view MG studies with EMBED-style tables."""

from __future__ import annotations

import argparse
import time

from mama_core.commands._output import print_json, print_summary
from mama_core.commands._progress import JobProgress, format_duration

NAME = "demo-data"
HELP = "generate synthetic four-view mammography studies (DICOM + EMBED-style tables + ground truth)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output folder")
    parser.add_argument("--studies", type=int, default=4, help="number of studies (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    parser.add_argument("--rows", type=int, default=2048, help="image height in pixels (default 2048)")


def run(args: argparse.Namespace) -> int:
    from mama_core.synthetic import generate_studies

    start = time.perf_counter()
    with JobProgress("writing synthetic studies", args.studies, "studies", enabled=not args.json) as bar:
        summary = generate_studies(args.out, args.studies, seed=args.seed, rows=args.rows,
                                   progress=lambda done, total: bar.update(done, total))
    seconds = time.perf_counter() - start
    if args.json:
        print_json({"out": str(summary.out_dir), "studies": summary.n_studies, "images": summary.n_images,
                    "seed": args.seed, "seconds": round(seconds, 2),
                    "density_counts": summary.density_counts, "birads_counts": summary.birads_counts})
        return 0
    print_summary(f"wrote {summary.n_studies} synthetic studies ({summary.n_images} images) to {summary.out_dir} "
                  f"in {format_duration(seconds)}", {
                      "metadata": summary.metadata_csv, "clinical": summary.clinical_csv,
                      "ground truth": summary.ground_truth_json,
                      "density (studies)": _counts(summary.density_counts),
                      "BI-RADS (studies)": _counts(summary.birads_counts)})
    return 0


def _counts(counts: dict[int, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())
