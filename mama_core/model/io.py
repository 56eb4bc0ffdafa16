"""Model directories: config.json + model.safetensors + text/ (tokenizer, separator info).

Nothing here unpickles: weights are safetensors, configuration is JSON. The frozen text
base weights are not copied when they will exist at load time ("minilm" from the installed
package, or a local directory recorded by absolute path); `copy_text_base=True` bundles the
base directory under text/base for a self-contained model directory.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from mama_core.errors import ConfigError, MamaError, ModelError
from mama_core.model.config import ModelConfig
from mama_core.model.mama import MamaModel
from mama_core.model.params import optimizer_param_groups  # noqa: F401  (re-export)
from mama_core.model.text import MINILM
from mama_core.model.vision import require_matching_state

FORMAT = "mama-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TEXT_DIR = "text"
BUNDLED_BASE = "text/base"
_OWN_ENTRIES = {CONFIG_FILE, WEIGHTS_FILE, TEXT_DIR}
_RESERVED = {"format", "format_version", "model", "vision_hf_config", "image_size", "patch_grid",
             "text_base", "text_family", "separator_token", "separator_id"}


# --------------------------------------------------------------------------- save


def _text_path_for_save(model: MamaModel, bundle: bool) -> str:
    if bundle:
        return BUNDLED_BASE
    if model.config.text.path == MINILM:
        return MINILM
    return str(model.text.base_path.resolve())


def _config_record(model: MamaModel, text_path: str, extra: dict | None) -> dict:
    clash = sorted(set(extra or {}) & _RESERVED)
    if clash:
        raise ConfigError(f"extra keys {clash} are reserved", field="extra")
    cfg = replace(model.config, text=replace(model.config.text, path=text_path))
    text = model.text
    record = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "model": cfg.to_dict(),
        "vision_hf_config": model.vision.config.to_dict(),
        "image_size": model.config.vision.image_size, "patch_grid": list(model.patch_grid()),
        "text_base": str(text.base_path), "text_family": text.family,
        "separator_token": text.separator_token, "separator_id": int(text.sep_id),
    }
    record.update(extra or {})
    return record


def _write_text_dir(model: MamaModel, target: Path, bundle: bool) -> None:
    if bundle:
        shutil.copytree(model.text.base_path, target / "base")
    model.text.tokenizer.save_pretrained(target)
    info = {"family": model.text.family, "token": model.text.separator_token,
            "id": int(model.text.sep_id), "max_length": model.text.max_length}
    (target / "separator.json").write_text(json.dumps(info, indent=2))


def _swap_into_place(tmp: Path, directory: Path) -> None:
    """Replace `directory` by `tmp` with renames; entries we do not own (e.g. heads/) move over."""
    if not directory.exists():
        tmp.rename(directory)
        return
    for entry in directory.iterdir():
        if entry.name not in _OWN_ENTRIES:
            entry.rename(tmp / entry.name)
    old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
    directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def save_model_dir(model: MamaModel, directory: str | Path, extra: dict | None = None,
                   copy_text_base: bool | None = None) -> Path:
    """Write a model directory atomically (temp dir + rename) and return its path.

    `extra` entries (JSON-serialisable) are added at the top level of config.json and come
    back in `load_model_dir`'s info dict. `copy_text_base=None` bundles the text base only
    if the model was itself loaded from a bundled directory.
    """
    directory = Path(directory)
    bundle = bool(getattr(model, "text_base_bundled", False) if copy_text_base is None else copy_text_base)
    record = _config_record(model, _text_path_for_save(model, bundle), extra)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        _write_text_dir(model, tmp / TEXT_DIR, bundle)
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.saved_state().items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2, default=str))
        _swap_into_place(tmp, directory)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (OSError, SafetensorError)):  # disk full, read-only folder
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ModelError(f"cannot write the model directory: {reason}", path=directory) from exc
        raise
    return directory


# --------------------------------------------------------------------------- load


def read_model_info(directory: str | Path) -> dict:
    """The parsed config.json of a model directory (no weights are read)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelError("not a model directory (no config.json)", path=Path(directory))
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable config ({exc})", path=path) from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT or "model" not in info:
        raise ModelError(f"not a {FORMAT} config", path=path)
    version = info.get("format_version", 0)
    if not isinstance(version, int) or not isinstance(info["model"], dict):
        raise ModelError(f"not a {FORMAT} config (format_version {version!r}, model section "
                         f"{type(info['model']).__name__})", path=path)
    if version > FORMAT_VERSION:
        raise ModelError(f"format version {info['format_version']} is newer than this program", path=path)
    return info


def _config_from_info(info: dict, directory: Path) -> ModelConfig:
    try:
        cfg = ModelConfig.from_dict(info["model"])
    except (ConfigError, TypeError) as exc:
        raise ModelError(f"invalid model config ({exc})", path=directory / CONFIG_FILE) from exc
    if cfg.text.path == BUNDLED_BASE:
        cfg = replace(cfg, text=replace(cfg.text, path=str(directory / BUNDLED_BASE)))
    return cfg


def _read_tensors(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise ModelError("weights file missing", path=path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"unreadable safetensors file ({exc})", path=path) from exc


def _check_tensors(model: MamaModel, tensors: dict[str, Tensor], path: Path) -> None:
    """Strict: exactly the tensors a saved model holds, with the model's shapes."""
    require_matching_state(model.saved_state(), tensors, path, "weights do not match the model")


def load_model_dir(directory: str | Path, device: str = "cpu") -> tuple[MamaModel, dict]:
    """Rebuild the model from config.json and load model.safetensors strictly.

    Returns (model in eval mode on `device`, the config.json dict including `extra` keys).
    """
    directory = Path(directory)
    info = read_model_info(directory)
    cfg = _config_from_info(info, directory)
    try:
        model = MamaModel(cfg, vision_hf_config=info.get("vision_hf_config"),
                          tokenizer_dir=directory / TEXT_DIR)
    except MamaError as exc:
        if exc.path is not None and (exc.path == directory or directory in exc.path.parents):
            raise
        # e.g. the text model the config points to is gone: name this model's config too
        raise ModelError(str(exc), path=directory / CONFIG_FILE) from exc
    except Exception as exc:  # transformers/torch reject a bad config in many ways (incl. allocation)
        raise ModelError(f"cannot rebuild the model ({type(exc).__name__}: {exc})", path=directory) from exc
    model.text_base_bundled = cfg.text.path == str(directory / BUNDLED_BASE)
    weights = directory / WEIGHTS_FILE
    tensors = _read_tensors(weights)
    _check_tensors(model, tensors, weights)
    model.load_state_dict(tensors, strict=False)
    return model.to(device).eval(), info
