"""Shared fixtures: a tiny random-init model directory (tiny DINOv2 + the real MiniLM with
LoRA) and a few tiny synthetic four-view studies (rows=256)."""

from __future__ import annotations

import shutil

import pytest
import torch


def build_tiny_model_dir(path):
    from mama_core.model.config import ModelConfig, TextConfig, VisionConfig
    from mama_core.model.io import save_model_dir
    from mama_core.model.mama import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(
        vision=VisionConfig(hidden_size=32, num_layers=2, num_heads=2, patch_size=14, image_size=112,
                            num_register_tokens=2),
        text=TextConfig(path="minilm", max_length=64),
        embed_dim=16,
    )
    return save_model_dir(build_model(cfg), path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def studies_dir(tmp_path_factory):
    from mama_core.synthetic import generate_studies

    out = tmp_path_factory.mktemp("studies") / "demo"
    generate_studies(out, 2, seed=0, rows=256)
    return out


@pytest.fixture(scope="session")
def studies(studies_dir):
    from mama_core.dicom import find_studies

    return find_studies(studies_dir)


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path):
    """A private copy of the model directory a test may modify (heads, calibration)."""
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


@pytest.fixture()
def predictor(tiny_model_dir):
    from mama_core.inference import Predictor

    return Predictor.load(tiny_model_dir, device="cpu")


@pytest.fixture(autouse=True)
def user_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MAMA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def unseen(tmp_path_factory):
    """Synthetic studies the demo model never saw (seed 4321, 12 studies, 1024 rows: 48 views),
    shared by the demo-model tests (docs/demo-model.md)."""
    from mama_core.synthetic import generate_studies

    out = tmp_path_factory.mktemp("unseen") / "seed-4321"
    generate_studies(out, 12, seed=4321, rows=1024)
    return out


@pytest.fixture(scope="session")
def demo():
    """The shipped demo model on the CPU (its cache holds a 64-image set and more)."""
    from mama_core.inference import Predictor

    return Predictor.load("demo", device="cpu", cache_size=128)
