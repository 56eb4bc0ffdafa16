"""Pieces of the benchmarks that decide their verdicts (fast; the benchmarks themselves are run
by benchmarks/run_all.py, not by the test suite)."""

from __future__ import annotations

import sys
import time

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import _common  # noqa: E402
import run_all  # noqa: E402


def test_replace_section_keeps_the_other_sections(tmp_path):
    doc = tmp_path / "b.md"
    doc.write_text("# Benchmarks\n\n## A\n\nold a\n\n## B\n\nkeep b\n")
    _common.replace_section("A", "new a", doc)
    _common.replace_section("C", "new c", doc)
    text = doc.read_text()
    assert "old a" not in text and "new a" in text and "keep b" in text and text.rstrip().endswith("new c")
    assert text.index("## A") < text.index("## B") < text.index("## C")


def test_stall_monitor_sees_a_blocked_event_loop(qapp):
    import gui_latency
    from PySide6.QtCore import QTimer

    monitor = gui_latency.StallMonitor()
    blocked = []
    QTimer.singleShot(50, lambda: (time.sleep(0.15), blocked.append(True)))
    result = gui_latency.phase(monitor, lambda: None, lambda: bool(blocked), 5.0)
    assert result["finished"] and result["max_gap_ms"] >= 140 and result["gaps_over_target"] >= 1
    calm = gui_latency.phase(monitor, lambda: None, lambda: monitor.gaps and len(monitor.gaps) > 10, 5.0)
    assert calm["max_gap_ms"] < 140


def test_quick_runs_are_shorter_and_every_benchmark_has_a_script():
    for bench in run_all.BENCHES:
        assert (ROOT / "benchmarks" / f"{bench.name}.py").is_file()
        assert bench.args(True, "cpu", "demo") != bench.args(False, "cpu", "demo")


def test_machine_info_names_cpu_and_torch():
    info = _common.machine_info()
    assert info["cores"] >= 1 and info["torch"] and info["cpu"]
    assert "CPU" in run_all.machine_section(info, True, "cpu", "1.0 / 1.0 / 1.0")
