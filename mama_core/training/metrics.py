"""Training logs: `metrics.csv` and TensorBoard event files (`tensorboard/`) in the run folder.

Pre-training (`mama train`) and fine-tuning (`mama finetune`) both log through `MetricsLog`;
`tensorboard --logdir RUN_FOLDER` shows a run, `--logdir` on a parent folder compares runs
(docs/training.md "Watching a run"). Tags: `train/<term>_loss` for every loss term,
`train/loss`, `train/lr`, `train/logit_scale`, `train/local_scale`, `train/local_weight`,
`perf/images_per_s`, `perf/step_time_s`, `perf/max_memory_mb`, `val/loss`,
`val/balanced_accuracy` (see `tensorboard_tag`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

FIELDS = (
    "step", "epoch", "loss", "image_image_loss", "image_text_loss", "image2_text_loss", "local_loss",
    "local_weight", "lr", "images_per_s", "step_time_s", "max_memory_mb", "eta_s", "val_loss",
    "logit_scale", "local_scale",
)
FINETUNE_FIELDS = (
    "step", "phase", "stage", "loss", "image_image_loss", "image_text_loss", "image2_text_loss", "local_loss",
    "lr", "val_bacc", "best_val_bacc", "steps_per_s", "max_memory_mb", "elapsed_s",
)
# Report key -> TensorBoard tag; any other `*_loss` key is `train/<key>`; the rest is not plotted.
TAGS = {
    "loss": "train/loss", "lr": "train/lr", "local_weight": "train/local_weight", "epoch": "train/epoch",
    "logit_scale": "train/logit_scale", "local_scale": "train/local_scale",
    "images_per_s": "perf/images_per_s", "steps_per_s": "perf/steps_per_s", "step_time_s": "perf/step_time_s",
    "max_memory_mb": "perf/max_memory_mb",
    "val_loss": "val/loss", "val_bacc": "val/balanced_accuracy", "best_val_bacc": "val/best_balanced_accuracy",
}


def tensorboard_tag(key: str) -> str | None:
    if key in TAGS:
        return TAGS[key]
    return f"train/{key}" if key.endswith("_loss") else None


def _keep_rows_up_to(path: Path, step: int, fields: tuple[str, ...]) -> None:
    """On resume, drop rows logged after the checkpoint (they will be logged again)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("step") and int(float(r["step"])) <= step]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


class MetricsLog:
    """Appends one CSV row per report and mirrors its numbers to TensorBoard."""

    def __init__(self, run_dir: Path, resume_step: int | None, fields: tuple[str, ...] = FIELDS):
        self.path = Path(run_dir) / "metrics.csv"
        self.fields = fields
        if resume_step is not None and self.path.is_file():
            _keep_rows_up_to(self.path, resume_step, fields)
        else:
            with open(self.path, "w", newline="", encoding="utf-8") as fh:
                csv.DictWriter(fh, fieldnames=fields).writeheader()
        self.tensorboard = _tensorboard(Path(run_dir) / "tensorboard", resume_step)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore").writerow(
                {k: ("" if v is None else v) for k, v in row.items()})
        if self.tensorboard is not None:
            for key, value in row.items():
                tag = tensorboard_tag(key)
                if tag and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tensorboard.add_scalar(tag, value, row["step"])

    def flush(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _tensorboard(folder: Path, resume_step: int | None):
    """A SummaryWriter; on resume, TensorBoard is told to drop the old events after the
    checkpoint's step (they are logged again), like metrics.csv."""
    from torch.utils.tensorboard import SummaryWriter

    purge = None if resume_step is None else resume_step + 1
    return SummaryWriter(str(folder), purge_step=purge, flush_secs=30)
