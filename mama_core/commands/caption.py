"""`mama caption CSV`: print the structured caption of table rows (to check templates)."""

from __future__ import annotations

import argparse
import random

from mama_core.commands._output import print_json

NAME = "caption"
HELP = "print the structured caption built from a data source (EMBED folder/tables, RSNA or generic CSV)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="an EMBED-style folder, RSNA train.csv or generic CSV")
    parser.add_argument("--row", type=int, default=0, help="which image record (default 0)")
    parser.add_argument("--count", type=int, default=1, help="how many records from --row on")
    parser.add_argument("--mask", type=float, default=0.0, help="meta-information masking probability (training uses 0.8)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from mama_core.captions import build_caption, split_sentences
    from mama_core.data import load_records

    records = load_records(args.data)
    rng = random.Random(args.seed)
    for record in records[args.row: args.row + args.count]:
        caption = build_caption(record.meta, mask_prob=args.mask, rng=rng)
        if args.json:
            print_json({"path": str(record.path), "caption": caption, "sentences": split_sentences(caption)})
        else:
            print(f"# {record.path}\n{caption}\n")
    return 0
