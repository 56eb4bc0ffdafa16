"""Text search over studies: an on-disk index of image embeddings, built incrementally.

Layout under `user_data_dir()/indexes/<name>/`:

    manifest.json          {"format", "name", "folder", "model": {"name", "fingerprint"},
                            "files": {path: {"size", "mtime_ns", "study_uid", "view", "entry"}},
                            "studies": {uid: {"folder", "views": {key: path}}}}
    features/<entry>.safetensors   per image file: "global" [D] float32 (L2-normalised),
                                   "patches" [P, D] float16 (L2-normalised local embeddings),
                                   "content" [P] uint8 (1 = patch covers image, 0 = padding)

Safetensors and JSON only; nothing is ever unpickled.  A file is re-encoded only when its
path, size or mtime changed; files gone from the folder leave the index.

Scoring of a query (docs/inference.md): per view v,
    global_v = cos(text_global, image_global_v)                        (paper eq. (2) space)
    local_v  = max over content patches p of cos(sentence_local, patch_p)  (SLA, eq. (3))
    score_v  = (1 - w) * global_v + w * local_v        (w = local_weight, DEFAULT_LOCAL_WEIGHT)
and per study: global = max_v global_v, local = max_v local_v, score = max_v score_v, and
best_view = argmax_v score_v.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from mama_core.errors import ConfigError, DataError, ModelError, StoppedError
from mama_core.inference.cache import file_key
from mama_core.inference.maps import content_patch_mask
from mama_core.paths import user_data_dir

INDEX_FORMAT = 1


@dataclass
class IndexProgress:
    done: int  # files handled so far
    total: int  # files in the folder
    encoded: int  # files encoded so far in this run (new or changed)
    path: str | None  # the file just handled
    study_uid: str | None
    finished: bool = False
    removed: int = 0  # files dropped because they left the folder

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SearchHit:
    study_uid: str
    folder: str
    score: float
    global_score: float
    local_score: float
    best_view: str

    def to_json(self) -> dict:
        return dict(self.__dict__)


def index_name_for(folder: str | Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(folder).resolve().name).strip("-") or "index"


def index_dir(name: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise DataError(f"invalid index name {name!r} (letters, digits, '_', '-', '.')", field="name")
    return user_data_dir() / "indexes" / name


def list_indexes() -> list[str]:
    root = user_data_dir() / "indexes"
    return sorted(p.name for p in root.glob("*") if (p / "manifest.json").exists()) if root.exists() else []


def read_manifest(name: str) -> dict:
    path = index_dir(name) / "manifest.json"
    if not path.exists():
        known = ", ".join(list_indexes()) or "none"
        raise DataError(f"no search index named {name!r} (known: {known}); build one with `mama index FOLDER`", path=path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"corrupt index manifest: {exc}", path=path) from None
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        data = data if isinstance(data, dict) else {}
        raise DataError(f"unsupported index format {data.get('format')!r}", path=path)
    return data


def _write_manifest(root: Path, manifest: dict) -> None:
    tmp = root / "manifest.json.tmp"
    try:
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, root / "manifest.json")
    except OSError as exc:  # disk full / read-only: the previous manifest is untouched
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write the index manifest: {exc.strerror or exc}", path=root / "manifest.json") from None


def _entry_name(path: str) -> str:
    return hashlib.sha1(path.encode()).hexdigest()[:20]


def _model_id(predictor: Any) -> dict:
    return {"name": predictor.name, "fingerprint": predictor.fingerprint}


def check_model(manifest: dict, predictor: Any, name: str) -> None:
    """Refuse to mix embeddings of two models: they live in different spaces."""
    built = manifest.get("model", {})
    if built.get("fingerprint") != predictor.fingerprint:
        raise ModelError(
            f"index {name!r} was built with model {built.get('name')!r} ({built.get('fingerprint')}); "
            f"the current model is {predictor.name!r} ({predictor.fingerprint}). "
            "Rebuild it with --rebuild (or `mama index FOLDER --rebuild`)", path=index_dir(name))


def _folder_files(folder: Path) -> list[tuple[str, str, str, str]]:
    """(path, study uid, view key, study folder) for every image of every study."""
    from mama_core.dicom import find_studies

    rows = []
    for study in find_studies(folder):
        for key, path in study.images.items():
            rows.append((str(Path(path).resolve()), study.uid, key, str(Path(path).resolve().parent)))
    return rows


def _encode_entry(predictor: Any, path: str, target: Path) -> None:
    feats = predictor.image_features(path)
    content = content_patch_mask(feats).reshape(-1).astype(np.uint8)
    try:
        save_file({
            "global": feats.image_global.numpy().astype(np.float32),
            "patches": feats.image_patches.numpy().astype(np.float16),
            "content": content,
        }, str(target))
    except (OSError, SafetensorError) as exc:  # disk full / read-only
        target.unlink(missing_ok=True)
        raise DataError(f"cannot write index features: {exc}", path=target) from None


def _fresh_manifest(name: str, folder: Path, predictor: Any) -> dict:
    return {"format": INDEX_FORMAT, "name": name, "folder": str(folder), "model": _model_id(predictor),
            "files": {}, "studies": {}}


def _start(folder: Path, predictor: Any, name: str, rebuild: bool) -> tuple[Path, dict]:
    root = index_dir(name)
    if rebuild and root.exists():
        shutil.rmtree(root)
    (root / "features").mkdir(parents=True, exist_ok=True)
    if not (root / "manifest.json").exists():
        return root, _fresh_manifest(name, folder, predictor)
    manifest = read_manifest(name)
    check_model(manifest, predictor, name)
    return root, manifest


def build_index(folder: str | Path, predictor: Any, name: str | None = None,
                stop: Callable[[], bool] | Any | None = None, rebuild: bool = False) -> Iterator[IndexProgress]:
    """Index every study image under `folder`; yields one IndexProgress per file, then a
    final one with finished=True.  `stop` (callable or threading.Event) ends the run early
    with StoppedError after saving what was encoded so far."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise DataError("not a folder", path=folder)
    name = name or index_name_for(folder)
    root, manifest = _start(folder, predictor, name, rebuild)
    rows = _folder_files(folder)
    present = {r[0] for r in rows}
    removed = _drop_missing(root, manifest, present)
    encoded = 0
    for i, (path, uid, key, study_folder) in enumerate(rows, 1):
        if _stopped(stop):
            _write_manifest(root, manifest)
            raise StoppedError("indexing stopped; the files encoded so far are saved", path=root)
        encoded += _update_file(root, manifest, predictor, path, uid, key, study_folder)
        if encoded and encoded % 50 == 0:
            _write_manifest(root, manifest)  # checkpoint long runs
        yield IndexProgress(i, len(rows), encoded, path, uid, removed=removed)
    manifest["studies"] = _studies_from_files(manifest["files"])
    _write_manifest(root, manifest)
    yield IndexProgress(len(rows), len(rows), encoded, None, None, finished=True, removed=removed)


