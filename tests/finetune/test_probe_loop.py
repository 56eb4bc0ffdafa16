"""The one probe loop serves both callers: with a validation split it stops early and keeps
the best head; without one (the evaluation protocol) every step runs and the last head is kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mama_core.finetune.config import FinetuneConfig
from mama_core.finetune.probe import FeatureSplit, fit_probe, train_probe
from mama_core.optim import Cancelled


def _split(seed: int, n: int = 60) -> FeatureSplit:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(2), n // 2)
    x = (rng.normal(size=(n, 8)) + y[:, None] * 3.0).astype(np.float32)
    return FeatureSplit(x, y)


def test_without_validation_every_step_runs_and_the_last_head_is_kept():
    cfg = FinetuneConfig(task="cancer", max_steps=40, batch_size=8, warmup_steps=5, patience=1, lr=0.1)
    reports = []
    job = train_probe(_split(0), None, cfg, [0, 1])
    while True:
        try:
            reports.append(next(job))
        except StopIteration as done:
            head, best = done.value
            break
    assert [r.step for r in reports] == list(range(1, 41)) and {r.phase for r in reports} == {"train"}
    assert best is None
    again = fit_probe(_split(0).x, _split(0).y, cfg, [0, 1])  # same seed, same head
    assert np.array_equal(again.weight, head.weight)
    held_out = _split(1)
    assert np.mean(head.probabilities(torch.from_numpy(held_out.x)).argmax(1) == held_out.y) > 0.9


def test_with_validation_it_stops_early_and_honours_the_stop_flag():
    cfg = FinetuneConfig(task="cancer", max_steps=400, batch_size=8, warmup_steps=5, patience=1, eval_every=5)
    noise = _split(1)
    noise.y = np.random.default_rng(2).permutation(noise.y)  # nothing to learn: validation stalls
    reports = list(train_probe(_split(0), noise, cfg, [0, 1]))
    assert reports[-1].message.startswith("early stop") and reports[-1].step < 400
    with pytest.raises(Cancelled):
        list(train_probe(_split(0), _split(1), cfg, [0, 1], stop=lambda: True))
