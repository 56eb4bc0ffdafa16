"""`Predictor`: a loaded model plus everything needed to read a study with it.

- `predict(study)`: BI-RADS (7) and density (4) probabilities per view, per side and for
  the study.  Zero-shot by default (paper §4 "zero-shot"): one prompt per class from
  `captions.zero_shot_prompts(task, record)`, optionally prefixed with the image's own
  metadata read from its DICOM tags (age, side, view; enabled by the model directory's
  `zero_shot_metadata` extra), softmax once over logit_scale * cosine(image, prompt).
  When the model directory holds probe heads (`heads/<task>.safetensors` + `.json`, see
  `mama_core.inference.heads`) those are used instead and `method` is "probe".
  Aggregation over views and sides: see `mama_core.inference.aggregate`.
  Every prediction also carries an out-of-distribution verdict per view and per study
  (`mama_core.inference.ood`; "unknown" when the model directory has no statistics), the
  temperatures applied to its probabilities (`temperature.json`, see
  `mama_core.evaluation.calibration`) and, for the demo model, a notice saying what it is.
- `similarity_maps(study, sentences)`: per view, the cosine between each sentence's local
  embedding and each patch embedding, on a small grid covering the image; native-pixel
  values on demand (see `maps` and `SimilarityMaps`).
- Image features are computed once per file and kept in an LRU cache keyed by
  path + size + mtime; a lock around the model makes the object safe to share between
  threads (the desktop queries from a worker thread while another predicts).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mama_core.errors import DataError, ModelError
from mama_core.evaluation import calibration as prob_cal
from mama_core.inference import heads as heads_mod
from mama_core.inference import ood as ood_mod
from mama_core.inference.aggregate import aggregate
from mama_core.inference.cache import LRUCache, file_key
from mama_core.inference.maps import content_map, read_calibration
from mama_core.inference.types import ImageFeatures, SimilarityMaps, StudyPrediction, ViewPrediction
from mama_core.optim import auto_device, bf16_autocast
from mama_core.paths import resources_dir
from mama_core.preprocess import fit_to_square, normalise

TASKS = ("birads", "density")
STATS_FILES = ("calibration.json", ood_mod.OOD_JSON, ood_mod.OOD_TENSORS, prob_cal.TEMPERATURE_FILE)
NOT_WEIGHTS = (*STATS_FILES, "version.json")  # a registry copy of the demo is still the demo
DEMO_NOTICE = ("demo model: trained only on synthetic phantoms (`mama demo-data`); on real images its outputs "
               "are for trying the workstation, not for reading")
DEMO_BUILD_HINT = ("the demo model is not built yet: build it with `mama demo-data DIR`, "
                   "`mama train --config resources/configs/demo.yaml --data DIR --out RUN` and "
                   "`mama export RUN resources/models/demo`, or pass --model with a model directory")


def resolve_model_dir(name_or_path: str | Path) -> tuple[Path, str]:
    """'demo' | 'active' | a model directory -> (directory, display name)."""
    if str(name_or_path) == "demo":
        path = resources_dir() / "models" / "demo"
        if not (path / "config.json").exists():
            raise ModelError(DEMO_BUILD_HINT, path=path)
        return path, "demo"
    if str(name_or_path) == "active":
        return _active_model_dir(), "active"
    path = Path(name_or_path).expanduser()
    if not (path / "config.json").exists():
        raise ModelError("not a model directory (no config.json)", path=path)
    return path, path.name


def _active_model_dir() -> Path:
    from mama_core import registry

    return Path(registry.active_model_dir())


class Predictor:
    def __init__(self, model: Any, info: dict, model_dir: Path, name: str, device: torch.device, cache_size: int = 64):
        self.model = model.eval()
        self.info = info or {}
        self.model_dir = Path(model_dir)
        self.name = name
        self.device = device
        self._lock = threading.RLock()  # one forward at a time through the shared model
        self.cache: LRUCache[ImageFeatures] = LRUCache(cache_size)
        self._text_cache: LRUCache[torch.Tensor] = LRUCache(4096)
        self.heads = {t: heads_mod.load_head(self.model_dir, t) for t in (*TASKS, "cancer")}
        self.no_match_threshold, self.map_range = read_calibration(self.model_dir, self.extra)
        self.reload_statistics()
        self.image_forwards = 0  # vision-encoder calls (for tests and benchmarks)
        self._fingerprint: str | None = None
        self._notice: str | None = None

    # ---- construction -------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | Path = "demo", device: str | None = None, cache_size: int = 64) -> "Predictor":
        from mama_core.model.io import load_model_dir

        model_dir, name = resolve_model_dir(name_or_path)
        dev = auto_device(device)
        model, info = load_model_dir(model_dir, dev)
        return cls(model, info, model_dir, name, dev, cache_size=cache_size)

    @property
    def extra(self) -> dict:
        """config.json of the model directory: `save_model_dir(extra=...)` keys live at its
        top level (e.g. "zero_shot_metadata", "no_match_threshold", "map_range")."""
        return self.info if isinstance(self.info, dict) else {}

    @property
    def method(self) -> str:
        used = [self.heads.get(t) is not None for t in TASKS]
        return "probe" if all(used) else ("probe+zero-shot" if any(used) else "zero-shot")

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision.image_size)

    @property
    def use_prompt_metadata(self) -> bool:
        return bool(self.extra.get("zero_shot_metadata", False))

    def set_calibration(self, threshold: float, value_range: tuple[float, float]) -> None:
        self.no_match_threshold, self.map_range = float(threshold), (float(value_range[0]), float(value_range[1]))

    @property
    def fingerprint(self) -> str:
        """Identity of the weights (sha256 of config.json + model.safetensors; probe heads and
        calibration do not change embeddings), for search indexes and feature caches."""
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.model_dir)
        return self._fingerprint

    # ---- model calls ---------------------------------------------------------------
    def _autocast(self):
        return bf16_autocast(self.device, self.device.type == "cuda")

    @property
    def resize_mode(self) -> str:
        """How an image becomes the model's square input: "letterbox" (paper) or "stretch"."""
        return self.model.config.vision.resize

    def _encode_image_files(self, paths: list[Path]) -> list[ImageFeatures]:
        """Decode and encode several files in one vision forward (a study's four views)."""
        from mama_core.dicom import read_image

        return self.encode_decoded(paths, [read_image(p) for p in paths])

    def encode_decoded(self, paths: list[Path], images: list[Any]) -> list[ImageFeatures]:
        """Encode images another process already decoded (`read_image` results), in one
        forward; the search index decodes in worker processes so the model is kept busy."""
        squares = [fit_to_square(img.pixels, self.image_size, self.resize_mode) for img in images]
        x = normalise(torch.stack([sq for sq, _ in squares]))[:, None].to(self.device)
        with self._lock, torch.inference_mode(), self._autocast():  # re-entrant: callers may hold it
            out = self.model.encode_image(x)
        self.image_forwards += 1
        grid = tuple(self.model.patch_grid(self.image_size))
        raw_global, patches = out["image_global"].float().cpu(), out["image_patches"].float().cpu()
        masks = out["patch_mask"].cpu() if "patch_mask" in out else [None] * len(paths)
        return [ImageFeatures(path=Path(p), image_global=_l2(raw_global[i]), image_patches=_l2(patches[i]),
                              grid=grid, letterbox=squares[i][1], laterality=img.laterality, view=img.view,
                              patient_age=img.patient_age, study_uid=img.study_uid, raw_global=raw_global[i],
                              patch_mask=masks[i])
                for i, (p, img) in enumerate(zip(paths, images))]

    def _encode_image_file(self, path: Path) -> ImageFeatures:
        return self._encode_image_files([path])[0]

    def prefetch(self, paths: list[str | Path]) -> None:
        """Encode the uncached files among `paths` together (one batched forward)."""
        keys = [file_key(p) for p in paths]
        with self._lock:
            todo = [(k, Path(p)) for k, p in zip(keys, paths) if self.cache.peek(k) is None]
            if not todo:
                return
            for (k, _), feats in zip(todo, self._encode_image_files([p for _, p in todo])):
                self.cache.put(k, feats)

    def image_features(self, path: str | Path) -> ImageFeatures:
        """Cached features of one image file (re-encoded when the file changes)."""
        key = file_key(path)
        return self.cache.get_or_compute(key, lambda: self._encode_image_file(Path(path)), self._lock)

    def _encode_texts(self, texts: list[str], kind: str) -> torch.Tensor:
        """Normalised embeddings [N, D]: kind "caption" (text_global of whole captions, the
        zero-shot path), "global" / "local" (encode_sentences: one-sentence queries)."""
        missing = [t for t in dict.fromkeys(texts) if self._text_cache.get((kind, t)) is None]
        if missing:
            with self._lock, torch.inference_mode(), self._autocast():
                if kind == "caption":
                    emb = self.model.encode_prompts(missing)
                else:
                    out = self.model.encode_sentences(missing)
                    emb = out["text_global" if kind == "global" else "sentence_local"]
            for t, e in zip(missing, _l2(emb.float().cpu())):
                self._text_cache.put((kind, t), e)
        return torch.stack([self._text_cache.get((kind, t)) for t in texts])

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """L2-normalised global text embeddings [N, D] of one-sentence queries."""
        return self._encode_texts(list(texts), "global").numpy()

    def query_embeddings(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(global [D], local [D]) L2-normalised embeddings of a one-sentence query from ONE
        text forward (text search needs both; `embed_text` + `sentence_embeddings` run two)."""
        g, loc = self._text_cache.get(("global", text)), self._text_cache.get(("local", text))
        if g is None or loc is None:
            with self._lock, torch.inference_mode(), self._autocast():
                out = self.model.encode_sentences([text])
            g, loc = _l2(out["text_global"].float().cpu())[0], _l2(out["sentence_local"].float().cpu())[0]
            self._text_cache.put(("global", text), g)
            self._text_cache.put(("local", text), loc)
        return g.numpy(), loc.numpy()

    def sentence_embeddings(self, sentences: list[str]) -> torch.Tensor:
        """L2-normalised local (SLA) sentence embeddings [N, D]."""
        return self._encode_texts(list(sentences), "local")

    def logit_scale(self) -> float:
        return _logit_scale(self.model)

    # ---- studies ------------------------------------------------------------------
    def resolve_study(self, study: Any):
        """A Study, a study folder (exactly one study inside) or one DICOM file -> Study."""
        from mama_core.dicom import Study, find_studies

        if isinstance(study, Study):
            return study
        path = Path(study)
        if path.is_file():
            return _single_file_study(path)
        if not path.is_dir():
            raise DataError("no such study folder or file", path=path)
        found = find_studies(path)
        if len(found) != 1:
            raise DataError(f"expected one study here, found {len(found)}; pass a study folder", path=path)
        return found[0]

    # ---- predictions --------------------------------------------------------------
    def prompt_record(self, feats: ImageFeatures) -> dict | None:
        """EMBED-named metadata for prompt prefixes, from the image's DICOM tags."""
        if not self.use_prompt_metadata:
            return None
        return {"age_at_study": feats.patient_age, "ImageLateralityFinal": feats.laterality, "ViewPosition": feats.view}

    def zero_shot_probs(self, feats: ImageFeatures, task: str) -> np.ndarray:
        """softmax(logit_scale * cos(image_global, prompt_k)) over the task's prompts."""
        from mama_core.captions import zero_shot_prompts

        prompts = zero_shot_prompts(task, self.prompt_record(feats))
        text = self._encode_texts(prompts, "caption")
        logits = self.logit_scale() * (text @ feats.image_global)
        return torch.softmax(logits.double(), dim=0).numpy()

    def reload_statistics(self) -> None:
        """(Re-)read the OOD statistics and temperatures of the model directory (after
        `mama calibrate` or `mama eval --save-temperature` wrote new ones)."""
        self.ood_stats = ood_mod.load_ood(self.model_dir)  # None: OOD "unknown" (docs/inference.md)
        stored = prob_cal.load_temperatures(self.model_dir)
        self.temperatures = {t: prob_cal.valid_temperature(stored.get(t), self.model_dir, t) for t in (*TASKS, "cancer")}

    def temperature(self, task: str) -> float | None:
        """The stored temperature for the task's current head (or zero-shot), None if none fits."""
        return self.temperatures.get(task)

    def task_probs(self, feats: ImageFeatures, task: str, calibrated: bool = True) -> np.ndarray:
        """Class probabilities; temperature-scaled when the model directory holds a valid
        temperature for this task (`calibrated=False`: the raw softmax, for fitting one)."""
        head = self.heads.get(task)
        probs = head.probabilities(feats.raw_global) if head is not None else self.zero_shot_probs(feats, task)
        t = self.temperature(task) if calibrated else None
        return probs if t is None else prob_cal.apply_temperature(prob_cal.probs_to_logits(probs), t)

    def predict_view(self, key: str, path: str | Path) -> ViewPrediction:
        feats = self.image_features(path)
        return ViewPrediction(key, self.task_probs(feats, "birads"), self.task_probs(feats, "density"))

    @property
    def notice(self) -> str | None:
        """What users must be told about this model wherever its outputs appear: set for the
        demo model and for anything sharing its image encoder (a probe fitted on top of it)."""
        if self._notice is None:
            self._notice = model_notice(self.model_dir) or ""
        return self._notice or None

    def predict(self, study: Any) -> StudyPrediction:
        study = self.resolve_study(study)
        if not study.images:
            raise DataError("the study holds no readable images", path=study.uid)
        self.prefetch(list(study.images.values()))
        views = {key: self.predict_view(key, path) for key, path in study.images.items()}
        oods = ood_mod.view_results(self.ood_stats, {k: self.image_features(p).image_global.numpy()
                                                     for k, p in study.images.items()})
        for key, view in views.items():
            view.ood = oods[key]
        meta = {k: self.prompt_record(self.image_features(p)) or {} for k, p in study.images.items()}
        pred = aggregate(study.uid, views, self.method, self.name, meta)
        pred.ood = ood_mod.study_result(self.ood_stats, oods)
        pred.notice = self.notice
        pred.calibration = {t: self.temperature(t) for t in TASKS}
        return pred

    def similarity_maps(self, study: Any, sentences: list[str]) -> SimilarityMaps:
        if not sentences:
            raise DataError("no sentences to map")
        study = self.resolve_study(study)
        local = self.sentence_embeddings(list(sentences))
        self.prefetch(list(study.images.values()))
        feats = {key: self.image_features(path) for key, path in study.images.items()}
        grids = {key: content_map(f, local) for key, f in feats.items()}
        shapes = {key: tuple(f.letterbox.native_shape) for key, f in feats.items()}
        return SimilarityMaps(list(sentences), grids, shapes, self.no_match_threshold, self.map_range)


_DEMO_FINGERPRINT: list[str | None] = []


def demo_fingerprint() -> str | None:
    """Fingerprint of the shipped demo model's weights (None when it is not built)."""
    if not _DEMO_FINGERPRINT:
        path = resources_dir() / "models" / "demo"
        _DEMO_FINGERPRINT.append(weights_fingerprint(path, skip=NOT_WEIGHTS) if (path / "config.json").is_file() else None)
    return _DEMO_FINGERPRINT[0]


def model_notice(model_dir: str | Path) -> str | None:
    """DEMO_NOTICE when the directory holds the demo's weights (a registry copy or a probe
    on top of it included), else None."""
    demo_dir, d = resources_dir() / "models" / "demo", Path(model_dir)
    if not (demo_dir / "config.json").is_file():
        return None
    if d.resolve() == demo_dir.resolve():
        return DEMO_NOTICE
    mine, demo = d / "model.safetensors", demo_dir / "model.safetensors"
    if not mine.is_file() or mine.stat().st_size != demo.stat().st_size:  # cheap: no hashing for other models
        return None
    return DEMO_NOTICE if weights_fingerprint(d, skip=NOT_WEIGHTS) == demo_fingerprint() else None


def weights_fingerprint(model_dir: Path, skip: tuple[str, ...] = STATS_FILES) -> str:
    """sha256 (16 hex digits) of a model directory's top-level JSON and safetensors files,
    leaving out `skip` (by default the statistics fitted after the weights)."""
    h = hashlib.sha256()
    for f in sorted(Path(model_dir).glob("*.json")) + sorted(Path(model_dir).glob("*.safetensors")):
        if f.name in skip:
            continue
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _l2(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


def _logit_scale(model: Any) -> float:
    """The model's 1/tau multiplier (paper eq. (2)), clamped like training."""
    if hasattr(model, "scales"):
        return float(model.scales()[0].detach().float())
    value = getattr(model, "logit_scale")
    if callable(value) and not isinstance(value, torch.Tensor):
        value = value()
    value = float(torch.as_tensor(value).detach().float().reshape(-1)[0])
    cap = float(getattr(model.config, "logit_scale_max", 100.0))
    return min(value, cap)


def _single_file_study(path: Path):
    from mama_core.dicom import Study, read_image
    from mama_core.dicom.types import view_key

    img = read_image(path)
    key = view_key(img.laterality, img.view) or path.stem
    return Study(uid=img.study_uid or path.stem, patient_id=img.patient_id, date=img.study_date, images={key: path})
