"""The step loop the probe and the encoder fine-tuning share: poll the stop flag, take one
optimiser step, report, validate on schedule and stop early (`EarlyStopping`).

Without a validation function (the evaluation protocol) every step runs and nothing is
validated; the caller keeps the last state."""

from __future__ import annotations

from typing import Any, Callable, Generator

from mama_core.finetune.config import FinetuneConfig
from mama_core.finetune.early_stopping import EarlyStopping
from mama_core.finetune.reports import Clock, FinetuneReport
from mama_core.optim import Cancelled, StopFlag, should_stop


def run_steps(total: int, step: Callable[[], float], validate: Callable[[], tuple[float, float]] | None,
              snapshot: Callable[[], Any], cfg: FinetuneConfig, clock: Clock | None = None,
              stop: StopFlag = None) -> Generator[FinetuneReport, None, EarlyStopping]:
    """Yield a report per step; return the EarlyStopping that holds the best state.

    `step()` trains once and returns the loss; `validate()` returns (balanced accuracy,
    loss) on the validation split; `snapshot()` is the state kept when it is the best."""
    keeper, interval = EarlyStopping(cfg.patience), cfg.validation_interval(total)
    clock = clock or Clock()
    clock.new_phase()
    for n in range(1, total + 1):
        if should_stop(stop):
            raise Cancelled
        loss = step()
        report = FinetuneReport("train", n, total, loss, eta_s=clock.eta(n, total), elapsed_s=clock.elapsed(),
                                best_val_bacc=keeper.best_bacc)
        if validate is not None and (n % interval == 0 or n == total):
            bacc, val_loss = validate()
            keeper.update(bacc, val_loss, n, snapshot())
            report.phase, report.val_bacc, report.best_val_bacc = "validate", bacc, keeper.best_bacc
            report.message = (f"validation balanced accuracy {bacc:.3f} "
                              f"(best {keeper.best_bacc:.3f} at step {keeper.best_step})")
        yield report
        if keeper.should_stop:
            yield FinetuneReport("validate", n, total, loss, bacc, 0.0,
                                 f"early stop: no better validation balanced accuracy for {cfg.patience} checks",
                                 clock.elapsed(), keeper.best_bacc)
            break
    return keeper
