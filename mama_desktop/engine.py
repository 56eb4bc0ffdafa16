"""The desktop's only door into the engine: the public names of docs/architecture.md.

Imports are lazy so that the viewer starts fast; a missing model (for instance the demo
model not built) becomes a `ModelError` that the GUI shows as a notification. A missing
engine module is a broken installation and fails loudly.
"""

from __future__ import annotations

import gc
import importlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mama_core.errors import MamaError
from mama_core import images, paths
# The fine-tuning config imports no torch: the dialog reads its choices and defaults at once.
from mama_core.finetune import MODES as FINETUNE_MODES, TASK_CLASSES, FinetuneConfig


# Modules whose first import runs one long C call under the GIL, which freezes the GUI thread
# however the import is threaded: faiss's SWIG extension initialises for ~0.3 s in one call
# (benchmarks/pacs_gui.py caught the first prediction's OOD check importing it on a worker).
# The window imports them while it is built, before it is shown.
GIL_HEAVY_MODULES = ("faiss",)


def preload_gil_heavy_modules() -> None:
    for name in GIL_HEAVY_MODULES:
        importlib.import_module(name)


def redacting_log_filter():
    """A logging filter that replaces patient names and IDs the engine has seen with hashes."""
    from mama_core.logging_setup import RedactingFilter

    return RedactingFilter()

# Finding sentences offered after the engine's own BI-RADS prompts.
FALLBACK_PRESETS = [
    "A mass is present in the breast.",
    "Calcifications are present in the breast.",
    "There is no evidence of malignancy.",
]
MASS_SENTENCE = "A mass is present in the breast."


def read_image(path: str | Path) -> Any:
    from mama_core.dicom import read_image as _read

    return _read(path)


def find_studies(folder: str | Path) -> tuple[list[Any], list[tuple[Path, str]]]:
    """(studies, skipped files with the reason) - the engine fills the skip report."""
    from mama_core.dicom import find_studies as _find

    skipped: list[tuple[Path, str]] = []
    studies = list(_find(folder, report=skipped))
    return studies, skipped


def set_placement(path: str | Path, laterality: str | None, view: str | None) -> None:
    """The reader's own side and view for one file (kept in the user's data folder)."""
    from mama_core.dicom import set_override

    set_override(Path(path), laterality, view)


def tags_for_display(path: str | Path) -> list[tuple[str, str, str]]:
    from mama_core.dicom import tags_for_display as _tags

    return [(str(t), str(n), str(v)) for t, n, v in _tags(path)]


# What a model load imports (torch, transformers, peft and the engine): ~700k objects that the
# garbage collector tracks and that live as long as the app. Every automatic full collection
# walks all of them under the GIL, 0.4-1.3 s on the benchmark machine, freezing the event loop
# from whichever thread allocates (benchmarks/pacs_gui.py caught one in the first PACS search).
ENGINE_MODULES = ("mama_core.inference", "mama_core.model.io", "peft")
_freeze_lock = threading.Lock()
_frozen = False


def _import_engine_frozen() -> None:
    """Import ENGINE_MODULES with automatic collection paused, then move every object alive into
    the collector's permanent generation (gc.freeze), which automatic passes skip. Done once,
    before the first model exists: a frozen model would never be collected after a model switch
    (predictor and model hold reference cycles), while modules are never freed anyway."""
    global _frozen
    with _freeze_lock:
        if _frozen:
            return
        enabled = gc.isenabled()
        gc.disable()
        try:
            for name in ENGINE_MODULES:
                importlib.import_module(name)
            gc.freeze()
            _frozen = True
        finally:
            if enabled:
                gc.enable()


def load_predictor(name_or_path: str | Path, device: str | None = None) -> Any:
    _import_engine_frozen()
    from mama_core.inference import Predictor

    predictor = Predictor.load(name_or_path, device=device)
    if str(name_or_path) == "active":
        predictor.name = active_label()  # the worklist names the version that predicted, not "active"
    return predictor


