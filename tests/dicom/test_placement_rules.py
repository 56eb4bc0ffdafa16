"""Each rung of the side and view ladders reports its own name (shown in the tag panel)."""

from __future__ import annotations

import pytest

from mama_core.dicom import read_image

from . import make


@pytest.mark.parametrize("tags, name, side_rule, view_rule", [
    ({}, "x.dcm", "ImageLaterality", "ViewPosition"),
    ({"laterality": None, "Laterality": "R"}, "x.dcm", "Laterality", "ViewPosition"),
    ({"laterality": None, "view": None, "SeriesDescription": "R MLO"}, "x.dcm", "SeriesDescription text",
     "SeriesDescription text"),
    ({"laterality": None, "view": None, "ProtocolName": "Left craniocaudal"}, "x.dcm", "ProtocolName text",
     "ProtocolName text"),
    ({"laterality": None, "view": None, "ImageComments": "RCC"}, "x.dcm", "ImageComments text", "ImageComments text"),
    ({"view": None, "ViewCodeSequence": make.view_code("MLO")}, "x.dcm", "ImageLaterality", "ViewCodeSequence"),
    ({"laterality": None, "view": None, "PatientID": "Calc-Training_P_00005_RIGHT_MLO"}, "x.dcm",
     "CBIS-DDSM PatientID", "CBIS-DDSM PatientID"),
    ({"laterality": None, "view": None}, "0_R_MLO.dcm", "file name token 'R_MLO'", "file name token 'R_MLO'"),
    ({"laterality": None, "view": None}, "x.dcm", "undecided", "undecided"),
])
def test_rule_names(tmp_path, tags, name, side_rule, view_rule):
    placement = read_image(make.write(make.mg(**tags), tmp_path / name)).placement
    assert (placement.laterality_rule, placement.view_rule) == (side_rule, view_rule)
