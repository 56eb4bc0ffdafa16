"""`mama finetune --data PATH --task T --mode M`: fine-tune on local cases, register the result."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json
from mama_core.commands._progress import JobProgress, format_duration

NAME = "finetune"
HELP = "fine-tune the active (or a given) model on local labelled cases; registers a new model version"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mama_core.finetune.config import MODES, TASK_CLASSES

    parser.add_argument("--data", required=True, help="EMBED-style folder, RSNA train.csv, generic CSV or DICOM folder")
    parser.add_argument("--labels", help="CSV of labels (study_id[,view],birads,density,cancer) for a DICOM folder")
    parser.add_argument("--task", required=True, choices=sorted(TASK_CLASSES))
    parser.add_argument("--mode", default="linear-probe", choices=list(MODES))
    parser.add_argument("--model", default="active", help="'active' (default) or a model directory to start from")
    parser.add_argument("--name", help="name of the new version (default <task>-<mode>)")
    parser.add_argument("--activate", action="store_true",
                        help="make the new version the active model when the comparison recommends it (a "
                             "held-out set with two or more classes, enough images per class, and a clear win)")
    parser.add_argument("--activate-anyway", action="store_true",
                        help="make the new version the active model even when the comparison names no winner")
    parser.add_argument("--max-steps", type=int, help="optimiser steps (default per mode)")
    parser.add_argument("--epochs", type=float, help="passes over the training split (instead of --max-steps)")
    parser.add_argument("--lr", type=float, help="learning rate (default per mode)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--val-fraction", type=float, default=0.25, help="patients held out (default 0.25)")
    parser.add_argument("--patience", type=int, default=5, help="validations without improvement before stopping")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    parser.add_argument("--no-balance", action="store_true", help="sample uniformly instead of class-balanced")
    parser.add_argument("--log-dir", help="folder for metrics.csv and TensorBoard events (default: a new folder "
                                          "under the user data folder's runs/)")


def config_from_args(args: argparse.Namespace):
    from mama_core.finetune import FinetuneConfig

    return FinetuneConfig(task=args.task, mode=args.mode, base_model=args.model, name=args.name,
                          val_fraction=args.val_fraction, seed=args.seed, max_steps=args.max_steps,
                          epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, patience=args.patience,
                          class_balanced=not args.no_balance, device=args.device)


def _label(report) -> str:
    """Bar description: the phase (train and its validations share one bar) and stage."""
    phase = {"features": "extracting features", "train": "training", "validate": "training",
             "compare": "comparing"}.get(report.phase, report.phase)
    stage = report.extra.get("stage")
    return f"{phase} ({stage.split(' (')[0]})" if stage else phase


def _show(bar, report, shown: set) -> None:
    """Text mode: the bar follows steps; validations, stage changes and notes become lines."""
    if report.total_steps:
        bits = [f"loss {report.loss:.4f}"] if report.loss is not None else []
        if report.best_val_bacc is not None:
            bits.append(f"best bACC {report.best_val_bacc:.3f}")
        unit = "images" if report.phase in ("features", "compare") else "steps"
        bar.update(report.step, report.total_steps, description=_label(report), info="  ".join(bits), unit=unit)
    if "log_dir" in report.extra:
        bar.message(f"training curves: {report.extra['log_dir']} (tensorboard --logdir {report.extra['log_dir']})")
    # Per-step messages repeat what the bar shows; keep a phase's opening words, early stops
    # and the steps without a count (compare, save).
    noteworthy = not report.total_steps or report.step == 0 or "early stop" in report.message
    if report.message and noteworthy and report.message not in shown and report.phase != "done":
        shown.add(report.message)
        bar.message(f"[{report.phase}] {report.message}")


def _summary(final, activated: bool, why: str) -> dict:
    verdict = (final.comparison or {}).get("verdict") or {}
    return {"summary": True, "version_id": final.version_id, "activated": activated, "activation": why,
            "winner": verdict.get("winner"), "activate_recommended": verdict.get("activate_recommended", False),
            "cancelled": final.cancelled, "comparison": final.comparison, "elapsed_s": round(final.elapsed_s, 2)}


def _activation(final, args) -> tuple[bool, str]:
    """(activate?, why in words): --activate follows the comparison's verdict; --activate-anyway overrides it."""
    if final is None or not final.version_id:
        return False, "nothing was registered"
    verdict = (final.comparison or {}).get("verdict") or {}
    reasons = "; ".join(verdict.get("reasons", []))
    if args.activate_anyway:
        return True, "activated on request (--activate-anyway)" + (f", although: {reasons}" if not
                                                                   verdict.get("activate_recommended") else "")
    if not args.activate:
        return False, "not activated (pass --activate, or use `mama models activate`)"
    if verdict.get("activate_recommended"):
        return True, f"activated: {reasons}"
    return False, f"not activated, the comparison names no winner: {reasons} (override: --activate-anyway)"


def run(args: argparse.Namespace) -> int:
    from mama_core.finetune import finetune
    from mama_core.registry import Registry

    final, shown = None, set()
    with JobProgress("fine-tuning", unit="steps", enabled=not args.json) as bar:
        for report in finetune(config_from_args(args), args.data, labels=args.labels, log_dir=args.log_dir):
            final = report
            if args.json:
                print_json(report.to_json())
            else:
                _show(bar, report, shown)
    activated, why = _activation(final, args)
    if activated:
        Registry().activate(final.version_id)
    if args.json:
        print_json(_summary(final, activated, why))
    elif final is not None:
        print(final.message)
        print(why)
        if activated:
            print(f"active model: {final.version_id}")
        elif final.version_id:
            print(f"activate it with: mama models activate {final.version_id}")
        print(f"took {format_duration(final.elapsed_s)}")
    return 1 if final is None or final.cancelled else 0
