from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mama_core.errors import ConfigError
from mama_core.training import load_config, train
from mama_core.training.checkpoint import list_checkpoints


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_smoke_run_writes_metrics_checkpoints_and_model(records, tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["optim.max_steps=3", "ckpt_every=1", "keep_last=2"])
    reports = list(train(cfg, records, tmp_path / "run"))
    assert [r.step for r in reports] == [1, 2, 3]
    last = reports[-1]
    assert last.final and last.model_dir and last.val_loss is not None
    assert set(last.losses) == {"image_image_loss", "image_text_loss", "image2_text_loss", "local_loss"}
    assert abs(sum(last.losses.values()) - last.loss) < 1e-4
    assert all(torch.isfinite(torch.tensor(r.loss)) for r in reports)
    assert [int(r["step"]) for r in _rows(tmp_path / "run")] == [1, 2, 3]
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["ckpt-0000002", "ckpt-0000003"]
    assert not list((tmp_path / "run" / "checkpoints").glob("*.tmp"))
    _check_tensorboard(tmp_path / "run" / "tensorboard", reports)

    from mama_core.model import load_model_dir

    model, info = load_model_dir(last.model_dir)
    assert info["training"]["step"] == 3
    with torch.no_grad():
        out = model.encode_image(torch.zeros(1, 1, 56, 56))
    assert out["image_global"].shape == (1, 16)


