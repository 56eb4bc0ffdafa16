"""A tiny random-init model directory and eight tiny synthetic studies with EMBED tables."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def eval_model_dir(tmp_path_factory):
    from mama_core.model.config import ModelConfig, TextConfig, VisionConfig
    from mama_core.model.io import save_model_dir
    from mama_core.model.mama import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(vision=VisionConfig(hidden_size=32, num_layers=1, num_heads=2, image_size=56,
                                          num_register_tokens=2),
                      text=TextConfig(path="minilm", max_length=64), embed_dim=16)
    return save_model_dir(build_model(cfg), tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def eval_data(tmp_path_factory):
    from mama_core.synthetic import generate_studies

    out = tmp_path_factory.mktemp("data") / "embed"
    generate_studies(out, 8, seed=1, rows=256)
    return out


@pytest.fixture(autouse=True)
def user_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MAMA_CACHE_DIR", str(tmp_path / "cache"))
