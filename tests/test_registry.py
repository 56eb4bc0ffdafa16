import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mama_core.errors import RegistryError
from mama_core.registry import Registry


def _model_dir(path: Path, payload: bytes = b"weights") -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"embed_dim": 8}))
    (path / "model.safetensors").write_bytes(payload)
    return path


def test_add_list_activate_rollback(tmp_path):
    reg = Registry(tmp_path / "models")
    a = reg.add(_model_dir(tmp_path / "a"), "first", "trained")
    b = reg.add(_model_dir(tmp_path / "b"), "second probe", "finetuned", parent=a.id, report={"bacc": 0.7})
    assert [v.id for v in reg.list()] == [a.id, b.id]
    assert b.id.startswith("v0002-second-probe")
    assert reg.get(b.id).report == {"bacc": 0.7} and reg.get(b.id).parent == a.id
    reg.activate(a.id)
    reg.activate(b.id)
    assert reg.active_id() == b.id
    assert reg.rollback().id == a.id
    assert reg.active_id() == a.id
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()


def test_versions_are_immutable_copies(tmp_path):
    reg = Registry(tmp_path / "models")
    src = _model_dir(tmp_path / "src")
    v = reg.add(src, "m", "trained")
    (src / "model.safetensors").write_bytes(b"changed later")
    assert (v.model_dir / "model.safetensors").read_bytes() == b"weights"
    with pytest.raises(PermissionError):
        if os.geteuid() == 0:  # root ignores file modes; check the mode bits instead
            assert not (v.model_dir / "model.safetensors").stat().st_mode & 0o222
            raise PermissionError
        (v.model_dir / "model.safetensors").write_bytes(b"x")


def test_delete_never_the_active_one(tmp_path):
    reg = Registry(tmp_path / "models")
    a = reg.add(_model_dir(tmp_path / "a"), "a", "trained")
    b = reg.add(_model_dir(tmp_path / "b"), "b", "trained")
    reg.activate(a.id)
    with pytest.raises(RegistryError, match="active model"):
        reg.delete(a.id)
    reg.delete(b.id)
    assert [v.id for v in reg.list()] == [a.id]
    with pytest.raises(RegistryError, match="no model version"):
        reg.get(b.id)


def test_rejects_non_model_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="no config.json"):
        Registry(tmp_path / "models").add(tmp_path / "empty", "x", "trained")


def test_export_zip_has_licence_note(tmp_path):
    reg = Registry(tmp_path / "models")
    v = reg.add(_model_dir(tmp_path / "a"), "a", "finetuned")
    out = reg.export(v.id, tmp_path / "share.zip")
    names = zipfile.ZipFile(out).namelist()
    assert f"{v.id}/model.safetensors" in names
    note = zipfile.ZipFile(out).read(f"{v.id}/DATA-LICENCE-NOTE.txt").decode()
    assert "EMBED" in note and "not for diagnosis" in note


# A kill inside `Registry.add` and inside the pointer write: tests/hardening/test_fault_points.py.


def test_sweep_spares_a_live_writers_staging(tmp_path):
    root = tmp_path / "models"
    Registry(root)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = root / f".staging-{child.pid}-abc"
        live.mkdir()
        dead = root / ".staging-999999999-abc"
        dead.mkdir()
        Registry(root)
        assert live.exists() and not dead.exists()
    finally:
        child.kill()
        child.wait()
    Registry(root)
    assert not live.exists()


def test_sweep_orphans_spares_own_scratch_when_asked(tmp_path):
    """Fine-tuning sweeps `run-<pid>-*` folders of killed jobs but never its own."""
    from mama_core.fs import sweep_orphans

    own = tmp_path / f"run-{os.getpid()}-x"
    dead = tmp_path / "run-999999999-x"
    unrelated = tmp_path / "run-notes"
    for folder in (own, dead, unrelated):
        folder.mkdir()
    sweep_orphans(tmp_path, "run", spare_own=True)
    assert own.exists() and unrelated.exists() and not dead.exists()
    sweep_orphans(tmp_path, "run")
    assert not own.exists() and unrelated.exists()
