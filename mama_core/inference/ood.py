"""Out-of-distribution (OOD) flag: is an image unlike anything the model was fitted to?

Score: the mean cosine distance (1 - cosine) of an image's L2-normalised global embedding
to its k = 5 nearest neighbours among a reference bank of in-distribution embeddings (the
model's training or calibration images).  Both k-nearest-neighbour and Mahalanobis
(Ledoit-Wolf covariance) scores were measured on the demo model (docs/demo-model.md,
"Outside the model's experience"): both separate real mammograms from unseen synthetic
studies perfectly, but a 256 x 256 covariance estimated from a few hundred images over-fits,
so Mahalanobis raised up to 11 % false alarms on an unseen seed at a threshold set for 5 %, while
kNN stayed at 4-5 %.  kNN also needs no matrix inversion and works with any embedding size.

Threshold: set on *held-out* in-distribution images (never the bank itself, whose
distances to themselves are zero) as the conformal (1 - alpha) quantile: the
ceil((n + 1)(1 - alpha))-th smallest held-out score, which keeps the false-alarm rate on
new in-distribution images at most alpha on average (alpha = 5 % by default).  A study
has its own threshold, calibrated the same way on the largest view score of each
held-out study, so that a study flag also stands for a 5 % false-alarm rate.

Files in the model directory (written by `mama export`, `mama calibrate`, fine-tuning, and
`fit_model_ood` for imported checkpoints):
    ood.safetensors   tensor "bank" [N, D] float32 (L2-normalised global embeddings)
    ood.json          {"format": 1, "method": "knn", "k", "metric", "feature",
                       "view_threshold", "study_threshold", "false_alarm_rate",
                       "n_reference", "n_heldout_views", "n_heldout_studies", "source", ...}
A model directory without them gets the documented fallback: status "unknown" (no score,
no threshold, flagged None) with a sentence saying the statistics are missing and how to
make them (`mama calibrate MODEL_DIR FOLDER`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from mama_core.errors import DataError, ModelError

OOD_JSON = "ood.json"
OOD_TENSORS = "ood.safetensors"
OOD_FORMAT = 1
DEFAULT_K = 5
DEFAULT_FALSE_ALARM = 0.05
MAX_REFERENCE = 4096  # bank cap: 4096 x 512 float32 = 8 MB at the paper's embedding size
MIN_HELDOUT_WARN = 20  # fewer held-out images: the 5 % quantile is little more than the maximum
UNKNOWN_REASON = ("this model directory has no out-of-distribution statistics (ood.json); whether an image "
                  "is unlike its training data is unknown — run `mama calibrate MODEL_DIR FOLDER` on "
                  "in-distribution studies to add them")
FLAG_TEXT = "outside this model's experience: the image is unlike the images the model was fitted to"


@dataclass
class OODStats:
    """A reference bank of normalised embeddings plus calibrated thresholds."""

    bank: np.ndarray  # [N, D] float32, rows L2-normalised
    view_threshold: float
    study_threshold: float
    k: int = DEFAULT_K
    false_alarm_rate: float = DEFAULT_FALSE_ALARM
    n_heldout_views: int = 0
    n_heldout_studies: int = 0
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.bank.ndim != 2 or len(self.bank) < 1:
            raise ModelError(f"OOD reference bank must be [N, D] with N >= 1, got {self.bank.shape}")
        if not 1 <= self.k:
            raise ModelError(f"k must be >= 1, got {self.k}", field="k")
        if not 0 < self.false_alarm_rate < 1:
            raise ModelError(f"false_alarm_rate must lie in (0, 1), got {self.false_alarm_rate}", field="false_alarm_rate")

    def scores(self, embeddings) -> np.ndarray:
        """[M] kNN scores of [M, D] (or [D]) global embeddings (normalised here)."""
        x = _l2(np.atleast_2d(np.asarray(embeddings, dtype=np.float32)))
        if x.shape[1] != self.bank.shape[1]:
            raise ModelError(f"embedding size {x.shape[1]} does not match the OOD statistics ({self.bank.shape[1]}); "
                             "they belong to another model")
        return knn_scores(self.bank, x, self.k)

    def meta(self) -> dict:
        return {"format": OOD_FORMAT, "method": "knn", "k": self.k, "metric": "mean cosine distance to the k nearest "
                "reference embeddings", "feature": "image_global_l2", "view_threshold": self.view_threshold,
                "study_threshold": self.study_threshold, "false_alarm_rate": self.false_alarm_rate,
                "n_reference": int(len(self.bank)), "n_heldout_views": self.n_heldout_views,
                "n_heldout_studies": self.n_heldout_studies, "source": self.source, "notes": self.notes}


@dataclass
class OODResult:
    """One view's (or one study's) OOD verdict; `flagged` is None when statistics are missing."""

    score: float | None
    threshold: float | None
    flagged: bool | None
    status: str  # "in-distribution" | "out-of-distribution" | "unknown"
    reason: str = ""
    views_flagged: list[str] | None = None  # study level only

    def to_json(self) -> dict:
        out = {"score": self.score, "threshold": self.threshold, "flagged": self.flagged, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.views_flagged is not None:
            out["views_flagged"] = self.views_flagged
        return out


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def knn_scores(bank: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Mean cosine distance of each row of `x` to its k nearest rows of `bank` (both
    L2-normalised), exact search with faiss (inner product = cosine)."""
    import faiss

    index = faiss.IndexFlatIP(bank.shape[1])
    index.add(np.ascontiguousarray(bank, dtype=np.float32))
    sims, _ = index.search(np.ascontiguousarray(x, dtype=np.float32), min(k, len(bank)))
    return (1.0 - sims).mean(axis=1).astype(np.float64)


