"""`finetune(config, data, labels, stop)`: the one-click local fine-tuning job.

Stages (each yields `FinetuneReport`s): load and split the local cases by patient ->
'features' (frozen global features of every case, once; the active model's predictions
on the held-out cases are taken from them before anything trains) -> 'train' /
'validate' (the mode's optimisation with early stopping on validation balanced accuracy)
-> 'compare' (new vs active on the same held-out cases) -> 'save' (model directory
written to a temporary folder, then `Registry.add` makes it one immutable version) ->
'done'.  The new version is never activated here: the caller decides.

A stop request, an error or a killed process before `Registry.add` leaves no version
(the temporary folder is removed; the registry publishes by one atomic rename) and the
active pointer is never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Iterator, Sequence

import numpy as np
import torch

from mama_core.finetune.compare import balanced_accuracy, comparison_report, summary_line
from mama_core.finetune.config import FinetuneConfig
from mama_core.finetune.data import CLASSES, LocalData, prepare
from mama_core.finetune.features import extract_global, image_cache
from mama_core.finetune.probe import FeatureSplit, train_probe
from mama_core.finetune.reports import Clock, FinetuneReport
from mama_core.inference.heads import save_head
from mama_core.optim import Cancelled, StopFlag, auto_device, should_stop
from mama_core.paths import user_cache_dir
from mama_core.fs import sweep_orphans

CANCELLED = "cancelled: nothing was registered and the active model is unchanged"


@dataclass
class ModelRef:
    """A model directory and, when it is a registry version, its id."""

    dir: Path
    version_id: str | None
    label: str


@dataclass
class Loaded:
    ref: ModelRef
    model: Any
    info: dict


def finetune(config: FinetuneConfig, data: str | Path | Sequence[Any], labels: str | Path | None = None,
             stop: StopFlag = None, log_dir: str | Path | None = None) -> Iterator[FinetuneReport]:
    """Run one fine-tuning job; see the module docstring. `data` is anything
    `mama_core.data.load_records` reads, or a list of ImageRecords. Training curves go to
    `log_dir` (metrics.csv + TensorBoard; default: a new folder under
    `user_data_dir()/runs`), named in the first report's `extra["log_dir"]`."""
    clock = Clock()
    log = FinetuneLog(Path(log_dir) if log_dir else default_log_dir(config), config)
    try:
        staging_root = user_cache_dir() / "finetune"
        staging_root.mkdir(parents=True, exist_ok=True)
        sweep_orphans(staging_root, "run", spare_own=True)  # what killed jobs left behind
        with tempfile.TemporaryDirectory(prefix=f"run-{os.getpid()}-", dir=staging_root) as tmp:
            for report in _run(config, data, labels, stop, clock, Path(tmp)):
                yield log.write(report)
    except Cancelled:
        yield FinetuneReport("done", message=CANCELLED, elapsed_s=clock.elapsed(), cancelled=True)
    finally:
        log.close()


# --------------------------------------------------------------------------- training logs


def default_log_dir(cfg: FinetuneConfig) -> Path:
    import time

    from mama_core.paths import user_data_dir

    return user_data_dir() / "runs" / f"finetune-{time.strftime('%Y%m%d-%H%M%S')}-{cfg.task}-{cfg.mode}-{os.getpid()}"


