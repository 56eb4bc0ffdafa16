"""Versioned model registry in the user data dir (issue: one-click local fine-tuning).

Layout under `user_data_dir()/models/`:

    v0001-demo/            one immutable directory per version
        version.json       id, name, kind, created, parent, report, data_fingerprint,
                           and `model_dir` when the weights live elsewhere (the shipped demo)
        config.json, model.safetensors, text/, heads/ ...   (a model directory)
    active.json            {"id": ..., "history": [...]} replaced atomically
    .staging-<pid>-*/      half-written versions (.tmp-, .trash-: files being written, versions
                           being deleted); never listed, swept on open once <pid> is gone

Every write goes through `mama_core.fs`: a version becomes visible only by one rename of a
fully written, fsynced staging directory, the active pointer only by one rename of a fully
written file, and a deleted version disappears by one rename before it is removed, so a
killed or failed run leaves no half-written version and never changes the active model.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mama_core import fs
from mama_core.errors import RegistryError
from mama_core.paths import resources_dir, user_data_dir

LICENCE_NOTE = (
    "This model was trained or fine-tuned on local data. Before sharing it, check that the "
    "data's licence and your institution's rules allow releasing weights derived from it "
    "(for example, the EMBED licence forbids releasing weights trained on EMBED). "
    "Research use only - not for diagnosis.\n"
)


@dataclass
class Version:
    id: str
    name: str
    kind: str  # "demo" | "imported" | "trained" | "finetuned"
    created: str
    path: Path  # the version directory
    parent: str | None = None
    report: dict[str, Any] | None = None
    data_fingerprint: str | None = None
    external_model_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        """Where the weights are: the version directory itself, or (demo) the shipped folder."""
        return Path(self.external_model_dir) if self.external_model_dir else self.path

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "created": self.created,
            "parent": self.parent, "report": self.report, "data_fingerprint": self.data_fingerprint,
            "model_dir": self.external_model_dir, "extra": self.extra,
        }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "model"


def _make_read_only(root: Path) -> None:
    # Immutability is a promise to the user; read-only files make accidental edits loud.
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    try:
        fs.write_json(path, data, fault="registry.pointer", indent=2)
    except OSError as exc:  # disk full / read-only: the old file is untouched
        raise RegistryError(f"could not write: {exc.strerror or exc}", path) from exc


class Registry:
    """All operations on the model store. Cheap to construct; state lives on disk."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else user_data_dir() / "models"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"cannot create the model registry: {exc.strerror}", self.root) from exc
        self._sweep_staging()

    # -- reading -----------------------------------------------------------------
    def list(self) -> list[Version]:
        versions = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and not entry.name.startswith(".") and (entry / "version.json").is_file():
                versions.append(self._read_version(entry))
        return versions

    def get(self, version_id: str) -> Version:
        path = self.root / version_id
        if version_id.startswith(".") or not (path / "version.json").is_file():
            known = ", ".join(v.id for v in self.list()) or "none"
            raise RegistryError(f"no model version '{version_id}' (known: {known})", self.root)
        return self._read_version(path)

    def active_id(self) -> str | None:
        return self._read_pointer().get("id")

    def active(self) -> Version:
        """The active version; on a fresh install the shipped demo model is registered and activated."""
        active = self.active_id()
        if active and (self.root / active / "version.json").is_file():
            return self.get(active)
        demo = self.ensure_demo()
        self.activate(demo.id)
        return demo

    def _read_version(self, path: Path) -> Version:
        try:
            data = json.loads((path / "version.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"unreadable version.json: {exc}", path) from exc
        if not isinstance(data, dict):
            raise RegistryError("unreadable version.json: not a JSON object", path)
        return Version(
            id=path.name, name=data.get("name", path.name), kind=data.get("kind", "trained"),
            created=data.get("created", ""), path=path, parent=data.get("parent"),
            report=data.get("report"), data_fingerprint=data.get("data_fingerprint"),
            external_model_dir=data.get("model_dir"), extra=data.get("extra") or {},
        )

    def _read_pointer(self) -> dict[str, Any]:
        pointer = self.root / "active.json"
        if not pointer.is_file():
            return {"id": None, "history": []}
        try:
            data = json.loads(pointer.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"the active-model pointer is unreadable: {exc}", pointer) from exc
        if not isinstance(data, dict):
            raise RegistryError("the active-model pointer is unreadable: not a JSON object", pointer)
        return data

    # -- writing -----------------------------------------------------------------
    def add(self, source_dir: str | Path | None, name: str, kind: str, *, parent: str | None = None,
            report: dict[str, Any] | None = None, data_fingerprint: str | None = None,
            external: bool = False, extra: dict[str, Any] | None = None) -> Version:
        """Copy a finished model directory in as a new immutable version (not activated).

        With `external=True` nothing is copied: the version refers to `source_dir` (used for
        the shipped demo model, which lives read-only in the installation)."""
        source = Path(source_dir) if source_dir is not None else None
        if source is not None and not (source / "config.json").is_file():
            raise RegistryError("not a model directory (no config.json)", source)
        version_id = self._next_id(name)
        try:
            with fs.staging_dir(self.root) as staging:
                if source is not None and not external:
                    shutil.copytree(source, staging, dirs_exist_ok=True)
                meta = Version(
                    id=version_id, name=name, kind=kind, path=self.root / version_id,
                    created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), parent=parent, report=report,
                    data_fingerprint=data_fingerprint,
                    external_model_dir=str(source.resolve()) if external and source else None,
                    extra=extra or {},
                )
                (staging / "version.json").write_text(json.dumps(meta.to_json(), indent=2), encoding="utf-8")
                _make_read_only(staging)
                fs.publish_dir(staging, self.root / version_id, fault="registry.add")
        except OSError as exc:
            raise RegistryError(f"could not save model version '{name}': {exc.strerror or exc}", self.root) from exc
        return self.get(version_id)

    def ensure_demo(self) -> Version:
        for version in self.list():
            if version.kind == "demo":
                return version
        demo_dir = resources_dir() / "models" / "demo"
        if not (demo_dir / "config.json").is_file():
            raise RegistryError("the demo model is not built (see docs/demo-model.md)", demo_dir)
        return self.add(demo_dir, "demo", "demo", external=True)

    def activate(self, version_id: str) -> Version:
        version = self.get(version_id)
        pointer = self._read_pointer()
        history = [h for h in pointer.get("history", []) if h != version_id]
        if pointer.get("id") and pointer["id"] != version_id:
            history.append(pointer["id"])
        _write_json_atomic(self.root / "active.json", {"id": version_id, "history": history[-50:]})
        return version

    def rollback(self) -> Version:
        """Re-activate the previously active version that still exists."""
        pointer = self._read_pointer()
        history = [h for h in pointer.get("history", []) if (self.root / h / "version.json").is_file()]
        if not history:
            raise RegistryError("nothing to roll back to: no earlier active version", self.root)
        previous = history.pop()
        _write_json_atomic(self.root / "active.json", {"id": previous, "history": history})
        return self.get(previous)

    def delete(self, version_id: str) -> None:
        version = self.get(version_id)
        if version_id == self.active_id():
            raise RegistryError(f"'{version_id}' is the active model; activate another version first", version.path)
        fs.remove_tree(version.path)  # hidden first, then removed: never half-deleted in list()

    def export(self, version_id: str, zip_path: str | Path) -> Path:
        """A zip for sharing within the institution, with the data-licence reminder inside."""
        version = self.get(version_id)
        zip_path = Path(zip_path)
        fs.write_with(zip_path, lambda tmp: _write_zip(version, tmp))
        return zip_path

    # -- housekeeping ------------------------------------------------------------
    def _next_id(self, name: str) -> str:
        numbers = [int(m.group(1)) for p in self.root.iterdir() if (m := re.match(r"v(\d{4,})-", p.name))]
        return f"v{max(numbers, default=0) + 1:04d}-{_slug(name)}"

    def _sweep_staging(self) -> None:
        """Remove what killed writers left behind; a live process's staging dir is its own business
        (the desktop opens the registry while a fine-tune child may be saving)."""
        fs.sweep_orphans(self.root)


def _write_zip(version: Version, path: Path) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(version.model_dir.rglob("*")):
            if file.is_file() and file.name != "version.json":
                zf.write(file, f"{version.id}/{file.relative_to(version.model_dir)}")
        zf.writestr(f"{version.id}/version.json", json.dumps(version.to_json(), indent=2))
        zf.writestr(f"{version.id}/DATA-LICENCE-NOTE.txt", LICENCE_NOTE)




def active_model_dir() -> Path:
    """The model directory of the registry's active version (the demo on a fresh install)."""
    return Registry().active().model_dir
