"""Grey-level pipeline: real pydicom-data files against a direct computation, and the VOI
functions against the formulas of PS3.3 C.11.2.1.2 / C.11.2.1.3."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence

from mama_core.dicom import read_image

from . import make


def _real(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} missing: pydicom-data is a dev dependency"
    return str(path)


def _reference(path: str, y_min: float | None, y_max: float | None) -> np.ndarray:
    """pydicom's own LUT functions, then the [0, 1] scaling written out by hand: (y_min, y_max)
    is the window output range from PS3.3 C.11.2.1.2 (None: min-max, no VOI)."""
    ds = pydicom.dcmread(path)
    values = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds, index=0).astype(np.float64)
    if y_min is None:
        y_min, y_max = values.min(), values.max()
    unit = np.clip((values - y_min) / (y_max - y_min), 0, 1)
    return 1 - unit if ds.PhotometricInterpretation == "MONOCHROME1" else unit


@pytest.mark.parametrize(
    "name, y_min, y_max",
    [
        ("RG1_UNCI.dcm", 0, 2**15 - 1),  # MONOCHROME1, unsigned, BitsStored 15, window
        ("RG3_UNCI.dcm", 0, 2**10 - 1),  # MONOCHROME1, unsigned, BitsStored 10, window
        ("MR_small.dcm", -(2**15), 2**15 - 1),  # MONOCHROME2, signed 16-bit, window
        ("CT_small.dcm", None, None),  # rescale (modality LUT), no window: min-max
    ],
)
def test_real_files_match_direct_computation(name, y_min, y_max):
    path = _real(name)
    image = read_image(path)
    expected = _reference(path, y_min, y_max)
    assert image.pixels.dtype == np.float32
    assert image.pixels.shape == expected.shape
    assert not image.flipped  # not MG: stored layout kept
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert 0.0 <= image.pixels.min() and image.pixels.max() <= 1.0


def test_monochrome1_is_inverted_bright_is_dense():
    # RG1 is MONOCHROME1: the largest stored values are the darkest on screen.
    path = _real("RG1_UNCI.dcm")
    stored = pydicom.dcmread(path).pixel_array
    pixels = read_image(path).pixels
    assert pixels[stored == stored.max()].mean() < pixels[stored == stored.min()].mean()


@pytest.mark.parametrize("pair", [("RG1_UNCI.dcm", "RG1_J2KI.dcm"), ("RG3_UNCI.dcm", "RG3_J2KI.dcm")])
def test_jpeg2000_agrees_with_uncompressed(pair):
    plain, j2k = (read_image(_real(n)).pixels for n in pair)
    assert plain.shape == j2k.shape
    # These JPEG 2000 files decode to the same values as the uncompressed ones; allow a
    # little slack for a lossy re-encode.
    np.testing.assert_allclose(j2k, plain, atol=1e-3)


def _window_ds(tmp_path, values, *, function=None, center, width, name="w.dcm"):
    pixels = np.asarray(values, dtype=np.uint16)
    extra = {"WindowCenter": center, "WindowWidth": width}
    if function:
        extra["VOILUTFunction"] = function
    return make.write(make.mg(pixels=pixels, orientation=["A", "R"], **extra), tmp_path / name)


def _ramp(rows=16, cols=256, top=4095):
    return np.tile(np.linspace(0, top, cols).round().astype(np.uint16), (rows, 1))


def test_sigmoid_voi_matches_ps3_3_formula(tmp_path):
    x = _ramp()
    c, w = 1800.0, 900.0
    path = _window_ds(tmp_path, x, function="SIGMOID", center=c, width=w)
    # PS3.3 C.11.2.1.3.1: y = (ymax - ymin) / (1 + exp(-4 (x - c) / w)) + ymin
    expected = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    np.testing.assert_allclose(read_image(path).pixels, expected, atol=1e-6)


def test_linear_exact_voi_matches_formula(tmp_path):
    x = _ramp().astype(np.float64)
    c, w = 2000.0, 1000.0
    path = _window_ds(tmp_path, x, function="LINEAR_EXACT", center=c, width=w)
    # PS3.3 C.11.2.1.3.2: 0 below c - w/2, 1 above c + w/2, linear in between
    expected = np.clip((x - c) / w + 0.5, 0, 1)
    expected[x <= c - w / 2] = 0
    np.testing.assert_allclose(read_image(path).pixels, expected, atol=1e-6)


def test_linear_voi_matches_formula(tmp_path):
    x = _ramp().astype(np.float64)
    c, w = 2000.0, 1001.0
    path = _window_ds(tmp_path, x, center=c, width=w)
    # PS3.3 C.11.2.1.2.1: ((x - (c - 0.5)) / (w - 1) + 0.5), clipped
    expected = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
    np.testing.assert_allclose(read_image(path).pixels, expected, atol=1e-6)


def test_first_window_is_used_when_several(tmp_path):
    x = _ramp()
    path = _window_ds(tmp_path, x, function="LINEAR_EXACT", center=[1000.0, 3000.0], width=[500.0, 2000.0])
    expected = np.clip((x.astype(np.float64) - 1000.0) / 500.0 + 0.5, 0, 1)
    expected[x <= 750] = 0
    np.testing.assert_allclose(read_image(path).pixels, expected, atol=1e-6)


@pytest.mark.parametrize("function, width", [("LINEAR", 0.5), ("SIGMOID", 0.0), ("CURVY", 100.0)])
def test_unusable_window_falls_back_to_min_max(tmp_path, function, width):
    x = _ramp(top=3000) + 100
    path = _window_ds(tmp_path, x, function=function, center=1000.0, width=width)
    np.testing.assert_allclose(read_image(path).pixels, (x - 100.0) / 3000.0, atol=1e-6)


def _voi_lut(first: int, data: list[int], bits: int = 16) -> Sequence:
    item = Dataset()
    item.LUTDescriptor = [len(data), first, bits]
    item.LUTData = data
    item["LUTDescriptor"].VR = "US"
    item["LUTData"].VR = "US"
    return Sequence([item])


def test_voi_lut_sequence(tmp_path):
    x = _ramp(cols=64, top=4095)
    first, n = 1000, 2048
    lut = (np.linspace(0, 1, n) ** 2 * 65535).round().astype(int)  # full 16-bit output
    ds = make.mg(pixels=x, orientation=["A", "R"], VOILUTSequence=_voi_lut(first, lut.tolist()))
    path = make.write(ds, tmp_path / "lut.dcm")
    index = np.clip(x.astype(int) - first, 0, n - 1)
    np.testing.assert_allclose(read_image(path).pixels, lut[index] / 65535.0, atol=1e-6)


def test_voi_lut_declared_16_bits_holding_12(tmp_path):
    # A common writer quirk: LUT Descriptor says 16 bits, entries only reach 4095.
    x = _ramp(cols=64, top=4095)
    lut = np.arange(4096)
    ds = make.mg(pixels=x, orientation=["A", "R"], VOILUTSequence=_voi_lut(0, lut.tolist()))
    pixels = read_image(make.write(ds, tmp_path / "lut12.dcm")).pixels
    np.testing.assert_allclose(pixels, x / 4095.0, atol=1e-6)
    assert pixels.max() == pytest.approx(1.0)


def test_no_voi_is_min_max_of_modality_output(tmp_path):
    x = _ramp(top=3000).astype(np.uint16) + 500
    ds = make.mg(pixels=x, orientation=["A", "R"], RescaleSlope=2.0, RescaleIntercept=-100.0)
    pixels = read_image(make.write(ds, tmp_path / "mm.dcm")).pixels
    values = x * 2.0 - 100.0
    np.testing.assert_allclose(pixels, (values - values.min()) / (values.max() - values.min()), atol=1e-6)


@pytest.mark.parametrize(
    "photometric, shape, inverted",
    [
        ("MONOCHROME2", None, False),
        ("MONOCHROME1", None, True),
        ("MONOCHROME2", "INVERSE", True),
        ("MONOCHROME1", "INVERSE", True),  # one inversion described twice, not two that cancel
        ("MONOCHROME2", "IDENTITY", False),
    ],
)
def test_polarity(tmp_path, photometric, shape, inverted):
    x = _ramp(top=4095)
    ds = make.mg(pixels=x, photometric=photometric, orientation=["A", "R"], PresentationLUTShape=shape)
    pixels = read_image(make.write(ds, tmp_path / "p.dcm")).pixels
    unit = x / 4095.0
    np.testing.assert_allclose(pixels, 1 - unit if inverted else unit, atol=1e-6)


def test_multiframe_takes_first_frame(tmp_path):
    frames = np.stack([make.breast(), make.breast()[::-1] // 2])
    ds = make.mg(pixels=frames, orientation=["A", "R"])
    pixels = read_image(make.write(ds, tmp_path / "mf.dcm")).pixels
    first = frames[0].astype(np.float64)
    np.testing.assert_allclose(pixels, (first - first.min()) / (first.max() - first.min()), atol=1e-6)
