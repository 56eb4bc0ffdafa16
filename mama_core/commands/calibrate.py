"""`mama calibrate MODEL_DIR FOLDER`: store what a model directory needs to be read honestly —
the "no match" threshold and map range of similarity maps, the out-of-distribution statistics
(docs/inference.md "Out of distribution") and, where FOLDER carries labels, temperatures that
calibrate the BI-RADS / density probabilities."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mama_core.commands._output import print_json

NAME = "calibrate"
HELP = ("calibrate a model directory on a folder of studies: 'no match' threshold for maps, "
        "out-of-distribution statistics, probability temperatures")
PARTS = ("maps", "ood", "temperature")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory (written to: calibration.json, ood.json + ood.safetensors, "
                                      "temperature.json)")
    parser.add_argument("folder", help="in-distribution studies to calibrate on, never used in training; for the map "
                                       "threshold of models trained with local_tissue_only these must be finding-free "
                                       "(negative) studies (see --labels)")
    parser.add_argument("--labels", default=None, help="keep only studies whose BI-RADS label is 1 in this "
                                                       "data source (EMBED folder or labels CSV) for the map "
                                                       "threshold; its labels also fit the temperatures")
    parser.add_argument("--percentile", type=float, default=99.0)
    parser.add_argument("--what", nargs="+", default=list(PARTS), choices=PARTS,
                        help="what to calibrate (default: all three; temperature only where labels exist)")
    parser.add_argument("--heldout", default=None,
                        help="OOD: a second folder of in-distribution studies for the threshold (default: half "
                             "of FOLDER's studies, by study)")
    parser.add_argument("--false-alarm", type=float, default=0.05,
                        help="OOD: share of in-distribution images allowed to be flagged (default 0.05)")


def _negative_studies(folder: str, labels: str | None) -> list:
    """The folder's studies; with `labels`, only those whose every image is labelled BI-RADS 1."""
    from mama_core.data import load_records
    from mama_core.dicom import find_studies

    studies = find_studies(folder)
    if labels is None:
        return studies
    negative = {r.path.resolve() for r in load_records(labels) if r.birads == 1}
    return [s for s in studies if all(Path(p).resolve() in negative for p in s.images.values())]


def _maps(predictor, args) -> tuple[dict, str]:
    from mama_core.inference import calibrate_threshold

    studies = _negative_studies(args.folder, args.labels)
    result = calibrate_threshold(predictor, studies, percentile=args.percentile)
    result["studies"] = len(studies)
    return result, (f"threshold {result['no_match_threshold']:.3f}, map range {result['map_range'][0]:.3f}.."
                    f"{result['map_range'][1]:.3f} from {len(studies)} studies ({result['reference']}); "
                    f"written to {args.model}/calibration.json")


def _ood(predictor, args) -> tuple[dict, str]:
    from mama_core.dicom import find_studies
    from mama_core.inference.ood import fit_model_ood

    reference = find_studies(args.folder)
    heldout = find_studies(args.heldout) if args.heldout else None
    source = f"reference: {args.folder}" + (f"; held out: {args.heldout}" if args.heldout else " (half held out, by study)")
    stats = fit_model_ood(args.model, reference, heldout, predictor=predictor, false_alarm_rate=args.false_alarm,
                          source=source)
    meta = stats.meta()
    return meta, (f"OOD: view threshold {meta['view_threshold']:.4f}, study threshold {meta['study_threshold']:.4f} "
                  f"at {args.false_alarm:.0%} false alarms ({meta['n_reference']} reference images, "
                  f"{meta['n_heldout_views']} held-out views in {meta['n_heldout_studies']} studies); "
                  f"written to {args.model}/ood.json")


def _temperature(predictor, args) -> tuple[dict, str]:
    from mama_core.evaluation.calibration import save_temperatures, temperature_entry
    from mama_core.evaluation.runner import labelled, load_eval_records

    if args.labels and Path(args.labels).is_dir():  # an EMBED folder of labels
        records = load_eval_records(args.labels)
    else:
        records = load_eval_records(args.folder, args.labels)
    entries, lines = {}, []
    for task in ("birads", "density"):
        recs, y = labelled(records, task)
        if len(recs) < 2:
            lines.append(f"{task}: no labels, not calibrated")
            continue
        probs = [predictor.task_probs(predictor.image_features(r.path), task, calibrated=False) for r in recs]
        entries[task] = temperature_entry(y, np.stack(probs), task, args.model, source=str(args.labels or args.folder))
        e = entries[task]
        lines.append(f"{task}: T {e['temperature']:.3f} ({e['method']}), ECE {e['ece_before']:.3f} -> "
                     f"{e['ece_after_on_fit_data']:.3f} on the {e['n']} fitting images")
    if entries:
        save_temperatures(args.model, entries)
    return entries, "temperature: " + "; ".join(lines)


def run(args: argparse.Namespace) -> int:
    from mama_core.inference import Predictor

    predictor = Predictor.load(args.model)
    doc, lines = {}, []
    for part, fn in (("maps", _maps), ("ood", _ood), ("temperature", _temperature)):
        if part in args.what:
            doc[part], line = fn(predictor, args)
            lines.append(line)
    if "maps" in doc:  # the keys `mama calibrate --json` printed before OOD and temperatures existed
        doc.update({k: v for k, v in doc["maps"].items()})
    if args.json:
        print_json(doc)
    else:
        print("\n".join(lines))
    return 0
