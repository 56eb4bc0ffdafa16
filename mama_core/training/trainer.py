"""The training loop: a generator of `StepReport`s honouring a stop flag.

One optimiser step = `grad_accum` micro-batches of `batch_size` pairs per process. The loss
is eq. (4) of the paper (`mama_core.losses.mama_objective`), computed on the global batch
under DDP. Mixed precision is bf16 autocast over fp32 master weights (every trained
parameter and the AdamW state stay fp32); the frozen LoRA base of the text encoder is then
stored in bf16, since it is only ever read under autocast. Attention is whatever the model
builds — SDPA — never eager, and autograd anomaly detection is never switched on here (both
cost several times the step time; see benchmarks/train_step.py). The step itself reads
nothing back to the host: loss values become floats only when a step is reported.

Exact resume: batches are a function of (seed, step) (see `training.data`), the global RNG
(dropout) is saved per rank in every checkpoint, and AdamW/scheduler state is restored, so
6 steps in one go equal 3 steps + resume to 6 within float tolerance on CPU.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from mama_core.errors import ConfigError, DataError
from mama_core.optim import StopFlag, bf16_autocast, cosine_scheduler, peak_memory_mb, should_stop
from mama_core.training import distributed as ddp
from mama_core.training.cache import ImageCache, default_cache_dir, warm_cache
from mama_core.training.checkpoint import (
    latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state, unwrap)
from mama_core.training.config import TrainConfig, save_config
from mama_core.training.data import (
    LoaderOptions, PairDataset, StepBatchSampler, class_weights, make_loader, sample_seed,
    validation_batches)
from mama_core.training.metrics import MetricsLog

MODEL_SUBDIR = "model"


@dataclass
class StepReport:
    """What one logged optimiser step reports (the CLI prints it, the GUI plots it)."""

    step: int
    max_steps: int
    epoch: float
    loss: float
    losses: dict[str, float]  # every `*_loss` term of eq. (4); local_loss is already weighted
    local_weight: float  # w(step) of eq. (4)
    lr: float
    images_per_s: float  # training pairs per second over all processes
    step_time_s: float
    max_memory_mb: float
    eta_s: float
    val_loss: float | None = None
    logit_scale: float | None = None  # the model's 1/tau multipliers after this step (global, local)
    local_scale: float | None = None
    checkpoint: str | None = None  # set when this step wrote a checkpoint
    model_dir: str | None = None  # set on the last report of a finished run
    cancelled: bool = False  # the stop flag ended the run, after a checkpoint (mama_core.optim)
    final: bool = False  # the last report of this call

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def csv_row(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "losses"}
        row.update(self.losses)
        return row


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: the one rule of `mama_core.model.params` (no decay on biases, norms,
    temperatures and embedding tables)."""
    from mama_core.model import optimizer_param_groups

    return optimizer_param_groups(model, weight_decay)


# --------------------------------------------------------------------------- helpers


