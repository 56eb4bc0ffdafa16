"""What the fine-tune dialog offers and how the reader's choices become the run's inputs,
without Qt. Choices and defaults are the engine's (`FinetuneConfig`); only words live here."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mama_core.errors import ConfigError

from . import engine

TASK_TITLES = {"density": "Breast density (A-D)", "birads": "BI-RADS assessment (0-6)", "cancer": "Cancer (yes/no)"}
MODE_HELP = {
    "linear-probe": "Trains only a small classifier on the frozen model's image features: fast, safe with few cases.",
    "lora": "Adapts the vision encoder with low-rank adapters (LoRA) plus the classifier: slower, more capacity.",
    "full": "Updates every encoder weight: slowest; needs many cases and may overfit a small set.",
    "continue-pretraining": "Continues image-report pre-training on your cases (no labels needed for that "
                            "step); the result predicts zero-shot.",
}


# ----- the engine's choices and defaults -----------------------------------------------------------
def config_field(name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(engine.FinetuneConfig)}[name]


def config_default(name: str) -> Any:
    return config_field(name).default


def config_help(name: str) -> str:
    return config_field(name).metadata.get("help", "")


def tasks() -> list[str]:
    """The engine's tasks, its default first (the order the dialog offers them)."""
    default = config_default("task")
    return [default] + [t for t in engine.FINETUNE_TASKS if t != default]


def modes() -> list[str]:
    default = config_default("mode")
    return [default] + [m for m in engine.FINETUNE_MODES if m != default]


def default_steps(mode: str) -> int:
    """The optimiser steps a run of `mode` takes when the reader does not choose."""
    return engine.FinetuneConfig(mode=mode).total_steps(0)


# ----- labels and the plan --------------------------------------------------------------------------
def table_inputs(cases: str, table: str) -> tuple[str, str | None]:
    """(--data, --labels) for a table the reader chose, by its kind (`engine.table_kind`)."""
    if not table:
        raise ConfigError("choose a table (Table…)", field="labels")
    kind = engine.table_kind(table)
    if kind == "labels":
        return cases, table
    return (str(Path(table).parent), None) if kind == "embed" else (table, None)


def table_note(table: str) -> str:
    """What the dialog will do with a table, in words (or why it cannot read it)."""
    try:
        kind = engine.table_kind(table)
    except Exception as exc:  # noqa: BLE001 - shown next to the field
        return str(exc)
    return {"labels": "a labels table: the images come from the Cases folder",
            "embed": "an EMBED table: its folder is used as the cases",
            "data": "a table of images with labels (RSNA / generic): the Cases folder is not used"}[kind]


def worklist_labels(reader_labels: dict[str, dict[str, int]], task: str) -> dict[str, dict[str, int]]:
    """The reader's worklist labels that carry `task` (ConfigError when there are none)."""
    if task == "cancer":
        raise ConfigError("the worklist holds density and BI-RADS labels only; choose a table for cancer",
                          field="labels")
    labels = {uid: v for uid, v in reader_labels.items() if task in v}
    if not labels:
        raise ConfigError(f"no study has your {task} label yet: set it in the worklist (right-click a study)",
                          field="labels")
    return labels


def plan_text(n_images: int | None, mode: str, steps: int | None) -> str:
    """The Time line before a run: what will be done; the time itself is measured once it runs."""
    if not n_images:
        return "choose the cases to see what the run involves"
    chosen = f"{steps} training steps" if steps else f"{default_steps(mode)} training steps (the mode's default)"
    return (f"{n_images} images to read once, then {chosen}; the time left is measured from the "
            f"first steps once it runs")
