"""A tiny real predictor (random tiny DINOv2 + the real MiniLM) and one synthetic study."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_predictor(tmp_path_factory):
    from mama_core.inference import Predictor
    from tests.inference.conftest import build_tiny_model_dir

    return Predictor.load(build_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny"), device="cpu")


@pytest.fixture(scope="session")
def study_folder(tmp_path_factory):
    from mama_core.synthetic import generate_studies

    out = tmp_path_factory.mktemp("studies")
    generate_studies(out, 1, seed=3, rows=256)
    return next(out.glob("study_*"))
