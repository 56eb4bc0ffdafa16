"""`mama query STUDY SENTENCE...`: sentence-to-patch similarity maps for each view."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mama_core.errors import DataError
from mama_core.commands._output import print_json, print_table

NAME = "query"
HELP = "similarity maps of free-text sentences over a study's views (npz, optional PNG overlays)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="a study folder or one DICOM file")
    parser.add_argument("sentences", nargs="+", help="one or more sentences")
    parser.add_argument("--model", default="active", help="'demo', 'active' (default) or a model directory")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default="maps.npz", help="npz with keys '<VIEW>/<sentence index>' (default maps.npz)")
    parser.add_argument("--png", default=None, metavar="DIR", help="also write PNG overlays here")


def save_npz(path: Path, maps) -> None:
    arrays = {f"{view}/{i}": m[i] for view, m in maps.maps.items() for i in range(m.shape[0])}
    arrays["threshold"] = np.float64(maps.threshold)
    arrays["value_range"] = np.asarray(maps.value_range, dtype=np.float64)
    arrays["sentences"] = np.asarray(maps.sentences)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
    except OSError as exc:
        raise DataError(f"cannot write the maps: {exc.strerror or exc}", path) from exc


def save_pngs(folder: Path, study, maps) -> list[Path]:
    from mama_core.dicom import read_image
    from mama_core.inference.png import overlay, write_png

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for view, m in maps.maps.items():
        pixels = read_image(study.images[view]).pixels
        for i in range(m.shape[0]):
            rgb = overlay(pixels, m[i], maps.value_range, maps.threshold)
            written.append(write_png(folder / f"{view}_{i}.png", rgb))
    return written


def run(args: argparse.Namespace) -> int:
    from mama_core.inference import Predictor

    predictor = Predictor.load(args.model, device=args.device)
    study = predictor.resolve_study(args.study)
    maps = predictor.similarity_maps(study, args.sentences)
    out = Path(args.out)
    save_npz(out, maps)
    pngs = save_pngs(Path(args.png), study, maps) if args.png else []
    summary = {
        "study_uid": study.uid, "out": str(out), "png": [str(p) for p in pngs], "threshold": maps.threshold,
        "value_range": list(maps.value_range), "sentences": maps.sentences,
        "views": {v: {"max": [float(m[i].max()) for i in range(m.shape[0])], "best_sentence0": list(maps.best[v]),
                      "match": [bool(m[i].max() >= maps.threshold) for i in range(m.shape[0])]}
                  for v, m in maps.maps.items()},
    }
    if args.json:
        print_json(summary)
        return 0
    rows = [(v, " ".join(f"{x:.3f}" for x in d["max"]), " ".join("yes" if x else "no match" for x in d["match"]))
            for v, d in summary["views"].items()]
    print_table(["view", "max cosine per sentence", "match"], rows)
    print(f"\nthreshold {maps.threshold:.3f}; maps written to {out}" + (f"; {len(pngs)} PNGs in {args.png}" if pngs else ""))
    return 0
