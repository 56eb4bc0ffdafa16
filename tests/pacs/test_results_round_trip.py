"""SR, Parametric Map and Segmentation: written, stored on Orthanc, found by QIDO, retrieved by WADO, parsed.

The prediction numbers here are fixed test inputs (the model side is tested in
tests/reports with a real tiny model); this checks that the objects survive the PACS."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from mama_core.inference.types import StudyPrediction, ViewPrediction
from mama_core.pacs import store_files
from mama_core.pacs.dicomweb import DicomWebConnection
from mama_core.reports import ModelIdentity, build_parametric_map, build_segmentation, build_sr
from mama_core.reports.codes import BIRADS_LABELS


def _prediction(uid, keys, rng):
    def vp(k):
        return ViewPrediction(k, rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(4)))

    return StudyPrediction(uid, rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(4)), {k: vp(k) for k in keys},
                           {s: vp(s) for s in "LR"}, "zero-shot", "test-model")


@pytest.mark.parametrize("kind", ["web", "dimse"])
def test_sr_parametric_map_and_segmentation_round_trip_through_orthanc(kind, orthanc, web_node, dimse_node, tmp_path):
    rng = np.random.default_rng(0)
    uid = orthanc.studies["other"]
    sources = {p.stem: pydicom.dcmread(p) for p in orthanc.studies["folders"][uid].glob("*.dcm")}
    prediction = _prediction(uid, sources, rng)
    identity = ModelIdentity("test-model", "v1", "0123456789abcdef", "zero-shot")
    sr = build_sr(prediction, sources, identity)
    source = sources["LCC"]
    values = rng.uniform(-0.2, 0.8, (int(source.Rows), int(source.Columns))).astype(np.float32)
    seg = build_segmentation(source, ["a spiculated mass"], [values], 0.5, identity, hd.UID())
    pm = build_parametric_map(source, "a spiculated mass", values, 0.5, identity, hd.UID())
    paths = [tmp_path / "sr.dcm", tmp_path / "seg.dcm", tmp_path / "pm.dcm"]
    for obj, path in zip((sr, seg, pm), paths):
        obj.save_as(path)

    store_files(web_node if kind == "web" else dimse_node, paths)

    with DicomWebConnection(web_node) as conn:
        client: DICOMwebClient = conn.client
        found = {m: client.search_for_series(uid, search_filters={"Modality": m}) for m in ("SR", "SEG")}
        assert all(len(v) >= 1 for v in found.values())
        pm_found = client.search_for_instances(uid, search_filters={"SOPClassUID": pm.SOPClassUID})
        assert pm.SOPInstanceUID in [i["00080018"]["Value"][0] for i in pm_found]
        back_pm = hd.pm.ParametricMap.from_dataset(
            client.retrieve_instance(uid, pm.SeriesInstanceUID, pm.SOPInstanceUID))
        back_sr = hd.sr.Comprehensive3DSR.from_dataset(
            client.retrieve_instance(uid, sr.SeriesInstanceUID, sr.SOPInstanceUID))
        back_seg = hd.seg.Segmentation.from_dataset(
            client.retrieve_instance(uid, seg.SeriesInstanceUID, seg.SOPInstanceUID))
    group = next(g for g in back_sr.content.get_image_measurement_groups() if g.tracking_identifier == "study")
    got = {m.name.value: m.value for m in group.get_measurements()}
    np.testing.assert_allclose([got[f"BIRADS-{label}"] for label in BIRADS_LABELS], prediction.birads, atol=1e-9)
    mask = back_seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])[0, :, :, 0]
    np.testing.assert_array_equal(mask.astype(bool), values >= 0.5)
    np.testing.assert_array_equal(back_pm.pixel_array.reshape(values.shape), values)
