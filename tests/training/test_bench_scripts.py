"""The training benchmarks run end to end at tiny sizes (their figures are in
docs/benchmarks.md; here only that each script works and prints what it promises)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


@pytest.mark.slow
def test_gpu_suite_runs_end_to_end_on_cpu_at_tiny_widths():
    """`bash benchmarks/gpu_suite.sh --device cpu --tiny`: every part runs (train step ours and
    baseline, inference, index) and docs/benchmarks.md is left alone with --no-docs."""
    docs = ROOT / "docs" / "benchmarks.md"
    before = docs.read_text()
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", "benchmarks/gpu_suite.sh", "--device", "cpu", "--tiny", "--no-docs", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    train = result["train"]
    assert train["batch"] == 4 and train["ours"]["images_per_s"] > 0 and train["baseline"]["images_per_s"] > 0
    assert train["speedup"] > 0 and train["ours_reference_config"]["images_per_s"] > 0
    assert train["flops"]["ours"]["vision_tokens"] == 21 and train["flops"]["reference"]["caption_tokens"] == 64
    inference = result["inference"]
    assert inference["first_prediction_ms"] > 0 and inference["new_sentence_median_ms"] > 0
    assert inference["index_images"] == 8 and inference["index_images_per_s"] > 0
    assert "Ratio (baseline step time / ours" in proc.stdout and "MFU method" in proc.stdout
    assert result["environment"]["torch"] == torch.__version__
    assert docs.read_text() == before


def test_gpu_suite_searches_the_batch_down_when_the_baseline_runs_out_of_memory(monkeypatch, tmp_path):
    """The batch ladder and the MFU arithmetic of gpu_suite.train_part (the cases stubbed:
    what is under test is the search, not a step)."""
    from types import SimpleNamespace

    import gpu_suite
    import train_step

    calls = []

    def fake_case(cfg, device, steps, baseline, data, cache):
        calls.append((cfg.batch_size, baseline))
        if baseline and cfg.batch_size > 12:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return {"step_time_s": 2.0 if baseline else 0.5, "images_per_s": cfg.batch_size / (2.0 if baseline else 0.5),
                "peak_memory_mb": 1024.0}

    monkeypatch.setattr(train_step, "run_case", fake_case)
    monkeypatch.setattr(gpu_suite, "_config", lambda shapes, text_dir, batch, reference=False: (
        SimpleNamespace(batch_size=batch, model_config=lambda: None), []))
    monkeypatch.setattr(gpu_suite, "flops_per_pair", lambda *a: {"per_pair": 1e12})
    monkeypatch.setattr(train_step, "_captions", lambda n: ["A caption."] * n)
    shapes = gpu_suite.Shapes((32, 2, 2, 100), [], 36, 1, "test")
    out = gpu_suite.train_part(shapes, tmp_path, torch.device("cpu"), 100.0, gpu_suite.Budget(600))
    assert [a["batch"] for a in out["attempts"]] == [36, 32, 24, 16, 12]
    assert out["batch"] == 12 and out["speedup"] == 4.0
    # ours at the baseline's batch (paper config, then reference config) and at 36
    assert calls[5:] == [(12, False), (12, False), (36, False)]
    assert out["ours"]["tflops_per_s"] == 24.0 and out["ours"]["mfu"] == 0.24
    assert gpu_suite.peak_tflops("NVIDIA H200", None) == 989.0
    assert gpu_suite.peak_tflops("NVIDIA A100-SXM4-80GB", None) == 312.0
    assert gpu_suite.peak_tflops("Some GPU", None) is None
