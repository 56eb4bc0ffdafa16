"""`generate_studies`: a folder of synthetic four-view MG studies with EMBED-style tables.

Layout written under `out_dir`:
  <study folder>/RCC.dcm, LCC.dcm, RMLO.dcm, LMLO.dcm
  metadata.csv     one row per image (EMBED metadata columns)
  clinical.csv     one row per finding side (EMBED clinical columns)
  ground_truth.json  per image: density, side BI-RADS, lesion boxes in stored-pixel coordinates
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mama_core.errors import ConfigError, DataError
from mama_core.synthetic import tables
from mama_core.synthetic.dicom_writer import write_view
from mama_core.synthetic.render import render_view
from mama_core.synthetic.spec import IMAGE_KEYS, StudySpec, sample_study

MIN_ROWS, MAX_ROWS = 128, 8192

Progress = Callable[[int, int], None]  # (studies done, studies in all)


@dataclass(frozen=True)
class SyntheticConfig:
    n_studies: int
    seed: int = 0
    rows: int = 2048

    def __post_init__(self) -> None:
        if not isinstance(self.n_studies, int) or self.n_studies < 1:
            raise ConfigError(f"need at least one study, got {self.n_studies!r}", field="n_studies")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}", field="seed")
        if not isinstance(self.rows, int) or not MIN_ROWS <= self.rows <= MAX_ROWS:
            raise ConfigError(f"rows must be an integer in [{MIN_ROWS}, {MAX_ROWS}], got {self.rows!r}", field="rows")


@dataclass(frozen=True)
class SyntheticSummary:
    out_dir: Path
    n_studies: int
    n_images: int
    metadata_csv: Path
    clinical_csv: Path
    ground_truth_json: Path
    study_uids: tuple[str, ...]
    density_counts: dict[int, int]  # studies per density class
    birads_counts: dict[int, int]  # studies per study-level BI-RADS


def _prepare(out_dir: Path) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError("output path exists and is not a folder", path=out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create output folder: {exc.strerror or exc}", path=out) from exc
    return out


def _write_study(spec: StudySpec, out: Path, rows: int, meta: list, truth: list) -> None:
    for key in IMAGE_KEYS:
        view = render_view(spec, key, rows)
        write_view(spec, view, out / tables.image_path(spec, key))
        meta.append(tables.metadata_row(spec, view))
        truth.append(tables.truth_entry(spec, view))


def generate_studies(
    out_dir: str | Path, n_studies: int, seed: int = 0, rows: int = 2048, progress: Progress | None = None
) -> SyntheticSummary:
    """Write `n_studies` synthetic four-view studies (and their tables) under `out_dir`.

    Deterministic: the same (seed, rows) writes byte-identical files; study i depends on
    (seed, i) only. `progress(done, total)` is called after each study."""
    cfg = SyntheticConfig(n_studies=n_studies, seed=seed, rows=rows)
    out = _prepare(Path(out_dir))
    meta: list[dict] = []
    truth: list[dict] = []
    clinical: list[dict] = []
    specs = []
    for i in range(cfg.n_studies):
        spec = sample_study(cfg.seed, i)
        _write_study(spec, out, cfg.rows, meta, truth)
        clinical.extend(tables.clinical_rows(spec))
        specs.append(spec)
        if progress is not None:
            progress(i + 1, cfg.n_studies)
    summary = SyntheticSummary(
        out_dir=out, n_studies=cfg.n_studies, n_images=len(meta), metadata_csv=out / "metadata.csv",
        clinical_csv=out / "clinical.csv", ground_truth_json=out / "ground_truth.json",
        study_uids=tuple(s.study_uid for s in specs),
        density_counts=dict(sorted(Counter(s.density for s in specs).items())),
        birads_counts=dict(sorted(Counter(s.birads for s in specs).items())),
    )
    tables.write_csv(summary.metadata_csv, tables.METADATA_COLUMNS, meta)
    tables.write_csv(summary.clinical_csv, tables.CLINICAL_COLUMNS, clinical)
    tables.write_json(summary.ground_truth_json, truth)
    return summary
