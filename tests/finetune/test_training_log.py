"""`mama finetune` in a log (not a terminal): progress lines per phase on stderr, readable
text on stdout, and the run's curves as metrics.csv + TensorBoard events in --log-dir."""

from __future__ import annotations

import csv
import re

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mama_core.cli import main


def test_finetune_progress_and_tensorboard(studies, registry_with_tiny, capsys, tmp_path):
    logs = tmp_path / "logs"
    code = main(["finetune", "--data", str(studies), "--task", "density", "--mode", "linear-probe",
                 "--max-steps", "6", "--batch-size", "4", "--device", "cpu", "--log-dir", str(logs)])
    assert code == 0
    out, err = capsys.readouterr()
    assert re.search(r"^extracting features: \d+/\d+ images \(100 %\)", err, re.M), err
    assert re.search(r"^training: 6/6 steps \(100 %\), [\d.]+ (steps/s|s/step), ETA 0\.0 s", err, re.M), err
    assert f"training curves: {logs}" in err
    assert out.startswith("registered ") and "activate it with: mama models activate" in out and "took " in out

    rows = list(csv.DictReader(open(logs / "metrics.csv")))
    assert sorted({int(r["step"]) for r in rows}) == [1, 2, 3, 4, 5, 6]
    assert all(float(r["lr"]) > 0 for r in rows)
    events = EventAccumulator(str(logs / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "val/balanced_accuracy", "val/best_balanced_accuracy", "perf/steps_per_s",
            "perf/max_memory_mb"} <= tags
    assert events.Scalars("train/loss")[-1].step == 6
