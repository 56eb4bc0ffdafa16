"""`mama studies FOLDER`: the studies found in a folder, with their views and problems."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json, print_table

NAME = "studies"
HELP = "list the DICOM studies in a folder (study, patient, date, views, problems)"
STANDARD_VIEWS = ("RCC", "LCC", "RMLO", "LMLO")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="folder searched recursively for DICOM files")


def run(args: argparse.Namespace) -> int:
    from mama_core.dicom import find_studies

    skipped: list = []
    studies = find_studies(args.folder, report=skipped)
    if args.json:
        print_json({
            "studies": [
                {"study_uid": s.uid, "patient_id": s.patient_id, "date": s.date,
                 "views": sorted(s.images), "images": {k: str(v) for k, v in s.images.items()},
                 "problems": s.problems}
                for s in studies
            ],
            "skipped": [{"path": str(p), "reason": r} for p, r in skipped],
        })
        return 0
    rows = [
        (s.uid, s.patient_id or "-", s.date or "-", " ".join(v for v in STANDARD_VIEWS if v in s.images)
         + "".join(f" +{k}" for k in sorted(s.images) if k not in STANDARD_VIEWS),
         "; ".join(s.problems) or "-")
        for s in studies
    ]
    print_table(["study", "patient", "date", "views", "problems"], rows)
    complete = sum(all(v in s.images for v in STANDARD_VIEWS) for s in studies)
    print(f"\n{len(studies)} studies ({complete} complete four-view), {len(skipped)} files skipped")
    for path, reason in skipped[:20]:
        print(f"  skipped {path}: {reason}")
    return 0
