"""Local fine-tuning with versioned models (issue: one-click local fine-tuning).

`finetune(config, data, labels=None, stop=None)` is a generator of `FinetuneReport`s:
phases 'features', 'train', 'validate', 'compare', 'save', 'done'.  The last report
carries the comparison with the active model and the id of the new registry version
(registered, not activated), or `cancelled=True` when the stop flag ended the run.
Modes: linear-probe, lora, full, continue-pretraining (see docs/finetuning.md).
"""

from mama_core.finetune.config import MODES, TASK_CLASSES, FinetuneConfig
from mama_core.finetune.data import CLASSES, fingerprint
from mama_core.finetune.reports import PHASES, FinetuneReport
from mama_core.finetune.run import CANCELLED, finetune

__all__ = ["CANCELLED", "CLASSES", "MODES", "PHASES", "TASK_CLASSES", "FinetuneConfig", "FinetuneReport",
           "finetune", "fingerprint"]
