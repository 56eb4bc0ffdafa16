"""`mama export RUN_DIR OUT_DIR`: a model directory from a run's latest checkpoint."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json

NAME = "export"
HELP = "export a training run's latest (or a chosen) checkpoint as a self-contained model directory"
NO_OOD = ("no out-of-distribution statistics written (a run does not record where its data lives): pass "
          "--ood-data with training studies, or run `mama calibrate OUT_DIR FOLDER --what ood` later; until "
          "then the model's OOD flag reads 'unknown'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the --out folder of `mama train`")
    parser.add_argument("out_dir", help="where to write the model directory")
    parser.add_argument("--checkpoint", default=None, help="a checkpoint folder (default: the latest)")
    parser.add_argument("--ood-data", default=None,
                        help="studies the model was trained on: reference for the out-of-distribution statistics")
    parser.add_argument("--ood-heldout", default=None,
                        help="other in-distribution studies for the OOD thresholds (default: half of --ood-data)")


def _ood(target, args) -> dict | None:
    from mama_core.dicom import find_studies
    from mama_core.inference.ood import fit_model_ood

    if not args.ood_data:
        return None
    heldout = find_studies(args.ood_heldout) if args.ood_heldout else None
    stats = fit_model_ood(target, find_studies(args.ood_data), heldout,
                          source=f"reference: {args.ood_data}" + (f"; held out: {args.ood_heldout}" if heldout else ""))
    return stats.meta()


def run(args: argparse.Namespace) -> int:
    from mama_core.training import export_run

    target = export_run(args.run_dir, args.out_dir, args.checkpoint)
    ood = _ood(target, args)
    if args.json:
        print_json({"model_dir": str(target), "ood": ood, **({} if ood else {"ood_note": NO_OOD})})
    else:
        print(f"model written to {target}")
        print(f"OOD: view threshold {ood['view_threshold']:.4f} from {ood['n_reference']} reference images"
              if ood else NO_OOD)
    return 0
