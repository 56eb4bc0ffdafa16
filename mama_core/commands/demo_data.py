"""`mama demo-data OUT`: write synthetic four-view MG studies with EMBED-style tables."""

from __future__ import annotations

import argparse
import time

from mama_core.commands._output import print_json

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
    summary = generate_studies(args.out, args.studies, seed=args.seed, rows=args.rows)
    seconds = time.perf_counter() - start
    if args.json:
        print_json({"out": str(args.out), "studies": args.studies, "seed": args.seed, "seconds": round(seconds, 2)})
    else:
        print(f"wrote {args.studies} synthetic studies to {args.out} in {seconds:.1f} s ({summary})")
    return 0
