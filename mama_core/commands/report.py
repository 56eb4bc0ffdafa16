"""`mama report STUDY_FOLDER --out DIR [--maps SENTENCE...]`: the study's AI results as DICOM."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json

NAME = "report"
HELP = ("write a study's predictions as a DICOM Structured Report (TID 1500) and, for each --maps "
        "sentence, a Parametric Map of its cosine and a Segmentation of where it matches, ready for "
        "`mama pacs store` (research use only)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="a local study folder (one study) or one DICOM file")
    parser.add_argument("--study-uid", help="pick this study when the folder holds several")
    parser.add_argument("--out", required=True, help="folder the DICOM objects are written to")
    parser.add_argument("--maps", nargs="+", default=[], metavar="SENTENCE", help="sentences whose maps to keep")
    parser.add_argument("--model", default="active", help="'demo', 'active' (default) or a model directory")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when available)")


def run(args: argparse.Namespace) -> int:
    from mama_core.inference import Predictor
    from mama_core.reports import write_study_report

    study = _pick(args.study, args.study_uid) if args.study_uid else args.study
    predictor = Predictor.load(args.model, device=args.device)
    files = write_study_report(study, args.out, predictor, args.maps)
    if args.json:
        from mama_core.reports import describe_files

        # The preview lines too: the desktop shows them without importing highdicom itself.
        print_json({**files.to_json(), "preview": describe_files(files.files)})
    else:
        for path in files.files:
            print(path)
    return 0


def _pick(folder: str, uid: str):
    from mama_core.dicom import find_studies
    from mama_core.errors import DataError

    for study in find_studies(folder):
        if study.uid == uid:
            return study
    raise DataError(f"no study {uid} here", path=folder)
