"""ECE, reliability bins and temperature scaling (mama_core.evaluation.calibration)."""

import numpy as np
import pytest

from mama_core.evaluation.calibration import (
    apply_temperature, expected_calibration_error, fit_temperature, plot_reliability, reliability_bins,
)


def _overconfident(n=4000, c=4, seed=0):
    """Labels drawn from softmax(z) but reported as softmax(3 z): known true temperature 3."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.0, (n, c))
    true_p = apply_temperature(z, 1.0)
    y = np.array([rng.choice(c, p=p) for p in true_p])
    return 3.0 * z, y


def test_bins_count_and_ece_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.3, 0.7]])
    b = reliability_bins(y, p, n_bins=10)
    assert b.count.sum() == 4 and b.count[9] == 2 and b.count[5] == 1 and b.count[6] == 1
    # bin 9: conf .95 acc 1; bin 5: conf .55 acc 0; bin 6: conf .7 acc 1
    expected = 0.5 * 0.05 + 0.25 * 0.55 + 0.25 * 0.3
    assert expected_calibration_error(y, p, 10) == pytest.approx(expected)
    assert np.isnan(b.accuracy[0]) and b.to_json()["accuracy"][0] is None


def test_temperature_recovers_known_scale_and_lowers_ece():
    logits, y = _overconfident()
    t = fit_temperature(logits[:2000], y[:2000])
    assert t == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(y[2000:], apply_temperature(logits[2000:], 1.0))
    after = expected_calibration_error(y[2000:], apply_temperature(logits[2000:], t))
    assert after < before / 2
    # argmax unchanged: accuracy cannot move
    assert (apply_temperature(logits, t).argmax(1) == logits.argmax(1)).all()


def test_bad_inputs_rejected():
    with pytest.raises(ValueError):
        reliability_bins([0, 3], np.full((2, 2), 0.5))
    with pytest.raises(ValueError):
        apply_temperature(np.zeros((1, 2)), 0.0)


def test_reliability_png(tmp_path):
    logits, y = _overconfident(400)
    out = plot_reliability({"before": reliability_bins(y, apply_temperature(logits, 1.0))}, tmp_path / "r.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