def _stopped(stop: Any) -> bool:
    if stop is None:
        return False
    return bool(stop.is_set() if hasattr(stop, "is_set") else stop())


def _update_file(root: Path, manifest: dict, predictor: Any, path: str, uid: str, key: str, study_folder: str) -> int:
    _, size, mtime = file_key(path)
    old = manifest["files"].get(path)
    entry = _entry_name(path)
    if old and old["size"] == size and old["mtime_ns"] == mtime and (root / "features" / f"{entry}.safetensors").exists():
        old.update(study_uid=uid, view=key, folder=study_folder)
        return 0
    _encode_entry(predictor, path, root / "features" / f"{entry}.safetensors")
    manifest["files"][path] = {"size": size, "mtime_ns": mtime, "study_uid": uid, "view": key,
                               "folder": study_folder, "entry": entry}
    return 1


def _drop_missing(root: Path, manifest: dict, present: set[str]) -> int:
    gone = [p for p in manifest["files"] if p not in present]
    for p in gone:
        (root / "features" / f"{manifest['files'][p]['entry']}.safetensors").unlink(missing_ok=True)
        del manifest["files"][p]
    return len(gone)


def _studies_from_files(files: dict) -> dict:
    studies: dict[str, dict] = {}
    for path, rec in files.items():
        s = studies.setdefault(rec["study_uid"], {"folder": rec["folder"], "views": {}})
        s["views"][rec["view"]] = path
    return studies