class FinetuneLog:
    """The training curves of a fine-tuning job as metrics.csv + TensorBoard events (the same
    writer as pre-training, `training.metrics.MetricsLog`). Steps restart at each stage (the
    initial head, then the encoder); the log numbers them on one axis."""

    def __init__(self, run_dir: Path, cfg: FinetuneConfig):
        self.run_dir, self.cfg = run_dir, cfg
        self.log: Any = None  # created with the first row: a job that fails early leaves no folder
        self.stage, self.offset, self.step = None, 0, 0
        self.last_time: float | None = None
        self.first = True

    def write(self, report: FinetuneReport) -> FinetuneReport:
        if self.first:
            report.extra["log_dir"] = str(self.run_dir)
            self.first = False
        if report.phase in ("train", "validate") and report.loss is not None and report.total_steps:
            self._open().write(self._row(report))
        if self.log is not None and report.phase in ("validate", "done"):
            self.log.flush()
        return report

    def _open(self) -> Any:
        from mama_core.training.metrics import FINETUNE_FIELDS, MetricsLog

        if self.log is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.log = MetricsLog(self.run_dir, None, FINETUNE_FIELDS)
        return self.log

    def _row(self, report: FinetuneReport) -> dict[str, Any]:
        import time

        from mama_core.optim import peak_memory_mb

        stage = report.extra.get("stage")
        if stage != self.stage:
            self.stage, self.offset = stage, self.step
        now = time.perf_counter()
        moved = self.offset + report.step - self.step
        rate = moved / (now - self.last_time) if self.last_time and moved > 0 and now > self.last_time else None
        self.step, self.last_time = self.offset + report.step, now
        device = auto_device(self.cfg.device)
        return {"step": self.step, "phase": report.phase, "stage": stage or "", "loss": report.loss,
                "lr": self._lr(report, stage), "val_bacc": report.val_bacc, "best_val_bacc": report.best_val_bacc,
                "steps_per_s": rate, "max_memory_mb": peak_memory_mb(device), "elapsed_s": report.elapsed_s,
                **{k: v for k, v in (report.extra.get("losses") or {}).items() if k.endswith("_loss")}}

    def _lr(self, report: FinetuneReport, stage: str | None) -> float | None:
        """The encoder's (or probe's) learning rate at this step, from the same schedule."""
        from mama_core.optim import warmup_cosine
        from mama_core.training.config import OptimConfig

        cfg = self.cfg.initial_probe() if stage else self.cfg
        total = report.total_steps
        # continue-pretraining runs the trainer's schedule (see pretrain.train_config), with its floor
        floor = OptimConfig().min_lr_ratio if cfg.mode == "continue-pretraining" else 0.0
        return cfg.resolved_lr * warmup_cosine(report.step - 1, cfg.warmup_for(total), total, floor)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


# --------------------------------------------------------------------------- the job


def _run(cfg: FinetuneConfig, data: Any, labels: Any, stop: StopFlag, clock: Clock,
         tmp: Path) -> Generator[FinetuneReport, None, None]:
    local = prepare(data, labels, cfg)
    yield FinetuneReport("features", 0, len(local.train) + len(local.val), message=_data_message(local, cfg),
                         elapsed_s=clock.elapsed())
    base, baseline = resolve_base(cfg), resolve_baseline(cfg)
    device = auto_device(cfg.device)
    loaded = load(base, device)
    cache = image_cache(loaded.model)
    feats = yield from _features(loaded.model, local.train + local.val, cache, device, cfg, clock, stop)
    n_train = len(local.train)
    y_train, y_val = local.labels("train", cfg.task), local.labels("val", cfg.task)
    train, val = FeatureSplit(feats[:n_train], y_train), FeatureSplit(feats[n_train:], y_val)
    baseline_probs = None
    if baseline is None or baseline.dir.resolve() == base.dir.resolve():
        baseline, baseline_probs = base, task_probs(loaded, local.val, val.x, cfg.task)
    out = tmp / "model"
    if cfg.mode == "linear-probe":
        new_probs, new_method, best = yield from _linear_probe(loaded, train, val, cfg, clock, stop, out)
    elif cfg.mode in ("lora", "full"):
        new_probs, new_method, best = yield from _tune_encoder(loaded, local, train, val, cache, device, cfg,
                                                               clock, stop, out)
    else:
        new_probs, new_method, best = yield from _continue_pretraining(loaded, local, cache, device, cfg,
                                                                       clock, stop, out)
    if baseline_probs is None:
        baseline_probs = yield from _baseline_probs(baseline, local, cache, device, cfg, clock, stop)
    yield FinetuneReport("compare", message="comparing the new model with the active model on the held-out cases",
                         elapsed_s=clock.elapsed(), best_val_bacc=best)
    comparison = comparison_report(cfg.task, cfg.mode, y_val, new_probs, new_method, baseline_probs,
                                   method_of(baseline, cfg.task), baseline.label)
    yield from _trust_statistics(cfg, local, feats, loaded, cache, device, clock, stop, out, y_val, new_probs)
    comparison.update(_notices(base, baseline))
    yield from _register(cfg, local, base, baseline, comparison, best, out, clock, stop)


