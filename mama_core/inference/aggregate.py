"""How per-view probabilities become per-side and per-study predictions.

Rules (also in docs/inference.md):
- density (a property of the patient, both breasts): the mean of the view probability
  vectors over all views of the study; per side, the mean over that side's views.
- BI-RADS (a per-breast assessment): per side, the mean over that side's views; the study
  takes the probability vector of the side with the higher expected category
  E[k] = sum_k k * p_k (k = 0..6 in EMBED order A N B P S M K), i.e. the worse-looking
  breast, as a radiologist reports the study by its most suspicious finding.  On an exact
  tie the two sides are averaged.  Views without a known side count for density only;
  a study with no sided views takes the mean over all views.
"""

from __future__ import annotations

import numpy as np

from mama_core.inference.types import StudyPrediction, ViewPrediction


def mean_probs(vectors: list[np.ndarray]) -> np.ndarray:
    out = np.mean(np.stack(vectors), axis=0)
    return out / out.sum()


def side_of(key: str) -> str | None:
    return key[0] if key[:1] in ("L", "R") else None


def side_predictions(views: dict[str, ViewPrediction]) -> dict[str, ViewPrediction]:
    sides: dict[str, ViewPrediction] = {}
    for side in ("R", "L"):
        members = [v for k, v in views.items() if side_of(k) == side]
        if members:
            sides[side] = ViewPrediction(side, mean_probs([v.birads for v in members]), mean_probs([v.density for v in members]))
    return sides


def expected_category(p: np.ndarray) -> float:
    return float(np.dot(np.arange(len(p)), p))


def study_birads(views: dict[str, ViewPrediction], sides: dict[str, ViewPrediction]) -> np.ndarray:
    if not sides:
        return mean_probs([v.birads for v in views.values()])
    ranked = sorted(sides.values(), key=lambda s: expected_category(s.birads), reverse=True)
    if len(ranked) == 2 and np.isclose(expected_category(ranked[0].birads), expected_category(ranked[1].birads)):
        return mean_probs([ranked[0].birads, ranked[1].birads])
    return ranked[0].birads


def aggregate(study_uid: str, views: dict[str, ViewPrediction], method: str, model_name: str,
              prompt_metadata: dict[str, dict] | None = None) -> StudyPrediction:
    sides = side_predictions(views)
    return StudyPrediction(
        study_uid=study_uid,
        birads=study_birads(views, sides),
        density=mean_probs([v.density for v in views.values()]),
        views=views,
        sides=sides,
        method=method,
        model_name=model_name,
        prompt_metadata=prompt_metadata or {},
    )