def use_autocast(config: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast (fp32 master weights) on CUDA by default; fp32 on CPU."""
    if config.precision == "bf16":
        return True
    return config.precision == "auto" and device.type == "cuda"


@contextlib.contextmanager
def determinism(config: TrainConfig, device: torch.device):
    """Deterministic kernels on CPU for the run's duration (restored afterwards)."""
    before = torch.are_deterministic_algorithms_enabled()
    if config.deterministic and device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def split_records(records: Sequence, config: TrainConfig) -> tuple[list, list]:
    """Patient-level train/val split with a fixed seed (no patient in both)."""
    from mama_core.data import split_by_patient

    if not records:
        raise DataError("no image records to train on")
    vf = config.data.val_fraction
    if vf == 0:
        return list(records), []
    splits = split_by_patient(records, (1.0 - vf, vf, 0.0), seed=config.data.split_seed)
    if not splits["train"]:
        raise DataError("the training split is empty (too few patients for val_fraction)")
    return splits["train"], splits["val"]


def frozen_dtype_for(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 storage for frozen weights when the step runs under bf16 autocast, else None (fp32)."""
    return torch.bfloat16 if use_autocast(config, device) else None


def build_model_for(config: TrainConfig, frozen_dtype: torch.dtype | None = None) -> nn.Module:
    from mama_core.model import build_model

    return build_model(config.model_config(), frozen_dtype)


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (fp32 masters); the fused CUDA kernel on a GPU."""
    optim = config.optim
    groups = ([{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": optim.weight_decay}]
              if optim.decay_all else param_groups(model, optim.weight_decay))
    return torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas, eps=optim.eps,
                             fused=True if device.type == "cuda" else None)


def compile_encoders(model: nn.Module) -> None:
    """torch.compile both encoders in place (parameter names, hence checkpoints, unchanged)."""
    model.vision.compile()
    model.text.backbone.compile()


def _store_frozen(model: nn.Module, dtype: torch.dtype | None) -> None:
    """Cast the frozen parameters of an already loaded model to `dtype` (None: leave them)."""
    if dtype is None:
        return
    for param in model.parameters():
        if not param.requires_grad:
            param.data = param.data.to(dtype)


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device copy that overlaps with compute on CUDA (pinned source, non-blocking)."""
    if device.type == "cuda" and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def compute_losses(model: nn.Module, bare: nn.Module, batch: dict[str, Any], step: int, loss_cfg: Any,
                   device: torch.device, amp: bool, gather: bool) -> dict[str, torch.Tensor]:
    """Eq. (4) for one micro-batch: tokenise, encode both views under bf16 autocast (when
    `amp`), then the objective in fp32 on the (all-gathered, when `gather`) embeddings.
    `model` may be the DDP wrapper; `bare` is the MamaModel (for its tokenizer)."""
    from mama_core.losses import mama_objective

    tokens = {k: _to_device(v, device) for k, v in bare.tokenize(batch["captions"]).items()}
    images, images2 = _to_device(batch["images"], device), _to_device(batch["images2"], device)
    with bf16_autocast(device, amp):
        outputs = model(images, images2, tokens)
    return mama_objective(outputs, step, loss_cfg, gather=gather)


# --------------------------------------------------------------------------- the run


class _Run:
    """State of one training run on one process; methods are the loop's steps."""

    def __init__(self, config: TrainConfig, records: Sequence, out_dir: Path, resume: bool,
                 info: ddp.DistInfo, init_from: Path | None = None):
        self.config, self.out_dir, self.info, self.init_from = config, out_dir, info, init_from
        self.device = info.device
        self.loss_cfg = config.loss_config()
        self.amp = use_autocast(config, self.device)
        self._prepare_dir(resume)
        train_records, val_records = split_records(records, config)
        self.cache = self._warm_cache(list(train_records) + list(val_records))
        self.train_records = self._usable(train_records)
        self.val_records = self._usable(val_records)
        self._build_model()
        self.start_step = self._resume() if resume else self._fresh()
        self.step = self.start_step
        self._build_loaders()
        self.log = MetricsLog(out_dir, self.start_step if resume else None) if info.is_main else None
        self.times: deque[float] = deque(maxlen=20)
        self.logged_step = self.start_step

    # ---- set-up
    def _prepare_dir(self, resume: bool) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the output folder: {exc.strerror or exc}", path=self.out_dir) from exc
        if not resume and latest_checkpoint(self.out_dir) is not None:
            raise ConfigError("the output folder already holds a training run; pass --resume to "
                              "continue it or choose another folder", path=self.out_dir)
        if self.info.is_main:
            try:
                save_config(self.config, self.out_dir / "config.yaml")
            except OSError as exc:
                raise ConfigError(f"cannot write the run's config: {exc.strerror or exc}",
                                  path=self.out_dir / "config.yaml") from exc

    def _warm_cache(self, records: list) -> ImageCache:
        """Each rank decodes its share; the atomic writes make overlaps harmless."""
        data = self.config.data
        vision = self.config.model_config().vision
        size, resize = vision.image_size, vision.resize
        root = Path(data.cache_dir) if data.cache_dir else default_cache_dir()
        share = records[self.info.rank::self.info.world_size]
        errors = [p for p in warm_cache(share, size, data.cache_workers, root, data.cache_dtype, resize) if p.error]
        self.failed = {str(p.path) for rank_errors in ddp.gather_objects(errors, self.info)
                       for p in rank_errors}
        if self.failed:
            first = errors[0] if errors else None
            warnings.warn(f"skipping {len(self.failed)} unreadable image(s)"
                          + (f", e.g. {first.error}" if first else ""), stacklevel=2)
        return ImageCache(root, size, data.cache_dtype, resize)

    def _usable(self, records: Sequence) -> list:
        return [r for r in records if str(r.path) not in self.failed]

    def _build_model(self) -> None:
        torch.manual_seed(self.config.seed)  # identical initialisation on every rank
        if self.init_from is not None:
            from mama_core.model.io import load_model_dir

            model = load_model_dir(self.init_from, str(self.device))[0]
            _store_frozen(model, frozen_dtype_for(self.config, self.device))
        else:
            model = build_model_for(self.config, frozen_dtype_for(self.config, self.device)).to(self.device)
        model.train()
        if self.config.compile:
            compile_encoders(model)
        self.bare = model
        self.optimizer = make_optimizer(model, self.config, self.device)
        self.scheduler = self._scheduler(0)
        self.model = model
        if self.info.enabled:
            # find_unused_parameters: before step delta the local heads get no gradient.
            ids = [self.device.index] if self.device.type == "cuda" else None
            if self.config.sync_batchnorm and self.device.type == "cuda":  # torch has no CPU SyncBatchNorm
                model = self.bare = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.model = nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                             find_unused_parameters=True)

    def _scheduler(self, done_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
        optim = self.config.optim
        return cosine_scheduler(self.optimizer, optim.warmup_steps, optim.max_steps, optim.min_lr_ratio, done_steps)

    def _fresh(self) -> int:
        # Per-rank dropout streams, reproducible from the seed.
        torch.manual_seed(sample_seed(self.config.seed, self.info.rank, 17))
        return 0

    def _resume(self) -> int:
        ckpt = latest_checkpoint(self.out_dir)
        if ckpt is None:
            return self._fresh()
        state = load_checkpoint(ckpt, self.bare, self.optimizer, self.scheduler)
        # The schedule follows this run's config, not the checkpoint's, so that
        # `--resume --max-steps N` really extends it: rebuilt at the restored position.
        self.scheduler = self._scheduler(self.scheduler.last_epoch)
        saved = TrainConfig.from_dict(state["config"]).model_config()
        if saved is not None and saved.to_dict() != self.config.model_config().to_dict():
            raise ConfigError("the model config differs from the checkpoint's; resume with the "
                              "same config", path=ckpt, field="model")
        rngs = state.get("rng") or []
        if len(rngs) == self.info.world_size:
            set_rng_state(rngs[self.info.rank])
        else:  # a different world size cannot replay dropout exactly; reseed per rank
            torch.manual_seed(sample_seed(self.config.seed, self.info.rank, state["step"]))
        return int(state["step"])

    def _build_loaders(self) -> None:
        cfg, data = self.config, self.config.data
        self.train_set = PairDataset(self.train_records, self.cache, cfg.augment, data.mask_prob,
                                     data.second_view_prob, train=True)
        weights = None if data.balance == "none" else class_weights(self.train_records, data.balance)
        self.sampler = StepBatchSampler(len(self.train_set), cfg.batch_size, cfg.seed, self.info.rank,
                                        self.info.world_size, weights,
                                        start_batch=self.start_step * cfg.grad_accum)
        options = LoaderOptions(data.num_workers, self.device.type == "cuda", cfg.seed)
        self.loader = make_loader(self.train_set, self.sampler, options)
        self.batches = iter(self.loader)
        self.val_set = PairDataset(self.val_records, self.cache, cfg.augment, 0.0,
                                   data.second_view_prob, train=False)
        self.val_batches = validation_batches(len(self.val_set), cfg.batch_size, self.info.rank,
                                              self.info.world_size, cfg.val_batches)

    # ---- one step
    def forward_losses(self, model: nn.Module, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        return compute_losses(model, self.bare, batch, step, self.loss_cfg, self.device, self.amp,
                              gather=self.info.enabled)

    def optimizer_step(self) -> dict[str, torch.Tensor]:
        """grad_accum micro-batches, then one AdamW step. `self.step` counts finished steps,
        so w(step) of eq. (4) is 0 for steps 0 .. delta-1. The returned terms stay (detached)
        tensors on the device: reading them would make the host wait for the GPU."""
        accum = self.config.grad_accum
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}
        for micro in range(accum):
            batch = next(self.batches)
            last = micro == accum - 1
            sync = contextlib.nullcontext() if last or not self.info.enabled else self.model.no_sync()
            with sync:
                terms = self.forward_losses(self.model, batch, self.step)
                (terms["loss"] / accum).backward()
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + value.detach() / accum
        if self.config.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.bare.parameters(), self.config.optim.grad_clip)
        self.lr = self.scheduler.get_last_lr()[0]  # the rate this step used
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return totals

    @torch.no_grad()
    def validate(self) -> float | None:
        if not self.val_batches:
            return None
        from mama_core.training.data import collate_pairs

        self.bare.eval()
        total = 0.0
        for indices in self.val_batches:
            batch = collate_pairs([self.val_set[i] for i in indices])
            total += float(self.forward_losses(self.bare, batch, self.step)["loss"])
        self.bare.train()
        return total / len(self.val_batches)

    def checkpoint(self) -> str:
        rngs = ddp.gather_objects(rng_state(), self.info)
        path = None
        if self.info.is_main:
            path = save_checkpoint(self.out_dir, self.step, self.bare, self.optimizer, self.scheduler,
                                   self.config.to_dict(), rngs, self.config.keep_last)
        ddp.barrier(self.info)
        return str(path) if path else ""

    def export(self) -> str:
        target = self.out_dir / MODEL_SUBDIR
        if self.info.is_main:
            from mama_core.model.io import save_model_dir

            save_model_dir(self.bare, target, extra={"training": {
                "step": self.step, "config": self.config.to_dict()}})
        ddp.barrier(self.info)
        return str(target)

    # ---- reports
    def report(self, terms: dict[str, torch.Tensor | float], step_time: float, **extra: Any) -> StepReport:
        cfg = self.config
        losses = {k: float(v) for k, v in terms.items()}  # the one host read of a logged step
        pairs = cfg.batch_size * cfg.grad_accum * self.info.world_size
        mean_time = sum(self.times) / len(self.times) if self.times else step_time
        report = StepReport(
            step=self.step, max_steps=cfg.optim.max_steps,
            epoch=self.sampler.epoch_at(self.step * cfg.grad_accum - 1) if self.step else 0.0,
            loss=losses.get("loss", float("nan")),
            losses={k: v for k, v in losses.items() if k.endswith("_loss")},
            local_weight=losses.get("local_weight", 0.0),
            lr=getattr(self, "lr", self.scheduler.get_last_lr()[0]),
            images_per_s=pairs / step_time if step_time > 0 else 0.0,
            step_time_s=step_time, max_memory_mb=peak_memory_mb(self.device),
            eta_s=mean_time * (cfg.optim.max_steps - self.step), **_scales(self.bare), **extra)
        if self.log is not None and self.step > self.logged_step:  # a stop report repeats a step
            self.log.write(report.csv_row())
            self.logged_step = self.step
        return report

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def _scales(model: nn.Module) -> dict[str, float]:
    """The logit and local scales (1/tau) for the logs, when the model has them."""
    if not hasattr(model, "scales"):
        return {}
    logit, local = model.scales()
    return {"logit_scale": float(logit.detach()), "local_scale": float(local.detach())}


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _loop(run: _Run, stop: Callable[[], bool]) -> Iterator[StepReport]:
    cfg = run.config
    losses: dict[str, torch.Tensor] = {}
    step_time = 0.0
    while run.step < cfg.optim.max_steps:
        if ddp.any_rank(bool(stop()), run.info):
            yield run.report(losses, step_time, checkpoint=run.checkpoint(), cancelled=True, final=True)
            return
        started = time.perf_counter()
        losses = run.optimizer_step()
        step_time = time.perf_counter() - started
        run.times.append(step_time)
        last = run.step == cfg.optim.max_steps
        val = run.validate() if (_due(run.step, cfg.val_every) or last) else None
        ckpt = run.checkpoint() if (_due(run.step, cfg.ckpt_every) or last) else None
        if last:
            yield run.report(losses, step_time, val_loss=val, checkpoint=ckpt, model_dir=run.export(), final=True)
        elif _due(run.step, cfg.log_every) or val is not None or ckpt:
            yield run.report(losses, step_time, val_loss=val, checkpoint=ckpt)
    if run.step == run.start_step:  # resumed a finished run: nothing to do but report
        yield run.report(losses, step_time, model_dir=run.export(), final=True)


def train(config: TrainConfig, records: Sequence, out_dir: str | Path, resume: bool = False,
          stop: StopFlag = None, init_from: str | Path | None = None) -> Iterator[StepReport]:
    """Train MaMA on `records` into `out_dir`, yielding a report every `log_every` steps.

    `out_dir` receives config.yaml, metrics.csv, checkpoints/ and, when the run reaches
    max_steps, the exported model directory `model/`. `stop` (a callable or a
    threading.Event) is polled before every step: the run then checkpoints and returns.
    `init_from`: a model directory whose weights start the run (continued pre-training)
    instead of a fresh model built from `config.model`, which must describe that model.
    Under torchrun every process calls this; only rank 0 writes files.
    """
    info = ddp.init_distributed(config.device)
    try:
        with determinism(config, info.device):
            run = _Run(config, records, Path(out_dir), resume, info,
                       Path(init_from) if init_from is not None else None)
            try:
                yield from _loop(run, lambda: should_stop(stop))
            finally:
                run.close()
    finally:
        ddp.cleanup(info)


def export_run(run_dir: str | Path, out_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Export the latest (or a given) checkpoint of a run as a self-contained model directory."""
    from mama_core.errors import ModelError
    from mama_core.model.io import save_model_dir
    from mama_core.training.checkpoint import load_model_weights, read_state

    ckpt = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if ckpt is None:
        raise ModelError("no checkpoint in this run folder", path=Path(run_dir) / "checkpoints")
    state = read_state(ckpt)
    config = TrainConfig.from_dict(state["config"])
    model = build_model_for(config)
    load_model_weights(ckpt, model)
    target = Path(out_dir)
    save_model_dir(model, target, extra={"training": {"step": state["step"], "config": state["config"],
                                                      "checkpoint": str(ckpt)}})
    return target
