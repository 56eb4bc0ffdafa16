"""Shared fixtures: two tiny synthetic studies (8 images) and a tiny model config."""

from __future__ import annotations

import pytest

# hidden 32, one layer, 56 px (4x4 patches), short captions: a step takes well under a second.
TINY = [
    "model.vision.hidden_size=32", "model.vision.num_heads=2", "model.vision.num_layers=1",
    "model.vision.num_register_tokens=1", "image_size=56", "model.embed_dim=16",
    "model.text.max_length=64", "batch_size=4", "data.num_workers=0", "optim.warmup_steps=2",
    "optim.lr=1e-3", "log_every=1", "data.val_fraction=0.5",
]


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    from mama_core.synthetic import generate_studies

    out = tmp_path_factory.mktemp("synthetic")
    generate_studies(out, 2, 0, rows=256)
    return out


@pytest.fixture(scope="session")
def records(synthetic_dir):
    from mama_core.data import load_records

    return load_records(synthetic_dir)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("image-cache")


@pytest.fixture()
def tiny_overrides(cache_dir):
    return TINY + [f"data.cache_dir={cache_dir}"]
