"""`mama export RUN_DIR OUT_DIR`: a model directory from a run's latest checkpoint."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json

NAME = "export"
HELP = "export a training run's latest (or a chosen) checkpoint as a self-contained model directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the --out folder of `mama train`")
    parser.add_argument("out_dir", help="where to write the model directory")
    parser.add_argument("--checkpoint", default=None, help="a checkpoint folder (default: the latest)")


def run(args: argparse.Namespace) -> int:
    from mama_core.training import export_run

    target = export_run(args.run_dir, args.out_dir, args.checkpoint)
    if args.json:
        print_json({"model_dir": str(target)})
    else:
        print(f"model written to {target}")
    return 0