def _load_features(root: Path, manifest: dict) -> list[tuple[str, str, dict]]:
    out = []
    for path, rec in manifest["files"].items():
        f = root / "features" / f"{rec['entry']}.safetensors"
        try:
            out.append((rec["study_uid"], rec["view"], load_file(str(f))))
        except (OSError, ValueError, SafetensorError) as exc:
            raise DataError(f"unreadable index entry for {path}: {exc}; rebuild the index", path=f) from None
    return out


def _view_scores(t_global: np.ndarray, t_local: np.ndarray, feats: dict) -> tuple[float, float]:
    g = float(feats["global"] @ t_global)
    patches = feats["patches"].astype(np.float32)[feats["content"].astype(bool)]
    loc = float((patches @ t_local).max()) if len(patches) else -1.0
    return g, loc


DEFAULT_LOCAL_WEIGHT = 0.5  # an even share of the global and the local score


def search(text: str, predictor: Any, name: str | None = None, top_k: int = 10,
           local_weight: float = DEFAULT_LOCAL_WEIGHT) -> list[SearchHit]:
    """Studies of index `name` ranked by similarity to `text` (see module docstring);
    `local_weight` in [0, 1] is the share of the SLA (sentence-to-patch) score."""
    if not text.strip():
        raise DataError("empty search text")
    if not 0.0 <= local_weight <= 1.0:
        raise ConfigError(f"must be between 0 and 1, not {local_weight}", field="local_weight")
    name = name or _default_index()
    manifest = read_manifest(name)
    check_model(manifest, predictor, name)
    t_global = predictor.embed_text([text])[0]
    t_local = predictor.sentence_embeddings([text])[0].numpy()
    best: dict[str, SearchHit] = {}
    for uid, view, feats in _load_features(index_dir(name), manifest):
        g, loc = _view_scores(t_global, t_local, feats)
        score = (1.0 - local_weight) * g + local_weight * loc
        _merge_hit(best, SearchHit(uid, manifest["studies"].get(uid, {}).get("folder", ""), score, g, loc, view))
    return sorted(best.values(), key=lambda h: h.score, reverse=True)[:top_k]


def _merge_hit(best: dict, view_hit: SearchHit) -> None:
    """Keep per study the best view score and the best global and local scores."""
    hit = best.get(view_hit.study_uid)
    if hit is None:
        best[view_hit.study_uid] = view_hit
        return
    hit.global_score = max(hit.global_score, view_hit.global_score)
    hit.local_score = max(hit.local_score, view_hit.local_score)
    if view_hit.score > hit.score:
        hit.score, hit.best_view = view_hit.score, view_hit.best_view


def _default_index() -> str:
    names = list_indexes()
    if len(names) == 1:
        return names[0]
    if not names:
        raise DataError("no search index yet; build one with `mama index FOLDER`")
    raise DataError(f"several indexes ({', '.join(names)}); choose one with --index")


def index_folder(name: str) -> Path:
    """The folder an index was built from (for --rebuild)."""
    return Path(read_manifest(name)["folder"])


__all__ = ["IndexProgress", "SearchHit", "build_index", "search", "list_indexes", "index_dir", "read_manifest",
           "index_folder", "check_model"]
