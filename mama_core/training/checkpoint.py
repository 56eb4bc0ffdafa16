"""Training checkpoints: `<run>/checkpoints/ckpt-0001000/`, written atomically, last N kept.

A checkpoint holds
- `model.safetensors` — every trainable tensor (vision encoder, LoRA, heads, temperatures).
  Frozen weights (the text base model) are not copied: they come back from the model's own
  local directory when the model is rebuilt from the same config.
- `optimizer.pt` — AdamW and LR-scheduler state: tensors and primitives only, read back
  with `torch.load(weights_only=True)`, so loading executes no code (docs/method.md §1).
- `state.json` — step, the resolved training config and the RNG states of every rank
  (base64 of the raw generator bytes), so that `--resume` continues exactly.

Writing fills a hidden staging folder, fsyncs it and renames it to `ckpt-XXXXXXX/`; deleting
renames a checkpoint out of sight before removing it (`mama_core.fs`). A visible `ckpt-*`
folder is therefore always complete: a crash leaves the old checkpoints and hidden debris,
which the next save sweeps. `list_checkpoints` still checks that every file is present.
"""

from __future__ import annotations

import base64
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mama_core import fs
from mama_core.errors import MamaError, ModelError

PREFIX = "ckpt-"
FORMAT_VERSION = 1
FILES = ("model.safetensors", "optimizer.pt", "state.json")  # state.json is written last


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first: `ckpt-<digits>` folders holding every file
    (scratch folders, older `.tmp` ones and anything incomplete are ignored)."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and re.fullmatch(PREFIX + r"\d+", p.name)
             and all((p / name).is_file() for name in FILES)]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DistributedDataParallel."""
    return model.module if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel) else model


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().to("cpu").contiguous()
            for name, p in unwrap(model).named_parameters() if p.requires_grad}


# --------------------------------------------------------------------------- RNG states


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _bytes_tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


def rng_state() -> dict[str, Any]:
    """This process's generators as JSON-safe values."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": _b64(torch.get_rng_state().numpy().tobytes()),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = _b64(torch.cuda.get_rng_state().numpy().tobytes())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(_bytes_tensor(state["torch"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(_bytes_tensor(state["cuda"]))


# --------------------------------------------------------------------------- saving


def save_checkpoint(run_dir: str | Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, config: dict[str, Any], rng_states: list[dict[str, Any]],
                    keep_last: int = 3, extra: dict[str, Any] | None = None) -> Path:
    """Write checkpoint `step` atomically and prune all but the last `keep_last`."""
    root = checkpoints_dir(run_dir)
    final = root / f"{PREFIX}{step:07d}"
    state = {"format": FORMAT_VERSION, "step": step, "config": config, "rng": rng_states, **(extra or {})}
    try:
        root.mkdir(parents=True, exist_ok=True)
        fs.sweep_orphans(root)  # what killed saves left behind
        with fs.staging_dir(root, final.name) as tmp:
            save_file(trainable_state(model), str(tmp / "model.safetensors"))
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
            (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
            fs.publish_dir(tmp, final, fault="checkpoint.save", replace=True)
    except (OSError, SafetensorError, RuntimeError) as exc:  # disk full, read-only, quota
        # safetensors reports a full disk as SafetensorError, torch.save as RuntimeError.
        raise MamaError(f"cannot write the checkpoint: {write_failure(exc, root)}; "
                        "earlier checkpoints are unchanged", path=final) from exc
    prune_checkpoints(run_dir, keep_last)
    return final


def write_failure(exc: BaseException, folder: Path) -> str:
    """Why a write failed, in words, with the free space left (a full disk is the usual cause)."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return reason
    return f"{reason} ({free / 2**20:.1f} MiB free on that disk)"


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep_last]:
        try:
            delete_checkpoint(old)
        except OSError:  # an old checkpoint that cannot be removed costs space, not correctness
            pass


def delete_checkpoint(ckpt: str | Path) -> None:
    """Remove one checkpoint atomically: it leaves `list_checkpoints` in one rename."""
    fs.remove_tree(ckpt)


# --------------------------------------------------------------------------- loading


def read_state(ckpt: str | Path) -> dict[str, Any]:
    path = Path(ckpt) / "state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON and bytes that are not UTF-8
        raise ModelError(f"unreadable checkpoint state: {exc}", path=path) from None
    if not isinstance(state, dict):
        raise ModelError("unreadable checkpoint state: not a JSON object", path=path)
    if state.get("format") != FORMAT_VERSION:
        raise ModelError(f"unsupported checkpoint format {state.get('format')!r}", path=path)
    return state


def load_model_weights(ckpt: str | Path, model: nn.Module) -> None:
    """Load the trainable tensors; every trainable parameter must be present."""
    path = Path(ckpt) / "model.safetensors"
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"unreadable checkpoint weights: {exc}", path=path) from None
    bare = unwrap(model)
    expected = {n for n, p in bare.named_parameters() if p.requires_grad}
    missing = sorted(expected - set(tensors))
    result = bare.load_state_dict(tensors, strict=False)
    if result.unexpected_keys or missing:
        raise ModelError(f"checkpoint does not match the model (missing {missing[:3]}, unexpected "
                         f"{list(result.unexpected_keys)[:3]})", path=path)


def load_checkpoint(ckpt: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None) -> dict[str, Any]:
    """Restore weights (and optimiser/scheduler state when given); returns state.json."""
    state = read_state(ckpt)
    load_model_weights(ckpt, model)
    if optimizer is not None or scheduler is not None:
        path = Path(ckpt) / "optimizer.pt"
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling refuses anything but tensors and primitives
            raise ModelError(f"unreadable optimizer state: {exc}", path=path) from None
        if optimizer is not None:
            optimizer.load_state_dict(blob["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(blob["scheduler"])
    return state