def conformal_threshold(heldout_scores: Sequence[float], false_alarm_rate: float) -> float:
    """The ceil((n + 1)(1 - alpha))-th smallest held-out score (the largest when n is small)."""
    s = np.sort(np.asarray(heldout_scores, dtype=np.float64))
    if not len(s):
        raise DataError("no held-out images to set the OOD threshold")
    rank = min(len(s), math.ceil((len(s) + 1) * (1 - false_alarm_rate)))
    return float(s[rank - 1])


def fit_ood(reference, heldout, heldout_studies: Sequence[Any] | None = None, k: int = DEFAULT_K,
            false_alarm_rate: float = DEFAULT_FALSE_ALARM, source: str = "", max_reference: int = MAX_REFERENCE,
            seed: int = 0) -> OODStats:
    """OOD statistics from global embeddings.

    Args:
        reference: [N, D] global embeddings of in-distribution (training) images: the bank.
        heldout: [M, D] embeddings of *other* in-distribution images, for the thresholds.
        heldout_studies: [M] study id of each held-out row (study threshold from the largest
            view score per study); None: every row is its own study.
        k, false_alarm_rate: see the module notes.
        max_reference: a larger bank is subsampled (seeded) to this many rows.
    """
    bank = _l2(np.asarray(reference, dtype=np.float32))
    held = _l2(np.asarray(heldout, dtype=np.float32))
    if len(bank) > max_reference:
        bank = bank[np.sort(np.random.default_rng(seed).choice(len(bank), max_reference, replace=False))]
    stats = OODStats(bank=bank, view_threshold=0.0, study_threshold=0.0, k=k, false_alarm_rate=false_alarm_rate,
                     source=source)
    view_scores = stats.scores(held)
    ids = list(range(len(held))) if heldout_studies is None else list(heldout_studies)
    per_study: dict[Any, float] = {}
    for sid, s in zip(ids, view_scores):
        per_study[sid] = max(per_study.get(sid, -np.inf), float(s))
    stats.view_threshold = conformal_threshold(view_scores, false_alarm_rate)
    stats.study_threshold = conformal_threshold(list(per_study.values()), false_alarm_rate)
    stats.n_heldout_views, stats.n_heldout_studies = int(len(held)), len(per_study)
    if len(held) < MIN_HELDOUT_WARN:
        stats.notes.append(f"threshold set on only {len(held)} held-out images: the {false_alarm_rate:.0%} "
                           "false-alarm rate is not measured reliably")
    return stats


def save_ood(model_dir: str | Path, stats: OODStats) -> Path:
    """Write ood.safetensors + ood.json (each to a temporary name, then renamed)."""
    d = Path(model_dir)
    try:
        tmp = d / (OOD_TENSORS + ".tmp")
        save_file({"bank": np.ascontiguousarray(stats.bank, dtype=np.float32)}, str(tmp))
        tmp.replace(d / OOD_TENSORS)
        tmp = d / (OOD_JSON + ".tmp")
        tmp.write_text(json.dumps(stats.meta(), indent=2))
        tmp.replace(d / OOD_JSON)
    except OSError as exc:
        raise ModelError(f"cannot write OOD statistics ({exc}); the model directory may be read-only", path=d) from None
    return d / OOD_JSON


