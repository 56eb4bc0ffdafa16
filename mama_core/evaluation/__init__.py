"""Evaluation like the paper's Tables 1-3: zero-shot, linear probe, fine-tuning; metrics
with bootstrap intervals; markdown tables (docs/inference.md "Evaluation"). The probe and
fine-tuning rows train through `mama_core.finetune` (the one fine-tuning engine)."""

from mama_core.evaluation.features import FeatureStore
from mama_core.evaluation.metrics import Metrics, bootstrap_ci, compute_metrics
from mama_core.evaluation.runner import EvalConfig, evaluate, load_eval_records
from mama_core.evaluation.tables import PAPER_MAMA, markdown_table

__all__ = [
    "EvalConfig", "evaluate", "load_eval_records", "FeatureStore",
    "Metrics", "compute_metrics", "bootstrap_ci", "markdown_table", "PAPER_MAMA",
]