def _data_message(local: LocalData, cfg: FinetuneConfig) -> str:
    patients = len({r.patient_id for r in local.train}), len({r.patient_id for r in local.val})
    skipped = f"; {local.n_unlabelled} image(s) without a {cfg.task} label skipped" if local.n_unlabelled else ""
    return (f"{len(local.train)} training images ({patients[0]} patients), {len(local.val)} held-out images "
            f"({patients[1]} patients){skipped}")


def _features(model: Any, records: list, cache: Any, device: torch.device, cfg: FinetuneConfig, clock: Clock,
              stop: StopFlag, phase: str = "features") -> Generator[FinetuneReport, None, np.ndarray]:
    clock.new_phase()
    chunks = []
    for done, batch in extract_global(model, records, cache, device, batch_size=16, bf16=cfg.bf16):
        if should_stop(stop):
            raise Cancelled
        chunks.append(batch)
        yield FinetuneReport(phase, done, len(records), eta_s=clock.eta(done, len(records)),
                             message="extracting image features", elapsed_s=clock.elapsed())
    return torch.cat(chunks).numpy()


# --------------------------------------------------------------------------- models


def resolve_base(cfg: FinetuneConfig) -> ModelRef:
    """The model to start from: the registry's active version, or a directory."""
    from mama_core.registry import Registry

    if cfg.base_is_active():
        version = Registry().active()
        return ModelRef(version.model_dir, version.id, version.id)
    path = Path(cfg.base_model).expanduser()
    if not (path / "config.json").is_file():
        from mama_core.errors import ModelError

        raise ModelError("not a model directory (no config.json)", path=path)
    return ModelRef(path, _version_of(path), str(path))


def _version_of(path: Path) -> str | None:
    from mama_core.registry import Registry

    for version in Registry().list():
        if version.model_dir.resolve() == path.resolve():
            return version.id
    return None


def resolve_baseline(cfg: FinetuneConfig) -> ModelRef | None:
    """The current active model, which the new one is compared with (None: none yet)."""
    from mama_core.errors import RegistryError
    from mama_core.registry import Registry

    try:
        version = Registry().active()
    except RegistryError:
        return None
    return ModelRef(version.model_dir, version.id, version.id)


def load(ref: ModelRef, device: torch.device) -> Loaded:
    from mama_core.model.io import load_model_dir

    model, info = load_model_dir(ref.dir, device)
    for p in model.parameters():
        p.requires_grad_(False)
    return Loaded(ref, model.eval(), info or {})


def method_of(ref: ModelRef, task: str) -> str:
    from mama_core.inference.heads import load_head

    return "probe" if load_head(ref.dir, task) is not None else "zero-shot"


def task_probs(loaded: Loaded, records: Sequence, raw: np.ndarray, task: str) -> np.ndarray:
    """What the app would show for these images with this model: its probe head for the
    task when it has one, else zero-shot (both through `inference.Predictor`)."""
    from mama_core.inference.predictor import Predictor

    predictor = Predictor(loaded.model, loaded.info, loaded.ref.dir, loaded.ref.label,
                          next(loaded.model.parameters()).device, cache_size=1)
    return np.stack([predictor.task_probs(_image_features(r, x), task) for r, x in zip(records, raw)])