def preset_sentences() -> list[str]:
    """The engine's BI-RADS impression prompts plus a finding sentence (the live-map presets)."""
    try:
        from mama_core.captions import zero_shot_prompts

        prompts = zero_shot_prompts("birads")
        values = list(prompts.values()) if isinstance(prompts, dict) else list(prompts)
        flat = [p if isinstance(p, str) else p[0] for p in values]
    except (MamaError, TypeError, ValueError, IndexError):
        flat = []
    extra = [s for s in FALLBACK_PRESETS if s not in flat]
    return [MASS_SENTENCE] + [s for s in flat + extra if s != MASS_SENTENCE]


def generate_demo_studies(out_dir: Path, n_studies: int = 8, seed: int = 2024,
                          progress: Callable[[int, int], None] | None = None) -> Any:
    from mama_core.synthetic import generate_studies

    return generate_studies(out_dir, n_studies, seed=seed, progress=progress)


def index_name(folder: Path) -> str:
    """The engine's index name for a folder (the same one `mama index FOLDER` uses)."""
    from mama_core.search import index_name_for

    return index_name_for(folder)


def build_index(folder: Path, predictor: Any, stop: Any = None) -> Iterator[Any]:
    from mama_core.search import build_index as _build

    return _build(folder, predictor, name=index_name(folder), stop=stop)


def search_progressively(text: str, predictor: Any, folder: Path, top_k: int, local_weight: float) -> Iterator[list[Any]]:
    """The folder index's running top `top_k` hits, refined as candidates are re-ranked."""
    from mama_core.search import search_progressively as _search

    return _search(text, predictor, name=index_name(folder), top_k=top_k, local_weight=local_weight)


def view_map(predictor: Any, path: str | Path, text: str) -> tuple[Any, Any, float, tuple[float, float]]:
    """(pixels, the sentence's similarity map on those pixels, no-match threshold, value range)
    of one image file: what a search hit's thumbnail shows."""
    pixels = read_image(path).pixels
    maps = predictor.similarity_maps(Path(path), [text])
    stack = next(iter(maps.maps.values()))
    return pixels, stack[0], float(maps.threshold), (float(maps.value_range[0]), float(maps.value_range[1]))


def registry_models() -> list[tuple[str, str]]:
    """(label, model directory) for each registry version; [] without a registry."""
    try:
        from mama_core.registry import Registry

        return [(f"{v.id} ({v.kind})", str(v.model_dir)) for v in Registry().list()]
    except (MamaError, OSError):
        return []


def demo_model_dir() -> Path:
    return paths.resources_dir() / "models" / "demo"


def demo_studies_dir() -> Path:
    return paths.user_cache_dir() / "demo-studies"


# ----- model registry and fine-tuning (issue: one-click local fine-tuning) --------------------

FINETUNE_TASKS = tuple(TASK_CLASSES)  # the engine's choices; FinetuneConfig holds the defaults
IMAGE_SUFFIXES = {".dcm", ".dicom", ""} | set(images.SUFFIXES)  # what find_studies reads


def _registry() -> Any:
    from mama_core.registry import Registry

    return Registry()


def active_label() -> str:
    """The active version's id for display ('active' when the registry has none yet)."""
    try:
        return _registry().active_id() or "active"
    except (MamaError, OSError):
        return "active"


def key_metric(report: dict | None) -> str:
    """One cell for a version's fine-tuning report: the task's new bACC (and the one it replaced)."""
    new = (report or {}).get("new") if isinstance(report, dict) else None
    if not isinstance(new, dict) or new.get("balanced_accuracy") is None:
        return "-"
    text = f"{report.get('task', '?')} bACC {new['balanced_accuracy']:.3f}"
    before = (report.get("baseline") or {}).get("balanced_accuracy")
    return f"{text} (was {before:.3f})" if before is not None else text


def list_versions() -> list[dict[str, Any]]:
    """Rows for the Models page: id, name, kind, created, parent, key metric, active, report."""
    registry = _registry()
    active = registry.active_id()
    return [{"id": v.id, "name": v.name, "kind": v.kind, "created": v.created, "parent": v.parent or "",
             "key_metric": key_metric(v.report), "active": v.id == active, "report": v.report,
             "model_dir": str(v.model_dir)} for v in registry.list()]


