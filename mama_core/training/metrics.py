"""Training logs: `metrics.csv` in the run folder always, TensorBoard when it is installed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

FIELDS = (
    "step", "epoch", "loss", "image_image_loss", "image_text_loss", "image2_text_loss", "local_loss",
    "local_weight", "lr", "images_per_s", "step_time_s", "max_memory_mb", "eta_s", "val_loss",
)


def _keep_rows_up_to(path: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint (they will be logged again)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("step") and int(float(r["step"])) <= step]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


class MetricsLog:
    """Appends one CSV row per report; mirrors scalars to TensorBoard if importable."""

    def __init__(self, run_dir: Path, resume_step: int | None):
        self.path = Path(run_dir) / "metrics.csv"
        if resume_step is not None and self.path.is_file():
            _keep_rows_up_to(self.path, resume_step)
        else:
            with open(self.path, "w", newline="", encoding="utf-8") as fh:
                csv.DictWriter(fh, fieldnames=FIELDS).writeheader()
        self.tensorboard = _tensorboard(Path(run_dir) / "tensorboard")

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore").writerow(
                {k: ("" if v is None else v) for k, v in row.items()})
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(f"train/{key}", value, row["step"])

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional and not a dependency
        return None
    return SummaryWriter(str(folder))
