"""Manual placement: a per-file override in the user's data dir wins over every rule and is
seen by every reader (find_studies, read_image)."""

from __future__ import annotations

import pytest

from mama_core.dicom import clear_override, find_studies, get_override, read_image, set_override
from mama_core.dicom.overrides import overrides_file
from mama_core.errors import ConfigError

from . import make


def test_override_places_an_unplaced_image_and_clearing_restores(tmp_path):
    folder = tmp_path / "study"
    make.four_views(folder, study_uid="1.2.3")
    odd = make.write(make.mg(laterality=None, view=None, study_uid="1.2.3"), folder / "odd.dcm")
    [study] = find_studies(folder)
    assert study.unplaced == [odd]

    set_override(odd, "r", "xccl")
    assert get_override(odd) == ("R", "XCCL")
    assert overrides_file().is_file()
    [study] = find_studies(folder)
    assert study.unplaced == [] and study.images["RXCCL"] == odd
    placement = study.placements[odd]
    assert placement.laterality_rule == placement.view_rule == "manual override"
    assert placement.kind == "extra"
    assert read_image(odd).key == "RXCCL"

    clear_override(odd)
    assert get_override(odd) is None
    [study] = find_studies(folder)
    assert study.unplaced == [odd]


def test_override_of_one_part_keeps_the_other_rule(tmp_path):
    path = make.write(make.mg(laterality="L", view=None), tmp_path / "x.dcm")
    set_override(path, None, "MLO")
    image = read_image(path)
    assert (image.key, image.placement.laterality_rule, image.placement.view_rule) == (
        "LMLO", "ImageLaterality", "manual override")


def test_override_beats_the_header(tmp_path):
    path = make.write(make.mg(laterality="L", view="CC"), tmp_path / "x.dcm")
    set_override(path, "R", "MLO")
    assert read_image(path).key == "RMLO"


@pytest.mark.parametrize("side, view", [("X", "CC"), ("L", "AP")])
def test_bad_override_values_are_refused(tmp_path, side, view):
    with pytest.raises(ConfigError):
        set_override(tmp_path / "x.dcm", side, view)


def test_damaged_overrides_file_is_a_named_error(tmp_path):
    path = make.write(make.mg(), tmp_path / "x.dcm")
    overrides_file().write_text("{not json")
    with pytest.raises(ConfigError, match="placement_overrides.json"):
        find_studies(tmp_path)


def test_place_command_sets_and_clears(tmp_path, capsys):
    from mama_core.cli import main

    path = make.write(make.mg(laterality=None, view=None), tmp_path / "x.dcm")
    assert main(["place", str(path), "--side", "L", "--view", "CC"]) == 0
    assert read_image(path).placement.view_rule == "manual override"
    assert main(["studies", str(tmp_path), "--json"]) == 0
    assert '"laterality_rule": "manual override"' in capsys.readouterr().out
    assert main(["place", str(path), "--clear"]) == 0
    assert get_override(path) is None


def test_placements_from_a_table(tmp_path):
    from mama_core.dicom.overrides import set_overrides_from_table

    a = make.write(make.mg(laterality=None, view=None), tmp_path / "imgs" / "a.dcm")
    b = make.write(make.mg(laterality=None, view=None), tmp_path / "imgs" / "b.dcm")
    table = tmp_path / "places.csv"
    table.write_text(f"path,laterality,view\nimgs/a.dcm,R,CC\n{b},L,\n")
    assert set_overrides_from_table(table) == 2
    assert get_override(a) == ("R", "CC") and get_override(b) == ("L", None)
    table.write_text("path,laterality,view\nimgs/a.dcm,R,CC\nimgs/b.dcm,Q,MLO\n")
    with pytest.raises(ConfigError, match="row 3"):
        set_overrides_from_table(table)
    assert get_override(b) == ("L", None)  # nothing saved from the bad table