def _check_tensorboard(folder: Path, reports: list) -> None:
    """TensorBoard events next to metrics.csv, read by TensorBoard's own reader: every loss
    term, lr, logit scales, throughput, memory and the validation loss."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {f"train/{k}" for k in reports[-1].losses} <= tags
    assert {"train/loss", "train/lr", "train/logit_scale", "train/local_scale", "train/local_weight",
            "perf/images_per_s", "perf/step_time_s", "perf/max_memory_mb", "val/loss"} <= tags
    assert not any(t.endswith(("cancelled", "final", "eta_s")) for t in tags)  # flags and ETAs are not curves
    assert [e.step for e in events.Scalars("train/loss")] == [r.step for r in reports]
    for report, event in zip(reports, events.Scalars("train/image_text_loss")):
        assert abs(event.value - report.losses["image_text_loss"]) < 1e-5
    assert events.Scalars("val/loss")[-1].step == reports[-1].step
    assert abs(events.Scalars("train/logit_scale")[-1].value - reports[-1].logit_scale) < 1e-4


def test_resume_is_exact_across_delta_and_workers(records, tiny_overrides, tmp_path):
    """6 steps in one go without DataLoader workers == 3 steps, stop, resume to 6 with 2
    worker processes (delta = 4: the local loss switches on inside the resumed half). LoRA
    dropout stays on, so the RNG state must be restored too. Batches are a function of
    (seed, step) and the workers draw nothing from the main process's RNG, so on CPU with
    deterministic kernels the match is exact, bit for bit."""
    sets = tiny_overrides + ["optim.max_steps=6", "loss.delta_steps=4", "ckpt_every=0"]
    cfg = load_config(None, sets)
    full = list(train(cfg, records, tmp_path / "full"))

    workers = load_config(None, sets + ["data.num_workers=2"])
    stop = threading.Event()
    first = []
    for report in train(workers, records, tmp_path / "split", stop=stop):
        first.append(report)
        if report.step == 3:
            stop.set()
    assert first[-1].cancelled and first[-1].step == 3 and first[-1].checkpoint
    rest = list(train(workers, records, tmp_path / "split", resume=True))
    assert [r.step for r in rest] == [4, 5, 6]

    assert [r.local_weight for r in full] == [0, 0, 0, 0, 1, 1]
    for a, b in zip(full, first[:3] + rest):
        assert (a.step, a.loss, a.losses, a.lr) == (b.step, b.loss, b.losses, b.lr)
    wa = load_file(str(list_checkpoints(tmp_path / "full")[-1] / "model.safetensors"))
    wb = load_file(str(list_checkpoints(tmp_path / "split")[-1] / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    # The resumed run's log continues the first one: steps 1..6 once each.
    assert [int(r["step"]) for r in _rows(tmp_path / "split")] == [1, 2, 3, 4, 5, 6]


def test_stop_flag_callable_before_first_step(records, tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["optim.max_steps=5"])
    reports = list(train(cfg, records, tmp_path / "run", stop=lambda: True))
    assert len(reports) == 1 and reports[0].cancelled and reports[0].step == 0
    assert reports[0].model_dir is None


def test_refuses_to_overwrite_a_run(records, tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["optim.max_steps=1"])
    list(train(cfg, records, tmp_path / "run"))
    with pytest.raises(ConfigError):
        list(train(cfg, records, tmp_path / "run"))


def test_cli_train_json_and_export(synthetic_dir, tiny_overrides, tmp_path, capsys):
    from mama_core.cli import main
    from mama_core.paths import resources_dir

    sets = [a for o in tiny_overrides for a in ("--set", o)]
    smoke = resources_dir() / "configs" / "smoke.yaml"
    code = main(["train", "--config", str(smoke), "--data", str(synthetic_dir), "--out", str(tmp_path / "run"),
                 "--max-steps", "2", "--json", *sets])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [x["step"] for x in lines[:-1]] == [1, 2]
    assert lines[-1]["step"] == 2 and isinstance(lines[-1]["loss"], float)
    assert Path(lines[-1]["model_dir"], "model.safetensors").is_file()

    assert main(["export", str(tmp_path / "run"), str(tmp_path / "exported"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(out["model_dir"], "config.json").is_file()


def test_cli_bad_override_is_a_clean_error(synthetic_dir, tmp_path, capsys):
    from mama_core.cli import main
    from mama_core.paths import resources_dir

    smoke = resources_dir() / "configs" / "smoke.yaml"
    code = main(["train", "--config", str(smoke), "--data", str(synthetic_dir), "--out", str(tmp_path),
                 "--set", "optim.lr=-3"])
    assert code == 2 and "optim.lr" in capsys.readouterr().err


def test_resume_with_more_steps_extends_the_schedule(records, tiny_overrides, tmp_path):
    """A finished run resumed with a larger max_steps trains on: its cosine schedule follows
    the new length instead of staying at the decayed end of the old one."""
    base = tiny_overrides + ["optim.warmup_steps=1", "ckpt_every=0"]
    done = list(train(load_config(None, base + ["optim.max_steps=2"]), records, tmp_path / "run"))
    assert done[-1].step == 2
    more = list(train(load_config(None, base + ["optim.max_steps=4"]), records, tmp_path / "run", resume=True))
    assert [r.step for r in more] == [3, 4]
    assert more[0].lr > 0.1 * load_config(None, base).optim.lr



def test_bf16_run_stores_the_frozen_base_in_bf16_and_compiles_when_asked(records, tiny_overrides, tmp_path,
                                                                         monkeypatch):
    """precision bf16 on CPU: the frozen LoRA base in bf16, trained tensors fp32, both encoders
    checkpointed; `compile: true` reaches the encoders (recorded here, not compiled: compiling
    is minutes on CPU)."""
    from mama_core.training import trainer

    seen = {}

    def record(model):
        seen["frozen"] = {p.dtype for p in model.parameters() if not p.requires_grad}
        seen["trained"] = {p.dtype for p in model.parameters() if p.requires_grad}

    monkeypatch.setattr(trainer, "compile_encoders", record)
    cfg = load_config(None, tiny_overrides + ["optim.max_steps=1", "data.val_fraction=0", "precision=bf16",
                                              "checkpointing=all", "compile=true"])
    reports = list(train(cfg, records, tmp_path / "run"))
    assert seen == {"frozen": {torch.bfloat16}, "trained": {torch.float32}}
    assert [r.step for r in reports] == [1]
    assert all(isinstance(r.loss, float) and torch.isfinite(torch.tensor(r.loss)) for r in reports)
    assert all(isinstance(v, float) for v in reports[-1].losses.values())
