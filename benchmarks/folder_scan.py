"""Folder scan and demo-data generation: the two waits before a folder shows in the worklist.

(a) `find_studies` over a folder of --studies four-view synthetic studies (headers only:
    grouping, view detection and completeness, no pixel decode); cold = first scan in the
    process, warm = the median of --repeats later scans. Target: 100 files in under 1.5 s
    (well under a second on an idle machine).
(b) `generate_studies` of --generate studies at the generator's default size (2048 rows), as
    `mama demo-data` and `mama-desktop --demo` do on first use. Target: 4 studies in under 60 s.

These targets were timed asserts in tests/dicom/test_dicom_studies.py and
tests/synthetic/test_synthetic_content.py; the tests now check only what the calls produce.

    python benchmarks/folder_scan.py [--studies 25] [--rows 256] [--repeats 5] [--generate 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

TITLE = "Folder scan and demo-data generation"
SCAN_TARGET_S = 1.5  # for 100 files
GENERATE_TARGET_S = 60.0  # for 4 default-size studies


def time_scan(folder: Path) -> tuple[float, int, int]:
    """(seconds, studies found, files in them) of one `find_studies`."""
    from mama_core.dicom import find_studies

    t = time.perf_counter()
    studies = find_studies(folder)
    seconds = time.perf_counter() - t
    return seconds, len(studies), sum(len(s.images) for s in studies)


def measure(studies: int, rows: int, repeats: int, generate: int, tmp: Path) -> dict:
    from mama_core.synthetic import generate_studies

    generate_studies(tmp / "scan", studies, seed=13, rows=rows)
    cold, found, files = time_scan(tmp / "scan")
    warm = [time_scan(tmp / "scan")[0] for _ in range(repeats)]
    out = {"studies": studies, "rows": rows, "repeats": repeats, "found": found, "files": files,
           "scan_cold_s": cold, "scan_warm_median_s": statistics.median(warm), "generate": generate}
    if generate:
        t = time.perf_counter()
        summary = generate_studies(tmp / "generated", generate, seed=0)
        out.update(generate_s=time.perf_counter() - t, generated_images=summary.n_images)
    return out


def _verdict(seconds: float, target: float) -> str:
    return "ok" if seconds < target else f"**over {target:g} s**"


def markdown(r: dict) -> str:
    per100 = r["scan_cold_s"] * 100 / max(r["files"], 1)
    rows = [(f"scan, cold ({r['files']} files, {r['found']} studies)", f"{r['scan_cold_s'] * 1000:.0f} ms"),
            (f"scan, warm (median of {r['repeats']})", f"{r['scan_warm_median_s'] * 1000:.0f} ms"),
            ("scan, cold, per 100 files", f"{per100:.2f} s ({_verdict(per100, SCAN_TARGET_S)}; "
                                          f"target < {SCAN_TARGET_S:g} s)")]
    if r.get("generate"):
        per4 = r["generate_s"] * 4 / r["generate"]
        rows += [(f"generate {r['generate']} default-size studies ({r['generated_images']} images)",
                  f"{r['generate_s']:.1f} s"),
                 ("generate, per 4 studies", f"{per4:.1f} s ({_verdict(per4, GENERATE_TARGET_S)}; "
                                             f"target < {GENERATE_TARGET_S:g} s)")]
    return "\n".join([
        f"`python benchmarks/folder_scan.py --studies {r['studies']} --rows {r['rows']} --repeats {r['repeats']} "
        f"--generate {r['generate']}` — `find_studies` over synthetic four-view studies (headers only) and "
        "`generate_studies` at the generator's default size (what `--demo` does on first use).", "",
        table(rows), ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=25, help="four-view studies to scan (25 = 100 files)")
    ap.add_argument("--rows", type=int, default=256, help="rows of the scanned images (the scan reads headers)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--generate", type=int, default=4, help="default-size studies to generate (0: skip)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args.studies, args.rows, args.repeats, args.generate, Path(tmp))
    print(json.dumps(r) if args.json else markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
