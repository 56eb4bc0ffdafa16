"""Procedurally generated four-view MG studies with EMBED-style tables (`mama demo-data`).

Public names: `generate_studies`, `SyntheticSummary`, `SyntheticConfig`; lower level for
tests and tools: `sample_study` -> `StudySpec`, `render_view` -> `RenderedView`.
"""

from mama_core.synthetic.generate import SyntheticConfig, SyntheticSummary, generate_studies
from mama_core.synthetic.render import LesionBox, RenderedView, render_view
from mama_core.synthetic.spec import IMAGE_KEYS, Finding, StudySpec, sample_study

__all__ = [
    "IMAGE_KEYS",
    "Finding",
    "LesionBox",
    "RenderedView",
    "StudySpec",
    "SyntheticConfig",
    "SyntheticSummary",
    "generate_studies",
    "render_view",
    "sample_study",
]