def _image_features(record: Any, raw: np.ndarray):
    """The parts of `ImageFeatures` that task prediction reads (no patches needed)."""
    from mama_core.inference.types import ImageFeatures

    g = torch.from_numpy(np.asarray(raw, np.float32))
    return ImageFeatures(path=Path(record.path), image_global=torch.nn.functional.normalize(g, dim=-1),
                         image_patches=torch.empty(0), grid=(0, 0), letterbox=None,
                         laterality=record.laterality, view=record.view, patient_age=_age(record),
                         study_uid=record.study_id, raw_global=g)


def _age(record: Any) -> int | None:
    try:
        return int(float(record.meta.get("age_at_study")))
    except (TypeError, ValueError):
        return None


def _baseline_probs(ref: ModelRef, local: LocalData, cache: Any, device: torch.device, cfg: FinetuneConfig,
                    clock: Clock, stop: StopFlag) -> Generator[FinetuneReport, None, np.ndarray]:
    loaded = load(ref, device)
    vision = loaded.model.config.vision
    if (int(vision.image_size), vision.resize) != (cache.size, cache.resize):
        cache = image_cache(loaded.model)
    raw = yield from _features(loaded.model, local.val, cache, device, cfg, clock, stop, "compare")
    return task_probs(loaded, local.val, raw, cfg.task)


def copy_model_dir(src: Path, dst: Path) -> Path:
    """A writable copy of a model directory (registry versions are read-only; version.json
    belongs to the registry and is left behind)."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile, ignore=shutil.ignore_patterns("version.json"))
    return dst


# --------------------------------------------------------------------------- modes


def _linear_probe(loaded: Loaded, train: FeatureSplit, val: FeatureSplit, cfg: FinetuneConfig, clock: Clock,
                  stop: StopFlag, out: Path):
    classes = CLASSES[cfg.task]
    head, best = yield from train_probe(train, val, cfg, classes, clock, stop)
    copy_model_dir(loaded.ref.dir, out)  # the encoder is unchanged: only the head is new
    save_head(out, head)
    return head.probabilities(torch.from_numpy(val.x)), "probe", best


def _tune_encoder(loaded: Loaded, local: LocalData, train: FeatureSplit, val: FeatureSplit, cache: Any,
                  device: torch.device, cfg: FinetuneConfig, clock: Clock, stop: StopFlag, out: Path):
    from mama_core.finetune.encoder import train_encoder
    from mama_core.model.io import save_model_dir

    classes = CLASSES[cfg.task]
    probe, _ = yield from _tagged(train_probe(train, val, cfg.initial_probe(), classes, clock, stop),
                                  "initial head (linear probe on frozen features)")
    head, best = yield from train_encoder(loaded.model, probe, local.train, train.y, local.val, val.y, cache,
                                          device, cfg, clock, stop)
    save_model_dir(loaded.model, out, extra=_extra(loaded))
    shutil.rmtree(out / "heads", ignore_errors=True)  # heads of other tasks fit the old encoder only
    save_head(out, head)
    raw = yield from _features(loaded.model, local.val, cache, device, cfg, clock, stop, "compare")
    return head.probabilities(torch.from_numpy(raw)), "probe", best


def _tagged(gen: Generator, stage: str):
    """Pass a sub-job's reports through with a stage label; return its result."""
    result = None
    try:
        while True:
            report = next(gen)
            report.extra["stage"] = stage
            report.message = f"{stage}: {report.message}" if report.message else stage
            yield report
    except StopIteration as done:
        result = done.value
    return result


def _extra(loaded: Loaded) -> dict:
    extra = loaded.info.get("extra") if isinstance(loaded.info, dict) else None
    return dict(extra) if isinstance(extra, dict) else {}


