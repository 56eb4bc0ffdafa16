"""Safe loading: a pickle whose __reduce__ would run code (it would create a marker file) is
fed to every loader of the engine. Each refuses it with a clear MamaError and the marker
never appears. Plus a source scan: no module unpickles (pickle.load, torch.load without
weights_only=True, np.load(allow_pickle=True), yaml.load without a safe loader, ...)."""

from __future__ import annotations

import ast
import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mama_core.errors import DataError, MamaError, ModelError, RegistryError

from . import modelfuzz

REPO = Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling this calls exec(), which writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "MARKER-code-ran"
    yield path
    assert not path.exists(), "a loader executed code from a pickle"


def evil(path: Path, marker: Path, kind: str = "torch") -> Path:
    """A pickle with the payload: torch.save's zip format (as a .ckpt would be), a plain
    pickle stream, or a .npy holding a pickled object array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        path.unlink()
    if kind == "torch":
        torch.save({"state_dict": {"img_encoder_q.x": _Payload(marker)}}, path)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"weight": _Payload(marker)}))
    else:
        with open(path, "wb") as fh:
            np.save(fh, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    return path


@pytest.mark.parametrize("kind", ["torch", "pickle", "npy"])
def test_the_payload_is_live(tmp_path, kind):
    """Control: an unsafe load of each payload file does create the marker, so the
    refusals below mean something."""
    marker = tmp_path / "live"
    path = evil(tmp_path / f"p.{kind}", marker, kind)
    code = {"torch": f"import torch; torch.load({str(path)!r}, weights_only=False)",
            "pickle": f"import pickle; pickle.load(open({str(path)!r}, 'rb'))",
            "npy": f"import numpy; numpy.load({str(path)!r}, allow_pickle=True)"}[kind]
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert marker.exists()


# --------------------------------------------------------------------------- import-checkpoint


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_import_checkpoint_refuses(tmp_path, marker, capsys, kind):
    from mama_core.checkpoint_import import read_checkpoint
    from mama_core.cli import main

    path = evil(tmp_path / "released.ckpt", marker, kind)
    with pytest.raises(ModelError, match="refused to load") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)
    assert main(["import-checkpoint", str(path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "refused to load" in err and str(path) in err
    assert not (tmp_path / "out").exists()


def test_hub_vision_weights_refuse(tmp_path, marker):
    from mama_core.model.config import ModelConfig, TextConfig, VisionConfig
    from mama_core.model.mama import build_model

    path = evil(tmp_path / "dinov2.pth", marker)
    cfg = ModelConfig(vision=VisionConfig(source="hub", path=str(path), hidden_size=32, num_layers=1, num_heads=2,
                                          image_size=56), text=TextConfig(path="minilm", max_length=32), embed_dim=8)
    with pytest.raises(ModelError) as info:
        build_model(cfg)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- model directories


@pytest.fixture(scope="module")
def model_template(tmp_path_factory):
    return modelfuzz.build_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")


@pytest.mark.parametrize("target", ["model.safetensors", "heads/density.safetensors"])
@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_model_dir_refuses(model_template, tmp_path, marker, target, kind):
    from mama_core.inference import Predictor
    from mama_core.model.io import load_model_dir

    directory = shutil.copytree(model_template, tmp_path / "model")
    path = evil(directory / target, marker, kind)
    with pytest.raises(ModelError) as info:
        Predictor.load(directory, device="cpu")
    assert str(path) in str(info.value)
    if target == "model.safetensors":
        with pytest.raises(ModelError, match="safetensors"):
            load_model_dir(directory)


# --------------------------------------------------------------------------- training checkpoints


@pytest.fixture()
def checkpoint(tmp_path):
    from mama_core.training.checkpoint import rng_state, save_checkpoint

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    path = save_checkpoint(tmp_path / "run", 1, model, optimizer, scheduler, {"seed": 0}, [rng_state()])
    return path, model, optimizer, scheduler


@pytest.mark.parametrize("target", ["optimizer.pt", "model.safetensors", "state.json"])
@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_training_checkpoint_refuses(checkpoint, marker, target, kind):
    from mama_core.training.checkpoint import load_checkpoint

    ckpt, model, optimizer, scheduler = checkpoint
    path = evil(ckpt / target, marker, kind)
    with pytest.raises(ModelError) as info:
        load_checkpoint(ckpt, model, optimizer, scheduler)
    assert str(path) in str(info.value)


def test_training_checkpoint_control(checkpoint):
    """The untouched checkpoint loads (so the refusals above are about the payload)."""
    from mama_core.training.checkpoint import load_checkpoint

    ckpt, model, optimizer, scheduler = checkpoint
    assert load_checkpoint(ckpt, model, optimizer, scheduler)["step"] == 1


def test_image_cache_refuses_pickled_arrays(tmp_path, marker):
    """The training image cache reads .npy files with allow_pickle off: a pickled entry runs
    nothing and is replaced by a fresh decode of the DICOM."""
    from mama_core.synthetic import generate_studies
    from mama_core.training.cache import ImageCache

    generate_studies(tmp_path / "s", 1, seed=0, rows=256)
    image = sorted((tmp_path / "s").rglob("*.dcm"))[0]
    cache = ImageCache(tmp_path / "cache", 56)
    clean = cache.load(image)
    assert clean.shape == (1, 56, 56)
    evil(cache.entry(image), marker, "npy")
    with pytest.raises(ValueError, match="allow_pickle|Python objects"):
        np.load(cache.entry(image), allow_pickle=False)
    assert torch.equal(cache.load(image), clean)
    assert not marker.exists()
    assert np.load(cache.entry(image), allow_pickle=False).shape == (56, 56)


# --------------------------------------------------------------------------- search index


@pytest.fixture(scope="module")
def index(model_template, tmp_path_factory):
    """A real index of one synthetic study, built with the tiny model."""
    from mama_core.inference import Predictor
    from mama_core.search import build_index, index_dir
    from mama_core.synthetic import generate_studies

    base = tmp_path_factory.mktemp("index")
    os.environ["MAMA_DATA_DIR"] = str(base / "data")  # module scope: the autouse fixture is per test
    generate_studies(base / "studies", 1, seed=0, rows=256)
    predictor = Predictor.load(model_template, device="cpu")
    list(build_index(base / "studies", predictor, name="safe"))
    return predictor, base / "data", index_dir("safe")


@pytest.mark.parametrize("target", ["manifest.json", "feature"])
@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_search_index_refuses(index, tmp_path, marker, monkeypatch, target, kind):
    from mama_core.search import search

    predictor, data, root = index
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    monkeypatch.setenv("MAMA_DATA_DIR", str(copy))
    assert search("a mass", predictor, name="safe")  # control: the copy works
    local = copy / "indexes" / "safe"
    segment = next(p for p in (local / "segments").iterdir() if not p.name.startswith("."))
    victim = local / "manifest.json" if target == "manifest.json" else segment / "files.json"
    evil(victim, marker, kind)
    with pytest.raises(DataError) as info:
        search("a mass", predictor, name="safe")
    assert str(victim) in str(info.value)


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("target", ["version.json", "active.json"])
@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_registry_refuses(model_template, tmp_path, marker, target, kind):
    from mama_core.registry import Registry

    registry = Registry(tmp_path / "models")
    version = registry.add(model_template, "tiny", "trained")
    registry.activate(version.id)
    victim = version.path / "version.json" if target == "version.json" else registry.root / "active.json"
    evil(victim, marker, kind)
    with pytest.raises(RegistryError) as info:
        registry.list() if target == "version.json" else registry.active()
    assert str(victim.parent if target == "version.json" else victim) in str(info.value)


@pytest.mark.parametrize("content", [b"[1, 2]", b"null", b"\"text\"", b"\xff\xfe{}"])
def test_json_files_that_are_not_objects(model_template, checkpoint, index, tmp_path, monkeypatch, content):
    """Valid JSON of the wrong shape (or bytes that are not UTF-8) in version.json,
    active.json, a checkpoint's state.json and an index manifest: a MamaError each."""
    from mama_core.search import search
    from mama_core.registry import Registry
    from mama_core.training.checkpoint import load_checkpoint

    registry = Registry(tmp_path / "models")
    version = registry.add(model_template, "tiny", "trained")
    registry.activate(version.id)
    (version.path / "version.json").chmod(0o644)
    (version.path / "version.json").write_bytes(content)
    with pytest.raises(RegistryError, match="version.json"):
        registry.list()
    (registry.root / "active.json").write_bytes(content)
    with pytest.raises(RegistryError, match="active.json"):
        registry.active_id()
    ckpt, model, optimizer, scheduler = checkpoint
    (ckpt / "state.json").write_bytes(content)
    with pytest.raises(ModelError, match="state.json"):
        load_checkpoint(ckpt, model, optimizer, scheduler)
    predictor, data, _ = index
    shutil.copytree(data, tmp_path / "data")
    monkeypatch.setenv("MAMA_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "indexes" / "safe" / "manifest.json").write_bytes(content)
    with pytest.raises(DataError, match="manifest.json"):
        search("a mass", predictor, name="safe")


# --------------------------------------------------------------------------- source scan


def _unsafe_calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            found += [f"import {n}" for n in names if n and n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib",
                                                                               "shelve", "marshal", "cloudpickle")]
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        if name.endswith("torch.load") or name == "load" and "weights_only" in kw:
            value = kw.get("weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                found.append(f"{name}(...) without weights_only=True")
        if name.endswith(("np.load", "numpy.load")) and not (isinstance(kw.get("allow_pickle"), ast.Constant)
                                                              and kw["allow_pickle"].value is False):
            if "allow_pickle" in kw:
                found.append(f"{name}(allow_pickle=...)")
        if name.endswith(("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all")):
            found.append(f"{name}(...) (use yaml.safe_load)")
        if name in ("eval", "exec") or name.endswith(("pickle.load", "pickle.loads", "Unpickler")):
            found.append(f"{name}(...)")
    return found


def test_no_module_unpickles():
    problems = []
    for package in ("mama_core", "mama_desktop"):
        for path in sorted((REPO / package).rglob("*.py")):
            for call in _unsafe_calls(ast.parse(path.read_text(encoding="utf-8"))):
                problems.append(f"{path.relative_to(REPO)}: {call}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source, expected", [
    ("import torch\ntorch.load(p)", 1), ("import torch\ntorch.load(p, weights_only=False)", 1),
    ("import torch\ntorch.load(p, weights_only=True)", 0), ("import numpy as np\nnp.load(p, allow_pickle=True)", 1),
    ("import numpy as np\nnp.load(p, mmap_mode='r')", 0), ("import pickle\npickle.load(f)", 2),
    ("import yaml\nyaml.load(s)", 1), ("import yaml\nyaml.safe_load(s)", 0),
])
def test_the_scan_finds_unsafe_calls(source, expected):
    assert len(_unsafe_calls(ast.parse(source))) == expected


def test_mama_error_is_the_only_contract():
    """DataError/ModelError/RegistryError used above are MamaErrors (the CLI's exit-2 path)."""
    assert all(issubclass(e, MamaError) for e in (DataError, ModelError, RegistryError))
