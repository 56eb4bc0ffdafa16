"""`mama datasets [FOLDER]`: the public datasets the engine reads, and what a folder is."""

from __future__ import annotations

import argparse
from collections import Counter

from mama_core.commands._output import print_json, print_table

NAME = "datasets"
HELP = "list the supported public datasets; with a FOLDER, say which one it is and what it holds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", default=None, help="a dataset's root folder as downloaded")


def _supported() -> list[dict]:
    from mama_core.datasets import ADAPTERS

    return [vars(adapter.info) for adapter in ADAPTERS]


def _summary(folder: str) -> dict:
    from mama_core.datasets import detect_dataset, scores

    found = detect_dataset(folder)
    doc: dict = {"folder": folder, "detected": None, "scores": scores(folder)}
    if found is None:
        return doc
    records = found.adapter.load(found.root)
    annotated = found.adapter.annotated_images(found.root)
    doc.update({
        "detected": found.adapter.name, "title": found.adapter.info.title, "score": found.score,
        "images": len(records), "patients": len({r.patient_id for r in records}),
        "studies": len({r.study_id for r in records}),
        "views": dict(Counter(f"{r.laterality or '?'}{r.view or '?'}" for r in records)),
        "labelled": {name: sum(getattr(r, name) is not None for r in records) for name in ("birads", "density", "cancer")},
        "annotated_images": len(annotated),
    })
    return doc


def run(args: argparse.Namespace) -> int:
    if args.folder is None:
        supported = _supported()
        if args.json:
            print_json({"datasets": supported})
            return 0
        print_table(["name", "dataset", "labels", "lesions"],
                    [(d["name"], d["title"], d["labels"], d["lesions"]) for d in supported])
        print("\nLayouts (docs/datasets.md has the details):")
        for d in supported:
            print(f"  {d['name']}: {d['layout']}")
        return 0
    doc = _summary(args.folder)
    if args.json:
        print_json(doc)
        return 0
    if doc["detected"] is None:
        print(f"{args.folder}: not a supported dataset root (read as a plain folder of images). "
              "Run `mama datasets` for the layouts.")
        return 0
    print(f"{args.folder}: {doc['title']} (score {doc['score']:.1f})")
    print(f"  {doc['images']} images, {doc['patients']} patients, {doc['studies']} studies")
    print("  views: " + ", ".join(f"{k} {v}" for k, v in sorted(doc["views"].items())))
    print("  labelled: " + ", ".join(f"{k} {v}" for k, v in doc["labelled"].items()))
    print(f"  images with lesion annotations: {doc['annotated_images']}")
    return 0
