"""The fine-tuning generator: order of reports, registration without activation, cancel,
labels CSV input, the lora/full/continue-pretraining modes, and GPU bf16 LoRA."""

from __future__ import annotations

import csv
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from mama_core.errors import ConfigError, DataError
from mama_core.finetune import PHASES, FinetuneConfig, finetune, fingerprint
from mama_core.finetune.early_stopping import EarlyStopping
from mama_core.inference.heads import load_head
from mama_core.paths import user_cache_dir

ORDER = {p: i for i, p in enumerate(PHASES)}


def _run(data, **kwargs):
    labels = kwargs.pop("labels", None)
    stop = kwargs.pop("stop", None)
    cfg = FinetuneConfig(**{"task": "density", "max_steps": 8, "batch_size": 4, "device": "cpu", **kwargs})
    return list(finetune(cfg, data, labels=labels, stop=stop))


def _assert_in_order(reports):
    assert reports[0].phase == "features" and reports[-1].phase == "done"
    # train and validate interleave; every other phase comes in PHASES order
    ranks = [ORDER["train"] if r.phase in ("train", "validate") else ORDER[r.phase] for r in reports]
    assert ranks == sorted(ranks), [r.phase for r in reports]


def test_linear_probe_registers_a_version_that_is_not_active(studies, registry_with_tiny):
    registry, tiny_id = registry_with_tiny
    reports = _run(studies)
    _assert_in_order(reports)
    assert any(r.phase == "validate" and r.val_bacc is not None for r in reports)
    final = reports[-1]
    assert final.version_id and not final.cancelled
    version = registry.get(final.version_id)
    assert version.kind == "finetuned" and version.parent == tiny_id
    assert registry.active_id() == tiny_id  # never activated automatically
    assert len(version.data_fingerprint) == 64
    report = version.report
    assert report["task"] == "density" and report["baseline"]["method"] == "zero-shot"
    assert report["new"]["method"] == "probe"
    assert sum(report["class_counts"].values()) == report["n_cases"] == report["new"]["n"]
    assert np.array(report["new"]["confusion"]).sum() == report["n_cases"]
    head = load_head(version.model_dir, "density")
    assert head is not None and head.classes == [1, 2, 3, 4] and head.weight.shape == (4, 32)
    assert not list((user_cache_dir() / "finetune").iterdir())  # temporary folder removed


def test_stop_mid_run_registers_nothing(studies, registry_with_tiny):
    registry, tiny_id = registry_with_tiny
    stop = threading.Event()
    reports = []
    for report in finetune(FinetuneConfig(task="density", max_steps=200, batch_size=4, device="cpu"), studies,
                           stop=stop):
        reports.append(report)
        if report.phase == "train" and report.step == 3:
            stop.set()
    assert reports[-1].phase == "done" and reports[-1].cancelled and reports[-1].version_id is None
    assert max(r.step for r in reports if r.phase in ("train", "validate")) < 200
    assert [v.id for v in registry.list()] == [tiny_id] and registry.active_id() == tiny_id
    assert not list((user_cache_dir() / "finetune").iterdir())


def test_closing_the_generator_registers_nothing(studies, registry_with_tiny):
    registry, tiny_id = registry_with_tiny
    gen = finetune(FinetuneConfig(task="density", max_steps=50, batch_size=4, device="cpu"), studies)
    for report in gen:
        if report.phase == "train":
            break
    gen.close()  # what a killed GUI worker amounts to
    assert [v.id for v in registry.list()] == [tiny_id] and registry.active_id() == tiny_id
    assert not list((user_cache_dir() / "finetune").iterdir())


