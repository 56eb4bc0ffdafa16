"""`mama eval DATA`: the paper's evaluation (Tables 1-3) on local data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mama_core.commands._output import print_json

NAME = "eval"
HELP = "evaluate a model like the paper's Tables 1-3 (zero-shot, linear probe, fine-tuning)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="EMBED folder (metadata.csv + clinical.csv), RSNA train.csv, generic CSV or DICOM folder")
    parser.add_argument("--labels", default=None, help="labels CSV for a plain DICOM folder")
    parser.add_argument("--task", nargs="+", default=["birads", "density"], choices=["birads", "density", "cancer"])
    parser.add_argument("--mode", default="zero-shot", choices=["zero-shot", "linear-probe", "finetune"])
    parser.add_argument("--fraction", type=float, default=1.0, choices=[0.01, 0.1, 1.0],
                        help="share of the training split (linear probe / fine-tuning)")
    parser.add_argument("--model", default="active", help="'demo', 'active' (default) or a model directory")
    parser.add_argument("--device", default=None)
    parser.add_argument("--with-metadata", action="store_true", help="zero-shot prompts prefixed with each image's metadata")
    parser.add_argument("--steps", type=int, default=None, help="training steps (probe default 1000, finetune 200)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for 95 %% CIs (0 = none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write results JSON here")
    parser.add_argument("--markdown", default=None, help="write the markdown table here")


def _config(args):
    from mama_core.evaluation import EvalConfig
    from mama_core.evaluation.finetune import FinetuneConfig
    from mama_core.evaluation.linear_probe import ProbeConfig

    probe = ProbeConfig(steps=args.steps) if args.steps else ProbeConfig()
    ft = FinetuneConfig(steps=args.steps) if args.steps else FinetuneConfig()
    return EvalConfig(tasks=list(args.task), mode=args.mode, fraction=args.fraction, seed=args.seed,
                      n_boot=args.boot, with_metadata=args.with_metadata, probe=probe, finetune=ft)


def run(args: argparse.Namespace) -> int:
    from mama_core.evaluation import evaluate, load_eval_records, markdown_table
    from mama_core.inference import Predictor

    cfg = _config(args)
    predictor = Predictor.load(args.model, device=args.device)
    results = evaluate(predictor, load_eval_records(args.data, args.labels), cfg)
    table = markdown_table(results, predictor.name)
    doc = {"data": str(args.data), "results": results, "markdown": table}
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        print_json(doc)
    else:
        print(table)
    return 0
