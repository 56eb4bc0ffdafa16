"""The training benchmarks run end to end at tiny sizes (their figures are in
docs/benchmarks.md; here only that each script works and prints what it promises)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_data_pipeline_benchmark_prints_one_json_object(capsys):
    import data_pipeline

    code = data_pipeline.main(["--size", "56", "--rows", "256", "--studies", "1", "--pairs", "8",
                               "--batch-size", "4", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["measured_with"] == "dataloader_1_worker" and result["size"] == 56
    assert result["images_per_s_per_worker"] > 0 and result["pairs_timed"] == 8
    assert result["images_per_s_per_worker"] == result["dataloader_images_per_s"]
    assert set(result["stages_ms_per_image"]) == {"cache_read_ms", "augment_ms", "normalise_ms", "caption_ms"}