def test_dicom_folder_with_labels_csv(studies, registry_with_tiny, tmp_path):
    from mama_core.data import load_records
    from mama_core.dicom import find_studies

    folder = tmp_path / "dicoms"
    for sub in studies.iterdir():
        if sub.is_dir():
            shutil.copytree(sub, folder / sub.name)
    density = {p.relative_to(studies): r.density for r in load_records(studies) for p in [Path(r.path)]}
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["study_id", "density"])  # density is per study: one row each
        for study in find_studies(folder):
            values = {density[Path(p).relative_to(folder)] for p in study.images.values()}
            assert len(values) == 1
            writer.writerow([study.uid, values.pop()])
    with pytest.raises(DataError, match="density label"):
        _run(folder)  # a plain DICOM folder has no labels
    reports = _run(folder, labels=labels)
    assert reports[-1].version_id is not None
    assert reports[-1].comparison["n_cases"] >= 4


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_encoder_modes_run_and_change_the_encoder(studies, registry_with_tiny, tiny_model_dir, mode):
    from safetensors.torch import load_file

    from mama_core.model.io import load_model_dir

    registry, _ = registry_with_tiny
    reports = _run(studies, mode=mode, max_steps=2, patience=5)
    _assert_in_order(reports)
    version = registry.get(reports[-1].version_id)
    new, old = load_file(str(version.model_dir / "model.safetensors")), load_file(str(tiny_model_dir / "model.safetensors"))
    assert set(new) == set(old)  # LoRA merged away: a plain model directory
    q = next(k for k in new if "q_proj.weight" in k and k.startswith("vision."))
    assert not torch.equal(new[q], old[q])
    k = next(k for k in new if "k_proj.weight" in k and k.startswith("vision."))
    assert torch.equal(new[k], old[k]) == (mode == "lora")  # LoRA touches q/v only
    load_model_dir(version.model_dir)  # loads strictly
    assert load_head(version.model_dir, "density") is not None


def test_continue_pretraining_runs(studies, registry_with_tiny):
    registry, tiny_id = registry_with_tiny
    reports = _run(studies, mode="continue-pretraining", max_steps=2, batch_size=2)
    _assert_in_order(reports)
    assert [r.step for r in reports if r.phase == "train"][-1] == 2
    final = reports[-1]
    assert final.comparison["new"]["method"] == "zero-shot"
    assert registry.get(final.version_id).parent == tiny_id


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_lora_on_gpu_with_bf16(studies, registry_with_tiny):
    registry, _ = registry_with_tiny
    reports = _run(studies, mode="lora", max_steps=4, device="cuda", bf16=True)
    assert reports[-1].version_id is not None
    assert all(np.isfinite(r.loss) for r in reports if r.phase == "train")


def test_config_validation():
    with pytest.raises(ConfigError, match="task"):
        FinetuneConfig(task="age")
    with pytest.raises(ConfigError, match="mode"):
        FinetuneConfig(mode="prompt")
    with pytest.raises(ConfigError, match="val_fraction"):
        FinetuneConfig(val_fraction=1.0)
    cfg = FinetuneConfig(mode="linear-probe")
    assert (cfg.resolved_lr, cfg.resolved_weight_decay, cfg.momentum) == (5e-4, 1e-3, 0.9)
    assert cfg.total_steps(10) == 300 and cfg.warmup_for(300) == 60 and cfg.warmup_for(1000) == 100
    assert FinetuneConfig(epochs=2, batch_size=4).total_steps(10) == 6


def test_fingerprint_follows_labels_and_files(studies):
    from mama_core.data import load_records

    records = load_records(studies)[:6]
    first = fingerprint(records)
    assert fingerprint(list(reversed(records))) == first  # order does not matter
    records[0].density = 4 if records[0].density != 4 else 1
    assert fingerprint(records) != first


def test_early_stopping_keeps_the_best_state():
    keeper = EarlyStopping(patience=2)
    assert keeper.update(0.5, 1.0, 1, {"w": 1})
    assert not keeper.update(0.4, 0.5, 2, {"w": 2})
    assert keeper.update(0.5, 0.9, 3, {"w": 3})  # tie on bACC, lower loss
    keeper.update(0.1, 2.0, 4, {"w": 4})
    keeper.update(0.2, 2.0, 5, {"w": 5})
    assert keeper.should_stop and keeper.best_state == {"w": 3} and keeper.best_step == 3
