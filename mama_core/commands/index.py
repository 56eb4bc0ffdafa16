"""`mama index FOLDER`: build or update a text-search index over the studies in a folder.

Under `torchrun --nproc_per_node N -m mama_core.cli index FOLDER ...` every rank encodes a
share of the studies and rank 0 publishes the merged index (docs/inference.md).
"""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json
from mama_core.commands._progress import JobProgress

NAME = "index"
HELP = "index the studies in a folder for `mama search` (incremental: only new or changed files are encoded)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", default=None,
                        help="folder of DICOM studies (with --rebuild --name: default the folder it was built from)")
    parser.add_argument("--name", default=None, help="index name (default: the folder's name)")
    parser.add_argument("--model", default="active", help="'demo', 'active' (default) or a model directory")
    parser.add_argument("--device", default=None)
    parser.add_argument("--rebuild", action="store_true",
                        help="encode everything again (another model, or an index of an older format)")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="processes decoding images while the model encodes (0: decode in the main process)")


def show_progress(report, as_json: bool, bar) -> None:
    """One report: a JSON line, or the progress bar (rate and ETA on a terminal)."""
    if as_json:
        print_json(report.to_json())
    elif not report.finished:
        bar.update(report.done, report.total, info=f"{report.encoded} encoded")


def _folder(args: argparse.Namespace) -> str:
    from mama_core.errors import ConfigError
    from mama_core.search import index_folder

    if args.folder:
        return args.folder
    if args.rebuild and args.name:
        return str(index_folder(args.name))
    raise ConfigError("name the folder to index (or --rebuild --name NAME to re-encode a known index)", field="folder")


def run(args: argparse.Namespace) -> int:
    from mama_core.inference import Predictor
    from mama_core.search import build_index
    from mama_core.training.distributed import cleanup, init_distributed

    folder = _folder(args)
    dist = init_distributed(args.device or "auto")
    try:
        predictor = Predictor.load(args.model, device=args.device or str(dist.device))
        last = None
        # Only rank 0 speaks: under torchrun every rank yields the same merged progress.
        with JobProgress("indexing", unit="files", enabled=dist.is_main and not args.json) as bar:
            for report in build_index(folder, predictor, name=args.name, rebuild=args.rebuild,
                                      workers=args.workers, dist=dist if dist.enabled else None):
                last = report
                if dist.is_main:
                    show_progress(report, args.json, bar)
    finally:
        cleanup(dist)
    if dist.is_main and not args.json:
        print(f"indexed {last.total} files: {last.encoded} encoded, {last.total - last.encoded} unchanged, "
              f"{last.removed} removed, {last.failed} not decodable")
    return 0