def _continue_pretraining(loaded: Loaded, local: LocalData, cache: Any, device: torch.device, cfg: FinetuneConfig,
                          clock: Clock, stop: StopFlag, out: Path):
    from mama_core.finetune.pretrain import continue_pretraining

    best = yield from continue_pretraining(loaded, local, cfg, clock, stop, out, device)
    new = load(ModelRef(out, None, "new"), device)
    raw = yield from _features(new.model, local.val, cache, device, cfg, clock, stop, "validate")
    probs = task_probs(new, local.val, raw, cfg.task)
    best = balanced_accuracy(local.labels("val", cfg.task), probs)
    yield FinetuneReport("validate", val_bacc=best, best_val_bacc=best, elapsed_s=clock.elapsed(),
                         message=f"zero-shot validation balanced accuracy of the new model {best:.3f}")
    return probs, "zero-shot", best


# --------------------------------------------------------------------------- trust statistics


def _notices(base: ModelRef, baseline: ModelRef) -> dict:
    """The demo model says what it is wherever its outputs appear, reports included."""
    from mama_core.inference.predictor import model_notice

    notes = {k: model_notice(ref.dir) for k, ref in (("new", base), ("baseline", baseline))}
    return {"notices": {k: v for k, v in notes.items() if v}} if any(notes.values()) else {}


def _trust_statistics(cfg: FinetuneConfig, local: LocalData, feats: np.ndarray, loaded: Loaded, cache: Any,
                      device: torch.device, clock: Clock, stop: StopFlag, out: Path, y_val: np.ndarray,
                      new_probs: np.ndarray):
    """What the new model directory needs to be read honestly (docs/inference.md): OOD
    statistics of the data it was fitted to (bank: the training images; thresholds: the
    held-out ones) and a temperature for the new head, fitted on the held-out images."""
    from mama_core.evaluation.calibration import save_temperatures, temperature_entry
    from mama_core.inference.ood import fit_ood, save_ood

    x = feats
    if cfg.mode != "linear-probe":  # the encoder changed: embed the cases again with the new one
        model = loaded.model if cfg.mode in ("lora", "full") else load(ModelRef(out, None, "new"), device).model
        x = yield from _features(model, local.train + local.val, cache, device, cfg, clock, stop, "compare")
    n = len(local.train)
    stats = fit_ood(x[:n], x[n:], [r.study_id for r in local.val],
                    source=f"fine-tuning data {local.source}: {n} training images; {len(local.val)} held-out images")
    save_ood(out, stats)
    entry = temperature_entry(y_val, new_probs, cfg.task, out, source="held-out (validation) images of the "
                              "fine-tuning data, which also chose the early-stopping point")
    save_temperatures(out, {cfg.task: entry})
    yield FinetuneReport("save", message=f"out-of-distribution threshold {stats.view_threshold:.4f}; temperature "
                         f"{entry['temperature']:.3f} for the {cfg.task} head", elapsed_s=clock.elapsed())


# --------------------------------------------------------------------------- registration


def _register(cfg: FinetuneConfig, local: LocalData, base: ModelRef, baseline: ModelRef, comparison: dict,
              best: float | None, out: Path, clock: Clock, stop: StopFlag):
    from mama_core.registry import Registry

    if should_stop(stop):  # last moment a cancel can still leave everything as it was
        raise Cancelled
    report = {**comparison, "best_val_bacc": best, "n_train": len(local.train), "base_model": str(base.dir),
              "base_version": base.version_id, "baseline_version": baseline.version_id,
              "data": local.source, "config": cfg.to_dict()}
    yield FinetuneReport("save", message="registering the new model version", elapsed_s=clock.elapsed(),
                         best_val_bacc=best)
    version = Registry().add(out, cfg.display_name, "finetuned", parent=base.version_id, report=report,
                             data_fingerprint=local.fingerprint, extra={"task": cfg.task, "mode": cfg.mode})
    yield FinetuneReport("done", message=f"registered {version.id} (not active). {summary_line(comparison)}",
                         elapsed_s=clock.elapsed(), best_val_bacc=best, comparison=report, version_id=version.id)