def active_version_id() -> str | None:
    return _registry().active_id()


def activate_version(version_id: str) -> str:
    return _registry().activate(version_id).id


def rollback_version() -> str:
    return _registry().rollback().id


def delete_version(version_id: str) -> str:
    _registry().delete(version_id)  # the registry refuses the active version (RegistryError)
    return version_id


def export_version(version_id: str, zip_path: str | Path) -> Path:
    return _registry().export(version_id, zip_path)


def licence_note() -> str:
    from mama_core.registry import LICENCE_NOTE

    return LICENCE_NOTE


def count_images(folder: str | Path) -> int:
    """A quick count of likely image files (for the plan line of the fine-tune dialog; headers are not read)."""
    return sum(1 for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def finetune_command(cli_args: list[str]) -> tuple[str, list[str]]:
    """(program, arguments) that run `mama finetune ... --json` in a child Python process."""
    import sys

    return sys.executable, ["-m", "mama_core.cli", "finetune", *cli_args, "--json"]


def child_environment() -> dict[str, str]:
    """Variables added to the inherited environment of the fine-tuning process: the engine's
    source root on PYTHONPATH (a source checkout works too), no downloads, unbuffered output."""
    import os

    import mama_core

    root = str(Path(mama_core.__file__).resolve().parents[1])
    current = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join(p for p in (root, current) if p), "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1"}


LABELS_KEEP_S = 7 * 24 * 3600


def labels_scratch_dir() -> Path:
    """Where worklist labels are written for a fine-tune child; files older than a week (long
    after their job ended) are removed so the folder does not grow without end."""
    folder = paths.user_cache_dir() / "finetune-labels"
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - LABELS_KEEP_S
    for old in folder.glob("worklist-labels-*.csv"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # in use or already gone: next time
    return folder


def table_kind(path: str | Path) -> str:
    """'labels' for a study-keyed labels CSV (passed as --labels), 'embed' for an EMBED table
    (its folder is the data), else 'data' (an RSNA train.csv or a generic CSV with paths)."""
    import csv

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = {c.strip() for c in next(csv.reader(fh), [])}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        from mama_core.errors import DataError

        raise DataError(f"cannot read the table: {exc}", path=path) from exc
    if path.name in ("metadata.csv", "clinical.csv") and (path.parent / "metadata.csv").is_file():
        return "embed"
    if header & {"study_id", "StudyInstanceUID"} and "path" not in header and "image_id" not in header:
        return "labels"
    return "data"


# ----- dataset ground truth and the PACS (docs/datasets.md, docs/pacs.md) ---------------------


def lesions_in_view(path: str | Path, image: Any) -> list:
    """Annotated lesions of a public-dataset image in the frame of its displayed pixels
    (`lesions_for_image` never raises: a bad annotation file leaves the view readable)."""
    from mama_core.datasets import lesions_for_image

    width = image.pixels.shape[1]
    return [lesion.to_canonical(width, image.flipped) for lesion in lesions_for_image(path)]


def pacs_settings() -> Any:
    from mama_core.pacs import load_settings

    return load_settings()


def pacs_find(node: Any, patient: str, date: str, accession: str, modality: str) -> list:
    from mama_core.pacs import StudyQuery, find_studies

    query = StudyQuery(patient_id=patient or None, date=date or None, accession=accession or None,
                       modality=None if modality.lower() in ("", "any") else modality)
    return find_studies(node, query)


def pacs_check(node: Any) -> Any:
    from mama_core.pacs import check_connection

    return check_connection(node)


def pacs_retrieve(node: Any, study_uid: str, priors: bool, progress: Any, stop: Any) -> Any:
    from mama_core.pacs import get_study

    return get_study(node, study_uid, priors=priors, stop=stop, progress=progress)


def describe_report(result: dict) -> tuple[list[Path], list[str]]:
    """The files `mama report --json` wrote and its preview lines (one per object). Read from
    the child's output: importing highdicom here would hold the GIL for a third of a second."""
    return [Path(p) for p in result["files"]], list(result["preview"])
