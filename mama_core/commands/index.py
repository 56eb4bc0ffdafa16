"""`mama index FOLDER`: build or update a text-search index over the studies in a folder."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json
from mama_core.commands._progress import JobProgress

NAME = "index"
HELP = "index the studies in a folder for `mama search` (incremental: only new or changed files are encoded)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="folder of DICOM studies")
    parser.add_argument("--name", default=None, help="index name (default: the folder's name)")
    parser.add_argument("--model", default="active", help="'demo', 'active' (default) or a model directory")
    parser.add_argument("--device", default=None)
    parser.add_argument("--rebuild", action="store_true", help="discard the index and encode everything again")


def run(args: argparse.Namespace) -> int:
    from mama_core.inference import Predictor, build_index

    predictor = Predictor.load(args.model, device=args.device)
    last = None
    with JobProgress("indexing", unit="files", enabled=not args.json) as bar:
        for report in build_index(args.folder, predictor, name=args.name, rebuild=args.rebuild):
            last = report
            if args.json:
                print_json(report.to_json())
            elif not report.finished:
                bar.update(report.done, report.total, info=f"{report.encoded} encoded")
    if not args.json:
        print(f"indexed {last.total} files: {last.encoded} encoded, {last.total - last.encoded} unchanged, "
              f"{last.removed} removed")
    return 0
