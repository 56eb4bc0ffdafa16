"""Interruptions: `mama train`, `mama finetune` and `mama index` are SIGKILLed at random
moments (3 times each), then run again. Checkpoints, the registry and the search index are
never left corrupt, and the next run completes. The kill plan is seeded (KILL_SEED, printed
in every failure message) so a failure can be replayed; `MAMA_KILL_SEED` overrides it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from . import jobs

KILL_SEED = int(os.environ.get("MAMA_KILL_SEED", "20240605"))
SMOKE = str(jobs.REPO / "resources" / "configs" / "smoke.yaml")
TINY_TRAIN = ["--set", "ckpt_every=1", "--set", "model.vision.hidden_size=32", "--set", "model.vision.num_layers=1",
              "--set", "image_size=56", "--set", "model.text.max_length=64", "--set", "val_every=0"]


def _plan(offset: int, max_lines: int, max_delay: float) -> list[tuple[int, float]]:
    plan = jobs.random_kill_plan(KILL_SEED + offset, 3, max_lines, max_delay)
    # Zero lines: kill during start-up or the first step (a delay from the launch).
    return [(n, d if n else 2.0 + 4 * d) for n, d in plan]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from mama_core.synthetic import generate_studies

    out = tmp_path_factory.mktemp("kill-data") / "studies"
    generate_studies(out, 3, seed=0, rows=256)
    return out


# --------------------------------------------------------------------------- training


def _check_checkpoints(run: Path) -> list[int]:
    """Every visible checkpoint is complete and loads without executing code."""
    import torch
    from safetensors.torch import load_file

    from mama_core.training.checkpoint import list_checkpoints, read_state

    steps = []
    for ckpt in list_checkpoints(run):
        state = read_state(ckpt)
        assert load_file(str(ckpt / "model.safetensors")), ckpt
        blob = torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
        assert {"optimizer", "scheduler"} <= set(blob), ckpt
        steps.append(int(state["step"]))
    assert steps == sorted(steps)
    return steps


@pytest.mark.slow
def test_train_survives_sigkill_and_resumes(data, tmp_path):
    env = jobs.cli_env(tmp_path)
    run = tmp_path / "run"
    args = ["train", "--config", SMOKE, "--data", str(data), "--out", str(run), "--max-steps", "12", "--json",
            "--resume", *TINY_TRAIN]
    history = []
    for lines, delay in _plan(0, 5, 1.5):
        out = jobs.run_cli(args, env, kill_after_lines=lines, kill_delay_s=delay)
        steps = _check_checkpoints(run)
        history.append((lines, round(delay, 2), out.returncode, steps))
        assert out.returncode in (-9, 0), f"seed {KILL_SEED}: {history}\n{out.stderr[-2000:]}"
    before = _check_checkpoints(run)
    final = jobs.run_cli(args, env)
    assert final.returncode == 0, f"seed {KILL_SEED}: {history}\n{final.stderr[-3000:]}"
    last = final.events[-1]
    assert last["step"] == 12 and last["model_dir"], last
    first_step = min((e["step"] for e in final.events if e.get("event") == "step"), default=12)
    if before and before[-1] < 12:
        assert first_step == before[-1] + 1, (before, first_step)  # resumed, not restarted
    _check_checkpoints(run)
    from mama_core.model.io import load_model_dir

    load_model_dir(last["model_dir"])
    steps = [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 12, steps
    print(f"train kills (lines, delay, exit, checkpoints after): {history}; final run started at step "
          f"{first_step}")


# --------------------------------------------------------------------------- fine-tuning


@pytest.fixture()
def registry_with_tiny(tmp_path, monkeypatch):
    from mama_core.registry import Registry

    from . import modelfuzz

    monkeypatch.setenv("MAMA_DATA_DIR", str(tmp_path / "user-data"))
    registry = Registry()
    model = modelfuzz.build_tiny_model_dir(tmp_path / "tiny")
    version = registry.add(model, "tiny", "trained")
    registry.activate(version.id)
    return registry, version


def _check_registry(root: Path, active: str) -> list[str]:
    """Opening the registry sweeps staging debris; every version is complete and loads;
    the active pointer is untouched."""
    from mama_core.inference import Predictor
    from mama_core.registry import Registry

    registry = Registry(root)
    assert registry.active_id() == active
    assert not list(root.glob(".staging-*"))
    ids = []
    for version in registry.list():
        Predictor.load(version.model_dir, device="cpu")
        ids.append(version.id)
    return ids


@pytest.mark.slow
def test_finetune_survives_sigkill(data, tmp_path, registry_with_tiny):
    registry, base = registry_with_tiny
    env = jobs.cli_env(tmp_path)
    args = ["finetune", "--data", str(data), "--task", "density", "--mode", "linear-probe", "--max-steps", "30",
            "--json"]
    history = []
    for lines, delay in _plan(1, 6, 2.0):
        out = jobs.run_cli(args, env, kill_after_lines=lines, kill_delay_s=delay)
        ids = _check_registry(registry.root, base.id)
        history.append((lines, round(delay, 2), out.returncode, ids))
        assert out.returncode in (-9, 0), f"seed {KILL_SEED}: {history}\n{out.stderr[-2000:]}"
    final = jobs.run_cli(args, env)
    assert final.returncode == 0, f"seed {KILL_SEED}: {history}\n{final.stderr[-3000:]}"
    new_id = next(e["version_id"] for e in final.events if e.get("version_id"))
    ids = _check_registry(registry.root, base.id)
    assert new_id in ids
    leftovers = list((tmp_path / "user-cache" / "finetune").glob("run-*"))
    print(f"finetune kills (lines, delay, exit, versions after): {history}")
    assert leftovers == [], "the next fine-tune sweeps the scratch folders of killed runs"


# --------------------------------------------------------------------------- search index


@pytest.mark.slow
def test_index_survives_sigkill(tmp_path):
    """Before each killed run four new studies arrive, so every run has files to encode and
    the kill lands mid-run (after a random number of progress lines)."""
    from mama_core.synthetic import generate_studies

    from . import modelfuzz

    studies = tmp_path / "studies"
    generate_studies(studies, 4, seed=100, rows=256)
    model = modelfuzz.build_tiny_model_dir(tmp_path / "tiny")
    env = jobs.cli_env(tmp_path)
    args = ["index", str(studies), "--name", "kill", "--model", str(model), "--json"]
    manifest = tmp_path / "user-data" / "indexes" / "kill" / "manifest.json"
    history = []
    for i, (lines, delay) in enumerate(_plan(2, 32, 0.05)):
        generate_studies(studies, 4, seed=101 + i, rows=256)
        out = jobs.run_cli(args, env, kill_after_lines=max(1, lines), kill_delay_s=delay)
        if manifest.exists():
            json.loads(manifest.read_text())  # never half-written
        done = [e for e in out.events if "done" in e]
        history.append((max(1, lines), round(delay, 3), out.returncode, max((e["encoded"] for e in done), default=0)))
        assert out.returncode in (-9, 0), f"seed {KILL_SEED}: {history}\n{out.stderr[-2000:]}"
    final = jobs.run_cli(args, env)
    assert final.returncode == 0, f"seed {KILL_SEED}: {history}\n{final.stderr[-3000:]}"
    search = jobs.run_cli(["search", "an irregular mass", "--index", "kill", "--model", str(model), "--json",
                           "--top", "50"], env)
    assert search.returncode == 0, search.stderr[-3000:]
    uids = {h["study_uid"] for h in search.events[-1]["hits"]}
    assert len(uids) == 16, (history, search.lines[-3:])
    print(f"index kills (lines, delay, exit, files encoded before the kill): {history}; "
          f"final run encoded {final.events[-1]['encoded']}; search found {len(uids)} studies")


def test_kill_harness_really_kills(tmp_path):
    """Control for the helpers above: a sleeping child is killed (exit -9) after its first line."""
    import sys

    code = "import time; print('ready', flush=True); time.sleep(60)"
    out = jobs.run_cli([code], jobs.cli_env(tmp_path), kill_after_lines=1, kill_delay_s=0.1, timeout_s=30,
                       prefix=[sys.executable, "-c"])
    assert out.returncode == -9 and out.lines == ["ready"]
    shutil.rmtree(tmp_path, ignore_errors=True)
