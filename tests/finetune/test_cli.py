"""`mama finetune` and `mama models` end to end through mama_core.cli.main."""

from __future__ import annotations

import json
import zipfile

from mama_core.cli import main
from mama_core.registry import Registry


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_finetune_json_then_models(studies, registry_with_tiny, capsys, tmp_path):
    registry, tiny_id = registry_with_tiny
    code = main(["finetune", "--data", str(studies), "--task", "density", "--mode", "linear-probe",
                 "--max-steps", "6", "--batch-size", "4", "--device", "cpu", "--json"])
    assert code == 0
    lines = _json_lines(capsys.readouterr().out)
    assert lines[0]["phase"] == "features" and lines[-2]["phase"] == "done"
    summary = lines[-1]
    assert summary["summary"] and summary["version_id"] and not summary["activated"]
    assert summary["comparison"]["task"] == "density" and "baseline" in summary["comparison"]
    comparison = summary["comparison"]
    assert sum(comparison["class_counts"].values()) == comparison["n_cases"]
    assert "balanced_accuracy" in comparison["new"]["ci95"] and "balanced_accuracy" in comparison["delta_ci95"]
    new_id = summary["version_id"]
    assert registry.active_id() == tiny_id
    new_dir = registry.get(new_id).model_dir  # the new model carries its trust statistics
    assert (new_dir / "ood.json").is_file() and (new_dir / "ood.safetensors").is_file()
    assert json.loads((new_dir / "temperature.json").read_text())["tasks"]["density"]["method"] == "probe"

    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [v["id"] for v in listing["versions"]] == [tiny_id, new_id]
    row = next(v for v in listing["versions"] if v["id"] == new_id)
    assert row["parent"] == tiny_id and row["kind"] == "finetuned" and not row["active"]
    assert row["key_metric"].startswith("density bACC")

    assert main(["models", "activate", new_id]) == 0
    assert Registry().active_id() == new_id
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert any(line.startswith("*") and new_id in line for line in table.splitlines())

    zip_path = tmp_path / "model.zip"
    assert main(["models", "export", new_id, str(zip_path)]) == 0
    names = zipfile.ZipFile(zip_path).namelist()
    assert f"{new_id}/heads/density.safetensors" in names and f"{new_id}/DATA-LICENCE-NOTE.txt" in names

    assert main(["models", "rollback"]) == 0
    assert Registry().active_id() == tiny_id
    assert main(["models", "delete", new_id]) == 0
    assert [v.id for v in Registry().list()] == [tiny_id]


def test_finetune_activate_flag_and_errors(studies, registry_with_tiny, capsys):
    registry, tiny_id = registry_with_tiny
    # These studies' held-out patients all have density 2: --activate refuses, in words.
    code = main(["finetune", "--data", str(studies), "--task", "density", "--max-steps", "4",
                 "--batch-size", "4", "--device", "cpu", "--activate", "--json"])
    summary = _json_lines(capsys.readouterr().out)[-1]
    assert code == 0 and not summary["activated"] and summary["winner"] is None
    assert not summary["activate_recommended"] and "single class" in summary["activation"]
    assert summary["comparison"]["class_counts"] == {"1": 0, "2": 8, "3": 0, "4": 0}
    assert registry.active_id() == tiny_id
    code = main(["finetune", "--data", str(studies), "--task", "density", "--max-steps", "4",
                 "--batch-size", "4", "--device", "cpu", "--activate-anyway"])
    out = capsys.readouterr().out
    assert code == 0 and "active model:" in out and "although" in out
    assert registry.get(registry.active_id()).kind == "finetuned"
    assert main(["models", "delete", registry.active_id()]) == 2  # never the active one
    assert "active model" in capsys.readouterr().err
    assert main(["models", "activate"]) == 2  # missing ID
    assert main(["finetune", "--data", str(studies / "nope"), "--task", "density"]) == 2
    assert "not found" in capsys.readouterr().err
