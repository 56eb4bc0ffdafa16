"""Checkpoint folders: deletion is atomic, and `list_checkpoints` trusts only complete ones."""

from __future__ import annotations

import shutil

import torch

from mama_core.training.checkpoint import (delete_checkpoint, latest_checkpoint, list_checkpoints,
                                           load_checkpoint, rng_state, save_checkpoint)


def _state():
    model = torch.nn.Linear(8, 8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _save(run, step):
    return save_checkpoint(run, step, *_state(), {"seed": 0}, [rng_state()], keep_last=10)


def test_delete_hides_the_checkpoint_before_removing_it(tmp_path, monkeypatch):
    """A crash inside the removal (simulated: rmtree dies half-way) leaves no visible folder."""
    run = tmp_path / "run"
    for step in (1, 2):
        _save(run, step)
    seen = []

    def dying_rmtree(path, *args, **kwargs):
        seen.append(path)
        (path / "model.safetensors").unlink()  # half-deleted...
        raise KeyboardInterrupt  # ...when the process is stopped

    monkeypatch.setattr(shutil, "rmtree", dying_rmtree)
    try:
        delete_checkpoint(list_checkpoints(run)[-1])
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert seen and seen[0].name.startswith(".trash-")  # it was removed under a hidden name
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-0000001"]
    load_checkpoint(latest_checkpoint(run), *_state()[:2])
    _save(run, 3)  # the next save sweeps the debris
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-0000001", "ckpt-0000003"]


def test_incomplete_folders_are_not_checkpoints(tmp_path):
    run = tmp_path / "run"
    _save(run, 1)
    root = run / "checkpoints"
    half = root / "ckpt-0000002"
    shutil.copytree(root / "ckpt-0000001", half)
    (half / "optimizer.pt").unlink()  # e.g. a folder left by older code killed mid-delete
    (root / "ckpt-0000003.tmp").mkdir()
    shutil.copytree(root / "ckpt-0000001", root / "ckpt-0000004.tmp", dirs_exist_ok=True)
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-0000001"]


def test_prune_keeps_the_last_n_and_leaves_no_debris(tmp_path):
    run = tmp_path / "run"
    for step in range(1, 5):
        save_checkpoint(run, step, *_state(), {"seed": 0}, [rng_state()], keep_last=2)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-0000003", "ckpt-0000004"]
