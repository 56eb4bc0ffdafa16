"""`mama calibrate MODEL_DIR FOLDER`: store a model's "no match" threshold and map range."""

from __future__ import annotations

import argparse
from pathlib import Path

from mama_core.commands._output import print_json

NAME = "calibrate"
HELP = "calibrate a model directory's 'no match' threshold for similarity maps on a folder of studies"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory (written to: calibration.json)")
    parser.add_argument("folder", help="studies to calibrate on; for models trained with local_tissue_only "
                                       "these must be finding-free (negative) studies")
    parser.add_argument("--labels", default=None, help="keep only studies whose BI-RADS label is 1 in this "
                                                       "data source (EMBED folder or labels CSV)")
    parser.add_argument("--percentile", type=float, default=99.0)


def _negative_studies(folder: str, labels: str | None) -> list:
    """The folder's studies; with `labels`, only those whose every image is labelled BI-RADS 1."""
    from mama_core.data import load_records
    from mama_core.dicom import find_studies

    studies = find_studies(folder)
    if labels is None:
        return studies
    negative = {r.path.resolve() for r in load_records(labels) if r.birads == 1}
    return [s for s in studies if all(Path(p).resolve() in negative for p in s.images.values())]


def run(args: argparse.Namespace) -> int:
    from mama_core.inference import Predictor, calibrate_threshold

    predictor = Predictor.load(args.model)
    studies = _negative_studies(args.folder, args.labels)
    result = calibrate_threshold(predictor, studies, percentile=args.percentile)
    result["studies"] = len(studies)
    if args.json:
        print_json(result)
    else:
        print(f"threshold {result['no_match_threshold']:.3f}, map range {result['map_range'][0]:.3f}.."
              f"{result['map_range'][1]:.3f} from {len(studies)} studies ({result['reference']}); "
              f"written to {args.model}/calibration.json")
    return 0
