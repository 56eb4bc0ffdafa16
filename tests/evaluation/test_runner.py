"""`evaluate` end to end on synthetic EMBED-style data with a tiny model, and `mama eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mama_core.cli import main
from mama_core.errors import ConfigError
from mama_core.evaluation import EvalConfig, FeatureStore, evaluate, load_eval_records
from mama_core.inference import Predictor


@pytest.fixture()
def predictor(eval_model_dir):
    return Predictor.load(eval_model_dir, device="cpu")


def _check(result, task, n_classes):
    m = result["metrics"]
    assert result["task"] == task and result["n_test"] > 0
    assert 0 <= m["balanced_accuracy"] <= 1
    assert len(m["confusion"]) == n_classes and sum(map(sum, m["confusion"])) == result["n_test"]
    if m["auc"] is not None:
        assert 0 <= m["auc"] <= 1 and set(m["auc_classes"]) | set(m["absent_classes"]) == set(range(n_classes))


def test_zero_shot_and_feature_cache(predictor, eval_data, tmp_path):
    records = load_eval_records(eval_data)
    store = FeatureStore(predictor, cache_dir=tmp_path / "feats")
    cfg = EvalConfig(tasks=["birads", "density"], mode="zero-shot", n_boot=20, split=(0.5, 0.0, 0.5))
    results = evaluate(predictor, records, cfg, store=store)
    _check(results[0], "birads", 7)
    _check(results[1], "density", 4)
    assert store.encoded == max(results[0]["n_test"], results[1]["n_test"])  # each image once
    again = FeatureStore(predictor, cache_dir=tmp_path / "feats")  # from disk
    evaluate(predictor, records, cfg, store=again)
    assert again.encoded == 0


def test_linear_probe_and_finetune_modes(predictor, eval_data, tmp_path):
    records = load_eval_records(eval_data)
    store = FeatureStore(predictor, cache_dir=tmp_path / "feats")
    probe = EvalConfig(tasks=["density"], mode="linear-probe", fraction=0.1, n_boot=0, split=(0.5, 0.0, 0.5),
                       steps=20)
    res = evaluate(predictor, records, probe, store=store)[0]
    _check(res, "density", 4)
    assert res["fraction"] == 0.1 and 0 < res["n_train"]
    ft = EvalConfig(tasks=["density"], mode="finetune", n_boot=0, split=(0.5, 0.0, 0.5),
                    steps=2, batch_size=2)
    before = {k: v.clone() for k, v in predictor.model.state_dict().items() if k.startswith("vision.")}
    _check(evaluate(predictor, records, ft, store=store)[0], "density", 4)
    after = predictor.model.state_dict()
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)  # a copy was trained


def test_config_validation():
    with pytest.raises(ConfigError):
        EvalConfig(tasks=["age"])
    with pytest.raises(ConfigError):
        EvalConfig(mode="few-shot")


def test_mama_eval_cli_writes_json_and_table(eval_model_dir, eval_data, tmp_path, capsys):
    out, md = tmp_path / "results.json", tmp_path / "table.md"
    rc = main(["eval", str(eval_data), "--model", str(eval_model_dir), "--device", "cpu", "--task", "density",
               "--boot", "10", "--out", str(out), "--markdown", str(md), "--reliability", str(tmp_path / "rel")])
    assert rc == 0
    doc = json.loads(out.read_text())
    result = doc["results"][0]
    assert result["task"] == "density" and "ci95" in result["metrics"]
    assert sum(result["class_counts"].values()) == result["n_test"]
    cal = result["calibration"]
    assert cal["temperature"] > 0 and 0 <= cal["ece_before"] <= 1 and 0 <= cal["ece_after"] <= 1
    table = md.read_text()
    assert "| MaMA (paper) | zero-shot | 75.40 | 93.46 |" in table and "Density bACC" in table
    printed = capsys.readouterr().out
    assert "MaMA (paper)" in printed
    assert "density: ECE before calibration" in printed and "after calibration" in printed
    png = tmp_path / "rel" / "reliability-density-zero-shot.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
