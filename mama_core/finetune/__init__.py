"""Local fine-tuning with versioned models (issue: one-click local fine-tuning).

`finetune(config, data, labels=None, stop=None)` is a generator of `FinetuneReport`s:
phases 'features', 'train', 'validate', 'compare', 'save', 'done'.  The last report
carries the comparison with the active model and the id of the new registry version
(registered, not activated), or `cancelled=True` when the stop flag ended the run.
Modes: linear-probe, lora, full, continue-pretraining (see docs/finetuning.md).
"""

import importlib

# Names -> the module that defines them. Imported on first use (PEP 562), so that reading
# `mama_core.finetune.config` (the CLI's argument choices) does not import torch.
_WHERE = {
    "MODES": "config", "TASK_CLASSES": "config", "FinetuneConfig": "config",
    "CLASSES": "data", "fingerprint": "data",
    "PHASES": "reports", "FinetuneReport": "reports",
    "CANCELLED": "run", "finetune": "run",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


__all__ = ["CANCELLED", "CLASSES", "MODES", "PHASES", "TASK_CLASSES", "FinetuneConfig", "FinetuneReport",
           "finetune", "fingerprint"]
