"""`mama predict / query / index / search / import-checkpoint` through the real dispatcher."""

from __future__ import annotations

import json

import numpy as np

from mama_core.cli import main
from mama_core.dicom import read_image


def _json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_predict_json_one_object_per_study(tiny_model_dir, studies_dir, studies, capsys):
    assert main(["predict", str(studies_dir), "--model", str(tiny_model_dir), "--device", "cpu", "--json"]) == 0
    docs = _json_lines(capsys.readouterr().out)
    assert {d["study_uid"] for d in docs} == {s.uid for s in studies}
    for d in docs:
        assert len(d["birads"]) == 7 and len(d["density"]) == 4 and set(d["views"]) == {"LCC", "RCC", "LMLO", "RMLO"}
        assert d["method"] == "zero-shot" and d["model"] == tiny_model_dir.name


def test_predict_table_and_missing_demo(tiny_model_dir, studies, capsys, tmp_path, monkeypatch):
    folder = studies[0].images["LCC"].parent
    assert main(["predict", str(folder), "--model", str(tiny_model_dir), "--device", "cpu"]) == 0
    assert "BI-RADS" in capsys.readouterr().out
    monkeypatch.setenv("MAMA_RESOURCES", str(tmp_path))
    assert main(["predict", str(folder), "--model", "demo"]) == 2
    assert "not built yet" in capsys.readouterr().err


def test_query_writes_npz_and_png(tiny_model_dir, studies, tmp_path, capsys):
    study = studies[0]
    out, png = tmp_path / "maps.npz", tmp_path / "png"
    folder = str(study.images["LCC"].parent)
    assert main(["query", folder, "There is a mass.", "Calcifications.", "--model", str(tiny_model_dir),
                 "--device", "cpu", "--out", str(out), "--png", str(png), "--json"]) == 0
    summary = _json_lines(capsys.readouterr().out)[0]
    with np.load(out, allow_pickle=False) as npz:
        assert {"LCC/0", "LCC/1", "RMLO/1"} <= set(npz.files)
        assert npz["LCC/1"].shape == read_image(study.images["LCC"]).pixels.shape
        assert float(npz["threshold"]) == summary["threshold"]
    assert len(list(png.glob("*.png"))) == 8


def test_index_and_search_json(tiny_model_dir, studies_dir, studies, capsys):
    args = ["--model", str(tiny_model_dir), "--device", "cpu", "--json"]
    assert main(["index", str(studies_dir), "--name", "t"] + args) == 0
    reports = _json_lines(capsys.readouterr().out)
    assert reports[-1]["finished"] and reports[-1]["encoded"] == 8 and len(reports) == 9
    assert main(["search", "a round mass", "--index", "t", "--top", "1"] + args) == 0
    doc = _json_lines(capsys.readouterr().out)[0]
    assert len(doc["hits"]) == 1 and doc["hits"][0]["study_uid"] in {s.uid for s in studies}
    assert main(["search", "a round mass", "--index", "nope"] + args) == 2
