"""Evaluation like the paper's Tables 1-3: zero-shot, linear probe, fine-tuning; metrics
with bootstrap intervals; markdown tables (docs/inference.md "Evaluation")."""

from mama_core.evaluation.features import FeatureStore
from mama_core.evaluation.linear_probe import LinearProbe, ProbeConfig, train_linear_probe
from mama_core.evaluation.metrics import Metrics, bootstrap_ci, compute_metrics
from mama_core.evaluation.runner import EvalConfig, evaluate, load_eval_records, probe_head_from
from mama_core.evaluation.tables import PAPER_MAMA, markdown_table

__all__ = [
    "EvalConfig", "evaluate", "load_eval_records", "probe_head_from", "FeatureStore",
    "LinearProbe", "ProbeConfig", "train_linear_probe",
    "Metrics", "compute_metrics", "bootstrap_ci", "markdown_table", "PAPER_MAMA",
]
