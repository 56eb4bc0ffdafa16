"""Pre-training runs write TensorBoard events next to metrics.csv: every loss term, lr, logit
scales, throughput, memory and the validation loss, readable by TensorBoard's own reader."""

from __future__ import annotations

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mama_core.training import load_config, train


def _scalars(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def test_train_writes_every_loss_term_to_tensorboard(records, tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["optim.max_steps=2", "ckpt_every=0", "loss.delta_steps=1"])
    reports = list(train(cfg, records, tmp_path / "run"))
    events = _scalars(tmp_path / "run" / "tensorboard")
    tags = set(events.Tags()["scalars"])
    loss_terms = {f"train/{k}" for k in reports[-1].losses}
    assert len(loss_terms) == 4 and loss_terms <= tags
    assert {"train/loss", "train/lr", "train/logit_scale", "train/local_scale", "train/local_weight",
            "perf/images_per_s", "perf/step_time_s", "perf/max_memory_mb", "val/loss"} <= tags
    assert not any(t.endswith(("stopped", "final", "eta_s")) for t in tags)  # flags and ETAs are not curves
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    for report, event in zip(reports, events.Scalars("train/local_loss")):
        assert abs(event.value - report.losses["local_loss"]) < 1e-5
    assert events.Scalars("val/loss")[-1].step == 2
    assert abs(events.Scalars("train/logit_scale")[-1].value - reports[-1].logit_scale) < 1e-4
