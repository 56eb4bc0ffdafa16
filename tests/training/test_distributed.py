from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("_ddp_worker.py")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(synthetic_dir, cache_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(WORKER), str(tmp_path), str(synthetic_dir), str(cache_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=500,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for res in results:
        grad = res["grad"]
        assert res["world"] == 2
        # The global loss over the gathered batch equals the one-process loss on all 8 pairs.
        assert grad["ddp_loss"] == pytest.approx(grad["ref_loss"], rel=1e-5)
        assert grad["same_keys"] and grad["n_grads"] > 10
        assert grad["worst_rel_grad_diff"] < 1e-3
        assert len(grad["ratios"]) > 10
        assert all(abs(r - 1.0) < 1e-3 for r in grad["ratios"].values()), grad["ratios"]
    # The real trainer under DDP: both ranks see the same global loss; rank 0 wrote the run.
    assert results[0]["train_steps"] == [1, 2]
    assert results[0]["train_losses"] == pytest.approx(results[1]["train_losses"], rel=1e-6)
    run = tmp_path / "run"
    assert (run / "metrics.csv").is_file() and (run / "model" / "config.json").is_file()
    state = json.loads(next((run / "checkpoints").glob("ckpt-*/state.json")).read_text())
    assert len(state["rng"]) == 2  # every rank's RNG state is saved
