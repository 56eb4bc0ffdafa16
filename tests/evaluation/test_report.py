"""`mama eval --report DIR`: tables, ROC / confusion / reliability / pointing-game PNGs and one
self-contained HTML that shows (and links) every figure, with what produced it."""

from __future__ import annotations

import csv
import json
import re

import numpy as np

from mama_core.cli import main
from mama_core.evaluation.report import ReportContext, pick_examples, write_report


def _png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000


def _html_figures(html: str) -> set[str]:
    return set(re.findall(r"<a href='([^']+\.png)'>", html))


def test_mama_eval_report(eval_model_dir, eval_data, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["eval", str(eval_data), "--model", str(eval_model_dir), "--device", "cpu", "--task", "density",
               "localization", "--split", "all-test", "--boot", "10", "--report", str(out), "--json"])
    assert rc == 0
    stdout = capsys.readouterr().out
    doc = json.loads(stdout)  # --json: stdout is one JSON document, the report does not add to it
    assert "predictions" not in doc["results"][0] and doc["localization"]["views"] > 0
    pngs = {p.name for p in out.glob("*.png")}
    assert {"roc_density.png", "confusion_density.png", "reliability_density.png"} <= pngs
    assert any(name.startswith("pointing_") for name in pngs)
    assert all(_png(out / name) for name in pngs)
    html = (out / "report.html").read_text()
    assert _html_figures(html) == pngs  # every figure written is shown and linked, and nothing else
    assert html.count("src='data:image/png;base64,") == len(pngs)  # embedded: the file alone is the report
    assert f"<code>{eval_model_dir.name}</code>" in html  # the model
    assert "mama eval " in html and "--report" in html and str(eval_data) in html
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert rows[0]["task"] == "density" and rows[0]["n_test"] == str(doc["results"][0]["n_test"])
    assert float(rows[0]["balanced_accuracy"]) == doc["results"][0]["metrics"]["balanced_accuracy"]
    assert 0 <= float(rows[0]["ece"]) <= 1
    assert "| Method | Setting |" in (out / "results.md").read_text()
    bins = list(csv.DictReader(open(out / "reliability_density.csv")))
    assert len(bins) == 10 and sum(int(b["count"]) for b in bins) == doc["results"][0]["n_test"]


def test_write_report_binary_task_without_a_model(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, 40), 0, 1)
    probs = np.stack([1 - p1, p1], axis=1)
    from mama_core.evaluation.metrics import compute_metrics

    result = {"task": "cancer", "mode": "linear-probe", "fraction": 0.1, "model": "m", "n_train": 10, "n_test": 40,
              "metrics": compute_metrics(y, probs, n_boot=5).to_json(), "notes": [],
              "predictions": {"paths": [f"{i}.dcm" for i in range(40)], "y_true": y.tolist(), "probs": probs.tolist()}}
    files = write_report(tmp_path, [result], ReportContext("m", None, "data", "mama eval data"), "| table |")
    assert {f.name for f in files.figures} == {"roc_cancer.png", "confusion_cancer.png", "reliability_cancer.png"}
    html = files.html.read_text()
    assert _html_figures(html) == {f.name for f in files.figures}
    assert "linear-probe 10%" in html and "sens. %" in html


def test_pointing_examples_mix_hits_and_misses():
    details = [{"hit": h, "path": str(i)} for i, h in enumerate([True, True, True, False, False])]
    assert [d["path"] for d in pick_examples(details, 4)] == ["0", "3", "1", "4"]
