"""A full disk and a read-only folder are reported clearly: a MamaError naming the path and
the reason, nothing half-written, earlier state untouched.

Tests run as root here, where chmod 0o555 does not stop writes. So the real cases mount a
small tmpfs (full disk: real ENOSPC from the kernel, through safetensors' Rust writer and
torch.save's zip writer) or a read-only tmpfs (EROFS); they are skipped with that reason
when mounting is not allowed. The monkeypatched ENOSPC cases run everywhere."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from mama_core.errors import MamaError, ModelError, RegistryError

from . import modelfuzz


def _mount(path: Path, size_kib: int, read_only: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size_kib}k" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.fixture()
def tmpfs(tmp_path):
    """mount(name, size_kib, read_only) -> a freshly mounted folder; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size_kib: int, read_only: bool = False) -> Path:
        path = tmp_path / name
        if not _mount(path, size_kib, read_only):
            pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): no real full or read-only disk")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(folder: Path, leave_bytes: int) -> None:
    """Take all but `leave_bytes` of the free space of folder's file system."""
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as fh:
        try:
            fh.write(b"\0" * max(0, free - leave_bytes))
        except OSError:
            pass


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# --------------------------------------------------------------------------- checkpoints


def _tiny_training_state():
    model = torch.nn.Linear(64, 64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 64)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return model, optimizer, scheduler


def _save(run: Path, step: int, state) -> Path:
    from mama_core.training.checkpoint import rng_state, save_checkpoint

    return save_checkpoint(run, step, *state, {"seed": 0}, [rng_state()], keep_last=5)


def _assert_only_complete(run: Path, expected_steps: list[int]) -> None:
    from mama_core.training.checkpoint import list_checkpoints, load_checkpoint

    entries = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert entries == [f"ckpt-{s:07d}" for s in expected_steps], entries  # no .tmp debris
    for ckpt in list_checkpoints(run):
        load_checkpoint(ckpt, *_tiny_training_state())


def test_checkpoint_on_a_full_disk(tmpfs):
    disk = tmpfs("disk", 512)
    state = _tiny_training_state()
    _save(disk / "run", 1, state)
    _fill(disk, 8 * 1024)
    with pytest.raises(MamaError) as info:
        _save(disk / "run", 2, state)
    message = str(info.value)
    assert str(disk / "run" / "checkpoints" / "ckpt-0000002") in message
    assert "cannot write the checkpoint" in message and "free on that disk" in message
    _assert_only_complete(disk / "run", [1])


