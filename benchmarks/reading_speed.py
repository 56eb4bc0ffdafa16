"""Reading real-resolution studies: window/level, pan/zoom and live maps on N views of R x C.

Offscreen, with the real widgets (`mama_desktop.hanging.HangingProtocol` in the comparison
layout for 8 views, the four-view layout otherwise) and a full repaint (`grab()`) in every
timed step. The studies are real DICOM files: synthetic MG studies re-sampled to exactly
R x C and decoded by `read_image`, so loading runs the whole engine path.

Measured:
  - display: worker-side load (decode + display pyramid) and GUI-side show + first repaint;
  - window/level: 40 drag steps, each `set_window` + repaint (median, max);
  - pan/zoom: pans at the fitted view, zoom steps in, pans while zoomed (new crops), zoom out;
  - maps (4 views at most, the demo model): a new sentence -> `similarity_maps` (engine) ->
    drawn on every view -> repaint, images already encoded (median, max);
  - RSS per view: resident memory added by the shown views (and their maps) / N;
  - the longest event-loop gap while the views (current and, for 8, the prior) open in the
    loading worker.
Targets (issue "reading real-resolution studies"): 8 views of 4600 x 2900, window/level and
pan/zoom median <= 16 ms, max <= 33 ms; maps on 4 views median <= 30 ms; <= 150 MB per view;
no event-loop gap over 100 ms while the study and its prior open.

    python benchmarks/reading_speed.py --rows 4600 --cols 2900 --views 8 [--maps/--no-maps] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import resolve_model, rss_mb  # noqa: E402

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
SENTENCES = ["A mass is present in the breast.", "Calcifications are present in the breast.",
             "There is an irregular spiculated mass.", "Grouped amorphous calcifications are seen.",
             "There is architectural distortion.", "The breast tissue is heterogeneously dense.",
             "Benign findings are seen.", "There is a round circumscribed mass.",
             "Skin thickening is present.", "There is no evidence of malignancy."]


def real_size_studies(folder: Path, n_studies: int, rows: int, cols: int) -> list:
    """n four-view MG studies whose images are exactly rows x cols (re-sampled synthetic
    DICOM files: the generator's own aspect is fixed)."""
    import numpy as np
    import pydicom

    from mama_core.dicom import find_studies
    from mama_core.synthetic import generate_studies

    generate_studies(folder, n_studies, seed=3, rows=512)
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        small = ds.pixel_array
        r_idx = (np.arange(rows) * small.shape[0] // rows)[:, None]
        c_idx = (np.arange(cols) * small.shape[1] // cols)[None, :]
        big = small[r_idx, c_idx].astype("<u2")
        ds.Rows, ds.Columns = rows, cols
        ds.PixelData = big.tobytes()
        ds.save_as(path, enforce_file_format=True)
    return sorted(find_studies(folder), key=lambda s: s.uid)


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), max(values)


class Gaps:
    """Longest gap between ticks of a 10 ms QTimer: how long the event loop was blocked."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer(interval=10)
        self.timer.timeout.connect(self._tick)
        self.worst = 0.0
        self._last = time.perf_counter()

    def start(self) -> None:
        self.worst, self._last = 0.0, time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, (now - self._last) * 1000)
        self._last = now

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


def open_views(app, hanging, state, studies) -> dict:
    """Open the current study, then its prior, as the desktop does: each is read in the
    loading worker and shown (with a repaint) when ready, the prior after the current one."""
    from mama_desktop.controllers import load_views
    from mama_desktop.workers import TaskRunner

    runner = TaskRunner()
    gaps = Gaps()
    gaps.start()
    load_s = show_s = 0.0
    for role, study in zip(("current", "prior"), studies):
        box: list = []
        t0 = time.perf_counter()
        runner.start(load_views, study, on_done=box.append)
        while not box:
            app.processEvents()
            time.sleep(0.002)
        load_s += time.perf_counter() - t0
        views, errors = box[0]
        if errors:
            raise SystemExit(f"loading failed: {errors}")
        t1 = time.perf_counter()
        (state.set_views if role == "current" else state.set_prior_views)(views)
        hanging.grab()
        show_s += time.perf_counter() - t1
        app.processEvents()
    worst_gap = gaps.stop()
    runner.shutdown(5000)
    return {"load_worker_s": load_s, "show_ms": show_s * 1000, "max_event_gap_ms": worst_gap}


def window_level(hanging, steps: int = 40) -> list[float]:
    times = []
    for i in range(steps):
        dx, dy = (6.0, -4.0) if (i // 10) % 2 == 0 else (-6.0, 4.0)
        t = time.perf_counter()
        hanging.set_window(hanging.window.dragged(dx, dy))
        hanging.grab()
        times.append((time.perf_counter() - t) * 1000)
    return times


def pan_zoom(hanging) -> list[float]:
    pane = hanging._reference_pane()
    moves = [("pan", (40.0, 25.0))] * 10 + [("zoom", 0.8)] * 8 + [("pan", (15.0, 10.0))] * 20 \
        + [("pan", (-15.0, -10.0))] * 10 + [("zoom", 1.25)] * 8
    times = []
    for kind, arg in moves:
        t = time.perf_counter()
        if kind == "pan":
            pane.vb.translateBy(x=arg[0], y=arg[1])
        else:
            pane.vb.scaleBy((arg, arg))
        hanging.grab()
        times.append((time.perf_counter() - t) * 1000)
    return times


def maps(hanging, state, predictor, study) -> tuple[list[float], list[float]]:
    """(total ms per new sentence, of which the sentence encoder's ms)."""
    from mama_desktop.sentence_maps import heat_lut, threshold_position, view_display

    warm = predictor.similarity_maps(study, ["Warm-up sentence."])  # encodes the images once
    lut = heat_lut("inferno", threshold_position(warm.threshold, warm.value_range))
    times, encoder = [], []
    for sentence in SENTENCES:
        t = time.perf_counter()
        predictor.sentence_embeddings([sentence])  # what similarity_maps does first (then cached)
        encoder.append((time.perf_counter() - t) * 1000)
        result = predictor.similarity_maps(study, [sentence])
        per_view, badges = view_display(result, 0, True)
        hanging.show_maps(per_view, lut, tuple(result.value_range), 0.7, badges)
        hanging.grab()
        times.append((time.perf_counter() - t) * 1000)
        state.maps = result
    return times, encoder


def run(rows: int, cols: int, n_views: int, with_maps: bool, model: str, size: tuple[int, int],
        torch_threads: int | None = None) -> dict:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from mama_desktop.hanging import HangingProtocol
    from mama_desktop.state import AppState

    if n_views not in (4, 8):
        raise SystemExit("--views is 4 (one study) or 8 (the study and its prior)")
    tmp = Path(tempfile.mkdtemp(prefix="reading-speed-"))
    studies = real_size_studies(tmp / "studies", n_views // 4, rows, cols)
    predictor, label = None, None
    if with_maps:
        from mama_core.inference import Predictor

        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        target, label = resolve_model(model, tmp)
        predictor = Predictor.load(target, device="cpu")
    state = AppState()
    state.set_studies(studies)
    hanging = HangingProtocol(state)
    hanging.resize(*size)
    hanging.set_layout("compare" if n_views == 8 else "four")
    hanging.show()
    app.processEvents()
    gc.collect()
    before = rss_mb()
    opened = open_views(app, hanging, state, studies)
    wl = window_level(hanging)
    hanging.fit()
    pz = pan_zoom(hanging)
    hanging.fit()
    mp, enc = maps(hanging, state, predictor, studies[0]) if predictor is not None else ([], [])
    gc.collect()
    per_view = (rss_mb() - before) / n_views
    out = {"rows": rows, "cols": cols, "views": n_views, "widget_size": list(size), **opened,
           "wl_median_ms": _stats(wl)[0], "wl_max_ms": _stats(wl)[1],
           "panzoom_median_ms": _stats(pz)[0], "panzoom_max_ms": _stats(pz)[1],
           "maps_median_ms": _stats(mp)[0] if mp else None, "maps_max_ms": _stats(mp)[1] if mp else None,
           "maps_text_encoder_median_ms": _stats(enc)[0] if enc else None,
           "torch_threads": (torch_threads or "default") if mp else None,
           "maps_views": len(studies[0].images) if mp else 0, "model": label,
           "rss_per_view_mb": per_view, "load_average": " / ".join(f"{v:.1f}" for v in os.getloadavg())}
    hanging.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4600)
    parser.add_argument("--cols", type=int, default=2900)
    parser.add_argument("--views", type=int, default=8, help="4 (one study) or 8 (with its prior)")
    parser.add_argument("--maps", action=argparse.BooleanOptionalAction, default=None,
                        help="time new-sentence maps on the current study's views (default: only with 4 views)")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--size", default="1400x900", help="widget size in pixels, WxH")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch CPU threads for the maps (default: torch's own choice)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with_maps = args.views == 4 if args.maps is None else args.maps
    result = run(args.rows, args.cols, args.views, with_maps, args.model, size, args.torch_threads)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:20s} {value:.1f}" if isinstance(value, float) else f"{key:20s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
