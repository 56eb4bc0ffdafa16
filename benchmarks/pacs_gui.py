"""PACS source event-loop latency: does the window stay responsive while it talks to a PACS?

A real Orthanc (started like tests/pacs does: free loopback ports, throwaway storage) holds
synthetic MG studies; the real MainWindow on Qt's offscreen platform opens File > PACS and
  (a) searches the node (QIDO-RS),
  (b) retrieves a study with its prior (WADO-RS) and opens it through the open-folder path
      until its first study is displayed with a prediction,
  (c) "Send results": writes the SR, Parametric Maps and Segmentations for the current study with one sentence
      map, shows the preview, and sends them (STOW-RS).
A 10 ms QTimer records the longest gap between ticks (gui_latency.py's StallMonitor).
Target: no gap above 100 ms. Needs Orthanc + its DICOMweb plugin.

    python benchmarks/pacs_gui.py [--rows 1024] [--model demo] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, resolve_model  # noqa: E402
from gui_latency import TARGET_MS, StallMonitor, gap_markdown, phase  # noqa: E402

sys.path.insert(0, str(ROOT))
TITLE = "PACS source event-loop latency"


def _server(tmp: Path, rows: int):
    from tests.pacs.conftest import OrthancServer, free_port, make_studies, orthanc_missing

    missing = orthanc_missing()
    if missing:
        raise SystemExit(f"skipped: {missing}")
    server = OrthancServer(tmp / "orthanc", free_port(), free_port(), free_port()).start()
    server.studies = make_studies(tmp / "studies", rows=rows)
    server.upload(server.studies["files"])
    return server


def measure(rows: int, model: str, tmp: Path, timeout_s: float) -> dict:
    for kind in ("DATA", "CACHE", "CONFIG", "LOG"):
        os.environ[f"MAMA_{kind}_DIR"] = str(tmp / kind.lower())
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from mama_core.pacs import PacsNode, add_node
    from tests.pacs.conftest import PASSWORD, USER

    target, label = resolve_model(model, tmp)
    server = _server(tmp, rows)
    try:
        add_node(PacsNode("local", "dicomweb", url=server.dicomweb, auth="basic", username=USER, secret=PASSWORD))
        pg.setConfigOptions(imageAxisOrder="row-major")
        app = QApplication.instance() or QApplication([])
        from mama_desktop.main_window import MainWindow
        from mama_desktop.settings import DesktopSettings

        window = MainWindow(DesktopSettings(model=str(Path(target).resolve()) if Path(target).exists() else target,
                                            device="cpu"))
        window.show()
        monitor, s = StallMonitor(), window.state
        result = {"model": label, "rows": rows, "platform": app.platformName()}
        phase(monitor, window.load_model, lambda: s.predictor is not None, timeout_s)
        panel = window.show_pacs()
        panel.patient.setText(server.studies["patient_id"])
        found: list = []
        panel.searchDone.connect(found.append)
        result["search"] = phase(monitor, panel.search, lambda: bool(found), timeout_s)
        row = next(i for i, st in enumerate(panel.studies) if st.study_uid == server.studies["current"])
        panel.table.selectRow(row)
        panel.priors.setChecked(True)
        uid = server.studies["current"]
        result["retrieve_open"] = phase(
            monitor, panel.retrieve,
            lambda: s.study is not None and s.study.uid == uid and bool(s.views) and s.prediction is not None, timeout_s)
        # The map the results will carry, computed and drawn first (the live-maps path is
        # gui_latency.py's subject, not this benchmark's).
        sentence = ["a spiculated mass"]
        phase(monitor, lambda: s.set_sentences(sentence),
              lambda: s.maps is not None and list(s.maps.sentences) == sentence, timeout_s)
        sent: list = []
        panel.sendDone.connect(sent.append)

        def send_when_previewed() -> bool:
            if panel.preview is not None and panel.preview.isVisible() and not sent:
                panel.preview.send_button.click()
            return bool(sent)

        result["send"] = phase(monitor, panel.prepare_send, send_when_previewed, timeout_s)
        result["send"]["stored"] = len(sent[0]["stored"]) if sent and isinstance(sent[0], dict) else 0
        window.close()
        app.processEvents()
        return result
    finally:
        server.kill()


PHASES = (("search", "(a) QIDO search"), ("retrieve_open", "(b) retrieve study + prior, open, predict"),
          ("send", "(c) write SR + Parametric Maps + SEG, preview, STOW"))


def markdown(r: dict) -> str:
    return gap_markdown(r, PHASES, f"python benchmarks/pacs_gui.py --rows {r['rows']}",
                        "the real MainWindow (File > PACS) against a local Orthanc", "cpu")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--timeout", type=float, default=300.0, help="limit per phase (s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args.rows, args.model, Path(tmp), args.timeout)
    print(json.dumps(r) if args.json else markdown(r))
    worst = max(r[k]["max_gap_ms"] for k, _ in PHASES)
    return 0 if worst <= TARGET_MS and all(r[k]["finished"] for k, _ in PHASES) else 1


if __name__ == "__main__":
    sys.exit(main())
