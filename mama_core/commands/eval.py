"""`mama eval DATA`: the paper's evaluation (Tables 1-3) on local data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mama_core.commands._output import print_json
from mama_core.commands._progress import JobProgress

NAME = "eval"
HELP = "evaluate a model like the paper's Tables 1-3 (zero-shot, linear probe, fine-tuning)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="EMBED folder (metadata.csv + clinical.csv), RSNA train.csv, generic CSV or DICOM folder")
    parser.add_argument("--labels", default=None, help="labels CSV for a plain DICOM folder")
    parser.add_argument("--task", nargs="+", default=["birads", "density"], choices=["birads", "density", "cancer", "localization"],
                        help="localization = the pointing game for --sentence on `mama demo-data` folders (ground_truth.json)")
    parser.add_argument("--sentence", default=None, help="sentence for --task localization (default: the mass sentence)")
    parser.add_argument("--split", default="paper", choices=["paper", "all-test"],
                        help="paper: patient-level 70/10/20 split; all-test: every image is a test image (zero-shot on unseen data)")
    parser.add_argument("--mode", default="zero-shot", choices=["zero-shot", "linear-probe", "finetune"])
    parser.add_argument("--fraction", type=float, default=1.0, choices=[0.01, 0.1, 1.0],
                        help="share of the training split (linear probe / fine-tuning)")
    parser.add_argument("--model", default="active", help="'demo', 'active' (default) or a model directory")
    parser.add_argument("--device", default=None)
    parser.add_argument("--with-metadata", action="store_true", help="zero-shot prompts prefixed with each image's metadata")
    parser.add_argument("--steps", type=int, default=None, help="training steps (probe default 1000, finetune 200)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for 95 %% CIs (0 = none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write results JSON here")
    parser.add_argument("--markdown", default=None, help="write the markdown table here")
    parser.add_argument("--report", default=None, metavar="DIR",
                        help="write a report folder: tables (Markdown, CSV), ROC / confusion / reliability / "
                             "pointing-game PNGs and report.html")
    parser.add_argument("--reliability", default=None, metavar="DIR",
                        help="write reliability diagrams (PNG, before/after temperature scaling) per task here")


def _config(args):
    from mama_core.evaluation import EvalConfig

    split = (0.0, 0.0, 1.0) if args.split == "all-test" else (0.7, 0.1, 0.2)
    tasks = [t for t in args.task if t != "localization"]
    return EvalConfig(tasks=tasks, split=split, mode=args.mode, fraction=args.fraction, seed=args.seed,
                      n_boot=args.boot, with_metadata=args.with_metadata, steps=args.steps,
                      keep_predictions=bool(args.report))


def run(args: argparse.Namespace) -> int:
    from mama_core.evaluation import FeatureStore, evaluate, load_eval_records, markdown_table
    from mama_core.inference import Predictor

    predictor = Predictor.load(args.model, device=args.device)
    results, table = [], ""
    with JobProgress("encoding images", unit="images", enabled=not args.json) as bar:
        if any(t != "localization" for t in args.task):
            cfg = _config(args)
            store = FeatureStore(predictor)
            store.progress = lambda done, total: bar.update(done, total)
            results = evaluate(predictor, load_eval_records(args.data, args.labels), cfg, store=store)
            table = markdown_table(results, predictor.name) + _calibration_lines(results, args.reliability)
        if "localization" in args.task:
            bar.message("pointing game: computing the sentence's map on every view with a lesion")
            localization = _localization(predictor, args)
    predictions = [r.pop("predictions", None) for r in results]  # report only: JSON output unchanged
    doc = {"data": str(args.data), "results": results, "markdown": table}
    if "localization" in args.task:
        doc["localization"] = localization
        table += _localization_line(doc["localization"])
    if args.report:
        _write_report(args, predictor, results, predictions, table, doc.get("localization"))
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        print_json(doc)
    else:
        print(table)
    return 0


def _calibration_lines(results: list[dict], png_dir: str | None) -> str:
    """'ECE before and after calibration' per task (the notes, in words, are in the table),
    the model's notice, and optional reliability PNGs."""
    from mama_core.evaluation.calibration import ReliabilityBins, ece_line, plot_reliability

    lines = []
    for r in results:
        cal = r.get("calibration")
        if cal:
            lines.append(ece_line(r["task"], cal))
            if png_dir:
                bins = {k: ReliabilityBins(*(np.array(cal[f"bins_{k}"][f], dtype=float)
                                             for f in ("edges", "confidence", "accuracy", "count")))
                        for k in ("before", "after")}
                out = plot_reliability(bins, Path(png_dir) / f"reliability-{r['task']}-{r['mode']}.png",
                                       title=f"{r['task']} ({r['mode']}, {r['model']})")
                lines.append(f"  reliability diagram: {out}")
        if r.get("notice"):
            lines.append(f"NOTE: {r['notice']}")
    return ("\n" + "\n".join(dict.fromkeys(lines)) + "\n") if lines else ""


def _localization(predictor, args) -> dict:
    from mama_core.evaluation.localization import MASS_SENTENCE, pointing_game

    return pointing_game(predictor, args.data, args.sentence or MASS_SENTENCE).to_json()


def _localization_line(result: dict) -> str:
    return (f"\nPointing game ({result['lesion_type']}): \"{result['sentence']}\" — map maximum inside a "
            f"true box in {result['hits']}/{result['views']} views ({100 * result['hit_rate']:.1f} %)\n")


def _command_line(args: argparse.Namespace) -> str:
    """The command with every option that shaped the numbers (defaults included)."""
    import shlex

    words = ["mama", "eval", str(args.data), "--task", *args.task, "--mode", args.mode, "--split", args.split,
             "--model", args.model, "--seed", str(args.seed), "--boot", str(args.boot)]
    if args.mode != "zero-shot":
        words += ["--fraction", f"{args.fraction:g}"] + (["--steps", str(args.steps)] if args.steps else [])
    words += ["--labels", args.labels] if args.labels else []
    words += ["--sentence", args.sentence] if args.sentence else []
    words += ["--with-metadata"] if args.with_metadata else []
    return shlex.join(words + ["--report", str(args.report)])


def _write_report(args, predictor, results: list, predictions: list, table: str, localization: dict | None) -> None:
    import sys

    from mama_core.evaluation.report import ReportContext, write_report

    full = [dict(r, predictions=p) for r, p in zip(results, predictions)]
    context = ReportContext(model=predictor.name, model_fingerprint=predictor.fingerprint,
                            data=str(Path(args.data).resolve()), command=_command_line(args))
    files = write_report(args.report, full, context, table, localization, predictor, args.data)
    if not args.json:
        print(f"report: {files.html} ({len(files.figures)} figures, {len(files.tables)} tables)", file=sys.stderr)
