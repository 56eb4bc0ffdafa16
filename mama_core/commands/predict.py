"""`mama predict STUDY_OR_FOLDER`: BI-RADS and density probabilities per study."""

from __future__ import annotations

import argparse
from pathlib import Path

from mama_core.commands._output import print_json, print_table

NAME = "predict"
HELP = "predict BI-RADS (7 classes) and density (4 classes) for a study or every study in a folder"
BIRADS_NAMES = ("0", "1", "2", "3", "4", "5", "6")  # EMBED A N B P S M K


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="a study folder, a folder of studies, or one DICOM file")
    parser.add_argument("--model", default="active", help="'demo', 'active' (default) or a model directory")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when available)")


def _studies(target: str) -> list:
    from mama_core.dicom import find_studies

    path = Path(target)
    return [path] if path.is_file() else find_studies(path)


def _print_readable(pred) -> None:
    print(f"study {pred.study_uid}  (model {pred.model_name}, {pred.method}; research use only)")
    if pred.notice:
        print(f"NOTE: {pred.notice}")
    rows = []
    for key, v in list(pred.views.items()) + [(f"side {k}", s) for k, s in pred.sides.items()]:
        rows.append((key, _top(v.birads, BIRADS_NAMES), _top(v.density, ("1", "2", "3", "4")), _ood(v.ood)))
    rows.append(("study", _top(pred.birads, BIRADS_NAMES), _top(pred.density, ("1", "2", "3", "4")), _ood(pred.ood)))
    print_table(["view", "BI-RADS (p)", "density (p)", "out of distribution (score / threshold)"], rows)
    if pred.ood is not None and pred.ood.flagged:
        print("WARNING: outside this model's experience — these images are unlike the ones it was fitted to; "
              "its probabilities do not apply to them.")
    elif pred.ood is not None and pred.ood.status == "unknown":
        print(f"out of distribution: unknown — {pred.ood.reason}")
    print()


def _ood(result) -> str:
    if result is None:
        return ""
    if result.flagged is None:
        return "unknown"
    return f"{'FLAGGED' if result.flagged else 'no'} ({result.score:.3f} / {result.threshold:.3f})"


def _top(p, names) -> str:
    i = int(p.argmax())
    return f"{names[i]} ({p[i]:.2f})"


def run(args: argparse.Namespace) -> int:
    from mama_core.errors import DataError
    from mama_core.inference import Predictor

    studies = _studies(args.study)
    if not studies:
        raise DataError("no DICOM studies found", path=args.study)
    predictor = Predictor.load(args.model, device=args.device)
    for study in studies:
        pred = predictor.predict(study)
        if args.json:
            print_json(pred.to_json())
        else:
            _print_readable(pred)
    return 0