@pytest.mark.parametrize("writer", ["safetensors", "torch.save", "state.json"])
def test_checkpoint_enospc_simulated(tmp_path, monkeypatch, writer):
    """Each of the three writers fails after writing part of its file."""
    from mama_core.training import checkpoint

    state = _tiny_training_state()
    _save(tmp_path / "run", 1, state)

    def half_then_enospc(real):
        def fake(obj, target, *args, **kwargs):
            Path(target).write_bytes(b"partial")
            _enospc()
        return fake

    if writer == "safetensors":
        monkeypatch.setattr(checkpoint, "save_file", half_then_enospc(checkpoint.save_file))
    elif writer == "torch.save":
        monkeypatch.setattr(checkpoint.torch, "save", half_then_enospc(torch.save))
    else:
        real_write_text = Path.write_text

        def write_text(self, data, *args, **kwargs):
            if self.name == "state.json":
                real_write_text(self, data[:10], *args, **kwargs)
                _enospc()
            return real_write_text(self, data, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(MamaError, match="No space left on device") as info:
        _save(tmp_path / "run", 2, state)
    assert "ckpt-0000002" in str(info.value)
    monkeypatch.undo()
    _assert_only_complete(tmp_path / "run", [1])


# --------------------------------------------------------------------------- registry


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return modelfuzz.build_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")


def _model_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_registry_add_on_a_full_disk(tmpfs, model_dir):
    from mama_core.registry import Registry

    disk = tmpfs("models", max(64, _model_bytes(model_dir) // 2048))  # half the model fits
    registry = Registry(disk / "models")
    with pytest.raises(RegistryError) as info:
        registry.add(model_dir, "tiny", "trained")
    assert str(disk / "models") in str(info.value) and "No space left" in str(info.value)
    assert os.listdir(disk / "models") == []  # the staging copy is gone
    assert Registry(disk / "models").list() == []


def test_registry_add_enospc_simulated(tmp_path, model_dir, monkeypatch):
    from mama_core import registry as registry_mod

    registry = registry_mod.Registry(tmp_path / "models")
    first = registry.add(model_dir, "first", "trained")
    registry.activate(first.id)
    real_copytree = shutil.copytree

    def half_copy(src, dst, *args, **kwargs):
        real_copytree(Path(src) / "text", Path(dst) / "text")
        _enospc()

    monkeypatch.setattr(registry_mod.shutil, "copytree", half_copy)
    with pytest.raises(RegistryError, match="No space left on device") as info:
        registry.add(model_dir, "second", "trained")
    assert str(registry.root) in str(info.value)
    monkeypatch.undo()
    assert [v.id for v in registry.list()] == [first.id]
    assert not list(registry.root.glob(".staging-*"))
    assert registry.active_id() == first.id


def test_registry_activate_on_a_full_disk(tmpfs, model_dir):
    from mama_core.registry import Registry

    disk = tmpfs("models", 4 * max(64, _model_bytes(model_dir) // 1024))
    registry = Registry(disk / "models")
    first = registry.add(model_dir, "first", "trained")
    registry.activate(first.id)
    second = registry.add(model_dir, "second", "trained")
    _fill(disk, 0)
    with pytest.raises(RegistryError, match="active.json: could not write: No space left"):
        registry.activate(second.id)
    (disk / "filler").unlink()
    assert registry.active_id() == first.id  # the pointer is untouched
    assert sorted(p.name for p in registry.root.iterdir() if p.name.startswith(".")) == []


# --------------------------------------------------------------------------- read-only folders


def test_model_export_into_read_only_folder(tmpfs, model_dir):
    from mama_core.model.io import load_model_dir, save_model_dir

    folder = tmpfs("ro", 64, read_only=True)
    model, _ = load_model_dir(model_dir)
    with pytest.raises(ModelError, match="Read-only file system") as info:
        save_model_dir(model, folder / "exported")
    assert str(folder / "exported") in str(info.value)


def test_model_export_where_a_file_is(tmp_path, model_dir):
    """Portable stand-in for a read-only folder (works as root too): the parent is a file."""
    from mama_core.model.io import load_model_dir, save_model_dir

    (tmp_path / "afile").write_text("not a folder")
    model, _ = load_model_dir(model_dir)
    with pytest.raises(ModelError, match="cannot write the model directory") as info:
        save_model_dir(model, tmp_path / "afile" / "exported")
    assert str(tmp_path / "afile" / "exported") in str(info.value)


TINY = ["--set", "model.vision.hidden_size=32", "--set", "model.vision.num_layers=1", "--set", "image_size=56",
        "--set", "model.text.max_length=64", "--set", "val_every=0", "--set", "ckpt_every=1"]


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    from mama_core.synthetic import generate_studies

    out = tmp_path_factory.mktemp("disk-studies") / "studies"
    generate_studies(out, 2, seed=0, rows=256)
    return out


def _train(out: Path, studies: Path, capsys) -> tuple[int, str]:
    from mama_core.cli import main

    smoke = Path(__file__).resolve().parents[2] / "resources" / "configs" / "smoke.yaml"
    code = main(["train", "--config", str(smoke), "--data", str(studies), "--out", str(out), "--max-steps", "2", *TINY])
    return code, capsys.readouterr().err


def test_train_out_into_read_only_folder(tmpfs, studies, capsys):
    folder = tmpfs("ro-train", 64, read_only=True)
    code, err = _train(folder / "run", studies, capsys)
    assert code == 2 and str(folder / "run") in err and "Read-only" in err


def test_train_out_where_a_file_is(tmp_path, studies, capsys):
    (tmp_path / "afile").write_text("not a folder")
    code, err = _train(tmp_path / "afile" / "run", studies, capsys)
    assert code == 2 and str(tmp_path / "afile" / "run") in err


def test_train_checkpoint_on_a_full_disk(tmpfs, studies, capsys):
    """A real run whose first checkpoint does not fit: exit 2, a message naming the
    checkpoint, and no half-written checkpoint left."""
    disk = tmpfs("train-disk", 128)
    code, err = _train(disk / "run", studies, capsys)
    assert code == 2, err[-2000:]
    assert "cannot write the checkpoint" in err and str(disk / "run" / "checkpoints") in err
    leftovers = list((disk / "run" / "checkpoints").iterdir()) if (disk / "run" / "checkpoints").exists() else []
    assert leftovers == []
