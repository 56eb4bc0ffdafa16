"""The predictions panel says when a study is outside the model's experience (badge, grey
bars) and what the model is (the demo notice)."""

from __future__ import annotations

import numpy as np

from mama_core.inference.ood import OODResult, unknown
from mama_core.inference.types import StudyPrediction, ViewPrediction
from mama_desktop.predictions import GREY_COLOUR, PredictionsPanel
from mama_desktop.state import AppState


def _prediction(flagged: bool | None) -> StudyPrediction:
    b, d = np.full(7, 1 / 7), np.array([0.1, 0.7, 0.1, 0.1])
    if flagged is None:
        ood = unknown()
    else:
        ood = OODResult(0.2 if flagged else 0.01, 0.04, flagged, "out-of-distribution" if flagged else "in-distribution")
    views = {"LCC": ViewPrediction("LCC", b, d, ood=ood)}
    study = OODResult(ood.score, 0.06 if ood.score is not None else None, ood.flagged, ood.status,
                      views_flagged=["LCC"] if flagged else [])
    return StudyPrediction("1.2.3", b, d, views, {}, "zero-shot", "demo", ood=study if flagged is not None else ood,
                           notice="demo model: trained only on synthetic phantoms")


def _bar_colours(chart) -> set[str]:
    return {brush.color().name() for brush in chart.bars.opts["brushes"]}


def test_flagged_study_shows_badge_and_grey_bars(qtbot):
    from mama_core.dicom import Study

    state = AppState()
    state.study = Study(uid="1.2.3", patient_id=None, date=None, images={}, problems=[])  # the open study
    panel = PredictionsPanel(state)
    qtbot.addWidget(panel)
    panel.show()
    state.set_prediction(_prediction(True))
    assert panel.ood_badge.isVisible() and "Outside this model's experience (LCC)" in panel.ood_badge.text()
    assert _bar_colours(panel.birads) == {GREY_COLOUR} and _bar_colours(panel.density) == {GREY_COLOUR}
    assert panel.model_notice.isVisible() and "synthetic phantoms" in panel.model_notice.text()

    state.set_prediction(_prediction(False))
    assert not panel.ood_badge.isVisible() and GREY_COLOUR not in _bar_colours(panel.density)

    state.set_prediction(_prediction(None))  # a model without OOD statistics: said, bars not greyed
    assert panel.ood_badge.isVisible() and "unavailable" in panel.ood_badge.text()
    assert GREY_COLOUR not in _bar_colours(panel.density)


def test_flagged_view_gets_a_badge_on_its_pane(qtbot):
    from mama_core.dicom import Study
    from mama_desktop.hanging import HangingProtocol

    state = AppState()
    state.study = Study(uid="1.2.3", patient_id=None, date=None, images={}, problems=[])
    hanging = HangingProtocol(state)
    qtbot.addWidget(hanging)
    hanging.show()
    state.set_prediction(_prediction(True))
    flagged = {k for k, pane in hanging.panes.items() if pane.ood_badge.isVisible()}
    assert flagged == {"LCC"} and "outside this model's experience" in hanging.panes["LCC"].ood_badge.text()
    state.set_prediction(_prediction(False))
    assert not any(pane.ood_badge.isVisible() for pane in hanging.panes.values())
    state.set_prediction(_prediction(None))  # no statistics: no claim either way on the image
    assert not any(pane.ood_badge.isVisible() for pane in hanging.panes.values())
