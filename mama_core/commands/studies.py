"""`mama studies FOLDER`: the studies found in a folder, with their views, unplaced images,
priors and problems, and every file left out with its reason (docs/data.md)."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json, print_table

NAME = "studies"
HELP = "list the mammography studies in a folder of DICOM or image files (views, unplaced, priors, problems)"
STANDARD_VIEWS = ("RCC", "LCC", "RMLO", "LMLO")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="folder searched recursively for DICOM and PNG/JPEG/TIFF/PGM files")
    parser.add_argument("--rules", action="store_true", help="also print which rule placed each image")


def run(args: argparse.Namespace) -> int:
    from mama_core.dicom import find_studies

    skipped: list = []
    studies = find_studies(args.folder, report=skipped)
    if args.json:
        print_json({"studies": [_as_json(s) for s in studies],
                    "skipped": [{"path": str(p), "reason": r} for p, r in skipped]})
        return 0
    rows = [
        (s.uid, s.patient_id or "-", s.date or "-", " ".join(v for v in STANDARD_VIEWS if v in s.images)
         + "".join(f" +{k}" for k in sorted(s.images) if k not in STANDARD_VIEWS),
         str(len(s.unplaced)) if s.unplaced else "-", ", ".join(s.priors) or "-",
         "; ".join(s.problems) or "-")
        for s in studies
    ]
    print_table(["study", "patient", "date", "views", "unplaced", "priors", "problems"], rows)
    if getattr(args, "rules", False):
        _print_rules(studies)
    complete = sum(all(v in s.images for v in STANDARD_VIEWS) for s in studies)
    unplaced = sum(len(s.unplaced) for s in studies)
    print(f"\n{len(studies)} studies ({complete} complete four-view), {unplaced} images unplaced, "
          f"{len(skipped)} files skipped")
    for path, reason in skipped[:20]:
        print(f"  skipped {path}: {reason}")
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more (use --json for all)")
    return 0


def _as_json(s) -> dict:
    return {
        "study_uid": s.uid, "patient_id": s.patient_id, "date": s.date,
        "views": sorted(s.images), "images": {k: str(v) for k, v in s.images.items()},
        "unplaced": [str(p) for p in s.unplaced], "priors": s.priors, "problems": s.problems,
        "placements": {str(p): {"laterality": pl.laterality, "view": pl.view, "laterality_rule": pl.laterality_rule,
                                "view_rule": pl.view_rule, "group_rule": pl.group_rule, "kind": pl.kind}
                       for p, pl in s.placements.items()},
    }


def _print_rules(studies) -> None:
    rows = [(s.uid, p.name, pl.key or "unplaced", pl.kind, pl.laterality_rule, pl.view_rule, pl.group_rule)
            for s in studies for p, pl in s.placements.items()]
    print()
    print_table(["study", "file", "key", "kind", "side from", "view from", "grouped by"], rows)
