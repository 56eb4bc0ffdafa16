"""SR + Segmentation written for a real (tiny) model's predictions read back with highdicom."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest

from mama_core.dicom import find_studies, read_image
from mama_core.errors import DataError
from mama_core.reports import map_to_stored_frame, write_study_report
from mama_core.reports.codes import BIRADS_LABELS, DENSITY_LABELS, RESEARCH_NOTICE

SENTENCES = ["mass in the upper outer quadrant", "calcifications"]


@pytest.fixture(scope="module")
def written(tiny_predictor, study_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    files = write_study_report(study_folder, out, tiny_predictor, SENTENCES)
    prediction = tiny_predictor.predict(study_folder)
    maps = tiny_predictor.similarity_maps(study_folder, SENTENCES)
    return files, prediction, maps


def _text_values(items):
    for item in items:
        if "TextValue" in item:
            yield str(item.TextValue)
        yield from _text_values(item.get("ContentSequence", []))


def _groups(sr):
    return {g.tracking_identifier: g for g in sr.content.get_image_measurement_groups()}


def _probs(group, prefix, labels):
    values = {m.name.value: m.value for m in group.get_measurements()}
    return np.array([values[f"{prefix}-{label}"] for label in labels])


def test_sr_gives_back_every_distribution(written, tiny_predictor):
    files, prediction, _ = written
    sr = hd.sr.srread(files.sr)
    groups = _groups(sr)
    assert sr.StudyInstanceUID == prediction.study_uid
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    expected = {"study": prediction, **{f"side {k}": v for k, v in prediction.sides.items()},
                **{f"view {k}": v for k, v in prediction.views.items()}}
    for label, pred in expected.items():
        np.testing.assert_allclose(_probs(groups[label], "BIRADS", BIRADS_LABELS), pred.birads, atol=1e-9)
        np.testing.assert_allclose(_probs(groups[label], "DENSITY", DENSITY_LABELS), pred.density, atol=1e-9)
    assert len(expected) == 1 + 2 + 4


def test_sr_names_the_model_notice_and_every_source_image(written, tiny_predictor, study_folder):
    files, _, _ = written
    ds = pydicom.dcmread(files.sr)
    texts = set(_text_values(ds.ContentSequence))
    assert {f"fingerprint={tiny_predictor.fingerprint}", tiny_predictor.name, RESEARCH_NOTICE} <= texts
    assert RESEARCH_NOTICE in ds.SeriesDescription
    evidence = {item.ReferencedSOPInstanceUID for study in ds.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}
    sources = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in study_folder.glob("*.dcm")}
    assert evidence == sources
    sr = hd.sr.srread(files.sr)
    view_groups = [g for k, g in _groups(sr).items() if k.startswith("view ")]
    assert {g.source_images[0].referenced_sop_instance_uid for g in view_groups} == sources


def test_segmentation_is_the_above_threshold_region_in_the_stored_frame(written, study_folder):
    files, _, maps = written
    study = find_studies(study_folder)[0]
    assert len(files.segmentations) == 4
    flipped_seen = set()
    for path in files.segmentations:
        seg = hd.seg.segread(path)
        source_uid = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
        key = next(k for k, p in study.images.items() if pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID == source_uid)
        image = read_image(study.images[key])
        flipped_seen.add(image.flipped)
        mask = seg.get_pixels_by_source_instance(source_sop_instance_uids=[source_uid], segment_numbers=[1, 2])[0]
        for i, sentence in enumerate(SENTENCES):
            canonical = maps.maps[key][i] >= maps.threshold
            stored = canonical[:, ::-1] if image.flipped else canonical  # back into the file's own frame
            np.testing.assert_array_equal(mask[:, :, i].astype(bool), stored)
            desc = seg.get_segment_description(i + 1)
            assert desc.segment_label == sentence
            params = str(seg.SegmentSequence[i].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters)
            assert f"{maps.threshold:.6f}" in params
    assert flipped_seen == {True, False}  # right-side views are mirrored in the engine


def test_map_summaries_in_the_sr_match_the_maps(written):
    files, _, maps = written
    groups = _groups(hd.sr.srread(files.sr))
    for key, values in maps.maps.items():
        for i, sentence in enumerate(SENTENCES):
            got = {m.name.value: m.value for m in groups[f"map {key}: {sentence}"].get_measurements()}
            assert got["MAP-MAX"] == pytest.approx(float(values[i].max()), abs=1e-6)
            assert got["MAP-THRESHOLD"] == pytest.approx(maps.threshold, abs=1e-6)
            assert got["MAP-FRACTION"] == pytest.approx(float((values[i] >= maps.threshold).mean()), abs=1e-6)


def test_map_to_stored_frame_mirrors_flipped_images_and_checks_shape():
    canonical = np.zeros((4, 6), np.float32)
    canonical[1, 0] = 1.0  # at the chest wall, column 0 in the engine's frame
    assert map_to_stored_frame(canonical, True, 4, 6)[1, 5] == 1.0
    assert map_to_stored_frame(canonical, False, 4, 6)[1, 0] == 1.0
    with pytest.raises(DataError):
        map_to_stored_frame(canonical, False, 6, 4)


def test_parametric_maps_give_back_the_cosine_in_the_stored_frame(written, study_folder):
    files, _, maps = written
    study = find_studies(study_folder)[0]
    uid_to_key = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: k for k, p in study.images.items()}
    assert len(files.parametric_maps) == 4 * len(SENTENCES)
    seen = set()
    for path in files.parametric_maps:
        pm = hd.pm.ParametricMap.from_dataset(pydicom.dcmread(path))
        source = pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
        key = uid_to_key[source.ReferencedSOPInstanceUID]
        sentence = str(pm.ContentDescription)
        image = read_image(study.images[key])
        canonical = maps.maps[key][SENTENCES.index(sentence)]
        stored = canonical[:, ::-1] if image.flipped else canonical
        np.testing.assert_array_equal(pm.pixel_array.reshape(stored.shape), stored)  # float32, no rescaling
        mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        assert f"{maps.threshold:.4f}" in str(mapping.LUTExplanation)
        seen.add((key, sentence))
    assert len(seen) == 4 * len(SENTENCES)
