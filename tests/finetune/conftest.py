"""Fixtures: a tiny random-init MaMA model directory and a few small synthetic studies,
built once per session; each test registers the model in its own private registry."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    import torch

    from mama_core.model import ModelConfig, build_model
    from mama_core.model.config import TextConfig, VisionConfig
    from mama_core.model.io import save_model_dir

    torch.manual_seed(0)
    cfg = ModelConfig(vision=VisionConfig(hidden_size=32, num_layers=2, num_heads=2, image_size=56, patch_size=14),
                      text=TextConfig(path="minilm", max_length=64), embed_dim=32)
    return save_model_dir(build_model(cfg), tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def studies(tmp_path_factory) -> Path:
    from mama_core.synthetic import generate_studies

    out = tmp_path_factory.mktemp("studies") / "embed"
    generate_studies(out, 8, seed=3, rows=256)
    return out


@pytest.fixture()
def registry_with_tiny(tiny_model_dir):
    """A private registry whose active model is the tiny model."""
    from mama_core.registry import Registry

    registry = Registry()
    version = registry.add(tiny_model_dir, "tiny", "trained")
    registry.activate(version.id)
    return registry, version.id