def load_ood(model_dir: str | Path) -> OODStats | None:
    """The model directory's OOD statistics, or None when it has none (the fallback)."""
    d = Path(model_dir)
    if not (d / OOD_JSON).is_file() or not (d / OOD_TENSORS).is_file():
        return None
    try:
        meta = json.loads((d / OOD_JSON).read_text())
        if meta.get("format") != OOD_FORMAT or meta.get("method") != "knn":
            raise ValueError(f"unsupported format {meta.get('format')!r} / method {meta.get('method')!r}")
        bank = load_file(str(d / OOD_TENSORS))["bank"]
        return OODStats(bank=bank, view_threshold=float(meta["view_threshold"]),
                        study_threshold=float(meta["study_threshold"]), k=int(meta["k"]),
                        false_alarm_rate=float(meta["false_alarm_rate"]),
                        n_heldout_views=int(meta.get("n_heldout_views", 0)),
                        n_heldout_studies=int(meta.get("n_heldout_studies", 0)),
                        source=str(meta.get("source", "")), notes=list(meta.get("notes", [])))
    except ModelError as exc:
        raise ModelError(exc.reason, path=d / OOD_JSON) from None
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise ModelError(f"unreadable OOD statistics: {exc}", path=d / OOD_JSON) from None


def unknown() -> OODResult:
    return OODResult(None, None, None, "unknown", UNKNOWN_REASON)


def _verdict(score: float, threshold: float) -> OODResult:
    flagged = bool(score > threshold)
    return OODResult(float(score), float(threshold), flagged, "out-of-distribution" if flagged else "in-distribution",
                     FLAG_TEXT if flagged else "")


def view_results(stats: OODStats | None, embeddings: dict[str, Any]) -> dict[str, OODResult]:
    """Per view key: the verdict for its global embedding (all "unknown" without stats)."""
    if stats is None or not embeddings:
        return {key: unknown() for key in embeddings}
    keys = list(embeddings)
    scores = stats.scores(np.stack([np.asarray(embeddings[k], dtype=np.float32) for k in keys]))
    return {key: _verdict(s, stats.view_threshold) for key, s in zip(keys, scores)}


def study_result(stats: OODStats | None, views: dict[str, OODResult]) -> OODResult:
    """The study's verdict: its largest view score against the study threshold."""
    if stats is None or not views:
        return unknown()
    score = max(v.score for v in views.values())
    out = _verdict(score, stats.study_threshold)
    out.views_flagged = [k for k, v in views.items() if v.flagged]
    return out


# --------------------------------------------------------------------------- fitting for a model


def embed_paths(predictor: Any, paths: Sequence[str | Path], batch: int = 16) -> np.ndarray:
    """[N, D] normalised global embeddings of image files through a Predictor (batched)."""
    out = []
    for i in range(0, len(paths), batch):
        chunk = [Path(p) for p in paths[i : i + batch]]
        with predictor._lock:
            feats = predictor._encode_image_files(chunk)
        out += [f.image_global.numpy() for f in feats]
    if not out:
        raise DataError("no images to compute OOD statistics from")
    return np.stack(out)


def split_studies(studies: Sequence[Any], heldout_fraction: float = 0.5, seed: int = 0) -> tuple[list, list]:
    """Studies -> (reference, held-out), whole studies on each side (seeded)."""
    if len(studies) < 2:
        raise DataError(f"OOD statistics need at least 2 studies (one for the reference, one held out); got {len(studies)}")
    order = np.random.default_rng(seed).permutation(len(studies))
    n_held = min(len(studies) - 1, max(1, int(round(len(studies) * heldout_fraction))))
    held = {int(i) for i in order[:n_held]}
    return ([s for i, s in enumerate(studies) if i not in held], [s for i, s in enumerate(studies) if i in held])


def _paths_and_ids(studies: Iterable[Any]) -> tuple[list[Path], list[str]]:
    paths, ids = [], []
    for s in studies:
        for p in s.images.values():
            paths.append(Path(p))
            ids.append(s.uid)
    return paths, ids


def fit_model_ood(model_dir: str | Path, reference_studies: Sequence[Any], heldout_studies: Sequence[Any] | None = None,
                  predictor: Any = None, false_alarm_rate: float = DEFAULT_FALSE_ALARM, source: str = "",
                  write: bool = True) -> OODStats:
    """Compute and (with `write`) store OOD statistics for a model directory.

    The public entry point for every place a model directory is made: export, calibrate,
    fine-tuning, checkpoint import.  `reference_studies` are in-distribution studies
    (`mama_core.dicom.Study` objects); `heldout_studies` other in-distribution studies for
    the thresholds — when None, the reference studies are split half / half by study."""
    if predictor is None:
        from mama_core.inference.predictor import Predictor

        predictor = Predictor.load(model_dir, device="cpu")
    if heldout_studies is None:
        reference_studies, heldout_studies = split_studies(list(reference_studies))
    ref_paths, _ = _paths_and_ids(reference_studies)
    held_paths, held_ids = _paths_and_ids(heldout_studies)
    stats = fit_ood(embed_paths(predictor, ref_paths), embed_paths(predictor, held_paths), held_ids,
                    false_alarm_rate=false_alarm_rate,
                    source=source or f"{len(ref_paths)} reference and {len(held_paths)} held-out images")
    if write:
        save_ood(model_dir, stats)
    return stats
