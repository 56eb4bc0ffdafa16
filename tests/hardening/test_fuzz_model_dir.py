"""Damaged model directories: `load_model_dir` and `Predictor.load` either load or raise a
MamaError (ModelError) naming the directory or a file in it; never another exception, a
hang (30 s) or unbounded memory (3 GB address space). Loads run in a child process."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import fuzzlib, modelfuzz

OPS = ("load_model_dir", "predictor_load")
MUST_FAIL = {"no config.json", "no model.safetensors", "no text/", "tensor of the wrong shape", "tensor missing",
             "unexpected tensor", "config invalid JSON", "config format_version 99", "config embed_dim 32 (weights 16)",
             "safetensors header length 0xFFFFFFFFFFFFFFF0", "config not UTF-8", "config text path missing dir"}


@pytest.fixture(scope="module")
def pool():
    pool = fuzzlib.ReaderPool(timeout=30, models=True)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return modelfuzz.build_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")


def test_template_loads(pool, template):
    for op in OPS:
        assert pool.run(op, template)["outcome"] == "ok"


@pytest.mark.parametrize("case", sorted(modelfuzz.CASES))
def test_damaged_model_dir(pool, template, tmp_path, case):
    directory = modelfuzz.make_case(template, case, tmp_path / "model")
    for op in OPS:
        answer = pool.run(op, directory)
        assert fuzzlib.acceptable(answer), f"{op} / {case}: {answer}"
        if case in MUST_FAIL:
            assert answer["outcome"] == "mama_error", f"{op} accepted: {case}"
            assert answer["type"] == "ModelError"


def _replace_random_value(cfg: dict, rnd: random.Random, value: object) -> None:
    """Walk to a random leaf of the nested config and replace it."""
    node = cfg
    while True:
        key = rnd.choice(sorted(node))
        child = node[key]
        if isinstance(child, dict) and child and rnd.random() < 0.8:
            node = child
            continue
        node[key] = value
        return


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
                           | st.text(max_size=20), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=5)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), value=JSON_VALUES)
def test_random_config_values(pool, template, tmp_path_factory, seed, value):
    directory = modelfuzz.make_case(template, "float16 tensors", tmp_path_factory.mktemp("cfg") / "model") \
        if seed % 7 == 0 else None
    if directory is None:
        import shutil

        directory = shutil.copytree(template, tmp_path_factory.mktemp("cfg") / "model")
    cfg = json.loads((directory / "config.json").read_text())
    _replace_random_value(cfg, random.Random(seed), value)
    (directory / "config.json").write_text(json.dumps(cfg))
    answer = pool.run("predictor_load", directory)
    assert fuzzlib.acceptable(answer), f"{answer} after setting a config value to {value!r} (seed {seed})"
