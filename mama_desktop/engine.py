"""The desktop's only door into the engine: the public names of docs/architecture.md.

Imports are lazy so that the viewer starts fast and still works as a viewer when a part of
the engine (for instance the demo model) is absent; a missing part becomes a `ModelError`
that the GUI shows as a notification.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mama_core.errors import MamaError, ModelError
from mama_core import paths

# Offered when mama_core.captions is not importable; the engine's own prompts win otherwise.
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


def tags_for_display(path: str | Path) -> list[tuple[str, str, str]]:
    from mama_core.dicom import tags_for_display as _tags

    return [(str(t), str(n), str(v)) for t, n, v in _tags(path)]


def load_predictor(name_or_path: str | Path, device: str | None = None) -> Any:
    try:
        from mama_core.inference import Predictor
    except ImportError as exc:
        raise ModelError(f"the inference engine is not available ({exc})") from exc
    return Predictor.load(name_or_path, device=device)


def preset_sentences() -> list[str]:
    """The engine's BI-RADS impression prompts plus a finding sentence (the live-map presets)."""
    try:
        from mama_core.captions import zero_shot_prompts

        prompts = zero_shot_prompts("birads")
        values = list(prompts.values()) if isinstance(prompts, dict) else list(prompts)
        flat = [p if isinstance(p, str) else p[0] for p in values]
    except (ImportError, MamaError, TypeError, ValueError, IndexError):
        flat = []
    extra = [s for s in FALLBACK_PRESETS if s not in flat]
    return [MASS_SENTENCE] + [s for s in flat + extra if s != MASS_SENTENCE]


def generate_demo_studies(out_dir: Path, n_studies: int = 8, seed: int = 2024,
                          progress: Callable[[int, int], None] | None = None) -> Any:
    from mama_core.synthetic import generate_studies

    return generate_studies(out_dir, n_studies, seed=seed, progress=progress)


def index_name(folder: Path) -> str:
    """The engine's index name for a folder (the same one `mama index FOLDER` uses)."""
    from mama_core.inference import index

    return index.index_name_for(folder)


def build_index(folder: Path, predictor: Any, stop: Any = None) -> Iterator[Any]:
    from mama_core.inference.index import build_index as _build

    return _build(folder, predictor, name=index_name(folder), stop=stop)


def search(text: str, predictor: Any, folder: Path, top_k: int = 10) -> list[Any]:
    from mama_core.inference.index import search as _search

    return list(_search(text, predictor, name=index_name(folder), top_k=top_k))


def registry_models() -> list[tuple[str, str]]:
    """(label, model directory) for each registry version; [] without a registry."""
    try:
        from mama_core.registry import Registry

        return [(f"{v.id} ({v.kind})", str(v.model_dir)) for v in Registry().list()]
    except (ImportError, MamaError, OSError):
        return []


def demo_model_dir() -> Path:
    return paths.resources_dir() / "models" / "demo"


def demo_studies_dir() -> Path:
    return paths.user_cache_dir() / "demo-studies"
