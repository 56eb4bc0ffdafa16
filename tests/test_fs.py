"""mama_core.fs: the one atomic-write module (kills inside writes: tests/hardening/test_fault_points.py)."""

from __future__ import annotations

import json
import os

import pytest

from mama_core import fs


def test_write_replaces_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "table.json"
    fs.write_json(target, {"a": 1})
    fs.write_json(target, {"a": 2}, indent=1)
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["table.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "data.bin"
    fs.write_bytes(target, b"old")

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        fs.write_with(target, broken)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_publish_and_remove_are_single_renames(tmp_path):
    with fs.staging_dir(tmp_path, "v1") as staging:
        (staging / "weights").write_bytes(b"w")
        fs.publish_dir(staging, tmp_path / "v1")
    assert (tmp_path / "v1" / "weights").read_bytes() == b"w"
    with pytest.raises(FileExistsError), fs.staging_dir(tmp_path, "v1") as staging:
        fs.publish_dir(staging, tmp_path / "v1")
    fs.remove_tree(tmp_path / "v1")
    fs.remove_tree(tmp_path / "v1")  # already gone: fine
    assert list(tmp_path.iterdir()) == []


def test_sweep_removes_only_dead_writers_scratch(tmp_path):
    dead = 999_999_999
    for name in (f".tmp-{dead}-x-a.json", f".trash-{dead}-x-v1", f".staging-{dead}-x-v2",
                 f".tmp-{os.getpid()}-x-b.json", "notes.tmp", ".tmp-notes"):
        path = tmp_path / name
        path.mkdir() if "-v" in name else path.write_text("x")
    fs.sweep_orphans(tmp_path, spare_own=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".tmp-{os.getpid()}-x-b.json", "notes.tmp", ".tmp-notes"])
