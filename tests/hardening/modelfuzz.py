"""Damaged model directories: each case copies a valid tiny model directory and breaks
one thing. Used by test_fuzz_model_dir.py and fuzz_report.py."""

from __future__ import annotations

import json
import random
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file


def build_tiny_model_dir(path: Path) -> Path:
    """The tiny model of tests/inference/conftest.py (tiny DINOv2 + real MiniLM with LoRA),
    plus a probe head and a calibration file so that those loaders are exercised too."""
    from mama_core.inference.heads import ProbeHead, save_head
    from tests.inference.conftest import build_tiny_model_dir as build_plain

    out = build_plain(path)
    rng = np.random.default_rng(0)
    save_head(out, ProbeHead("density", [1, 2, 3, 4], rng.normal(size=(4, 16)).astype(np.float32),
                             np.zeros(4, np.float32)))
    (out / "calibration.json").write_text(json.dumps({"no_match_threshold": 0.2, "map_range": [0.1, 0.6]}))
    return out


# --------------------------------------------------------------------------- helpers


def _config(d: Path) -> dict:
    return json.loads((d / "config.json").read_text())


def _write_config(d: Path, cfg: dict) -> None:
    (d / "config.json").write_text(json.dumps(cfg))


def _edit_model_cfg(section: str | None, key: str, value: object) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        cfg = _config(d)
        target = cfg["model"] if section is None else cfg["model"][section]
        if value is _DELETE:
            target.pop(key, None)
        else:
            target[key] = value
        _write_config(d, cfg)
    return edit


_DELETE = object()


def _truncate(name: str, fraction: float) -> Callable[[Path], None]:
    def cut(d: Path) -> None:
        f = d / name
        data = f.read_bytes()
        f.write_bytes(data[: int(len(data) * fraction)])
    return cut


def _tensors(d: Path, change: Callable[[dict], None]) -> None:
    t = load_file(str(d / "model.safetensors"))
    change(t)
    save_file(t, str(d / "model.safetensors"))


def _reshape_one(t: dict) -> None:
    key = sorted(k for k, v in t.items() if v.ndim == 2)[0]
    t[key] = torch.zeros(t[key].shape[0] + 1, t[key].shape[1])


def _drop_one(t: dict) -> None:
    del t[sorted(t)[0]]


def _add_one(t: dict) -> None:
    t["unexpected.weight"] = torch.zeros(3)


def _half_precision(t: dict) -> None:
    for k in t:
        t[k] = t[k].half()


def _header_length(value: int) -> Callable[[Path], None]:
    def patch(d: Path) -> None:
        f = d / "model.safetensors"
        data = bytearray(f.read_bytes())
        data[:8] = struct.pack("<Q", value)
        f.write_bytes(bytes(data))
    return patch


def _flip_header(d: Path) -> None:
    f = d / "model.safetensors"
    data = bytearray(f.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    rnd = random.Random(0)
    for _ in range(8):
        pos = 8 + rnd.randrange(n)
        data[pos] ^= 1 << rnd.randrange(8)
    f.write_bytes(bytes(data))


def _head(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        from safetensors.numpy import load_file as load_numpy

        f = d / "heads" / "density.safetensors"
        t = load_numpy(str(f))
        change(t)
        save_numpy(t, str(f))
    return edit


def _write(rel: str, content: bytes) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / rel).write_bytes(content)
    return edit


def _remove(rel: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        p = d / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return edit


def _replace_by_dir(rel: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        _remove(rel)(d)
        (d / rel).mkdir()
    return edit


CASES: dict[str, Callable[[Path], None]] = {
    # missing files
    "no config.json": _remove("config.json"),
    "no model.safetensors": _remove("model.safetensors"),
    "no text/": _remove("text"),
    "no text/separator.json": _remove("text/separator.json"),
    "no tokenizer.json": _remove("text/tokenizer.json"),
    "model.safetensors is a folder": _replace_by_dir("model.safetensors"),
    "config.json is a folder": _replace_by_dir("config.json"),
    # truncated / corrupt safetensors
    **{f"safetensors cut at {int(f * 100)}%": _truncate("model.safetensors", f) for f in (0.0, 0.001, 0.3, 0.999)},
    "safetensors header length 0xFFFFFFFFFFFFFFF0": _header_length(0xFFFFFFFFFFFFFFF0),
    "safetensors header length 0": _header_length(0),
    "safetensors header bit flips": _flip_header,
    "safetensors random bytes": _write("model.safetensors", bytes(random.Random(1).randrange(256) for _ in range(5000))),
    # wrong tensors
    "tensor of the wrong shape": lambda d: _tensors(d, _reshape_one),
    "tensor missing": lambda d: _tensors(d, _drop_one),
    "unexpected tensor": lambda d: _tensors(d, _add_one),
    "float16 tensors": lambda d: _tensors(d, _half_precision),
    # config.json
    "config invalid JSON": _write("config.json", b'{"format": "mama-model", '),
    "config empty": _write("config.json", b""),
    "config not UTF-8": _write("config.json", b'{"format": "\xff\xfe"}'),
    "config is a JSON list": _write("config.json", b"[1, 2, 3]"),
    "config is JSON null": _write("config.json", b"null"),
    "config format_version 99": lambda d: _write_config(d, {**_config(d), "format_version": 99}),
    "config format_version text": lambda d: _write_config(d, {**_config(d), "format_version": "1"}),
    "config without model": lambda d: _write_config(d, {k: v for k, v in _config(d).items() if k != "model"}),
    "config model is a list": lambda d: _write_config(d, {**_config(d), "model": [1]}),
    "config vision is a string": _edit_model_cfg(None, "vision", "dinov2"),
    "config text is null": _edit_model_cfg(None, "text", None),
    "config text without path": _edit_model_cfg("text", "path", _DELETE),
    "config text path missing dir": _edit_model_cfg("text", "path", "/nonexistent/text-model"),
    "config embed_dim text": _edit_model_cfg(None, "embed_dim", "abc"),
    "config embed_dim 32 (weights 16)": _edit_model_cfg(None, "embed_dim", 32),
    "config embed_dim -1": _edit_model_cfg(None, "embed_dim", -1),
    "config hidden_size 48 (weights 32)": _edit_model_cfg("vision", "hidden_size", 48),
    "config hidden_size 33 (heads 2)": _edit_model_cfg("vision", "hidden_size", 33),
    "config hidden_size 10^9": _edit_model_cfg("vision", "hidden_size", 10**9),
    "config num_layers 10^6": _edit_model_cfg("vision", "num_layers", 10**6),
    "config image_size 10^7": _edit_model_cfg("vision", "image_size", 10**7),
    "config unknown vision source": _edit_model_cfg("vision", "source", "url"),
    "config unknown key": _edit_model_cfg("vision", "colour", "blue"),
    "vision_hf_config garbage": lambda d: _write_config(d, {**_config(d), "vision_hf_config": {"hidden_size": "x"}}),
    "separator.json invalid": _write("text/separator.json", b"{not json"),
    # heads and calibration
    "head weights truncated": _truncate("heads/density.safetensors", 0.5),
    "head json invalid": _write("heads/density.json", b"{"),
    "head json list": _write("heads/density.json", b"[]"),
    "head classes mismatch": _write("heads/density.json", b'{"format": 1, "task": "density", "classes": [1, 2]}'),
    "head weight shape wrong": _head(lambda t: t.update(weight=np.zeros((4, 7), np.float32))),
    "head without bias": _head(lambda t: t.pop("bias")),
    "head unknown feature": _write("heads/density.json",
                                   b'{"format": 1, "task": "density", "classes": [1,2,3,4], "feature": "x"}'),
    "calibration invalid": _write("calibration.json", b"{"),
    "calibration wrong types": _write("calibration.json", b'{"no_match_threshold": "high", "map_range": 3}'),
    "calibration not UTF-8": _write("calibration.json", b"\xff\xfe\x00"),
}


def make_case(template: Path, name: str, target: Path) -> Path:
    shutil.copytree(template, target)
    CASES[name](target)
    return target
